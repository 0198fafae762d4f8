"""efistub run --gdb: gdb-multiarch drives runs in batch mode on x86_64, aarch64 and riscv64 (a
breakpoint at the entry point, steps, registers, memory, stepping over and through a service call,
the hand-off, the symbol files); a small client of the remote protocol checks what batch gdb does
not do (an interrupt); bad input; the symbol files' placement."""

from __future__ import annotations

import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from efistub import arch as arches
from efistub import engine, gdbstub, symbols
from efistub.errors import InputError
from efistub.layouts import elf
from efistub.loader import read_image

GDB = shutil.which("gdb-multiarch")
needs_gdb = pytest.mark.skipif(GDB is None, reason="gdb-multiarch is not installed (apt-get install gdb-multiarch)")
GUESTS = Path(__file__).parent / "guests"
# gdb's name of each architecture, the register of the entry point's second argument (the system
# table), the register a service's status comes back in
ARCHES = {"x86_64": ("i386:x86-64", "rdx", "rax"), "aarch64": ("aarch64", "x1", "x0"),
          "riscv64": ("riscv:rv64", "a1", "a0")}
SYSTEM_TABLE_SIGNATURE = 0x5453595320494249  # "IBI SYST"
CALLS = ("call", "blr", "jalr", "c.jalr")  # the mnemonics of an indirect call
SAFETY_S = 120  # a run or a gdb that hangs fails its test instead of hanging the suite
GREETING = "Hello from efistub guest"


