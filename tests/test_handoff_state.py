"""--save-handoff: the saved folder holds the state the kernel is entered with, and a changed one is refused."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import corpus_file
from efistub.errors import InputError
from efistub.handoff_state import MANIFEST, load, save
from efistub.machine import Machine

GUESTS = Path(__file__).parent / "guests"
MARKER = 0xEF15700B  # what handoff.c passes to the code it jumps to


def saved(tmp_path, arch="x86_64"):
    machine = Machine(str(GUESTS / arch / "handoff.efi"))
    report = machine.run()
    assert report.outcome == "handoff"
    folder = tmp_path / "state"
    manifest = save(machine.platform, report, folder)
    return machine, report, folder, manifest


def segment_bytes(folder: Path, manifest: dict, address: int, size: int) -> bytes:
    for seg in manifest["segments"]:
        if seg["start"] <= address and address + size <= seg["start"] + seg["size"]:
            data = (folder / seg["file"]).read_bytes()
            return data[address - seg["start"]:address - seg["start"] + size]
    raise AssertionError(f"0x{address:x} is in no saved segment")


@pytest.mark.parametrize("arch, marker_register", [("x86_64", "rcx"), ("aarch64", "x0"), ("riscv64", "a0")])
def test_the_saved_state_is_the_cpu_and_ram_at_the_handoff(tmp_path, arch, marker_register):
    machine, report, folder, manifest = saved(tmp_path, arch)
    assert manifest["format"] == "efistub-handoff" and manifest["arch"] == arch
    assert manifest["entry"] == report.handoff["entry"] == manifest["cpu"]["rip" if arch == "x86_64" else "pc"]
    assert manifest["cpu"][marker_register] == MARKER
    assert manifest["platform"] == report.platform
    # the code handoff.c jumped to is in a saved segment, byte for byte
    assert segment_bytes(folder, manifest, manifest["entry"], 4) == machine.fw.mem.read(manifest["entry"], 4)
    for seg in manifest["segments"]:
        data = (folder / seg["file"]).read_bytes()
        assert len(data) == seg["size"] and hashlib.sha256(data).hexdigest() == seg["sha256"]
        assert data == machine.fw.mem.read(seg["start"], seg["size"])
        assert "EfiConventionalMemory" not in seg["types"]
    assert load(folder).manifest == manifest


def test_x86_64_saves_paging_and_a_gdt_like_ovmfs(tmp_path):
    machine, _, folder, manifest = saved(tmp_path)
    cpu = manifest["cpu"]
    assert cpu["cr0"] == 0x80010033 and cpu["cs"] == 0x08 and cpu["ss"] == 0x10 and cpu["efer"] & 0x500 == 0x500
    # the page tables CR3 points at are saved, and identity-map the entry
    pml4 = int.from_bytes(segment_bytes(folder, manifest, cpu["cr3"], 8), "little")
    assert pml4 & 1
    gdt = segment_bytes(folder, manifest, cpu["gdtr_base"], cpu["gdtr_limit"] + 1)
    assert gdt[8:16] == bytes.fromhex("ffff0000009aaf00")  # the 64-bit code segment at selector 0x08


def flip_last_byte(path):
    """The same size, one bit of the last byte changed: only the SHA-256 can tell."""
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(data)


@pytest.mark.parametrize("change, problem", [
    (lambda folder, m: (folder / m["segments"][0]["file"]).write_bytes(b"x"), "does not match its size and SHA-256"),
    (lambda folder, m: flip_last_byte(folder / m["segments"][-1]["file"]), "does not match its size and SHA-256"),
    (lambda folder, m: (folder / m["segments"][0]["file"]).unlink(), "missing or unreadable segment"),
    (lambda folder, m: (folder / MANIFEST).write_text(json.dumps({**m, "version": 99})), "version 99"),
    (lambda folder, m: (folder / MANIFEST).write_text(json.dumps({**m, "format": "x"})), "is not an efistub-handoff"),
    (lambda folder, m: (folder / MANIFEST).write_text("{"), "cannot read the manifest"),
    (lambda folder, m: (folder / MANIFEST).unlink(), "no manifest.json"),
    (lambda folder, m: (folder / MANIFEST).write_text(json.dumps(
        {**m, "segments": [{**m["segments"][0], "file": "../x.bin"}]})), "not a plain name"),
], ids=["tampered", "same-size", "missing-segment", "version", "format", "broken-json", "no-manifest", "escaping-name"])
def test_a_changed_folder_is_refused(tmp_path, change, problem):
    _, _, folder, manifest = saved(tmp_path)
    change(folder, manifest)
    with pytest.raises(InputError, match=problem):
        load(folder)
    result = subprocess.run([sys.executable, "-m", "efistub", "resume", str(folder)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1 and problem.split()[0] in result.stderr


def test_save_refuses_a_folder_that_is_not_empty(tmp_path):
    machine = Machine(str(GUESTS / "x86_64" / "handoff.efi"))
    report = machine.run()
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "other").write_text("x")
    with pytest.raises(InputError, match="not an empty folder"):
        save(machine.platform, report, tmp_path / "state")


def test_a_run_that_does_not_hand_off_saves_nothing(tmp_path):
    folder = tmp_path / "state"
    result = subprocess.run([sys.executable, "-m", "efistub", "run", str(GUESTS / "x86_64" / "hello.efi"),
                             "--save-handoff", str(folder)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1  # hello returns EFI_SUCCESS, but there is nothing to save
    assert "nothing saved: the run ended with outcome exit" in result.stderr
    assert not folder.exists()


def test_the_612_kernel_saves_its_initrd_and_command_line(corpus, tmp_path):
    kernel = corpus_file(corpus, "x86_64/vmlinuz-6.12.117+deb13-amd64")
    initrd = corpus_file(corpus, "initrd/initrd-busybox.cpio.gz").read_bytes()
    machine = Machine(str(kernel), initrd=initrd, cmdline="console=ttyS0 efi=noruntime rdinit=/init")
    report = machine.run()
    assert report.outcome == "handoff"
    folder = tmp_path / "state"
    manifest = save(machine.platform, report, folder)
    boot = manifest["boot"]
    assert boot["kind"] == "linux-x86-boot-params" and boot["boot_params"] == manifest["cpu"]["rsi"]
    assert boot["cmdline"] == "console=ttyS0 efi=noruntime rdinit=/init"
    assert boot["initrd"]["size"] == len(initrd)
    assert segment_bytes(folder, manifest, boot["initrd"]["start"], len(initrd)) == initrd
    entry = manifest["entry"]  # the kernel lies in memory the map hands to the loader
    assert any(d["start"] <= entry < d["start"] + d["pages"] * 4096 and d["type"] in ("EfiLoaderCode", "EfiLoaderData")
               for d in manifest["memory_map"])
