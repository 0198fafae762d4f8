"""Variable stores in files (--vars): virt-firmware's JSON and edk2 flash images, saved after runs that
changed them, atomically; their real sizes; bad stores refused in one line.

The guests here are a few instructions of x86_64 code that call one runtime service with arguments in
their .data section (``RuntimeCall``), so a test sees exactly what a guest's SetVariable leaves in the
file. Tests of Debian's OVMF images skip when the ovmf package is not installed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from efistub import varstore
from efistub.errors import InputError
from efistub.guids import GLOBAL_VARIABLE, Guid
from efistub.layouts import efi
from efistub.layouts.efi import offset_of
from efistub.machine import Machine
from efistub.status import Status
from efistub.variables import BOOTSERVICE_ACCESS, NON_VOLATILE, RUNTIME_ACCESS, VariableStore
from pe_builder import SECTION_ALIGN, code_image

GUESTS = Path(__file__).parent / "guests"
OVMF = Path("/usr/share/OVMF")
SECURE_BOOT_STORE = OVMF / "OVMF_VARS_4M.ms.fd"  # Debian's ovmf: Microsoft's keys enrolled
SMALL_STORE = OVMF / "OVMF_VARS.fd"  # the 2 MB OVMF's empty store: 56 KiB of variables
NV_BS_RT = NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS
BS_RT = BOOTSERVICE_ACCESS | RUNTIME_ACCESS
VENDOR = Guid("5d1a3c7e-6b0f-4e2a-9c4d-65666973747a")  # made up for these tests
IMAGE_SECURITY_DATABASE = Guid("d719b2cb-3d3a-4596-a3bc-dad00e67656f")  # db, dbx (UEFI 2.10 §32.6.1)


def ovmf_file(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is missing: install Debian's ovmf package")
    return path


def fingerprint(path: Path) -> tuple:
    """What must not change when a store is left as it was: its bytes and its mtime."""
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


# -- guests: one runtime service call ----------------------------------------------------------------

LA = efi.layouts(8)
ARGUMENT_REGISTERS = ("rcx", "rdx", "r8", "r9")  # MS x64; the fifth argument goes to [rsp+0x20]
LEA_RIP = {"rcx": "488d0d", "rdx": "488d15", "r8": "4c8d05", "r9": "4c8d0d", "r10": "4c8d15"}  # lea reg, [rip+d32]
MOV_IMM = {"rcx": "48c7c1", "rdx": "48c7c2", "r8": "49c7c0", "r9": "49c7c1"}  # mov reg, imm32
ENDINGS = {"return": "4883c438c3",  # add rsp, 0x38; ret: the service's status is the exit status
           "fault": "0f0b",  # ud2
           "hang": "ebfe"}  # jmp $


class RuntimeCall:
    """An x86_64 image that calls one runtime service: each argument is an integer, or bytes placed in
    .data and passed by address. ``address(i)`` is where argument i's bytes are in the guest."""

    def __init__(self, service: str, *args, end: str = "return"):
        self.text_rva, self.data_rva = SECTION_ALIGN, 2 * SECTION_ALIGN  # .text, then .data (pe_builder)
        self.data, self.offsets = b"", {}
        for i, arg in enumerate(args):
            if isinstance(arg, bytes):
                self.offsets[i] = len(self.data)
                self.data += arg + bytes(-(len(arg)) % 16)
        code = bytes.fromhex("4883ec38")  # sub rsp, 0x38: shadow space, the fifth argument, alignment
        code += bytes.fromhex("488b82") + offset_of(LA.SystemTable, "RuntimeServices").to_bytes(4, "little")
        for i, arg in enumerate(args):
            register = ARGUMENT_REGISTERS[i] if i < 4 else "r10"
            if isinstance(arg, bytes):
                code += self._lea(len(code), register, self.offsets[i])
            else:
                code += bytes.fromhex(MOV_IMM[register]) + arg.to_bytes(4, "little")
            if i == 4:
                code += bytes.fromhex("4c89542420")  # mov [rsp+0x20], r10
        code += bytes.fromhex("ff90") + offset_of(LA.RuntimeServices, service).to_bytes(4, "little")  # call [rax+d]
        self.code = code + bytes.fromhex(ENDINGS[end])

    def _lea(self, at: int, register: str, data_offset: int) -> bytes:
        following = self.text_rva + at + 7  # the instruction is 7 bytes long
        return bytes.fromhex(LEA_RIP[register]) + (self.data_rva + data_offset - following).to_bytes(4, "little",
                                                                                                   signed=True)

    def write(self, folder: Path, name: str = "call.efi") -> Path:
        path = folder / name
        path.write_bytes(code_image(self.code, data=self.data or b"\0"))
        return path

    def output(self, machine: Machine, index: int, size: int) -> bytes:
        return machine.fw.mem.read(machine.load_address + self.data_rva + self.offsets[index], size)


