#!/usr/bin/env bash
# Rebuild efistub's guest EFI programs from their C sources.
#   x86_64  -> tests/guests/x86_64/NAME.efi
#   AArch64 -> tests/guests/aarch64/NAME.efi
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

PROGRAMS=(${PROGRAMS:-hello memory protocols misc variables reloc exit bench handoff needs})
CFLAGS_COMMON=(-ffreestanding -fshort-wchar -nostdlib -fno-stack-protector -fno-builtin
               -O2 -Wall -Wextra -Werror -Wno-unused-function)

obj="$(mktemp -d)"
trap 'rm -rf "$obj"' EXIT

build() { # arch target machine extra-cflags...
    local arch="$1" target="$2" machine="$3"
    shift 3
    mkdir -p "$here/$arch"
    for name in "${PROGRAMS[@]}"; do
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
