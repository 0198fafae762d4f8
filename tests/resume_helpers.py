"""What the efistub resume tests of every architecture share (tests/test_resume.py, tests/test_resume_fdt.py):
the CLI in a subprocess, handoff.efi's hand-off saved, edited copies of a saved manifest, QEMU's monitor at the
saved entry, and a saved kernel resumed to the busybox initrd's /init."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from efistub import resume
from efistub.handoff_state import MANIFEST, save
from efistub.machine import Machine

GUESTS = Path(__file__).parent / "guests"
TRAMPOLINES = Path(resume.__file__).parent / "trampolines"  # the packaged resume trampolines and their sources
HANDOFF_MARKER = 0xEF15700B  # handoff.efi passes it in its first argument register to the loop it hands off to
INIT_MARKER = "EFI-CORPUS-INITRD: busybox init reached"
REGISTER_WAIT = 60.0  # seconds QEMU may take to reach the entry (TCG, a loaded CI machine)
BOOT_TIMEOUT = 300  # seconds a saved kernel may take to reach /init in QEMU
HMP_PROMPT = b"(qemu) "


def efistub(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "efistub", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def one_line_error(result, fragment):
    """The CLI failed with exit 2 and one line that says ``fragment``."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("efistub: error: ") and "Traceback" not in result.stderr
    assert fragment in lines[0], lines[0]


def rebuilt_trampoline(arch: str, tmp_path: Path) -> bytes:
    """The resume trampoline of ``arch``, built again from its source by a copy of its build.sh (skips without
    clang and llvm-objcopy)."""
    if not (shutil.which("clang") and shutil.which("llvm-objcopy")):
        pytest.skip("clang and llvm-objcopy are not installed (apt-get install clang llvm)")
    copy = tmp_path / "trampolines"
    copy.mkdir()
    for name in ("build.sh", f"{arch}.S"):
        shutil.copy2(TRAMPOLINES / name, copy / name)
    subprocess.run(["bash", str(copy / "build.sh"), arch], check=True, capture_output=True, timeout=120)
    return (copy / f"{arch}.bin").read_bytes()


def save_handoff(arch: str, folder: Path) -> Path:
    """handoff.efi's hand-off on ``arch``, saved in ``folder``."""
    machine = Machine(str(GUESTS / arch / "handoff.efi"))
    report = machine.run()
    assert report.outcome == "handoff"
    save(machine.platform, report, folder)
    return folder


def changed(folder: Path, tmp_path: Path, change) -> Path:
    """A copy of the saved folder whose manifest ``change(manifest)`` edited."""
    copy = tmp_path / "changed"
    shutil.copytree(folder, copy)
    manifest = json.loads((copy / MANIFEST).read_text())
    change(manifest)
    (copy / MANIFEST).write_text(json.dumps(manifest))
    return copy


def set_field(path: str, value):
    """A change for ``changed``: the manifest's field at the dotted ``path`` becomes ``value``."""
    def change(manifest):
        *parents, key = path.split(".")
        target = manifest
        for parent in parents:
            target = target[parent]
        target[key] = value
    return change


def hmp(sock, command: bytes) -> str:
    """One command to QEMU's human monitor, and its answer up to the next prompt."""
    sock.sendall(command + b"\n")
    out = b""
    while not out.endswith(HMP_PROMPT):
        chunk = sock.recv(65536)
        assert chunk, "QEMU closed its monitor"
        out += chunk
    return out.decode(errors="replace")


def at_entry(argv: list[str], monitor: Path, entry: int, pc_text: str, memory=()) -> tuple[str, dict]:
    """QEMU's `info registers` once the guest sits at ``entry`` (handoff.efi's loop: ``pc_text.format(entry)``
    is in the text), and the 8 bytes at each address of ``memory`` then."""
    argv = list(argv)
    argv[argv.index("-monitor") + 1] = f"unix:{monitor},server=on,wait=off"
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + REGISTER_WAIT
        while not monitor.exists():
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "QEMU did not open its monitor"
            time.sleep(0.05)
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(monitor))
            hmp(sock, b"")
            while True:
                text = hmp(sock, b"info registers")
                if pc_text.format(entry) in text:
                    break
                assert time.monotonic() < deadline, f"the guest did not reach the entry 0x{entry:x}:\n{text}"
                time.sleep(0.05)
            # Read while the CPU runs, the registers may be torn (a PSTATE without the carry the ERET to the
            # entry restored was seen once on a busy machine): stop it, and read them again, whole.
            hmp(sock, b"stop")
            text = hmp(sock, b"info registers")
            assert pc_text.format(entry) in text, f"the guest left its loop at the entry 0x{entry:x}:\n{text}"
            words = {}
            for address in memory:
                out = hmp(sock, f"xp /1gx 0x{address:x}".encode())
                words[address] = int(re.search(r": (0x[0-9a-f]+)", out).group(1), 16)
            return text, words
    finally:
        process.kill()
        process.wait()
        process.stderr.close()


def save_kernel_handoff(folder: Path, image: Path, initrd: Path, cmdline: str, *options) -> dict:
    """``efistub run`` of a kernel with ``initrd`` and ``cmdline`` saves its hand-off in ``folder``: the manifest."""
    run = efistub("run", image, "--initrd", initrd, "--cmdline", cmdline, *options, "--save-handoff", folder)
    assert run.returncode == 0 and "hand-off saved in" in run.stderr, run.stderr
    return json.loads((folder / MANIFEST).read_text())


def resume_to_init(folder: Path, cmdline: str) -> str:
    """``efistub resume`` of a saved kernel boots to the initrd's /init with ``cmdline``: QEMU's console."""
    cmdline_line = f"cmdline: {cmdline}"
    booted = efistub("resume", folder, "--until", cmdline_line + "\r\n", "--timeout", BOOT_TIMEOUT,
                     timeout=BOOT_TIMEOUT + 60)
    assert booted.returncode == 0, booted.stdout[-3000:] + booted.stderr
    lines = booted.stdout.splitlines()
    assert any(line.startswith(INIT_MARKER) for line in lines)
    assert cmdline_line in lines  # the kernel found the command line where the stub put it
    assert f"Kernel command line: {cmdline}" in booted.stdout
    return booted.stdout
