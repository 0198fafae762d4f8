"""Snapshots at a service call (Machine.fork_at), efistub sweep, and minimize through snapshots."""

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import efistub
from conftest import corpus_file
from efistub.dispatch import INJECTED
from efistub.minimize import Minimizer
from efistub.spec_statuses import SPEC_STATUSES
from pe_builder import code_image

GUESTS = Path(__file__).parent / "guests" / "x86_64"
KERNEL = "x86_64/vmlinuz-6.12.117+deb13-amd64"
UD2 = b"\x0f\x0b"  # an invalid instruction: the CPU faults on it
PR_SET_CHILD_SUBREAPER = 36  # prctl(2)


def efistub_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "efistub", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def comparable(report) -> dict:
    """A report as JSON, without what depends on the clock."""
    out = report.to_dict()
    out.pop("timing")
    return out


def fresh_with_failure(image, calls, seq, status, **options):
    """The run a fork at call ``seq`` stands for: a new Machine failing that same call."""
    service = calls[seq].service
    before = sum(1 for call in calls[:seq] if call.service == service)
    machine = efistub.Machine(image, **options)
    machine.inject(service, status, after=before)
    return machine.run()


# -- snapshots ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dispatch", ["native", "python"])
def test_a_forked_run_equals_a_fresh_run_with_the_same_answer(dispatch):
    from efistub import native

    if dispatch == "native" and not native.available():
        pytest.skip("the native trampoline is not built")
    image = GUESTS / "needs.efi"
    calls = efistub.Machine(image, dispatch=dispatch).run().calls
    assert calls[4].service == "CopyMem"  # C-handled with native dispatch: call 5 is counted after it
    machine = efistub.Machine(image, dispatch=dispatch)
    wanted = [(1, "EFI_DEVICE_ERROR"), (3, "EFI_OUT_OF_RESOURCES"), (3, "EFI_INVALID_PARAMETER"),
              (5, "EFI_INVALID_PARAMETER")]
    for seq, status in wanted:
        machine.fork_at(seq, status)
    machine.run()
    assert [(f.seq, f.service, f.status) for f in machine.forks] == [
        (1, "GetVariable", "EFI_DEVICE_ERROR"), (3, "AllocatePool", "EFI_OUT_OF_RESOURCES"),
        (3, "AllocatePool", "EFI_INVALID_PARAMETER"), (5, "FreePool", "EFI_INVALID_PARAMETER")]
    for fork in machine.forks:
        assert fork.error is None
        assert fork.report.calls[fork.seq].note == INJECTED
        assert comparable(fork.report) == comparable(fresh_with_failure(image, calls, fork.seq, fork.status,
                                                                        dispatch=dispatch))
    assert machine.forks[1].report.exit_status == "EFI_LOAD_ERROR"


def test_forking_changes_nothing_in_the_run_itself():
    image = GUESTS / "handoff.efi"
    plain = efistub.Machine(image)
    plain_report = plain.run()
    machine = efistub.Machine(image)
    for seq in range(len(plain_report.calls)):
        machine.fork_at(seq, "EFI_OUT_OF_RESOURCES")
    report = machine.run()
    assert comparable(report) == comparable(plain_report)
    assert machine.fw.pages.descriptors() == plain.fw.pages.descriptors()
    assert machine.fw.pools == plain.fw.pools
    assert machine.fw.state.virtual_time_us == plain.fw.state.virtual_time_us
    start = machine.load_address
    assert machine.fw.mem.read(start, 4096) == plain.fw.mem.read(start, 4096)
    assert [f.report.outcome for f in machine.forks] == ["exit", "exit", "exit", "exit", "handoff"]
    assert all(f.report.calls[f.seq].status == "EFI_OUT_OF_RESOURCES" for f in machine.forks)


def test_fork_at_a_call_the_run_never_makes_or_that_cannot_fail():
    machine = efistub.Machine(GUESTS / "needs.efi")
    machine.fork_at(4, "EFI_DEVICE_ERROR")  # CopyMem
    machine.fork_at(500, "EFI_DEVICE_ERROR")
    machine.run()
    assert machine.forks[0].error == "call 4 is CopyMem, which returns no status"
    assert machine.forks[1].error == "the run ended after 7 calls, before call 500"
    with pytest.raises(ValueError, match="unknown EFI status"):
        efistub.Machine(GUESTS / "needs.efi").fork_at(1, "EFI_NOPE")
    with pytest.raises(ValueError, match="--esp-writable"):
        efistub.Machine(GUESTS / "needs.efi", esp=str(GUESTS), esp_writable=True).fork_at(1, "EFI_ABORTED")


