"""A gdb remote server on one run (``efistub run --gdb [HOST:]PORT``): gdb's remote serial protocol.

The server listens before the run starts. gdb attaches in the firmware, before the boot manager
calls the image's entry point (the PC is the firmware's return stub), and from then on the run
loop hands the CPU to the server at every stop, between two slices of emulation:

- Breakpoints (``Z0`` software and ``Z1`` hardware, the same thing in an emulator) are unicorn
  code hooks on one address each; the hook stops emulation before the instruction runs.
- A single step (``s``, ``vCont;s``) is a code hook on every address: the first instruction it
  sees runs, and emulation stops before the second. When the first is a service call's trap,
  the firmware handles the call as always (the run loop carries out its transfers), so stepping
  through a stub works, and so does stepping over a call (gdb's ``nexti`` and ``next`` put a
  breakpoint at the return address and continue).
- While the guest runs, a thread waits for gdb's interrupt (Ctrl-C) and stops emulation.
- When the run ends, gdb hears how (an ``O`` packet with the outcome) and the exit code efistub
  run returns (``W``), and the connection closes.

Registers come from the architecture's GdbTarget (arch/gdb_target.py), which gdb reads as its
target description. The firmware's service stubs get an ELF symbol file of their own for the run
(``firmware_symbols``, efistub.symbols.firmware_stubs), so that gdb can tell a stub's caller and
step over service calls. Nothing here prints: the CLI says where gdb connects (``on_ready``).
"""

from __future__ import annotations

import os
import re
import select
import shutil
import socket
import tempfile
import threading
import time

from unicorn import UC_HOOK_CODE, UcError

from . import symbols
from .arch.gdb_target import TARGET_XML
from .errors import InputError
from .status import Status

DEFAULT_HOST = "127.0.0.1"  # --gdb PORT: this machine only; 0.0.0.0 listens on every interface
WILDCARD_HOSTS = ("0.0.0.0", "::")
MAX_PORT = 65535
SIGINT, SIGTRAP = 2, 5  # gdb's signal numbers: an interrupt from gdb, a breakpoint or a step
THREAD_ID = 1  # the one thread gdb sees
PACKET_SIZE = 0x4000  # the largest packet gdb may send (qSupported PacketSize)
MAX_READ = PACKET_SIZE // 2 - 32  # bytes of memory in one reply: hex doubles them, leave room for framing
RECV_SIZE = 4096
INTERRUPT = 0x03  # what gdb sends for Ctrl-C
ESCAPE, ESCAPE_XOR = 0x7D, 0x20  # binary data: '}' then the byte XOR 0x20
ESCAPED = b"#$}*"  # bytes binary replies escape ('*' would start run-length encoding)
EFAULT = "E0e"  # a memory access failed (errno 14)
EINVAL = "E16"  # a malformed packet or a register that does not exist (errno 22)
OK = "OK"
INTERRUPT_RETRY_S = 0.1  # an interrupt that arrived between two slices is repeated this often until taken
KILLED = "ended from gdb (kill)"
PAGE = 0x1000
FIRMWARE_SYMBOLS = "firmware.elf"  # the stubs' symbol file, in a folder of the run's own
_RESUME = object()  # what a packet handler returns when the guest is to run on


def parse_address(text: str) -> tuple[str, int]:
    """``[HOST:]PORT`` as (host, port); HOST a name, an IPv4 address or an IPv6 one in brackets,
    127.0.0.1 when it is left out or empty; PORT 0 lets the system choose one."""
    m = re.fullmatch(r"(?:(\[[0-9A-Fa-f:.]+\]|[^:\[\]]*):)?(\d{1,5})", text.strip())
    if not m or int(m.group(2)) > MAX_PORT:
        raise InputError("--gdb", f"{text!r} is not [HOST:]PORT (examples: 1234, 127.0.0.1:1234, [::1]:1234, "
                                  f"0.0.0.0:1234; PORT 0-{MAX_PORT})")
    host = (m.group(1) or "").strip("[]") or DEFAULT_HOST
    return host, int(m.group(2))


