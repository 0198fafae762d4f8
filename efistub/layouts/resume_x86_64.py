"""The state block of efistub's x86_64 resume trampoline (efistub/resume/trampolines/x86_64.S).

The block opens the 64 KiB trampoline ROM, which QEMU maps at 0xFFFF0000. efistub resume
writes the saved CPU state into a copy of the image; the trampoline reads it field by
field (the .S names each one ``state_<field>``) and uses two stretches of it as a
read-only stack: ``cs_frame`` + ``cs`` for LRETQ (which loads CS) and ``rflags`` for POPFQ.
The built image holds PLACEHOLDER + n in the n-th register field (REGISTER_FIELDS), so a
test can check that this definition and the assembly agree.
"""

from __future__ import annotations

from construct import Const, Int16ul, Int32ul, Int64ul, Padding, Struct

MAGIC = b"EFIRESUM"
VERSION = 1
ROM_BASE = 0xFFFF_0000  # where QEMU maps a 64 KiB -bios image: it ends at 4 GiB
ROM_SIZE = 0x1_0000
STATE_OFFSET = 0  # the block's offset in the image
PLACEHOLDER = 0xEF15_705E_0000_0000

GENERAL_REGISTERS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12",
                     "r13", "r14", "r15")
# The 64-bit fields, in block order; the built image holds PLACEHOLDER + their index.
REGISTER_FIELDS = GENERAL_REGISTERS + ("rip", "rflags", "cr0", "cr2", "cr3", "cr4", "efer", "fs_base", "gs_base",
                                       "ds", "es", "fs", "gs", "ss")

DescriptorTableRegister = Struct(  # the LGDT/LIDT operand, its 64-bit base aligned
    Padding(6),
    "limit" / Int16ul,
    "base" / Int64ul,
)

StateBlock = Struct(
    "magic" / Const(MAGIC),
    "version" / Int32ul,
    "size" / Int32ul,
    *(name / Int64ul for name in REGISTER_FIELDS),
    "cs_frame" / Int64ul,  # where LRETQ returns to: the trampoline's own code (set when it is built)
    "cs" / Int64ul,
    "gdtr" / DescriptorTableRegister,
    "idtr" / DescriptorTableRegister,
)
