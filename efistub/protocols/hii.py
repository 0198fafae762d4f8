"""EFI_HII_DATABASE_PROTOCOL and EFI_HII_STRING_PROTOCOL (UEFI 2.10 §34.8, §34.2) over efistub.hii.

EDK2 applications (the UEFI Shell, most of ShellPkg and MdeModulePkg) add their strings
as a package list at start (HiiAddPackages) and look up every message they print with
HiiGetString; without these two protocols they dereference NULL. Statuses follow
the specification and, where it is silent, EDK2's HiiDatabaseDxe. An EFI_HII_HANDLE
is the address of a small pool allocation that only its package list has.

EFI_HII_CONFIG_ROUTING_PROTOCOL is installed too (EDK2's UefiHiiServicesLib asserts
it exists), with its members declared only: forms and configuration are not modelled.
"""

from __future__ import annotations

from .. import device_path, guids
from ..errors import GuestMemoryError
from ..hii import MAX_PACKAGE_LIST, HiiDatabase, HiiFormatError, PackageList, StringPackage
from ..layouts import hii as h
from ..memory import MemoryType
from ..registry import ASCII, GUID_PTR, POINTER, STRING, UINT8, UINT16, Result, declare, service
from ..status import Status
from .interface import make_interface

INVALID = Status.EFI_INVALID_PARAMETER
MAX_STRING = 1 << 16  # characters of one string the guest may pass
MAX_LANGUAGE = 256  # characters of a language code
HANDLE_SIZE = 16


def _db(fw) -> HiiDatabase:
    return fw.protocol_state.setdefault("hii", HiiDatabase())


def _read_package_list(fw, address: int):
    """(GUID, body bytes) of the EFI_HII_PACKAGE_LIST_HEADER at ``address``, or a Result to return."""
    header = fw.mem.read_struct(h.PackageListHeader, address)
    size = h.PackageListHeader.sizeof()
    if not size <= header.PackageLength <= MAX_PACKAGE_LIST:
        return Result(INVALID, f"package list of {header.PackageLength} bytes")
    body = fw.mem.read(address + size, header.PackageLength - size)
    return guids.Guid.from_bytes(header.PackageListGuid), body


def _device_path_bytes(fw, driver_handle: int) -> bytes | None:
    handle = fw.handles.get(driver_handle) if driver_handle else None
    interface = handle.protocols.get(guids.DEVICE_PATH_PROTOCOL) if handle else None
    if not interface:
        return None
    try:
        _, size = device_path.read(fw.mem, interface)
    except (ValueError, GuestMemoryError):
        return None
    return fw.mem.read(interface, size)


def _sized_output(fw, size_ptr: int, buffer: int, data: bytes) -> int:
    """Write ``data`` to ``buffer`` if *size_ptr says it fits; *size_ptr becomes its size either way."""
    available = fw.mem.read_uintn(size_ptr)
    fw.mem.write_uintn(size_ptr, len(data))
    if available < len(data):
        return Status.EFI_BUFFER_TOO_SMALL
    fw.mem.write(buffer, data)
    return Status.EFI_SUCCESS


# -- EFI_HII_DATABASE_PROTOCOL ----------------------------------------------------------------

@service("HiiDatabase.NewPackageList", This=POINTER, PackageList=POINTER, DriverHandle=POINTER, Handle=POINTER)
def NewPackageList(fw, this, package_list, driver_handle, handle_ptr):
    if not package_list or not handle_ptr:
        return INVALID
    read = _read_package_list(fw, package_list)
    if isinstance(read, Result):
        return read
    guid, body = read
    db = _db(fw)
    if db.has(guid, driver_handle):
        return Result(INVALID, f"a package list {guid.name} of that driver handle is already there")
    hii_handle = fw.allocate_pool(MemoryType.EfiBootServicesData, HANDLE_SIZE)
    try:
        added = db.add(guid, driver_handle, hii_handle, body, _device_path_bytes(fw, driver_handle))
    except HiiFormatError as e:
        fw.free_pool(hii_handle)
        return Result(INVALID, f"package list {guid.name}: {e}")
    fw.mem.write_uintn(handle_ptr, hii_handle)
    strings = sum(len(p.strings) for p in added.string_packages)
    return Result(Status.EFI_SUCCESS, f"{len(added.packages)} packages, {strings} strings in "
                                      f"{', '.join(added.languages()) or 'no language'}")


