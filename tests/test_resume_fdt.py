"""efistub resume on AArch64 and RISC-V 64 (QEMU virt): the trampolines, the QEMU command lines, the saved RAM
staged around QEMU's own device tree, what is refused, and the proof: a saved hand-off of a real kernel, given
QEMU virt's own device tree, boots in QEMU to the initrd's /init.

The QEMU tests skip without qemu-system-aarch64 / qemu-system-riscv64 (.ci/run installs qemu-system-arm and
qemu-system-misc). One kernel boot per architecture.
"""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import corpus_file
from efistub import resume
from efistub.errors import InputError
from efistub.handoff_state import MANIFEST, load
from efistub.layouts import elf
from efistub.layouts import resume_fdt as block
from efistub.resume import aarch64, riscv64, virt
from resume_helpers import (HANDOFF_MARKER, TRAMPOLINES, at_entry, changed, efistub, one_line_error,
                            rebuilt_trampoline, resume_to_init, save_handoff, save_kernel_handoff, set_field)

MiB = 1 << 20
PMD_SIZE = 2 * MiB  # what the riscv64 kernel rounds its own reservation up to


class Arch:
    def __init__(self, name, module, layout, fields, binary, package, console):
        self.name, self.module, self.layout, self.fields = name, module, layout, fields
        self.binary, self.package, self.console = binary, package, console
        self.qemu = shutil.which(binary)

    def __repr__(self):
        return self.name


AARCH64 = Arch("aarch64", aarch64, block.AArch64StateBlock, block.AARCH64_REGISTER_FIELDS, "qemu-system-aarch64",
               "qemu-system-arm", "ttyAMA0")
RISCV64 = Arch("riscv64", riscv64, block.RiscV64StateBlock, block.RISCV64_REGISTER_FIELDS, "qemu-system-riscv64",
               "qemu-system-misc", "ttyS0")
ARCHES = [pytest.param(AARCH64, id="aarch64"), pytest.param(RISCV64, id="riscv64")]


def needs_qemu(arch):
    if arch.qemu is None:
        pytest.skip(f"{arch.binary} is not installed (apt-get install {arch.package})")


@pytest.fixture(scope="module")
def saved_folders(tmp_path_factory):
    """handoff.efi's hand-off on an architecture, saved once: folders[arch] is the folder."""
    class Folders(dict):
        def __missing__(self, arch):
            self[arch] = folder = save_handoff(arch.name, tmp_path_factory.mktemp(f"resume-{arch.name}") / "state")
            return folder
    return Folders()


@pytest.fixture(params=ARCHES)
def saved(request, saved_folders):
    """(arch, folder) for each architecture."""
    return request.param, saved_folders[request.param]


def state_block_of(arch, workdir: Path):
    """The state block in the trampoline file qemu_arguments wrote into ``workdir``."""
    if arch is AARCH64:
        image = (workdir / aarch64.IMAGE_NAME).read_bytes()
    else:
        file = (workdir / riscv64.ELF_NAME).read_bytes()
        header = elf.Elf64Header.parse(file)
        program = elf.Elf64ProgramHeader.parse(file[header.e_phoff:])
        assert (header.e_machine, header.e_entry, program.p_paddr) == (elf.EM_RISCV, riscv64.TRAMPOLINE_ADDRESS,
                                                                       riscv64.TRAMPOLINE_ADDRESS)
        image = file[program.p_offset:program.p_offset + program.p_filesz]
    return image, arch.layout.parse(image[block.STATE_OFFSET:])


# -- the trampolines ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ARCHES)
def test_the_state_block_definition_matches_the_assembly(arch):
    image = (TRAMPOLINES / f"{arch.name}.bin").read_bytes()
    state = arch.layout.parse(image[block.STATE_OFFSET:])
    assert state.version == block.VERSION and state.size == arch.layout.sizeof()
    for index, name in enumerate(arch.fields):  # the .S lays the registers out in this order
        assert state[name] == block.PLACEHOLDER + index, name
    assert state.move_count == 0 and all(m.size == 0 for m in state.moves)


