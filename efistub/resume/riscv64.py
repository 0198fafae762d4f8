"""RISC-V 64: boot a saved hand-off on QEMU's virt board, through OpenSBI and efistub's trampoline.

The QEMU machine is the board the run was saved on: ``-machine virt`` with the saved RAM
size (RAM at 0x8000_0000), ``-cpu rv64``, one hart, TCG. The device tree the stub was
given (``--dtb``) must be this machine's: ``dumpdtb_arguments`` gives the QEMU command
that writes it. The M-mode firmware is QEMU's own OpenSBI (``-bios default``: fw_dynamic,
in qemu-system-data), at 0x8000_0000, inside the first 2 MiB that the saved memory map
reserves for it (EfiReservedMemoryType, efistub.board).

fw_dynamic enters the "kernel" QEMU was given in S-mode, at the lowest address of an ELF
``-kernel`` (QEMU 7.2's riscv_load_kernel), with a0 = the hart id and a1 = QEMU's device
tree; fw_jump would instead jump to the fixed 0x8020_0000, free RAM that a saved segment
may occupy, and copy the tree to 0x8220_0000. So efistub writes its trampoline
(trampolines/riscv64.S, position-independent) with the saved CPU state in its state
block (layouts/resume_fdt.py) into a one-segment ELF file at TRAMPOLINE_ADDRESS: the top
64 KiB of that reserved 2 MiB, far above OpenSBI's image, never given to the kernel (and
checked to hold no saved data). The trampoline puts the saved a0 (hart id) and a1 (the
stub's FDT, not QEMU's) in place with every other register.

QEMU's generic loader devices put every saved segment at its address at reset. QEMU also
writes its own device tree (up to 1 MiB) just below the top of RAM, or below 3 GiB when RAM
reaches past it, aligned down to 2 MiB (riscv_load_fdt), and OpenSBI reads it before the
trampoline runs: the saved RAM there is staged elsewhere and moved into place by the
trampoline (efistub.resume.virt).
"""

from __future__ import annotations

from pathlib import Path

from ..board import RISCV_VIRT
from ..errors import InputError
from ..layouts import elf
from ..layouts import resume_fdt as block
from ..layouts.efi import PAGE_SIZE
from . import virt

TRAMPOLINE = "riscv64.bin"
ELF_NAME = "riscv64-resume.elf"
MACHINE = "virt"
CPU_MODEL = "rv64"
SBI_FIRMWARE = RISCV_VIRT.reserved[0]  # the 2 MiB the board keeps for OpenSBI
TRAMPOLINE_SPACE = 64 << 10
TRAMPOLINE_ADDRESS = SBI_FIRMWARE.end - TRAMPOLINE_SPACE
PRIV_SUPERVISOR = 1
BOOT_HART = 0  # -smp 1: the only hart, the one OpenSBI starts the trampoline on
THREE_GiB = 3 << 30  # QEMU puts its device tree below this mark (or the end of RAM, if lower)
FDT_ALIGNMENT = 2 * virt.MiB


def machine_arguments(memory: int) -> list[str]:
    """The QEMU machine a hand-off with ``memory`` bytes of RAM boots on, and whose device tree it needs."""
    return ["-machine", MACHINE, "-accel", "tcg", "-cpu", CPU_MODEL, "-smp", "1", "-m", f"{memory // virt.MiB}M",
            "-nodefaults", "-no-user-config", "-nic", "none", "-bios", "default"]


def dumpdtb_arguments(memory: int, path: str) -> list[str]:
    """The arguments of qemu-system-riscv64 that write that machine's device tree to ``path`` and exit."""
    argv = machine_arguments(memory)
    argv[1] = f"{MACHINE},dumpdtb={virt.option_value(path)}"
    return argv


