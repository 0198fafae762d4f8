#!/usr/bin/env python3
"""The README's first command, timed: ``pip install .`` into a fresh venv, then the first ``efistub run``.

Three cases, each in a fresh venv with a cache folder (XDG_CACHE_HOME) of its own:

- build: an empty cache, so the install builds the fast engine (only with --build:
  several minutes);
- cached: a cache that holds the fast engine for this unicorn version and patch
  (the one the build case made, else a copy of yours), so the install reuses it;
- skip: EFISTUB_ENGINE_BUILD=0 and an empty cache: no engine, the stock one runs.

The source is a copy of the tracked files (the work tree gets no build/ folder).
pip's own cache is not touched: dependencies come from it as on any second install.
Times are wall seconds, medians of --repeat runs (alternating cached and skip; build
runs once). The run is IMAGE to its hand-off, whole process.

    python3 benchmarks/install.py [--image FILE] [--repeat R] [--build] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from efistub import engine  # noqa: E402

DEFAULT_IMAGE = ROOT.parent / "shared" / "corpus" / "x86_64" / "vmlinuz-6.12.117+deb13-amd64"


def copy_source(target: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    return target


def one(case: str, source: Path, work: Path, cache: Path, image: Path) -> dict:
    """A fresh venv, ``pip install .`` timed, then the first run timed; the engine it ran on."""
    venv = Path(tempfile.mkdtemp(prefix=f"venv-{case}-", dir=work))
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("EFISTUB_ENGINE", "LIBUNICORN_PATH", engine.MARKER,
                                                             "EFISTUB_ENGINE_BUILD")}
    env["XDG_CACHE_HOME"] = str(cache)
    if case == "skip":
        env["EFISTUB_ENGINE_BUILD"] = "0"
    for leftover in ("build", "efistub.egg-info"):
        shutil.rmtree(source / leftover, ignore_errors=True)
    started = time.monotonic()
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "."], cwd=source, env=env, check=True,
                   stderr=subprocess.DEVNULL)
    install_s = time.monotonic() - started
    report = work / f"report-{case}.json"
    started = time.monotonic()
    subprocess.run([str(venv / "bin" / "efistub"), "run", str(image), "--cmdline", "console=ttyS0 root=/dev/vda",
                    "--json", str(report)], cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_s = time.monotonic() - started
    result = json.loads(report.read_text())
    shutil.rmtree(venv)
    return {"install_s": install_s, "run_s": run_s, "engine": result["engine"], "outcome": result["outcome"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--build", action="store_true", help="also the install that builds the engine (minutes)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not args.image.is_file():
        print(f"install.py: error: {args.image}: no such image", file=sys.stderr)
        return 2
    rows: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="efistub-install-") as tmp:
        work = Path(tmp)
        source = copy_source(work / "source")
        caches = {case: work / f"cache-{case}" for case in ("build", "cached", "skip")}
        if args.build:
            print("install.py: build (an empty cache)", file=sys.stderr, flush=True)
            rows["build"] = [one("build", source, work, caches["build"], args.image)]
            shutil.copytree(caches["build"], caches["cached"])
        else:
            mine = engine.built_engine()[0]
            if mine is None:
                print("install.py: error: no fast engine to copy for the cached case (run with --build)",
                      file=sys.stderr)
                return 2
            shutil.copytree(mine, caches["cached"] / "efistub" / "engine" / mine.name)
        for index in range(args.repeat):
            for case in ("cached", "skip"):
                print(f"install.py: {case} {index + 1}/{args.repeat}", file=sys.stderr, flush=True)
                shutil.rmtree(caches["skip"], ignore_errors=True)
                rows.setdefault(case, []).append(one(case, source, work, caches[case], args.image))
    table = [{"case": case, "runs": len(samples),
              "install_s": round(statistics.median(r["install_s"] for r in samples), 1),
              "first_run_s": round(statistics.median(r["run_s"] for r in samples), 2),
              "engine": ",".join(sorted({r["engine"] for r in samples})),
              "outcome": ",".join(sorted({r["outcome"] for r in samples}))} for case, samples in rows.items()]
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    print(f"{'case':8} {'runs':>4} {'pip install . (s)':>18} {'first run (s)':>14}  engine  outcome")
    for row in table:
        print(f"{row['case']:8} {row['runs']:>4} {row['install_s']:>18} {row['first_run_s']:>14}  "
              f"{row['engine']:6}  {row['outcome']}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