@service("HiiDatabase.RemovePackageList", This=POINTER, Handle=POINTER)
def RemovePackageList(fw, this, hii_handle):
    db = _db(fw)
    if db.find(hii_handle) is None:
        return Status.EFI_NOT_FOUND
    db.remove(hii_handle)
    fw.free_pool(hii_handle)
    return Status.EFI_SUCCESS


@service("HiiDatabase.UpdatePackageList", This=POINTER, Handle=POINTER, PackageList=POINTER)
def UpdatePackageList(fw, this, hii_handle, package_list):
    if not package_list:
        return INVALID
    db = _db(fw)
    if db.find(hii_handle) is None:
        return Status.EFI_NOT_FOUND
    read = _read_package_list(fw, package_list)
    if isinstance(read, Result):
        return read
    try:
        db.update(hii_handle, read[1])
    except HiiFormatError as e:
        return Result(INVALID, str(e))
    return Status.EFI_SUCCESS


@service("HiiDatabase.ListPackageLists", This=POINTER, PackageType=UINT8, PackageGuid=GUID_PTR,
         HandleBufferLength=POINTER, Handle=POINTER)
def ListPackageLists(fw, this, kind, guid_ptr, length_ptr, buffer):
    if not length_ptr or (kind == h.PACKAGE_TYPE_GUID) != bool(guid_ptr):
        return INVALID
    if fw.mem.read_uintn(length_ptr) and not buffer:
        return INVALID
    guid = fw.mem.read_guid(guid_ptr) if guid_ptr else None
    found = _db(fw).matching(kind, guid)
    if not found:
        return Status.EFI_NOT_FOUND
    return _sized_output(fw, length_ptr, buffer,
                         b"".join(fw.layout.HANDLE.build(pl.handle) for pl in found))


@service("HiiDatabase.ExportPackageLists", This=POINTER, Handle=POINTER, BufferSize=POINTER, Buffer=POINTER)
def ExportPackageLists(fw, this, hii_handle, size_ptr, buffer):
    if not size_ptr:
        return INVALID
    if fw.mem.read_uintn(size_ptr) and not buffer:
        return INVALID
    db = _db(fw)
    if hii_handle:
        package_list = db.find(hii_handle)
        if package_list is None:
            return Status.EFI_NOT_FOUND
        lists = [package_list]
    else:
        lists = list(db.lists.values())
    return _sized_output(fw, size_ptr, buffer, b"".join(pl.encode() for pl in lists))


@service("HiiDatabase.GetPackageListHandle", This=POINTER, PackageListHandle=POINTER, DriverHandle=POINTER)
def GetPackageListHandle(fw, this, hii_handle, driver_ptr):
    if not driver_ptr:
        return INVALID
    package_list = _db(fw).find(hii_handle)
    if package_list is None:
        return INVALID  # EDK2: an invalid HII handle is a bad parameter here
    fw.mem.write_uintn(driver_ptr, package_list.driver_handle)
    return Status.EFI_SUCCESS


declare("HiiDatabase.RegisterPackageNotify", This=POINTER, PackageType=UINT8, PackageGuid=GUID_PTR,
        PackageNotifyFn=POINTER, NotifyType=POINTER, NotifyHandle=POINTER)
declare("HiiDatabase.UnregisterPackageNotify", This=POINTER, NotificationHandle=POINTER)
declare("HiiDatabase.FindKeyboardLayouts", This=POINTER, KeyGuidBufferLength=POINTER, KeyGuidBuffer=POINTER)
declare("HiiDatabase.GetKeyboardLayout", This=POINTER, KeyGuid=GUID_PTR, KeyboardLayoutLength=POINTER,
        KeyboardLayout=POINTER)
