"""Writes fuzz_table.h, the table fuzz.c calls from: every function efistub puts in a table.

Nothing here is written by hand: the functions, their order and their offsets are read from
efistub's own firmware after a run of hello.efi (the boot and runtime services tables, and every
interface on every handle, read word by word and matched against the services' stubs; the file
protocol, which only OpenVolume makes, from its layout), at both pointer widths; the arguments
of each are the registry's (efistub/registry.py), sorted into the few kinds fuzz.c draws values
for. tests/test_fuzz_services.py checks that the committed header is what this writes.

    python3 tests/guests/fuzz_table.py          # rewrites tests/guests/fuzz_table.h
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEADER = HERE / "fuzz_table.h"

# The kinds of argument fuzz.c knows (one letter each, in a string per function):
#   T  This: the protocol's own interface          H  a handle            E  an event
#   G  EFI_GUID *                                   S  CHAR16 *            A  CHAR8 *
#   D  a device path                                F  a function the firmware calls
#   P  any other pointer, in or out                 N  a UINTN (a size, a count, a key)
#   Q  a UINT64 (two slots on IA32)                 W  a UINT32            B  BOOLEAN, UINT8, UINT16
#   K  an enumeration (memory, allocate, timer, search, reset types) and a TPL
HANDLE_NAMES = {"Handle", "ImageHandle", "ParentImageHandle", "AgentHandle", "ControllerHandle",
                "DriverImageHandle", "ChildHandle", "DriverHandle", "PackageList", "PackageListHandle",
                "NotificationHandle"}
OUT_HANDLE = {("LoadImage", "ImageHandle"), ("HiiDatabase.NewPackageList", "Handle"),
              ("HiiDatabase.GetPackageListHandle", "DriverHandle")}
EVENT_NAMES = {"Event"}
FUNCTION_NAMES = {"NotifyFunction", "KeyNotificationFunction", "PackageNotifyFn"}
ENUMS = {"AllocateType", "MemoryType", "TimerDelay", "SearchType", "ResetType"}


def kind(service: str, name: str, arg) -> str:
    t = arg.name
    if name == "This":
        return "T"
    if t in ENUMS or name in ("NewTpl", "OldTpl", "NotifyTpl"):
        return "K"
    if t == "EFI_GUID *":
        return "G"
    if t == "CHAR16 *":
        return "S"
    if t == "CHAR8 *":
        return "A"
    if t == "UINT64":
        return "Q"
    if t in ("UINT32", "INT32"):
        return "W"
    if t in ("BOOLEAN", "UINT8", "UINT16"):
        return "B"
    if t in ("UINTN", "EFI_STATUS"):
        return "N"
    if name in FUNCTION_NAMES:
        return "F"
    if name in HANDLE_NAMES and (service, name) not in OUT_HANDLE \
            and not (name == "PackageList" and service.startswith("HiiDatabase.")):  # the list itself
        return "H"
    if name in EVENT_NAMES and service not in ("CreateEvent", "CreateEventEx"):
        return "E"
    if "DevicePath" in name or name in ("DeviceNode", "Src1", "Src2", "FilePath", "RemainingDevicePath"):
        return "D"
    return "P"


def scan(fw, address: int, words: int) -> list[tuple[int, str]]:
    """(offset, service) of every word at ``address`` that points at a service's stub."""
    by_stub = {a: n for n, a in fw.stub_address.items()}
    found = []
    for i in range(words):
        value = fw.mem.read_uintn(address + i * fw.width)
        if value in by_stub:
            found.append((i * fw.width, by_stub[value]))
    return found


def tables(arch: str) -> list[tuple[str, bytes | None, list[tuple[int, str]]]]:
    """(table, GUID bytes or None, [(offset, service)]) of one run's firmware."""
    from efistub import guids
    from efistub.layouts import efi
    from efistub.machine import Machine

    with tempfile.TemporaryDirectory() as esp:
        Path(esp, "f.txt").write_bytes(b"fuzz\n")
        machine = Machine(str(HERE / arch / "hello.efi"), esp=esp, initrd=b"initrd")
        machine.run()
        fw = machine.fw
        out = [("BS", None, scan(fw, fw.boot_services, 64)), ("RT", None, scan(fw, fw.runtime_services, 32))]
        seen = set()
        for handle in fw.handles.handles.values():
            for guid, interface in handle.protocols.items():
                if guid in seen or not interface:
                    continue
                seen.add(guid)
                members = scan(fw, interface, 32)
                if members:
                    out.append((guid.name, guid.to_bytes(), members))
        # EFI_FILE_PROTOCOL: OpenVolume makes one per open file; its offsets come from its layout
        marks = {name: 0x5A000001 + i for i, name in enumerate(efi.FILE_PROTOCOL)}
        raw = fw.layout.FileProtocol.build(dict(Revision=efi.FILE_PROTOCOL_REVISION, **marks))
        width = fw.width
        members = [(raw.index(v.to_bytes(width, "little")), f"File.{n}") for n, v in marks.items()]
        out.append(("FILE_PROTOCOL", None, sorted(members)))
        del guids
    return out


def c_guid(raw: bytes) -> str:
    return "{" + ", ".join(f"0x{b:02x}" for b in raw) + "}"


def render() -> str:
    sys.path.insert(0, str(HERE.parents[1]))
    from efistub.catalog import load_all

    registry = load_all()
    wide = tables("x86_64") + [t for t in tables("riscv64") if "RISCV" in t[0]]
    narrow = {(t[0]): t[2] for t in tables("ia32")}
    lines = ["/* Generated by fuzz_table.py from efistub's firmware and registry: do not edit. */",
             "/* The tables: BS and RT, the file protocol (FILE_PROTOCOL), and protocols by GUID. */",
             "static const struct fuzz_table FUZZ_TABLES[] = {"]
    functions = []
    for index, (name, guid, members) in enumerate(wide):
        guid_text = c_guid(guid) if guid else "{0}"
        lines.append(f"    {{L\"{name}\", {1 if guid else 0}, {guid_text}}},  /* {index} */")
        narrow_members = dict((s, o) for o, s in narrow.get(name, []))
        for offset, service in members:
            svc = registry[service]
            kinds = "".join(kind(service, n, a) for n, a in svc.args)
            if svc.varargs is not None:
                kinds += "V"
            functions.append(f"    {{L\"{service}\", {index}, {offset}, {narrow_members.get(service, -1)}, "
                             f"\"{kinds}\", {dict(status=0, value=1, void=2)[svc.returns]}, "
                             f"{1 if svc.implemented else 0}}},")
    lines.append("};")
    lines.append("/* Every function: name, table, offset at 8-byte and 4-byte width (-1: none), argument kinds,")
    lines.append("   returns (0 a status, 1 a value, 2 nothing), implemented. */")
    lines.append("static const struct fuzz_function FUZZ_FUNCTIONS[] = {")
    lines += functions
    lines.append("};")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    HEADER.write_text(render())
    print(f"wrote {HEADER}")
