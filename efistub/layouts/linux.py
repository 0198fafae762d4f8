"""Configuration tables the Linux EFI stub installs (include/linux/efi.h).

Both use ``unsigned long``, as wide as the kernel's pointers: the guest's pointer
width, since efistub runs no mixed mode (a 64-bit kernel on 32-bit firmware).
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

from construct import Int32ul, Int64ul

from .efi import c_struct


@functools.lru_cache(maxsize=None)
def layouts(width: int) -> SimpleNamespace:
    """InitrdMedia and BootMemmapHeader for a kernel whose ``unsigned long`` is ``width`` bytes."""
    if width not in (4, 8):
        raise ValueError(f"pointer width must be 4 or 8 bytes, not {width!r}")
    ulong = Int64ul if width == 8 else Int32ul
    return SimpleNamespace(
        width=width,
        # struct linux_efi_initrd, the LINUX_EFI_INITRD_MEDIA table
        InitrdMedia=c_struct("base" / ulong, "size" / ulong),
        # struct efi_boot_memmap up to its map[], the LINUX_EFI_BOOT_MEMMAP table
        BootMemmapHeader=c_struct("map_size" / ulong, "desc_size" / ulong, "desc_ver" / Int32ul,
                                  "map_key" / ulong, "buff_size" / ulong),
    )
