#!/usr/bin/env python3
"""Every corpus image run bare and with an ESP (--esp): the table of outcomes in docs/boot.md.

The ESP is a temporary folder with the image as its removable-media boot file and
nothing else, so the table shows what each image does once it has a file system.

    python3 docs/corpus_boot.py [--corpus DIR] [--timeout S] [--jobs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def outcome(report) -> str:
    if report.outcome == "exit":
        return f"exit {report.exit_status}"
    if report.outcome in ("fault", "timeout", "stalled"):
        details = report.fault or report.timeout or report.stalled
        return f"{report.outcome}: {details['reason'][:70]}"
    return report.outcome


def run(path: str, with_esp: bool, timeout: float) -> str:
    from efistub import arch
    from efistub.errors import InputError
    from efistub.loader import read_image
    from efistub.machine import Machine

    try:
        image = read_image(path, arch.supported())
        if not with_esp:
            return outcome(Machine(path, timeout=timeout).run())
        boot = arch.for_machine(image.machine).REMOVABLE_MEDIA_PATH
        with tempfile.TemporaryDirectory() as esp:
            target = Path(esp, *boot.strip("\\").split("\\"))
            target.parent.mkdir(parents=True)
            shutil.copy(path, target)
            return outcome(Machine(str(target), esp=esp, boot_path=boot, timeout=timeout).run())
    except InputError as e:
        return f"cannot run: {e.problem}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=os.environ.get("EFISTUB_CORPUS", str(ROOT.parent / "shared" / "corpus")))
    parser.add_argument("--timeout", type=float, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    images = sorted(p for p in Path(args.corpus).rglob("*") if p.is_file() and p.read_bytes()[:2] == b"MZ")
    with ProcessPoolExecutor(args.jobs) as pool:
        bare = [pool.submit(run, str(p), False, args.timeout) for p in images]
        esp = [pool.submit(run, str(p), True, args.timeout) for p in images]
        print("| image | bare | with `--esp` |")
        print("|---|---|---|")
        for p, b, e in zip(images, bare, esp):
            print(f"| {p.relative_to(args.corpus)} | {b.result()} | {e.result()} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
