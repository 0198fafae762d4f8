"""Snapshots of a run at a service call: ``os.fork()`` at the dispatch point.

A run is forked where a service call reaches the Python dispatcher, before the call
is answered (``Dispatcher.snapshot``). The child is a copy of the whole process: the
engine's registers and guest RAM (copy-on-write, so a decompressed kernel is not
copied), the firmware state, the C trampoline's state and call records, virtual time.
It answers that call differently (a status, or with services left out) and runs on;
the parent goes on as if nothing happened. Nothing is shared afterwards:

- no thread crosses the fork: the run loop's watchdog is stopped just before it and
  started again after it, in the child with a deadline of its own (--timeout from the
  fork);
- a forked run writes no file (no --vars save, no --save-tpm), prints nothing, and never
  forks again unless its session says so;
- host files are read with ``os.pread`` (volumes, disks), so shared descriptors keep
  no shared offset; runs that write to the host (--esp-writable) or talk to an outside
  process (--tpm swtpm) cannot be forked;
- a child is in a process group of its own (the terminal's Ctrl-C reaches only the
  parent, which ends its children) and, on Linux, dies with its parent.

Two shapes use this:

- ``Pool``: leaves. The parent forks children and each sends one result back through a
  pipe (pickle) and leaves with ``os._exit``. The parent drains the pipes whenever it has
  control, reaps every child, and kills one that outlives its deadline (a hang).
  ``Machine.fork_at`` and ``efistub sweep`` use it.
- ``Hub`` and ``serve``: a tree. A process stopped at a call registers with the hub (the
  controller) and waits for commands; each command forks a child that runs on from that
  call. Children report over one shared channel. ``efistub minimize`` uses it.

The N-th call is the N-th record of the report (``seq``), C-handled calls included: a
session routes the C-handled services it may fork at to Python (``routed``), which
changes no report.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import pickle
import selectors
import signal
import socket
import struct
import sys
import time
import traceback
from dataclasses import dataclass

from .status import Status

KILL_GRACE_S = 5.0  # a forked run still alive this long after its --timeout is killed: a hang...
MIN_GRACE_S = 1.0  # ...or after as long as its --timeout, when that is shorter, but not less than this
POLL_S = 0.05  # how often the parent looks at its children while it waits
CHUNK = 32 << 10  # bytes per message on a Hub's shared channel (each one record: writes never interleave)
PR_SET_PDEATHSIG = 1  # prctl(2)
_HEADER = struct.Struct("<IIQ")  # sender pid, chunk count, message number
_inherited: set[int] = set()  # descriptors of the parent's side, closed in every child


def available() -> bool:
    return hasattr(os, "fork")


def _set_parent_death_signal(parent: int) -> None:
    """Linux: die with the parent (then no forked run outlives an aborted sweep)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


@contextlib.contextmanager
def uninterrupted():
    """Ctrl-C waits until the block is done (a fork is registered, a child reaped): KeyboardInterrupt
    comes right after it, never between a fork and its bookkeeping. Python runs the handler installed
    when it gets to a pending signal, so one caught just before the block waits too."""
    caught: list[int] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    except ValueError:  # not the main thread, which alone hears signals
        yield
        return
    me = os.getpid()
    try:
        yield
    finally:
        if os.getpid() == me:  # a child forked in the block keeps the handlers fork() gave it
            signal.signal(signal.SIGINT, previous)
            if caught:
                if callable(previous):
                    previous(signal.SIGINT, None)  # Python's default handler raises KeyboardInterrupt
                elif previous == signal.SIG_DFL:
                    os.kill(me, signal.SIGINT)


def fork(machine, *, emulating: bool = True) -> int:
    """Fork the run of ``machine``; 0 in the child, the child's pid in the parent.

    ``emulating``: the fork happens inside the engine (in a service call), so the
    watchdog is stopped around it and each side starts its own. The child closes the
    descriptors of the parent's side (its pipes to other children, the hub's end)."""
    loop = machine._loop
    if emulating:
        loop.stop_watchdog()
    parent = os.getpid()
    gc.freeze()  # the child's collections then leave the parent's objects (and their pages) alone
    pid = os.fork()
    if pid:
        gc.unfreeze()
        if emulating:
            loop.start_watchdog()
        return pid
    for fd in _inherited:
        try:
            os.close(fd)
        except OSError:
            pass
    _inherited.clear()
    try:
        os.setpgid(0, 0)  # the terminal's Ctrl-C goes to the parent, which ends its children
    except OSError:
        pass
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGPIPE):
        signal.signal(number, signal.SIG_DFL)
    _set_parent_death_signal(parent)
    return 0


