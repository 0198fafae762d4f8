"""Boards: the machines whose memory layout guest RAM copies, so that a hand-off can boot on one.

A run's RAM, memory map and hand-off describe a machine that exists: QEMU's q35 PC
for x86 (RAM from 0 with the legacy hole below 1 MiB, RAM past QEMU's low-memory limit
moved above 4 GiB), QEMU's virt board for AArch64 (RAM at 0x4000_0000) and for RISC-V
(RAM at 0x8000_0000, its first 2 MiB kept for the SBI firmware, as OpenSBI keeps it).
``--platform`` names the board; each architecture has a default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .errors import InputError
from .layouts.efi import PAGE_SIZE

GiB = 1 << 30
MiB = 1 << 20
FOUR_GiB = 4 * GiB


@dataclass(frozen=True)
class Reserved:
    start: int
    end: int
    what: str  # why the board keeps it: the report and docs say so


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    ram: Callable[[int], list[tuple[int, int]]]  # RAM size -> the (start, end) ranges it takes
    reserved: tuple[Reserved, ...] = ()  # inside RAM, never allocated: EfiReservedMemoryType in the map
    null_page: bool = False  # page 0 is RAM on this board: the first access to it is noted, then served

    def as_dict(self, size: int) -> dict:
        return {"name": self.name, "ram": [{"start": s, "end": e} for s, e in self.ram(size)],
                "reserved": [{"start": r.start, "end": r.end, "what": r.what} for r in self.reserved]}


def _q35_ram(size: int) -> list[tuple[int, int]]:
    """QEMU's q35 rule: RAM below 4 GiB ends at 2.75 GiB, or at 2 GiB when there is 2.75 GiB or more
    (the rest of the window is PCI and firmware); what does not fit lies from 4 GiB up."""
    low_limit = 0x8000_0000 if size >= 0xB000_0000 else 0xB000_0000
    low = min(size, low_limit)
    return [(0, low)] + ([(FOUR_GiB, FOUR_GiB + size - low)] if size > low else [])


def _at(base: int) -> Callable[[int], list[tuple[int, int]]]:
    return lambda size: [(base, base + size)]


Q35 = Board("q35", "QEMU q35 PC: RAM from 0, the 640 KiB-1 MiB legacy hole reserved, RAM above 2 GiB or 2.75 GiB "
                   "from 4 GiB up", _q35_ram,
            (Reserved(0, PAGE_SIZE, "page 0: the real-mode interrupt vector table and BIOS data area"),
             Reserved(0xA_0000, 0x10_0000, "the legacy VGA window and BIOS ROM area (640 KiB-1 MiB)")),
            null_page=True)
ARM_VIRT = Board("virt", "QEMU virt (AArch64): RAM at 0x4000_0000", _at(0x4000_0000))
RISCV_VIRT = Board("virt", "QEMU virt (RISC-V): RAM at 0x8000_0000, the first 2 MiB kept for OpenSBI",
                   _at(0x8000_0000), (Reserved(0x8000_0000, 0x8000_0000 + 2 * MiB, "the SBI firmware (OpenSBI)"),))

BOARDS: dict[str, tuple[Board, ...]] = {  # architecture -> its boards, the default first
    "x86_64": (Q35,),
    "ia32": (Q35,),
    "aarch64": (ARM_VIRT,),
    "riscv64": (RISCV_VIRT,),
}


def names() -> list[str]:
    return sorted({b.name for boards in BOARDS.values() for b in boards})


def for_arch(arch: str, name: str | None = None) -> Board:
    """The board ``name`` of ``arch`` (None: its default); InputError for a board it has not."""
    boards = BOARDS[arch]
    if name is None:
        return boards[0]
    for board in boards:
        if board.name == name:
            return board
    raise InputError("--platform", f"{name!r} is not a board for {arch} (it has: "
                                   f"{', '.join(b.name for b in boards)})")
