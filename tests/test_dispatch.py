"""Native (C trampoline) and Python dispatch behave identically; errors in services are never swallowed."""

import re
from pathlib import Path

import pytest

from efistub import native
from efistub.machine import Machine
from efistub.catalog import load_all
from efistub.registry import REGISTRY
from pe_builder import code_image

GUESTS = Path(__file__).parent / "guests" / "x86_64"
needs_native = pytest.mark.skipif(not native.available(), reason=native.UNAVAILABLE or "")


def comparable(report) -> dict:
    d = report.to_dict()
    d.pop("timing")
    d.pop("dispatch")
    d["console"] = re.sub(r"year \d+", "year", d["console"])
    return d


ARCHES = ["x86_64", "aarch64", "riscv64", "ia32"]
# Every guest of ours, and those that stress the boundary: hostile arguments to the C-handled
# services (hostile), port I/O against the TSC (ports), notifications and timers (events),
# ExitBootServices groups (ebs), and a child image through StartImage (image).
KEYS = "axxy"  # what keys.c reads
CASES = [(arch, name) for arch in ARCHES
         for name in ["misc", "memory", "protocols", "variables", "exit", "hostile", "events", "ebs", "image",
                      "textutil", "hii", "keys", "devtext"]]
CASES += [("x86_64", "ports"), ("ia32", "ports")]


@needs_native
@pytest.mark.parametrize("arch, name", CASES)
def test_native_and_python_dispatch_give_the_same_report(name, arch):
    options = {"image": {"initrd": GUESTS.parent / arch / "exit.efi"}, "keys": {"keys": KEYS}}.get(name, {})
    reports = {mode: Machine(str(GUESTS.parent / arch / f"{name}.efi"), dispatch=mode, **options).run()
               for mode in ("native", "python")}
    assert reports["native"].dispatch == "native" and reports["python"].dispatch == "python"
    assert reports["native"].outcome != "error", reports["native"].error
    assert comparable(reports["native"]) == comparable(reports["python"])


@needs_native
@pytest.mark.parametrize("arch", ["x86_64", "ia32"])
def test_port_io_advances_the_same_virtual_time_on_both_paths(arch):
    """1000 x `in al, 0x61` between two RDTSCs: 1 us of virtual time each at 2000 TSC ticks per us,
    plus the 1000 ticks of one TSC read, whichever path dispatches the services."""
    for mode in ("native", "python"):
        report = Machine(str(GUESTS.parent / arch / "ports.efi"), dispatch=mode).run()
        assert "info: 1000 x in 0x61: TSC delta 2001000" in report.console, report.console
        assert "PASS ports: OUT2 went high" in report.console


@needs_native
@pytest.mark.parametrize("arch", ["x86_64", "ia32", "aarch64", "riscv64"])
def test_hostile_sizes_are_bad_pointers_not_errors_on_both_paths(arch):
    """SetMem, CopyMem and CalculateCrc32 of 2^40 (ia32: 0xFFFFF000) bytes, (UINTN)-1 bytes and ranges
    across the top of RAM touch nothing and return with a note, in C and in Python alike."""
    for mode in ("native", "python"):
        report = Machine(str(GUESTS.parent / arch / "hostile.efi"), dispatch=mode).run()
        assert report.outcome == "exit" and report.exit_status == "EFI_SUCCESS", report.error
        notes = [c.note for c in report.calls if c.service in ("SetMem", "CopyMem", "CalculateCrc32") and c.note]
        assert len(notes) >= 10 and all(n.startswith("bad guest pointer: cannot ") for n in notes), notes
        huge = [c for c in report.calls if c.service == "SetMem" and c.args["Size"] >= 0xFFFFF000]
        assert huge and all(c.note for c in huge)


@needs_native
def test_c_handled_calls_are_recorded_in_order_with_notes(tmp_path):
    # CopyMem(dst=0xdead00000000, src=rsp, 16): a wild destination, handled in C
    code = (bytes.fromhex("4883ec28")               # sub rsp, 0x28
            + bytes.fromhex("488b4260")             # mov rax, [rdx+0x60]  BootServices
            + bytes.fromhex("48b900000000adde0000")  # mov rcx, 0xdead00000000
            + bytes.fromhex("4889e2")               # mov rdx, rsp
            + bytes.fromhex("41b810000000")         # mov r8d, 16
            + bytes.fromhex("ff90600100004883c428c3"))  # call [rax+0x160] CopyMem; add rsp,0x28; ret
    path = tmp_path / "copy.efi"
    path.write_bytes(code_image(code))
    reports = [Machine(str(path), dispatch=mode).run() for mode in ("native", "python")]
    for r in reports:
        assert r.outcome == "exit"
        (call,) = r.calls
        assert call.service == "CopyMem" and call.args["Length"] == 16
        assert call.note == "bad guest pointer: cannot write 16 bytes at 0xdead00000000"
    assert comparable(reports[0]) == comparable(reports[1])


@pytest.mark.parametrize("mode", ["native", "python"])
def test_an_exception_in_a_service_ends_the_run_with_error(monkeypatch, mode):
    if mode == "native" and not native.available():
        pytest.skip(native.UNAVAILABLE)
    load_all()
    original = REGISTRY["TextOutput.OutputString"]

    def broken(fw, this, string):
        raise ZeroDivisionError("service bug")

    monkeypatch.setitem(REGISTRY, "TextOutput.OutputString", original.__class__(
        original.name, broken, original.args, original.varargs, original.boot, original.returns))
    report = Machine(str(GUESTS / "hello.efi"), dispatch=mode).run()
    assert report.outcome == "error"
    assert report.error["error"] == "ZeroDivisionError: service bug"
    assert "ZeroDivisionError" in report.error["traceback"]
    assert report.calls[-1].service == "TextOutput.OutputString"


@needs_native
def test_one_libunicorn_in_the_process():
    Machine(str(GUESTS / "hello.efi"), dispatch="native").run()
    with open("/proc/self/maps") as f:
        libraries = {line.split()[-1] for line in f if "libunicorn" in line}
    assert len(libraries) == 1, libraries