@pytest.mark.parametrize("arch", ARCHES)
def test_the_committed_trampoline_is_built_from_its_source(arch, tmp_path):
    assert rebuilt_trampoline(arch.name, tmp_path) == (TRAMPOLINES / f"{arch.name}.bin").read_bytes()


def test_the_trampoline_image_carries_the_saved_cpu_state(saved, tmp_path):
    arch, folder = saved
    state = load(folder)
    arch.module.qemu_arguments(state, str(tmp_path))
    image, in_image = state_block_of(arch, tmp_path)
    cpu = state.manifest["cpu"]
    for name in arch.fields:
        assert in_image[name] == cpu[name], name
    assert in_image.pc == state.manifest["entry"]
    assert in_image[{"aarch64": "x0", "riscv64": "a0"}[arch.name]] == HANDOFF_MARKER
    packaged = (TRAMPOLINES / f"{arch.name}.bin").read_bytes()  # the code is the packaged trampoline's
    end = block.STATE_OFFSET + arch.layout.sizeof()
    assert len(image) == len(packaged) and image[:block.STATE_OFFSET] == packaged[:block.STATE_OFFSET]
    assert image[end:] == packaged[end:]


# -- the QEMU command line ---------------------------------------------------------------------------------------

def test_the_qemu_machine_is_the_saved_virt_board(saved, tmp_path):
    arch, folder = saved
    state = load(folder)
    argv = arch.module.qemu_arguments(state, str(tmp_path))
    options = dict(zip(argv, argv[1:]))
    assert options["-machine"] == arch.module.MACHINE and options["-cpu"] == arch.module.CPU_MODEL
    assert options["-accel"] == "tcg" and options["-smp"] == "1"
    assert options["-m"] == f"{state.manifest['memory'] >> 20}M"
    assert options["-serial"] == "stdio" and options["-monitor"] == "none" and options["-display"] == "none"
    assert options["-nic"] == "none" and {"-nodefaults", "-no-reboot", "-no-user-config"} <= set(argv)
    if arch is AARCH64:
        assert "virtualization=off" in options["-machine"] and "secure=off" in options["-machine"]
        assert options["-bios"] == str(tmp_path / aarch64.IMAGE_NAME)
    else:
        assert options["-bios"] == "default" and options["-kernel"] == str(tmp_path / riscv64.ELF_NAME)
    # the dumped device tree comes from the same machine (on AArch64 with the same -bios: it changes the tree)
    dump = arch.module.dumpdtb_arguments(state.manifest["memory"], "/x/virt.dtb")
    machine = arch.module.machine_arguments(state.manifest["memory"])
    assert dump[1] == f"{arch.module.MACHINE},dumpdtb=/x/virt.dtb" and dump[2:len(machine)] == machine[2:]
    assert dump[len(machine):] == (["-bios", str(TRAMPOLINES / aarch64.TRAMPOLINE)] if arch is AARCH64 else [])


def test_every_saved_byte_reaches_its_address(saved, tmp_path):
    """Segments load at their addresses, except what lies where QEMU writes its own device tree:
    that is staged in free RAM and moved into place by the trampoline, zeros included."""
    arch, folder = saved
    state = load(folder)
    argv = arch.module.qemu_arguments(state, str(tmp_path))
    _, in_image = state_block_of(arch, tmp_path)
    ram = {}  # page -> bytes, as the guest will have it when the trampoline jumps

    def put(address, data):
        for offset in range(0, len(data), 4096):
            ram[address + offset] = data[offset:offset + 4096]

    for value in (v for o, v in zip(argv, argv[1:]) if o == "-device"):
        fields = dict(item.split("=", 1) for item in value.split(",")[1:])
        put(int(fields["addr"], 16), Path(fields["file"]).read_bytes())
    windows = (aarch64_windows(state) if arch is AARCH64 else
               riscv64.qemu_fdt_windows(*riscv64.RISCV_VIRT.ram(state.manifest["memory"])[0]))
    loaded_in_windows = [a for a in ram if any(lo <= a < hi for lo, hi in windows)
                         and not any(m.source <= a < m.source + m.size for m in in_image.moves[:in_image.move_count])]
    assert not loaded_in_windows  # QEMU's device tree is left alone
    for move in in_image.moves[:in_image.move_count]:
        assert any(lo <= move.destination and move.destination + move.size <= hi for lo, hi in windows)
        put(move.destination, b"".join(ram.get(move.source + o, bytes(4096)) for o in range(0, move.size, 4096)))
    for seg in state.manifest["segments"]:
        data = (folder / seg["file"]).read_bytes()
        for offset in range(0, seg["size"], 4096):
            assert ram[seg["start"] + offset] == data[offset:offset + 4096], hex(seg["start"] + offset)
    if arch is RISCV64:  # handoff.efi's code and stack are at the top of RAM, under QEMU's device tree
        assert in_image.move_count >= 1


