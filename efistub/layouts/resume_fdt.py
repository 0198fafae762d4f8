"""The state blocks of efistub's AArch64 and RISC-V 64 resume trampolines
(efistub/resume/trampolines/aarch64.S and riscv64.S).

Each trampoline image opens with one jump over its block, which lies STATE_OFFSET bytes
in. efistub resume writes the saved CPU state into a copy of the image; the trampoline
reads it field by field (the .S names each one ``state_<field>``). After the registers
comes a list of moves: saved RAM that efistub loaded at a staging address because QEMU
puts its own data where it belongs; the trampoline copies each into place first. The
built images hold PLACEHOLDER + n in the n-th register field (REGISTER_FIELDS) and no
moves, so a test can check that these definitions and the assembly agree.
"""

from __future__ import annotations

from construct import Array, Const, Int32ul, Int64ul, Struct

MAGIC = b"EFIRESUM"
VERSION = 1
STATE_OFFSET = 8  # the block's offset in the image: after the first instruction, 8-byte aligned
PLACEHOLDER = 0xEF15_705E_0000_0000
MAX_MOVES = 16

Move = Struct(  # copy ``size`` bytes (a multiple of 8) from ``source`` to ``destination``
    "destination" / Int64ul,
    "source" / Int64ul,
    "size" / Int64ul,
)

AARCH64_REGISTER_FIELDS = tuple(f"x{i}" for i in range(31)) + (
    "sp", "pc", "pstate", "sctlr_el1", "tcr_el1", "ttbr0_el1", "ttbr1_el1", "mair_el1", "vbar_el1")
# x1 ... x31 by their ABI names, in register-number order, then the CSRs
RISCV64_REGISTER_FIELDS = ("ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3", "a4", "a5",
                           "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4",
                           "t5", "t6") + ("pc", "satp", "stvec", "sstatus")


def state_block(register_fields: tuple[str, ...]) -> Struct:
    return Struct(
        "magic" / Const(MAGIC),
        "version" / Int32ul,
        "size" / Int32ul,
        *(name / Int64ul for name in register_fields),
        "move_count" / Int64ul,
        "moves" / Array(MAX_MOVES, Move),
    )


AArch64StateBlock = state_block(AARCH64_REGISTER_FIELDS)
RiscV64StateBlock = state_block(RISCV64_REGISTER_FIELDS)
