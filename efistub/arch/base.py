"""What every architecture shares: the engine, the boundary driven by its CallingConvention."""

from __future__ import annotations

import ctypes

from .convention import TRAP_INTERRUPT, CallingConvention


class Registers:
    """A set of registers read in one call to libunicorn (uc_reg_read_batch, into buffers made once),
    and one register written straight through it: the binding's reg_read and reg_write take
    microseconds each. For registers of at most 64 bits."""

    def __init__(self, uc, ids: tuple[int, ...]):
        from unicorn.unicorn_py3 import unicorn as binding

        self._handle, self._count = uc._uch, len(ids)
        self._read_batch, self._write = binding.uclib.uc_reg_read_batch, binding.uclib.uc_reg_write
        self._values = (ctypes.c_uint64 * len(ids))()
        self._ids = (ctypes.c_int * len(ids))(*ids)
        size = ctypes.sizeof(ctypes.c_uint64)
        self._pointers = (ctypes.c_void_p * len(ids))(*(ctypes.addressof(self._values) + size * i
                                                          for i in range(len(ids))))
        self._value = ctypes.c_uint64()

    def read(self) -> list[int]:
        """The registers' values, in the order of ``ids``."""
        if self._read_batch(self._handle, self._ids, self._pointers, self._count):
            raise RuntimeError("uc_reg_read_batch failed")
        return self._values[:]

    def write(self, register: int, value: int) -> None:
        self._value.value = value
        if self._write(self._handle, register, ctypes.byref(self._value)):
            raise RuntimeError(f"uc_reg_write of register {register} failed")


class Architecture:
    """An architecture: its calling convention record, its engine and what it tells a report.

    Subclasses set ``name``, ``machine`` (the PE machine type), ``convention``,
    REGISTERS (names for reports), HALT_INSTRUCTIONS, the ENGINE_ data create_engine reads,
    and implement disassembler and handoff (and attach, for hooks of their own). A newcomer adds an
    architecture with one such module and its entry in arch/__init__.py.
    """

    name = ""
    machine = 0
    convention: CallingConvention
    REGISTERS: dict[str, int] = {}
    GDB_TARGET = None  # what gdb sees of the CPU: a gdb_target.GdbTarget (efistub run --gdb)
    HALT_INSTRUCTIONS: tuple[bytes, ...] = ()  # wait-for-interrupt instructions; unicorn stops after them
    RAM_LIMIT: int | None = None  # the highest address guest RAM may reach (IA32: 4 GiB)
    REMOVABLE_MEDIA_PATH = ""  # \\EFI\\BOOT\\BOOT<arch>.EFI: what firmware boots without boot options
    PROTOCOLS: tuple[str, ...] = ()  # modules of efistub.protocols only this architecture's firmware installs
    # A new engine, as UEFI specifies the CPU: unicorn's architecture and mode, the bits set in
    # registers (register, bits) and the registers given a value (register, value), in that order.
    ENGINE_ARCH = 0
    ENGINE_MODE = 0
    ENGINE_BITS: tuple[tuple[int, int], ...] = ()
    ENGINE_VALUES: tuple[tuple[int, int], ...] = ()

    def __init__(self):
        self.fw = None  # the firmware it serves, from attach()
        self._callbacks = []  # ctypes callbacks must outlive the engine

    def create_engine(self):
        """A new engine in the state UEFI specifies for this architecture (no memory yet)."""
        from unicorn import Uc

        uc = Uc(self.ENGINE_ARCH, self.ENGINE_MODE)
        for register, bits in self.ENGINE_BITS:
            uc.reg_write(register, uc.reg_read(register) | bits)
        for register, value in self.ENGINE_VALUES:
            uc.reg_write(register, value)
        return uc

    def cpu_state(self, uc) -> dict[str, int]:
        """Every register a kernel entered here may rely on, by name (a saved hand-off's CPU state)."""
        raise NotImplementedError

    def prepare_cpu(self, uc, fw) -> None:
        """Leave in the CPU what firmware leaves for the image it starts (RAM is mapped by now)."""

    def attach(self, uc, fw) -> None:
        """Hook what the CPU asks the platform (CPUID, timers, ports) and serve ``fw``."""
        self.fw = fw

    @property
    def width(self) -> int:
        return self.convention.width

    # -- the boundary ---------------------------------------------------------------------
    def install_dispatch(self, uc, stub_base: int, slot_count: int, arg_slots, dispatch) -> None:
        """Python dispatch: on a trap in a stub, read the argument slots, call ``dispatch(slot, slots,
        caller)`` (``caller``: the service call's return address) and set the return register. ``slot``
        is None for a trap outside the stubs; slot ``slot_count`` is the return from a guest call, whose
        one argument is the returned value. Any other interrupt is a fault."""
        from unicorn import UC_HOOK_INSN, UC_HOOK_INTR
        from unicorn import x86_const

        cc, mem = self.convention, self.fw.mem
        registers = Registers(uc, (cc.pc, cc.sp) + cc.arg_registers)

        def trap(uc):
            pc, sp, *arguments = registers.read()
            slot = self.slot_of(pc, stub_base, slot_count)
            caller = None
            if slot is None:
                slots = []
            elif slot == slot_count:
                slots = [cc.read_return(uc)]
            else:
                slots = cc.slots_from(arguments, sp, mem, arg_slots(slot))
                caller = cc.return_address(uc, mem)
            result = dispatch(slot, slots, caller)
            if result is not None:
                registers.write(cc.return_register, result & cc.mask)

        if cc.trap == TRAP_INTERRUPT:
            def interrupt(uc, intno, user_data):
                if intno in cc.trap_interrupts:
                    trap(uc)
                else:
                    self.fw.request_stop("fault", reason=f"CPU exception {intno} at pc 0x{self.pc(uc):x}")
                    uc.emu_stop()

            uc.hook_add(UC_HOOK_INTR, interrupt)
        else:
            uc.hook_add(UC_HOOK_INSN, lambda uc, user_data: trap(uc), None, 1, 0, x86_const.UC_X86_INS_SYSCALL)

    def slot_of(self, pc: int, stub_base: int, slot_count: int) -> int | None:
        """The stub slot a trap at ``pc`` came from (None outside the stubs)."""
        cc = self.convention
        offset = pc - cc.trap_pc_offset - stub_base
        slot = offset // cc.stub_stride
        return slot if 0 <= offset and slot <= slot_count else None

    def kernel_entered(self, uc) -> bool:
        """Whether the CPU state looks like a Linux kernel's entry (its boot arguments are there)."""
        return False

    def pc(self, uc) -> int:
        return uc.reg_read(self.convention.pc)

    def registers(self, uc) -> dict[str, int]:
        return {name: uc.reg_read(reg) for name, reg in self.REGISTERS.items()}

    def halted_at(self, uc) -> int | None:
        """The address of the halt instruction that stopped emulation, if one did."""
        pc = self.pc(uc)
        for code in self.HALT_INSTRUCTIONS:
            try:
                if bytes(uc.mem_read(pc - len(code), len(code))) == code:
                    return pc - len(code)
            except Exception:
                continue
        return None
