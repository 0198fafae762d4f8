"""Linux x86 boot protocol structures (arch/x86/include/uapi/asm/bootparam.h): the zero page."""

from __future__ import annotations

from construct import Array, Bytes, Int8ul, Int16ul, Int32ul, Int64ul, Padding, Struct

E820_MAX_ENTRIES_ZEROPAGE = 128
EFI64_LOADER_SIGNATURE = b"EL64"

# e820 types
E820_TYPES = {1: "RAM", 2: "RESERVED", 3: "ACPI", 4: "NVS", 5: "UNUSABLE", 7: "PMEM", 12: "PRAM",
              0xEFFFFFFF: "SOFT_RESERVED"}
SETUP_DATA_TYPES = {1: "E820_EXT", 2: "DTB", 3: "PCI", 4: "EFI", 5: "APPLE_PROPERTIES", 6: "JAILHOUSE",
                    7: "CC_BLOB", 8: "IMA", 9: "RNG_SEED"}

ScreenInfo = Struct(
    "orig_x" / Int8ul, "orig_y" / Int8ul, "ext_mem_k" / Int16ul, "orig_video_page" / Int16ul,
    "orig_video_mode" / Int8ul, "orig_video_cols" / Int8ul, "flags" / Int8ul, Padding(1),
    "orig_video_ega_bx" / Int16ul, Padding(2), "orig_video_lines" / Int8ul, "orig_video_isVGA" / Int8ul,
    "orig_video_points" / Int16ul, "lfb_width" / Int16ul, "lfb_height" / Int16ul, "lfb_depth" / Int16ul,
    "lfb_base" / Int32ul, "lfb_size" / Int32ul, "cl_magic" / Int16ul, "cl_offset" / Int16ul,
    "lfb_linelength" / Int16ul, "red_size" / Int8ul, "red_pos" / Int8ul, "green_size" / Int8ul,
    "green_pos" / Int8ul, "blue_size" / Int8ul, "blue_pos" / Int8ul, "rsvd_size" / Int8ul,
    "rsvd_pos" / Int8ul, "vesapm_seg" / Int16ul, "vesapm_off" / Int16ul, "pages" / Int16ul,
    "vesa_attributes" / Int16ul, "capabilities" / Int32ul, "ext_lfb_base" / Int32ul, Padding(2),
)

EfiInfo = Struct(
    "efi_loader_signature" / Bytes(4), "efi_systab" / Int32ul, "efi_memdesc_size" / Int32ul,
    "efi_memdesc_version" / Int32ul, "efi_memmap" / Int32ul, "efi_memmap_size" / Int32ul,
    "efi_systab_hi" / Int32ul, "efi_memmap_hi" / Int32ul,
)

SetupHeader = Struct(
    "setup_sects" / Int8ul, "root_flags" / Int16ul, "syssize" / Int32ul, "ram_size" / Int16ul,
    "vid_mode" / Int16ul, "root_dev" / Int16ul, "boot_flag" / Int16ul, "jump" / Int16ul,
    "header" / Bytes(4), "version" / Int16ul, "realmode_swtch" / Int32ul, "start_sys_seg" / Int16ul,
    "kernel_version" / Int16ul, "type_of_loader" / Int8ul, "loadflags" / Int8ul,
    "setup_move_size" / Int16ul, "code32_start" / Int32ul, "ramdisk_image" / Int32ul,
    "ramdisk_size" / Int32ul, "bootsect_kludge" / Int32ul, "heap_end_ptr" / Int16ul,
    "ext_loader_ver" / Int8ul, "ext_loader_type" / Int8ul, "cmd_line_ptr" / Int32ul,
    "initrd_addr_max" / Int32ul, "kernel_alignment" / Int32ul, "relocatable_kernel" / Int8ul,
    "min_alignment" / Int8ul, "xloadflags" / Int16ul, "cmdline_size" / Int32ul,
    "hardware_subarch" / Int32ul, "hardware_subarch_data" / Int64ul, "payload_offset" / Int32ul,
    "payload_length" / Int32ul, "setup_data" / Int64ul, "pref_address" / Int64ul, "init_size" / Int32ul,
    "handover_offset" / Int32ul, "kernel_info_offset" / Int32ul,
)

E820Entry = Struct("addr" / Int64ul, "size" / Int64ul, "type" / Int32ul)

BootParams = Struct(
    "screen_info" / ScreenInfo,                 # 0x000
    Padding(0x0C0 - 0x040),
    "ext_ramdisk_image" / Int32ul,              # 0x0c0
    "ext_ramdisk_size" / Int32ul,               # 0x0c4
    "ext_cmd_line_ptr" / Int32ul,               # 0x0c8
    Padding(0x1C0 - 0x0CC),
    "efi_info" / EfiInfo,                       # 0x1c0
    "alt_mem_k" / Int32ul,                      # 0x1e0
    "scratch" / Int32ul,                        # 0x1e4
    "e820_entries" / Int8ul,                    # 0x1e8
    "eddbuf_entries" / Int8ul,
    "edd_mbr_sig_buf_entries" / Int8ul,
    "kbd_status" / Int8ul,
    "secure_boot" / Int8ul,                     # 0x1ec
    Padding(2),
    "sentinel" / Int8ul,                        # 0x1ef
    Padding(1),
    "hdr" / SetupHeader,                        # 0x1f1
    Padding(0x2D0 - 0x1F1 - SetupHeader.sizeof()),
    "e820_table" / Array(E820_MAX_ENTRIES_ZEROPAGE, E820Entry),  # 0x2d0
    Padding(0x1000 - 0xCD0),
)

SetupData = Struct("next" / Int64ul, "type" / Int32ul, "len" / Int32ul)