def aarch64_windows(state):
    base = aarch64.ARM_VIRT.ram(state.manifest["memory"])[0][0]
    return [(base, base + virt.QEMU_FDT_MAX_SIZE)]


def test_saved_ram_at_the_base_of_arm_ram_is_staged(saved_folders, tmp_path):
    """AArch64: QEMU's device tree goes to 0x4000_0000; a segment there is moved into place."""
    folder = tmp_path / "state"
    shutil.copytree(saved_folders[AARCH64], folder)
    manifest = json.loads((folder / MANIFEST).read_text())
    seg = manifest["segments"][0]
    base = 0x4000_0000
    seg["start"] = base + 0x8_0000  # half inside the 1 MiB window if it is larger than 512 KiB
    manifest["memory_map"] = [{"type": "EfiConventionalMemory", "start": base, "pages": 0x80, "attribute": 0xF,
                               "virtual": 0},
                              {"type": "EfiLoaderData", "start": base + 0x8_0000, "pages": 0x100, "attribute": 0xF,
                               "virtual": 0},
                              {"type": "EfiConventionalMemory", "start": base + 0x18_0000, "pages": 0x3FE80,
                               "attribute": 0xF, "virtual": 0}]
    (folder / MANIFEST).write_text(json.dumps(manifest))
    work = tmp_path / "work"
    work.mkdir()
    aarch64.qemu_arguments(load(folder), str(work))
    _, in_image = state_block_of(AARCH64, work)
    move = in_image.moves[0]
    assert in_image.move_count == 1
    assert (move.destination, move.size) == (base + 0x8_0000, 0x8_0000)  # the map's LoaderData inside the window
    assert move.source >= base + virt.QEMU_FDT_MAX_SIZE
    staged = (work / virt.STAGED_FILE.format(start=move.source)).read_bytes()
    data = (folder / seg["file"]).read_bytes()
    assert staged == (data + bytes(0x8_0000))[:0x8_0000]


def test_commas_in_paths_are_escaped_for_qemu(saved, tmp_path):
    arch, folder = saved
    copy = tmp_path / "a,b"
    shutil.copytree(folder, copy)
    work = tmp_path / "w,d"  # staged files are written there
    work.mkdir()
    argv = arch.module.qemu_arguments(load(copy), str(work))
    files = [v[len("loader,file="):v.index(",addr=")] for o, v in zip(argv, argv[1:]) if o == "-device"]
    assert files and all(",," in f and Path(f.replace(",,", ",")).is_file() for f in files)
    assert "a,,b" in aarch64.dumpdtb_arguments(1 << 30, "/a,b/virt.dtb")[1]


