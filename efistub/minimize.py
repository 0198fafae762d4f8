"""``efistub minimize``: the smallest set of boot and runtime services an image needs.

Delta debugging (Zeller's ddmin) over the services the image calls in a full run:
a candidate set passes when the image, with only those services implemented and
every other one answering as an absent firmware would (EFI_NOT_FOUND for look-ups,
EFI_UNSUPPORTED otherwise), reaches the same outcome (for an exit: with the same
status). The result is 1-minimal: removing any one service of it changes the outcome.

How candidate runs are made:

- through snapshots (the default where os.fork exists; efistub.snapshot). A run with
  set S is the same as the full run up to the first call of a service S leaves out,
  and two candidate runs are the same up to the first call whose answer they differ
  on: the first call, on a run's path, of a service whose membership that path has
  not decided yet (a decision point). The full run freezes a copy of itself at each
  decision point; a candidate resumes from the deepest frozen copy its set agrees
  with, and freezes copies of its own at its decision points. Candidates that agree
  on every decision of a finished run get its result without running, and the sets of
  a round that agree share one run until they differ. So each distinct path is
  emulated once, prefixes included (the x86_64 stub's decompression too).
- fresh (``fresh=True``, ``efistub minimize --fresh``): every candidate runs from the
  start in a worker process, the sets of a round in parallel.
"""

from __future__ import annotations

import os
import resource
import signal
import time

from . import snapshot
from .machine import TABLE_SERVICES
from .parallel import pool, run_image

CONSOLE_KEPT = 4096  # characters of a candidate run's console kept for the result
SPECULATED_PAIRS = 8  # idle cores also run the full set without each pair of the first this many services called
FREEZE_AFTER_S = 0.05  # a candidate run freezes at a decision point after this much CPU time since it resumed
LONG_S = 0.02  # an early run still going after this long costs more than a few calls (for the pairs)
SPECULATION_EXTRA = 1  # runs beyond --jobs that speculation may add (an early one may cost a decompression)
EARLY_NICE = 10  # runs started while the full run goes on yield the CPU to it and to the cheap rounds after it
SHUTDOWN_S = 10.0  # how long the frozen copies get to leave at the end before they are killed


def _outcome(result: dict) -> tuple:
    """What must stay the same: the outcome, and for an exit its status."""
    return result["outcome"], result.get("exit_status")