declare("HiiDatabase.SetKeyboardLayout", This=POINTER, KeyGuid=GUID_PTR)


# -- EFI_HII_STRING_PROTOCOL ------------------------------------------------------------------

def _list_to_change(fw, hii_handle: int, font_info: int):
    """The package list NewString or SetString changes, or the status they give instead."""
    package_list = _db(fw).find(hii_handle)
    if package_list is None:
        return Status.EFI_NOT_FOUND
    if font_info:
        return Result(INVALID, "StringFontInfo names a font, and this firmware has none")
    return package_list


def _string_package(fw, language: str, package_list) -> StringPackage | None:
    return next((p for p in package_list.string_packages if p.matches(language)), None)


@service("HiiString.NewString", This=POINTER, PackageList=POINTER, StringId=POINTER, Language=ASCII,
         LanguageName=STRING, String=STRING, StringFontInfo=POINTER)
def NewString(fw, this, hii_handle, id_ptr, language_ptr, name_ptr, string_ptr, font_info):
    if not string_ptr or not id_ptr or not language_ptr or not hii_handle:
        return INVALID
    package_list = _list_to_change(fw, hii_handle, font_info)
    if not isinstance(package_list, PackageList):
        return package_list
    language = fw.mem.read_ascii(language_ptr, MAX_LANGUAGE)
    text = fw.mem.read_ucs2(string_ptr, MAX_STRING)
    package = _string_package(fw, language, package_list)
    next_id = package_list.last_id() + 1
    if package is None:
        if not name_ptr:
            return Result(INVALID, f"no string package for {language!r} and no LanguageName to make one")
        package = StringPackage(language, language_name=next_id)
        package.strings[next_id] = (fw.mem.read_ucs2(name_ptr, MAX_STRING), None)
        package_list.packages.append(package)
        next_id += 1
    if next_id > 0xFFFF:
        return Status.EFI_OUT_OF_RESOURCES
    package.strings[next_id] = (text, None)
    package.last_id = next_id
    fw.mem.write(id_ptr, h.Count16.build(next_id))
    return Status.EFI_SUCCESS


@service("HiiString.GetString", This=POINTER, Language=ASCII, PackageList=POINTER, StringId=UINT16,
         String=POINTER, StringSize=POINTER, StringFontInfo=POINTER)
def GetString(fw, this, language_ptr, hii_handle, string_id, buffer, size_ptr, font_info):
    if not language_ptr or string_id < 1 or not size_ptr or not hii_handle:
        return INVALID
    if not buffer and fw.mem.read_uintn(size_ptr):
        return INVALID
    package_list = _db(fw).find(hii_handle)
    if package_list is None:
        return Status.EFI_NOT_FOUND
    language = fw.mem.read_ascii(language_ptr, MAX_LANGUAGE)
    for package in package_list.string_packages:
        if package.matches(language) and string_id in package.strings:
            status = _sized_output(fw, size_ptr, buffer, (package.strings[string_id][0] + "\0").encode("utf-16-le"))
            if status == Status.EFI_SUCCESS and font_info:
                fw.mem.write_uintn(font_info, 0)  # no font information: NULL, as EDK2 gives
            return status
    if any(string_id in p.strings for p in package_list.string_packages):
        return Status.EFI_INVALID_LANGUAGE
    return Status.EFI_NOT_FOUND


@service("HiiString.SetString", This=POINTER, PackageList=POINTER, StringId=UINT16, Language=ASCII,
         String=STRING, StringFontInfo=POINTER)
