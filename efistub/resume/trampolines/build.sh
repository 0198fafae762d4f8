#!/usr/bin/env bash
# Rebuild efistub resume's trampolines from their sources: ARCH.S -> ARCH.bin, a flat image.
#   x86_64: a 64 KiB ROM that QEMU q35 runs as its firmware (-bios), linked for 0xFFFF0000
#           without a linker (every address is the ROM base plus a distance in its one section).
#   aarch64: QEMU virt's firmware (-bios, flash at 0), position-independent.
#   riscv64: the S-mode payload QEMU virt's OpenSBI starts, position-independent (efistub
#            wraps it in an ELF file at the address it chooses).
# Needs clang and llvm-objcopy (Debian: apt-get install clang llvm), the guest toolchain of
# tests/guests/build.sh. Usage: build.sh [ARCH...] (default: every trampoline below).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

CLANG="${CLANG:-clang}"
OBJCOPY="${OBJCOPY:-llvm-objcopy}"
for tool in "$CLANG" "$OBJCOPY"; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "build.sh: '$tool' not found; install it with: apt-get install clang llvm" >&2
        exit 1
    fi
done

obj="$(mktemp -d)"
trap 'rm -rf "$obj"' EXIT

build_x86_64() { # absolute addresses are ROM_BASE plus distances in the section: no relocations either
    build_flat x86_64 x86_64-unknown-none-elf
    local size
    size=$(stat -c %s x86_64.bin)
    [[ "$size" == 65536 ]] || { echo "build.sh: x86_64.bin is $size bytes, not the 64 KiB ROM" >&2; exit 1; }
}

# A flat image of one section whose references are all PC-relative: no relocation may be left.
build_flat() { # arch target extra-flags...
    local arch="$1" target="$2"
    shift 2
    "$CLANG" -target "$target" "$@" -nostdlib -Wall -Werror -c "$arch.S" -o "$obj/$arch.o"
    if "$OBJCOPY" --dump-section .rela.text="$obj/$arch.rela" "$obj/$arch.o" "$obj/$arch.check" 2>/dev/null; then
        echo "build.sh: $arch.S left relocations: its image would not be position-independent" >&2
        exit 1
    fi
    "$OBJCOPY" -O binary -j .text "$obj/$arch.o" "$arch.bin"
    echo "built $arch.bin"
}

build_aarch64() { build_flat aarch64 aarch64-unknown-none-elf; }
build_riscv64() { build_flat riscv64 riscv64-unknown-none-elf -march=rv64gc -mno-relax; }

archs=("$@")
[[ ${#archs[@]} -gt 0 ]] || archs=(x86_64 aarch64 riscv64)
for arch in "${archs[@]}"; do
    "build_$arch"
done
