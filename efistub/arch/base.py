"""What every architecture shares: the calling convention as data, stubs, argument access."""

from __future__ import annotations

from ..errors import GuestMemoryError

MASK64 = 0xFFFFFFFFFFFFFFFF


class Architecture:
    """An architecture describes its calling convention with class attributes.

    Subclasses set ``name``, ``machine``, the unicorn register ids (ARG_REGISTERS,
    RETURN_REGISTER, SP, PC, LINK or None when the return address lives on the
    stack), STACK_ARGS_OFFSET (bytes from SP at the trap to the first stack
    argument), SERVICE_STUB / RETURN_STUB (machine code of a service stub and of
    the entry point's return stub), STUB_STRIDE and REGISTERS (names for reports).
    """

    name = ""
    machine = 0
    HYPERCALL_INTERRUPTS: tuple[int, ...] = ()  # interrupt numbers of the stubs' trap instruction
    STUB_STRIDE = 8
    LINK = None

    def __init__(self, fw):
        self.fw = fw
        self._callbacks = []  # ctypes callbacks must outlive the engine

    def stub(self, returns_entry: bool = False) -> bytes:
        """One stub slot: the code, padded with the architecture's trapping filler."""
        code = self.RETURN_STUB if returns_entry else self.SERVICE_STUB
        filler = self.STUB_PADDING * self.STUB_STRIDE
        return code + filler[: self.STUB_STRIDE - len(code)]

    def start(self, uc, entry: int, stack_top: int, return_address: int, args: tuple[int, int]) -> None:
        """Set up a call of ``entry(*args)`` that returns to ``return_address``."""
        uc.reg_write(self.SP, (stack_top & ~0xF) - 64)
        uc.reg_write(self.LINK, return_address)
        for register, value in zip(self.ARG_REGISTERS, args):
            uc.reg_write(register, value)
        uc.reg_write(self.PC, entry)

    def read_args(self, uc, count: int) -> list[int]:
        return [self.read_arg(uc, i) for i in range(count)]

    def read_arg(self, uc, index: int) -> int:
        """Argument ``index`` of the call being made; 0 when it lies on a stack that cannot be read
        (the native trampoline does the same, and services reject the NULL)."""
        registers = len(self.ARG_REGISTERS)
        if index < registers:
            return uc.reg_read(self.ARG_REGISTERS[index])
        try:
            return self.fw.mem.read_u64(uc.reg_read(self.SP) + self.STACK_ARGS_OFFSET + 8 * (index - registers))
        except GuestMemoryError:
            return 0

    def set_return(self, uc, value: int) -> None:
        uc.reg_write(self.RETURN_REGISTER, value & MASK64)

    def install_dispatch(self, uc, stub_base: int, slot_count: int, arg_count, dispatch) -> None:
        """Python dispatch where the trap raises an interrupt (SVC, ECALL): read the arguments,
        call ``dispatch(slot, args)`` and set the return register. Any other interrupt is a fault."""
        from unicorn import UC_HOOK_INTR

        def hook(uc, intno, user_data):
            if intno not in self.HYPERCALL_INTERRUPTS:
                self.fw.request_stop("fault", reason=f"CPU exception {intno} at pc 0x{self.pc(uc):x}")
                uc.emu_stop()
                return
            slot = self.slot_of(uc.reg_read(self.PC), stub_base, slot_count)
            args = self.read_args(uc, arg_count(slot)) if slot is not None else []
            self.set_return(uc, dispatch(slot, args))

        uc.hook_add(UC_HOOK_INTR, hook)

    def slot_of(self, pc: int, stub_base: int, slot_count: int) -> int | None:
        """The stub slot a trap at ``pc`` came from (None outside the stubs)."""
        offset = pc - self.TRAP_PC_OFFSET - stub_base
        slot = offset // self.STUB_STRIDE
        return slot if 0 <= offset and slot <= slot_count else None

    def pc(self, uc) -> int:
        return uc.reg_read(self.PC)

    def registers(self, uc) -> dict[str, int]:
        return {name: uc.reg_read(reg) for name, reg in self.REGISTERS.items()}

    HALT_INSTRUCTIONS: tuple[bytes, ...] = ()  # wait-for-interrupt instructions; unicorn stops after them

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

    def install_protocols(self, fw) -> None:
        """Protocols only this architecture's firmware provides."""

    def kernel_entry_offset(self, image: bytes) -> int | None:
        """Where a Linux Image header says the kernel starts, for kernels that run in place."""
        return None
