"""Variable stores in files (--vars): virt-firmware's JSON and edk2's flash image (OVMF_VARS.fd,
OVMF_VARS_4M.fd, AAVMF_VARS.fd), both read and written with the virt-firmware package, so the
same file works with virt-fw-vars and with QEMU + OVMF.

    store = efistub.varstore.load("OVMF_VARS_4M.fd")
    efistub.varstore.save(store, "copy.json")

A store keeps every variable's attributes and, for time-based authenticated ones, their
timestamp. One loaded from an edk2 image counts bytes as that image does: its variable
region's capacity, edk2's variable records, and OVMF's largest variable. Only non-volatile
variables are written to a file. Saves are atomic: a temporary file in the same folder,
then os.replace.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import uuid
from dataclasses import dataclass

from . import guids
from .errors import InputError
from .guids import Guid
from .layouts import varstore as layout
from .layouts.efi import Time
from .variables import NON_VOLATILE, EfiTime, Region, Variable, VariableStore

FORMATS = ("json", "edk2")
JSON_VERSION = 2  # what virt-firmware writes (and awslabs' python-uefivars)

# OVMF's PcdMaxVariableSize: 0x8400 for its 4 MB flash layout (PcdFlashNvStorageVariableSize
# 0x40000: the volume header and the variable store), 0x2000 for the smaller ones. A variable's
# record, header included, may not be larger.
OVMF_4MB_STORE_SIZE = 0x40000
OVMF_4MB_MAX_VARIABLE = 0x8400
OVMF_MAX_VARIABLE = 0x2000


@dataclass
class Origin:
    """The file a store was opened from, and how to write it back."""

    path: str
    format: str  # "json" or "edk2"
    existed: bool  # False: a new file, created when the store is first saved
    loaded: int = 0  # variables read from the file
    volatile: int = 0  # of those, how many had no NON_VOLATILE attribute (never written back)
    template: object = None  # edk2: virt-firmware's Edk2VarStore, the image the variables go into


def format_of(path: str, explicit: str | None = None) -> str:
    """The store format: ``explicit``, else from the name (.json: JSON; anything else: edk2)."""
    if explicit is not None:
        if explicit not in FORMATS:
            raise InputError("--vars-format", f"unknown format {explicit!r} (json or edk2)")
        return explicit
    return "json" if os.fspath(path).lower().endswith(".json") else "edk2"


def load(path, format: str | None = None) -> VariableStore:
    """The store in file ``path``. Anything that is not a whole store raises InputError."""
    path = os.fspath(path)
    format = format_of(path, format)
    if os.path.isdir(path):
        raise InputError(path, "is a folder, not a variable store")
    store = _load_json(path) if format == "json" else _load_edk2(path)
    store.origin.volatile = sum(not v.non_volatile for v in store)
    return store


def open_store(path, format: str | None = None) -> VariableStore:
    """For --vars: the store in ``path``, or an empty one when a JSON ``path`` does not exist yet
    (the first save creates it). An edk2 store needs an existing flash image."""
    path = os.fspath(path)
    format = format_of(path, format)
    if os.path.exists(path):
        return load(path, format)
    if format == "edk2":
        raise InputError(path, "does not exist; an edk2 store is written into an existing flash image: start "
                               "from a copy of one, such as /usr/share/OVMF/OVMF_VARS_4M.fd (or name a new "
                               "store *.json)")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InputError(path, f"cannot be created: {folder} is not a folder")
    store = VariableStore()
    store.origin = Origin(path, format, existed=False)
    return store


def save(store: VariableStore, path=None, format: str | None = None) -> None:
    """Write the store's non-volatile variables to ``path`` (default: the file it was opened from),
    atomically. An edk2 image is written into the one the store came from, else into the
    existing file at ``path``."""
    origin = store.origin
    if path is None:
        if origin is None:
            raise ValueError("save: the store was not opened from a file; give a path")
        path = origin.path
    path = os.fspath(path)
    if format is None and origin is not None and os.path.realpath(origin.path) == os.path.realpath(path):
        format = origin.format
    format = format_of(path, format)
    variables = [v for v in store if v.non_volatile]
    data = _json_bytes(variables) if format == "json" else _edk2_bytes(store, path, variables)
    write_atomically(path, data)


def snapshot(store: VariableStore) -> dict:
    """What a save would write: the non-volatile variables' attributes, data and timestamps."""
    return {(v.name, v.guid): (v.attributes, v.data, v.timestamp) for v in store if v.non_volatile}


