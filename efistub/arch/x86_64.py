"""x86_64: long mode as unicorn starts it, the MS x64 calling convention, SYSCALL traps."""

from __future__ import annotations

from unicorn import UC_HOOK_INTR
from unicorn import x86_const as x86

from ..layouts import pe
from ..layouts import x86_cpu as cpu
from ..layouts.efi import PAGE_SIZE
from ..memory import MemoryType
from .convention import TRAP_SYSCALL, CallingConvention
from .gdb_target import EFISTUB_FEATURE, GdbFeature, GdbRegister, GdbTarget, read_only, registers
from .x86 import EFLAGS_TYPE, SEGMENTS, X86, X87, sse_feature, unicorn_id

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


FOUR_GiB = 1 << 32
PAGE_FAULT = 14
EXCEPTIONS = {0: "#DE (divide error)", 1: "#DB (debug)", 3: "#BP (breakpoint)", 4: "#OF (overflow)",
              5: "#BR (bound range)", 6: "#UD (invalid opcode)", 7: "#NM (no FPU)", 8: "#DF (double fault)",
              10: "#TS (invalid TSS)", 11: "#NP (segment not present)", 12: "#SS (stack fault)",
              13: "#GP (general protection: a non-canonical address, a bad selector, a privileged instruction)",
              PAGE_FAULT: "#PF (page fault: not mapped by the page tables)", 16: "#MF (x87 error)",
              17: "#AC (alignment check)", 18: "#MC (machine check)", 19: "#XM (SIMD error)"}
CR0_FIRMWARE = cpu.CR0_PG | cpu.CR0_WP | cpu.CR0_NE | cpu.CR0_MP
# The GDT: null, 64-bit code (selector 0x08), flat data (0x10), 32-bit code (0x18)
_FLAT = dict(LimitLow=0xFFFF, BaseLow=0, BaseMiddle=0, BaseHigh=0)
GDT = (
    dict(_FLAT, LimitLow=0, Access=0, LimitHighFlags=0),
    dict(_FLAT, Access=cpu.ACCESS_CODE, LimitHighFlags=cpu.FLAGS_CODE64 << 4 | 0xF),
    dict(_FLAT, Access=cpu.ACCESS_DATA, LimitHighFlags=cpu.FLAGS_FLAT32 << 4 | 0xF),
    dict(_FLAT, Access=cpu.ACCESS_CODE, LimitHighFlags=cpu.FLAGS_FLAT32 << 4 | 0xF),
)
STATE_REGISTERS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13",
                   "r14", "r15", "rip", "rflags", "cr0", "cr2", "cr3", "cr4", "cs", "ds", "es", "fs", "gs", "ss")
STATE_MSRS = {"efer": 0xC000_0080, "fs_base": 0xC000_0100, "gs_base": 0xC000_0101}  # IA32_EFER, IA32_FS/GS_BASE
CODE_SELECTOR = 1 * 8
DATA_SELECTOR = 2 * 8
SSE_REGISTERS = 16
GENERAL = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp") + tuple(f"r{i}" for i in range(8, 16))


def _msr(name: str) -> GdbRegister:
    return read_only(name, 64, lambda uc: uc.reg_read(x86.UC_X86_REG_MSR, STATE_MSRS[name]))


GDB_TARGET = GdbTarget("i386:x86-64", (
    GdbFeature("org.gnu.gdb.i386.core", registers(GENERAL, 64, unicorn_id, "int64")
               + (GdbRegister("rip", 64, x86.UC_X86_REG_RIP, "code_ptr"),
                  GdbRegister("eflags", 32, x86.UC_X86_REG_EFLAGS, "i386_eflags"))
               + SEGMENTS + X87, EFLAGS_TYPE),
    sse_feature(SSE_REGISTERS),
    GdbFeature("org.gnu.gdb.i386.segments", registers(("fs_base", "gs_base"), 64, unicorn_id)),
    GdbFeature(EFISTUB_FEATURE, registers(("cr0", "cr2", "cr3", "cr4"), 64, unicorn_id, group="system")
               + (_msr("efer"),)),
))


