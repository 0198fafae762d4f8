"""CPU architectures: engine set-up, calling convention, hypercall stubs, hand-off decoding.

Each architecture module provides one class with the same interface (see x86_64.X86_64).
"""

from __future__ import annotations

from ..layouts import pe


ARCHITECTURES = {  # PE machine -> (name, module, class)
    pe.MACHINE_AMD64: ("x86_64", "x86_64", "X86_64"),
    pe.MACHINE_ARM64: ("aarch64", "aarch64", "AArch64"),
    pe.MACHINE_RISCV64: ("riscv64", "riscv64", "RiscV64"),
    pe.MACHINE_I386: ("ia32", "ia32", "IA32"),
}


def supported() -> dict[int, str]:
    """PE machine -> architecture name, for every architecture efistub runs."""
    return {machine: name for machine, (name, _, _) in ARCHITECTURES.items()}


def for_machine(machine: int):
    import importlib

    _, module, cls = ARCHITECTURES[machine]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)