def changes(before: dict, store: VariableStore) -> int:
    """How many non-volatile variables were added, removed or changed since ``before``."""
    after = snapshot(store)
    return sum(before.get(key) != after.get(key) for key in before.keys() | after.keys())


def describe(store: VariableStore, path, format: str | None, before: dict) -> dict:
    """The report's ``variable_store``, before the save: the file, what was loaded, what changed."""
    origin = store.origin
    return {"path": os.path.abspath(path), "format": format_of(path, format),
            "existed": origin.existed if origin else os.path.exists(path),
            "loaded": origin.loaded if origin else 0, "volatile": origin.volatile if origin else 0,
            "changed": changes(before, store), "saved": False, "not_saved": None, "error": None}


# -- atomic writes -------------------------------------------------------------------------------

def write_atomically(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` all at once: a temporary file in the same folder, flushed to
    disk, then renamed over it. The file keeps its permissions; a symbolic link its target."""
    target = os.path.realpath(path)
    folder = os.path.dirname(target)
    try:
        mode = os.stat(target).st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    except OSError as e:
        raise InputError(path, e.strerror or str(e)) from None
    try:
        descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(target)}.", suffix=".tmp")
    except OSError as e:
        raise InputError(path, f"cannot write in {folder}: {e.strerror or e}") from None
    try:
        with os.fdopen(descriptor, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(e, OSError):
            raise InputError(path, f"not saved: {e.strerror or e}") from None
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# -- virt-firmware ---------------------------------------------------------------------------------

@contextlib.contextmanager
def virt_firmware(signature_databases: bool = False):
    """Around every call into virt-firmware. It logs through the root logger and calls sys.exit()
    on a bad store: its records stay off the terminal (nothing below the CLI prints) and the
    errors it logged are collected for the message. Its EfiVar parses the data of variables
    named PK, KEK, db, dbx or MokList (under any vendor GUID) as signature databases, which
    fails on a guest's own variable of such a name (and loops forever on a list whose
    SignatureSize is 0); efistub keeps data as bytes, so that parsing is turned off while
    efistub reads and writes stores (``signature_databases`` True keeps it, to build signature
    lists). A timestamp that is no date (month 0, as sbvarsign writes in January) is read as
    an EfiTime instead of failing the whole store."""
    from virt.firmware.efi import efivar

    errors: list[str] = []

    def keep_quiet(record: logging.LogRecord) -> bool:
        if f"{os.sep}virt{os.sep}firmware{os.sep}" not in record.pathname:
            return True
        if record.levelno >= logging.ERROR:
            errors.append(record.getMessage())
        return False

    parse_time = efivar.EfiVar.parse_time

    def tolerant_parse_time(self, data, offset):
        try:
            parse_time(self, data, offset)
        except ValueError:
            t = Time.parse(data[offset:offset + Time.sizeof()])
            self.time = EfiTime(t.Year, t.Month, t.Day, t.Hour, t.Minute, t.Second)

    root, handler, names = logging.getLogger(), logging.NullHandler(), efivar.sigdb_names
    root.addFilter(keep_quiet)
    root.addHandler(handler)  # a root logger with a handler: logging.error() does not call basicConfig()
    if not signature_databases:
        efivar.sigdb_names = ()
    efivar.EfiVar.parse_time = tolerant_parse_time
    try:
        yield errors
    finally:
        efivar.EfiVar.parse_time = parse_time
        efivar.sigdb_names = names
        root.removeHandler(handler)
        root.removeFilter(keep_quiet)



def _variable(record) -> Variable:
    """A virt-firmware EfiVar as an efistub Variable."""
    return Variable(str(record.name), Guid(str(record.guid)), record.attr, bytes(record.data), record.time)


def _varlist(variables: list[Variable]):
    """efistub Variables as virt-firmware's EfiVarList, keyed by position: its edk2 writer sorts by
    key and its JSON writer keeps the list's order, so both keep the store's order."""
    from virt.firmware.efi import efivar

    varlist = efivar.EfiVarList()
    for index, variable in enumerate(variables):
        record = efivar.EfiVar(variable.name, guid=variable.guid, attr=variable.attributes, data=variable.data)
        record.time = variable.timestamp
        varlist[index] = record
    return varlist


def _store(path: str, format: str, records, **regions) -> VariableStore:
    store = VariableStore(**regions)
    for record in records:
        variable = _variable(record)
        if store.get(variable.name, variable.guid) is not None:
            raise InputError(path, f"holds variable {variable.guid}/{variable.name} twice")
        store.set(variable.name, variable.guid, variable.attributes, variable.data, variable.timestamp)
    store.origin = Origin(path, format, existed=True, loaded=len(store))
    return store


# -- JSON ------------------------------------------------------------------------------------------

def _load_json(path: str) -> VariableStore:
    from virt.firmware.efi import efijson

    try:
        with open(path, "rb") as f:
            document = json.loads(f.read())
    except OSError as e:
        raise InputError(path, e.strerror or str(e)) from None
    except ValueError as e:  # also text that is not UTF-8
        raise InputError(path, f"not a JSON variable store: {e}") from None
    entries = _json_entries(path, document)
    records = []
    with virt_firmware():
        for index, entry in enumerate(entries):
            try:
                records.append(efijson.efi_decode(entry))
            except (ValueError, TypeError, OverflowError) as e:
                raise InputError(path, f"variables[{index}] ({entry['name']}): {e}") from None
    return _store(path, "json", records)


def _json_entries(path: str, document) -> list[dict]:
    """The variables of a JSON store, each checked: virt-firmware's decoder assumes a
    well-formed file."""
    if not isinstance(document, dict) or not isinstance(document.get("variables"), list):
        raise InputError(path, 'not a JSON variable store: no "variables" list (virt-firmware\'s format: '
                               '{"version": 2, "variables": [{"name", "guid", "attr", "data"}, ...]})')
    if document.get("version", JSON_VERSION) != JSON_VERSION:
        raise InputError(path, f"JSON variable store version {document['version']!r}; efistub reads version "
                               f"{JSON_VERSION}")
    for index, entry in enumerate(document["variables"]):
        if not isinstance(entry, dict):
            raise InputError(path, f"variables[{index}]: not an object")
        if not isinstance(entry.get("name"), str) or not entry["name"]:
            raise InputError(path, f'variables[{index}]: "name" is not a non-empty string')
        bad = next((key for key, good in ENTRY_CHECKS.items() if not good(entry.get(key))), None)
        if bad is not None:
            raise InputError(path, f'variables[{index}] ({entry["name"]}): "{bad}" is missing or malformed '
                                   f"({entry.get(bad)!r})")
    return document["variables"]


def _is_guid(text) -> bool:
    try:
        return isinstance(text, str) and bool(uuid.UUID(text))
    except ValueError:
        return False


def _is_hex(text, size: int | None = None) -> bool:
    if not isinstance(text, str):
        return False
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        return False
    return size is None or len(raw) == size


ENTRY_CHECKS = {  # a variable's keys in a JSON store: guid, attr and data required, time optional
    "guid": _is_guid,
    "attr": lambda value: type(value) is int and 0 <= value <= 0xFFFFFFFF,
    "data": _is_hex,
    "time": lambda value: not value or _is_hex(value, 16),  # an EFI_TIME
}


def _json_bytes(variables: list[Variable]) -> bytes:
    from virt.firmware.varstore.jstore import JsonVarStore

    with virt_firmware():
        return JsonVarStore.json_varstore(_varlist(variables)).encode("utf-8")


# -- edk2 flash images -----------------------------------------------------------------------------

def _load_edk2(path: str) -> VariableStore:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise InputError(path, e.strerror or str(e)) from None
    _check_volumes(path, data)
    with virt_firmware() as errors:
        try:
            image = _edk2_image(path, data)
            volume_offset = _check_whole(path, image)
            store = _store(path, "edk2", image.get_varlist().values(), **_edk2_regions(image, volume_offset))
        except InputError:
            raise
        except OSError as e:
            raise InputError(path, e.strerror or str(e)) from None
        except SystemExit:
            raise InputError(path, f"not an edk2 variable store ({_problem(path, errors)}){_json_hint(path)}") \
                from None
        except Exception as e:  # a damaged image: struct.error, a name that is not UTF-16, a bad date...
            raise InputError(path, f"damaged edk2 variable store: {type(e).__name__}: {e}") from None
    if store.used(NON_VOLATILE) + store.used(0) > store.capacity:
        raise InputError(path, "damaged edk2 variable store: its variables overrun the variable region")
    store.origin.template = image
    return store


def _edk2_image(path: str, data: bytes):
    """virt-firmware's Edk2VarStore of ``data``, the bytes efistub read and checked (it would read
    the file again)."""
    from virt.firmware.varstore.edk2 import Edk2VarStore

    class Image(Edk2VarStore):
        def readfile(self):
            self.filedata = data

    return Image(path)


def _check_volumes(path: str, data: bytes) -> None:
    """Walk the image as virt-firmware's find_nvdata walks it to the variable store, and refuse
    what that walk would never leave: a firmware file system volume of FvLength 0, which it
    steps over by its length, forever."""
    header, offset = layout.FirmwareVolumeHeader.sizeof(), 0
    while offset + layout.FIND_NVDATA_MINIMUM < len(data):
        volume = layout.FirmwareVolumeHeader.parse(data[offset:offset + header])
        kind = Guid.from_bytes(volume.FileSystemGuid)
        if kind == guids.NV_DATA_FILE_SYSTEM:
            return
        if kind == guids.FIRMWARE_FILE_SYSTEM2:
            if volume.FvLength == 0:
                raise InputError(path, f"damaged edk2 flash image: the firmware volume at 0x{offset:x} has FvLength "
                                       f"0 (virt-firmware would look for the variable store forever)")
            offset += volume.FvLength
            continue
        offset += layout.FIND_NVDATA_STEP


def _problem(path: str, errors: list[str]) -> str:
    """virt-firmware's last error, without the file name it starts with."""
    if not errors:
        return "virt-firmware could not read it"
    message = errors[-1]
    return "virt-firmware: " + (message[len(path) + 2:] if message.startswith(f"{path}: ") else message)


def _json_hint(path: str) -> str:
    with open(path, "rb") as f:
        start = f.read(64).lstrip()
    return "; it looks like JSON: name it *.json or give --vars-format json" if start.startswith(b"{") else ""


def _check_whole(path: str, image) -> int:
    """A truncated image still parses in virt-firmware (the variables just stop): refuse one that
    is shorter than its firmware volume or its variable region. Returns the volume's offset."""
    offset = image.find_nvdata(image.filedata)
    volume = layout.FirmwareVolumeHeader.parse(image.filedata[offset:])
    needed = max(offset + volume.FvLength, image.end)
    if len(image.filedata) < needed:
        raise InputError(path, f"truncated edk2 variable store: {len(image.filedata)} bytes, its firmware volume "
                               f"needs {needed}")
    return offset


def _edk2_regions(image, volume_offset: int) -> dict:
    """The regions of a store in an edk2 image: the variable region's capacity and edk2's records,
    and OVMF's largest variable for a flash store of that size (the volume's header and its
    variable store). OVMF's volatile store is as large as its flash store."""
    capacity = image.end - image.start
    header = layout.AuthenticatedVariableHeader.sizeof()
    flash_store = image.end - volume_offset
    largest = OVMF_4MB_MAX_VARIABLE if flash_store >= OVMF_4MB_STORE_SIZE else OVMF_MAX_VARIABLE
    region = Region(capacity, largest - header, header, layout.VARIABLE_ALIGNMENT)
    return {"non_volatile": region, "volatile": region}


def _edk2_bytes(store: VariableStore, path: str, variables: list[Variable]) -> bytes:
    """The flash image with ``variables`` in its variable region. virt-firmware lays out the
    records (bytes_varlist); its bytes_varstore would pad the free space one byte at a time
    (a second for a 4 MB image), so the padding is done here."""
    image = _template(store, path)
    with virt_firmware() as errors:
        try:
            records = image.bytes_varlist(_varlist(variables))
        except SystemExit:
            raise InputError(path, f"not saved: {_problem(path, errors)}") from None
    free = image.end - image.start - len(records)
    return image.filedata[:image.start] + records + b"\xff" * free + image.filedata[image.end:]


def _template(store: VariableStore, path: str):
    """The edk2 image to write into: the one the store came from, else the existing file."""
    origin = store.origin
    if origin is not None and origin.template is not None:
        return origin.template
    if not os.path.exists(path):
        raise InputError(path, "does not exist; an edk2 store is written into an existing flash image (for "
                               "example a copy of /usr/share/OVMF/OVMF_VARS_4M.fd)")
    return load(path, "edk2").origin.template
