#!/usr/bin/env bash
# Validate the guest programs' checks on real firmware: QEMU + OVMF (EDK2).
#
#   tests/guests/run-ovmf.sh [NAME...]   boot each ARCH/NAME.efi (default: every program
#                                        meant for real firmware, see DEFAULT below)
#                                        as EFI/BOOT/BOOT{X64,AA64,IA32}.EFI, show its output
#   tests/guests/run-ovmf.sh --runner    boot ovmf_runner.c, which LoadImage/StartImages
#                                        every program and prints its exit status
#                                        and ExitData (needs clang + lld-link)
#
# ARCH=x86_64 (default): apt-get install qemu-system-x86 ovmf
# ARCH=aarch64:          apt-get install qemu-system-arm qemu-efi-aarch64
# ARCH=ia32:             apt-get install qemu-system-x86 ovmf-ia32
#                        (qemu-system-i386 with OVMF32; Debian ships it only as the
#                        Secure Boot build, which needs SMM and always runs as pflash;
#                        its variable store has no keys enrolled, so Secure Boot is off)
# PFLASH=1: firmware as pflash (code + a fresh copy of the variable store)
#           instead of -bios (whose variable store is emulated in RAM).
# READONLY=1: the FAT folder as a read-only virtio disk (fat:DIR, readonly=on,
#           virtio-blk; OVMF's FAT driver then sees read-only media) instead of
#           fat:rw (x86: an AHCI disk). For files' read-only checks.
# Exit status 0 when every program printed only PASS lines and "DONE 0 failures"
# (hello: its greeting; exit: no FAIL; ebs: QEMU powered off by itself after
# ExitBootServices), and in --runner mode returned the expected status.
#
# Special cases:
#   ebs    powers the machine off with ResetSystem after ExitBootServices. Its
#          verdict is in ResetData, which OVMF does not show, so (with clang and
#          lld-link) the script boots a build with -DEBS_SERIAL_REPORT, which also
#          writes the verdict to the serial port (COM1, or the virt PL011), and
#          checks it. It expects the power-off, and the verdict PASS, or FAIL with
#          before=0 and fn1 and fn2 once each: Debian 12's EDK2 does not signal
#          EFI_EVENT_GROUP_BEFORE_EXIT_BOOT_SERVICES (a note says so).
#   image  needs a child image from the Linux initrd LOAD_FILE2. On AArch64 it
#          boots as QEMU -kernel image.efi -initrd exit.efi (OVMF's own
#          LOAD_FILE2). QEMU's x86 -kernel takes -initrd only with a Linux
#          kernel, so on x86_64 and IA32 it is skipped here and --runner runs it
#          (the runner serves exit.efi through a LOAD_FILE2 of its own).
#   files  needs its volume layout (make-files-esp.sh): the fat:rw folder gets
#          \EFI\BOOT\BOOT*.EFI = files.efi and \files\ (hello.txt, Mixed Case
#          Name.TXT, sub\, child.efi = exit.efi). fat:rw is writable, so its
#          write checks run. The run stops at DONE only (child.efi prints
#          "exit: calling Exit" before it).
#   hostile, bench, handoff, needs: for efistub only, never run here.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ARCH="${ARCH:-x86_64}"
TIMEOUT="${TIMEOUT:-60}"
case "$ARCH" in
    x86_64)
        OVMF="${OVMF:-/usr/share/ovmf/OVMF.fd}"
        CODE=/usr/share/OVMF/OVMF_CODE_4M.fd VARS=/usr/share/OVMF/OVMF_VARS_4M.fd
        QEMU=qemu-system-x86_64 PACKAGES="qemu-system-x86 ovmf" BOOTFILE=BOOTX64.EFI
        TARGET=x86_64-unknown-windows MACHINE=x64 CFLAGS_ARCH=-mno-red-zone ;;
    aarch64)
        OVMF="${OVMF:-/usr/share/qemu-efi-aarch64/QEMU_EFI.fd}"
        CODE=/usr/share/AAVMF/AAVMF_CODE.fd VARS=/usr/share/AAVMF/AAVMF_VARS.fd
        QEMU=qemu-system-aarch64 PACKAGES="qemu-system-arm qemu-efi-aarch64" BOOTFILE=BOOTAA64.EFI
        TARGET=aarch64-unknown-windows MACHINE=arm64 CFLAGS_ARCH= ;;
    ia32)
        CODE=/usr/share/OVMF/OVMF32_CODE_4M.secboot.fd VARS=/usr/share/OVMF/OVMF32_VARS_4M.fd
        OVMF="$CODE" PFLASH=1
        QEMU=qemu-system-i386 PACKAGES="qemu-system-x86 ovmf-ia32" BOOTFILE=BOOTIA32.EFI
        TARGET=i686-unknown-windows MACHINE=x86 CFLAGS_ARCH= ;;
    *) echo "ARCH must be x86_64, aarch64 or ia32" >&2; exit 1 ;;
