"""Our own guest programs (tests/guests/*.c) check each service's contract from inside the guest.

Each prints PASS/FAIL lines and "DONE <n> failures", and returns EFI_SUCCESS only when
every check passed. The same programs pass on QEMU + OVMF (tests/guests/README.md).
"""

import re
from pathlib import Path

import pytest

from efistub.firmware import Options
from efistub.machine import Machine

GUESTS = Path(__file__).parent / "guests" / "x86_64"
CONTRACT_PROGRAMS = ["memory", "protocols", "misc", "variables", "reloc"]


def run(name: str, **options):
    return Machine(str(GUESTS / f"{name}.efi"), Options(**options)).run()


@pytest.mark.parametrize("name", CONTRACT_PROGRAMS)
def test_contract_program_passes(name):
    report = run(name)
    failures = [line for line in report.console.splitlines() if line.startswith("FAIL")]
    assert failures == []
    passes = [line for line in report.console.splitlines() if line.startswith("PASS")]
    assert len(passes) >= 5
    assert re.search(r"^DONE 0 failures", report.console, re.M)
    assert report.outcome == "exit" and report.exit_status == "EFI_SUCCESS"
    assert report.unimplemented == []


def test_hello_prints_and_exits():
    report = run("hello")
    assert report.console == "Hello from efistub guest\r\n"
    assert report.outcome == "exit" and report.exit_status == "EFI_SUCCESS"
    assert [c.service for c in report.calls] == ["TextOutput.OutputString"]


def test_exit_reports_status_and_exit_data():
    report = run("exit")
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