def resume(machine, *, emulating: bool = True) -> None:
    """Make a forked child a run of its own: quiet, writing no file, with its own --timeout."""
    machine.console_sink = None
    fw = machine.platform.fw
    fw._console_sink = None
    machine.platform.dispatcher.trace = None
    machine.save_vars = False
    if getattr(machine.options, "save_tpm", None) is not None:
        machine.options.save_tpm = None
    loop = machine._loop
    loop.deadline = time.perf_counter() + machine.options.timeout
    if emulating:
        loop.start_watchdog()


def check_forkable(machine) -> None:
    """ValueError when a run of ``machine`` cannot be forked safely."""
    if not available():
        raise ValueError("forked runs need os.fork(), which this platform lacks")
    opts = machine.options
    if opts.esp_writable:
        raise ValueError("forked runs would share the --esp-writable folder; drop --esp-writable")
    if getattr(opts, "tpm", None) == "swtpm":
        raise ValueError("forked runs would share one swtpm process; use --tpm model or none")


def kill_grace(timeout: float) -> float:
    """How long after its --timeout a forked run that has not ended is killed."""
    return max(MIN_GRACE_S, min(KILL_GRACE_S, timeout))


def child_exit(fd: int, payload) -> None:
    """Send ``payload`` (pickled) through ``fd`` and leave this forked process at once."""
    try:
        data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        code = 0
    except BaseException:  # noqa: BLE001 - a child never returns into its parent's code
        code = 1
    os._exit(code)


def child_failed(fd: int) -> None:
    """The forked run raised: send the traceback as its result and leave."""
    child_exit(fd, {"child_error": traceback.format_exc()})


# -- leaves: a pool of forked runs, each sending one result -----------------------------------
class Child:
    def __init__(self, pid: int, fd: int, key, deadline: float):
        self.pid, self.fd, self.key, self.deadline = pid, fd, key, deadline
        self.data = bytearray()


