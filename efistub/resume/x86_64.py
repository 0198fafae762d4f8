"""x86_64: boot a saved hand-off on QEMU's q35 PC, with efistub's trampoline as the firmware.

The QEMU machine is the board the run was saved on: ``-machine q35`` with the saved RAM
size, whose RAM layout (QEMU's q35 rule: efistub.board) must be the saved one. The CPU is
TCG's ``max`` model with LA57 off. It covers what the kernel saw in efistub, whose CPUID
is unicorn's Haswell-like model with LA57, RDRAND and RDSEED hidden, and what the saved
control registers enable: CR4.OSXSAVE and CR4.FSGSBASE (unicorn sets them) need XSAVE and
FSGSBASE, which ``qemu64`` lacks (loading the saved CR4 there faults). LA57 stays hidden
as it was, so a kernel whose own code decides between 4- and 5-level paging after the
hand-off (6.1's decompressor) decides as it would have in efistub.

Nothing but efistub's data touches RAM before the kernel runs: ``-nodefaults`` (no
network, no VGA, no option ROMs), the serial port on stdio, and ``-bios`` the trampoline
ROM (trampolines/x86_64.S), so no SeaBIOS. QEMU's generic loader devices
(``-device loader,...,force-raw=on``) put every saved segment at its address at reset;
the CPU state reaches the trampoline as data: efistub writes it into the state block
(layouts/resume_x86_64.py) of a copy of the ROM image in the work folder. The ROM is
not RAM, so nothing the kernel does can clobber it, and the memory map needs no entry
for it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ..board import Q35
from ..errors import InputError
from ..handoff_state import MANIFEST
from ..layouts import resume_x86_64 as block
from ..layouts import x86_cpu as cpu
from ..layouts.efi import PAGE_SIZE

MiB = 1 << 20
FOUR_GiB = 1 << 32
TRAMPOLINE = "x86_64.bin"
ROM_NAME = "x86_64-resume.rom"
CPU_MODEL = "max,la57=off"
LEGACY_WINDOW = (0xA_0000, 0x10_0000)  # VGA and BIOS ROM area: not RAM on a q35 with PAM at reset
CR0_PE = 1 << 0
CR4_LA57 = 1 << 12
EFER_LME = 1 << 8
PTE_ADDRESS = 0x000F_FFFF_FFFF_F000  # bits 51:12 of a page-table entry: the next table or the page
LEVEL_SHIFTS = (39, 30, 21, 12)  # PML4, PDPT, PD, PT: the address bits each level indexes with
LARGE_PAGE_SHIFTS = (30, 21)  # with the PS bit, a PDPT entry maps a 1 GiB page, a PD entry a 2 MiB one
LA57_SHIFT = 48  # the PML5 above them with CR4.LA57
INDEX_MASK = cpu.ENTRIES - 1
ENTRY_SIZE = 8
LINUX_BOOT_KIND = "linux-x86-boot-params"
EFI_OPTION, NO_RUNTIME, NO_EFI = "efi=", "noruntime", "noefi"  # the kernel parameters that keep it off runtime services


def qemu_arguments(state, workdir: str) -> list[str]:
    """The arguments of qemu-system-x86_64 that boot ``state`` (efistub.handoff_state.HandoffState)."""
    manifest = state.manifest
    where = str(state.folder / MANIFEST)
    memory = _check_board(manifest, where)
    _check_runtime_services(manifest, where)
    regs = _registers(manifest, where)
    _check_long_mode(regs, where)
    ram = SavedRam(state)
    for page in range(block.ROM_BASE, block.ROM_BASE + block.ROM_SIZE, PAGE_SIZE):
        physical = translate(ram, regs["cr3"], bool(regs["cr4"] & CR4_LA57), page)
        if physical != page:
            mapping = "not mapped" if physical is None else f"mapped to 0x{physical:x}"
            raise InputError(where, f"the saved page tables (CR3 0x{regs['cr3']:x}) do not identity-map the resume "
                                    f"trampoline's ROM page 0x{page:x} ({mapping})")
    rom = Path(workdir) / ROM_NAME
    rom.write_bytes(trampoline_image(regs))
    argv = ["-machine", "q35", "-accel", "tcg", "-cpu", CPU_MODEL, "-smp", "1", "-m", f"{memory // MiB}M",
            "-nodefaults", "-no-user-config", "-nic", "none", "-display", "none", "-monitor", "none",
            "-serial", "stdio", "-no-reboot", "-bios", str(rom)]
    for start, path in state.segments():
        argv += ["-device", f"loader,file={_option_value(str(path))},addr=0x{start:x},force-raw=on"]
    return argv


def trampoline_image(regs: dict[str, int]) -> bytes:
    """The trampoline ROM with ``regs`` (the manifest's cpu, checked) in its state block."""
    image = bytearray(resources.files(__package__).joinpath("trampolines", TRAMPOLINE).read_bytes())
    size = block.StateBlock.sizeof()
    state = block.StateBlock.parse(image[block.STATE_OFFSET:block.STATE_OFFSET + size])
    if len(image) != block.ROM_SIZE or state.version != block.VERSION or state.size != size:
        raise InputError(TRAMPOLINE, "the packaged trampoline does not match efistub's state block: rebuild it "
                                     "with efistub/resume/trampolines/build.sh")
    for name in block.REGISTER_FIELDS:
        state[name] = regs[name]
    state.cs = regs["cs"]
    state.gdtr.base, state.gdtr.limit = regs["gdtr_base"], regs["gdtr_limit"]
    state.idtr.base, state.idtr.limit = regs["idtr_base"], regs["idtr_limit"]
    image[block.STATE_OFFSET:block.STATE_OFFSET + size] = block.StateBlock.build(state)
    return bytes(image)


REQUIRED = block.REGISTER_FIELDS + ("cs", "gdtr_base", "gdtr_limit", "idtr_base", "idtr_limit")
LIMITS = {"cs": 0xFFFF, "ds": 0xFFFF, "es": 0xFFFF, "fs": 0xFFFF, "gs": 0xFFFF, "ss": 0xFFFF, "gdtr_limit": 0xFFFF,
          "idtr_limit": 0xFFFF}


def _registers(manifest: dict, where: str) -> dict[str, int]:
    saved = manifest["cpu"]
    regs = {}
    for name in REQUIRED:
        value = saved.get(name) if isinstance(saved, dict) else None
        if not isinstance(value, int) or not 0 <= value <= LIMITS.get(name, (1 << 64) - 1):
            raise InputError(where, f"the saved x86_64 CPU state has no valid {name!r}")
        regs[name] = value
    return regs


def _check_board(manifest: dict, where: str) -> int:
    """The RAM size, once the saved board is the q35 that ``-machine q35 -m SIZE`` gives."""
    memory, platform = manifest["memory"], manifest["platform"]
    if not isinstance(memory, int) or memory <= 0 or memory % MiB:
        raise InputError(where, f"memory {memory!r} is not a whole number of MiB, as QEMU's -m needs")
    name = platform.get("name") if isinstance(platform, dict) else None
    if name != Q35.name:
        raise InputError(where, f"the board is {name!r}: efistub resume boots x86_64 hand-offs saved on {Q35.name}")
    qemu_ram = Q35.ram(memory)
    saved_ram = [(r.get("start"), r.get("end")) for r in platform.get("ram", []) if isinstance(r, dict)]
    if saved_ram != qemu_ram:
        raise InputError(where, f"the saved RAM ranges {_ranges(saved_ram)} are not those QEMU's q35 gives "
                                f"{memory // MiB} MiB: {_ranges(qemu_ram)}")
    for seg in manifest["segments"]:
        start, end = seg["start"], seg["start"] + seg["size"]
        in_ram = any(lo <= start and end <= hi for lo, hi in qemu_ram)
        if not in_ram or start < LEGACY_WINDOW[1] and end > LEGACY_WINDOW[0]:
            raise InputError(where, f"segment {seg['file']} (0x{start:x}-0x{end:x}) is not in the q35's RAM")
    return memory


def _check_runtime_services(manifest: dict, where: str) -> None:
    """A Linux kernel must not call the EFI runtime services: they stay in efistub, and the QEMU
    machine has no firmware (the 6.12 kernel stops entering EFI virtual mode without this)."""
    boot = manifest.get("boot") or {}
    if boot.get("kind") != LINUX_BOOT_KIND:
        return
    words = str(boot.get("cmdline") or "").split()
    if NO_EFI in words or any(w.startswith(EFI_OPTION) and NO_RUNTIME in w[len(EFI_OPTION):].split(",")
                              for w in words):
        return
    raise InputError(where, "the saved kernel command line has no efi=noruntime: the kernel would call EFI runtime "
                            "services, which stay in efistub; save the hand-off again with efi=noruntime in --cmdline "
                            "(docs/handoff-state.md)")


def _check_long_mode(regs: dict[str, int], where: str) -> None:
    if not (regs["cr0"] & cpu.CR0_PG and regs["cr0"] & CR0_PE and regs["cr4"] & cpu.CR4_PAE
            and regs["efer"] & EFER_LME):
        raise InputError(where, f"the saved CPU is not in long mode (CR0 0x{regs['cr0']:x}, "
                                f"CR4 0x{regs['cr4']:x}, EFER 0x{regs['efer']:x}): nothing to resume")
    if regs["cr3"] >= FOUR_GiB:
        raise InputError(where, f"the saved CR3 0x{regs['cr3']:x} is above 4 GiB, where the "
                                "trampoline's 32-bit code cannot load it")


def _ranges(ranges) -> str:
    return ", ".join(f"0x{lo:x}-0x{hi:x}" for lo, hi in ranges) if ranges else "none"


def _option_value(text: str) -> str:
    """A value inside a QEMU -device option list: commas doubled."""
    return text.replace(",", ",,")


class SavedRam:
    """Guest RAM as QEMU will hold it at reset: the saved segments, zero elsewhere."""

    def __init__(self, state):
        self._segments = [(seg["start"], seg["size"], state.folder / seg["file"])
                          for seg in state.manifest["segments"]]

    def read_u64(self, address: int) -> int:
        for start, size, path in self._segments:
            if start <= address and address + ENTRY_SIZE <= start + size:
                with open(path, "rb") as f:
                    f.seek(address - start)
                    return int.from_bytes(f.read(ENTRY_SIZE), "little")
        return 0


def translate(ram: SavedRam, cr3: int, la57: bool, address: int) -> int | None:
    """The physical address the saved page tables give ``address`` (4- or 5-level), None if unmapped."""
    table = cr3 & PTE_ADDRESS
    shifts = ((LA57_SHIFT,) if la57 else ()) + LEVEL_SHIFTS
    for shift in shifts:
        entry = ram.read_u64(table + ((address >> shift) & INDEX_MASK) * ENTRY_SIZE)
        if not entry & cpu.PRESENT:
            return None
        if shift == LEVEL_SHIFTS[-1] or entry & cpu.LARGE_PAGE and shift in LARGE_PAGE_SHIFTS:
            span = 1 << shift
            return (entry & PTE_ADDRESS & ~(span - 1)) | (address & (span - 1))
        table = entry & PTE_ADDRESS
    return None
