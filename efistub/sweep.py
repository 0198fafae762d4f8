"""``efistub sweep``: every service call of a run failed in turn, each in a copy of the run forked at that call.

The run itself is the baseline. At each call it makes (of the chosen services), it
forks once per status to inject (efistub.snapshot): the copy fails that call with the
status and runs to its own outcome, while the baseline goes on. Each copy sends back
what happened (its facts); once the baseline is done, each is judged:

- handled: the copy ended cleanly, in a hand-off, an Exit (any status) or a reset, with
  none of the problems below;
- misbehaved: a fault, an internal error, a hang (--timeout ran out, or a wait for input
  that never comes when the baseline did not wait), or, beyond what the baseline did,
  boot services called after ExitBootServices, ExitBootServices with a stale map key,
  or, at an Exit, pages or pools the image allocated and never freed.

The default statuses of a call are those the UEFI specification lists for its service
(efistub.spec_statuses). The CLI prints the table (``format_table``); docs/sweep.md.
"""

from __future__ import annotations

import difflib
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field

from . import snapshot
from .dispatch import INJECTED
from .errors import InputError
from .layouts.efi import PAGE_SIZE
from .registry import Service
from .spec_statuses import spec_statuses
from .status import Status

HANDLED, MISBEHAVED = "handled", "misbehaved"
# Services that hand the image memory it owns, and the argument that receives the address.
ALLOCATIONS = {"AllocatePages": "Memory", "AllocatePool": "Buffer", "LocateHandleBuffer": "Buffer",
               "ProtocolsPerHandle": "ProtocolBuffer", "OpenProtocolInformation": "EntryBuffer"}
FREES = {"FreePages": "Memory", "FreePool": "Buffer"}
STALE_KEY = "ExitBootServices"
ARGS_SHOWN = 48  # characters of a call's arguments in the table
SHOWN_LEAKS = 3  # leaks named in a row's problem (the JSON has them all)
PROGRESS_EVERY_S = 1.0


# -- what a run did, measured in the run's own process --------------------------------------
class Ledger:
    """Memory handed to the guest by its calls and not given back: (kind, address) -> allocation."""

    def __init__(self):
        self.held: dict[tuple[str, int], dict] = {}

    def wrap(self, machine) -> None:
        """Record allocations and frees of this run (wrapping its services; no report changes)."""
        dispatcher = machine.platform.dispatcher
        for slot, svc in enumerate(dispatcher.services):
            if svc.implemented and (svc.name in ALLOCATIONS or svc.name in FREES):
                dispatcher.services[slot] = self._tracked(svc, dispatcher)

    def _tracked(self, svc: Service, dispatcher) -> Service:
        names = [name for name, _ in svc.args]
        function, ledger = svc.function, self

        def tracked(fw, *values):
            returned = function(fw, *values)
            status = getattr(returned, "value", returned)
            if status in (None, Status.EFI_SUCCESS):
                args = dict(zip(names, values))
                record = dispatcher._python_calls[-1]
                ledger.note(fw, svc.name, args, snapshot.call_number(dispatcher, record), record.caller)
            return returned

        return Service(svc.name, tracked, svc.args, svc.varargs, svc.boot, svc.returns, svc.absent)

    def note(self, fw, service: str, args: dict, seq: int, caller: int | None) -> None:
        if service == "FreePool":
            self.held.pop(("pool", args["Buffer"]), None)
        elif service == "FreePages":
            start, end = args["Memory"], args["Memory"] + args["Pages"] * PAGE_SIZE
            for key in [k for k in self.held if k[0] == "pages" and start <= k[1] < end]:
                del self.held[key]
        elif service == "AllocatePages":
            address = fw.mem.read_u64(args["Memory"])
            self.held[("pages", address)] = {"seq": seq, "service": service, "pages": args["Pages"],
                                             "type": args["MemoryType"], "caller": caller}
        else:
            address = fw.mem.read_uintn(args[ALLOCATIONS[service]])
            if address in fw.pools:
                pages, memory_type = fw.pools[address]
                self.held[("pool", address)] = {"seq": seq, "service": service, "pages": pages,
                                                "type": memory_type, "caller": caller}

    def outstanding(self, fw, excused: set[int]) -> list[dict]:
        """Allocations still held, oldest first; ``excused``: addresses the run may keep."""
        return sorted((dict(entry, kind=kind, address=address) for (kind, address), entry in self.held.items()
                       if address not in excused and (kind == "pages" or address in fw.pools)),
                      key=lambda e: e["seq"])


