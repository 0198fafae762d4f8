"""x86 (x86_64 and IA32): the CPU model shared by both, CPUID, a virtual TSC, PC port I/O.

The CPU is the model unicorn emulates, with CPUID hiding LA57 (so the Linux stub
never switches paging modes) and RDRAND/RDSEED (which unicorn 2.1.4 cannot make
deterministic); RDTSC counts virtual time derived from --seed, so two runs with
the same inputs behave the same.
"""

from __future__ import annotations

import ctypes

from unicorn import UC_ARCH_X86, UC_HOOK_INSN, UC_MODE_64, Uc
from unicorn import x86_const as x86

from ..linux.boot_params import decode_boot_params, looks_like_boot_params
from .base import Architecture
from .gdb_target import GdbFeature, GdbRegister, registers
from .pc_ports import PcPorts

CR4_OSFXSR = 1 << 9
CR4_OSXMMEXCPT = 1 << 10
HLT = 0xF4

# CPUID bits hidden from the guest: (leaf, subleaf, register index in eax/ebx/ecx/edx, mask)
CPUID_HIDDEN = (
    (1, 0, 2, 1 << 30),  # RDRAND
    (7, 0, 1, 1 << 18),  # RDSEED
    (7, 0, 2, 1 << 16),  # LA57: no 5-level paging, so the stub keeps 4-level paging
)
CPUID_SUBLEAF_LEAVES = {4, 7, 0xB, 0xD, 0xF, 0x10, 0x12, 0x14, 0x17, 0x18, 0x1D, 0x1E, 0x1F, 0x8000001D}
TSC_START = 1 << 32
TSC_TICKS_PER_US = 2000  # a 2 GHz TSC
TSC_TICKS_PER_READ = 1000

_INSN_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_void_p, ctypes.c_void_p)

# -- what gdb sees (arch/gdb_target.py): the x87 and SSE registers both x86 targets share
FPSW_TOP_SHIFT, FPSW_TOP_MASK = 11, 7  # the x87 stack top in the status word: ST(i) is FPR((TOP + i) % 8)
X87_MANTISSA_BITS = 64
X87_REGISTERS = 8
EFLAGS_TYPE = """\
    <flags id="i386_eflags" size="4">
      <field name="CF" start="0" end="0"/><field name="" start="1" end="1"/><field name="PF" start="2" end="2"/>
      <field name="AF" start="4" end="4"/><field name="ZF" start="6" end="6"/><field name="SF" start="7" end="7"/>
      <field name="TF" start="8" end="8"/><field name="IF" start="9" end="9"/><field name="DF" start="10" end="10"/>
      <field name="OF" start="11" end="11"/><field name="NT" start="14" end="14"/>
      <field name="RF" start="16" end="16"/><field name="VM" start="17" end="17"/><field name="AC" start="18" end="18"/>
      <field name="VIF" start="19" end="19"/><field name="VIP" start="20" end="20"/>
      <field name="ID" start="21" end="21"/>
    </flags>"""
SSE_TYPES = """\
    <vector id="v4f" type="ieee_single" count="4"/><vector id="v2d" type="ieee_double" count="2"/>
    <vector id="v16i8" type="int8" count="16"/><vector id="v8i16" type="int16" count="8"/>
    <vector id="v4i32" type="int32" count="4"/><vector id="v2i64" type="int64" count="2"/>
    <union id="vec128">
      <field name="v4_float" type="v4f"/><field name="v2_double" type="v2d"/><field name="v16_int8" type="v16i8"/>
      <field name="v8_int16" type="v8i16"/><field name="v4_int32" type="v4i32"/><field name="v2_int64" type="v2i64"/>
      <field name="uint128" type="uint128"/>
    </union>
    <flags id="i386_mxcsr" size="4">
      <field name="IE" start="0" end="0"/><field name="DE" start="1" end="1"/><field name="ZE" start="2" end="2"/>
      <field name="OE" start="3" end="3"/><field name="UE" start="4" end="4"/><field name="PE" start="5" end="5"/>
      <field name="DAZ" start="6" end="6"/><field name="IM" start="7" end="7"/><field name="DM" start="8" end="8"/>
      <field name="ZM" start="9" end="9"/><field name="OM" start="10" end="10"/><field name="UM" start="11" end="11"/>
      <field name="PM" start="12" end="12"/><field name="FZ" start="15" end="15"/>
    </flags>"""


