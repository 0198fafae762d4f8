#!/usr/bin/env bash
# Make the volume the guest program `files` expects (README.md, "files"):
#
#   tests/guests/make-files-esp.sh ARCH DIR
#
#   DIR\EFI\BOOT\BOOT<ARCH>.EFI     ARCH/files.efi (BOOTX64, BOOTAA64, BOOTRISCV64, BOOTIA32)
#   DIR\files\hello.txt             "hello, efi\n" (11 bytes)
#   DIR\files\Mixed Case Name.TXT   4096 bytes, byte i = i & 0xFF
#   DIR\files\sub\                  an empty directory
#   DIR\files\child.efi             a copy of ARCH/exit.efi
#
# DIR is created if needed; files the layout does not name are left alone (but
# `files` reports extra entries of \files\ in info lines). Serve it with
# `efistub run --esp DIR ...` (read-only), `--esp-writable` for the write checks,
# or QEMU's -drive format=raw,file=fat:rw:DIR (run-ovmf.sh does that).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[[ $# -eq 2 ]] || { echo "usage: $0 ARCH DIR" >&2; exit 2; }
arch="$1" dir="$2"
case "$arch" in
    x86_64)  boot=BOOTX64.EFI ;;
    aarch64) boot=BOOTAA64.EFI ;;
    riscv64) boot=BOOTRISCV64.EFI ;;
    ia32)    boot=BOOTIA32.EFI ;;
    *) echo "ARCH must be x86_64, aarch64, riscv64 or ia32" >&2; exit 2 ;;
esac
mkdir -p "$dir/EFI/BOOT" "$dir/files/sub"
cp "$here/$arch/files.efi" "$dir/EFI/BOOT/$boot"
printf 'hello, efi\n' > "$dir/files/hello.txt"
# 4096 bytes of the pattern i & 0xFF: 16 times the bytes 0x00..0xFF.
for _ in $(seq 16); do
    for i in $(seq 0 255); do printf "\\$(printf '%03o' "$i")"; done
done > "$dir/files/Mixed Case Name.TXT"
cp "$here/$arch/exit.efi" "$dir/files/child.efi"
