"""efistub resume: boot a saved hand-off (efistub.handoff_state) in QEMU, without firmware.

Each architecture has a module here whose ``qemu_arguments(state, workdir)`` gives the QEMU
command line that loads the saved segments into a machine of the saved board and starts
a tiny trampoline of ours (in trampolines/, built by build.sh with the guest toolchain),
which puts the CPU into the saved state and jumps to the saved entry. This module runs
QEMU, passes the guest's console through and decides the outcome: the --until text seen
(exit 0), or the timeout or QEMU's exit first (exit 1).
"""

from __future__ import annotations

import importlib
import os
import selectors
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass

from ..errors import InputError
from ..handoff_state import load

PACKAGES = {"x86_64": "qemu-system-x86", "aarch64": "qemu-system-arm", "riscv64": "qemu-system-misc"}
BINARIES = {"x86_64": "qemu-system-x86_64", "aarch64": "qemu-system-aarch64", "riscv64": "qemu-system-riscv64"}
READ_SIZE = 4096


@dataclass
class Outcome:
    found: bool  # the --until text appeared
    reason: str  # why QEMU was stopped (or stopped by itself)
    console: str
    seconds: float


def qemu_binary(arch: str) -> str:
    binary = shutil.which(BINARIES[arch])
    if binary is None:
        raise InputError(BINARIES[arch], f"not found: install it with apt-get install {PACKAGES[arch]}")
    return binary


def command(state, workdir: str) -> list[str]:
    """The QEMU command line that boots ``state``."""
    if state.arch not in BINARIES:
        raise InputError(str(state.folder), f"a hand-off of {state.arch}: efistub resume boots x86_64, aarch64 "
                                            "and riscv64 ones")
    module = importlib.import_module(f"{__name__}.{state.arch}")
    return [qemu_binary(state.arch)] + module.qemu_arguments(state, workdir)


def resume(folder, until: str | None = None, timeout: float = 60.0, console=None) -> Outcome:
    """Boot the hand-off saved in ``folder``; ``console(text)`` gets the guest's output as it comes."""
    state = load(folder)
    with tempfile.TemporaryDirectory(prefix="efistub-resume-") as workdir:
        argv = command(state, workdir)
        return run_qemu(argv, until, timeout, console)


def run_qemu(argv: list[str], until: str | None, timeout: float, console=None) -> Outcome:
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seen = bytearray()
    marker = until.encode() if until is not None else None
    reason = "QEMU exited"
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            while True:
                left = started + timeout - time.perf_counter()
                if left <= 0:
                    reason = f"timeout after {timeout:g} s"
                    break
                if not selector.select(left):
                    continue
                chunk = os.read(process.stdout.fileno(), READ_SIZE)
                if not chunk:
                    break
                seen += chunk
                if console is not None:
                    console(chunk.decode("utf-8", errors="replace"))
                if marker is not None and marker in seen[-(len(chunk) + len(marker) - 1):]:  # the new text
                    reason = f"{until!r} seen"
                    break
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        process.stdout.close()
    text = seen.decode("utf-8", errors="replace")
    return Outcome(until is not None and until in text, reason, text, time.perf_counter() - started)
