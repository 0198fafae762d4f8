"""AArch64: EL1 with the MMU off, AAPCS64 arguments, SVC hypercalls, the FDT hand-off.

unicorn 2.1.4 cannot use HVC as a hypercall (it raises without advancing the PC),
so each stub is ``svc #0; ret``: the SVC exception reaches the interrupt hook with
the PC already past the instruction.
"""

from __future__ import annotations

from unicorn import UC_ARCH_ARM64, UC_MODE_ARM, Uc
from unicorn import arm64_const as arm

from ..layouts import pe
from .base import Architecture
from .convention import TRAP_INTERRUPT, CallingConvention
from .gdb_target import EFISTUB_FEATURE, GdbFeature, GdbRegister, GdbTarget, read_only, registers
from ..linux.devicetree import fdt_handoff, looks_like_fdt

EXCP_SWI = 2  # unicorn's interrupt number for SVC
REGISTERS = {f"x{i}": getattr(arm, f"UC_ARM64_REG_X{i}") for i in range(29)}
REGISTERS.update(fp=arm.UC_ARM64_REG_FP, lr=arm.UC_ARM64_REG_LR, sp=arm.UC_ARM64_REG_SP, pc=arm.UC_ARM64_REG_PC,
                 nzcv=arm.UC_ARM64_REG_NZCV)
CPACR_FPEN = 3 << 20  # let EL1 use the FP/SIMD registers, as UEFI requires


AAPCS64 = CallingConvention(
    name="AAPCS64", width=8,
    arg_registers=tuple(getattr(arm, f"UC_ARM64_REG_X{i}") for i in range(8)),
    return_register=arm.UC_ARM64_REG_X0, sp=arm.UC_ARM64_REG_SP, pc=arm.UC_ARM64_REG_PC,
    link_register=arm.UC_ARM64_REG_LR, shadow_space=0,
    preserved=tuple(getattr(arm, f"UC_ARM64_REG_X{i}") for i in range(18, 30)),  # x18 (platform), x19-x29
    trap=TRAP_INTERRUPT, trap_instruction=bytes.fromhex("010000d4"),  # svc #0
    return_instruction=bytes.fromhex("c0035fd6"), stub_padding=bytes.fromhex("000020d4"),  # ret; brk #0
    trap_pc_offset=4,  # the PC is past the SVC when the hook runs
    trap_interrupts=(EXCP_SWI,),
)


# System registers unicorn reads through UC_ARM64_REG_CP_REG: (CRn, CRm, op0, op1, op2)
SYSTEM_REGISTERS = {"sctlr_el1": (1, 0, 3, 0, 0), "tcr_el1": (2, 0, 3, 0, 2)}
PSTATE_EL_SHIFT, PSTATE_EL_MASK = 2, 0x3  # PSTATE.EL, as SPSR_ELx's M[3:2] and CurrentEL hold it
SIMD_REGISTERS = 32
CPSR_TYPE = """\
    <flags id="cpsr_flags" size="4">
      <field name="SP" start="0" end="0"/><field name="EL" start="2" end="3"/><field name="nRW" start="4" end="4"/>
      <field name="F" start="6" end="6"/><field name="I" start="7" end="7"/><field name="A" start="8" end="8"/>
      <field name="D" start="9" end="9"/><field name="SSBS" start="12" end="12"/><field name="PAN" start="22" end="22"/>
      <field name="V" start="28" end="28"/><field name="C" start="29" end="29"/><field name="Z" start="30" end="30"/>
      <field name="N" start="31" end="31"/>
    </flags>"""
SIMD_TYPES = """\
    <vector id="v2d" type="ieee_double" count="2"/><vector id="v2u" type="uint64" count="2"/>
    <vector id="v4f" type="ieee_single" count="4"/><vector id="v4u" type="uint32" count="4"/>
    <vector id="v8u" type="uint16" count="8"/><vector id="v16u" type="uint8" count="16"/>
    <union id="aarch64v">
      <field name="d" type="v2d"/><field name="s" type="v4f"/><field name="ud" type="v2u"/>
      <field name="us" type="v4u"/><field name="uh" type="v8u"/><field name="ub" type="v16u"/>
      <field name="q" type="uint128"/>
    </union>"""


def _id(name: str) -> int:
    return getattr(arm, f"UC_ARM64_REG_{name.upper()}")