def test_a_forked_kernel_run_equals_a_fresh_one(corpus):
    kernel = corpus_file(corpus, KERNEL)
    machine = efistub.Machine(kernel)
    machine.fork_at(20, "EFI_OUT_OF_RESOURCES")  # after the decompression: the fork shares it
    report = machine.run()
    assert report.outcome == "handoff"
    fork = machine.forks[0]
    assert fork.service == "InstallConfigurationTable"
    fresh = fresh_with_failure(kernel, report.calls, 20, "EFI_OUT_OF_RESOURCES")
    assert comparable(fork.report) == comparable(fresh)


# -- the specification's statuses ----------------------------------------------------------
def test_every_status_table_entry_names_a_service_that_returns_a_status():
    from efistub.catalog import load_all

    services = load_all()
    for name, statuses in SPEC_STATUSES.items():
        assert name in services, name
        assert services[name].returns == "status", name
        assert efistub.Status.EFI_SUCCESS not in statuses and all(s.is_error for s in statuses), name


# -- sweeps --------------------------------------------------------------------------------
def test_sweep_of_handoff_finds_the_leaks_of_its_error_paths():
    """handoff.c returns at once when a call fails, without freeing what it allocated before."""
    result = efistub.Machine(GUESTS / "handoff.efi").sweep(jobs=2)
    assert result.baseline.outcome == "handoff"
    rows = [(r.seq, r.service, r.status, r.outcome, r.verdict) for r in result.rows]
    assert rows == [
        (0, "AllocatePages", "EFI_OUT_OF_RESOURCES", "exit EFI_OUT_OF_RESOURCES", "handled"),
        (0, "AllocatePages", "EFI_INVALID_PARAMETER", "exit EFI_OUT_OF_RESOURCES", "handled"),
        (0, "AllocatePages", "EFI_NOT_FOUND", "exit EFI_OUT_OF_RESOURCES", "handled"),
        (1, "GetMemoryMap", "EFI_BUFFER_TOO_SMALL", "exit EFI_LOAD_ERROR", "misbehaved"),
        (1, "GetMemoryMap", "EFI_INVALID_PARAMETER", "exit EFI_LOAD_ERROR", "misbehaved"),
        (2, "AllocatePool", "EFI_OUT_OF_RESOURCES", "exit EFI_LOAD_ERROR", "misbehaved"),
        (2, "AllocatePool", "EFI_INVALID_PARAMETER", "exit EFI_LOAD_ERROR", "misbehaved"),
        (3, "GetMemoryMap", "EFI_BUFFER_TOO_SMALL", "exit EFI_LOAD_ERROR", "misbehaved"),
        (3, "GetMemoryMap", "EFI_INVALID_PARAMETER", "exit EFI_LOAD_ERROR", "misbehaved"),
        (4, "ExitBootServices", "EFI_INVALID_PARAMETER", "hand-off", "handled"),  # it retries once
    ]
    leaked = {r.seq: [(leak["seq"], leak["service"]) for leak in r.facts["unexpected_leaks"]]
              for r in result.misbehaved}
    assert leaked[2] == [(0, "AllocatePages")]  # the EfiLoaderCode page of its "kernel"
    assert leaked[3] == [(0, "AllocatePages"), (2, "AllocatePool")]  # and the map buffer
    assert result.misbehaved[2].problems == ["leak: AllocatePages of call 0 (1 page EfiLoaderCode) never freed"]
    assert result.rows[-1].args["MapKey"] == result.baseline.calls[4].args["MapKey"]


def test_sweep_of_memory_finds_the_leak_in_its_allocate_any_test():
    """memory.c's test_allocate_any returns when AllocatePages fails, and never frees the map it got before."""
    result = efistub.Machine(GUESTS / "memory.efi").sweep(statuses=["EFI_OUT_OF_RESOURCES"],
                                                          services=["AllocatePages"], jobs=2)
    assert len(result.rows) > 5 and all(r.status == "EFI_OUT_OF_RESOURCES" for r in result.rows)
    assert [(r.seq, r.outcome) for r in result.misbehaved] == [(50, "exit EFI_ABORTED")]
    assert result.misbehaved[0].problems == ["leak: AllocatePool of call 48 (1 page EfiLoaderData) never freed"]
    assert result.baseline.calls[48].args["Size"] > 0  # get_map's buffer