esac
command -v "$QEMU" >/dev/null || { echo "apt-get install $PACKAGES" >&2; exit 1; }
[[ -f "$OVMF" ]] || { echo "no $OVMF: apt-get install $PACKAGES" >&2; exit 1; }
DEFAULT=(hello memory protocols misc variables reloc exit events ebs image files textutil hii devtext)
[[ "$ARCH" == x86_64 || "$ARCH" == ia32 ]] && DEFAULT+=(ports)
# EFI_STATUS is as wide as a pointer: 16 hex digits, or 8 on IA32.
if [[ "$ARCH" == ia32 ]]; then
    STATUS_OK=0x00000000 STATUS_INVALID_PARAMETER=0x80000002
else
    STATUS_OK=0x0000000000000000 STATUS_INVALID_PARAMETER=0x8000000000000002
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# boot FATDIR LOG STOP-REGEX [QEMU-ARGS...]: run OVMF on a virtual FAT drive until
# STOP-REGEX shows on the serial console (then 2 s more), the timeout, or QEMU's
# exit. An empty STOP-REGEX waits for QEMU's exit or the timeout. Sets POWERED_OFF=1
# when QEMU ended by itself before the timeout.
boot() {
    local fat="$1" log="$2" stop="$3" qpid rc
    shift 3
    POWERED_OFF=0
    : > "$log"
    local args firmware
    if [[ -n "${PFLASH:-}" ]]; then
        # Real flash: read-only code and a fresh writable copy of the variable store.
        cp "$VARS" "$work/vars.fd"
        firmware=(-drive if=pflash,format=raw,readonly=on,file="$CODE"
                  -drive if=pflash,format=raw,file="$work/vars.fd")
    else
        firmware=(-bios "$OVMF")
    fi
    local disk
    if [[ -n "${READONLY:-}" ]]; then
        # IDE/AHCI disks cannot be read-only in QEMU; virtio-blk reports it to the guest.
        disk=(-drive if=none,format=raw,file=fat:"$fat",id=hd0,readonly=on)
        [[ "$ARCH" == aarch64 ]] && disk+=(-device virtio-blk-device,drive=hd0) ||
            disk+=(-device virtio-blk-pci,drive=hd0)
    elif [[ "$ARCH" == aarch64 ]]; then
        disk=(-drive if=none,format=raw,file=fat:rw:"$fat",id=hd0 -device virtio-blk-device,drive=hd0)
    else
        disk=(-drive format=raw,file=fat:rw:"$fat")
    fi
    if [[ "$ARCH" == x86_64 ]]; then
        args=(-machine q35 -m 512 -nographic "${firmware[@]}" "${disk[@]}" -net none -no-reboot)
    elif [[ "$ARCH" == ia32 ]]; then
        # The Secure Boot build of OVMF32 needs SMM and a flash only SMM may write.
        args=(-machine q35,smm=on -global driver=cfi.pflash01,property=secure,value=on
              -m 512 -nographic "${firmware[@]}" "${disk[@]}" -net none -no-reboot)
    else
        args=(-machine virt -cpu cortex-a57 -m 512 -nographic "${firmware[@]}" "${disk[@]}"
              -net none -no-reboot)
    fi
    timeout "$TIMEOUT" "$QEMU" "${args[@]}" "$@" < /dev/null > "$log" 2> "$work/qemu.err" &
    qpid=$!
    for _ in $(seq 1 "$((TIMEOUT * 2))"); do
        if [[ -n "$stop" ]] && grep -aqE "$stop" "$log"; then sleep 2; break; fi
        if ! kill -0 "$qpid" 2>/dev/null; then
            rc=0
            wait "$qpid" 2>/dev/null || rc=$?
            [[ "$rc" != 124 ]] && POWERED_OFF=1
            return 0
        fi
        sleep 0.5
    done
    kill "$qpid" 2>/dev/null || true
    wait "$qpid" 2>/dev/null || true
}