def SetString(fw, this, hii_handle, string_id, language_ptr, string_ptr, font_info):
    if not language_ptr or string_id < 1 or not string_ptr or not hii_handle:
        return INVALID
    package_list = _list_to_change(fw, hii_handle, font_info)
    if not isinstance(package_list, PackageList):
        return package_list
    package = _string_package(fw, fw.mem.read_ascii(language_ptr, MAX_LANGUAGE), package_list)
    if package is None or string_id not in package.strings:
        return Status.EFI_NOT_FOUND
    package.strings[string_id] = (fw.mem.read_ucs2(string_ptr, MAX_STRING), package.strings[string_id][1])
    return Status.EFI_SUCCESS


def _languages(fw, size_ptr, buffer, languages: list[str]) -> int:
    if not languages:
        return Status.EFI_NOT_FOUND
    return _sized_output(fw, size_ptr, buffer, ";".join(languages).encode("ascii", errors="replace") + b"\0")


@service("HiiString.GetLanguages", This=POINTER, PackageList=POINTER, Languages=POINTER, LanguagesSize=POINTER)
def GetLanguages(fw, this, hii_handle, buffer, size_ptr):
    if not size_ptr or not hii_handle:
        return INVALID
    if fw.mem.read_uintn(size_ptr) and not buffer:
        return INVALID
    package_list = _db(fw).find(hii_handle)
    if package_list is None:
        return Status.EFI_NOT_FOUND
    return _languages(fw, size_ptr, buffer, package_list.languages())


@service("HiiString.GetSecondaryLanguages", This=POINTER, PackageList=POINTER, PrimaryLanguage=ASCII,
         SecondaryLanguages=POINTER, SecondaryLanguagesSize=POINTER)
def GetSecondaryLanguages(fw, this, hii_handle, primary_ptr, buffer, size_ptr):
    if not size_ptr or not primary_ptr or not hii_handle:
        return INVALID
    if fw.mem.read_uintn(size_ptr) and not buffer:
        return INVALID
    package_list = _db(fw).find(hii_handle)
    if package_list is None:
        return Status.EFI_NOT_FOUND
    package = _string_package(fw, fw.mem.read_ascii(primary_ptr, MAX_LANGUAGE), package_list)
    if package is None:
        return Status.EFI_INVALID_LANGUAGE
    return _languages(fw, size_ptr, buffer, package.language.split(";")[1:])


# -- EFI_HII_CONFIG_ROUTING_PROTOCOL: present, not modelled -------------------------------------

declare("HiiConfigRouting.ExtractConfig", This=POINTER, Request=STRING, Progress=POINTER, Results=POINTER)
declare("HiiConfigRouting.ExportConfig", This=POINTER, Results=POINTER)
declare("HiiConfigRouting.RouteConfig", This=POINTER, Configuration=STRING, Progress=POINTER)
declare("HiiConfigRouting.BlockToConfig", This=POINTER, ConfigRequest=STRING, Block=POINTER, BlockSize=POINTER,
        Config=POINTER, Progress=POINTER)
declare("HiiConfigRouting.ConfigToBlock", This=POINTER, ConfigResp=STRING, Block=POINTER, BlockSize=POINTER,
        Progress=POINTER)
declare("HiiConfigRouting.GetAltConfig", This=POINTER, ConfigResp=STRING, Guid=GUID_PTR, Name=STRING,
        DevicePath=POINTER, AltCfgId=POINTER, AltCfgResp=POINTER)


PROTOCOLS = (
    ("HiiDatabase", h.HII_DATABASE, guids.HII_DATABASE_PROTOCOL),
    ("HiiString", h.HII_STRING, guids.HII_STRING_PROTOCOL),
    ("HiiConfigRouting", h.HII_CONFIG_ROUTING, guids.HII_CONFIG_ROUTING_PROTOCOL),
)


def install(fw) -> int:
    """The HII protocols on one handle, as EDK2's HiiDatabaseDxe installs them; return it."""
    handle = None
    for prefix, members, guid in PROTOCOLS:
        interface = make_interface(fw, prefix, members, fw.layout.function_table(members, header=False))
        handle = fw.handles.install(handle, guid, interface)
    return handle.address