def test_sweep_with_the_default_statuses_of_needs_is_all_handled():
    """needs.c ignores every failure but AllocatePool's, and then returns EFI_LOAD_ERROR cleanly."""
    result = efistub.Machine(GUESTS / "needs.efi").sweep()
    assert not result.misbehaved, result.table(result.misbehaved)
    statuses = {}
    for row in result.rows:
        statuses.setdefault(row.service, []).append(row.status)
    assert statuses["AllocatePool"] == ["EFI_OUT_OF_RESOURCES", "EFI_INVALID_PARAMETER"]
    assert len(statuses["GetVariable"]) == len(SPEC_STATUSES["GetVariable"])
    assert "CopyMem" not in statuses  # it returns no status
    assert {r.outcome for r in result.rows if r.service == "AllocatePool"} == {"exit EFI_LOAD_ERROR"}


def test_a_run_that_waits_forever_after_a_failure_is_a_hang():
    """events.c waits for its 5 ms timer without checking that SetTimer worked."""
    result = efistub.Machine(GUESTS / "events.efi").sweep(services=["SetTimer"])
    hangs = [r for r in result.misbehaved if r.outcome == "hang"]
    assert len(hangs) == 1 and hangs[0].args["Type"] == "TimerRelative"
    assert "WaitForEvent" in hangs[0].problems[0]


def test_a_guest_that_runs_on_after_a_failure_ends_at_its_timeout():
    """A guest loop that never ends (memory.c's map loop, given a map that never fits) ends at --timeout,
    counted from the fork: the forked run's own watchdog stops it."""
    from efistub.catalog import load_all
    from efistub.sweep import judge

    get_memory_map = load_all()["GetMemoryMap"].function
    machine = efistub.Machine(GUESTS / "memory.efi", timeout=3.0)
    failed = []
    machine.on_call(lambda call, when: failed.append(call.seq) if call.note == INJECTED else None)

    @machine.service("GetMemoryMap")
    def never_fits(ctx, *args):
        status = get_memory_map(ctx.firmware, *args)
        return "EFI_BUFFER_TOO_SMALL" if failed else status

    machine.fork_at(1, "EFI_DEVICE_ERROR")  # the first GetMemoryMap: the next ones never fit
    report = machine.run()
    assert report.exit_status == "EFI_SUCCESS"
    fork = machine.forks[0]
    assert fork.report.outcome == "timeout"
    assert fork.report.timeout["reason"] == "still running after --timeout 3 s"
    facts = {"outcome": "timeout", "detail": fork.report.timeout["reason"], "violations": [], "stale_keys": 0,
             "leaks": []}
    assert judge(facts, {**facts, "outcome": "exit"})[:2] == ("hang", "misbehaved")


def test_a_forked_run_stuck_in_python_is_killed_as_a_hang():
    machine = efistub.Machine(GUESTS / "needs.efi", timeout=1.0)
    failed = []
    machine.on_call(lambda call, when: failed.append(call.seq) if call.note == INJECTED else None)

    @machine.service("TextOutput.OutputString")
    def stuck(ctx, this, string):
        while failed:  # only in the forked runs; no watchdog can stop Python code
            time.sleep(0.01)
        return "EFI_SUCCESS"

    result = machine.sweep(statuses=["EFI_DEVICE_ERROR"], services=["GetVariable"])
    assert [r.outcome for r in result.rows] == ["hang"]
    assert result.rows[0].problems == ["hang: still running 2 s after the fork (--timeout 1 s), killed"]
    assert result.baseline.outcome == "exit"


def test_the_verdicts_beyond_the_outcome():
    from efistub.sweep import judge

    clean = {"outcome": "handoff", "exit_status": None, "detail": "entry 0x1000", "violations": [],
             "stale_keys": 0, "leaks": []}
    assert judge(dict(clean), clean) == ("hand-off", "handled", [])
    late = dict(clean, violations=["AllocatePool", "AllocatePool"])
    assert judge(late, clean)[1:] == ("misbehaved", ["boot services after ExitBootServices: AllocatePool"])
    assert judge(dict(clean, stale_keys=1), clean)[2] == ["ExitBootServices with a stale map key"]
    assert judge(dict(clean, stale_keys=1), dict(clean, stale_keys=1))[1] == "handled"  # as the baseline did
    leak = {"seq": 3, "service": "AllocatePool", "caller": 0x1234, "pages": 2, "type": "EfiLoaderData"}
    exited = dict(clean, outcome="exit", exit_status="EFI_ABORTED", leaks=[leak])
    assert judge(dict(exited), dict(exited))[1] == "handled"  # the baseline leaks it too
    assert judge(dict(exited), clean)[2] == ["leak: AllocatePool of call 3 (2 pages EfiLoaderData) never freed"]
    stalled = dict(clean, outcome="stalled", detail="ReadKeyStroke waits for a key")
    assert judge(dict(stalled), stalled)[:2] == ("stalled, as the baseline", "handled")
    assert judge(dict(stalled), clean)[1:] == ("misbehaved", ["hang: ReadKeyStroke waits for a key"])