# The firmware console with ANSI escapes and carriage returns removed.
clean() { sed -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1b[()][A-Za-z0-9]//g' -e 's/\r//g' "$1"; }

bad=0
if [[ "${1:-}" == "--runner" ]]; then
    command -v clang >/dev/null && command -v lld-link >/dev/null ||
        { echo "apt-get install clang lld" >&2; exit 1; }
    clang -target "$TARGET" -ffreestanding -fshort-wchar $CFLAGS_ARCH -nostdlib \
        -fno-stack-protector -fno-builtin -O2 -c "$here/ovmf_runner.c" -o "$work/runner.obj"
    mkdir -p "$work/fat/EFI/BOOT" "$work/fat/EFI/efistub"
    lld-link -subsystem:efi_application -entry:efi_main -nodefaultlib -machine:"$MACHINE" \
        -out:"$work/fat/EFI/BOOT/$BOOTFILE" "$work/runner.obj" >/dev/null
    cp "$here/$ARCH"/*.efi "$work/fat/EFI/efistub/"
    # files.efi's volume is the runner's: give it its layout (the boot file stays the runner).
    "$here/make-files-esp.sh" "$ARCH" "$work/files-esp" && cp -r "$work/files-esp/files" "$work/fat/"
    boot "$work/fat" "$work/runner.log" '^RUNNER '
    out="$(clean "$work/runner.log" | grep -a -E '^(RESULT|RUNNER|FAIL|DONE|Hello|PASS child-)' || true)"
    echo "$out"
    grep -q '^FAIL' <<<"$out" && bad=1
    runner_ok=(hello memory protocols misc variables reloc events image files textutil hii devtext)
    [[ "$ARCH" == x86_64 || "$ARCH" == ia32 ]] && runner_ok+=(ports)
    for name in "${runner_ok[@]}"; do
        grep -qx "RESULT $name status=$STATUS_OK exitdatasize=0 exitdata=" <<<"$out" || bad=1
    done
    # ExitData is L"exit-data-marker" with its terminator: 17 UCS-2 characters.
    grep -qx "RESULT exit status=$STATUS_INVALID_PARAMETER exitdatasize=34 exitdata=exit-data-marker" \
        <<<"$out" || bad=1
    # image.efi's child is exit.efi, served by the runner's initrd LOAD_FILE2.
    grep -qx 'PASS child-exit' <<<"$out" || bad=1
    grep -q '^RUNNER finished' <<<"$out" || bad=1
    exit "$bad"
fi

if [[ $# -eq 0 ]]; then
    set -- "${DEFAULT[@]}"
fi
for name in "$@"; do
    case "$name" in
        hostile|bench|handoff|needs)
            echo "== $name: for efistub only, not run on real firmware"; continue ;;
        image)
            if [[ "$ARCH" != aarch64 ]]; then
                echo "== image: skipped (QEMU's x86 -kernel takes -initrd only with a Linux kernel); use --runner"
                continue
            fi ;;
    esac
    [[ -f "$here/$ARCH/$name.efi" ]] || { echo "== $name: no $ARCH/$name.efi"; bad=1; continue; }
    rm -rf "$work/fat" && mkdir -p "$work/fat/EFI/BOOT"
    log="$work/$name.log"
    # Stop once the program is done (exit: a moment after it called Exit);
    # the boot manager would otherwise go on to the next boot option.
    stop='^DONE |Hello from efistub guest|exit: calling Exit'
    extra=()
    case "$name" in
        ebs)   stop= ;; # it powers off
        files) stop='^DONE ' ;; # its child, exit.efi, prints "exit: calling Exit"
        image) extra=(-kernel "$here/$ARCH/image.efi" -initrd "$here/$ARCH/exit.efi") ;;
    esac
    serial_report=
    if [[ "$name" == ebs ]] && command -v clang >/dev/null && command -v lld-link >/dev/null; then
        clang -target "$TARGET" -ffreestanding -fshort-wchar $CFLAGS_ARCH -nostdlib \
            -fno-stack-protector -fno-builtin -O2 -DEBS_SERIAL_REPORT -c "$here/ebs.c" -o "$work/ebs.obj"
        lld-link -subsystem:efi_application -entry:efi_main -nodefaultlib -machine:"$MACHINE" \
            -out:"$work/fat/EFI/BOOT/$BOOTFILE" "$work/ebs.obj" >/dev/null
        serial_report=1
    elif [[ "$name" == files ]]; then
        "$here/make-files-esp.sh" "$ARCH" "$work/fat"
    elif [[ "$name" != image ]]; then
        cp "$here/$ARCH/$name.efi" "$work/fat/EFI/BOOT/$BOOTFILE"
    fi
    boot "$work/fat" "$log" "$stop" "${extra[@]}"
    out="$(clean "$log" |
           grep -a -E '^(PASS|FAIL|DONE|  note|  info|Hello|exit:|memory:|protocols:|misc:|variables:|reloc:|events:|ebs:|image:|ports:|files:)' || true)"
    echo "== $name"
    echo "$out"
    if grep -q '^FAIL' <<<"$out"; then bad=1; fi
    case "$name" in
        hello) grep -q 'Hello from efistub guest' <<<"$out" || bad=1 ;;
        exit)  grep -q 'exit: calling Exit' <<<"$out" || bad=1 ;;
        ebs)   grep -q '^ebs: calling ExitBootServices' <<<"$out" || bad=1
               if [[ "$POWERED_OFF" == 1 ]]; then
                   echo "(QEMU powered off after ExitBootServices)"
               else
                   echo "(QEMU did not power off within ${TIMEOUT} s)"; bad=1
               fi
               if [[ -n "$serial_report" ]]; then
                   verdict="$(grep -a -E '^ebs: before=' <<<"$out" || true)"
                   if [[ "$verdict" == *" PASS" ]]; then
                       :
                   elif grep -qxE 'ebs: before=0 exit=2 order=(1,2|2,1) FAIL' <<<"$verdict"; then
                       echo "(note: this EDK2 does not signal EFI_EVENT_GROUP_BEFORE_EXIT_BOOT_SERVICES;" \
                            "the EXIT_BOOT_SERVICES notifications are as expected)"
                   else
                       echo "(no or unexpected ResetData verdict on the serial port)"; bad=1
                   fi
               fi ;;
        *)     grep -q '^DONE 0 failures' <<<"$out" || bad=1 ;;
    esac
done
exit "$bad"
