"""CPU architectures: engine set-up, calling convention, hypercall stubs, hand-off decoding.

Each architecture module provides one class with the same interface (see x86_64.X86_64).
"""

from __future__ import annotations

from ..layouts import pe


def supported() -> dict[int, str]:
    """PE machine -> architecture name, for every architecture efistub runs."""
    return {pe.MACHINE_AMD64: "x86_64"}


def for_machine(machine: int):
    if machine == pe.MACHINE_AMD64:
        from .x86_64 import X86_64

        return X86_64
    raise KeyError(machine)
