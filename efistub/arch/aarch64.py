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


class AArch64(Architecture):
    name = "aarch64"
    machine = pe.MACHINE_ARM64
    convention = AAPCS64
    REGISTERS = REGISTERS
    REMOVABLE_MEDIA_PATH = "\\EFI\\BOOT\\BOOTAA64.EFI"  # what firmware boots without boot options
    HALT_INSTRUCTIONS = (bytes.fromhex("7f2003d5"), bytes.fromhex("5f2003d5"))  # wfi, wfe

    def create_engine(self) -> Uc:
        uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
        uc.reg_write(arm.UC_ARM64_REG_CPACR_EL1, uc.reg_read(arm.UC_ARM64_REG_CPACR_EL1) | CPACR_FPEN)
        return uc

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
