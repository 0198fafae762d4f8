"""Our own guest programs (tests/guests/*.c) check each service's contract from inside the guest.

Each prints PASS/FAIL lines and "DONE <n> failures", and returns EFI_SUCCESS only when
every check passed. The same programs pass on QEMU + OVMF (tests/guests/README.md).
"""

import re
from pathlib import Path

import pytest

from efistub.machine import Machine

GUESTS = Path(__file__).parent / "guests"
CONTRACT_PROGRAMS = ["memory", "protocols", "misc", "variables", "reloc", "textutil", "hii", "devtext"]
ARCHES = ["x86_64", "aarch64", "riscv64", "ia32"]


def run(name: str, arch: str = "x86_64", **options):
    return Machine(str(GUESTS / arch / f"{name}.efi"), **options).run()


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("name", CONTRACT_PROGRAMS)
def test_contract_program_passes(name, arch):
    report = run(name, arch)
    assert report.arch == arch
    failures = [line for line in report.console.splitlines() if line.startswith("FAIL")]
    assert failures == []
    passes = [line for line in report.console.splitlines() if line.startswith("PASS")]
    assert len(passes) >= 5
    assert re.search(r"^DONE 0 failures", report.console, re.M)
    assert report.outcome == "exit" and report.exit_status == "EFI_SUCCESS"
    assert report.unimplemented == []


@pytest.mark.parametrize("arch", ARCHES)
def test_hello_prints_and_exits(arch):
    report = run("hello", arch)
    assert report.console == "Hello from efistub guest\r\n"
    assert report.outcome == "exit" and report.exit_status == "EFI_SUCCESS"
    assert [c.service for c in report.calls] == ["TextOutput.OutputString"]


@pytest.mark.parametrize("arch", ARCHES)
def test_exit_reports_status_and_exit_data(arch):
    report = run("exit", arch)
    assert report.outcome == "exit"
    assert report.exit_status == "EFI_INVALID_PARAMETER"
    assert report.exit_data == "exit-data-marker"
    assert report.calls[-1].service == "Exit"
    assert "FAIL" not in report.console


def test_relocated_program_is_moved_from_its_preferred_base():
    report = run("reloc")
    assert report.image_info["has_relocations"] and report.image_info["load_address"] != report.image_info["image_base"]


def test_same_inputs_give_identical_reports():
    first, second = (run("misc", seed=7).to_dict() for _ in range(2))
    for r in (first, second):
        r.pop("timing")
        # GetTime reads the host clock: its output is the one thing allowed to differ
        r["console"] = re.sub(r"year \d+", "year", r["console"])
    assert first == second


@pytest.mark.parametrize("arch", ARCHES)
def test_jump_to_loaded_code_after_exit_boot_services_is_a_handoff(arch):
    """handoff.c: ExitBootServices, then (AArch64: MMU and D-cache off first) a jump to code it placed."""
    report = run("handoff", arch)
    assert report.outcome == "handoff"
    assert report.calls[-1].service == "ExitBootServices" and report.calls[-1].status == "EFI_SUCCESS"
    allocated = [c for c in report.calls if c.service == "AllocatePages"]
    assert allocated and allocated[0].args["MemoryType"] == "EfiLoaderCode"
    base, size = report.image_info["load_address"], report.image_info["size"]
    assert not base <= report.handoff["entry"] < base + size
    first_argument = {"aarch64": "x0", "riscv64": "a0"}.get(arch)
    if first_argument:
        assert report.handoff["registers"][first_argument] == 0xEF15700B



def test_ia32_handoff_passes_the_marker_in_eax_and_as_the_first_cdecl_argument():
    from unicorn.x86_const import UC_X86_REG_EAX, UC_X86_REG_ESP

    machine = Machine(str(GUESTS / "ia32" / "handoff.efi"))
    report = machine.run()
    assert report.outcome == "handoff" and report.arch == "ia32"
    assert machine.uc.reg_read(UC_X86_REG_EAX) == 0xEF15700B
    assert machine.fw.mem.read_u32(machine.uc.reg_read(UC_X86_REG_ESP) + 4) == 0xEF15700B