class X86_64(X86):
    name = "x86_64"
    machine = pe.MACHINE_AMD64
    convention = MS_X64
    REGISTERS = REGISTERS
    GDB_TARGET = GDB_TARGET
    REMOVABLE_MEDIA_PATH = "\\EFI\\BOOT\\BOOTX64.EFI"  # what firmware boots without boot options

    def prepare_cpu(self, uc, fw) -> None:
        """Paging on, through an identity map of RAM and the 32-bit window (2 MiB pages), and a GDT
        with a flat 64-bit code segment, both in boot-services memory, as OVMF leaves them: the
        state a real CPU needs for long mode, which a saved hand-off carries (unicorn itself would
        run long mode without paging)."""
        top = max(FOUR_GiB, fw.pages.end)
        directories = -(-top // cpu.PDPT_SPAN)
        tables = fw.allocate_pages(MemoryType.EfiBootServicesData, 2 + directories)
        pml4, pdpt = tables, tables + PAGE_SIZE
        table = cpu.PRESENT | cpu.WRITABLE
        fw.mem.write(pml4, cpu.PageTable.build([pdpt | table] + [0] * (cpu.ENTRIES - 1)))
        fw.mem.write(pdpt, cpu.PageTable.build([tables + (2 + i) * PAGE_SIZE | table for i in range(directories)]
                                               + [0] * (cpu.ENTRIES - directories)))
        for i in range(directories):
            base = i * cpu.PDPT_SPAN
            fw.mem.write(tables + (2 + i) * PAGE_SIZE, cpu.PageTable.build(
                [base + j * cpu.LARGE_PAGE_SIZE | table | cpu.LARGE_PAGE for j in range(cpu.ENTRIES)]))
        size = len(GDT) * cpu.SegmentDescriptor.sizeof()
        gdt = fw.allocate_pool(MemoryType.EfiBootServicesData, size)
        fw.mem.write(gdt, b"".join(cpu.SegmentDescriptor.build(d) for d in GDT))
        uc.reg_write(x86.UC_X86_REG_GDTR, (0, gdt, size - 1, 0))
        uc.reg_write(x86.UC_X86_REG_CR3, pml4)
        uc.reg_write(x86.UC_X86_REG_CR4, uc.reg_read(x86.UC_X86_REG_CR4) | cpu.CR4_PAE)
        uc.reg_write(x86.UC_X86_REG_CR0, uc.reg_read(x86.UC_X86_REG_CR0) | CR0_FIRMWARE)
        for register in (x86.UC_X86_REG_DS, x86.UC_X86_REG_ES, x86.UC_X86_REG_SS, x86.UC_X86_REG_FS,
                         x86.UC_X86_REG_GS):
            uc.reg_write(register, DATA_SELECTOR)
        uc.reg_write(x86.UC_X86_REG_CS, CODE_SELECTOR)

    def cpu_state(self, uc) -> dict[str, int]:
        """The general registers, RIP and RFLAGS, CR0/CR2/CR3/CR4, EFER, the segment selectors with
        the FS and GS bases, and the GDTR and IDTR (base and limit)."""
        state = {name: uc.reg_read(getattr(x86, f"UC_X86_REG_{name.upper()}")) for name in STATE_REGISTERS}
        for name, msr in STATE_MSRS.items():
            state[name] = uc.reg_read(x86.UC_X86_REG_MSR, msr)
        for name in ("gdtr", "idtr"):
            _, base, limit, _ = uc.reg_read(getattr(x86, f"UC_X86_REG_{name.upper()}"))
            state[f"{name}_base"], state[f"{name}_limit"] = base, limit
        return state

    def attach(self, uc, fw) -> None:
        """Also: a CPU exception (there is no IDT) ends the run as a fault that names it."""
        super().attach(uc, fw)

        def exception(uc, vector, user_data):
            name = EXCEPTIONS.get(vector, f"vector {vector}")
            detail = f", at address 0x{uc.reg_read(x86.UC_X86_REG_CR2):x}" if vector == PAGE_FAULT else ""
            fw.request_stop("fault", reason=f"CPU exception {name}{detail}")
            uc.emu_stop()

        uc.hook_add(UC_HOOK_INTR, exception)
