#!/usr/bin/env python3
"""docs/corpus.md: `efistub scan` of the corpus on both engines, every image's outcome and reason.

Each table is the scan's own Markdown output (`efistub scan --markdown FILE`), unedited.

    python3 docs/corpus_scan.py [--corpus DIR] [--jobs N] [--out docs/corpus.md]
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENGINES = ("fast", "stock")

INTRO = """# The corpus, scanned

Every image of the shared corpus, run by `efistub scan` on both engines (docs/engine.md),
with the default run options: no command line, no initrd, no ESP, no key presses,
`--timeout 60`. Each table is the scan's own output (`--markdown`), made by
`python3 docs/corpus_scan.py`; docs/ci.md says what each outcome's reason gives. The
times are each image's run in a worker process, {jobs} at a time on the project's
2 cores.

Measured on {date} at commit {commit}.
"""


def efistub(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "efistub", *args], capture_output=True, text=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=os.environ.get("EFISTUB_CORPUS", "../shared/corpus"))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "docs" / "corpus.md"))
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT).stdout.strip()
    parts = [INTRO.format(jobs=args.jobs, date=datetime.date.today().isoformat(), commit=commit)]
    status = efistub("engine", "status")
    parts.append(f"`efistub engine status`:\n\n```\n{status.stdout.strip()}\n```\n")
    with tempfile.TemporaryDirectory(prefix="efistub-corpus-") as tmp:
        for engine in ENGINES:
            table = Path(tmp) / f"{engine}.md"
            shown = ["efistub", "scan", args.corpus, "--engine", engine, "--jobs", str(args.jobs), "--markdown",
                     f"{engine}.md"]
            result = efistub("scan", os.path.abspath(args.corpus), *shown[3:-1], str(table))
            if result.returncode != 0:
                raise SystemExit(f"{' '.join(shown)} failed ({result.returncode}): {result.stderr[-2000:]}")
            parts.append(f"## The {engine} engine\n\n```sh\n{' '.join(shown)}\n```\n\n{table.read_text()}")
    Path(args.out).write_text("\n".join(parts))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
