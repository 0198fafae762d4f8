"""How ``efistub scan`` runs its tasks: worker processes on this machine, or Dask tasks.

An executor only runs tasks and hands back what each gave, as it finishes: the task's
result, or a ``Crash`` when the worker running it died. What a crash means (a retry,
then the outcome "crashed"), the JSON Lines file, resume and the table are the scan's
(scan.py), the same for every executor.

- ``ProcessExecutor``: fresh worker processes ("spawn"), each given one task at a time,
  so a worker that dies names the one task it was running; a new worker takes its place.
- ``DaskExecutor``: tasks on a dask.distributed cluster, an existing one (a scheduler's
  address) or a LocalCluster of worker processes with one thread each. At most one task
  per worker is in flight, so a worker that dies takes only its own task with it.

An executor is a context manager; leaving it stops its workers (or its own cluster).
"""

from __future__ import annotations

import os
import signal
import time
import traceback
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterator

from .errors import InputError

EXECUTORS = ("process", "dask")
INSTALL = "pip install 'efistub[scan]'"  # the optional dependency group with dask[distributed] and matplotlib
SCHEDULER_CONNECT_S = 10  # how long to wait for an existing Dask scheduler to answer
ALLOWED_FAILURES = "distributed.scheduler.allowed-failures"
WORKER_STOP_S = 5  # a worker asked to stop gets this long before it is killed


@dataclass
class Crash:
    """A task whose worker died while running it."""

    reason: str
    attempts: int = 1  # runs of the task that died with their worker (a Dask scheduler may retry by itself)


def error_record(image: str, error: BaseException, seconds: float | None = None) -> dict:
    """A task that raised instead of giving a result: outcome "error", as a report says it."""
    return {"image": image, "outcome": "error", "seconds": seconds,
            "error": {"error": f"{type(error).__name__}: {error}",
                      "traceback": "".join(traceback.format_exception(type(error), error, error.__traceback__))}}


def run_task(image: str, options: dict, engine: str | None = None) -> dict:
    """One image in a worker: its report as a dict, the input error that stopped it, or what it raised.

    ``engine`` ("fast", "stock" or None for the worker's default) takes effect in a worker that
    has not run an image yet; the report's "engine" says which one ran."""
    from . import engine as engines
    from .parallel import run_image

    started = time.perf_counter()
    try:
        if engine:
            os.environ["EFISTUB_ENGINE"] = engine
            engines.activate(engine)
        return run_image(image, options)
    except Exception as e:  # a worker on another machine without the fast engine, a bug: one record, never lost
        return error_record(image, e, time.perf_counter() - started)


