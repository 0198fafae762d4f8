"""tests/guests/files.c: SIMPLE_FILE_SYSTEM and EFI_FILE_PROTOCOL on the volume the program was loaded from,
read-only and writable, on every architecture. Its expectations are those of EDK2's FAT driver (OVMF)."""

import re
import shutil
from pathlib import Path

import pytest

from efistub.machine import Machine

GUESTS = Path(__file__).parent / "guests"
BOOT_FILES = {"x86_64": "BOOTX64.EFI", "aarch64": "BOOTAA64.EFI", "riscv64": "BOOTRISCV64.EFI", "ia32": "BOOTIA32.EFI"}


def files_esp(folder: Path, arch: str) -> Path:
    """The layout files.c expects (tests/guests/make-files-esp.sh makes the same)."""
    (folder / "EFI" / "BOOT").mkdir(parents=True)
    (folder / "files" / "sub").mkdir(parents=True)
    shutil.copy(GUESTS / arch / "files.efi", folder / "EFI" / "BOOT" / BOOT_FILES[arch])
    (folder / "files" / "hello.txt").write_bytes(b"hello, efi\n")
    (folder / "files" / "Mixed Case Name.TXT").write_bytes(bytes(i & 0xFF for i in range(4096)))
    shutil.copy(GUESTS / arch / "exit.efi", folder / "files" / "child.efi")
    return folder


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("writable", [False, True], ids=["read-only", "writable"])
@pytest.mark.parametrize("arch", sorted(BOOT_FILES))
def test_file_protocol_contract(tmp_path, arch, writable):
    esp = files_esp(tmp_path / "esp", arch)
    before = snapshot(esp)
    boot = "\\EFI\\BOOT\\" + BOOT_FILES[arch]
    report = Machine(str(esp / "EFI" / "BOOT" / BOOT_FILES[arch]), esp=str(esp), esp_writable=writable,
                     boot_path=boot).run()
    failures = [line for line in report.console.splitlines() if line.startswith("FAIL")]
    assert failures == [], report.console
    assert re.search(r"^DONE 0 failures", report.console, re.M)
    assert report.outcome == "exit" and report.exit_status == "EFI_SUCCESS"
    mode = "writable" if writable else "read-only"
    assert f"info: volume is {mode}" in report.console
    assert len([line for line in report.console.splitlines() if line.startswith("PASS")]) >= (120 if writable else 90)
    assert snapshot(esp) == before  # a writable run removes what it made; a read-only one touches nothing
    # the child it loaded by device path is in the chain, from \files\child.efi
    assert any(i["source"] == "\\files\\child.efi" and i["outcome"] == "exit" for i in report.images)
