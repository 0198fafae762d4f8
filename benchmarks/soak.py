#!/usr/bin/env python3
"""A soak: many runs in one Python process through the API, then runs in worker processes.

- guest: --runs consecutive runs (1,000) of a small guest (tests/guests/x86_64/hello.efi
  booted from an ESP folder, so that every run also builds the ESP's disk image in a
  temporary file);
- kernel: --kernel-runs runs (50) of the 6.12 x86_64 corpus kernel's EFI stub to its hand-off;
- parallel: --parallel runs (20: guests of every architecture and the kernel) in --jobs (2)
  worker processes, whose reports must equal those of the same runs made serially here.

After a warm-up (the first tenth of the runs, at least 5) the resident set (measured after
garbage collection and glibc's malloc_trim, so that it is what stays live) must stay within
10 % of what it was then; threads and open file descriptors must be as many as after the
warm-up, and the temporary folder (TMPDIR, a fresh one) empty. Prints one table; exit 1
when an invariant does not hold. docs/reliability.md has the figures.

    python3 benchmarks/soak.py [--corpus DIR] [--runs N] [--kernel-runs N] [--parallel N] [--jobs N]
                               [--json FILE]
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
GUESTS = HERE.parent / "tests" / "guests"
GUEST = GUESTS / "x86_64" / "hello.efi"
KERNEL = "x86_64/vmlinuz-6.12.117+deb13-amd64"
CMDLINE = "console=ttyS0"
GROWTH_LIMIT = 0.10  # of the resident set after the warm-up
PARALLEL_GUESTS = ("hello", "misc", "memory", "events", "variables")
ARCHES = ("x86_64", "aarch64", "riscv64", "ia32")


def rss() -> int:
    """The resident set of this process in bytes (Linux); the peak where /proc is missing."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def settle() -> None:
    """Collect garbage and give the C heap's free memory back (glibc's malloc_trim), so that the
    resident set measures what is live, not the high-water mark of the last run's buffers."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def threads_now() -> int:
    """Live threads, once the runs' watchdog timers that were cancelled or fired have ended (a
    timer still waiting is counted: it would be a leak)."""
    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer) and thread.finished.is_set():
            thread.join()
    return threading.active_count()


def open_fds() -> int:
    for folder in ("/proc/self/fd", "/dev/fd"):
        if os.path.isdir(folder):
            return len(os.listdir(folder))
    return -1


def comparable(report: dict) -> dict:
    """A report without what differs from run to run by nature: its timings."""
    return {k: v for k, v in report.items() if k != "timing"}


def job(image: str, options: dict) -> dict:
    """One run in a worker (or here): the report, comparable."""
    from efistub.machine import Machine

    return comparable(Machine(image, **options).run().to_dict())


def soak(name: str, runs: int, make, temp: str) -> dict:
    """``runs`` runs of ``make()`` (a Machine) in this process, with the invariants measured."""
    warmup = min(runs, max(5, runs // 10))
    every = max(1, (runs - warmup) // 20)  # about 20 samples after the warm-up
    threads = fds = None  # counted after the warm-up: a first run opens what later runs share
    warm_rss, after, outcomes = None, [], {}
    started = time.perf_counter()
    for i in range(1, runs + 1):
        report = make().run()
        outcomes[report.outcome] = outcomes.get(report.outcome, 0) + 1
        del report
        if i == warmup or i > warmup and ((i - warmup) % every == 0 or i == runs):
            settle()
            if i == warmup:
                warm_rss, threads, fds = rss(), threads_now(), open_fds()
            else:
                after.append(rss())
    seconds = time.perf_counter() - started
    after = after or [warm_rss]
    peak = max(after)
    leftovers = os.listdir(temp)
    row = {
        "phase": name, "runs": runs, "seconds": round(seconds, 1), "per_run_s": round(seconds / runs, 4),
        "outcomes": outcomes, "rss_warm_mib": warm_rss / 2**20, "rss_peak_mib": peak / 2**20,
        "rss_end_mib": after[-1] / 2**20, "growth": (peak - warm_rss) / warm_rss,
        "rss_samples_mib": [round(x / 2**20, 1) for x in [warm_rss] + after],
        "threads": (threads, threads_now()), "fds": (fds, open_fds()), "temp_files": leftovers,
    }
    row["ok"] = (row["growth"] <= GROWTH_LIMIT and row["threads"][0] == row["threads"][1]
                 and row["fds"][0] == row["fds"][1] and not leftovers)
    return row


def parallel(jobs: list[tuple[str, dict]], workers: int, temp: str) -> dict:
    """The runs in ``workers`` processes and here, one after the other: are the reports the same?"""
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(job, image, options) for image, options in jobs]
        remote = [f.result() for f in futures]
    parallel_s = time.perf_counter() - started
    started = time.perf_counter()
    local = [job(image, options) for image, options in jobs]
    serial_s = time.perf_counter() - started
    different = [os.path.relpath(image, HERE.parent) for (image, _), a, b in zip(jobs, remote, local) if a != b]
    return {"phase": "parallel", "runs": len(jobs), "workers": workers, "parallel_s": round(parallel_s, 1),
            "serial_s": round(serial_s, 1), "same": len(jobs) - len(different), "different": different,
            "temp_files": os.listdir(temp), "ok": not different and not os.listdir(temp)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default=os.environ.get("EFISTUB_CORPUS", str(HERE.parent.parent / "shared" /
                                                                                 "corpus")))
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--kernel-runs", type=int, default=50)
    parser.add_argument("--parallel", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = parser.parse_args()

    sys.path.insert(0, str(HERE.parent))
    from efistub import engine
    from efistub.machine import Machine

    esp = Path(tempfile.mkdtemp(prefix="efistub-soak-esp-"))
    temp = tempfile.mkdtemp(prefix="efistub-soak-tmp-")  # every temporary file of the runs goes here
    os.environ["TMPDIR"] = tempfile.tempdir = temp  # the workers inherit it
    try:
        (esp / "EFI" / "BOOT").mkdir(parents=True)
        shutil.copy(GUEST, esp / "EFI" / "BOOT" / "BOOTX64.EFI")
        boot = str(esp / "EFI" / "BOOT" / "BOOTX64.EFI")
        rows = [soak("guest", args.runs, lambda: Machine(boot, esp=str(esp), boot_path="\\EFI\\BOOT\\BOOTX64.EFI"),
                     temp)]
        kernel = Path(args.corpus) / KERNEL
        if args.kernel_runs and kernel.exists():
            rows.append(soak("kernel", args.kernel_runs, lambda: Machine(str(kernel), cmdline=CMDLINE), temp))
        elif args.kernel_runs:
            print(f"soak: {kernel} is missing: no kernel phase", file=sys.stderr)
        jobs = [(str(GUESTS / arch / f"{name}.efi"), {}) for name in PARALLEL_GUESTS for arch in ARCHES]
        if kernel.exists():
            jobs = jobs[:args.parallel - 2] + [(str(kernel), {"cmdline": CMDLINE})] * 2
        rows.append(parallel(jobs[:args.parallel], args.jobs, temp))
        used = engine.loaded()
    finally:
        shutil.rmtree(esp, ignore_errors=True)
        shutil.rmtree(temp, ignore_errors=True)

    print(f"engine: {used.engine} ({used.reason}); {os.cpu_count()} cores; python {sys.version.split()[0]}")
    print(f"{'phase':<8}{'runs':>6}{'s':>8}{'s/run':>8}{'RSS warm':>10}{'peak':>8}{'end':>8}{'growth':>8}"
          f"{'threads':>9}{'fds':>8}{'temp':>6}  {'outcomes':<24}ok")
    for r in rows:
        if r["phase"] == "parallel":
            continue
        outcomes = ", ".join(f"{k} {v}" for k, v in r["outcomes"].items())
        print(f"{r['phase']:<8}{r['runs']:>6}{r['seconds']:>8.1f}{r['per_run_s']:>8.3f}{r['rss_warm_mib']:>8.1f}M"
              f"{r['rss_peak_mib']:>7.1f}M{r['rss_end_mib']:>7.1f}M{r['growth']:>+8.1%}"
              f"{'%d→%d' % r['threads']:>9}{'%d→%d' % r['fds']:>8}{len(r['temp_files']):>6}  {outcomes:<24}"
              f"{'yes' if r['ok'] else 'NO'}")
    p = rows[-1]
    print(f"parallel: {p['runs']} runs on {p['workers']} worker processes in {p['parallel_s']:.1f} s "
          f"(serial {p['serial_s']:.1f} s): {p['same']}/{p['runs']} reports the same as serial"
          + (f"; different: {', '.join(p['different'])}" if p["different"] else "")
          + f"; temp files left {len(p['temp_files'])}  {'yes' if p['ok'] else 'NO'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"engine": used.engine, "rows": rows}, f, indent=2)
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
