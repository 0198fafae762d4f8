"""Fuzzing the services from the guest (issue 15): tests/guests/fuzz.c calls every boot service,
runtime service and protocol function efistub puts in a table with hostile arguments, seeded.

A campaign runs fuzz.efi for a seed from call 0; a run that ends before its last call (a fault,
a stall, a timeout: by design when a function that returns no status gets a wild pointer, or a
notification function cannot run) is followed by a run from the next call, with the same
draws. Every run must end as a clear outcome: no report whose outcome is "error", no Python
traceback anywhere in a report, every status one the specification lists for the function
(efistub/spec_statuses.py), a success or warning, EFI_UNSUPPORTED from what efistub does not
implement, or EFI_INVALID_PARAMETER for a bad pointer (the dispatcher's documented answer, with
its note); the host's memory bounded; and the same lines and outcomes on native and Python
dispatch. CI runs a few seeds per architecture; EFISTUB_FUZZ_SERVICE_SEEDS=N runs N seeds each
(and EFISTUB_FUZZ_SERVICE_CALLS calls per seed):

    EFISTUB_FUZZ_SERVICE_SEEDS=200 EFISTUB_CORPUS=../shared/corpus python3 -m pytest -q tests/test_fuzz_services.py
"""

from __future__ import annotations

import gc
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from efistub import native
from efistub.catalog import load_all
from efistub.machine import Machine
from efistub.spec_statuses import spec_statuses
from efistub.status import Status

GUESTS = Path(__file__).parent / "guests"
ARCHES = ["x86_64", "aarch64", "riscv64", "ia32"]
SEEDS = int(os.environ.get("EFISTUB_FUZZ_SERVICE_SEEDS", "0"))
CALLS = int(os.environ.get("EFISTUB_FUZZ_SERVICE_CALLS", "120"))

TIMEOUT = 10.0  # seconds of wall time per run; a run of 120 calls takes well under one
CALL = re.compile(r"^~C (\d+|end) ([\w.]+)\((.*)\)$")
RESULT = re.compile(r"^~R (\d+|end) (status|value) (0x[0-9a-f]+)$|^~R (\d+|end) returned$")
needs_native = pytest.mark.skipif(not native.available(), reason=native.UNAVAILABLE or "")

# What a status check allows beyond the specification's table: EFI_INVALID_PARAMETER, which
# EDK2 gives for a bad event or handle where the table lists only EFI_SUCCESS (CloseEvent,
# SignalEvent) and the dispatcher gives for every unreadable argument (docs/architecture.md);
# and what EDK2 gives beyond the table, where efistub follows EDK2:
ALWAYS = {Status.EFI_SUCCESS, Status.EFI_INVALID_PARAMETER}
EDK2 = {
    # ConSplitter's SetAttribute: an attribute above 0x7F is EFI_UNSUPPORTED (the table: DEVICE_ERROR only)
    "TextOutput.SetAttribute": {Status.EFI_UNSUPPORTED},
}


@dataclass
class Call:
    index: str
    function: str
    arguments: str
    kind: str | None = None  # "status", "value", "returned", or None: the run ended in it
    value: int | None = None


@dataclass
class Segment:
    start: int
    outcome: str
    reason: str
    calls: list[Call] = field(default_factory=list)
    report: dict = field(default_factory=dict)


def parse(console: str) -> list[Call]:
    calls: list[Call] = []
    for line in console.replace("\r", "").split("\n"):
        m = CALL.match(line)
        if m:
            calls.append(Call(m.group(1), m.group(2), m.group(3)))
            continue
        m = RESULT.match(line)
        if m and calls:
            index = m.group(1) or m.group(4)
            if calls[-1].index == index and calls[-1].kind is None:
                calls[-1].kind = m.group(2) or "returned"
                calls[-1].value = int(m.group(3), 16) if m.group(3) else None
    return calls