def ucs2(text: str) -> bytes:
    return (text + "\0").encode("utf-16-le")


def set_variable(name: str, attributes: int, data: bytes, end: str = "return") -> RuntimeCall:
    return RuntimeCall("SetVariable", ucs2(name), VENDOR.bytes_le, attributes, len(data), data, end=end)


def get_variable(name: str, capacity: int = 64) -> RuntimeCall:
    """GetVariable(name, VENDOR, &attributes, &size, buffer): arguments 2, 3 and 4 are its outputs."""
    return RuntimeCall("GetVariable", ucs2(name), VENDOR.bytes_le, bytes(4), capacity.to_bytes(8, "little"),
                       bytes(capacity))


UNVERIFIED = "always"  # the test guests are unsigned: with Secure Boot on they run unverified (--image-policy)


def run(image: Path, **options):
    machine = Machine(str(image), **options)
    return machine, machine.run()


# -- round trips -------------------------------------------------------------------------------------

def test_a_json_store_round_trip_keeps_attributes_timestamps_and_order(tmp_path):
    from datetime import datetime, timezone

    store = VariableStore()
    when = datetime(2025, 3, 10, 2, 53, 39, tzinfo=timezone.utc)
    store.set("Zeta", VENDOR, NV_BS_RT, b"\x01\x02")
    store.set("PK", GLOBAL_VARIABLE, NV_BS_RT | 0x20, b"not a signature list", timestamp=when)  # any bytes
    store.set("db", VENDOR, NON_VOLATILE | BOOTSERVICE_ACCESS, b"\xff" * 3)  # a guest's own "db"
    store.set("Alpha", VENDOR, NV_BS_RT, b"")
    store.set("Fleeting", VENDOR, BS_RT, b"volatile")
    path = tmp_path / "store.json"
    varstore.save(store, path)
    again = varstore.load(path)
    assert [v.name for v in again] == ["Zeta", "PK", "db", "Alpha"]  # the volatile one is not in the file
    assert varstore.snapshot(again) == varstore.snapshot(store)
    assert again.get("PK", GLOBAL_VARIABLE).timestamp == when
    assert again.origin.format == "json" and again.origin.loaded == 4
    varstore.save(again, tmp_path / "again.json")
    assert (tmp_path / "again.json").read_bytes() == path.read_bytes()


