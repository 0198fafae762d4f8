"""The x86 Linux boot protocol: decoding the boot_params (zero page) a kernel is entered with."""

from __future__ import annotations

from ..layouts import linux_x86


def _c_string(mem, address: int, limit: int) -> str:
    raw = mem.read(address, limit) if limit else b""
    return raw.split(b"\0", 1)[0].decode("utf-8", errors="replace")


BOOT_PARAMS_MAGIC = b"HdrS"  # setup_header.header, which boot loaders copy from the kernel image
EFI_LOADER_SIGNATURES = (b"EL64", b"EL32")  # efi_info.efi_loader_signature, set by EFI loaders and the stub


def looks_like_boot_params(mem, address: int) -> bool:
    """Whether ``address`` holds boot_params (what an x86 kernel is entered with): a setup header, or
    the EFI loader signature (the EFI stub of recent kernels leaves the header empty)."""
    try:
        bp = mem.read_struct(linux_x86.BootParams, address)
    except Exception:
        return False
    return bp.hdr.header == BOOT_PARAMS_MAGIC or bp.efi_info.efi_loader_signature in EFI_LOADER_SIGNATURES


def decode_boot_params(mem, address: int) -> dict:
    bp = mem.read_struct(linux_x86.BootParams, address)
    hdr, efi_info = bp.hdr, bp.efi_info
    cmdline_ptr = hdr.cmd_line_ptr | bp.ext_cmd_line_ptr << 32
    cmdline = ""
    if cmdline_ptr:
        limit = hdr.cmdline_size + 1 if hdr.cmdline_size else 4096
        cmdline = _c_string(mem, cmdline_ptr, _readable(mem, cmdline_ptr, limit))
    setup_data = []
    pointer = hdr.setup_data
    while pointer and len(setup_data) < 64:
        try:
            node = mem.read_struct(linux_x86.SetupData, pointer)
        except Exception as e:  # a chain the loader left broken: say where, keep the rest
            setup_data.append({"address": pointer, "error": str(e)})
            break
        setup_data.append({"address": pointer, "type": linux_x86.SETUP_DATA_TYPES.get(node.type, node.type),
                           "len": node.len})
        pointer = node.next
    si = bp.screen_info
    return {
        "address": address,
        "cmdline": cmdline,
        "cmd_line_ptr": cmdline_ptr,
        "ramdisk_image": hdr.ramdisk_image | bp.ext_ramdisk_image << 32,
        "ramdisk_size": hdr.ramdisk_size | bp.ext_ramdisk_size << 32,
        "e820": [
            {"addr": e.addr, "size": e.size, "type": linux_x86.E820_TYPES.get(e.type, e.type)}
            for e in bp.e820_table[: min(bp.e820_entries, linux_x86.E820_MAX_ENTRIES_ZEROPAGE)]
        ],
        "efi_info": {
            "loader_signature": efi_info.efi_loader_signature.decode("latin-1"),
            "systab": efi_info.efi_systab | efi_info.efi_systab_hi << 32,
            "memmap": efi_info.efi_memmap | efi_info.efi_memmap_hi << 32,
            "memmap_size": efi_info.efi_memmap_size,
            "memdesc_size": efi_info.efi_memdesc_size,
            "memdesc_version": efi_info.efi_memdesc_version,
        },
        "secure_boot": bp.secure_boot,
        "screen_info": {"orig_video_isVGA": si.orig_video_isVGA, "lfb_base": si.lfb_base | si.ext_lfb_base << 32,
                        "lfb_size": si.lfb_size, "lfb_width": si.lfb_width, "lfb_height": si.lfb_height},
        "setup_data": setup_data,
        "hdr": {"type_of_loader": hdr.type_of_loader, "loadflags": hdr.loadflags, "version": hdr.version,
                "boot_flag": hdr.boot_flag, "vid_mode": hdr.vid_mode, "root_flags": hdr.root_flags,
                "initrd_addr_max": hdr.initrd_addr_max, "kernel_alignment": hdr.kernel_alignment,
                "init_size": hdr.init_size, "header": hdr.header.decode("latin-1")},
    }


def _readable(mem, address: int, limit: int) -> int:
    """How many of ``limit`` bytes from ``address`` can be read (stops at the end of RAM)."""
    while limit > 0:
        try:
            mem.read(address, limit)
            return limit
        except Exception:
            limit //= 2
    return 0