def run_once(arch: str, seed: int, start: int, count: int, end: int, dispatch: str | None, esp: Path) -> Segment:
    with tempfile.TemporaryDirectory(dir=esp) as folder:  # a fresh writable ESP for every run
        root = Path(folder)
        (root / "f.txt").write_bytes(b"fuzz\n")
        (root / "dir").mkdir()
        report = Machine(str(GUESTS / arch / "fuzz.efi"), cmdline=f"{seed} {start} {count} {end}",
                         esp=str(root), esp_writable=True, dispatch=dispatch, timeout=TIMEOUT,
                         initrd=str(GUESTS / arch / "exit.efi")).run()  # the child fuzz.c loads and starts
    data, outcome, console = report.to_dict(), report.outcome, report.console
    del report
    gc.collect()  # a finished run is a cycle that holds its guest RAM: free it before the next run
    reason = ""
    for key in ("fault", "stalled", "timeout", "error"):
        if data.get(key):
            reason = json.dumps(data[key])[:400]
    return Segment(start, outcome, reason, parse(console), data)


def campaign(arch: str, seed: int, calls: int, dispatch: str | None, esp: Path, end: int = 0) -> list[Segment]:
    """Calls 0..calls-1 of seed, then the END case, in as many runs as it takes."""
    segments = []
    start = 0
    while start < calls or end and not any(c.index in ("end", str(calls)) for c in segments[-1].calls):
        segment = run_once(arch, seed, start, calls - start, end, dispatch, esp)
        segments.append(segment)
        numbered = [int(c.index) for c in segment.calls if c.index != "end"]
        if segment.outcome == "exit" or not numbered or start >= calls:
            break
        start = numbered[-1] + 1 if numbered else calls
    return segments


def problems(segments: list[Segment]) -> list[str]:
    """What a campaign's runs did wrong."""
    registry = load_all()
    found = []
    for segment in segments:
        text = json.dumps(segment.report)
        where = f"run from call {segment.start}"
        if segment.outcome == "error":
            found.append(f"{where}: outcome error: {segment.reason}")
        if "Traceback" in text:
            found.append(f"{where}: a Python traceback in the report")
        if not segment.calls and segment.outcome != "exit":
            found.append(f"{where}: ended as {segment.outcome} before its first call: {segment.reason}")
        if segment.outcome == "timeout":
            found.append(f"{where}: timeout in {segment.calls[-1].function if segment.calls else '?'}: "
                         f"{segment.reason}")
        for call in segment.calls:
            if call.kind != "status":
                continue
            status = call.value
            service = registry.get(call.function)
            if service is None:
                found.append(f"{where}: call {call.index}: {call.function} is not in the registry")
                continue
            allowed = set(spec_statuses(call.function)) | ALWAYS | EDK2.get(call.function, set())
            if not service.implemented:
                allowed = {Status.EFI_UNSUPPORTED}
            width = 4 if segment.report.get("arch") == "ia32" else 8
            error_bit = 1 << (8 * width - 1)
            if status is not None and not status & error_bit:
                continue  # a success or a warning
            normal = status & ~error_bit | (1 << 63)
            if normal not in {int(s) for s in allowed}:
                found.append(f"{where}: call {call.index}: {call.function}({call.arguments}) gave "
                             f"{Status.name_of(normal)}, not one of {sorted(Status.name_of(s) for s in allowed)}")
    return found


def lines(segments: list[Segment]) -> list:
    return [(s.start, s.outcome, [(c.index, c.function, c.arguments, c.kind, c.value) for c in s.calls])
            for s in segments]


