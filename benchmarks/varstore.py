#!/usr/bin/env python3
"""Cost of loading and saving a --vars store: Debian's OVMF images and the same variables as JSON.

load is efistub.varstore.load (virt-firmware parses the file; efistub checks it and builds the
store); save is efistub.varstore.save into a temporary folder (virt-firmware lays the variables
out; efistub writes a temporary file, fsyncs it and renames it over the store). Times are ms,
medians of --repeat runs, after one run that imports virt-firmware (its first-load cost is
printed below the table). The rows:

- OVMF_VARS.ms.fd: the 2 MB OVMF's 128 KiB image, 56 KiB of variable region, Microsoft's keys;
- the same image filled: its variable region with less than one more variable's room left;
- OVMF_VARS_4M.ms.fd: the 4 MB OVMF's 528 KiB image, 256 KiB of variable region;
- JSON: each of those stores saved as virt-firmware JSON.

    python3 benchmarks/varstore.py [--ovmf DIR] [--repeat R] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from efistub import varstore  # noqa: E402
from efistub.guids import Guid  # noqa: E402
from efistub.variables import NON_VOLATILE  # noqa: E402

VENDOR = Guid("5d1a3c7e-6b0f-4e2a-9c4d-65666973747a")
NV_BS_RT = 0x7
TARGET_MS = 50  # issue 12: load and save of a 64 KiB OVMF store, each


def ms(function, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def filled(source: Path, folder: Path) -> Path:
    """A copy of ``source`` whose variable region is full: 1 KiB variables until the next one would
    not fit."""
    path = folder / f"full-{source.name}"
    shutil.copy(source, path)
    store = varstore.load(path)
    record = store.non_volatile.record_size("Fill0000", 1024)
    number = 0
    while store.remaining(NON_VOLATILE) >= record:
        store.set(f"Fill{number:04}", VENDOR, NV_BS_RT, bytes([number & 0xFF]) * 1024)
        number += 1
    varstore.save(store, path)
    return path


def measure(name: str, path: Path, folder: Path, repeat: int) -> dict:
    store = varstore.load(path)
    target = folder / f"saved-{path.name}"
    if path.suffix != ".json":
        shutil.copy(path, target)  # an edk2 image is saved into an existing one
    capacity, remaining, _ = store.query(NON_VOLATILE)
    return {"store": name, "file_kib": round(path.stat().st_size / 1024, 1), "variables": len(store),
            "region_kib": round(capacity / 1024, 1), "used_kib": round((capacity - remaining) / 1024, 1),
            "load_ms": round(ms(lambda: varstore.load(path), repeat), 2),
            "save_ms": round(ms(lambda: varstore.save(store, target), repeat), 2)}


def stores(ovmf: Path, folder: Path) -> list[tuple[str, Path]]:
    images = [("OVMF_VARS.ms.fd", ovmf / "OVMF_VARS.ms.fd")]
    if images[0][1].exists():
        images.append(("OVMF_VARS.ms.fd, filled", filled(images[0][1], folder)))
    images.append(("OVMF_VARS_4M.ms.fd", ovmf / "OVMF_VARS_4M.ms.fd"))
    images = [(name, path) for name, path in images if path.exists()]
    if not images:
        raise SystemExit(f"no OVMF variable stores in {ovmf} (install Debian's ovmf or pass --ovmf)")
    as_json = []
    for name, path in images:
        target = folder / f"{path.stem}.json"
        varstore.save(varstore.load(path), target)
        as_json.append((f"{name} as JSON", target))
    return images + as_json


def first_load(ovmf: Path) -> float | None:
    """The process's first load, which imports virt-firmware (and cryptography), in ms."""
    path = next((p for p in (ovmf / "OVMF_VARS.ms.fd", ovmf / "OVMF_VARS_4M.ms.fd") if p.exists()), None)
    if path is None:
        return None
    started = time.perf_counter()
    varstore.load(path)
    return (time.perf_counter() - started) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ovmf", default="/usr/share/OVMF", help="the folder of the OVMF images")
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--json", action="store_true", help="print one JSON list instead of a table")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        first_ms = first_load(Path(args.ovmf))
        rows = [measure(name, path, folder, args.repeat) for name, path in stores(Path(args.ovmf), folder)]
    if args.json:
        print(json.dumps({"first_load_ms": first_ms and round(first_ms, 1), "rows": rows}))
        return 0
    columns = ["store", "file_kib", "variables", "region_kib", "used_kib", "load_ms", "save_ms"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) if c == "store" else c.rjust(widths[c]) for c in columns))
    for r in rows:
        print("  ".join(str(r[c]).ljust(widths[c]) if c == "store" else str(r[c]).rjust(widths[c]) for c in columns))
    slowest = max(max(r["load_ms"], r["save_ms"]) for r in rows)
    print(f"medians of {args.repeat} runs; target <= {TARGET_MS} ms each: {'met' if slowest <= TARGET_MS else 'NOT met'}"
          f" (slowest {slowest} ms)")
    print(f"first load in the process (imports virt-firmware and cryptography): {first_ms:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