def facts(machine, outcome: str, details: dict, ledger: Ledger, injected: dict | None) -> dict:
    """What a run did, as soon as it has ended (no report is built), for judging it: plain data
    (it crosses a pipe)."""
    from .memory import MemoryType

    fw, calls = machine.platform.fw, machine.platform.dispatcher.calls
    exit_status = Status.name_of(details["status"]) if outcome == "exit" else None
    out = {"outcome": outcome, "exit_status": exit_status, "calls": len(calls),
           "detail": _ending(outcome, details, exit_status, machine.options.timeout),
           "violations": [c.service for c in calls if c.violation],
           "stale_keys": sum(1 for c in calls if c.service == STALE_KEY
                             and c.status == Status.EFI_INVALID_PARAMETER.name and c.note != INJECTED),
           "leaks": [], "console": "".join(fw.console).strip().splitlines()[-1:]}
    if outcome == "exit":
        excused = set()
        if injected is not None and injected["service"] in FREES:  # the free that failed keeps its memory
            excused.add(injected["args"].get(FREES[injected["service"]]))
        exits = [c for c in calls if c.service == "Exit"]
        if exits and exits[-1].args.get("ExitData"):  # the last Exit's data belongs to the image's starter
            excused.add(exits[-1].args["ExitData"])
        for leak in ledger.outstanding(fw, excused):
            leak["type"] = MemoryType.name_of(leak["type"])
            out["leaks"].append(leak)
    return out


def _ending(outcome: str, details: dict, exit_status: str | None, timeout: float) -> str:
    """A run's ending in a few words, from the run loop's outcome and details."""
    if outcome == "handoff":
        return f"entry 0x{details['entry']:x}"
    if outcome == "exit":
        return exit_status
    if outcome == "reset":
        return f"{details['type']}, {Status.name_of(details['status'])}"
    if outcome == "timeout":
        return f"still running after --timeout {timeout:g} s"  # as Machine words it
    return str(details.get("reason") or details.get("error") or "")


def _detail(report) -> str:
    if report.outcome == "handoff":
        return f"entry 0x{report.handoff['entry']:x}"
    if report.outcome == "exit":
        return report.exit_status or ""
    if report.outcome == "reset":
        return f"{report.reset['type']}, {report.reset['status']}"
    found = report.fault or report.timeout or report.stalled or report.error or {}
    return str(found.get("reason") or found.get("error") or "")


# -- judging ---------------------------------------------------------------------------------
def _leak_key(leak: dict) -> tuple:
    return leak["service"], leak["caller"], leak["pages"], leak["type"]


def judge(child: dict, baseline: dict) -> tuple[str, str, list[str]]:
    """(outcome label, verdict, problems) of a forked run, against the baseline's facts."""
    if "killed" in child:
        after = child["killed"] + snapshot.kill_grace(child["killed"])
        return "hang", MISBEHAVED, [f"hang: still running {after:g} s after the fork (--timeout {child['killed']:g} s)"
                                    ", killed"]
    if "child_error" in child:
        last = child["child_error"].strip().splitlines()[-1]
        return "error", MISBEHAVED, [f"efistub error in the forked run: {last}"]
    outcome = child["outcome"]
    problems = []
    if outcome == "handoff":
        label = "hand-off"
    elif outcome == "exit":
        label = f"exit {child['exit_status']}"
    elif outcome == "reset":
        label = f"reset ({child['detail']})"
    elif outcome == "stalled" and baseline["outcome"] == "stalled":
        label = "stalled, as the baseline"
    elif outcome in ("timeout", "stalled"):
        label = "hang"
        problems.append(f"hang: {child['detail']}")
    elif outcome == "fault":
        label = "fault"
        problems.append(f"fault: {child['detail']}")
    else:
        label = outcome
        problems.append(f"efistub error: {child['detail']}")
    extra = Counter(child["violations"]) - Counter(baseline["violations"])
    if extra:
        problems.append("boot services after ExitBootServices: " + ", ".join(sorted(extra)))
    if child["stale_keys"] > baseline["stale_keys"]:
        problems.append("ExitBootServices with a stale map key")
    expected = Counter(_leak_key(leak) for leak in baseline["leaks"])
    leaks = []
    for leak in child["leaks"]:
        if expected[_leak_key(leak)]:
            expected[_leak_key(leak)] -= 1
        else:
            leaks.append(leak)
    if leaks:
        named = ", ".join(f"{leak['service']} of call {leak['seq']} ({leak['pages']} page"
                          f"{'' if leak['pages'] == 1 else 's'} {leak['type']})" for leak in leaks[:SHOWN_LEAKS])
        more = f" and {len(leaks) - SHOWN_LEAKS} more" if len(leaks) > SHOWN_LEAKS else ""
        problems.append(f"leak: {named}{more} never freed")
    child["unexpected_leaks"] = leaks
    return label, (MISBEHAVED if problems else HANDLED), problems


