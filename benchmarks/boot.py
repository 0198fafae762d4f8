#!/usr/bin/env python3
"""Boot chains against the bare kernel: whole-process time of `efistub boot --esp` and `efistub run`.

The ESP folders are built in a temporary folder from corpus files: systemd-boot with a
Type #1 entry for the 6.12 x86_64 kernel and the busybox initrd, and systemd-boot with
a UKI of the same kernel in \\EFI\\Linux, and GRUB 2.06 with a grub.cfg. Each run is a fresh process; medians of
--repeat runs, alternating.

    python3 benchmarks/boot.py [--corpus DIR] [--repeat N] [--json]
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import _common
from _common import timed

ROOT = Path(__file__).resolve().parent.parent
KERNEL = "x86_64/vmlinuz-6.12.117+deb13-amd64"
INITRD = "initrd/initrd-busybox.cpio.gz"
SYSTEMD_BOOT = "x86_64/257.13-1~deb13u1_systemd-bootx64.efi"
STUB = "x86_64/257.13-1~deb13u1_linuxx64.efi.stub"
GRUB = "x86_64/2.06-13+deb12u2_grubx64.efi"
CMDLINE = "console=ttyS0 rdinit=/init"


def make_uki(corpus: Path, out: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from efistub.loader import read_image

    parts = out.parent / "uki-parts"
    parts.mkdir(exist_ok=True)
    (parts / "cmdline").write_text(CMDLINE)
    (parts / "osrel").write_text('ID=efistub\nNAME="efistub benchmark"\n')  # systemd-boot lists UKIs with one
    sections = [(".osrel", parts / "osrel"), (".cmdline", parts / "cmdline"), (".linux", corpus / KERNEL),
                (".initrd", corpus / INITRD)]
    stub = read_image(str(corpus / STUB))
    align, rva = stub.section_alignment, -(-stub.size_of_image // stub.section_alignment) * stub.section_alignment
    args = ["objcopy"]
    for name, path in sections:
        args += ["--add-section", f"{name}={path}", "--change-section-vma", f"{name}={stub.image_base + rva:#x}",
                 "--set-section-flags", f"{name}=data,readonly"]
        rva += -(-os.path.getsize(path) // align) * align
    subprocess.run(args + [str(corpus / STUB), str(out)], check=True)


def make_esps(corpus: Path, folder: Path) -> dict[str, Path]:
    entry = folder / "entry"
    (entry / "EFI" / "BOOT").mkdir(parents=True)
    (entry / "loader" / "entries").mkdir(parents=True)
    shutil.copy(corpus / SYSTEMD_BOOT, entry / "EFI" / "BOOT" / "BOOTX64.EFI")
    shutil.copy(corpus / KERNEL, entry / "vmlinuz")
    shutil.copy(corpus / INITRD, entry / "initrd.img")
    (entry / "loader" / "loader.conf").write_text("timeout 0\ndefault efistub.conf\n")
    (entry / "loader" / "entries" / "efistub.conf").write_text(
        f"title efistub\nlinux /vmlinuz\ninitrd /initrd.img\noptions {CMDLINE}\n")
    uki = folder / "uki"
    (uki / "EFI" / "BOOT").mkdir(parents=True)
    (uki / "EFI" / "Linux").mkdir(parents=True)
    (uki / "loader").mkdir()
    shutil.copy(corpus / SYSTEMD_BOOT, uki / "EFI" / "BOOT" / "BOOTX64.EFI")
    (uki / "loader" / "loader.conf").write_text("timeout 0\n")
    make_uki(corpus, uki / "EFI" / "Linux" / "efistub.efi")
    grub = folder / "grub"
    (grub / "EFI" / "BOOT").mkdir(parents=True)
    shutil.copy(corpus / GRUB, grub / "EFI" / "BOOT" / "BOOTX64.EFI")
    shutil.copy(corpus / KERNEL, grub / "vmlinuz")
    shutil.copy(corpus / INITRD, grub / "initrd.img")
    (grub / "EFI" / "BOOT" / "grub.cfg").write_text(
        f"set timeout=0\nmenuentry efistub {{\n  linux /vmlinuz {CMDLINE}\n  initrd /initrd.img\n}}\n")
    return {"entry": entry, "uki": uki, "grub": grub}


def main() -> int:
    parser = _common.parser(__doc__, repeat=5)
    args = parser.parse_args()
    corpus = Path(args.corpus)
    efistub = [sys.executable, "-m", "efistub"]
    with tempfile.TemporaryDirectory() as tmp:
        esps = make_esps(corpus, Path(tmp))
        runs = {
            "bare kernel (efistub run, --initrd)": efistub + ["run", str(corpus / KERNEL), "--cmdline", CMDLINE,
                                                                "--initrd", str(corpus / INITRD)],
            "systemd-boot -> kernel (Type #1 entry)": efistub + ["boot", "--esp", str(esps["entry"])],
            "systemd-boot -> UKI -> kernel": efistub + ["boot", "--esp", str(esps["uki"])],
            "GRUB 2.06 (grub.cfg, BLOCK_IO) -> kernel": efistub + ["boot", "--esp", str(esps["grub"])],
        }
        samples: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.repeat):
            for name, command in runs.items():
                samples[name].append(timed(command, codes=(0,))["wall_s"])
    medians = {name: statistics.median(s) for name, s in samples.items()}
    bare = medians["bare kernel (efistub run, --initrd)"]
    if args.json:
        print(json.dumps({"repeat": args.repeat, "medians_s": medians}))
        return 0
    print(f"whole process to the kernel hand-off, 6.12 x86_64, median of {args.repeat}")
    print(f"{'chain':<42}{'wall s':>8}{'/ bare':>8}")
    for name, value in medians.items():
        print(f"{name:<42}{value:>8.2f}{value / bare:>7.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
