"""The soak's invariants, small (benchmarks/soak.py makes 1,000 runs; docs/reliability.md): runs
in one process through the API leave no thread, file descriptor, temporary file, engine or
native trampoline behind, and each run's trampoline gives back what C allocated."""

import gc
import os
import shutil
import tempfile
import threading
from pathlib import Path

import unicorn

from efistub import native
from efistub.machine import Machine

GUESTS = Path(__file__).parent / "guests"
WARMUP, RUNS = 5, 25


def counted(init, made: list):
    def wrapper(self, *args, **kwargs):
        made.append(1)
        return init(self, *args, **kwargs)

    return wrapper


def live(kind) -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, kind))


def settle() -> None:
    """Wait for the runs' watchdog timers, all cancelled or fired, to end (a timer's thread
    ends just after its run), then collect: a finished run is a cycle of objects, and its engine
    and files go with it."""
    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer):
            assert thread.finished.is_set(), "a run left its watchdog running"
            thread.join()
    gc.collect()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0


class CountingLib:
    """The trampoline's cffi lib, counting the calls of efistub_release."""

    def __init__(self, lib):
        self._lib, self.released = lib, 0

    def __getattr__(self, name):
        return getattr(self._lib, name)

    def efistub_release(self, t):
        self.released += 1
        return self._lib.efistub_release(t)


def test_runs_leave_nothing_behind(tmp_path, monkeypatch):
    esp = tmp_path / "esp"
    (esp / "EFI" / "BOOT").mkdir(parents=True)
    shutil.copy(GUESTS / "x86_64" / "hello.efi", esp / "EFI" / "BOOT" / "BOOTX64.EFI")
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # each run builds the ESP's disk image in a temporary file
    counting = CountingLib(native.lib) if native.lib is not None else None
    if counting is not None:
        monkeypatch.setattr(native, "lib", counting)
    made = []
    monkeypatch.setattr(native.NativeDispatch, "__init__", counted(native.NativeDispatch.__init__, made))

    def run():
        report = Machine(str(esp / "EFI" / "BOOT" / "BOOTX64.EFI"), esp=str(esp),
                         boot_path="\\EFI\\BOOT\\BOOTX64.EFI").run()
        assert report.outcome == "exit" and report.exit_status == "EFI_SUCCESS"

    for _ in range(WARMUP):
        run()
    settle()
    threads, fds = threading.active_count(), open_fds()
    for _ in range(RUNS):
        run()
    settle()
    assert threading.active_count() == threads
    # Now and then the last run outlives a collection (until the next run or collection): at
    # most its ESP image's descriptor, its engine and its trampoline stay, never one per run
    assert open_fds() - fds <= 1
    assert os.listdir(temp) == []
    assert live(Machine) <= 1 and live(native.NativeDispatch) <= 1 and live(unicorn.Uc) <= 1
    if made:  # native dispatch: every trampoline but the last one's has given its C buffers back
        assert counting.released >= len(made) - 1