# -- the results -----------------------------------------------------------------------------
@dataclass
class Row:
    seq: int  # the call's number in the baseline's report
    service: str
    args: dict
    status: str  # the status the call failed with
    outcome: str  # hand-off, exit STATUS, reset (...), fault, hang, error
    verdict: str  # handled or misbehaved
    problems: list[str] = field(default_factory=list)
    facts: dict = field(default_factory=dict)  # what the forked run did (see efistub.sweep.facts)

    @property
    def handled(self) -> bool:
        return self.verdict == HANDLED


@dataclass
class SweepResult:
    image: str
    baseline: object  # the baseline's efistub.Report
    rows: list[Row]
    statuses: str  # "specification" or the chosen statuses
    seconds: float = 0.0

    @property
    def misbehaved(self) -> list[Row]:
        return [row for row in self.rows if not row.handled]

    def table(self, rows: list[Row] | None = None) -> str:
        """The rows (default: all) as the text table ``efistub sweep`` prints."""
        return format_table(self, rows)

    def to_dict(self) -> dict:
        base = self.baseline
        return {"image": self.image, "statuses": self.statuses, "seconds": round(self.seconds, 3),
                "baseline": {"outcome": base.outcome, "exit_status": base.exit_status, "calls": len(base.calls)},
                "runs": len(self.rows), "handled": len(self.rows) - len(self.misbehaved),
                "misbehaved": len(self.misbehaved), "rows": [asdict(row) for row in self.rows]}


def _show(value) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0xFFFF:
        return hex(value)
    return repr(value) if isinstance(value, str) else str(value)


def format_table(result: SweepResult, rows: list[Row] | None = None) -> str:
    """The sweep as a text table, one row per forked run."""
    rows = result.rows if rows is None else rows
    cells = []
    for row in rows:
        args = ", ".join(f"{k}={_show(v)}" for k, v in row.args.items())
        if len(args) > ARGS_SHOWN:
            args = args[:ARGS_SHOWN - 3] + "..."
        verdict = row.verdict + (": " + "; ".join(row.problems) if row.problems else "")
        cells.append((str(row.seq), row.service, args, row.status, row.outcome, verdict))
    heads = ("call", "service", "arguments", "injected", "outcome", "verdict")
    widths = [max(len(c[i]) for c in [heads, *cells]) for i in range(len(heads) - 1)]
    lines = []
    for c in [heads, *cells]:
        lines.append(f"{c[0]:>{widths[0]}}  " + "".join(f"{c[i]:<{widths[i]}}  " for i in range(1, len(widths)))
                     + c[-1])
    return "\n".join(lines) + "\n"


# -- the session --------------------------------------------------------------------------------
def _parse_statuses(statuses) -> tuple[Status, ...] | None:
    if statuses is None:
        return None
    if isinstance(statuses, (str, int)):
        statuses = [statuses]
    parsed = tuple(Status.parse(s) for s in statuses)  # ValueError for an unknown name
    if not parsed:
        raise ValueError("no status to inject")
    return parsed