def test_sweep_from_the_pytest_plugin(efi_sweep):
    result = efi_sweep(GUESTS / "needs.efi", statuses="EFI_DEVICE_ERROR", services=["FreePool"])
    assert [(r.seq, r.verdict) for r in result.rows] == [(5, "handled")]
    assert "FreePool" in result.table()


def test_sweep_exit_codes_and_json(tmp_path):
    out = tmp_path / "sweep.json"
    handled = efistub_cli("sweep", GUESTS / "needs.efi", "--services", "AllocatePool", "--json", out)
    assert handled.returncode == 0, handled.stderr
    assert "2 forked runs (specification statuses): 2 handled, 0 misbehaved" in handled.stdout
    data = json.loads(out.read_text())
    assert data["misbehaved"] == 0 and [row["status"] for row in data["rows"]] == [
        "EFI_OUT_OF_RESOURCES", "EFI_INVALID_PARAMETER"]
    misbehaved = efistub_cli("sweep", GUESTS / "handoff.efi", "--status", "EFI_DEVICE_ERROR",
                             "--services", "AllocatePool,GetMemoryMap", "--jobs", "2")
    assert misbehaved.returncode == 1, misbehaved.stderr
    assert "misbehaved: leak: AllocatePages of call 0" in misbehaved.stdout


@pytest.mark.parametrize("args, message", [
    (["--status", "EFI_NOPE"], "unknown EFI status name 'EFI_NOPE'"),
    (["--services", "AllocatPool"], "unknown service 'AllocatPool' (did you mean AllocatePool"),
    (["--services", "CopyMem"], "CopyMem returns no status"),
    (["--esp", ".", "--esp-writable"], "--esp-writable"),
    (["--jobs", "0"], "jobs must be at least 1"),
])
def test_sweep_bad_input_is_a_one_line_error(args, message):
    result = efistub_cli("sweep", GUESTS / "needs.efi", *args)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_sweep_of_an_image_that_does_not_run(tmp_path):
    faulty = tmp_path / "ud2.efi"
    faulty.write_bytes(code_image(UD2))
    result = efistub_cli("sweep", faulty)
    assert result.returncode == 2
    assert "does not run: the baseline ended in fault" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    not_pe = tmp_path / "not.efi"
    not_pe.write_bytes(b"hello")
    assert efistub_cli("sweep", not_pe).returncode == 2


def test_no_forked_process_outlives_a_sweep():
    with adopting_orphans() as before:
        efistub.Machine(GUESTS / "handoff.efi").sweep(jobs=3)
        assert _children() == before


@contextlib.contextmanager
def adopting_orphans():
    """Make this process the subreaper of its descendants (Linux): a forked process that outlives its
    parent becomes our child, and shows up in _children(). Yields the children there were before."""
    libc = ctypes.CDLL(None, use_errno=True)
    if not sys.platform.startswith("linux") or libc.prctl(PR_SET_CHILD_SUBREAPER, 1) != 0:
        pytest.skip("needs PR_SET_CHILD_SUBREAPER (Linux)")
    before = _children()
    try:
        yield before
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0)
        for pid in _children() - before:  # what a failing test leaves: end and reap it
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def test_ctrl_c_ends_a_sweep_and_its_forked_runs():
    import threading

    with adopting_orphans() as before:
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
        with pytest.raises(KeyboardInterrupt):  # misc.efi prints about 300 times: far more than 0.5 s of copies
            efistub.Machine(GUESTS / "misc.efi").sweep(services=["TextOutput.OutputString"], jobs=1)
        assert _children() == before


def _children() -> set[int]:
    """This process's children (zombies included)."""
    me = str(os.getpid())
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == me:
                found.add(int(entry))
    return found


def test_a_watchdog_stop_asked_for_during_a_call_lets_the_run_go_on():
    """The watchdog can fire while a service call runs, just before a fork stops it: the engine
    stops after the call in the run and in the copy alike, and neither takes it for a fault."""
    image = GUESTS / "needs.efi"
    plain = efistub.Machine(image).run()
    machine = efistub.Machine(image)
    machine.on_call(lambda call, when: machine._loop._alarm() if when == "before" else None)
    report = machine.run()
    assert machine._loop.alarms == len(report.calls)
    assert comparable(report) == comparable(plain)


