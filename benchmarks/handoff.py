#!/usr/bin/env python3
"""Time from process start to the kernel hand-off, per corpus kernel and engine, beside QEMU + firmware.

Each efistub run is a fresh `efistub run KERNEL` process (import time counts; efistub's bytecode is
cached, as after `pip install .`: _common.installed_env). QEMU
runs under TCG with the distribution's UEFI firmware and `-kernel`, and is timed
until the kernel prints its first "Linux version" line on the serial console.
Medians of --repeat runs; peak RSS is the largest of the runs.

    python3 benchmarks/handoff.py [--corpus DIR] [--repeat N] [--engines fast,stock] [--no-qemu] [--json]
                                  [--save FILE]
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
from pathlib import Path

import _common
from _common import timed

KERNELS = {  # corpus path -> architecture
    "x86_64/vmlinuz-6.12.117+deb13-amd64": "x86_64",
    "x86_64/vmlinuz-6.1.0-57-amd64": "x86_64",
    "aarch64/vmlinuz-6.12.117+deb13-arm64": "aarch64",
    "riscv64/vmlinux-6.12.117+deb13-riscv64": "riscv64",
}
QEMU = {  # architecture -> (QEMU command, UEFI firmware files to try with -bios); Debian packages
    "x86_64": (["qemu-system-x86_64", "-machine", "q35", "-m", "1024"],  # qemu-system-x86, ovmf
               ["/usr/share/ovmf/OVMF.fd"]),
    "aarch64": (["qemu-system-aarch64", "-machine", "virt", "-cpu", "cortex-a57", "-m", "1024"],
                ["/usr/share/qemu-efi-aarch64/QEMU_EFI.fd"]),  # qemu-system-arm, qemu-efi-aarch64
}
CMDLINE = {"x86_64": "console=ttyS0 earlyprintk=ttyS0", "aarch64": "console=ttyAMA0 earlycon",
           "riscv64": "console=ttyS0 earlycon"}
QEMU_TIMEOUT = 300


def summarize(runs: list[dict]) -> dict:
    return {"wall_s": round(statistics.median(r["wall_s"] for r in runs), 2),
            "cpu_s": round(statistics.median(r["cpu_s"] for r in runs), 2),
            "rss_mib": round(max(r["rss_mib"] for r in runs)),
            "ok": all(r["ok"] for r in runs), "runs": len(runs)}


def efistub_runs(kernel: Path, arch: str, engine: str, repeat: int) -> dict:
    command = [sys.executable, "-m", "efistub", "run", str(kernel), "--cmdline", CMDLINE[arch], "--engine", engine]
    return summarize([timed(command, timeout=QEMU_TIMEOUT) for _ in range(repeat)])


def qemu_runs(kernel: Path, arch: str, repeat: int) -> dict | None:
    if arch not in QEMU:
        return None
    base, firmwares = QEMU[arch]
    firmware = next((f for f in firmwares if os.path.exists(f)), None)
    if shutil.which(base[0]) is None or firmware is None:
        return None
    command = base + ["-nographic", "-bios", firmware, "-kernel", str(kernel), "-append", CMDLINE[arch],
                      "-net", "none", "-no-reboot"]
    return summarize([timed(command, until=b"Linux version", timeout=QEMU_TIMEOUT) for _ in range(repeat)])


def main() -> int:
    parser = _common.parser(__doc__, repeat=5)
    parser.add_argument("--engines", default="fast,stock")
    parser.add_argument("--no-qemu", action="store_true")
    parser.add_argument("--save", metavar="FILE", help="also write the JSON object to FILE")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from efistub import engine

    engines = [e for e in args.engines.split(",") if e != "fast" or engine.built_engine()[0] is not None]
    results = {}
    for relative, arch in KERNELS.items():
        kernel = Path(args.corpus) / relative
        if not kernel.exists():
            continue
        row = {e: efistub_runs(kernel, arch, e, args.repeat) for e in engines}
        if not args.no_qemu:
            row["qemu"] = qemu_runs(kernel, arch, args.repeat)
        results[relative] = row
    if args.save:
        Path(args.save).write_text(json.dumps(results, indent=1) + "\n")
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"process start to hand-off (efistub) or to 'Linux version' (QEMU + UEFI firmware, TCG); "
          f"median of {args.repeat}")
    print(f"{'kernel':<38}{'run':<8}{'wall s':>8}{'cpu s':>8}{'RSS MiB':>9}{'QEMU/run':>10}")
    for relative, row in results.items():
        qemu = row.get("qemu")
        for name, r in row.items():
            if r is None:
                continue
            ratio = f"{qemu['wall_s'] / r['wall_s']:.1f}x" if qemu and name != "qemu" else ""
            flag = "" if r["ok"] else "  (FAILED)"
            print(f"{relative.split('/')[-1]:<38}{name:<8}{r['wall_s']:>8.2f}{r['cpu_s']:>8.2f}{r['rss_mib']:>9}"
                  f"{ratio:>10}{flag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