class Sweep(snapshot.PoolSession):
    """The snapshot session of Machine.sweep (Machine._session)."""

    def __init__(self, machine, statuses=None, services=None, jobs: int | None = None, progress=None):
        from .catalog import load_all

        snapshot.check_forkable(machine)
        self.statuses = _parse_statuses(statuses)
        known = load_all()
        extra = {s.name: s for *_, services_ in machine._protocols for s in services_}
        self.services = None
        if services is not None:
            self.services = set([services] if isinstance(services, str) else services)
            for name in sorted(self.services - set(known) - set(extra)):
                close = difflib.get_close_matches(name, [*known, *extra], n=3)
                raise ValueError(f"unknown service {name!r}" + (f" (did you mean {', '.join(close)}?)" if close else
                                                                 " (docs/services.md lists them)"))
            for name in sorted(self.services):
                if (known.get(name) or extra[name]).returns != "status":
                    raise ValueError(f"{name} returns no status: its calls cannot fail")
        if jobs is not None and jobs < 1:
            raise ValueError("jobs must be at least 1")
        self.jobs = jobs or os.cpu_count() or 1
        self.progress = progress or (lambda state: None)
        # C-handled services that can fail are answered in Python, so that each of their calls is a fork point.
        self.routed = {name for name in snapshot.c_handled()
                       if known[name].returns == "status" and self._wanted(known[name])}
        self.child: int | None = None  # in a forked run: where its facts go
        self.injected: dict | None = None
        self.ledger = Ledger()
        self.pool: snapshot.Pool | None = None
        self.machine = machine
        self.planned: list[tuple[int, str, str]] = []  # (seq, service, status) in fork order
        self.results: dict[tuple[int, str], dict] = {}
        self._said = 0.0
        self.interrupted = False
        self.baseline_facts: dict | None = None
        self.started = time.perf_counter()

    def _wanted(self, svc: Service) -> tuple[Status, ...]:
        if svc.returns != "status" or (self.services is not None and svc.name not in self.services):
            return ()
        return self.statuses if self.statuses is not None else spec_statuses(svc.name)

    def attached(self, machine) -> None:
        self.pool = snapshot.Pool(self.jobs, machine.options.timeout)
        self.ledger.wrap(machine)
        machine.platform.dispatcher.snapshot = self._at_call

    def _at_call(self, record, slot: int):
        if not self._forks_here():
            return None
        dispatcher = self.machine.platform.dispatcher
        svc = dispatcher.services[slot]
        wanted = self._wanted(svc)
        if not wanted:
            return None
        seq = snapshot.call_number(dispatcher, record)
        loop = self.machine._loop
        for status in wanted:
            if self.pool.full():  # the baseline waits for a free job; its own --timeout does not run meanwhile
                paused = time.perf_counter()
                loop.stop_watchdog()
                try:
                    self.pool.wait_for_slot(self._collect)
                except KeyboardInterrupt:  # Ctrl-C: end the copies and the run (finished() raises it again)
                    self.interrupted = True
                    self.abort()
                    self.machine.platform.fw.request_stop("error", error="interrupted")
                    return None
                loop.deadline += time.perf_counter() - paused
                loop.start_watchdog()
            self.planned.append((seq, svc.name, status.name))
            fd = self.pool.fork(self.machine, (seq, status.name))
            if fd is not None:
                self.child = fd
                self.injected = {"seq": seq, "service": svc.name, "status": status.name, "args": dict(record.args)}
                snapshot.resume(self.machine)
                return status
        self._say()
        return None

    def _collect(self, done) -> None:
        for key, payload in done:
            self.results[key] = payload
        if done:
            self._say()

    def _say(self, final: bool = False) -> None:
        now = time.perf_counter()
        if final or now - self._said >= PROGRESS_EVERY_S:
            self._said = now
            self.progress({"forked": len(self.planned), "done": len(self.results),
                           "baseline_done": self.baseline_facts is not None, "seconds": now - self.started})

    def ended(self, machine, outcome: str, details: dict) -> None:
        found = facts(machine, outcome, details, self.ledger, self.injected)
        if self.child is not None:  # a forked run leaves here: its facts are all the sweep needs
            snapshot.child_exit(self.child, found)
        self.baseline_facts = found
        if outcome == "error" and str(details.get("error", "")).startswith(KeyboardInterrupt.__name__):
            self.interrupted = True  # Ctrl-C while a service ran: the run stopped there; so does the sweep

    def finished(self, machine, report):
        if self.interrupted:
            self.abort()
            raise KeyboardInterrupt
        self.pool.drain(self._collect)
        self.pool.close()
        self._say(final=True)
        return report

    def result(self, baseline) -> SweepResult:
        if baseline.outcome in ("fault", "error", "timeout") and not baseline.calls:
            detail = _detail(baseline)
            raise InputError(baseline.image, f"does not run: the baseline ended in {baseline.outcome}"
                                             f"{': ' + detail if detail else ''} before any service call")
        rows = []
        for seq, service, status in self.planned:
            child = self.results[(seq, status)]
            outcome, verdict, problems = judge(child, self.baseline_facts)
            rows.append(Row(seq, service, dict(baseline.calls[seq].args), status, outcome, verdict, problems,
                            child))
        chosen = "specification" if self.statuses is None else ",".join(s.name for s in self.statuses)
        return SweepResult(baseline.image, baseline, rows, chosen, time.perf_counter() - self.started)