def _x87_physical(uc, i: int) -> int:
    """The unicorn id of ST(i): unicorn numbers the x87 registers physically, gdb from the stack top."""
    top = uc.reg_read(x86.UC_X86_REG_FPSW) >> FPSW_TOP_SHIFT & FPSW_TOP_MASK
    return x86.UC_X86_REG_FP0 + (top + i) % X87_REGISTERS


def _st(i: int) -> GdbRegister:
    def read(uc) -> int:
        mantissa, exponent = uc.reg_read(_x87_physical(uc, i))
        return mantissa | exponent << X87_MANTISSA_BITS

    def write(uc, value: int) -> None:
        uc.reg_write(_x87_physical(uc, i), (value & ((1 << X87_MANTISSA_BITS) - 1), value >> X87_MANTISSA_BITS))

    return GdbRegister(f"st{i}", 80, None, "i387_ext", read=read, write=write)


def unicorn_id(name: str) -> int:
    """The unicorn id of the x86 register called ``name``."""
    return getattr(x86, f"UC_X86_REG_{name.upper()}")


# The x87 registers of org.gnu.gdb.i386.core, after the general and segment registers; the
# names are gdb's, the unicorn ids those of the FXSAVE fields they are.
X87 = tuple(_st(i) for i in range(X87_REGISTERS)) + tuple(
    GdbRegister(name, 32, unicorn_id(reg), group="float") for name, reg in (
        ("fctrl", "fpcw"), ("fstat", "fpsw"), ("ftag", "fptag"), ("fiseg", "fcs"), ("fioff", "fip"),
        ("foseg", "fds"), ("fooff", "fdp"), ("fop", "fop")))
SEGMENTS = registers(("cs", "ss", "ds", "es", "fs", "gs"), 32, unicorn_id)


def sse_feature(count: int) -> GdbFeature:
    """org.gnu.gdb.i386.sse: XMM0 to XMM(count - 1) and MXCSR."""
    return GdbFeature("org.gnu.gdb.i386.sse", registers([f"xmm{i}" for i in range(count)], 128, unicorn_id, "vec128",
                                                        "vector")
                      + (GdbRegister("mxcsr", 32, x86.UC_X86_REG_MXCSR, "i386_mxcsr", "vector"),), SSE_TYPES)

