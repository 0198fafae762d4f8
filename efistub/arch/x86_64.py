"""x86_64: long mode as unicorn starts it, the MS x64 calling convention, SYSCALL traps."""

from __future__ import annotations

from unicorn import x86_const as x86

from ..layouts import pe
from .convention import TRAP_SYSCALL, CallingConvention
from .x86 import X86

MS_X64 = CallingConvention(
    name="MS x64", width=8,
    arg_registers=(x86.UC_X86_REG_RCX, x86.UC_X86_REG_RDX, x86.UC_X86_REG_R8, x86.UC_X86_REG_R9),
    return_register=x86.UC_X86_REG_RAX, sp=x86.UC_X86_REG_RSP, pc=x86.UC_X86_REG_RIP,
    link_register=None, shadow_space=32,
    preserved=tuple(getattr(x86, f"UC_X86_REG_{r}") for r in ("RBX", "RBP", "RDI", "RSI", "R12", "R13", "R14", "R15")),
    trap=TRAP_SYSCALL, trap_instruction=bytes.fromhex("0f05"),  # syscall
    return_instruction=bytes.fromhex("c3"), stub_padding=b"\xcc",  # ret; int3
    trap_pc_offset=0,  # unicorn runs the SYSCALL hook with RIP at the instruction
)

REGISTERS = {name: getattr(x86, f"UC_X86_REG_{name.upper()}") for name in (
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11",
    "r12", "r13", "r14", "r15", "rip", "rflags", "cr0", "cr3", "cr4")}


class X86_64(X86):
    name = "x86_64"
    machine = pe.MACHINE_AMD64
    convention = MS_X64
    REGISTERS = REGISTERS
    REMOVABLE_MEDIA_PATH = "\\EFI\\BOOT\\BOOTX64.EFI"  # what firmware boots without boot options