# -- minimize through snapshots ------------------------------------------------------------------
def ticking(monkeypatch, tick=None) -> list[float]:
    """Every RunLoop made from now on has a tick (minimize's controller sets one), ``tick`` or one
    that notes the times it ran (returned)."""
    from efistub import runloop

    ticks = []
    init = runloop.RunLoop.__init__

    def with_tick(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.tick = tick or (lambda: ticks.append(time.perf_counter()))

    monkeypatch.setattr(runloop.RunLoop, "__init__", with_tick)
    return ticks


def test_a_run_that_ticks_for_its_session_gives_the_same_report(monkeypatch):
    """minimize's controller has a thread dispatch candidates every TICK_S while the guest runs
    between calls: the guest never notices, and the report is the one of a run without ticks."""
    image, options = GUESTS / "bench.efi", {"cmdline": "none 300000000"}  # a long stretch without a call
    plain = efistub.Machine(image, **options).run()
    ticks = ticking(monkeypatch)
    ticked = efistub.Machine(image, **options).run()
    assert len(ticks) >= 3
    assert ticked.outcome == "exit" and ticked.exit_status == "EFI_SUCCESS"
    assert comparable(ticked) == comparable(plain)


def test_a_tick_that_raises_ends_the_run_with_an_error(monkeypatch):
    ticking(monkeypatch, lambda: 1 / 0)
    report = efistub.Machine(GUESTS / "bench.efi", cmdline="none 300000000").run()
    assert report.outcome == "error"
    assert report.error["error"] == "a tick of the run's session failed"
    assert "ZeroDivisionError" in report.error["traceback"]


def test_a_minimize_whose_controller_fails_meanwhile_says_so(monkeypatch):
    """A tick that raises in minimize's controller is its own bug: no copy of the run is forked
    after it, and minimize fails instead of minimizing towards that error."""
    import efistub.minimize as minimize

    def failing(self):
        raise OSError("the hub went away")

    monkeypatch.setattr(minimize.SnapshotRuns, "_meanwhile", failing)
    with adopting_orphans() as before:
        with pytest.raises(RuntimeError, match="(?s)controller failed.*the hub went away"):
            Minimizer(str(GUESTS / "bench.efi"), {"cmdline": "none 300000000"}, 2).minimize()
        assert _children() == before


def test_a_kernel_that_ticks_decompresses_as_without(monkeypatch, corpus):
    """The stub's decompression (stores, read-modify-writes) with ticks beside it, on either engine:
    stopping the stock engine from another thread and starting it again broke it (EFI_LOAD_ERROR)."""
    kernel = corpus_file(corpus, KERNEL)
    plain = efistub.Machine(kernel).run()
    ticks = ticking(monkeypatch)
    ticked = efistub.Machine(kernel).run()
    assert ticks and ticked.outcome == "handoff"
    assert comparable(ticked) == comparable(plain)


@pytest.mark.parametrize("image", ["needs.efi", "handoff.efi"])
def test_minimize_through_snapshots_finds_the_set_fresh_runs_find(image):
    with adopting_orphans() as before:
        through = Minimizer(str(GUESTS / image), {}, 2).minimize()
        assert _children() == before  # every frozen copy and run has ended, and been reaped
    fresh = Minimizer(str(GUESTS / image), {}, 2, fresh=True).minimize()
    assert through["snapshots"] and not fresh["snapshots"]
    for key in ("outcome", "exit_status", "services", "called", "optional", "runs"):
        assert through[key] == fresh[key], key
    if image == "needs.efi":
        assert through["services"] == ["AllocatePool", "CopyMem"]


def test_minimize_of_a_kernel_through_snapshots_finds_the_set_fresh_runs_find(corpus):
    """The x86_64 stub decompresses for 0.4 s between two calls: the full run's ticks start
    candidates meanwhile, and those that go on long run without both their services beside it."""
    from efistub import engine

    if engine.loaded().engine != "fast":
        pytest.skip("19 decompressions of fresh runs take minutes on the stock engine "
                    "(test_a_kernel_that_ticks_decompresses_as_without covers its ticks)")
    kernel = str(corpus_file(corpus, KERNEL))
    with adopting_orphans() as before:
        through = Minimizer(kernel, {}, 2).minimize()
        assert _children() == before
    fresh = Minimizer(kernel, {}, 2, fresh=True).minimize()
    for key in ("outcome", "services", "called", "optional", "runs"):
        assert through[key] == fresh[key], key
    assert through["outcome"] == "handoff" and "ExitBootServices" in through["services"]
    assert through["executions"] < fresh["executions"]
