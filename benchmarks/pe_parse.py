#!/usr/bin/env python3
"""Cost of parsing each corpus image: efistub's parse_image, its relocation blocks, pefile's full load.

parse is parse_image: pefile's fast_load (headers and the section table) and efistub's
checks, on bytes already in memory; read is read_image, the file read included. The
relocation blocks are walked the first time an image is loaded away from its ImageBase.
pefile's full load (every data directory, and a byte count of the whole file) is what
efistub avoids. Times are ms, medians of --repeat runs (one run for the full load,
which --no-full skips).

    python3 benchmarks/pe_parse.py [--corpus DIR] [--repeat R] [--no-full] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pefile  # noqa: E402

from efistub.loader import parse_image, read_image  # noqa: E402

ARCH_FOLDERS = ("x86_64", "aarch64", "riscv64", "ia32")


def ms(function, repeat: int, setup=lambda: None) -> float:
    """The median time of ``function(setup())``, the setup not counted."""
    samples = []
    for _ in range(repeat):
        argument = setup()
        started = time.perf_counter()
        function(argument)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def measure(path: Path, repeat: int, full: bool) -> dict:
    data = bytearray(path.read_bytes())
    image = parse_image(str(path), data)
    row = {
        "image": f"{path.parent.name}/{path.name}", "mib": round(len(data) / (1 << 20), 1),
        "parse_ms": round(ms(lambda _: parse_image(str(path), data), repeat), 2),
        "read_ms": round(ms(lambda _: read_image(str(path)), repeat), 2),
        "blocks": len(image.relocations()) if image.has_relocations else 0,
        "relocations_ms": round(ms(lambda fresh: fresh.relocations(), repeat, lambda: parse_image(str(path), data)), 2)
        if image.has_relocations else None,
    }
    if full:
        row["pefile_full_ms"] = round(ms(lambda _: pefile.PE(data=data, fast_load=False), 1), 1)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=os.environ.get("EFISTUB_CORPUS", str(ROOT.parent / "shared" / "corpus")))
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--no-full", dest="full", action="store_false", help="skip pefile's full load")
    parser.add_argument("--json", action="store_true", help="print one JSON list instead of a table")
    args = parser.parse_args()
    corpus = Path(args.corpus)
    images = sorted(p for folder in ARCH_FOLDERS if (corpus / folder).is_dir() for p in (corpus / folder).iterdir())
    if not images:
        raise SystemExit(f"no images in {corpus} (set EFISTUB_CORPUS or pass --corpus)")
    rows = [measure(path, args.repeat, args.full) for path in images]
    if args.json:
        print(json.dumps(rows))
        return 0
    columns = ["image", "mib", "parse_ms", "read_ms", "blocks", "relocations_ms"] + (["pefile_full_ms"] if args.full else [])
    widths = {c: max(len(c), *(len("-" if r[c] is None else str(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) if c == "image" else c.rjust(widths[c]) for c in columns))
    for r in rows:
        cells = ["-" if r[c] is None else str(r[c]) for c in columns]
        print("  ".join(v.ljust(widths[c]) if c == "image" else v.rjust(widths[c]) for c, v in zip(columns, cells)))
    print(f"pefile {pefile.__version__}; medians of {args.repeat} runs" + (" (pefile's full load: one run)" if args.full else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