FDT_BOOT = {"kind": "fdt", "fdt": 0x7000_0000, "fdt_size": 4096}
REFUSED = [
    (AARCH64, set_field("platform.ram", [{"start": 0, "end": 1 << 30}]), "are not those QEMU's virt gives 1024 MiB"),
    (AARCH64, set_field("platform.name", "q35"), "the board is 'q35'"),
    (AARCH64, set_field("memory", (1 << 30) + 4096), "not a whole number of MiB"),
    (AARCH64, set_field("cpu.el", 2), "the saved CPU is at EL2"),
    (AARCH64, set_field("cpu.pstate", 0x3C9), "the saved CPU is at EL1 (PSTATE 0x3c9)"),
    (AARCH64, set_field("cpu.x5", -1), "no valid 'x5'"),
    (AARCH64, set_field("boot", dict(FDT_BOOT, cmdline="console=ttyAMA0")), "has no efi=noruntime"),
    (RISCV64, set_field("cpu.priv", 3), "privilege mode 3"),
    (RISCV64, set_field("cpu.satp", None), "no valid 'satp'"),
    (RISCV64, set_field("boot", dict(FDT_BOOT, cmdline="efi=debug")), "has no efi=noruntime"),
    (RISCV64, set_field("memory_map", [{"type": 7}]), "memory_map that is not a list of memory descriptors"),
    (RISCV64, lambda m: (set_field("boot", dict(FDT_BOOT, cmdline="efi=noruntime"))(m), set_field("cpu.a0", 3)(m)),
     "the kernel was entered on hart 3 (a0): efistub resume's machine has one hart, 0"),
]


@pytest.mark.parametrize("arch, change, problem", REFUSED, ids=[
    "ram-layout", "board", "memory-size", "el2", "aarch32-or-el2-pstate", "bad-register", "runtime-services-arm",
    "m-mode", "no-satp", "runtime-services-riscv", "bad-map", "other-hart"])
def test_a_state_qemu_cannot_boot_is_refused(saved_folders, tmp_path, arch, change, problem):
    folder = saved_folders[arch]
    copy = changed(folder, tmp_path, change)
    with pytest.raises(InputError, match=re.escape(problem)):
        arch.module.qemu_arguments(load(copy), str(tmp_path))
    if arch.qemu is not None:  # the CLI says it in one line, exit 2
        one_line_error(efistub("resume", copy, "--print-command"), problem)


def test_saved_data_in_the_sbi_firmwares_ram_is_refused(saved_folders, tmp_path):
    copy = changed(saved_folders[RISCV64], tmp_path, lambda m: m["segments"][0].update(start=0x8010_0000))
    with pytest.raises(InputError, match="the RAM kept for OpenSBI and the resume trampoline"):
        riscv64.qemu_arguments(load(copy), str(tmp_path))


@pytest.mark.parametrize("cmdline", ["console=ttyS0 efi=noruntime", "efi=debug,noruntime", "noefi"])
def test_a_kernel_kept_off_runtime_services_is_accepted(saved, tmp_path, cmdline):
    arch, folder = saved
    def change(manifest):
        set_field("boot", dict(FDT_BOOT, cmdline=cmdline))(manifest)
        if arch is RISCV64:  # a Linux hand-off enters on the boot hart, a0
            set_field("cpu.a0", riscv64.BOOT_HART)(manifest)
    copy = changed(folder, tmp_path, change)
    assert arch.module.qemu_arguments(load(copy), str(tmp_path))


# -- in QEMU ------------------------------------------------------------------------------------------------------

AARCH64_REGISTER = re.compile(r"\b(PC|X\d\d|SP)=([0-9a-f]{16})")
AARCH64_PSTATE = re.compile(r"PSTATE=([0-9a-f]{8})")
RISCV64_REGISTER = re.compile(r"\b(?:x\d+/)?(pc|ra|sp|gp|tp|t\d|s\d+|a\d|satp|stvec|mstatus|priv)\s+([0-9a-f]{16})\b")