def test_debians_secure_boot_store_round_trips_through_edk2_and_json(tmp_path):
    source = ovmf_file(SECURE_BOOT_STORE)
    store = varstore.load(source)
    keys = {name: store.get(name, guid) for name, guid in
            (("PK", GLOBAL_VARIABLE), ("KEK", GLOBAL_VARIABLE), ("db", IMAGE_SECURITY_DATABASE),
             ("dbx", IMAGE_SECURITY_DATABASE))}
    for name, variable in keys.items():
        assert variable is not None, name
        assert variable.attributes == NV_BS_RT | 0x20, name  # TIME_BASED_AUTHENTICATED_WRITE_ACCESS
        assert variable.timestamp is not None and variable.timestamp.year >= 2010, name
    assert store.origin.format == "edk2" and store.origin.loaded == len(store) > 20

    copy = tmp_path / "OVMF_VARS_4M.fd"
    shutil.copy(source, copy)
    varstore.save(store, copy)
    again = varstore.load(copy)
    assert [(v.name, v.guid) for v in again] == [(v.name, v.guid) for v in store]  # the store's order
    assert varstore.snapshot(again) == varstore.snapshot(store)
    assert copy.stat().st_size == source.stat().st_size
    saved = copy.read_bytes()
    varstore.save(again, copy)
    assert copy.read_bytes() == saved  # a second save of the same variables: the same image

    as_json = tmp_path / "store.json"
    varstore.save(store, as_json)
    assert varstore.snapshot(varstore.load(as_json)) == varstore.snapshot(store)
    tool = shutil.which("virt-fw-vars")
    if tool:  # virt-firmware's own tool writes the same JSON for the same store
        theirs = tmp_path / "theirs.json"
        subprocess.run([tool, "-i", str(copy), "--output-json", str(theirs)], check=True, capture_output=True)
        assert theirs.read_bytes() == as_json.read_bytes()


def test_a_store_is_saved_into_an_existing_edk2_image(tmp_path):
    blank = tmp_path / "OVMF_VARS.fd"
    shutil.copy(ovmf_file(SMALL_STORE), blank)
    store = VariableStore()
    store.set("Kept", VENDOR, NV_BS_RT, b"kept")
    varstore.save(store, blank)  # not opened from a file: the existing image is the template
    assert [(v.name, v.data) for v in varstore.load(blank)] == [("Kept", b"kept")]
    with pytest.raises(InputError, match="existing flash image"):
        varstore.save(store, tmp_path / "missing.fd")


# -- runs ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["json", "edk2"])
def test_a_variable_a_guest_sets_is_there_in_the_next_run(tmp_path, kind):
    if kind == "json":
        store = tmp_path / "vars.json"  # does not exist yet: the first save creates it
    else:
        store = tmp_path / "OVMF_VARS.fd"
        shutil.copy(ovmf_file(SMALL_STORE), store)
    _, report = run(set_variable("EfistubKept", NV_BS_RT, b"kept").write(tmp_path), vars=str(store))
    assert report.outcome == "exit" and report.exit_status == "EFI_SUCCESS"
    entry = report.variable_store
    assert entry["saved"] and entry["changed"] == 1 and entry["format"] == kind
    assert entry["existed"] == (kind == "edk2")

    reader = get_variable("EfistubKept")
    machine, report = run(reader.write(tmp_path, "get.efi"), vars=str(store))
    assert report.exit_status == "EFI_SUCCESS"  # GetVariable found it
    assert int.from_bytes(reader.output(machine, 2, 4), "little") == NV_BS_RT
    assert int.from_bytes(reader.output(machine, 3, 8), "little") == 4
    assert reader.output(machine, 4, 4) == b"kept"
    assert report.variable_store["loaded"] == 1 and not report.variable_store["saved"]