def efistub(*args, timeout=SAFETY_S):
    return subprocess.run([sys.executable, "-m", "efistub", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


class Run:
    """``efistub run --gdb 127.0.0.1:0 ...`` (the system picks a free port), up to the moment it
    says where gdb connects: the printed command, the address, the load address and entry point."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([sys.executable, "-m", "efistub", "run", "--gdb", "127.0.0.1:0",
                                      *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.said = []
        while not self.said or not self.said[-1].startswith("  gdb-multiarch"):
            line = self.proc.stderr.readline()
            if not line:
                out, err = self.proc.communicate(timeout=SAFETY_S)
                pytest.fail(f"efistub ended before gdb attached: {''.join(self.said)}{err}{out}")
            self.said.append(line)
        self.command = shlex.split(self.said[-1])
        header = self.said[-2]
        self.address = re.search(r"waiting on (\S+) ", header).group(1)
        self.load = int(re.search(r"image at (0x[0-9a-f]+)", header).group(1), 16)
        self.entry = int(re.search(r"entry point (0x[0-9a-f]+)", header).group(1), 16)

    def gdb(self, *commands, arch: str | None = None) -> str:
        """gdb in batch mode: the printed command (symbols, then target remote), then ``commands``."""
        words = [GDB, "-nx", "-batch"] + (["-ex", f"set architecture {arch}"] if arch else []) + self.command[1:]
        for command in commands:
            words += ["-ex", command]
        return subprocess.run(words, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=SAFETY_S).stdout

    def finish(self) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=SAFETY_S)
        return self.proc.returncode, out, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture
def runs():
    started = []

    def start(*args) -> Run:
        started.append(Run(*args))
        return started[-1]

    yield start
    for run in started:
        run.kill()


def code_at(image: Path, load: int, address: int, count: int):
    """The first ``count`` instructions at ``address`` of ``image`` loaded at ``load``."""
    pe = read_image(str(image))
    data = bytes(pe.layout(load)[address - load:address - load + 64])
    return list(arches.for_machine(pe.machine)().disassembler().disasm(data, address))[:count], data


def pc_of(out: str) -> int:
    return int(re.findall(r"^pc\s+(0x[0-9a-f]+)", out, re.M)[-1], 16)


@needs_gdb
@pytest.mark.parametrize("arch", ARCHES)
def test_break_at_the_entry_point_step_and_read_registers_and_memory(runs, arch):
    image = GUESTS / arch / "hello.efi"
    run = runs(image)
    gdb_arch, table, _ = ARCHES[arch]
    (first, _), code = code_at(image, run.load, run.entry, 2)
    out = run.gdb(f"break *0x{run.entry:x}", "continue", f"x/gx ${table}", "stepi", "info registers pc", "x/4xb $pc",
                  "continue", arch=gdb_arch)
    assert f"Breakpoint 1, 0x{run.entry:016x} in ?? ()" in out, out
    assert re.search(rf":\s+0x{SYSTEM_TABLE_SIGNATURE:016x}$", out, re.M), out  # the system table, via a register
    assert pc_of(out) == run.entry + first.size, out
    expected = "\t".join(f"0x{b:02x}" for b in code[first.size:first.size + 4])
    assert f"0x{run.entry + first.size:x}:\t{expected}" in out, out
    assert "[Inferior 1 (Remote target) exited normally]" in out, out
    code, stdout, _ = run.finish()
    assert code == 0 and GREETING in stdout and "exit status   EFI_SUCCESS" in stdout, stdout
    assert re.search(r"note +gdb \(127\.0\.0\.1:\d+\) stopped the guest \d+ times", stdout), stdout


@needs_gdb
@pytest.mark.parametrize("how", ["nexti", "stepi"])
@pytest.mark.parametrize("arch", ARCHES)
def test_stepping_over_and_through_a_service_call(runs, arch, how):
    """nexti over the call of OutputString, or stepi into its stub, through the trap (the firmware
    runs the service) and back. On riscv64 gdb needs the image's symbols to find the calling
    frame of a stub (its prologue analysis fails without a symbol), so that run has them."""
    image = GUESTS / arch / "hello.efi"
    run = runs(image, *(["--symbols", GUESTS / arch / "hello.elf"] if arch == "riscv64" else []))
    instructions, _ = code_at(image, run.load, run.entry, 16)
    call = next(i for i in instructions if i.mnemonic in CALLS)
    after = call.address + call.size
    _, _, result = ARCHES[arch]
    if how == "nexti":
        steps = ["nexti", "info registers pc"]
    else:
        steps = ["stepi", "bt", "stepi", "info registers pc", "stepi", "info registers pc"]
    out = run.gdb(f"break *0x{call.address:x}", "continue", *steps, f"p/x ${result}", "continue")
    assert f"Breakpoint 1, 0x{call.address:016x}" in out, out
    if how == "stepi":  # in the stub, which the firmware's symbol file names, called from the image
        assert re.search(rf"#0 +0x[0-9a-f]+ in TextOutput\.OutputString \(\)\n#1 +0x0*{after:x} in ", out), out
    assert pc_of(out) == after, out
    assert re.search(r"^\$1 = 0x0$", out, re.M), out  # OutputString returned EFI_SUCCESS
    assert "[Inferior 1 (Remote target) exited normally]" in out, out
    code, stdout, _ = run.finish()
    assert code == 0 and GREETING in stdout, stdout
    assert "calls         1: TextOutput.OutputString 1" in stdout, stdout


@needs_gdb
def test_break_at_the_entry_point_step_and_continue_to_the_handoff(runs):
    image = GUESTS / "x86_64" / "handoff.efi"
    run = runs(image)
    (first, _), _ = code_at(image, run.load, run.entry, 2)
    out = run.gdb(f"break *0x{run.entry:x}", "continue", "stepi", "info registers pc", "continue",
                  arch="i386:x86-64")
    assert f"Breakpoint 1, 0x{run.entry:016x} in ?? ()" in out, out
    assert pc_of(out) == run.entry + first.size, out
    assert "efistub: the run ended: handoff" in out and "exited normally" in out, out
    code, stdout, _ = run.finish()
    assert code == 0 and "--- efistub: handoff (x86_64) ---" in stdout, stdout


@needs_gdb
def test_the_image_s_own_dwarf_gives_gdb_functions_lines_and_arguments(runs):
    image = GUESTS / "x86_64" / "hello-dwarf.efi"
    run = runs(image)
    assert f"add-symbol-file {image.resolve()} 0x{run.load + 0x1000:x} -s .rdata 0x{run.load + 0x2000:x}" \
        in run.said[-1], run.said
    out = run.gdb("break efi_main", "continue", "next", "info line *$pc", "continue")
    assert re.search(r"Breakpoint 1, efi_main \(image=0x[0-9a-f]+, st=0x[0-9a-f]+\) at \S*hello\.c:7", out), out
    assert 'Line 8 of "hello.c"' in out, out  # next stepped over the service call, to line 8
    assert "exited normally" in out, out
    assert run.finish()[0] == 0


@needs_gdb
def test_an_elf_symbol_file_is_placed_where_the_image_lies(runs):
    elf_file = GUESTS / "riscv64" / "hello.elf"
    run = runs(GUESTS / "riscv64" / "hello.efi", "--symbols", elf_file)
    assert "placed by its entry point at the image's" in run.said[-2], run.said
    out = run.gdb("break efi_main", "continue", "next", "info line *$pc", "bt", "continue")
    assert "Breakpoint 1, efi_main (image=" in out and "hello.c:7" in out, out
    assert 'Line 8 of "./hello.c"' in out, out
    assert re.search(r"^#1 +0x[0-9a-f]+ in firmware_return \(\)$", out, re.M), out  # the firmware called it
    assert run.finish()[0] == 0


KIMAGE_VADDR = 0xFFFF800080000000  # where an arm64 vmlinux is linked


def fake_vmlinux(path: Path, image: Path) -> Path:
    """An ELF file laid out like an arm64 vmlinux around ``image``: the Image from _text (its first
    byte) at the kernel's link address, the EFI stub's entry point as __efistub_efi_pe_entry, and
    the ELF entry point at _text (ENTRY(_text) in vmlinux.lds)."""
    pe = read_image(str(image))
    symbols.write_elf(str(path), "aarch64", [(".head.text", KIMAGE_VADDR, bytes(pe.layout(0)))], entry=KIMAGE_VADDR,
                      functions=[("_text", KIMAGE_VADDR, pe.entry_rva),
                                 ("__efistub_efi_pe_entry", KIMAGE_VADDR + pe.entry_rva, 0x24)])
    return path


@needs_gdb
def test_a_kernel_s_efi_stub_with_its_vmlinux(runs, tmp_path):
    image = GUESTS / "aarch64" / "hello.efi"
    run = runs(image, "--symbols", fake_vmlinux(tmp_path / "vmlinux", image))
    assert "placed by its symbol __efistub_efi_pe_entry at the entry point" in run.said[-2], run.said
    assert f"vmlinux -s .head.text 0x{run.load:x}'" in run.said[-1], run.said  # _text at the image's start
    out = run.gdb("break *__efistub_efi_pe_entry", "continue", "continue")
    assert f"Breakpoint 1, 0x{run.entry:016x} in __efistub_efi_pe_entry ()" in out, out
    assert run.finish()[0] == 0


@needs_gdb
def test_time_stopped_in_gdb_does_not_count_against_the_timeout(runs):
    run = runs(GUESTS / "x86_64" / "hello.efi", "--timeout", "1")
    out = run.gdb(f"break *0x{run.entry:x}", "continue", "shell sleep 1.5", "continue")
    assert "exited normally" in out, out
    code, stdout, _ = run.finish()
    assert code == 0 and "exit status   EFI_SUCCESS" in stdout, stdout


@needs_gdb
def test_gdb_that_detaches_leaves_the_run_to_end_by_itself(runs):
    run = runs(GUESTS / "x86_64" / "hello.efi")
    out = run.gdb(f"break *0x{run.entry:x}", "continue", "stepi")  # batch mode detaches at its end
    assert "[Inferior 1 (Remote target) detached]" in out, out
    code, stdout, _ = run.finish()
    assert code == 0 and GREETING in stdout


@needs_gdb
def test_kill_from_gdb_ends_the_run(runs):
    run = runs(GUESTS / "aarch64" / "hello.efi")
    out = run.gdb(f"break *0x{run.entry:x}", "continue", "kill")
    assert "killed" in out, out
    code, stdout, _ = run.finish()
    assert code == 1 and "--- efistub: error (aarch64) ---" in stdout and gdbstub.KILLED in stdout, stdout
    assert GREETING not in stdout


def test_ctrl_c_while_waiting_for_gdb_ends_the_run_in_one_line_and_leaves_no_files(runs):
    run = runs(GUESTS / "aarch64" / "hello.efi")
    firmware = Path(re.search(r"add-symbol-file (\S+/firmware\.elf)", run.said[-1]).group(1))
    assert firmware.is_file()
    run.proc.send_signal(signal.SIGINT)
    code, _, err = run.finish()
    assert code == 130 and err == "efistub: interrupted: the run under --gdb ended without a report\n", err
    assert not firmware.parent.exists()


# -- the protocol without gdb ---------------------------------------------------------------
class Client:
    """Just enough of gdb's side of the remote protocol: packets with acknowledgements."""

    def __init__(self, address: str):
        host, _, port = address.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=SAFETY_S)
        self.data = b""

    def send(self, body: str) -> None:
        self.sock.sendall(b"$%s#%02x" % (body.encode("latin-1"), sum(body.encode("latin-1")) & 0xFF))

    def receive(self) -> str:
        while True:
            m = re.search(rb"\$([^#]*)#[0-9a-f]{2}", self.data)
            if m:
                self.data = self.data[m.end():]
                self.sock.sendall(b"+")
                return m.group(1).decode("latin-1")
            chunk = self.sock.recv(4096)
            assert chunk, "the server closed the connection"
            self.data += chunk

    def ask(self, body: str) -> str:
        self.send(body)
        return self.receive()


@pytest.mark.parametrize("arch", ARCHES)
def test_the_target_description_describes_the_g_packet(runs, arch):
    run = runs(GUESTS / arch / "hello.efi")
    client = Client(run.address)
    assert "qXfer:features:read+" in client.ask("qSupported:swbreak+") and client.ask("?").startswith("T05")
    xml, offset = "", 0
    while True:
        reply = client.ask(f"qXfer:features:read:target.xml:{offset:x},200")
        xml, offset = xml + reply[1:], offset + len(reply) - 1
        if reply[0] == "l":
            break
    target = ET.fromstring(xml)
    assert target.find("architecture").text == ARCHES[arch][0]
    sizes = [int(r.get("bitsize")) // 8 for r in target.iter("reg")]
    assert [int(r.get("regnum")) for r in target.iter("reg")] == list(range(len(sizes)))
    assert len(client.ask("g")) == 2 * sum(sizes)
    assert client.ask("m0,8") == gdbstub.EFAULT  # page 0 is not mapped
    assert client.ask("mzz,8") == client.ask(f"p{len(sizes):x}") == gdbstub.EINVAL  # no such address, register
    assert client.ask("Z2,1000,8") == ""  # watchpoints are not supported: gdb checks by stepping
    assert client.ask("qAttached") == "1"
    client.send("D")
    assert client.receive() == "OK"
    assert run.finish()[0] == 0


def test_an_interrupt_from_gdb_stops_a_running_guest(runs):
    run = runs(GUESTS / "x86_64" / "bench.efi", "--cmdline", "none 100000000000", "--timeout", "60")
    client = Client(run.address)
    client.ask("qSupported")
    client.send("c")
    client.sock.sendall(bytes([gdbstub.INTERRUPT]))
    assert client.receive().startswith(f"T{gdbstub.SIGINT:02x}")
    pc = int.from_bytes(bytes.fromhex(client.ask("p10")), "little")  # rip: register 16 of i386:x86-64
    assert run.load <= pc < run.load + read_image(str(GUESTS / "x86_64" / "bench.efi")).size_of_image
    client.send("k")
    code, stdout, _ = run.finish()
    assert code == 1 and gdbstub.KILLED in stdout
    # the stock engine can stop inside an instruction, which then runs twice (docs/engine.md, change 3)
    assert any("on the stock engine, an interrupt" in line for line in run.said) == (engine.loaded().engine == "stock")


# -- bad input ------------------------------------------------------------------------------
def test_run_and_boot_say_how_to_debug():
    for command in ("run", "boot"):
        help_text = efistub(command, "--help").stdout
        assert "--gdb [HOST:]PORT" in help_text and "--symbols FILE" in help_text



@pytest.mark.parametrize("address", ["nonsense", "127.0.0.1:", "localhost:99999", "1:2:3", "[::1]"])
def test_an_unparseable_address_is_a_one_line_error(address):
    result = efistub("run", GUESTS / "x86_64" / "hello.efi", "--gdb", address)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"efistub: error: --gdb: {address!r} is not [HOST:]PORT")


def test_a_port_in_use_is_a_one_line_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = efistub("run", GUESTS / "x86_64" / "hello.efi", "--gdb", f"127.0.0.1:{port}")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"efistub: error: --gdb: cannot listen on 127.0.0.1:{port}: "), result.stderr


