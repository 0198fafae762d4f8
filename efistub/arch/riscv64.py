"""RISC-V 64: S-mode, LP64 arguments, ECALL hypercalls, RISCV_EFI_BOOT_PROTOCOL, the FDT hand-off.

The kernel is entered with a0 = the boot hart id and a1 = the FDT, after the stub has
turned address translation off (``csrw satp, 0``); efistub never turns it on, so the
hand-off is the first fetch outside the stub (or the kernel entry, when the kernel
runs where it was loaded).
"""

from __future__ import annotations

from unicorn import UC_ARCH_RISCV, UC_MODE_RISCV64, Uc
from unicorn import riscv_const as rv

from ..layouts import pe
from .base import Architecture
from .convention import TRAP_INTERRUPT, CallingConvention
from .gdb_target import GdbFeature, GdbRegister, GdbTarget, registers
from ..linux.devicetree import fdt_handoff, looks_like_fdt

ECALL_CAUSES = (8, 9, 11)  # environment call from U-, S- or M-mode
PRIV_SUPERVISOR = 1
MSTATUS_FS_INITIAL = 1 << 13
ABI_NAMES = ("zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3", "a4", "a5",
             "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4", "t5", "t6")
REGISTERS = {name: getattr(rv, f"UC_RISCV_REG_X{i}") for i, name in enumerate(ABI_NAMES) if i}
REGISTERS.update(pc=rv.UC_RISCV_REG_PC, satp=rv.UC_RISCV_REG_SATP)


LP64 = CallingConvention(
    name="LP64", width=8,
    arg_registers=tuple(getattr(rv, f"UC_RISCV_REG_A{i}") for i in range(8)),
    return_register=rv.UC_RISCV_REG_A0, sp=rv.UC_RISCV_REG_SP, pc=rv.UC_RISCV_REG_PC,
    link_register=rv.UC_RISCV_REG_RA, shadow_space=0,
    preserved=(rv.UC_RISCV_REG_GP, rv.UC_RISCV_REG_TP) + tuple(getattr(rv, f"UC_RISCV_REG_S{i}") for i in range(12)),
    trap=TRAP_INTERRUPT, trap_instruction=bytes.fromhex("73000000"),  # ecall
    return_instruction=bytes.fromhex("67800000"), stub_padding=bytes.fromhex("73001000"),  # ret; ebreak
    trap_pc_offset=4,  # the PC is past the ECALL when the hook runs
    trap_interrupts=ECALL_CAUSES,
)


STATE_REGISTERS = ("ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3", "a4", "a5", "a6",
                   "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4", "t5", "t6",
                   "pc", "priv", "satp", "stvec", "sstatus")

FP_REGISTERS = 32
CSRS = ("sstatus", "sie", "stvec", "sscratch", "sepc", "scause", "stval", "sip", "satp")


def _id(name: str) -> int:
    return getattr(rv, f"UC_RISCV_REG_{name.upper()}")


# What gdb sees (arch/gdb_target.py): x0-x31 by their ABI names and the PC, the D extension's
# registers, the supervisor CSRs and the privilege level (gdb's virtual register priv).
GDB_TARGET = GdbTarget("riscv:rv64", (
    GdbFeature("org.gnu.gdb.riscv.cpu", tuple(GdbRegister(name, 64, getattr(rv, f"UC_RISCV_REG_X{i}"),
                                                          "code_ptr" if name == "ra" else
                                                          "data_ptr" if name in ("sp", "gp", "tp", "s0") else "int")
                                              for i, name in enumerate(ABI_NAMES))
               + (GdbRegister("pc", 64, rv.UC_RISCV_REG_PC, "code_ptr"),)),
    GdbFeature("org.gnu.gdb.riscv.fpu", tuple(GdbRegister(f"f{i}", 64, getattr(rv, f"UC_RISCV_REG_F{i}"), "ieee_double",
                                                          "float") for i in range(FP_REGISTERS))
               + registers(("fflags", "frm", "fcsr"), 32, _id, group="float")),
    GdbFeature("org.gnu.gdb.riscv.csr", registers(CSRS, 64, _id, group="system")),
    GdbFeature("org.gnu.gdb.riscv.virtual", (GdbRegister("priv", 64, rv.UC_RISCV_REG_PRIV, group="system"),)),
))


class RiscV64(Architecture):
    name = "riscv64"
    machine = pe.MACHINE_RISCV64
    convention = LP64
    REGISTERS = REGISTERS
    GDB_TARGET = GDB_TARGET
    REMOVABLE_MEDIA_PATH = "\\EFI\\BOOT\\BOOTRISCV64.EFI"  # what firmware boots without boot options
    PROTOCOLS = ("riscv_boot",)  # RISCV_EFI_BOOT_PROTOCOL
    HALT_INSTRUCTIONS = (bytes.fromhex("73005010"),)  # wfi
    ENGINE_ARCH, ENGINE_MODE = UC_ARCH_RISCV, UC_MODE_RISCV64
    ENGINE_BITS = ((rv.UC_RISCV_REG_MSTATUS, MSTATUS_FS_INITIAL),)
    ENGINE_VALUES = ((rv.UC_RISCV_REG_PRIV, PRIV_SUPERVISOR),)  # S-mode

    def disassembler(self):
        import capstone

        return capstone.Cs(capstone.CS_ARCH_RISCV, capstone.CS_MODE_RISCV64 | capstone.CS_MODE_RISCVC)

    def kernel_entered(self, uc: Uc) -> bool:
        """Whether the CPU looks like a kernel's entry: an FDT in a1."""
        return looks_like_fdt(self.fw.mem, uc.reg_read(rv.UC_RISCV_REG_A1))

    def cpu_state(self, uc: Uc) -> dict[str, int]:
        """x1-x31 by their ABI names, PC, the privilege level, satp, stvec and sstatus."""
        state = {name: uc.reg_read(getattr(rv, f"UC_RISCV_REG_{name.upper()}")) for name in STATE_REGISTERS}
        return state

    def handoff(self, uc: Uc, entry: int):
        """The kernel is entered with a0 = the boot hart id and a1 = the FDT."""
        regs = {name: uc.reg_read(REGISTERS[name]) for name in ("a0", "a1", "satp")}
        return fdt_handoff(self, entry, regs, regs["a1"])