def test_vars_format_overrides_the_name(tmp_path):
    store = tmp_path / "vars.store"  # not *.json: edk2 by its name
    image = set_variable("EfistubKept", NV_BS_RT, b"kept").write(tmp_path)
    result = subprocess.run([sys.executable, "-m", "efistub", "run", str(image), "--vars", str(store),
                             "--vars-format", "json"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"{store} (json): 0 loaded, 1 changed, saved" in result.stdout
    assert [v.name for v in varstore.load(store, "json")] == ["EfistubKept"]


def test_volatile_variables_never_reach_the_file(tmp_path):
    store = tmp_path / "vars.json"
    machine, report = run(set_variable("EfistubFleeting", BS_RT, b"gone").write(tmp_path), vars=str(store))
    assert report.exit_status == "EFI_SUCCESS" and machine.variables.get("EfistubFleeting", VENDOR) is not None
    assert report.variable_store["changed"] == 0 and not report.variable_store["saved"]
    assert not store.exists()  # nothing to save: the new file is not even created


@pytest.mark.parametrize("end, outcome", [("fault", "fault"), ("hang", "timeout")])
def test_a_run_that_faults_leaves_the_store_as_it_was(tmp_path, end, outcome):
    store = tmp_path / "vars.json"
    before = VariableStore()
    before.set("Before", VENDOR, NV_BS_RT, b"1")
    varstore.save(before, store)
    unchanged = fingerprint(store)
    image = set_variable("EfistubKept", NV_BS_RT, b"kept", end=end).write(tmp_path)
    _, report = run(image, vars=str(store), timeout=1)
    assert report.outcome == outcome
    assert report.variable_store["changed"] == 1 and not report.variable_store["saved"]
    assert "--vars-save-on-fault" in report.variable_store["not_saved"]
    assert fingerprint(store) == unchanged

    _, report = run(image, vars=str(store), timeout=1, vars_save_on_fault=True)
    assert report.outcome == outcome and report.variable_store["saved"]
    assert [v.name for v in varstore.load(store)] == ["Before", "EfistubKept"]


def test_saving_is_off_for_runs_that_share_a_store(tmp_path):
    """minimize and scan run many machines from one store: none of them writes it."""
    store = tmp_path / "vars.json"
    machine = Machine(str(set_variable("EfistubKept", NV_BS_RT, b"kept").write(tmp_path)), vars=str(store),
                      save_vars=False)
    report = machine.run()
    assert report.variable_store["changed"] == 1 and not report.variable_store["saved"] and not store.exists()


def test_the_variables_guest_passes_with_the_secure_boot_store_and_leaves_it_as_it_was(tmp_path):
    """variables.efi enumerates past OVMF's 31 variables to find its own, and deletes what it creates."""
    store = tmp_path / "OVMF_VARS_4M.fd"
    shutil.copy(ovmf_file(SECURE_BOOT_STORE), store)
    unchanged = fingerprint(store)
    _, report = run(GUESTS / "x86_64" / "variables.efi", vars=str(store), image_policy=UNVERIFIED)
    assert report.exit_status == "EFI_SUCCESS", report.console
    assert "DONE 0 failures" in report.console
    assert report.variable_store["changed"] == 0 and fingerprint(store) == unchanged


def test_get_next_variable_name_gives_the_store_order(tmp_path):
    """efistub's GetNextVariableName, called with guest memory on a store loaded from OVMF's image, walks
    the variables in the image's order."""
    from efistub.services.variables import GetNextVariableName

    store = tmp_path / "OVMF_VARS_4M.fd"
    shutil.copy(ovmf_file(SECURE_BOOT_STORE), store)
    machine = Machine(str(GUESTS / "x86_64" / "hello.efi"), vars=str(store), image_policy=UNVERIFIED)
    seen = []

    @machine.service("TextOutput.OutputString")
    def enumerate_variables(ctx, this, string):
        size, name, guid = ctx.allocate_pool(8), ctx.allocate_pool(512), ctx.allocate_pool(16)
        ctx.write_string(name, "")
        while True:
            ctx.write_uintn(size, 512)
            status = GetNextVariableName(ctx.firmware, size, name, guid)
            if status != Status.EFI_SUCCESS:
                return status
            seen.append((ctx.read_string(name), ctx.read_guid(guid)))

    report = machine.run()
    assert report.outcome == "exit"
    from_file = [(v.name, v.guid) for v in varstore.load(store)]
    assert seen[:len(from_file)] == from_file
    # then the firmware's own Secure Boot variables (volatile), which it sets when the run starts
    assert seen[len(from_file):] == [(name, GLOBAL_VARIABLE) for name in (
        "SetupMode", "SignatureSupport", "SecureBoot", "AuditMode", "DeployedMode", "VendorKeys")]


# -- sizes of an edk2 store -----------------------------------------------------------------------------

def test_query_variable_info_reports_the_sizes_of_the_edk2_store(tmp_path):
    from virt.firmware.varstore.edk2 import Edk2VarStore

    store = tmp_path / "OVMF_VARS_4M.fd"
    shutil.copy(ovmf_file(SECURE_BOOT_STORE), store)
    image = Edk2VarStore(str(store))
    capacity = image.end - image.start  # the variable region, as virt-firmware finds it
    used = len(image.bytes_varlist(image.get_varlist()))  # the records virt-firmware writes
    query = RuntimeCall("QueryVariableInfo", NV_BS_RT, bytes(8), bytes(8), bytes(8))
    machine, report = run(query.write(tmp_path), vars=str(store), image_policy=UNVERIFIED)
    assert report.exit_status == "EFI_SUCCESS"
    maximum, remaining, largest = (int.from_bytes(query.output(machine, i, 8), "little") for i in (1, 2, 3))
    assert (maximum, remaining) == (capacity, capacity - used)
    assert largest == varstore.OVMF_4MB_MAX_VARIABLE - 60  # PcdMaxVariableSize less the record header


def test_set_variable_gives_out_of_resources_when_the_flash_store_is_full(tmp_path):
    store = tmp_path / "OVMF_VARS.fd"
    shutil.copy(ovmf_file(SMALL_STORE), store)
    guest = set_variable("EfistubKept", NV_BS_RT, b"kept")
    machine = Machine(str(guest.write(tmp_path)), vars=str(store))
    region = machine.variables.non_volatile
    record = region.record_size("EfistubKept", 4)
    filler, number = 4000, 0
    while machine.variables.remaining(NON_VOLATILE) >= record:  # leave less room than the guest's variable
        room = machine.variables.remaining(NON_VOLATILE) - record + 1
        size = max(0, min(filler, room - region.record_size("Filler0000", 0)))
        machine.variables.set(f"Filler{number:04}", VENDOR, NV_BS_RT, bytes(size))
        number += 1
    report = machine.run()
    assert report.exit_status == "EFI_OUT_OF_RESOURCES"
    assert "do not fit in the non-volatile store" in report.calls[-1].note
    assert report.variable_store["saved"]  # the fillers fit, exactly as virt-firmware writes them
    assert len(varstore.load(store)) == number


@pytest.mark.parametrize("size", [8200, 0x7FFFFFFF])
def test_a_variable_larger_than_the_stores_largest_is_refused_before_it_is_read(tmp_path, size):
    """OVMF's 2 MB layout takes at most 0x2000 bytes per variable, header included; a DataSize of 2 GiB
    (far more than the guest's buffer) is refused without reading the data."""
    store = tmp_path / "OVMF_VARS.fd"
    shutil.copy(ovmf_file(SMALL_STORE), store)
    guest = RuntimeCall("SetVariable", ucs2("EfistubBig"), VENDOR.bytes_le, NV_BS_RT, size, bytes(16))
    _, report = run(guest.write(tmp_path), vars=str(store))
    assert report.exit_status == "EFI_INVALID_PARAMETER"
    assert "more than the 8132 a non-volatile variable may take" in report.calls[-1].note
    assert report.variable_store["changed"] == 0


# -- atomic saves ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_a_save_that_fails_midway_leaves_the_original(tmp_path, monkeypatch, failing):
    path = tmp_path / "vars.json"
    store = VariableStore()
    store.set("Old", VENDOR, NV_BS_RT, b"old")
    varstore.save(store, path)
    original = path.read_bytes()
    store.set("New", VENDOR, NV_BS_RT, b"new")

    def fail(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, failing, fail)
    with pytest.raises(InputError, match="No space left on device"):
        varstore.save(store, path)
    monkeypatch.undo()
    assert path.read_bytes() == original
    assert os.listdir(tmp_path) == ["vars.json"]  # the temporary file is gone too


def test_a_process_killed_during_a_save_leaves_the_original(tmp_path):
    path = tmp_path / "vars.json"
    store = VariableStore()
    store.set("Old", VENDOR, NV_BS_RT, b"old")
    varstore.save(store, path)
    original = path.read_bytes()
    script = (f"import os, signal\nfrom efistub import varstore\nstore = varstore.load({str(path)!r})\n"
              f"store.set('New', {str(VENDOR)!r}, 7, bytes(100000))\n"
              "os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)\nvarstore.save(store)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert result.returncode == -signal.SIGKILL
    assert path.read_bytes() == original


# -- bad input -----------------------------------------------------------------------------------------

def bad_stores(folder: Path) -> dict:
    """name: (file, what the error says)."""
    cases = {
        "not-a-store": ("random.fd", b"\x5a" * 100000, "not an edk2 variable store"),
        "empty": ("empty.fd", b"", "not an edk2 variable store"),
        "json-named-fd": ("json.fd", b'{"version": 2, "variables": []}', "looks like JSON"),
        "not-json": ("text.json", b"variables: none", "not a JSON variable store"),
        "json-no-list": ("list.json", b"[1, 2]", 'no "variables" list'),
        "json-bad-entry": ("entry.json", b'{"version": 2, "variables": [{"name": "x", "guid": "nope", "attr": 7, '
                                         b'"data": ""}]}', '"guid" is missing or malformed'),
        "json-bad-hex": ("hex.json", b'{"variables": [{"name": "x", "guid": "8be4df61-93ca-11d2-aa0d-00e098032b8c", '
                                     b'"attr": 7, "data": "zz"}]}', '"data" is missing or malformed'),
        "json-version": ("version.json", b'{"version": 9, "variables": []}', "version 9"),
    }
    if SMALL_STORE.exists():
        cases["truncated-ovmf"] = ("truncated.fd", SMALL_STORE.read_bytes()[:65536], "truncated")
    files = {}
    for case, (name, content, problem) in cases.items():
        (folder / name).write_bytes(content)
        files[case] = (folder / name, problem)
    return files


CASES = ["not-a-store", "empty", "json-named-fd", "not-json", "json-no-list", "json-bad-entry", "json-bad-hex",
         "json-version", "truncated-ovmf"]


@pytest.mark.parametrize("case", CASES)
def test_a_bad_store_is_a_one_line_error_and_stays_untouched(tmp_path, case):
    cases = bad_stores(tmp_path)
    if case not in cases:
        pytest.skip(f"{SMALL_STORE} is missing: install Debian's ovmf package")
    path, problem = cases[case]
    unchanged = fingerprint(path)
    result = subprocess.run([sys.executable, "-m", "efistub", "run", str(GUESTS / "x86_64" / "hello.efi"),
                             "--vars", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr
    assert str(path) in result.stderr and problem in result.stderr, result.stderr
    assert fingerprint(path) == unchanged


def crafted_volume() -> bytes:
    """An image whose first firmware volume is a firmware file system of FvLength 0: virt-firmware's
    walk to the variable store steps over it by its length, forever."""
    from efistub.guids import FIRMWARE_FILE_SYSTEM2
    from efistub.layouts.varstore import FirmwareVolumeHeader

    header = FirmwareVolumeHeader.build(dict(ZeroVector=bytes(16), FileSystemGuid=FIRMWARE_FILE_SYSTEM2.bytes_le,
                                             FvLength=0, Signature=b"_FVH", Attributes=0, HeaderLength=72,
                                             Checksum=0, ExtHeaderOffset=0, Reserved=0, Revision=2))
    return header + bytes(4096)


def test_a_volume_of_length_0_is_a_one_line_error_at_once(tmp_path):
    path = tmp_path / "crafted.fd"
    path.write_bytes(crafted_volume())
    unchanged = fingerprint(path)

    def too_slow(signum, frame):
        raise TimeoutError("varstore.load still walks the image after 5 s")

    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(5)
    try:
        import time

        started = time.perf_counter()
        with pytest.raises(InputError, match="FvLength 0"):
            varstore.load(path)
        assert time.perf_counter() - started < 1
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    result = subprocess.run([sys.executable, "-m", "efistub", "run", str(GUESTS / "x86_64" / "hello.efi"),
                             "--vars", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"{path}: damaged edk2 flash image: the firmware volume at 0x0 has FvLength 0" in result.stderr
    assert fingerprint(path) == unchanged


@pytest.mark.parametrize("case", ["folder", "missing-edk2", "no-folder", "unreadable"])
def test_a_store_that_cannot_be_opened_is_a_one_line_error(tmp_path, case):
    if case == "unreadable" and os.geteuid() == 0:
        pytest.skip("root reads every file")
    path = {"folder": tmp_path, "missing-edk2": tmp_path / "OVMF_VARS.fd",
            "no-folder": tmp_path / "nowhere" / "vars.json", "unreadable": tmp_path / "vars.json"}[case]
    if case == "unreadable":
        path.write_text('{"version": 2, "variables": []}')
        path.chmod(0)
    result = subprocess.run([sys.executable, "-m", "efistub", "run", str(GUESTS / "x86_64" / "hello.efi"),
                             "--vars", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert str(path) in result.stderr and "Traceback" not in result.stderr


def test_a_save_that_fails_after_the_run_is_a_one_line_error(tmp_path):
    """The run happens, the save cannot: a folder the store's temporary file cannot be written in (for
    root, who writes in every folder, /proc)."""
    folder = tmp_path / "store"
    folder.mkdir()
    folder.chmod(0o500)
    if os.access(folder, os.W_OK):
        folder = Path("/proc")
        if not folder.is_dir():
            pytest.skip("no folder the test can make unwritable")
    store = folder / "efistub-test-vars.json"
    image = set_variable("EfistubKept", NV_BS_RT, b"kept").write(tmp_path)
    result = subprocess.run([sys.executable, "-m", "efistub", "run", str(image), "--vars", str(store)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"{store}: cannot write in {folder}" in result.stderr and not store.exists()
    assert "store " in result.stdout and "not saved" in result.stdout  # the summary says so too


# -- the boot manager -----------------------------------------------------------------------------------

def load_option(description: str, path: str, data: bytes = b"") -> bytes:
    """EFI_LOAD_OPTION (UEFI 2.10 §3.1.3), active, with a File() path."""
    from efistub import device_path

    paths = device_path.encode([device_path.file_path(path)])
    return (efi.LoadOptionHeader.build(dict(Attributes=1, FilePathListLength=len(paths)))  # LOAD_OPTION_ACTIVE
            + ucs2(description) + paths + data)


def boot_store(tmp_path: Path) -> tuple[Path, Path]:
    """An ESP whose removable-media file is exit.efi and with \\EFI\\test\\hello.efi, and a JSON store
    whose BootOrder=0001 names a Boot0001 for hello.efi."""
    esp = tmp_path / "esp"
    (esp / "EFI" / "BOOT").mkdir(parents=True)
    (esp / "EFI" / "test").mkdir()
    shutil.copy(GUESTS / "x86_64" / "exit.efi", esp / "EFI" / "BOOT" / "BOOTX64.EFI")
    shutil.copy(GUESTS / "x86_64" / "hello.efi", esp / "EFI" / "test" / "hello.efi")
    store = VariableStore()
    store.set("Boot0001", GLOBAL_VARIABLE, NV_BS_RT, load_option("hello", "\\EFI\\test\\hello.efi",
                                                                 ucs2("from-boot0001")))
    store.set("BootOrder", GLOBAL_VARIABLE, NV_BS_RT, (1).to_bytes(2, "little"))
    path = tmp_path / "store.json"
    varstore.save(store, path)
    return esp, path


def test_efistub_boot_runs_the_boot_option_of_the_store(tmp_path):
    import json

    esp, store = boot_store(tmp_path)
    unchanged = fingerprint(store)
    result = subprocess.run([sys.executable, "-m", "efistub", "boot", "--esp", str(esp), "--vars", str(store),
                             "--json", "-"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["outcome"] == "exit" and report["exit_status"] == "EFI_SUCCESS"  # hello.efi's, not exit.efi's
    assert "Hello from efistub guest" in report["console"]
    assert [i["source"] for i in report["images"]] == ["\\EFI\\BOOT\\BOOTX64.EFI", "\\EFI\\test\\hello.efi"]
    assert not report["images"][0]["started"]
    assert "Boot0001 (hello) returned EFI_SUCCESS" in report["notes"]
    assert report["variable_store"]["loaded"] == 2 and report["variable_store"]["changed"] == 0
    assert fingerprint(store) == unchanged  # BootCurrent is volatile


def test_the_boot_manager_sets_boot_current_from_the_store(tmp_path):
    esp, store = boot_store(tmp_path)
    machine = Machine(str(esp / "EFI" / "BOOT" / "BOOTX64.EFI"), esp=str(esp), boot_path="\\EFI\\BOOT\\BOOTX64.EFI",
                      vars=str(store))
    report = machine.run()
    assert report.exit_status == "EFI_SUCCESS"
    current = machine.variables.get("BootCurrent", GLOBAL_VARIABLE)
    assert current.data == (1).to_bytes(2, "little") and not current.non_volatile


# -- the same file with QEMU + OVMF -------------------------------------------------------------------

def test_ovmf_under_qemu_boots_from_a_store_efistub_saved_and_keeps_its_variable(tmp_path):
    """The store a guest changed under efistub is a valid OVMF flash image: OVMF (4 MB, no Secure Boot)
    boots with it under QEMU to its shell, writes its own boot options into it and keeps the guest's
    variable; efistub reads the store OVMF wrote."""
    import time

    qemu, code = shutil.which("qemu-system-x86_64"), OVMF / "OVMF_CODE_4M.fd"
    if qemu is None or not code.exists():
        pytest.skip("qemu-system-x86_64 (qemu-system-x86) or OVMF_CODE_4M.fd (ovmf) is missing")
    store = tmp_path / "OVMF_VARS_4M.fd"
    shutil.copy(ovmf_file(OVMF / "OVMF_VARS_4M.fd"), store)
    _, report = run(set_variable("EfistubKept", NV_BS_RT, b"kept").write(tmp_path), vars=str(store))
    assert report.variable_store["saved"]
    serial = tmp_path / "serial.log"
    command = [qemu, "-machine", "q35", "-m", "256", "-display", "none", "-net", "none", "-serial", f"file:{serial}",
               "-drive", f"if=pflash,format=raw,unit=0,file={code},readonly=on",
               "-drive", f"if=pflash,format=raw,unit=1,file={store}"]
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as vm:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and vm.poll() is None:
            if serial.exists() and b"startup.nsh" in serial.read_bytes():  # past the boot manager: at the shell
                break
            time.sleep(0.2)
        vm.terminate()
    assert b"startup.nsh" in serial.read_bytes(), serial.read_bytes()[-2000:]
    after = varstore.load(store)
    assert after.get("EfistubKept", VENDOR).data == b"kept"
    assert after.get("BootOrder", GLOBAL_VARIABLE) is not None  # OVMF's own, written into the same store


# -- a real boot loader ---------------------------------------------------------------------------------

def test_shim_keeps_its_sbat_level_in_the_store(corpus, tmp_path):
    """shim 16.1 writes SbatLevel (non-volatile) when it finds none; the next run reads it and writes
    nothing."""
    from conftest import corpus_file

    shim = corpus_file(corpus, "x86_64/shimx64.efi")
    store = tmp_path / "vars.json"
    _, first = run(shim, vars=str(store))
    assert first.variable_store["saved"]
    sbat = varstore.load(store).get("SbatLevel", "605dab50-e046-4300-abb6-3dd810dd8b23")  # SHIM_LOCK_GUID
    assert sbat is not None and sbat.data.startswith(b"sbat,1,") and sbat.attributes == NON_VOLATILE | BOOTSERVICE_ACCESS
    unchanged = fingerprint(store)
    _, second = run(shim, vars=str(store))
    reads = [c.status for c in second.calls if c.service == "GetVariable" and c.args["VariableName"] == "SbatLevel"]
    assert "EFI_SUCCESS" in reads
    assert second.variable_store["changed"] == 0 and fingerprint(store) == unchanged