@pytest.mark.parametrize("args, problem", [
    (["--symbols", GUESTS / "riscv64" / "hello.elf"], "--symbols: needs --gdb"),
    (["--gdb", "0", "--symbols", GUESTS / "x86_64" / "hello.efi"], "not an ELF file"),
    (["--gdb", "0", "--symbols", GUESTS / "riscv64" / "hello.elf"], "is an ELF file for machine 243, not for"),
])
def test_bad_symbols_are_a_one_line_error(args, problem):
    result = efistub("run", GUESTS / "x86_64" / "hello.efi", *args)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and problem in result.stderr, result.stderr


def test_an_elf_file_of_another_program_does_not_match():
    image = read_image(str(GUESTS / "riscv64" / "misc.efi"))
    with pytest.raises(InputError, match="does not match misc.efi"):
        symbols.from_elf(str(GUESTS / "riscv64" / "hello.elf"), image, 0x80000000)


# -- the symbol files --------------------------------------------------------------------------
def test_parse_address():
    assert gdbstub.parse_address("1234") == ("127.0.0.1", 1234)
    assert gdbstub.parse_address(":1234") == ("127.0.0.1", 1234)
    assert gdbstub.parse_address("0.0.0.0:0") == ("0.0.0.0", 0)
    assert gdbstub.parse_address("[::1]:1234") == ("::1", 1234)
    assert gdbstub.parse_address("build-host:1234") == ("build-host", 1234)


