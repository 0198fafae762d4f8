"""IA32: 32-bit protected mode with flat segments and paging off, cdecl, INT 0x80 traps.

UEFI's IA32 binding passes every argument on the stack (a UINT64 takes two 4-byte
slots, low half first) and returns in EAX. SYSCALL does not exist in 32-bit
protected mode, so the stubs trap with INT 0x80; unicorn reports it to the
interrupt hook with EIP past the instruction, without going through an IDT. RAM
lies below 4 GiB.
"""

from __future__ import annotations

from unicorn import UC_MODE_32
from unicorn import x86_const as x86

from ..layouts import pe
from .convention import TRAP_INTERRUPT, CallingConvention
from .gdb_target import EFISTUB_FEATURE, GdbFeature, GdbRegister, GdbTarget, registers
from .x86 import EFLAGS_TYPE, SEGMENTS, X86, X87, sse_feature, unicorn_id

TRAP_VECTOR = 0x80

CDECL = CallingConvention(
    name="cdecl (IA32)", width=4,
    arg_registers=(),
    return_register=x86.UC_X86_REG_EAX, sp=x86.UC_X86_REG_ESP, pc=x86.UC_X86_REG_EIP,
    link_register=None, shadow_space=0,
    preserved=(x86.UC_X86_REG_EBX, x86.UC_X86_REG_EBP, x86.UC_X86_REG_ESI, x86.UC_X86_REG_EDI),
    trap=TRAP_INTERRUPT, trap_instruction=bytes([0xCD, TRAP_VECTOR]),  # int 0x80
    return_instruction=bytes.fromhex("c3"), stub_padding=b"\xcc",  # ret; int3
    trap_pc_offset=2,  # EIP is past the INT when the hook runs
    trap_interrupts=(TRAP_VECTOR,),
)

REGISTERS = {name: getattr(x86, f"UC_X86_REG_{name.upper()}") for name in (
    "eax", "ebx", "ecx", "edx", "esi", "edi", "ebp", "esp", "eip", "eflags", "cr0", "cr3", "cr4")}

SSE_REGISTERS = 8
GDB_TARGET = GdbTarget("i386", (
    GdbFeature("org.gnu.gdb.i386.core", registers(("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"), 32,
                                                  unicorn_id, "int32")
               + (GdbRegister("eip", 32, x86.UC_X86_REG_EIP, "code_ptr"),
                  GdbRegister("eflags", 32, x86.UC_X86_REG_EFLAGS, "i386_eflags"))
               + SEGMENTS + X87, EFLAGS_TYPE),
    sse_feature(SSE_REGISTERS),
    GdbFeature(EFISTUB_FEATURE, registers(("cr0", "cr2", "cr3", "cr4"), 32, unicorn_id, group="system")),
))


class IA32(X86):
    name = "ia32"
    machine = pe.MACHINE_I386
    convention = CDECL
    REGISTERS = REGISTERS
    GDB_TARGET = GDB_TARGET
    REMOVABLE_MEDIA_PATH = "\\EFI\\BOOT\\BOOTIA32.EFI"  # what firmware boots without boot options
    ENGINE_MODE = UC_MODE_32
    BOOT_PARAMS_REGISTER = x86.UC_X86_REG_ESI
    ABCD = (x86.UC_X86_REG_EAX, x86.UC_X86_REG_EBX, x86.UC_X86_REG_ECX, x86.UC_X86_REG_EDX)
    RAM_LIMIT = 1 << 32

    def cpu_state(self, uc) -> dict[str, int]:
        """The general registers, EIP and EFLAGS, CR0/CR3/CR4, the segment selectors and the GDTR
        (32-bit protected mode without paging, as IA32 firmware runs)."""
        state = {name: uc.reg_read(reg) for name, reg in REGISTERS.items()}
        for name in ("cs", "ds", "es", "fs", "gs", "ss"):
            state[name] = uc.reg_read(getattr(x86, f"UC_X86_REG_{name.upper()}"))
        _, base, limit, _ = uc.reg_read(x86.UC_X86_REG_GDTR)
        state.update(gdtr_base=base, gdtr_limit=limit)
        return state