class X86(Architecture):
    """What x86_64 and IA32 share; a subclass sets ENGINE_MODE, its convention and its registers."""

    ENGINE_ARCH, ENGINE_MODE = UC_ARCH_X86, UC_MODE_64
    ENGINE_BITS = ((x86.UC_X86_REG_CR4, CR4_OSFXSR | CR4_OSXMMEXCPT),)
    BOOT_PARAMS_REGISTER = x86.UC_X86_REG_RSI  # Linux enters the kernel with boot_params here
    # The registers CPUID and RDTSC write, zero-extended as the CPU does (RAX... in long mode).
    ABCD = (x86.UC_X86_REG_RAX, x86.UC_X86_REG_RBX, x86.UC_X86_REG_RCX, x86.UC_X86_REG_RDX)
    HALT_INSTRUCTIONS = (bytes([HLT]),)

    def __init__(self):
        super().__init__()
        self._cpuid_cache: dict[tuple[int, int], tuple[int, int, int, int]] = {}
        self._tsc_reads = 0

    # -- the engine's hooks ------------------------------------------------------
    def attach(self, uc: Uc, fw) -> None:
        """CPUID, a virtual TSC and the PC's ports, answered from the firmware state."""
        super().attach(uc, fw)
        self._add_insn_hook(uc, x86.UC_X86_INS_CPUID, self._cpuid)
        self._add_insn_hook(uc, x86.UC_X86_INS_RDTSC, self._rdtsc)
        ports = PcPorts(fw.state)
        uc.hook_add(UC_HOOK_INSN, lambda uc, port, size, data: ports.read(port, size), None, 1, 0, x86.UC_X86_INS_IN)
        uc.hook_add(UC_HOOK_INSN, lambda uc, port, size, value, data: ports.write(port, size, value), None, 1, 0,
                    x86.UC_X86_INS_OUT)

    def _add_insn_hook(self, uc: Uc, insn: int, function) -> None:
        # The binding's hook_add knows no RDTSC hook, so register through the C API directly.
        def guarded(engine, user_data):
            try:
                return function(uc)
            except BaseException as e:  # ctypes would print the traceback and carry on
                import traceback

                self.fw.request_stop("error", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
                uc.emu_stop()
                return 1

        callback = _INSN_CALLBACK(guarded)
        self._callbacks.append(callback)
        getattr(uc, "_Uc__do_hook_add")(UC_HOOK_INSN, callback, 1, 0, ctypes.c_int(insn))

    def _cpuid(self, uc: Uc) -> int:
        leaf = uc.reg_read(x86.UC_X86_REG_EAX) & 0xFFFFFFFF
        subleaf = uc.reg_read(x86.UC_X86_REG_ECX) & 0xFFFFFFFF if leaf in CPUID_SUBLEAF_LEAVES else 0
        values = self._cpuid_cache.get((leaf, subleaf))
        if values is None:
            values = list(_probe_cpuid(leaf, subleaf))
            for hidden_leaf, hidden_subleaf, register, mask in CPUID_HIDDEN:
                if (leaf, subleaf) == (hidden_leaf, hidden_subleaf):
                    values[register] &= ~mask
            self._cpuid_cache[(leaf, subleaf)] = values = tuple(values)
        for reg, value in zip(self.ABCD, values):
            uc.reg_write(reg, value)
        return 1  # skip the instruction: the registers are already set

    def _rdtsc(self, uc: Uc) -> int:
        self._tsc_reads += 1
        tsc = TSC_START + self.fw.options.seed * 7919 + self.fw.state.virtual_time_us * TSC_TICKS_PER_US \
            + self._tsc_reads * TSC_TICKS_PER_READ
        uc.reg_write(self.ABCD[0], tsc & 0xFFFFFFFF)
        uc.reg_write(self.ABCD[3], (tsc >> 32) & 0xFFFFFFFF)
        return 1

    # -- state for reports ------------------------------------------------------------
    def disassembler(self):
        import capstone

        mode = capstone.CS_MODE_64 if self.ENGINE_MODE == UC_MODE_64 else capstone.CS_MODE_32
        return capstone.Cs(capstone.CS_ARCH_X86, mode)

    # -- hand-off -------------------------------------------------------------------------
    def kernel_entered(self, uc: Uc) -> bool:
        """Whether the CPU looks like a kernel's entry: boot_params in RSI (ESI)."""
        return looks_like_boot_params(self.fw.mem, uc.reg_read(self.BOOT_PARAMS_REGISTER))

    def handoff(self, uc: Uc, entry: int) -> tuple[dict, tuple[int, int, int] | None]:
        """What the kernel receives (boot_params at RSI/ESI), and where its EFI memory map is."""
        rsi = uc.reg_read(self.BOOT_PARAMS_REGISTER)
        out = {"arch": self.name, "entry": entry, "registers": {"rsi" if self.width == 8 else "esi": rsi}}
        try:
            out["boot_params"] = bp = decode_boot_params(self.fw.mem, rsi)
        except Exception as e:  # the kernel was entered with something that is not boot_params
            out["boot_params_error"] = f"cannot decode boot_params at 0x{rsi:x}: {e}"
            return out, None
        info = bp["efi_info"]
        return out, (info["memmap"], info["memmap_size"], info["memdesc_size"])


def _probe_cpuid(leaf: int, subleaf: int) -> tuple[int, int, int, int]:
    """CPUID as unicorn's CPU model answers it, from a scratch engine."""
    probe = Uc(UC_ARCH_X86, UC_MODE_64)
    probe.mem_map(0x1000, 0x1000)
    probe.mem_write(0x1000, b"\x0f\xa2")
    probe.reg_write(x86.UC_X86_REG_RAX, leaf)
    probe.reg_write(x86.UC_X86_REG_RCX, subleaf)
    probe.emu_start(0x1000, 0x1002)
    return tuple(probe.reg_read(r) & 0xFFFFFFFF for r in (
        x86.UC_X86_REG_RAX, x86.UC_X86_REG_RBX, x86.UC_X86_REG_RCX, x86.UC_X86_REG_RDX))
