#!/usr/bin/env python3
"""Cost of one service call, by dispatch path: native (C trampoline) or Python.

A guest program of ours (tests/guests/bench.c) calls a C-handled service (CopyMem
of 16 bytes) or a Python-handled one (GetVariable of a missing variable) N times;
the same loop without calls is subtracted. Times are µs per call, including the
guest's own call; medians of --repeat runs. Records render their arguments when the
report is made: the last line is that cost (report.to_json()) per Python-handled call.

Each run starts from a collected heap (gc.collect()), as the one run of an `efistub run`
process does: a finished Machine lives in reference cycles until the cyclic collector
frees it, and until then the records of the benchmark's earlier runs (20,000 a run) are
walked by the next run's collections too (0.7-1.5 µs more per Python-handled call).

    python3 benchmarks/dispatch.py [--calls N] [--repeat R] [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The installed efistub (editable or not), whose native trampoline is built; only the guest
# program comes from this tree.
from efistub import native  # noqa: E402
from efistub.machine import Machine  # noqa: E402

BENCH = ROOT / "tests" / "guests" / "x86_64" / "bench.efi"
SERVICES = {"c": "copymem", "python": "getvariable"}


def run_seconds(dispatch: str, loop: str, calls: int) -> tuple[float, float]:
    """The run's seconds, and the seconds its report takes to render as JSON."""
    gc.collect()  # the earlier runs' machines go now, not during this run's collections
    report = Machine(str(BENCH), dispatch=dispatch, cmdline=f"{loop} {calls}").run()
    if report.outcome != "exit" or report.exit_status != "EFI_SUCCESS":
        raise SystemExit(f"bench.efi {loop} {calls} under {dispatch} dispatch ended with {report.outcome}")
    started = time.perf_counter()
    report.to_json()
    return report.timing["run_s"], time.perf_counter() - started


def per_call_us(dispatch: str, service: str, calls: int, repeat: int) -> tuple[float, float]:
    """Median µs per call: of the run, and of rendering the report."""
    runs, reports = [], []
    for _ in range(repeat):
        loop, loop_report = run_seconds(dispatch, "none", calls)
        run, report = run_seconds(dispatch, SERVICES[service], calls)
        runs.append((run - loop) / calls * 1e6)
        reports.append((report - loop_report) / calls * 1e6)
    return statistics.median(runs), statistics.median(reports)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    modes = ["native", "python"] if native.available() else ["python"]
    result = {}
    for mode in modes:
        for service in SERVICES:
            run, report = per_call_us(mode, service, args.calls, args.repeat)
            result[f"{mode}_{service}_us"] = round(run, 3)
            if service == "python":
                result[f"{mode}_python_report_us"] = round(report, 3)
    result.update(calls=args.calls, repeat=args.repeat, engine=__import__("efistub.engine").engine.loaded().engine)
    if "native_c_us" in result:
        for service in SERVICES:
            result[f"speedup_{service}"] = round(result[f"python_{service}_us"] / result[f"native_{service}_us"], 1)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"µs per call ({args.calls} calls, median of {args.repeat}, engine {result['engine']})")
    print(f"{'dispatch':<10}{'C-handled (CopyMem 16 B)':>28}{'Python-handled (GetVariable)':>32}")
    for mode in modes:
        print(f"{mode:<10}{result[f'{mode}_c_us']:>28.3f}{result[f'{mode}_python_us']:>32.3f}")
    if "speedup_c" in result:
        print(f"{'speedup':<10}{result['speedup_c']:>27.1f}x{result['speedup_python']:>31.1f}x")
    for mode in modes:
        print(f"report.to_json() per Python-handled call, {mode} dispatch: {result[f'{mode}_python_report_us']:.3f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
