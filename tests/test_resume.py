"""efistub resume on x86_64: the trampoline, the QEMU command line, what is refused, and the proof: a saved
hand-off of a real kernel boots in QEMU to the initrd's /init.

The QEMU tests skip without qemu-system-x86_64 (.ci/run installs qemu-system-x86). CI boots one kernel per
architecture; EFISTUB_RESUME_ALL=1 boots the 6.1 kernel too.
"""

import os
import re
import shutil

import pytest

from conftest import corpus_file
from efistub import resume
from efistub.errors import InputError
from efistub.handoff_state import load
from efistub.layouts import resume_x86_64 as block
from efistub.resume import x86_64
from resume_helpers import (HANDOFF_MARKER, TRAMPOLINES, at_entry, changed, efistub, one_line_error,
                            rebuilt_trampoline, resume_to_init, save_handoff, save_kernel_handoff, set_field)

CMDLINE = "console=ttyS0 efi=noruntime rdinit=/init"
BOOT_EVERY_KERNEL = os.environ.get("EFISTUB_RESUME_ALL") == "1"
QEMU = shutil.which("qemu-system-x86_64")
needs_qemu = pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 is not installed "
                                                     "(apt-get install qemu-system-x86)")
RESET_VECTOR_OFFSET = 0xFFF0
NEAR_JMP = 0xE9


@pytest.fixture(scope="module")
def handoff_state(tmp_path_factory):
    """handoff.efi's hand-off (x86_64), saved: the folder."""
    return save_handoff("x86_64", tmp_path_factory.mktemp("resume") / "state")


# -- the trampoline ---------------------------------------------------------------------------------------------

def test_the_state_block_definition_matches_the_assembly():
    image = (TRAMPOLINES / "x86_64.bin").read_bytes()
    assert len(image) == block.ROM_SIZE
    state = block.StateBlock.parse(image[block.STATE_OFFSET:])
    assert state.version == block.VERSION and state.size == block.StateBlock.sizeof()
    # the n-th register field of the built image holds PLACEHOLDER + n: the .S lays them out in this order
    for index, name in enumerate(block.REGISTER_FIELDS):
        assert state[name] == block.PLACEHOLDER + index, name
    count = len(block.REGISTER_FIELDS)
    assert (state.cs, state.gdtr.base, state.idtr.base) == tuple(block.PLACEHOLDER + count + i for i in range(3))
    assert block.ROM_BASE < state.cs_frame < block.ROM_BASE + block.ROM_SIZE  # LRETQ returns into the ROM
    assert image[RESET_VECTOR_OFFSET] == NEAR_JMP  # the CPU's first instruction, at 0xFFFFFFF0


def test_the_committed_trampoline_is_built_from_its_source(tmp_path):
    assert rebuilt_trampoline("x86_64", tmp_path) == (TRAMPOLINES / "x86_64.bin").read_bytes()


def test_the_rom_carries_the_saved_cpu_state(handoff_state, tmp_path):
    state = load(handoff_state)
    x86_64.qemu_arguments(state, str(tmp_path))
    rom = (tmp_path / x86_64.ROM_NAME).read_bytes()
    block_in_rom = block.StateBlock.parse(rom[block.STATE_OFFSET:])
    cpu = state.manifest["cpu"]
    for name in block.REGISTER_FIELDS:
        assert block_in_rom[name] == cpu[name], name
    assert block_in_rom.rcx == HANDOFF_MARKER and block_in_rom.rip == state.manifest["entry"]
    assert block_in_rom.cs == cpu["cs"]
    assert (block_in_rom.gdtr.base, block_in_rom.gdtr.limit) == (cpu["gdtr_base"], cpu["gdtr_limit"])
    assert (block_in_rom.idtr.base, block_in_rom.idtr.limit) == (cpu["idtr_base"], cpu["idtr_limit"])
    # the code is the packaged trampoline's, byte for byte
    packaged = (TRAMPOLINES / "x86_64.bin").read_bytes()
    end = block.STATE_OFFSET + block.StateBlock.sizeof()
    assert rom[end:] == packaged[end:]


# -- the QEMU command line --------------------------------------------------------------------------------------

def test_the_qemu_machine_is_the_saved_q35_with_the_segments_loaded(handoff_state, tmp_path):
    state = load(handoff_state)
    argv = x86_64.qemu_arguments(state, str(tmp_path))
    options = dict(zip(argv, argv[1:]))
    assert options["-machine"] == "q35" and options["-accel"] == "tcg" and options["-cpu"] == "max,la57=off"
    assert options["-m"] == f"{state.manifest['memory'] >> 20}M"
    assert options["-bios"] == str(tmp_path / x86_64.ROM_NAME)
    assert options["-serial"] == "stdio" and options["-monitor"] == "none" and options["-nic"] == "none"
    assert {"-nodefaults", "-no-reboot", "-no-user-config"} <= set(argv)
    loaders = [value for option, value in zip(argv, argv[1:]) if option == "-device"]
    assert loaders == [f"loader,file={handoff_state / seg['file']},addr=0x{seg['start']:x},force-raw=on"
                       for seg in state.manifest["segments"]]


def test_commas_in_paths_are_escaped_for_qemu(handoff_state, tmp_path):
    folder = tmp_path / "a,b"
    shutil.copytree(handoff_state, folder)
    argv = x86_64.qemu_arguments(load(folder), str(tmp_path))
    assert any(value.startswith(f"loader,file={tmp_path}/a,,b/segment-") for value in argv)


