#!/usr/bin/env bash
# Rebuild efistub's guest EFI programs from their C sources.
#   x86_64  -> tests/guests/x86_64/NAME.efi
#   AArch64 -> tests/guests/aarch64/NAME.efi
#   IA32    -> tests/guests/ia32/NAME.efi
#   RISC-V  -> tests/guests/riscv64/NAME.efi (GCC + elf2pe.py, see below)
# Needs clang and lld-link (Debian: apt-get install clang lld). No EFI SDK.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

CLANG="${CLANG:-clang}"
LLD_LINK="${LLD_LINK:-lld-link}"
for tool in "$CLANG" "$LLD_LINK"; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "build.sh: '$tool' not found; install it with: apt-get install clang lld" >&2
        exit 1
    fi
done

PROGRAMS=(${PROGRAMS:-hello memory protocols misc variables reloc exit bench handoff needs
           events ebs image hostile ports files textutil hii keys devtext authvar fuzz})
CFLAGS_COMMON=(-ffreestanding -fshort-wchar -nostdlib -fno-stack-protector -fno-builtin
               -O2 -Wall -Wextra -Werror -Wno-unused-function)

# Programs for some architectures only: ports uses x86 port I/O and RDTSC.
builds_for() { # arch name
    case "$2" in
        ports) [[ "$1" == x86_64 || "$1" == ia32 ]] ;;
        *) true ;;
    esac
}

obj="$(mktemp -d)"
trap 'rm -rf "$obj"' EXIT

build() { # arch target machine extra-cflags...
    local arch="$1" target="$2" machine="$3"
    shift 3
    mkdir -p "$here/$arch"
    for name in "${PROGRAMS[@]}"; do
        builds_for "$arch" "$name" || continue
        local link_extra=()
        # reloc.efi must carry a .reloc section so loaders have to apply it.
        [[ "$name" == reloc ]] && link_extra=(-dynamicbase)
        "$CLANG" -target "$target" "${CFLAGS_COMMON[@]}" "$@" \
            -c "$name.c" -o "$obj/$name-$arch.obj"
        "$LLD_LINK" -subsystem:efi_application -entry:efi_main -nodefaultlib -Brepro \
            -machine:"$machine" "${link_extra[@]}" \
            -out:"$here/$arch/$name.efi" "$obj/$name-$arch.obj" >/dev/null
        echo "built $arch/$name.efi"
    done
}

build x86_64 x86_64-unknown-windows x64 -mno-red-zone
build aarch64 aarch64-unknown-windows arm64
# IA32: PE32, cdecl (the i686 default, which is EFIAPI there). The i686-windows
# ABI aligns UINT64 struct members to 8 bytes, as EDK2 does (efi.h checks it).
build ia32 i686-unknown-windows x86

# Symbols for efistub run --gdb (tests/test_gdb.py): x86_64/hello-dwarf.efi is hello with its
# own DWARF; riscv64/hello.elf (below) the ELF file with DWARF that riscv64/hello.efi's code
# comes from, for --symbols. Source paths are recorded relative to this folder.
DEBUG_CFLAGS=(-g "-fdebug-prefix-map=$here=.")
if [[ " ${PROGRAMS[*]} " == *" hello "* ]]; then
    "$CLANG" -target x86_64-unknown-windows "${CFLAGS_COMMON[@]}" -mno-red-zone -gdwarf "${DEBUG_CFLAGS[@]}" \
        -c hello.c -o "$obj/hello-dwarf.obj"
    "$LLD_LINK" -subsystem:efi_application -entry:efi_main -nodefaultlib -Brepro -machine:x64 -debug:dwarf \
        -out:"$here/x86_64/hello-dwarf.efi" "$obj/hello-dwarf.obj" >/dev/null
    echo "built x86_64/hello-dwarf.efi"
fi

# RISC-V 64: clang has no Windows target for RISC-V, so compile position-independent
# ELF with GCC and wrap it in a PE32+ image (elf2pe.py turns its relative relocations
# into base relocations). Needs: apt-get install gcc-riscv64-linux-gnu binutils-riscv64-linux-gnu
RISCV_CC="${RISCV_CC:-riscv64-linux-gnu-gcc}"
RISCV_LD="${RISCV_LD:-riscv64-linux-gnu-ld}"
if command -v "$RISCV_CC" >/dev/null 2>&1 && command -v "$RISCV_LD" >/dev/null 2>&1; then
    mkdir -p "$here/riscv64"
    for name in "${PROGRAMS[@]}"; do
        builds_for riscv64 "$name" || continue
        "$RISCV_CC" -march=rv64gc -mabi=lp64d -mcmodel=medany -fpie "${CFLAGS_COMMON[@]}" \
            -c "$name.c" -o "$obj/$name-riscv64.o"
        "$RISCV_LD" -pie --no-dynamic-linker -z norelro --build-id=none -e efi_main \
            -o "$obj/$name-riscv64.elf" "$obj/$name-riscv64.o"
        python3 "$here/elf2pe.py" "$obj/$name-riscv64.elf" "$here/riscv64/$name.efi"
        echo "built riscv64/$name.efi"
        if [[ "$name" == hello ]]; then  # the same code with DWARF: the symbols of hello.efi
            "$RISCV_CC" -march=rv64gc -mabi=lp64d -mcmodel=medany -fpie "${CFLAGS_COMMON[@]}" "${DEBUG_CFLAGS[@]}" \
                -c hello.c -o "$obj/hello-riscv64-g.o"
            "$RISCV_LD" -pie --no-dynamic-linker -z norelro --build-id=none -e efi_main \
                -o "$here/riscv64/hello.elf" "$obj/hello-riscv64-g.o"
            echo "built riscv64/hello.elf"
        fi
    done
else
    echo "build.sh: $RISCV_CC not found; riscv64 programs not rebuilt" \
         "(apt-get install gcc-riscv64-linux-gnu binutils-riscv64-linux-gnu)" >&2
fi
