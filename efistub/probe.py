"""Probes: calls from one guest to another that the firmware watches without taking part in them,
such as GRUB calling the SHIM_LOCK protocol shim installed (efistub.shim).

A probe is a one-address code hook at the function's first instruction. There it reads the
arguments by the function's calling convention and the return address; a second one-address hook
at that return address reads the result when the call comes back at the same stack depth (so a
recursive call, or another call that passes there, is not mistaken for it). Guest execution is
left as it is: the hooks only read registers and memory.

    fw.probes.watch(address, convention, count, on_call)   # on_call(arguments, result)

``c_convention`` is the convention of a guest function declared without EFIAPI: System V on
x86_64 (the UEFI convention is Microsoft's there), the UEFI one elsewhere, where the two agree.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from unicorn import UC_HOOK_CODE
from unicorn.x86_const import UC_X86_REG_R8, UC_X86_REG_R9, UC_X86_REG_RCX, UC_X86_REG_RDI, UC_X86_REG_RDX, \
    UC_X86_REG_RSI

from .arch.convention import CallingConvention

SYSTEM_V_ARGUMENTS = (UC_X86_REG_RDI, UC_X86_REG_RSI, UC_X86_REG_RDX, UC_X86_REG_RCX, UC_X86_REG_R8, UC_X86_REG_R9)


def c_convention(arch) -> CallingConvention:
    """How a guest function without EFIAPI is called on ``arch``: System V AMD64 on x86_64 (the first
    six arguments in RDI, RSI, RDX, RCX, R8, R9, no shadow space), the UEFI convention elsewhere."""
    cc = arch.convention
    if arch.name == "x86_64":
        return dataclasses.replace(cc, name="System V AMD64", arg_registers=SYSTEM_V_ARGUMENTS, shadow_space=0)
    return cc


@dataclasses.dataclass
class _Pending:
    sp: int  # the stack pointer the caller has again when the call returns
    arguments: list[int]
    on_call: Callable[[list[int], int], None]
    convention: CallingConvention


class Probes:
    def __init__(self, uc, mem, arch):
        self.uc, self.mem, self.arch = uc, mem, arch
        self._watched: dict[int, tuple] = {}  # function address -> (convention, count, on_call, hook)
        self._returns: dict[int, list[_Pending]] = {}  # return address -> calls waiting there
        self._return_hooks: dict[int, int] = {}

    def watch(self, address: int, convention: CallingConvention, count: int,
              on_call: Callable[[list[int], int], None]) -> None:
        """Call ``on_call(arguments, result)`` each time the guest function at ``address`` returns; its
        first ``count`` arguments are read at its entry."""
        if address in self._watched:
            self.uc.hook_del(self._watched[address][3])
        hook = self.uc.hook_add(UC_HOOK_CODE, self._entered, None, address, address)
        self._watched[address] = (convention, count, on_call, hook)

    def _entered(self, uc, address, size, user_data) -> None:
        convention, count, on_call, _ = self._watched[address]
        back = convention.return_address(uc, self.mem)
        if back is None:
            return
        sp = uc.reg_read(convention.sp) + (convention.width if convention.link_register is None else 0)
        self._returns.setdefault(back, []).append(_Pending(sp, convention.read_slots(uc, self.mem, count), on_call,
                                                           convention))
        if back not in self._return_hooks:
            self._return_hooks[back] = uc.hook_add(UC_HOOK_CODE, self._returned, None, back, back)

    def _returned(self, uc, address, size, user_data) -> None:
        waiting = self._returns.get(address, [])
        for pending in waiting:
            if uc.reg_read(pending.convention.sp) == pending.sp:
                waiting.remove(pending)
                pending.on_call(pending.arguments, pending.convention.read_return(uc))
                break
        if not waiting:
            self._returns.pop(address, None)
            uc.hook_del(self._return_hooks.pop(address))