def test_the_cpu_at_the_entry_is_the_saved_one(saved, tmp_path):
    arch, folder = saved
    needs_qemu(arch)
    state = load(folder)
    cpu, entry = state.manifest["cpu"], state.manifest["entry"]
    segments = state.manifest["segments"]
    addresses = [seg["start"] for seg in segments]
    pc_text = " PC={:016x}" if arch is AARCH64 else " pc       {:016x}"
    text, words = at_entry(resume.command(state, str(tmp_path)), tmp_path / "monitor", entry, pc_text, addresses)
    for seg in segments:  # the saved RAM is in place, the part under QEMU's device tree too
        data = (folder / seg["file"]).read_bytes()
        assert words[seg["start"]] == int.from_bytes(data[:8], "little"), hex(seg["start"])
    if arch is AARCH64:
        registers = {name.lower(): int(value, 16) for name, value in AARCH64_REGISTER.findall(text)}
        for n in range(31):
            assert registers[f"x{n:02d}"] == cpu[f"x{n}"], f"x{n}"
        assert registers["sp"] == cpu["sp"] and registers["pc"] == entry
        assert int(AARCH64_PSTATE.search(text).group(1), 16) == cpu["pstate"]
        assert " EL1h" in text or " EL1t" in text
    else:
        registers = {name: int(value, 16) for name, value in RISCV64_REGISTER.findall(text)}
        for name in block.RISCV64_REGISTER_FIELDS[:31] + ("satp", "stvec"):
            assert registers[name] == cpu[name], name
        assert registers["pc"] == entry
        shared = 0x2 | 0x6000  # SIE and FS, which sstatus shows of mstatus
        assert registers["mstatus"] & shared == cpu["sstatus"] & shared
        assert registers.get("priv", cpu["priv"]) == cpu["priv"]


BOOTS = [
    pytest.param(AARCH64, "aarch64/vmlinuz-6.12.117+deb13-arm64", "initrd/initrd-busybox-arm64.cpio.gz", id="aarch64"),
    pytest.param(RISCV64, "riscv64/vmlinux-6.12.117+deb13-riscv64", "initrd/initrd-busybox-riscv64.cpio.gz",
                 id="riscv64"),
]


def riscv_initrd_clear_of_the_kernels_reservation(manifest: dict) -> None:
    """The riscv64 kernel reserves itself up to the next 2 MiB (setup_bootmem, STRICT_KERNEL_RWX) and drops
    an initrd that overlaps it ("INITRD: ... overlaps in-use memory region - disabling initrd"), while the
    stub allocated only its size and freed the rest: an initrd the firmware places in that tail would never
    be unpacked. Fail with that instead of a boot that times out."""
    entry = manifest["entry"]
    kernel = next(e for e in manifest["memory_map"]
                  if e["start"] <= entry < e["start"] + e["pages"] * 4096)
    reserved_end = -(-(kernel["start"] + kernel["pages"] * 4096) // PMD_SIZE) * PMD_SIZE
    initrd = manifest["boot"]["initrd"]
    assert not (kernel["start"] < initrd["start"] + initrd["size"] and initrd["start"] < reserved_end), (
        f"the initrd 0x{initrd['start']:x}+0x{initrd['size']:x} lies in the 2 MiB-rounded reservation of the kernel "
        f"0x{kernel['start']:x}-0x{reserved_end:x}: the riscv64 kernel would disable it")


@pytest.mark.parametrize("arch, kernel, initrd", BOOTS)
def test_a_saved_kernel_boots_to_the_initrds_init(corpus, tmp_path, arch, kernel, initrd):
    needs_qemu(arch)
    image = corpus_file(corpus, kernel)
    initrd_file = corpus_file(corpus, initrd)
    memory = 1 << 30  # efistub's default --mem, given explicitly: the dump and the run must agree
    dtb = tmp_path / "virt.dtb"
    dumped = subprocess.run([arch.qemu] + arch.module.dumpdtb_arguments(memory, str(dtb)), capture_output=True,
                            text=True, timeout=120)
    assert dumped.returncode == 0 and dtb.stat().st_size > 0, dumped.stderr
    cmdline = f"console={arch.console} efi=noruntime rdinit=/init"
    folder = tmp_path / "state"
    manifest = save_kernel_handoff(folder, image, initrd_file, cmdline, "--dtb", dtb, "--mem", "1G")
    assert manifest["boot"]["cmdline"] == cmdline and manifest["memory"] == memory
    if arch is RISCV64:
        riscv_initrd_clear_of_the_kernels_reservation(manifest)
    console = resume_to_init(folder, cmdline)
    assert "efi: EFI v2.7 by efistub" in console  # it booted through the saved EFI system table