@pytest.mark.parametrize("change, problem", [
    (set_field("platform.ram", [{"start": 0, "end": 1 << 29}]), "are not those QEMU's q35 gives 1024 MiB"),
    (set_field("platform.name", "virt"), "the board is 'virt'"),
    (set_field("memory", (1 << 30) + 4096), "not a whole number of MiB"),
    (set_field("cpu.cr3", 0x10000), "do not identity-map the resume trampoline's ROM page 0xffff0000 (not mapped)"),
    (set_field("cpu.cr3", 1 << 32), "above 4 GiB"),
    (set_field("cpu.cr0", 0x11), "not in long mode"),
    (set_field("cpu.rbx", -1), "no valid 'rbx'"),
    (set_field("cpu.cs", 1 << 16), "no valid 'cs'"),
    (set_field("boot", {"kind": "linux-x86-boot-params", "cmdline": "console=ttyS0 efi=debug"}),
     "has no efi=noruntime"),
], ids=["ram-layout", "board", "memory-size", "unmapped-rom", "cr3-high", "no-long-mode", "bad-register",
        "bad-selector", "runtime-services"])
def test_a_state_qemu_cannot_boot_is_refused(handoff_state, tmp_path, change, problem):
    folder = changed(handoff_state, tmp_path, change)
    with pytest.raises(InputError, match=re.escape(problem)):
        x86_64.qemu_arguments(load(folder), str(tmp_path))
    if QEMU is not None:  # the CLI says it in one line, exit 2 (without QEMU it names the package first)
        one_line_error(efistub("resume", folder, "--print-command"), problem)


@pytest.mark.parametrize("cmdline", ["console=ttyS0 efi=noruntime", "efi=debug,noruntime", "noefi"])
def test_a_kernel_kept_off_runtime_services_is_accepted(handoff_state, tmp_path, cmdline):
    boot = {"kind": "linux-x86-boot-params", "cmdline": cmdline}
    folder = changed(handoff_state, tmp_path, set_field("boot", boot))
    assert x86_64.qemu_arguments(load(folder), str(tmp_path))


def test_without_qemu_resume_names_the_package(handoff_state, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    result = efistub("resume", handoff_state, env=dict(os.environ, PATH=str(empty)))
    one_line_error(result, "qemu-system-x86_64: not found: install it with apt-get install qemu-system-x86")


# -- in QEMU -----------------------------------------------------------------------------------------------------

HMP_REGISTER = re.compile(r"\b(R[A-Z0-9]{1,2}|RFL|CR[0234]|EFER) ?=([0-9a-f]+)")  # "R8 =", "RAX="
HMP_SEGMENT = re.compile(r"^(ES|CS|SS|DS|FS|GS) =([0-9a-f]{4}) ([0-9a-f]{16})", re.M)
HMP_TABLE = re.compile(r"^(GDT|IDT)= +([0-9a-f]{16}) ([0-9a-f]{8})", re.M)


@needs_qemu
def test_the_cpu_at_the_entry_is_the_saved_one(handoff_state, tmp_path):
    state = load(handoff_state)
    cpu = state.manifest["cpu"]
    text, _ = at_entry(resume.command(state, str(tmp_path)), tmp_path / "monitor", state.manifest["entry"],
                       "RIP={:016x}")
    registers = {name.lower(): int(value, 16) for name, value in HMP_REGISTER.findall(text)}
    for name in block.GENERAL_REGISTERS + ("rip", "cr0", "cr2", "cr3", "cr4", "efer"):
        assert registers[name] == cpu[name], name
    assert registers["rfl"] == cpu["rflags"] and registers["rcx"] == HANDOFF_MARKER
    segments = {name.lower(): (int(selector, 16), int(base, 16)) for name, selector, base in HMP_SEGMENT.findall(text)}
    for name in ("cs", "ds", "es", "fs", "gs", "ss"):
        assert segments[name][0] == cpu[name], name
    assert segments["fs"][1] == cpu["fs_base"] and segments["gs"][1] == cpu["gs_base"]
    tables = {name.lower(): (int(base, 16), int(limit, 16)) for name, base, limit in HMP_TABLE.findall(text)}
    assert tables["gdt"] == (cpu["gdtr_base"], cpu["gdtr_limit"])
    assert tables["idt"] == (cpu["idtr_base"], cpu["idtr_limit"])


KERNELS = [
    pytest.param("x86_64/vmlinuz-6.12.117+deb13-amd64", id="6.12"),
    pytest.param("x86_64/vmlinuz-6.1.0-57-amd64", id="6.1", marks=pytest.mark.skipif(
        not BOOT_EVERY_KERNEL, reason="CI boots one kernel per architecture: EFISTUB_RESUME_ALL=1 boots this one")),
]


@needs_qemu
@pytest.mark.parametrize("kernel", KERNELS)
def test_a_saved_kernel_boots_to_the_initrds_init(corpus, tmp_path, kernel):
    image = corpus_file(corpus, kernel)
    initrd = corpus_file(corpus, "initrd/initrd-busybox.cpio.gz")
    folder = tmp_path / "state"
    save_kernel_handoff(folder, image, initrd, CMDLINE)
    resume_to_init(folder, CMDLINE)