@pytest.mark.parametrize("arch", ARCHES)
def test_textutil_case_table_and_fat_names_are_edk2s_unsigned_ones(arch):
    """textutil.c's info lines: EDK2's case table maps Latin-1 letters but not U+00FF, U+00DF or
    U+0101, and FatToStr widens an OEM byte as unsigned (as AAVMF does; x86 OVMF, built by GCC with
    a signed CHAR8, gives 0xFFxx for each of them from 0x80 to 0xFF, see tests/guests/README.md)."""
    report = run("textutil", arch)
    assert "  info:   gives: 00c9 00ff 00df 00c0 0101\r\n" in report.console
    assert "  info: StrLwr of the same gives: 00e9 00ff 00df 00e0 0101\r\n" in report.console
    assert "  info: FatToStr of 41 e9: 0041 00e9\r\n" in report.console
    services = {c.service for c in report.calls}
    assert {f"UnicodeCollation.{m}" for m in ("StriColl", "MetaiMatch", "StrLwr", "StrUpr", "FatToStr",
                                               "StrToFat")} <= services
    assert {f"DevicePathUtilities.{m}" for m in ("GetDevicePathSize", "DuplicateDevicePath", "AppendDevicePath",
                                                  "AppendDeviceNode", "AppendDevicePathInstance",
                                                  "GetNextDevicePathInstance", "IsDevicePathMultiInstance",
                                                  "CreateDeviceNode")} <= services


@pytest.mark.parametrize("arch", ARCHES)
def test_simple_text_input_ex_reads_the_keys_and_runs_key_notifications(arch):
    """keys.c with the keys it expects: a notification registered for 'x' runs before the read that
    returns it, not for 'a', not after UnregisterKeyNotify, and not for Ctrl+x (no shift state)."""
    report = run("keys", arch, keys="axxy")
    assert [line for line in report.console.splitlines() if line.startswith("FAIL")] == []
    assert "DONE 0 failures" in report.console
    notify_calls = [c for c in report.calls if c.service == "TextInputEx.ReadKeyStrokeEx"]
    assert len(notify_calls) == 5  # a, x, x, then NOT_READY and NULL


def test_keys_without_keys_stalls_at_wait_for_key_ex():
    """The same program with no --keys: WaitForEvent(WaitForKeyEx) waits for a key that never comes."""
    report = run("keys", "x86_64")
    assert report.outcome == "stalled" and "key press" in report.stalled["reason"]


@pytest.mark.parametrize("arch", ARCHES)
def test_devtext_refuses_text_that_does_not_read(arch):
    """devtext.c's info lines: efistub gives NULL for unbalanced parentheses and a number too large for its
    field, where EDK2 reads them anyway (OVMF: a path of PciRoot(0x0) alone, and Pci(0xFF,0x0); see
    tests/guests/README.md), and its own image's path is efistub's boot device and file."""
    report = run("devtext", arch)
    assert '  info: ConvertTextToDevicePath("PciRoot(0x0)/Pci(0x1F,0x2"): NULL\r\n' in report.console
    assert '  info: ConvertTextToDeviceNode("Pci(0x100000000000000000000,0x0)"): NULL\r\n' in report.console
    assert '  info: our LOADED_IMAGE_DEVICE_PATH: "VenHw(6F0F8A1C-5B7E-4B1E-9A43-65666973747A)/\\devtext.efi"' \
        in report.console
    services = {c.service for c in report.calls}
    assert {"DevicePathToText.ConvertDeviceNodeToText", "DevicePathToText.ConvertDevicePathToText",
            "DevicePathFromText.ConvertTextToDeviceNode", "DevicePathFromText.ConvertTextToDevicePath"} <= services
