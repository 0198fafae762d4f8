#!/usr/bin/env python3
"""The corpus scanned by both executors of `efistub scan`: the local process pool and Dask, side by side.

Each run is a fresh `efistub scan CORPUS --executor E --jobs N --json FILE` process, timed whole
(Python start-up, the Dask LocalCluster's start and stop included), --repeat times, alternating.
The outcomes of every image must be the same on both; the target (issue 15) is Dask's median
within 1.2 times the process pool's. Prints one row per image (outcome and reason on each
executor) and the times. The engine is the one `efistub engine status` names.

    python3 benchmarks/scan.py [--corpus DIR] [--repeat N] [--jobs N] [--json]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common

EXECUTORS = ("process", "dask")
TARGET = 1.2  # Dask's time over the process pool's, at most


def scan(corpus: str, executor: str, jobs: int, out: Path) -> tuple[float, dict]:
    command = [sys.executable, "-m", "efistub", "scan", corpus, "--executor", executor, "--jobs", str(jobs),
               "--json", str(out)]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({result.returncode}): {result.stderr[-2000:]}")
    from efistub.scan import row

    rows = {}
    for line in out.read_text().splitlines():
        r = row(json.loads(line))
        rows[os.path.relpath(r["image"], corpus)] = r
    return elapsed, rows


def main() -> int:
    parser = _common.parser(__doc__, repeat=3, jobs=2)
    args = parser.parse_args()
    if not Path(args.corpus).is_dir():
        raise SystemExit(f"{args.corpus}: not a folder (--corpus DIR)")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    times: dict[str, list[float]] = {e: [] for e in EXECUTORS}
    last: dict[str, dict] = {}
    reference: dict[str, str] | None = None  # every run, on either executor, must give the first run's outcomes
    differ: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="efistub-bench-scan-") as tmp:
        for i in range(args.repeat):
            for executor in EXECUTORS if i % 2 == 0 else reversed(EXECUTORS):
                elapsed, rows = scan(args.corpus, executor, args.jobs, Path(tmp) / f"{executor}.jsonl")
                times[executor].append(elapsed)
                last[executor] = rows
                outcomes = {name: r["outcome"] for name, r in rows.items()}
                if reference is None:
                    reference = outcomes
                differ |= {n for n in reference.keys() | outcomes.keys() if reference.get(n) != outcomes.get(n)}
    medians = {e: statistics.median(t) for e, t in times.items()}
    ratio = medians["dask"] / medians["process"]
    if args.json:
        print(json.dumps({"jobs": args.jobs, "repeat": args.repeat, "seconds": times, "median_s": medians,
                          "ratio": ratio, "target": TARGET, "images": len(last["process"]),
                          "outcomes_differ": sorted(differ),
                          "outcomes": {n: {e: last[e][n]["outcome"] for e in EXECUTORS if n in last[e]}
                                       for n in sorted(last["process"])}}, indent=2))
        return 0 if not differ and ratio <= TARGET else 1
    print("| image | process pool | dask | reason (process pool) |")
    print("|---|---|---|---|")
    for name in sorted(last["process"].keys() | last["dask"].keys()):
        p, d = last["process"].get(name), last["dask"].get(name)
        print(f"| {name} | {p['outcome'] if p else 'missing'} | {d['outcome'] if d else 'missing'} | "
              f"{(p or d)['reason'][:90]} |")
    print()
    print("| executor | runs | median s | min s | max s |")
    print("|---|---|---|---|---|")
    for executor in EXECUTORS:
        t = times[executor]
        print(f"| {executor} | {len(t)} | {medians[executor]:.1f} | {min(t):.1f} | {max(t):.1f} |")
    print()
    print(f"dask / process pool: {ratio:.2f} (target at most {TARGET}); --jobs {args.jobs}, "
          f"{len(last['process'])} images; outcomes "
          + ("the same on both" if not differ else f"differ for {', '.join(sorted(differ))}"))
    return 0 if not differ and ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