def test_an_elf_file_moves_by_the_offset_of_its_entry_point():
    image = read_image(str(GUESTS / "riscv64" / "hello.efi"))
    found = symbols.from_elf(str(GUESTS / "riscv64" / "hello.elf"), image, 0x80000000)
    f = symbols.ElfFile(str(GUESTS / "riscv64" / "hello.elf"))
    offset = 0x80000000 + image.entry_rva - f.entry
    assert found.sections[0] == (".text", next(a for n, a, _ in f.allocated() if n == ".text") + offset)
    assert dict(found.sections) == {name: address + offset for name, address, _ in f.allocated()}


def test_a_debug_file_without_code_is_placed_by_its_entry_point(tmp_path):
    """objcopy --only-keep-debug leaves the sections without contents (SHT_NOBITS)."""
    source = GUESTS / "riscv64" / "hello.elf"
    data = bytearray(source.read_bytes())
    f = symbols.ElfFile(str(source))
    header = elf.Elf64Header.parse(data)
    for i, (name, s) in enumerate(zip(f.names, f.sections)):
        if s.sh_flags & elf.SHF_ALLOC:
            at = header.e_shoff + i * elf.Elf64SectionHeader.sizeof() + 4  # sh_type
            data[at:at + 4] = elf.SHT_NOBITS.to_bytes(4, "little")
    debug = tmp_path / "hello.debug"
    debug.write_bytes(data)
    image = read_image(str(GUESTS / "riscv64" / "hello.efi"))
    found = symbols.from_elf(str(debug), image, 0x80000000)
    assert "not checked" in found.how
    assert dict(found.sections)[".text"] == 0x80000000 + image.entry_rva + f.symbol("efi_main") - f.entry


def test_the_firmware_symbol_file_names_every_stub(tmp_path):
    path = tmp_path / "firmware.elf"
    stubs = {"AllocatePool": 0x7FFF0000, "TextOutput.OutputString": 0x7FFF0008}
    found = symbols.firmware_stubs(str(path), "aarch64", stubs, 0x7FFF0010, 8)
    f = symbols.ElfFile(str(path))
    assert f.machine == elf.EM_AARCH64 and found.sections == [(".text", 0x7FFF0000)]
    assert {name: f.symbol(name) for name in (*stubs, symbols.FIRMWARE_RETURN)} == {
        **stubs, symbols.FIRMWARE_RETURN: 0x7FFF0010 - 1}  # gdb looks a caller up at its return address - 1
    assert f.code(0x7FFF0000, 4) is None  # no contents: gdb reads the code from the target