def _system(name: str, encoding: tuple[int, ...]):
    return read_only(name, 64, lambda uc: uc.reg_read(arm.UC_ARM64_REG_CP_REG, encoding))


# What gdb sees (arch/gdb_target.py): the core and FP/SIMD registers, and the EL1 system registers
# of the MMU and the exception vectors (SCTLR_EL1 and TCR_EL1 read-only, through CP_REG).
GDB_TARGET = GdbTarget("aarch64", (
    GdbFeature("org.gnu.gdb.aarch64.core", registers([f"x{i}" for i in range(31)], 64, _id)
               + (GdbRegister("sp", 64, arm.UC_ARM64_REG_SP, "data_ptr"),
                  GdbRegister("pc", 64, arm.UC_ARM64_REG_PC, "code_ptr"),
                  GdbRegister("cpsr", 32, arm.UC_ARM64_REG_PSTATE, "cpsr_flags")), CPSR_TYPE),
    GdbFeature("org.gnu.gdb.aarch64.fpu", registers([f"v{i}" for i in range(SIMD_REGISTERS)], 128, _id, "aarch64v",
                                                    "vector")
               + registers(("fpsr", "fpcr"), 32, _id, group="float"), SIMD_TYPES),
    GdbFeature(EFISTUB_FEATURE, tuple(_system(name, encoding) for name, encoding in SYSTEM_REGISTERS.items())
               + registers(("ttbr0_el1", "ttbr1_el1", "mair_el1", "vbar_el1", "elr_el1", "esr_el1", "far_el1"), 64,
                           _id, group="system")),
))


class AArch64(Architecture):
    name = "aarch64"
    machine = pe.MACHINE_ARM64
    convention = AAPCS64
    REGISTERS = REGISTERS
    GDB_TARGET = GDB_TARGET
    REMOVABLE_MEDIA_PATH = "\\EFI\\BOOT\\BOOTAA64.EFI"  # what firmware boots without boot options
    HALT_INSTRUCTIONS = (bytes.fromhex("7f2003d5"), bytes.fromhex("5f2003d5"))  # wfi, wfe
    ENGINE_ARCH, ENGINE_MODE = UC_ARCH_ARM64, UC_MODE_ARM
    ENGINE_BITS = ((arm.UC_ARM64_REG_CPACR_EL1, CPACR_FPEN),)

    def disassembler(self):
        import capstone

        return capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)

    def kernel_entered(self, uc: Uc) -> bool:
        """Whether the CPU looks like a kernel's entry: an FDT in x0."""
        return looks_like_fdt(self.fw.mem, uc.reg_read(arm.UC_ARM64_REG_X0))

    def cpu_state(self, uc: Uc) -> dict[str, int]:
        """x0-x30, SP, PC, PSTATE (NZCV and the rest), the EL1 system registers of the MMU and the
        exception vectors, and the exception level."""
        state = {f"x{i}": uc.reg_read(getattr(arm, f"UC_ARM64_REG_X{i}")) for i in range(29)}
        state.update(x29=uc.reg_read(arm.UC_ARM64_REG_X29), x30=uc.reg_read(arm.UC_ARM64_REG_X30),
                     sp=uc.reg_read(arm.UC_ARM64_REG_SP), pc=uc.reg_read(arm.UC_ARM64_REG_PC),
                     pstate=uc.reg_read(arm.UC_ARM64_REG_PSTATE),
                     ttbr0_el1=uc.reg_read(arm.UC_ARM64_REG_TTBR0_EL1),
                     ttbr1_el1=uc.reg_read(arm.UC_ARM64_REG_TTBR1_EL1),
                     mair_el1=uc.reg_read(arm.UC_ARM64_REG_MAIR_EL1), vbar_el1=uc.reg_read(arm.UC_ARM64_REG_VBAR_EL1))
        for name, encoding in SYSTEM_REGISTERS.items():
            state[name] = uc.reg_read(arm.UC_ARM64_REG_CP_REG, encoding)
        state["el"] = state["pstate"] >> PSTATE_EL_SHIFT & PSTATE_EL_MASK
        return state

    def handoff(self, uc: Uc, entry: int):
        """The kernel is entered with x0 = the FDT."""
        regs = {f"x{i}": uc.reg_read(getattr(arm, f"UC_ARM64_REG_X{i}")) for i in range(4)}
        return fdt_handoff(self, entry, regs, regs["x0"])