class GdbServer:
    """A gdb server for one run: listens at construction (an InputError when it cannot), serves
    one gdb connection. ``on_ready(server, platform)`` runs once the image is loaded, before the
    server waits for gdb: the moment to say where gdb connects and where the image lies."""

    def __init__(self, host: str, port: int, on_ready=None):
        try:
            family, _, _, _, where = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        except socket.gaierror as e:
            raise InputError("--gdb", f"{host}: {e.strerror}") from None
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.bind(where)
            listener.listen(1)
        except OSError as e:
            listener.close()
            raise InputError("--gdb", f"cannot listen on {_join(host, port)}: {e.strerror}") from None
        self.host, self.port = host, listener.getsockname()[1]
        self.on_ready = on_ready
        self.peer: str | None = None  # where gdb connected from
        self.firmware_symbols: symbols.SymbolFile | None = None  # the stubs' symbols (64-bit guests), from attach()
        self._folder: str | None = None
        self.stopped = False  # a stop is due: the run loop calls wait() before it emulates on
        self.stops = 0  # how often the guest stopped for gdb
        self.waited = 0.0  # seconds the guest spent stopped
        self._listener, self._conn = listener, None
        self._platform = self._target = None
        self._first = True  # the first stop: in the firmware, before the image's entry point
        self._signal, self._reason = SIGTRAP, None
        self._resumed = False  # gdb waits for the stop reply of a c or s
        self._breakpoints: dict[int, list] = {}  # address -> [hook, {Z types}]
        self._skip: int | None = None  # a breakpoint the guest resumes at: it does not stop there at once
        self._step_hook = None
        self._steps = self._step_goal = 0
        self._ack = True
        self._buffer = bytearray()
        self._watcher: threading.Thread | None = None
        self._wake: tuple[int, int] | None = None
        self._gone = False  # gdb closed the connection while the guest ran

    @property
    def address(self) -> str:
        """HOST:PORT as gdb connects to it (this machine for a server on every interface)."""
        return _join("127.0.0.1" if self.host in WILDCARD_HOSTS else self.host, self.port)

    # -- the run loop's side ------------------------------------------------------------
    def attach(self, platform) -> None:
        """Serve the run of ``platform`` (assembled, not yet started); the first stop is due."""
        if platform.arch.GDB_TARGET is None:
            raise InputError("--gdb", f"no gdb target description for {platform.arch.name}")
        self._platform, self._target = platform, platform.arch.GDB_TARGET
        if platform.arch.width == symbols.ELF64_WIDTH:  # (IA32 runs go without: efistub writes no ELF32)
            self._folder = tempfile.mkdtemp(prefix="efistub-gdb-")
            self.firmware_symbols = symbols.firmware_stubs(
                os.path.join(self._folder, FIRMWARE_SYMBOLS), platform.arch.name, platform.fw.stub_address,
                platform.return_address, platform.arch.convention.stub_stride)
        self.stopped = True
        if self.on_ready is not None:
            self.on_ready(self, platform)

    def wait(self, pc: int) -> int:
        """The guest is stopped at ``pc``: serve gdb until it resumes the guest (or detaches, or
        kills the run); the PC to go on at."""
        started = time.perf_counter()
        self._stop_watching()
        uc, cc = self._platform.uc, self._platform.arch.convention
        self.stopped = False
        self._remove_step_hook()
        if self._first:
            uc.reg_write(cc.pc, pc)  # gdb sees the firmware at its return stub
        if self._gone:
            self._detach()
            return pc
        if self._conn is None:
            self._accept()
        self.stops += 1
        try:
            if self._resumed:  # gdb waits to hear why the guest stopped
                self._resumed = False
                self._send(self._stop_reply())
            while True:
                packet = self._receive()
                if packet is None:  # gdb went away: the run goes on without it
                    self._detach()
                    break
                try:
                    reply = self._handle(packet)
                except (ValueError, IndexError):  # a packet that does not parse
                    reply = EINVAL
                if reply is _RESUME:
                    break
                if reply is not None:
                    self._send(reply)
        except OSError:  # the connection broke
            self._detach()
        self.waited += time.perf_counter() - started
        return uc.reg_read(cc.pc)

    def ended(self, outcome: str, details: dict) -> None:
        """The run ended: tell gdb how, and close. A note in the report says what gdb did."""
        success = outcome == "handoff" or outcome == "exit" and details.get("status") == Status.EFI_SUCCESS
        how = outcome + (f" {Status.name_of(details['status'])}" if outcome == "exit" else "")
        if self._platform is not None and self.peer is not None:
            self._platform.fw.note(f"gdb ({self.peer}) stopped the guest {self.stops} times; it waited "
                                   f"{self.waited:.1f} s at those stops, which --timeout does not count")
        self._stop_watching()
        if self._conn is not None and self._resumed and not self._gone:
            try:
                self._send("O" + f"efistub: the run ended: {how}\n".encode().hex())
                self._send(f"W{0 if success else 1:02x}")
            except OSError:
                pass
        self.close()

    def close(self) -> None:
        self._stop_watching()
        for sock in (self._conn, self._listener):
            if sock is not None:
                sock.close()
        self._conn = self._listener = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    # -- hooks: they stop emulation before an instruction ---------------------------------
    def _on_breakpoint(self, uc, address, size, user_data) -> None:
        if address == self._skip:  # the guest resumed here: the instruction runs this once
            self._skip = None
            return
        if self._step_hook is None:
            kinds = self._breakpoints[address][1] if address in self._breakpoints else {0}
            self._stop(SIGTRAP, "swbreak" if 0 in kinds else "hwbreak")
        else:
            self._stop(SIGTRAP, None)
        uc.emu_stop()

    def _on_step(self, uc, address, size, user_data) -> None:
        self._steps += 1
        if self._steps >= self._step_goal:
            self._stop(SIGTRAP, None)
            uc.emu_stop()

    def _stop(self, signal: int, reason: str | None) -> None:
        self._signal, self._reason = signal, reason
        self.stopped = True

    def _remove_step_hook(self) -> None:
        if self._step_hook is not None:
            self._platform.uc.hook_del(self._step_hook)
            self._step_hook = None
            self._platform.uc.ctl_flush_tb()  # no translated code keeps calling the hook

    # -- the connection ---------------------------------------------------------------
    def _accept(self) -> None:
        conn, peer = self._listener.accept()
        self._listener.close()
        self._listener = None
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._conn, self.peer = conn, _join(*peer[:2])

    def _fill(self) -> bool:
        data = self._conn.recv(RECV_SIZE)
        self._buffer += data
        return bool(data)

    def _receive(self) -> str | None:
        """The next packet's body (None: gdb closed the connection); acks and interrupts
        between packets are dropped."""
        while True:
            start = self._buffer.find(b"$")
            end = self._buffer.find(b"#", start) if start >= 0 else -1
            if end >= 0 and len(self._buffer) >= end + 3:
                body, checksum = bytes(self._buffer[start + 1:end]), bytes(self._buffer[end + 1:end + 3])
                del self._buffer[:end + 3]
                good = checksum.lower() == b"%02x" % (sum(body) & 0xFF)
                if self._ack:
                    self._conn.sendall(b"+" if good else b"-")
                if good or not self._ack:
                    return body.decode("latin-1")
                continue
            if start < 0:
                self._buffer.clear()
            if not self._fill():
                return None

    def _send(self, reply: str) -> None:
        body = reply.encode("latin-1")
        packet = b"$" + body + b"#%02x" % (sum(body) & 0xFF)
        while True:
            self._conn.sendall(packet)
            if not self._ack:
                return
            while not self._buffer and self._fill():
                pass
            if not self._buffer:
                raise ConnectionError("gdb closed the connection")
            answer = self._buffer[0]
            del self._buffer[:1]
            if answer != ord("-"):
                return

    # -- interrupts while the guest runs ---------------------------------------------------
    def _start_watching(self) -> None:
        if INTERRUPT in self._buffer:  # it came with the packet that resumed the guest
            self._buffer = self._buffer.replace(bytes([INTERRUPT]), b"")
            self._stop(SIGINT, None)
        self._wake = os.pipe()
        self._watcher = threading.Thread(target=self._watch, args=(self._wake[0],), daemon=True,
                                         name="efistub-gdb-interrupt")
        self._watcher.start()

    def _stop_watching(self) -> None:
        if self._watcher is None:
            return
        os.write(self._wake[1], b"\0")
        self._watcher.join()
        for fd in self._wake:
            os.close(fd)
        self._watcher = self._wake = None

    def _watch(self, wake: int) -> None:
        interrupted = False
        while True:
            ready, _, _ = select.select([self._conn, wake], [], [], INTERRUPT_RETRY_S if interrupted else None)
            if wake in ready:
                return
            if interrupted:  # the stop came between two slices of emulation: ask again
                self._platform.uc.emu_stop()
            if self._conn not in ready:
                continue
            try:
                data = self._conn.recv(RECV_SIZE)
            except OSError:
                data = b""
            if not data:
                self._gone = True
                return
            if INTERRUPT in data:
                data = data.replace(bytes([INTERRUPT]), b"")
                self._stop(SIGINT, None)
                self._platform.uc.emu_stop()
                interrupted = True
            self._buffer += data

    # -- packets ----------------------------------------------------------------------
    def _handle(self, packet: str):
        """The reply to ``packet`` (None: none is due), or _RESUME."""
        kind, rest = packet[:1], packet[1:]
        if kind in "cs":
            return self._resume(kind == "s", rest)
        if kind in "CS":  # continue or step with a signal: the guest has no signals to take
            return self._resume(kind == "S", rest.partition(";")[2])
        if packet.startswith("vCont"):
            return self._vcont(packet)
        if kind == "?":
            return self._stop_reply()
        if kind == "g":
            return "".join(self._register_hex(r) for r in self._target.registers)
        if kind == "G":
            return self._write_registers(rest)
        if kind == "p":
            return self._read_register(rest)
        if kind == "P":
            return self._write_register(rest)
        if kind == "m":
            return self._read_memory(rest)
        if kind in "MX":
            return self._write_memory(kind, rest)
        if kind in "Zz":
            return self._breakpoint(kind == "Z", rest)
        if kind == "D":
            self._send(OK)
            self._detach()
            return _RESUME
        if kind == "k" or packet.startswith("vKill"):
            if kind != "k":
                self._send(OK)
            self._platform.fw.request_stop("error", error=KILLED)
            self._detach()
            return _RESUME
        if kind == "H" or kind == "T":
            return OK
        return self._query(packet)

    def _query(self, packet: str) -> str:
        if packet.startswith("qSupported"):
            return (f"PacketSize={PACKET_SIZE:x};qXfer:features:read+;swbreak+;hwbreak+;QStartNoAckMode+;"
                    "vContSupported+")
        if packet == "QStartNoAckMode":
            self._send(OK)  # the reply is still acknowledged
            self._ack = False
            return None
        if packet.startswith("qXfer:features:read:"):
            annex, _, where = packet[len("qXfer:features:read:"):].partition(":")
            if annex != TARGET_XML:
                return "E00"
            offset, length = (int(x, 16) for x in where.split(","))
            data = self._target.description().encode()
            chunk = data[offset:offset + length]
            return ("l" if offset + length >= len(data) else "m") + _escape(chunk).decode("latin-1")
        replies = {"qAttached": "1", "qC": f"QC{THREAD_ID:x}", "qfThreadInfo": f"m{THREAD_ID:x}",
                   "qsThreadInfo": "l", "vCont?": "vCont;c;C;s;S"}
        if packet in replies or packet.split(":")[0] in replies:
            return replies.get(packet, replies.get(packet.split(":")[0]))
        if packet.startswith("qSymbol"):
            return OK
        return ""  # not supported

    def _stop_reply(self) -> str:
        reason = f"{self._reason}:;" if self._reason else ""
        return f"T{self._signal:02x}thread:{THREAD_ID:x};{reason}"

    def _resume(self, step: bool, address: str = ""):
        uc, cc = self._platform.uc, self._platform.arch.convention
        if address:
            uc.reg_write(cc.pc, int(address, 16))
        pc = uc.reg_read(cc.pc)
        self._skip = pc if pc in self._breakpoints and not self._first else None
        if step:
            self._steps, self._step_goal = 0, 1 if self._first else 2  # from the firmware: stop at the entry
            self._step_hook = uc.hook_add(UC_HOOK_CODE, self._on_step, None, 1, 0)
        self._first = False
        self._resumed = True
        self._start_watching()
        return _RESUME

    def _vcont(self, packet: str):
        """vCont;ACTION[:THREAD]...: the first action for our thread (or for every thread)."""
        for action in packet.split(";")[1:]:
            verb, _, thread = action.partition(":")
            if thread in ("", "-1", f"{THREAD_ID:x}", f"p{THREAD_ID:x}.{THREAD_ID:x}", f"p{THREAD_ID:x}.-1"):
                if verb[:1] in ("c", "C"):
                    return self._resume(False)
                if verb[:1] in ("s", "S"):
                    return self._resume(True)
                return ""
        return EINVAL

    # -- registers -----------------------------------------------------------------------
    def _register_hex(self, register) -> str:
        try:
            return register.get(self._platform.uc).to_bytes(register.bits // 8, "little").hex()
        except (UcError, ValueError, TypeError):
            return "xx" * (register.bits // 8)  # unavailable

    def _read_register(self, rest: str) -> str:
        registers = self._target.registers
        number = int(rest, 16) if rest else -1
        return self._register_hex(registers[number]) if 0 <= number < len(registers) else EINVAL

    def _write_register(self, rest: str) -> str:
        number, _, value = rest.partition("=")
        registers = self._target.registers
        if not number or int(number, 16) >= len(registers):
            return EINVAL
        return self._set(registers[int(number, 16)], bytes.fromhex(value))

    def _write_registers(self, rest: str) -> str:
        data, at = bytes.fromhex(rest), 0
        for register in self._target.registers:
            size = register.bits // 8
            if at + size > len(data):
                break
            value = data[at:at + size]
            at += size
            if register.writable and self._register_hex(register) != value.hex():
                if self._set(register, value) != OK:
                    return EINVAL
        return OK

    def _set(self, register, value: bytes) -> str:
        if len(value) != register.bits // 8:
            return EINVAL
        try:
            register.set(self._platform.uc, int.from_bytes(value, "little"))
        except (UcError, ValueError):
            return EINVAL
        return OK

    # -- memory --------------------------------------------------------------------------
    def _read_memory(self, rest: str) -> str:
        address, length = (int(x, 16) for x in rest.split(","))
        uc, data = self._platform.uc, b""
        length = min(length, MAX_READ)
        while length:  # up to the first address that is not mapped
            piece = min(length, PAGE - address % PAGE)
            try:
                data += bytes(uc.mem_read(address, piece))
            except UcError:
                break
            address, length = address + piece, length - piece
        return data.hex() if data else EFAULT

    def _write_memory(self, kind: str, rest: str) -> str:
        where, _, payload = rest.partition(":")
        address, length = (int(x, 16) for x in where.split(","))
        data = bytes.fromhex(payload) if kind == "M" else _unescape(payload.encode("latin-1"))
        if len(data) != length:
            return EINVAL
        if not data:
            return OK
        uc = self._platform.uc
        try:
            uc.mem_write(address, data)
        except UcError:
            return EFAULT
        uc.ctl_remove_cache(address, address + length)  # code written there runs as written
        return OK

    # -- breakpoints -------------------------------------------------------------------
    def _breakpoint(self, insert: bool, rest: str) -> str:
        kind, address, *_ = rest.split(",")
        if kind not in ("0", "1"):
            return ""  # watchpoints: gdb single-steps and compares instead
        address, uc = int(address, 16), self._platform.uc
        entry = self._breakpoints.get(address)
        if insert:
            if entry is None:
                entry = self._breakpoints[address] = [uc.hook_add(UC_HOOK_CODE, self._on_breakpoint, None, address,
                                                                  address), set()]
            entry[1].add(int(kind))
        elif entry is not None:
            entry[1].discard(int(kind))
            if not entry[1]:
                uc.hook_del(entry[0])
                del self._breakpoints[address]
        return OK

    def _detach(self) -> None:
        """gdb is gone: no breakpoint or step stops the guest again; the run goes on."""
        uc = self._platform.uc
        for hook, _ in self._breakpoints.values():
            uc.hook_del(hook)
        self._breakpoints.clear()
        self._remove_step_hook()
        self.stopped = False
        self._skip = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _escape(data: bytes) -> bytes:
    out = bytearray()
    for byte in data:
        if byte in ESCAPED:
            out += bytes([ESCAPE, byte ^ ESCAPE_XOR])
        else:
            out.append(byte)
    return bytes(out)


def _unescape(data: bytes) -> bytes:
    out, escaped = bytearray(), False
    for byte in data:
        if escaped:
            out.append(byte ^ ESCAPE_XOR)
            escaped = False
        elif byte == ESCAPE:
            escaped = True
        else:
            out.append(byte)
    return bytes(out)