@pytest.fixture(scope="module")
def esp_root():
    folder = Path(tempfile.mkdtemp(prefix="efistub-fuzz-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def seeds_for(arch: str) -> list[int]:
    """CI: two seeds per architecture, different ones on each; a campaign: SEEDS of them."""
    if SEEDS:
        return list(range(SEEDS))
    return [2 * ARCHES.index(arch), 2 * ARCHES.index(arch) + 1]


def test_the_table_is_what_fuzz_table_py_writes():
    """fuzz_table.h lists every function efistub has, at the offsets its firmware has them."""
    sys.path.insert(0, str(GUESTS))
    import fuzz_table

    assert (GUESTS / "fuzz_table.h").read_text() == fuzz_table.render(), "run python3 tests/guests/fuzz_table.py"
    names = set(re.findall(r'\{L"([\w.]+)", \d+, -?\d+', (GUESTS / "fuzz_table.h").read_text()))
    assert names == set(load_all())


@needs_native
@pytest.mark.parametrize("arch", ARCHES)
def test_hostile_calls_end_cleanly_with_spec_statuses_on_both_paths(arch, esp_root):
    """Every call of each seed returns a status the spec allows, or the run ends as a fault with a
    reason; native and Python dispatch give the same calls, statuses and outcomes."""
    before = peak_rss_reset()
    called = set()
    for seed in seeds_for(arch):
        results = {mode: campaign(arch, seed, CALLS, mode, esp_root) for mode in ("native", "python")}
        for mode, segments in results.items():
            assert not problems(segments), (mode, seed, problems(segments)[:5])
            made = [int(c.index) for s in segments for c in s.calls]
            assert made == list(range(CALLS)), (mode, seed, made)  # every call made once, in order
            for segment in segments:
                assert segment.outcome == "exit" or segment.outcome in ("fault", "stalled") and segment.reason
        assert lines(results["native"]) == lines(results["python"]), seed
        called |= {c.function for s in results["native"] for c in s.calls}
    assert len(called) >= 40, sorted(called)
    assert peak_rss() - before < 512 << 20, "the host's memory grew by more than 512 MiB"


@needs_native
@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("end", [1, 2, 3, 4, 5])
def test_calls_that_end_the_run_end_it_cleanly(arch, end, esp_root):
    """After three calls, one that ends the run by design: a notification function at an unmapped
    address (END 1: a fault that says where), or Exit, ExitBootServices, StartImage, ResetSystem
    (END 2..5) with drawn arguments; the same on both paths."""
    results = {mode: campaign(arch, 1000 + end, 3, mode, esp_root, end=end) for mode in ("native", "python")}
    for mode, segments in results.items():
        assert not problems(segments), (mode, problems(segments))
        last = segments[-1]
        assert last.outcome in ("exit", "fault", "reset"), (last.outcome, last.reason)
        if end == 1:
            assert last.calls[-1].index == "end"
            assert last.outcome == "fault" and "pc" in last.reason, last.reason
        else:
            assert last.calls[-1].index == "3"
            assert last.calls[-1].function == ["Exit", "ExitBootServices", "StartImage", "ResetSystem"][end - 2]
    assert lines(results["native"]) == lines(results["python"])


def peak_rss() -> int:
    """This process's peak resident set (VmHWM) in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def peak_rss_reset() -> int:
    """Reset the peak to the current resident set (Linux: clear_refs 5); return it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return peak_rss()


def test_fat_to_str_of_a_fat_size_beyond_sys_maxsize_reads_to_the_nul():
    """Found by fuzz.c: FatSize 2^64 - 1 raised ValueError (islice's bound) and the run ended as "error"."""
    from efistub.memory import MemoryType
    from efistub.protocols.unicode_collation import FatToStr

    machine = Machine(str(GUESTS / "x86_64" / "hello.efi"))
    machine.run()
    fw = machine.fw
    fat = fw.store(MemoryType.EfiBootServicesData, b"AB\0")
    out = fw.store(MemoryType.EfiBootServicesData, bytes(16))
    fw.stop = None
    FatToStr(fw, 0, (1 << 64) - 1, fat, out)
    assert fw.stop is None
    assert fw.mem.read(out, 6) == "AB\0".encode("utf-16-le")