def _cpu_seconds(who: int) -> float:
    """CPU time of this process, or of its children that have ended (theirs included)."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _split(items: list[str], n: int) -> list[list[str]]:
    size, extra = divmod(len(items), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        out.append(items[start:end])
        start = end
    return [part for part in out if part]


def _summary(report: dict) -> dict:
    """What minimize keeps of a candidate run."""
    return {"outcome": report["outcome"], "exit_status": report.get("exit_status"),
            "console": report["console"][-CONSOLE_KEPT:], "unimplemented": report["usage"]["unimplemented"]}


# -- fresh runs in worker processes ---------------------------------------------------------------
class FreshRuns:
    def __init__(self, image: str, options: dict, jobs: int | None):
        self.image, self.options = image, options
        self.executor = pool(jobs)
        self.executions = 0

    def baseline(self) -> dict:
        self.executions += 1
        return run_image(self.image, self.options)

    def runs(self, sets: list[frozenset]) -> list[dict]:
        futures = [self.executor.submit(run_image, self.image, self.options, sorted(s)) for s in sets]
        self.executions += len(futures)
        return [_summary(future.result()) for future in futures]

    def close(self) -> None:
        self.executor.shutdown()


# -- runs through snapshots -----------------------------------------------------------------------
class Explorer:
    """The snapshot session of a minimize run (Machine._session), in every process of the tree.

    In the controller it is the full run, freezing a copy of itself at the first call of each
    boot or runtime service (and one before the image starts). In a copy resumed by a command
    it is a candidate run for a group of sets that agree on every decision so far."""

    def __init__(self, hub: snapshot.Hub):
        self.hub = hub
        self.routed: set[str] = set()
        self.machine = None
        self.frozen: list[int] = []  # in the controller: the copies it forked (its children, to reap)
        self.seen: set[str] = set()  # in the controller: services whose first call has a frozen copy
        self.forked = False  # a frozen copy, or a candidate run
        self.explorer = False  # a candidate run
        self.universe: frozenset = frozenset()  # the services the candidate sets are made of
        self.decided: dict[str, bool] = {}  # on this run's path: service -> implemented
        self.group: list[tuple[int, frozenset]] = []  # (set id, set) this run stands for
        self.frozen_cpu = 0.0  # this process's CPU time when it last resumed
        self.meanwhile = lambda: None  # in the controller: called at each call of the full run

    in_child = property(lambda self: self.forked)

    def child_failed(self) -> None:
        import traceback

        if self.explorer:
            self._report({"error": traceback.format_exc()})
        os._exit(1)

    def attached(self, machine) -> None:
        self.machine = machine
        machine.platform.dispatcher.snapshot = self._at_call
        pid = snapshot.fork(machine, emulating=False)  # a copy before the image starts: for sets without its first call
        if pid:
            self.frozen.append(pid)
            machine._loop.tick = self.meanwhile  # dispatch early sets while the guest runs long between calls too
            return
        self.forked = True
        self._resume(snapshot.serve(self.hub, {"path": {}, "pending": None, "seq": -1}), None, emulating=False)

    def _at_call(self, record, slot: int):
        name = record.service
        if name not in TABLE_SERVICES:
            return None
        dispatcher = self.machine.platform.dispatcher
        seq = snapshot.call_number(dispatcher, record)
        if not self.explorer:  # the full run: freeze a copy at the first call of each service
            if not self.machine._loop.call_tick():  # meanwhile(), as the tick thread does between calls
                return None  # the controller failed: the run ends with that error, and no copy of it is made
            if name in self.seen:
                return None
            self.seen.add(name)
            pid = snapshot.fork(self.machine)
            if pid:
                self.frozen.append(pid)
                return None
            self.forked = True
            self.decided = {c.service: True for c in dispatcher.calls[:seq] if c.service in TABLE_SERVICES}
            self._resume(snapshot.serve(self.hub, {"path": self.decided, "pending": name, "seq": seq}), name)
            return None
        if name not in self.universe or name in self.decided:
            return None
        # A decision point: where the group splits, or after costly emulation, freeze here and let one
        # copy go on for each part of the group; elsewhere go on (a later set re-runs the cheap stretch).
        parts = {answer: [(i, s) for i, s in self.group if (name in s) == answer] for answer in (True, False)}
        if not all(parts.values()) and _cpu_seconds(resource.RUSAGE_SELF) - self.frozen_cpu < FREEZE_AFTER_S:
            self.decided[name] = bool(parts[True])
            if not self.decided[name]:
                self._configure()
            return None
        first = [{"group": part, "answer": answer, "universe": self.universe, "split": True}
                 for answer, part in parts.items() if part]
        self.machine._loop.stop_watchdog()
        registration = {"path": dict(self.decided), "pending": name, "seq": seq, "ids": [i for i, _ in self.group]}
        self._resume(snapshot.serve(self.hub, registration, first), name)
        return None

    def _resume(self, command: dict, pending: str | None, emulating: bool = True) -> None:
        """A copy resumed by ``command`` at a call of ``pending`` (None: before the image starts):
        a candidate run for its group from here on."""
        machine = self.machine
        machine._loop.tick = None
        if not command.get("split"):  # resumed by the controller: a --timeout of its own
            snapshot.resume(machine, emulating=emulating)
        elif emulating:
            machine._loop.start_watchdog()
        if command.get("nice", 0) > os.nice(0):  # niceness is inherited: raise it to the command's, not by it
            os.nice(command["nice"] - os.nice(0))
        self.explorer = True
        self.frozen_cpu = _cpu_seconds(resource.RUSAGE_SELF)  # a forked copy's CPU time counts from 0
        self.universe = command["universe"]
        self.group = command["group"]
        if pending is not None:
            self.decided[pending] = command["answer"]
        self._configure()
        snapshot.report(self.hub, {"started": [i for i, _ in self.group], "pid": os.getpid()})

    def _configure(self) -> None:
        """Answer as a firmware with only the group's services would: every boot and runtime service
        outside the universe, or decided out, is absent; C-handled ones of the universe reach Python."""
        platform = self.machine.platform
        dispatcher, native = platform.dispatcher, platform.native
        c_handled = snapshot.c_handled()
        for slot, svc in enumerate(dispatcher.services):
            if svc.name not in TABLE_SERVICES:
                continue
            absent = svc.name not in self.universe or self.decided.get(svc.name) is False
            if absent and svc.implemented:
                dispatcher.services[slot] = svc.without_implementation()
            if native is not None and svc.name in c_handled and (absent or svc.name in self.universe):
                native.route_to_python(svc.name)

    def _report(self, message: dict) -> None:
        snapshot.report(self.hub, {"done": [i for i, _ in self.group], "path": self.decided, "pid": os.getpid(),
                                   **message})
        os._exit(0)

    def ended(self, machine, outcome: str, details: dict) -> None:
        """A candidate run is over: what minimize needs is known now, without building the report."""
        if not self.explorer:
            return
        from .status import Status

        calls = machine.platform.dispatcher.calls
        self._report({"result": {
            "outcome": outcome, "exit_status": Status.name_of(details["status"]) if outcome == "exit" else None,
            "console": "".join(machine.platform.fw.console)[-CONSOLE_KEPT:],
            "unimplemented": sorted({c.service for c in calls if c.unimplemented})}})

    def finished(self, machine, report):
        return report

    def abort(self) -> None:
        pass


class SnapshotRuns:
    """Candidate runs through snapshots: each set resumes from the deepest frozen copy its set agrees
    with. While cores are idle, it runs sets ddmin is likely to ask for later (``speculate``)."""

    def __init__(self, image: str, options: dict, jobs: int | None):
        from .machine import Machine

        self.image, self.options = image, options
        self.jobs = jobs or os.cpu_count() or 1
        self.hub = snapshot.Hub()
        self.machine = Machine(image, save_vars=False, **options)
        snapshot.check_forkable(self.machine)
        self.session = Explorer(self.hub)
        self.session.meanwhile = self._meanwhile
        self.machine._session = self.session
        # Until the full run ends, the services it will call are unknown: runs started meanwhile implement
        # every boot and runtime service but the one they leave out; a result counts for a set when its run
        # called only services of the set's universe.
        self.universe: frozenset = frozenset(TABLE_SERVICES)
        self.early: list[frozenset] = []  # sets to run while the full run goes on
        self.tried: set[str] = set()  # services the early runs leave out
        self.paired: set[frozenset] = set()  # pairs of services the early runs leave out together
        self.reached: dict[str, float] = {}  # service -> when the full run reached its first call
        self.nodes: dict[int, dict] = {}  # pid -> its registration: path, pending, seq
        self.paths: list[tuple[dict, dict]] = []  # (decisions, result) of every finished candidate run
        self.done: dict[frozenset, dict] = {}  # set -> result
        self.ids: dict[frozenset, int] = {}  # set -> its number in the messages
        self.sets: list[frozenset] = []  # number -> set
        self.deadlines: dict[int, tuple[float, int | None]] = {}  # set number in flight -> (deadline, pid)
        self.active: set[int] = set()  # pids of candidate runs now running
        self.queue: list[frozenset] = []  # sets to run while cores are idle
        self.target: tuple | None = None  # the full run's outcome
        self.flying: dict[tuple[int, bool | None], set[int]] = {}  # (copy, answer) -> set numbers of the run sent
        self.deferred: list[frozenset] = []  # sets that wait for a run in flight to freeze further on
        self.executions = 0
        self.timeout = self.machine.options.timeout

    def baseline(self) -> dict:
        self.executions += 1
        started = time.perf_counter()
        report = self.machine.run().to_dict()
        if self.machine._loop.tick_error is not None:  # a bug of ours, not the image's: no minimal set from it
            raise RuntimeError(f"minimize's controller failed while the full run went on:\n"
                               f"{self.machine._loop.tick_error}")
        report["seconds"] = time.perf_counter() - started
        self._receive(0)
        return report

    @staticmethod
    def _agrees(path: dict, s: frozenset) -> bool:
        return all((name in s) == implemented for name, implemented in path.items())

    def _known(self, s: frozenset) -> dict | None:
        result = self.done.get(s)
        if result is None:
            result = next((r for path, r in self.paths if self._agrees(path, s)), None)
            if result is not None:
                self.done[s] = result
        return result

    def _grace(self) -> float:
        return self.timeout + snapshot.kill_grace(self.timeout)

    def _dispatch(self, sets: list[frozenset]) -> None:
        """Send each set (not known, not in flight) to the deepest frozen copy it agrees with."""
        commands: dict[tuple[int, bool | None], list] = {}
        for s in sets:
            if self._known(s) is not None or self.ids.get(s) in self.deadlines or s in self.deferred:
                continue
            if s not in self.ids:
                self.ids[s] = len(self.sets)
                self.sets.append(s)
            node = max((n for n in self.nodes.values() if self._agrees(n["path"], s)),
                       key=lambda n: (len(n["path"]), n["seq"]))
            answer = None if node["pending"] is None else node["pending"] in s
            branch = (node["node"], answer)
            if branch in self.flying and not self._cheap_split(node, s, self.flying[branch]):
                self.deferred.append(s)  # a run already goes that way: wait for where it freezes next
                continue
            commands.setdefault(branch, []).append((self.ids[s], s))
            self.deadlines[self.ids[s]] = (time.perf_counter() + self._grace(), None)
        for (pid, answer), group in commands.items():
            self.flying.setdefault((pid, answer), set()).update(i for i, _ in group)
            early = self.target is None  # the full run goes on: it, and ddmin's first rounds after it, come first
            self.hub.command(pid, {"group": group, "answer": answer, "universe": self.universe,
                                   "nice": EARLY_NICE if early else 0})

    def _cheap_split(self, node: dict, s: frozenset, flying: set[int]) -> bool:
        """Whether ``s`` parts from a run in flight from ``node`` soon enough to run on its own: by the
        full run's clock, within FREEZE_AFTER_S of the node's call (a run that goes on waits instead,
        so that a costly stretch is emulated once)."""
        start = self.reached.get(node["pending"])
        if start is None:
            return False
        for i in flying:  # they part at the first call of a service one of them has and the other has not
            known = [self.reached[name] for name in s ^ self.sets[i] if name in self.reached]
            if not known or min(known) - start >= FREEZE_AFTER_S:  # a service not reached yet comes later
                return False
        return True

    def _landed(self, ids, going: dict | None = None) -> None:
        """A run of these set numbers froze at a new copy (and ``going``: set number -> the branch its
        copy now takes) or ended: sets that waited for it go on."""
        for branch in [b for b, flying in self.flying.items() if flying & set(ids)]:
            self.flying[branch] -= set(ids)
            if not self.flying[branch]:
                del self.flying[branch]
        for i, branch in (going or {}).items():
            self.flying.setdefault(branch, set()).add(i)
        if self.deferred:
            waiting, self.deferred = self.deferred, []
            self._dispatch(waiting)

    def _receive(self, wait: float) -> None:
        for message, _ in self.hub.messages(wait):
            if "node" in message:
                self.nodes[message["node"]] = message
                if "ids" not in message and message["pending"] is not None:  # a copy of the full run
                    self.reached[message["pending"]] = time.perf_counter()
                self.active.discard(message["node"])  # it froze; its copies go on
                ids = message.get("ids", ())  # the group of the run that froze: it went on at once, a copy per answer
                self._landed(ids, {i: (message["node"], message["pending"] in self.sets[i]) for i in ids})
            elif "started" in message:
                self.active.add(message["pid"])
                for i in message["started"]:
                    self.deadlines[i] = (time.perf_counter() + self._grace(), message["pid"])
            elif "done" in message:
                self.active.discard(message["pid"])
                self.executions += 1
                result = message.get("result") or {"outcome": "error", "exit_status": None,
                                                   "console": message.get("error", ""), "unimplemented": []}
                if "result" in message:
                    self.paths.append((message["path"], result))
                for i in message["done"]:
                    self.done[self.sets[i]] = result
                    self.deadlines.pop(i, None)
                self._landed(message["done"])

    def _expire(self) -> None:
        now = time.perf_counter()
        for i, (due, pid) in list(self.deadlines.items()):
            if due <= now:
                if pid is not None:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    self.active.discard(pid)
                del self.deadlines[i]
                self.done[self.sets[i]] = {"outcome": "timeout", "exit_status": None, "console": "",
                                           "unimplemented": []}
                self._landed([i])

    def _meanwhile(self) -> None:
        """While the full run goes on: run the full set without each service it has called so far,
        --jobs at a time; and once two of those runs go on past LONG_S (the x86_64 stub's decompression),
        the full set without both, beside them (SPECULATION_EXTRA): ddmin asks for it when neither is
        needed, and it parts from the first of them at the other's call, before the costly stretch."""
        self._receive(0)
        for node in list(self.nodes.values()):
            name = node["pending"]
            if name is not None and name not in self.tried:
                self.tried.add(name)
                self.early.append(self.universe - {name})
        now = time.perf_counter()
        long = sorted(name for name in self.tried if self._running_since(self.universe - {name}) < now - LONG_S)
        for pair in (frozenset((a, b)) for i, a in enumerate(long) for b in long[i + 1:]):
            if pair not in self.paired and self._in_flight() < self.jobs + SPECULATION_EXTRA:
                self.paired.add(pair)
                self._dispatch([self.universe - pair])
        while self.early and self._in_flight() < self.jobs:
            self._dispatch([self.early.pop(0)])

    def _running_since(self, s: frozenset) -> float:
        """When the run of ``s`` started (its deadline less the grace it got then), if it runs now
        (else infinity)."""
        due, pid = self.deadlines.get(self.ids.get(s), (None, None))
        return float("inf") if pid is None else due - self._grace()

    def speculate(self, order: list[str], target: tuple) -> None:
        """Run, on idle cores, what ddmin asks for last or often: the full set without each service
        (its optional step), then without each pair of the SPECULATED_PAIRS first-called ones (a
        removal that diverges early costs most) whose singles do not change the outcome ``target``."""
        first = order[:SPECULATED_PAIRS]
        self.target = target
        self.queue += [self.universe - {name} for name in order]
        self.queue += [self.universe - {a, b} for i, a in enumerate(first) for b in first[i + 1:]]

    def _idle_work(self) -> None:
        while self.queue and self._in_flight() < self.jobs + SPECULATION_EXTRA:
            s = self.queue.pop(0)
            if len(self.universe - s) == 2 and any(self._alone_changes(name) for name in self.universe - s):
                continue  # without one of the two the outcome changes already: a cheap, early failure
            self._dispatch([s])

    def _alone_changes(self, name: str) -> bool:
        known = self._known(self.universe - {name})
        return known is not None and _outcome(known) != self.target

    def _in_flight(self) -> int:
        """Candidate runs going, and sets sent that no run has started yet."""
        return len(self.active) + sum(1 for _, pid in self.deadlines.values() if pid is None)

    def runs(self, sets: list[frozenset]) -> list[dict]:
        self._dispatch(sets)
        while not all(self._known(s) is not None for s in sets):
            if not self.deadlines and self.deferred:
                self._landed(())
            self._idle_work()
            self._receive(snapshot.POLL_S)
            self._expire()
        self._idle_work()
        return [self._known(s) for s in sets]

    def close(self) -> None:
        with snapshot.uninterrupted():
            self._close()

    def _close(self) -> None:
        self.hub.close()
        deadline = time.perf_counter() + SHUTDOWN_S
        for pid in self.session.frozen:  # each frozen copy reaps its own children before it leaves
            while True:
                try:
                    if os.waitpid(pid, os.WNOHANG)[0]:
                        break
                except ChildProcessError:
                    break
                if time.perf_counter() > deadline:  # never hang: end it (its own copies die with it)
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    break
                time.sleep(snapshot.POLL_S / 5)


class Minimizer:
    def __init__(self, image: str, options: dict, jobs: int | None = None, log=lambda message: None,
                 fresh: bool = False):
        self.image, self.options, self.log = image, options, log
        self.jobs = jobs
        self.fresh = fresh or not snapshot.available()
        self.runs = 0
        self._cache: dict[frozenset, dict] = {}
        self.runner = None

    def _runs(self, sets: list[list[str]]) -> list[dict]:
        todo = list({frozenset(s) for s in sets} - set(self._cache))
        for s, result in zip(todo, self.runner.runs(todo) if todo else []):
            self._cache[s] = result
        self.runs += len(todo)
        return [self._cache[frozenset(s)] for s in sets]

    def minimize(self) -> dict:
        started = _cpu_seconds(resource.RUSAGE_SELF) + _cpu_seconds(resource.RUSAGE_CHILDREN)
        self.runner = FreshRuns(self.image, self.options, self.jobs) if self.fresh else \
            SnapshotRuns(self.image, self.options, self.jobs)
        try:
            result = self._minimize()
        finally:
            self.runner.close()
        if "input_error" not in result:  # every process that ran a candidate, this one included (each is reaped)
            spent = _cpu_seconds(resource.RUSAGE_SELF) + _cpu_seconds(resource.RUSAGE_CHILDREN) - started
            result["cpu_s"] = round(spent, 2)
        return result

    def _minimize(self) -> dict:
        baseline = self.runner.baseline()
        self.runs += 1
        if "input_error" in baseline:
            return baseline
        target = _outcome(baseline)
        called = sorted(n for n in baseline["usage"]["services"] if n in TABLE_SERVICES)
        self.runner.universe = frozenset(called)
        if not self.fresh:
            first = {}
            for call in baseline["calls"]:
                first.setdefault(call["service"], call["seq"])
            self.runner.speculate(sorted(called, key=first.get), target)
        self.log(f"full run: {target}; {len(called)} boot and runtime services called")
        passes = lambda result: _outcome(result) == target  # noqa: E731
        current, n = called, 2
        if passes(self._runs([[]])[0]):
            current = []
        while len(current) >= 2:
            parts = _split(current, n)
            complements = [[s for s in current if s not in part] for part in parts]
            results = self._runs(parts + complements)
            subset = next((p for p, r in zip(parts, results) if passes(r)), None)
            complement = next((c for c, r in zip(complements, results[len(parts):]) if passes(r)), None)
            if subset is not None:
                current, n = subset, 2
            elif complement is not None:
                current, n = complement, max(n - 1, 2)
            elif n >= len(current):
                break
            else:
                n = min(len(current), 2 * n)
            self.log(f"{len(current)} services left after {self.runs} runs")
        optional = [s for s in called if s not in current]
        without = self._runs([[s for s in called if s != name] for name in optional])
        return {
            "image": self.image,
            "outcome": baseline["outcome"],
            "exit_status": baseline.get("exit_status"),
            "services": current,
            "called": called,
            "optional": {name: {"outcome": r["outcome"], "exit_status": r.get("exit_status"),
                                "console": r["console"], "unimplemented": r["unimplemented"]}
                         for name, r in zip(optional, without)},
            "runs": self.runs,
            "executions": self.runner.executions,
            "snapshots": not self.fresh,
        }
