"""x86 CPU structures the firmware sets up for a 64-bit guest (Intel SDM vol. 3): the page tables
of an identity map and a GDT, as OVMF leaves them for the image it starts."""

from __future__ import annotations

from construct import Array, Int8ul, Int16ul, Int64ul, Struct

ENTRIES = 512  # entries of a page-table page
PageTable = Array(ENTRIES, Int64ul)
PRESENT = 1 << 0
WRITABLE = 1 << 1
LARGE_PAGE = 1 << 7  # a 2 MiB page in a page directory
LARGE_PAGE_SIZE = 2 << 20
PDPT_SPAN = 1 << 30  # what one page directory maps with 2 MiB pages

# A segment descriptor, as the GDT holds it.
SegmentDescriptor = Struct(
    "LimitLow" / Int16ul,
    "BaseLow" / Int16ul,
    "BaseMiddle" / Int8ul,
    "Access" / Int8ul,  # present, DPL, S, type
    "LimitHighFlags" / Int8ul,  # limit 19:16 in the low nibble, G/D/L/AVL in the high one
    "BaseHigh" / Int8ul,
)
ACCESS_CODE = 0x9A  # present, ring 0, code, execute/read
ACCESS_DATA = 0x92  # present, ring 0, data, read/write
FLAGS_CODE64 = 0xA  # granularity 4 KiB, long mode
FLAGS_FLAT32 = 0xC  # granularity 4 KiB, 32-bit
CR0_PG = 1 << 31
CR0_WP = 1 << 16
CR0_NE = 1 << 5
CR0_MP = 1 << 1
CR4_PAE = 1 << 5
