"""What the benchmarks share: their common options, timing a fresh process, the engine in use.

Each benchmark is a script (``python3 benchmarks/NAME.py``), so this folder is on its
``sys.path`` and ``import _common`` finds this module.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EFISTUB = [sys.executable, "-m", "efistub"]
# efistub's bytecode for the timed processes: `pip install .` compiles it at install, but this source tree's
# (an editable install) is compiled by every process where PYTHONDONTWRITEBYTECODE=1 is set, as here:
# about 0.1 s a process (docs/performance.md, "Start-up and the end of a run").
PYCACHE = Path(tempfile.gettempdir()) / "efistub-benchmarks-pycache"


def parser(doc: str, repeat: int = 3, jobs: int | None = None) -> argparse.ArgumentParser:
    """The options every benchmark takes: --corpus (default: EFISTUB_CORPUS, else ../shared/corpus),
    --repeat, --json, and --jobs when ``jobs`` gives its default."""
    p = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    p.add_argument("--corpus", default=os.environ.get("EFISTUB_CORPUS", str(ROOT.parent / "shared" / "corpus")))
    p.add_argument("--repeat", type=int, default=repeat)
    if jobs is not None:
        p.add_argument("--jobs", type=int, default=jobs)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    return p


def corpus_file(corpus: str, relative: str) -> Path:
    """A corpus file the benchmark needs; a one-line exit when it is missing."""
    path = Path(corpus) / relative
    if not path.exists():
        raise SystemExit(f"{path} is missing (--corpus DIR)")
    return path


def engine_line() -> str:
    """The first line of `efistub engine status` (which engine runs, for the table's heading)."""
    return subprocess.run(EFISTUB + ["engine", "status"], capture_output=True, text=True).stdout.split("\n")[0]


def installed_env(env: dict | None = None) -> dict:
    """``env`` (default: this process's) with efistub's bytecode cached in PYCACHE, compiled here once,
    so that a timed efistub process starts as an installed one does."""
    env = dict(os.environ if env is None else env, PYTHONPYCACHEPREFIX=str(PYCACHE))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if not getattr(installed_env, "compiled", False):
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "efistub")], env=env, check=True)
        installed_env.compiled = True
    return env


def _kill(pid: int) -> None:
    """SIGKILL without Popen.kill, whose poll() would reap the process before os.wait4 reads its rusage."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def timed(command: list[str], *, env: dict | None = None, until: bytes | None = None, timeout: float = 300,
          merge: bool = True, codes: tuple[int, ...] | None = None) -> dict:
    """Run ``command`` as a fresh process: its wall and CPU seconds, peak RSS and output.

    ``env``: the process's environment; default: this one's with efistub's bytecode cached (installed_env).

    With ``until``, the process is killed once its output shows those bytes (or at ``timeout``), and
    ``ok`` says whether it did; otherwise it runs to its end and ``ok`` says whether it exited 0.
    ``merge``: stderr joins the output (else it is kept apart, as ``errors``). ``codes``: the exit codes
    that may end the benchmark's run at all; any other exits the benchmark with the command's last lines.
    """
    env = installed_env() if env is None else env
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env,
                                stderr=subprocess.STDOUT if merge else errors)
        if until is None:  # to its end (killed at the timeout)
            killer = threading.Timer(timeout, _kill, (proc.pid,))
            killer.start()
            output = proc.stdout.read()
            killer.cancel()
        else:  # to the marker, then killed
            output, deadline = b"", start + timeout
            os.set_blocking(proc.stdout.fileno(), False)
            while until not in output[-len(until) - 65536:] and time.perf_counter() < deadline:
                chunk = proc.stdout.read(65536)
                if chunk:
                    output += chunk
                elif chunk == b"":  # end of output: the process is ending (reaped by wait4 below, not poll)
                    break
                else:  # None: nothing to read yet
                    time.sleep(0.002)
            wall = time.perf_counter() - start
            _kill(proc.pid)
        _, status, usage = os.wait4(proc.pid, 0)
        if until is None:
            wall = time.perf_counter() - start
        proc.stdout.close()
        errors.seek(0)
        stderr = errors.read().decode(errors="replace")
    returncode = os.waitstatus_to_exitcode(status)
    ok = until in output if until is not None else returncode == 0
    text = output.decode(errors="replace")
    if codes is not None and until is None and returncode not in codes:
        raise SystemExit(f"{' '.join(command)} failed ({returncode}): {text[-1000:]}{stderr[-2000:]}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "rss_mib": usage.ru_maxrss / 1024,
            "ok": ok, "returncode": returncode, "output": text, "errors": stderr}
