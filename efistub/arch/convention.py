"""The guest boundary of an architecture as data: how guest code calls a firmware function.

One ``CallingConvention`` record per architecture says everything both dispatch
paths need: which registers and stack slots carry the arguments, where the result
goes, how wide a slot is, which trap instruction the firmware's stubs use and how
unicorn reports it, and which registers a call preserves. The Python dispatch
(arch/base.py) and the C trampoline (efistub/native/trampoline.c, which receives
this record) read it; neither states an ABI of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

TRAP_SYSCALL = "syscall"  # the x86 SYSCALL instruction, hooked as an instruction
TRAP_INTERRUPT = "interrupt"  # an instruction that raises a CPU interrupt, hooked with UC_HOOK_INTR


@dataclass(frozen=True)
class CallingConvention:
    name: str  # "MS x64", "AAPCS64", ...
    width: int  # bytes in a pointer, a UINTN and a stack slot
    arg_registers: tuple[int, ...]  # unicorn ids of the argument registers, in order
    return_register: int
    sp: int
    pc: int
    link_register: int | None  # None: a call pushes its return address on the stack
    shadow_space: int  # bytes a caller reserves above the return address (MS x64: 32)
    preserved: tuple[int, ...]  # registers a callee must preserve (besides SP and PC)
    trap: str  # TRAP_SYSCALL or TRAP_INTERRUPT
    trap_instruction: bytes  # the machine code of the trap
    return_instruction: bytes  # the machine code of a return to the caller
    stub_padding: bytes  # an instruction that faults, to fill stub slots
    trap_pc_offset: int  # the PC when the hook runs, minus the trap instruction's address
    trap_interrupts: tuple[int, ...] = ()  # interrupt numbers of the trap (TRAP_INTERRUPT)
    stack_alignment: int = 16  # of the stack at a call
    stub_stride: int = 8  # bytes between service stubs

    @property
    def stack_args_offset(self) -> int:
        """Bytes from SP at the trap (inside the callee) to the first stack argument."""
        return (self.width if self.link_register is None else 0) + self.shadow_space

    @property
    def mask(self) -> int:
        return (1 << (8 * self.width)) - 1

    def stub(self, returns: bool = True) -> bytes:
        """One stub slot: the trap, then a return (service stubs) or nothing (the return stub)."""
        code = self.trap_instruction + (self.return_instruction if returns else b"")
        filler = self.stub_padding * self.stub_stride
        if len(code) > self.stub_stride:
            raise ValueError(f"{self.name}: a stub of {len(code)} bytes does not fit a {self.stub_stride}-byte slot")
        return code + filler[: self.stub_stride - len(code)]

    def slots_of(self, size: int | None) -> int:
        """Argument slots a value of ``size`` bytes takes (None: UINTN); a UINT64 takes two on IA32."""
        return 1 if size is None else max(1, -(-size // self.width))

    # -- a call as the guest sees it --------------------------------------------------------
    def read_slots(self, uc, mem, count: int) -> list[int]:
        """The first ``count`` argument slots of the call being made; unreadable stack slots read as 0
        (the native trampoline does the same, and services reject the NULL)."""
        registers = self.arg_registers
        sp = uc.reg_read(self.sp) if count > len(registers) else 0
        return self.slots_from([uc.reg_read(r) for r in registers[:count]], sp, mem, count)

    def slots_from(self, registers: list[int], sp: int, mem, count: int) -> list[int]:
        """read_slots from the values of the argument registers (``registers``, at least ``count`` of
        them or all) and of SP, already read."""
        values = list(registers[:count])
        if count > len(self.arg_registers):
            stack = sp + self.stack_args_offset
            n = count - len(self.arg_registers)
            try:
                raw = mem.read(stack, n * self.width)
            except Exception:
                raw = bytes(n * self.width)
            values += [int.from_bytes(raw[i * self.width:(i + 1) * self.width], "little") for i in range(n)]
        return values

    def enter(self, uc, mem, function: int, args: tuple[int, ...], return_address: int, stack_top: int) -> None:
        """Set the CPU up to call ``function(*args)``, returning to ``return_address``, on the stack
        below ``stack_top``."""
        in_registers = args[: len(self.arg_registers)]
        on_stack = args[len(self.arg_registers):]
        base = (stack_top - self.shadow_space - len(on_stack) * self.width - 64) & ~(self.stack_alignment - 1)
        # At the callee's first instruction the stack arguments lie stack_args_offset above SP.
        sp = base if self.link_register is not None else base - self.width
        for i, value in enumerate(on_stack):
            mem.write(sp + self.stack_args_offset + i * self.width, (value & self.mask).to_bytes(self.width, "little"))
        if self.link_register is None:
            mem.write(sp, (return_address & self.mask).to_bytes(self.width, "little"))
        else:
            uc.reg_write(self.link_register, return_address)
        for register, value in zip(self.arg_registers, in_registers):
            uc.reg_write(register, value & self.mask)
        uc.reg_write(self.sp, sp)
        uc.reg_write(self.pc, function)

    def save(self, uc) -> dict[int, int]:
        """What a call must give back: the preserved registers, SP, PC and the link register."""
        registers = self.preserved + (self.sp, self.pc) + ((self.link_register,) if self.link_register else ())
        return {r: uc.reg_read(r) for r in registers}

    @staticmethod
    def restore(uc, saved: dict[int, int]) -> None:
        for register, value in saved.items():
            uc.reg_write(register, value)

    def return_address(self, uc, mem) -> int | None:
        """Where the service call being made returns to in the guest (at a trap in a stub)."""
        if self.link_register is not None:
            return uc.reg_read(self.link_register)
        try:
            return int.from_bytes(mem.read(uc.reg_read(self.sp), self.width), "little")
        except Exception:
            return None

    def set_return(self, uc, value: int) -> None:
        uc.reg_write(self.return_register, value & self.mask)

    def read_return(self, uc) -> int:
        return uc.reg_read(self.return_register) & self.mask
