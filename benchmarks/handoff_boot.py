#!/usr/bin/env python3
"""Kernel to the initrd's /init: efistub's stub run + QEMU booting the saved hand-off, beside QEMU + firmware.

Per corpus kernel (x86_64, and the arm64 one), side by side in one run:

- efistub stub: a fresh `efistub run KERNEL --initrd INITRD --cmdline CMDLINE --save-handoff DIR` process,
  to the hand-off and the saved folder;
- resume boot: a fresh `efistub resume DIR --until MARKER` process (it checks the folder's SHA-256
  sums, starts QEMU q35 under TCG with efistub's trampoline as the firmware, and stops at the marker);
  "of which QEMU" is the part efistub resume reports for QEMU itself;
- QEMU + OVMF: qemu-system-x86_64 -machine q35 (TCG, the same CPU model and RAM) with OVMF_CODE_4M.fd and
  a copy of OVMF_VARS_4M.fd as pflash, booting the same kernel, initrd and command line with
  -kernel/-initrd/-append, timed until the same marker on the serial console.
- aarch64 (arm64-6.12): the same with QEMU virt (efistub/resume/aarch64.py's machine, cortex-a57, TCG):
  the stub run gets --dtb QEMU virt's own device tree (dumped once, before the timed runs, as a user
  would keep it), and the firmware run is QEMU virt + AAVMF (AAVMF_CODE.fd and a copy of AAVMF_VARS.fd as
  pflash) booting the same kernel, initrd and command line with -kernel/-initrd/-append.

The marker is what the corpus busybox initrd's /init prints. Medians of --repeat runs; ratio is
QEMU + firmware over the efistub total (above 1: efistub is faster).

    python3 benchmarks/handoff_boot.py [--corpus DIR] [--repeat N] [--engine fast|stock] [--kernels 6.12,6.1,arm64-6.12]
                                       [--json] [--save FILE]
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import _common
from _common import timed

KERNELS = {"6.12": "x86_64/vmlinuz-6.12.117+deb13-amd64", "6.1": "x86_64/vmlinuz-6.1.0-57-amd64",
           "arm64-6.12": "aarch64/vmlinuz-6.12.117+deb13-arm64"}
AARCH64_KERNELS = {"arm64-6.12"}
AARCH64_INITRD = "initrd/initrd-busybox-arm64.cpio.gz"
AARCH64_CMDLINE = "console=ttyAMA0 efi=noruntime rdinit=/init"
AAVMF_CODE = Path("/usr/share/AAVMF/AAVMF_CODE.fd")  # Debian: qemu-efi-aarch64
AAVMF_VARS = Path("/usr/share/AAVMF/AAVMF_VARS.fd")
INITRD = "initrd/initrd-busybox.cpio.gz"
CMDLINE = "console=ttyS0 efi=noruntime rdinit=/init"
MARKER = b"EFI-CORPUS-INITRD: busybox init reached"
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")  # Debian: ovmf
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
CPU_MODEL = "max,la57=off"  # efistub resume's (efistub/resume/x86_64.py)
MEMORY_MIB = 1024  # efistub's default --mem
TIMEOUT = 300
RESUME_REPORT = re.compile(r"efistub resume: .* \(([0-9.]+) s\)")


def efistub_once(kernel: Path, initrd: Path, engine: str, work: Path, cmdline: str = CMDLINE,
                 extra: tuple[str, ...] = ()) -> dict:
    folder = work / "state"
    shutil.rmtree(folder, ignore_errors=True)
    stub = timed([sys.executable, "-m", "efistub", "run", str(kernel), "--initrd", str(initrd), "--cmdline", cmdline,
                  *extra, "--engine", engine, "--save-handoff", str(folder)])
    if not stub["ok"]:
        return {"stub_s": stub["wall_s"], "resume_s": None, "qemu_s": None, "ok": False, "tail": stub["output"][-500:]}
    boot = timed([sys.executable, "-m", "efistub", "resume", str(folder), "--until", MARKER.decode(),
                  "--timeout", str(TIMEOUT)])
    qemu = RESUME_REPORT.search(boot["output"])
    ok = boot["ok"] and MARKER.decode() in boot["output"]
    return {"stub_s": stub["wall_s"], "resume_s": boot["wall_s"], "qemu_s": float(qemu.group(1)) if qemu else None,
            "ok": ok, "tail": boot["output"][-500:]}


def ovmf_once(kernel: Path, initrd: Path, work: Path) -> dict:
    variables = work / "OVMF_VARS_4M.fd"
    shutil.copyfile(OVMF_VARS, variables)
    command = ["qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-cpu", CPU_MODEL, "-m", str(MEMORY_MIB),
               "-nodefaults", "-no-user-config", "-nic", "none", "-display", "none", "-monitor", "none",
               "-serial", "stdio", "-no-reboot",
               "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
               "-drive", f"if=pflash,format=raw,unit=1,file={variables}",
               "-kernel", str(kernel), "-initrd", str(initrd), "-append", CMDLINE]
    run = timed(command, until=MARKER, timeout=TIMEOUT)
    return {"total_s": run["wall_s"], "ok": run["ok"], "tail": run["output"][-500:]}


def aarch64_machine() -> list[str]:
    from efistub.resume import aarch64

    return aarch64.machine_arguments(MEMORY_MIB << 20)


def aavmf_once(kernel: Path, initrd: Path, work: Path) -> dict:
    variables = work / "AAVMF_VARS.fd"
    shutil.copyfile(AAVMF_VARS, variables)
    command = ["qemu-system-aarch64", *aarch64_machine(), "-display", "none", "-monitor", "none",
               "-serial", "stdio", "-no-reboot",
               "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={AAVMF_CODE}",
               "-drive", f"if=pflash,format=raw,unit=1,file={variables}",
               "-kernel", str(kernel), "-initrd", str(initrd), "-append", AARCH64_CMDLINE]
    run = timed(command, until=MARKER, timeout=TIMEOUT)
    return {"total_s": run["wall_s"], "ok": run["ok"], "tail": run["output"][-500:]}


def virt_dtb(work: Path) -> Path:
    """QEMU virt's own device tree, as efistub resume's machine has it (dumped once, not timed)."""
    from efistub.resume import aarch64

    path = work / "virt.dtb"
    subprocess.run(["qemu-system-aarch64", *aarch64.dumpdtb_arguments(MEMORY_MIB << 20, str(path))],
                   check=True, capture_output=True, timeout=TIMEOUT)
    return path


def median(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return round(statistics.median(values), 2) if values else None


def main() -> int:
    parser = _common.parser(__doc__, repeat=3)
    parser.add_argument("--engine", default="fast", choices=("fast", "stock"))
    parser.add_argument("--kernels", default=",".join(KERNELS), help=f"which of {', '.join(KERNELS)}")
    parser.add_argument("--save", metavar="FILE", help="also write the JSON object to FILE")
    args = parser.parse_args()
    chosen = args.kernels.split(",")
    for binary, package, needed in (("qemu-system-x86_64", "qemu-system-x86", set(chosen) - AARCH64_KERNELS),
                                    ("qemu-system-aarch64", "qemu-system-arm", set(chosen) & AARCH64_KERNELS)):
        if needed and shutil.which(binary) is None:
            print(f"handoff_boot.py: {binary} not found (apt-get install {package})", file=sys.stderr)
            return 2
    with_ovmf = OVMF_CODE.exists() and OVMF_VARS.exists()
    with_aavmf = AAVMF_CODE.exists() and AAVMF_VARS.exists()
    results = {}
    with tempfile.TemporaryDirectory(prefix="handoff-boot-") as tmp:
        work = Path(tmp)
        for name in chosen:
            arm = name in AARCH64_KERNELS
            kernel = Path(args.corpus) / KERNELS[name]
            initrd = Path(args.corpus) / (AARCH64_INITRD if arm else INITRD)
            if not kernel.exists() or not initrd.exists():
                continue
            if arm:
                stub_options = {"cmdline": AARCH64_CMDLINE, "extra": ("--dtb", str(virt_dtb(work)))}
                firmware_once, with_firmware, firmware_name = aavmf_once, with_aavmf, "AAVMF"
            else:
                stub_options = {}
                firmware_once, with_firmware, firmware_name = ovmf_once, with_ovmf, "OVMF"
            runs, ovmf = [], []
            for _ in range(args.repeat):  # interleaved, so that a busy moment of the machine hits both
                runs.append(efistub_once(kernel, initrd, args.engine, work, **stub_options))
                if with_firmware:
                    ovmf.append(firmware_once(kernel, initrd, work))
            stub, boot = median(runs, "stub_s"), median(runs, "resume_s")
            total = median([{"t": r["stub_s"] + r["resume_s"]} for r in runs if r["resume_s"] is not None], "t")
            firmware = median(ovmf, "total_s")
            results[kernel.name] = {
                "efistub_stub_s": stub, "resume_boot_s": boot, "resume_qemu_s": median(runs, "qemu_s"),
                "total_s": total, "qemu_ovmf_s": firmware, "firmware": firmware_name,
                "ratio": round(firmware / total, 2) if firmware and total else None,
                "ok": all(r["ok"] for r in runs), "ovmf_ok": all(r["ok"] for r in ovmf) if ovmf else None,
                "runs": args.repeat, "engine": args.engine,
                "each_run_s": {"efistub_stub": [round(r["stub_s"], 2) for r in runs],
                               "resume_boot": [None if r["resume_s"] is None else round(r["resume_s"], 2)
                                               for r in runs],
                               "qemu_ovmf": [round(r["total_s"], 2) for r in ovmf]},
                "failures": [r["tail"] for r in runs + ovmf if not r["ok"]][:1],
            }
    if args.save:
        Path(args.save).write_text(json.dumps(results, indent=1) + "\n")
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"kernel to '{MARKER.decode()}': efistub ({args.engine} engine) stub run + efistub resume (QEMU q35 or "
          f"virt, TCG) against QEMU + OVMF or AAVMF (TCG); median of {args.repeat}, seconds")
    print(f"{'kernel':<32}{'efistub stub':>13}{'resume boot':>13}{'(QEMU)':>8}{'total':>8}"
          f"{'QEMU+fw':>11}{'ratio':>7}  firmware")
    show = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    for name, r in results.items():
        flags = ("" if r["ok"] else "  (efistub FAILED)") + ("" if r["ovmf_ok"] in (True, None) else
                                                             f"  ({r['firmware']} FAILED)")
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        print(f"{name:<32}{show(r['efistub_stub_s']):>13}{show(r['resume_boot_s']):>13}{show(r['resume_qemu_s']):>8}"
              f"{show(r['total_s']):>8}{show(r['qemu_ovmf_s']):>11}{ratio:>7}  {r['firmware']}{flags}")
        for tail in r["failures"]:
            print(f"  last output of a failed run: {tail!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