class Pool:
    """Forked runs of one parent, ``jobs`` at a time (None: no limit)."""

    def __init__(self, jobs: int | None, timeout: float):
        self.jobs, self.timeout = jobs, timeout
        self.running: dict[int, Child] = {}
        self.selector = selectors.DefaultSelector()

    def fork(self, machine, key, *, emulating: bool = True) -> int | None:
        """Fork a run; in the child the write end of its result pipe, in the parent None."""
        with uninterrupted():
            read, write = os.pipe()
            pid = fork(machine, emulating=emulating)
            if pid == 0:
                os.close(read)
                return write
            os.close(write)
            os.set_blocking(read, False)
            _inherited.add(read)
            child = Child(pid, read, key, time.perf_counter() + self.timeout + kill_grace(self.timeout))
            self.running[read] = child
            self.selector.register(read, selectors.EVENT_READ, child)
        return None

    def full(self) -> bool:
        return self.jobs is not None and len(self.running) >= self.jobs

    def poll(self, wait: float = 0.0) -> list[tuple[object, object]]:
        """Results of children that ended, as (key, payload): waits up to ``wait`` seconds for
        one. A child that died without a result gives {"child_error": ...}; one killed at its
        deadline {"killed": seconds}."""
        done = []
        if self.running:
            for selected, _ in self.selector.select(wait):
                child = selected.data
                while True:
                    try:
                        chunk = os.read(child.fd, 1 << 20)
                    except BlockingIOError:
                        break
                    if not chunk:
                        done.append(self._finish(child))
                        break
                    child.data += chunk
        elif wait:
            time.sleep(wait)
        now = time.perf_counter()
        for child in [c for c in self.running.values() if c.deadline <= now]:
            try:
                os.kill(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            done.append(self._finish(child, killed=True))
        return done

    def _finish(self, child: Child, killed: bool = False):
        with uninterrupted():
            self.selector.unregister(child.fd)
            del self.running[child.fd]
            os.close(child.fd)
            _inherited.discard(child.fd)
            _, status = os.waitpid(child.pid, 0)
        if killed:
            return child.key, {"killed": self.timeout}
        try:
            return child.key, pickle.loads(bytes(child.data))
        except Exception:  # noqa: BLE001 - a child that died mid-write, or was killed
            how = (f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
                   else f"exit status {os.waitstatus_to_exitcode(status)}")
            return child.key, {"child_error": f"the forked run ended ({how}) without a result"}

    def wait_for_slot(self, on_done) -> None:
        """Wait until fewer than ``jobs`` children run; ``on_done(results)`` as they end."""
        while self.full():
            on_done(self.poll(POLL_S))

    def drain(self, on_done) -> None:
        """Wait for every child; ``on_done(results)`` as they end."""
        while self.running:
            on_done(self.poll(POLL_S))

    def close(self) -> None:
        """After the last child: the selector goes."""
        self.selector.close()

    def kill_all(self) -> None:
        """End every child now (and reap it)."""
        with uninterrupted():
            for child in list(self.running.values()):
                try:
                    os.kill(child.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self._finish(child, killed=True)


# -- a tree: frozen snapshots that fork on command --------------------------------------------
def _send_records(sock: socket.socket, obj, fds: tuple[int, ...] = ()) -> None:
    """One message as records of at most CHUNK bytes; ``fds`` ride on the first."""
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    chunks = [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)] or [b""]
    number = time.monotonic_ns()
    for i, chunk in enumerate(chunks):
        record = _HEADER.pack(os.getpid(), len(chunks), number) + chunk
        if i == 0 and fds:
            socket.send_fds(sock, [record], list(fds))
        else:
            sock.sendall(record)


class Hub:
    """The controller's end of a tree: nodes register here, children report here."""

    def __init__(self):
        self.mine, self.theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        _inherited.add(self.mine.fileno())
        self.nodes: dict[int, socket.socket] = {}  # pid -> command channel
        self._partial: dict[tuple[int, int], list[bytes]] = {}  # (sender, message) -> records so far
        self._fds: dict[tuple[int, int], list[int]] = {}  # descriptors that came with a message's first record

    def messages(self, wait: float) -> list[tuple[dict, socket.socket | None]]:
        """Complete messages that arrived (waiting up to ``wait`` s for the first), each with the
        command channel it brought (a node's registration), else None."""
        out = []
        self.mine.settimeout(wait)
        while True:
            try:
                record, fds, _, _ = socket.recv_fds(self.mine, CHUNK + _HEADER.size, 1)
            except (socket.timeout, BlockingIOError):
                break
            self.mine.settimeout(0)
            pid, count, number = _HEADER.unpack_from(record)
            key = (pid, number)
            parts = self._partial.setdefault(key, [])
            parts.append(record[_HEADER.size:])
            if fds:
                self._fds[key] = fds
            if len(parts) == count:
                del self._partial[key]
                fds = self._fds.pop(key, [])
                channel = socket.socket(fileno=fds[0]) if fds else None
                if channel is not None:
                    _inherited.add(channel.fileno())
                    self.nodes[pid] = channel
                out.append((pickle.loads(b"".join(parts)), channel))
        return out

    def command(self, pid: int, message) -> None:
        _send_records(self.nodes[pid], message)

    def close(self) -> None:
        """Close every command channel and the controller's end: the nodes see the end and leave,
        reaping their children. Channels of nodes whose registration was not read yet go with the
        controller's end (the kernel drops the descriptors in flight); a node registering after
        that finds no controller and ends."""
        for channel in self.nodes.values():
            _inherited.discard(channel.fileno())
            channel.close()
        self.nodes.clear()
        _inherited.discard(self.mine.fileno())
        self.mine.close()
        self.theirs.close()  # the copies of the tree keep theirs


def report(hub: Hub, message: dict) -> None:
    """From any process of the tree: send ``message`` to the controller (a process whose controller
    has gone ends here)."""
    try:
        _send_records(hub.theirs, message)
    except OSError:
        os._exit(0)


def serve(hub: Hub, registration: dict, first: list | tuple = ()):
    """Freeze this process at its call: register with the hub, then fork a child for every
    command (those in ``first`` before any other). Returns only in a child, with its command;
    the frozen process leaves when the controller closes its channel."""
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        _send_records(hub.theirs, {"node": os.getpid(), **registration}, fds=(theirs.fileno(),))
    except OSError:  # the controller has gone
        os._exit(0)
    theirs.close()
    signal.signal(signal.SIGCHLD, _reap)  # children are reaped as they end (their CPU time adds up to ours)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a parent's shutdown ends runs, never nodes
    children: list[int] = []
    commands = list(first)
    partial: list[bytes] = []
    while True:
        while commands:
            command = commands.pop(0)
            node = os.getpid()
            pid = os.fork()
            if pid == 0:
                mine.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                _set_parent_death_signal(node)
                return command
            children.append(pid)
        try:
            record = mine.recv(CHUNK + _HEADER.size)
        except OSError:
            record = b""
        if not record:
            break
        _, count, _ = _HEADER.unpack_from(record)
        partial.append(record[_HEADER.size:])
        if len(partial) == count:
            commands.append(pickle.loads(b"".join(partial)))
            partial = []
    for pid in children:  # runs still going end now; nodes below end on their own channel's close
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    try:
        while True:
            os.wait()
    except ChildProcessError:  # every child has ended
        pass
    os._exit(0)


def _reap(signum, frame) -> None:
    """SIGCHLD in a frozen copy: reap every child that has ended."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


# -- sessions: what forks a run (Machine._session) ------------------------------------------
def run_session(machine, run):
    """Machine.run with a session: a forked copy of the run ends in here (it never returns into
    its parent's code, not even with an exception); the run itself returns its report."""
    session = machine._session
    try:
        report = run()
    except BaseException:
        if session.in_child:
            session.child_failed()
        session.abort()
        raise
    return session.finished(machine, report)


def c_handled() -> set[str]:
    """Services the native trampoline answers in C (they reach Python only when routed there)."""
    from . import native
    from .catalog import load_all

    if native.lib is None:
        return set()
    return {name for name in load_all() if native.lib.efistub_handler(name.encode())}


def call_number(dispatcher, record) -> int:
    """The report's number (seq) of the call being dispatched: Python calls before it, and calls
    handled in C before it."""
    return len(dispatcher._python_calls) - 1 + record.native_before


@dataclass
class Fork:
    """One forked run Machine.fork_at asked for."""

    seq: int
    status: str
    service: str | None = None  # the service of call seq; None when the run ended before that call
    report: object = None  # the forked run's efistub.Report
    error: str | None = None  # why there is no report


class PoolSession:
    """What the sessions that fork copies of a run from a Pool at its calls share (ForkAt and
    sweep.Sweep): in a forked copy ``child`` is where its result goes."""

    child: int | None = None
    pool: Pool | None = None

    in_child = property(lambda self: self.child is not None)

    def child_failed(self) -> None:
        child_failed(self.child)

    def _forks_here(self) -> bool:
        """At a call: whether this run may fork there (not in a forked copy, which forks no further);
        the copies that finished meanwhile are collected."""
        if self.child is not None:
            return False
        self._collect(self.pool.poll())
        return True

    def _collect(self, done) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        if self.pool is not None:
            self.pool.kill_all()
            self.pool.close()


class ForkAt(PoolSession):
    """Machine.fork_at: fork at chosen calls, each copy failing its call with a status."""

    def __init__(self):
        from .catalog import load_all

        self.forks: list[Fork] = []
        self.routed = {name for name in c_handled() if load_all()[name].returns == "status"}
        self.child: int | None = None  # in a forked copy: where its report goes
        self.pool: Pool | None = None
        self.machine = None

    def add(self, seq: int, status) -> None:
        if seq < 0:
            raise ValueError("a call number is at least 0")
        self.forks.append(Fork(seq, status.name))

    def attached(self, machine) -> None:
        self.machine = machine
        self.pool = Pool(None, machine.options.timeout)
        machine.platform.dispatcher.snapshot = self._at_call

    def _at_call(self, record, slot: int):
        if not self._forks_here():
            return None
        dispatcher = self.machine.platform.dispatcher
        seq = call_number(dispatcher, record)
        svc = dispatcher.services[slot]
        for index, fork in enumerate(self.forks):
            if fork.seq != seq:
                continue
            fork.service = svc.name
            if svc.returns != "status":
                fork.error = f"call {seq} is {svc.name}, which returns no status"
                continue
            fd = self.pool.fork(self.machine, index)
            if fd is not None:
                self.child = fd
                resume(self.machine)
                return Status.parse(fork.status)
        return None

    def _collect(self, done) -> None:
        for index, payload in done:
            fork = self.forks[index]
            if isinstance(payload, dict):
                fork.error = payload.get("child_error") or f"killed after --timeout {payload['killed']:g} s"
            else:
                fork.report = payload

    def ended(self, machine, outcome: str, details: dict) -> None:
        pass

    def finished(self, machine, report):
        if self.child is not None:
            child_exit(self.child, report)
        self.pool.drain(self._collect)
        self.pool.close()
        for fork in self.forks:
            if fork.service is None and fork.error is None:
                if fork.seq < len(report.calls):  # a call answered in C: one that returns no status
                    fork.service = report.calls[fork.seq].service
                    fork.error = f"call {fork.seq} is {fork.service}, which returns no status"
                else:
                    fork.error = f"the run ended after {len(report.calls)} calls, before call {fork.seq}"
        machine.forks = self.forks
        return report
