"""AArch64: boot a saved hand-off on QEMU's virt board, with efistub's trampoline as the firmware.

The QEMU machine is the board the run was saved on: ``-machine virt`` with the saved RAM
size (RAM at 0x4000_0000), virtualization=off and secure=off, so that the CPU has neither
EL2 nor EL3 and leaves reset at EL1, the exception level efistub ran the stub at (the
saved ``el``); ``-cpu cortex-a57``, TCG. The device tree the stub was given (``--dtb``)
must be this machine's: ``dumpdtb_arguments`` gives the QEMU command that writes it.
acpi=off keeps that tree the same with -bios as without: with firmware and ACPI, QEMU
virt replaces the PL061 GPIO controller (and its gpio-keys) by an ACPI event device, and
a kernel given the tree of a machine without firmware dies on an external abort when it
probes the missing PL061 at 0x903_0000.

The trampoline (trampolines/aarch64.S) is ``-bios``: QEMU maps it in the first flash bank
at 0, not RAM, so the memory map needs no entry for it and the kernel cannot clobber it.
The CPU state reaches it as data: efistub writes it into the state block
(layouts/resume_fdt.py) of a copy of the image in the work folder. QEMU's generic loader
devices put every saved segment at its address at reset. With -bios, QEMU also writes
its own device tree (1 MiB) at the base of RAM, 0x4000_0000, for firmware to find: saved
RAM there (none in the hand-offs of the corpus kernels, whose maps leave the bottom of RAM
free) is staged elsewhere and moved into place by the trampoline (efistub.resume.virt).
The kernel gets the stub's device tree in x0, as saved; QEMU's copy stays in RAM the
saved map gives out as free.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ..board import ARM_VIRT
from ..errors import InputError
from ..layouts import resume_fdt as block
from . import virt

TRAMPOLINE = "aarch64.bin"
IMAGE_NAME = "aarch64-resume.bin"
MACHINE = "virt,virtualization=off,secure=off,acpi=off"
CPU_MODEL = "cortex-a57"
EL1 = 1
PSTATE_M_AARCH64_EL1 = (0b0100, 0b0101)  # PSTATE.M with nRW = 0: EL1t, EL1h
PSTATE_M_MASK = 0x1F


def machine_arguments(memory: int) -> list[str]:
    """The QEMU machine a hand-off with ``memory`` bytes of RAM boots on, and whose device tree it needs."""
    return ["-machine", MACHINE, "-accel", "tcg", "-cpu", CPU_MODEL, "-smp", "1", "-m", f"{memory // virt.MiB}M",
            "-nodefaults", "-no-user-config", "-nic", "none"]


def dumpdtb_arguments(memory: int, path: str) -> list[str]:
    """The arguments of qemu-system-aarch64 that write that machine's device tree to ``path`` and exit:
    the resume's machine, firmware included."""
    argv = machine_arguments(memory)
    argv[1] = f"{MACHINE},dumpdtb={virt.option_value(path)}"
    return argv + ["-bios", str(resources.files(__package__).joinpath("trampolines", TRAMPOLINE))]


def qemu_arguments(state, workdir: str) -> list[str]:
    """The arguments of qemu-system-aarch64 that boot ``state`` (efistub.handoff_state.HandoffState)."""
    virt.check_runtime_services(state)
    memory = virt.check_board(state, ARM_VIRT)
    regs = virt.registers(state, block.AARCH64_REGISTER_FIELDS + ("el",))
    if regs["el"] != EL1 or regs["pstate"] & PSTATE_M_MASK not in PSTATE_M_AARCH64_EL1:
        raise InputError(virt.where(state), f"the saved CPU is at EL{regs['el']} (PSTATE 0x{regs['pstate']:x}): "
                                            "efistub resume boots AArch64 hand-offs at EL1")
    ram_base = ARM_VIRT.ram(memory)[0][0]
    plan = virt.plan(state, ARM_VIRT.ram(memory), [(ram_base, ram_base + virt.QEMU_FDT_MAX_SIZE)], [], workdir)
    image = Path(workdir) / IMAGE_NAME
    image.write_bytes(virt.trampoline_image(TRAMPOLINE, block.AArch64StateBlock, block.AARCH64_REGISTER_FIELDS,
                                            regs, plan.moves))
    return (machine_arguments(memory)
            + ["-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
               "-bios", str(image)]
            + virt.loader_arguments(plan.loads))