def _serve(conn, task: Callable) -> None:
    """A worker process: run the tasks the scan sends, one at a time, until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the scan decides
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        try:
            result = task(*job)
        except Exception as e:  # a task of the caller's that raised: a record, and the worker goes on
            result = error_record(job[0], e)
        conn.send(result)


def _death(process) -> str:
    process.join(WORKER_STOP_S)
    code = process.exitcode
    if code is None:
        return "its worker process stopped answering"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"its worker process was killed by signal {-code} ({name})"
    return f"its worker process exited with code {code}"


class _Worker:
    def __init__(self, context, task: Callable):
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, task), daemon=True)
        self.process.start()
        child.close()

    def stop(self, kill: bool = False) -> None:
        try:
            if kill:
                self.process.kill()
            else:
                self.conn.send(None)
        except OSError:
            pass
        self.process.join(WORKER_STOP_S)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


class ProcessExecutor:
    """Worker processes on this machine, one task each at a time."""

    name = "process"

    def __init__(self, jobs: int | None = None, task: Callable = run_task):
        self.jobs = jobs or os.cpu_count() or 1
        self.task = task
        import multiprocessing  # here: the command line imports this module for EXECUTORS alone

        self._context = multiprocessing.get_context("spawn")  # fresh interpreters: no engine state inherited
        self._waiting: deque = deque()  # (key, args) not given to a worker yet
        self._idle: list[_Worker] = []
        self._busy: dict[_Worker, str] = {}

    def submit(self, key: str, *args) -> None:
        self._waiting.append((key, args))

    def _give(self) -> None:
        while self._waiting and (self._idle or len(self._busy) < self.jobs):
            worker = self._idle.pop() if self._idle else _Worker(self._context, self.task)
            if not worker.process.is_alive():  # died while idle: its place goes to a new one
                worker.stop(kill=True)
                continue
            key, args = self._waiting.popleft()
            try:
                worker.conn.send(args)
            except OSError:
                self._waiting.appendleft((key, args))
                worker.stop(kill=True)
                continue
            self._busy[worker] = key

    def finished(self) -> Iterator[tuple[str, dict | Crash]]:
        """(key, result or Crash) as tasks finish, until none is left, those submitted meanwhile included."""
        from multiprocessing.connection import wait

        while self._waiting or self._busy:
            self._give()
            ready = set(wait([w.conn for w in self._busy] + [w.process.sentinel for w in self._busy]))
            for worker in [w for w in self._busy if w.conn in ready or w.process.sentinel in ready]:
                key = self._busy.pop(worker)
                try:
                    result = worker.conn.recv()
                except (EOFError, OSError):
                    reason = _death(worker.process)
                    worker.stop(kill=True)
                    yield key, Crash(reason)
                    continue
                self._idle.append(worker)
                yield key, result

    def close(self) -> None:
        for worker in self._idle:
            worker.stop()
        for worker in self._busy:  # an interrupted scan
            worker.stop(kill=True)
        self._idle, self._busy = [], {}
        self._waiting.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def require_dask():
    """dask.distributed, or the one-line error that says how to install it."""
    try:
        import distributed
    except ImportError:
        raise InputError("--executor dask", f"needs dask.distributed, which is not installed: {INSTALL}") from None
    return distributed


def local_cluster(jobs: int | None = None):
    """A LocalCluster of ``jobs`` worker processes with one thread each, whose scheduler marks a task
    crashed at the first death of its worker (the scan decides about retries), quiet on stderr."""
    import logging

    import dask

    distributed = require_dask()
    with dask.config.set({ALLOWED_FAILURES: 0}):
        return distributed.LocalCluster(n_workers=jobs or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                                        dashboard_address=None, silence_logs=logging.CRITICAL)


class DaskExecutor:
    """Tasks on a dask.distributed cluster: the one at ``scheduler`` (tcp://HOST:PORT), or a LocalCluster
    of ``jobs`` workers. The image paths (and --initrd, --esp, ... files) must be the same on every worker."""

    name = "dask"

    def __init__(self, jobs: int | None = None, scheduler: str | None = None, task: Callable = run_task):
        distributed = require_dask()
        from distributed.scheduler import KilledWorker

        self._distributed, self._killed = distributed, KilledWorker
        self.jobs, self.scheduler, self.task = jobs, scheduler, task
        self.cluster = self._client = None  # started at the first task: bad input fails before
        self._waiting: deque = deque()
        self._running: dict = {}  # future -> key
        self._serial = 0

    @property
    def client(self):
        if self._client is None:
            if self.scheduler:
                try:
                    self._client = self._distributed.Client(self.scheduler, timeout=SCHEDULER_CONNECT_S)
                except (OSError, TimeoutError, ValueError) as e:
                    raise InputError(self.scheduler, f"cannot reach the Dask scheduler: {e}") from None
            else:
                self.cluster = local_cluster(self.jobs)
                self._client = self._distributed.Client(self.cluster)
        return self._client

    @property
    def workers(self) -> int:
        return max(1, len(self.client.nthreads()))  # workers come and go: asked each time

    def submit(self, key: str, *args) -> None:
        self._waiting.append((key, args))

    def _give(self) -> None:
        # One task per worker in flight: Dask blames every task a dying worker holds
        limit = self.workers if self._waiting else 0
        while self._waiting and len(self._running) < limit:
            key, args = self._waiting.popleft()
            self._serial += 1
            future = self.client.submit(self.task, *args, key=f"efistub-scan-{self._serial}", pure=False)
            self._running[future] = key

    def finished(self) -> Iterator[tuple[str, dict | Crash]]:
        """(key, result or Crash) as tasks finish, until none is left, those submitted meanwhile included."""
        while self._waiting or self._running:
            self._give()
            done, _ = self._distributed.wait(list(self._running), return_when="FIRST_COMPLETED")
            for future in done:
                key = self._running.pop(future)
                yield key, self._outcome(future, key)
                future.release()

    def _outcome(self, future, key: str) -> dict | Crash:
        if future.status == "cancelled":
            return Crash("the Dask scheduler cancelled it")
        if future.status == "error":
            error = future.exception()
            if isinstance(error, self._killed):
                attempts = error.allowed_failures + 1  # the scheduler's own retries count
                retried = f" (the scheduler ran it {attempts} times)" if attempts > 1 else ""
                return Crash(f"its Dask worker died while running it{retried}", attempts)
            return error_record(key, error)  # a task that could not start there (efistub missing, ...)
        return future.result()

    def close(self) -> None:
        for future in self._running:
            future.cancel()
        self._running, self._waiting = {}, deque()
        if self._client is not None:
            self._client.close()
        if self.cluster is not None:
            self.cluster.close()
        self._client = self.cluster = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def make(name: str, jobs: int | None = None, scheduler: str | None = None, task: Callable = run_task):
    """The executor called ``name`` ("process" or "dask")."""
    if name == "dask":
        return DaskExecutor(jobs, scheduler, task)
    if scheduler:
        raise InputError("--scheduler", "names a Dask scheduler: it needs --executor dask")
    return ProcessExecutor(jobs, task)
