#!/usr/bin/env python3
"""`efistub minimize` of the 6.12 x86_64 kernel through snapshots against fresh runs (`--fresh`, as before issue 14).

Each is a fresh process; medians of --repeat runs, alternating. Wall time is the whole process; CPU
time is that of every process that ran a candidate (minimize's own JSON, cpu_s). Both must find the
same minimal set; the script checks it.

    python3 benchmarks/minimize.py [--corpus DIR] [--repeat N] [--json]
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

KERNEL = "x86_64/vmlinuz-6.12.117+deb13-amd64"
MODES = {"fresh runs (--fresh)": ["--fresh"], "through snapshots": []}


def main() -> int:
    parser = _common.parser(__doc__, repeat=3)
    args = parser.parse_args()
    kernel = _common.corpus_file(args.corpus, KERNEL)
    efistub = _common.EFISTUB
    engine = _common.engine_line()
    walls: dict[str, list[float]] = {mode: [] for mode in MODES}
    cpus: dict[str, list[float]] = {mode: [] for mode in MODES}
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "minimize.json"
        for _ in range(args.repeat):
            for mode, extra in MODES.items():
                started = time.perf_counter()
                run = subprocess.run(efistub + ["minimize", str(kernel), "--json", str(out), *extra],
                                     capture_output=True, text=True)
                walls[mode].append(time.perf_counter() - started)
                if run.returncode != 0:
                    raise SystemExit(f"minimize {' '.join(extra)} failed: {run.stderr[-2000:]}")
                results[mode] = json.loads(out.read_text())
                cpus[mode].append(results[mode]["cpu_s"])
    sets = {mode: r["services"] for mode, r in results.items()}
    if len({tuple(s) for s in sets.values()}) != 1:
        raise SystemExit(f"the minimal sets differ: {sets}")
    rows = [{"mode": mode, "wall_s": round(statistics.median(walls[mode]), 2),
             "cpu_s": round(statistics.median(cpus[mode]), 2), "candidate_sets": results[mode]["runs"],
             "runs_emulated": results[mode]["executions"]} for mode in MODES]
    before, after = rows
    speedup = {"wall": round(before["wall_s"] / after["wall_s"], 1), "cpu": round(before["cpu_s"] / after["cpu_s"], 1)}
    if args.json:
        print(json.dumps({"engine": engine, "cores": os.cpu_count(), "repeat": args.repeat, "rows": rows,
                          "speedup": speedup, "services": sets["through snapshots"]}))
        return 0
    print(f"{engine}; {os.cpu_count()} cores; medians of {args.repeat}; minimal set: "
          f"{', '.join(sets['through snapshots'])}")
    print(f"{'':<24}{'wall s':>8}{'CPU s':>8}{'candidate sets':>16}{'runs emulated':>15}")
    for row in rows:
        print(f"{row['mode']:<24}{row['wall_s']:>8.2f}{row['cpu_s']:>8.2f}{row['candidate_sets']:>16}"
              f"{row['runs_emulated']:>15}")
    print(f"through snapshots: {speedup['wall']}x less wall time, {speedup['cpu']}x less CPU time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