def qemu_fdt_windows(ram_start: int, ram_end: int) -> list[tuple[int, int]]:
    """Where QEMU may put its device tree: below the end of RAM capped at 3 GiB (QEMU 7.2) or below the
    end of RAM (later QEMUs for 64-bit guests), at most QEMU_FDT_MAX_SIZE, aligned down to 2 MiB."""
    tops = {min(ram_end, THREE_GiB) if ram_start < THREE_GiB else ram_end, ram_end}
    return [(max(ram_start, (top - virt.QEMU_FDT_MAX_SIZE) // FDT_ALIGNMENT * FDT_ALIGNMENT), top)
            for top in sorted(tops)]


def qemu_arguments(state, workdir: str) -> list[str]:
    """The arguments of qemu-system-riscv64 that boot ``state`` (efistub.handoff_state.HandoffState)."""
    virt.check_runtime_services(state)
    memory = virt.check_board(state, RISCV_VIRT)
    regs = virt.registers(state, block.RISCV64_REGISTER_FIELDS + ("priv",))
    if regs["priv"] != PRIV_SUPERVISOR:
        raise InputError(virt.where(state), f"the saved CPU is in privilege mode {regs['priv']}: efistub resume "
                                            "boots RISC-V hand-offs in S-mode (1)")
    if virt.fdt_handoff(state) and regs["a0"] != BOOT_HART:
        raise InputError(virt.where(state), f"the kernel was entered on hart {regs['a0']} (a0): efistub resume's "
                                            f"machine has one hart, {BOOT_HART}; save the hand-off again with "
                                            f"--hart-id {BOOT_HART}")
    virt.check_clear(state, SBI_FIRMWARE.start, SBI_FIRMWARE.end,
                     "the RAM kept for OpenSBI and the resume trampoline")
    ram_start, ram_end = RISCV_VIRT.ram(memory)[0]
    plan = virt.plan(state, RISCV_VIRT.ram(memory), qemu_fdt_windows(ram_start, ram_end),
                     [(SBI_FIRMWARE.start, SBI_FIRMWARE.end)], workdir)  # OpenSBI and the trampoline
    image = virt.trampoline_image(TRAMPOLINE, block.RiscV64StateBlock, block.RISCV64_REGISTER_FIELDS, regs,
                                  plan.moves)
    if len(image) > TRAMPOLINE_SPACE:
        raise InputError(TRAMPOLINE, f"the trampoline is {len(image)} bytes, more than the {TRAMPOLINE_SPACE} "
                                     "kept for it")
    path = Path(workdir) / ELF_NAME
    path.write_bytes(elf_image(image, TRAMPOLINE_ADDRESS))
    return (machine_arguments(memory)
            + ["-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot", "-kernel", str(path)]
            + virt.loader_arguments(plan.loads))


def elf_image(code: bytes, address: int) -> bytes:
    """An ELF executable of one loadable segment: ``code`` at physical and virtual ``address``."""
    header_size = elf.Elf64Header.sizeof()
    header = elf.Elf64Header.build(dict(
        ei_class=elf.ELFCLASS64, ei_data=elf.ELFDATA2LSB, ei_version=elf.EV_CURRENT, ei_osabi=0, ei_abiversion=0,
        e_type=elf.ET_EXEC, e_machine=elf.EM_RISCV, e_version=elf.EV_CURRENT, e_entry=address,
        e_phoff=header_size, e_shoff=0, e_flags=0, e_ehsize=header_size,
        e_phentsize=elf.Elf64ProgramHeader.sizeof(), e_phnum=1, e_shentsize=0, e_shnum=0, e_shstrndx=0))
    program = elf.Elf64ProgramHeader.build(dict(
        p_type=elf.PT_LOAD, p_flags=elf.PF_R | elf.PF_W | elf.PF_X, p_offset=PAGE_SIZE, p_vaddr=address,
        p_paddr=address, p_filesz=len(code), p_memsz=len(code), p_align=PAGE_SIZE))
    headers = header + program
    return headers + bytes(PAGE_SIZE - len(headers)) + code
