"""A run: load an image into a fresh emulated machine, run it to an outcome, report.

Guest RAM is mapped read-write without execute. Only the executable sections of the
loaded image and the firmware's stubs may run. The first instruction fetch from
memory without execute is, after a successful ExitBootServices, the hand-off to the
kernel; before it, a fetch inside the loaded image (code the image placed in its
own data) is allowed by granting execute, and anything else is a fault.
"""

from __future__ import annotations

import os
import threading
import time

from unicorn import (
    UC_ERR_FETCH_PROT, UC_HOOK_CODE, UC_HOOK_MEM_UNMAPPED, UC_MEM_FETCH_PROT, UC_MEM_FETCH_UNMAPPED, UC_MEM_READ_PROT, UC_MEM_READ_UNMAPPED,
    UC_MEM_WRITE_PROT, UC_MEM_WRITE_UNMAPPED, UC_PROT_ALL, UC_PROT_EXEC, UC_PROT_READ, UC_PROT_WRITE, UcError,
)

from . import arch as arches
from . import engine, guids
from .dispatch import Dispatcher
from .errors import EfiError, InputError
from .firmware import Firmware, Options
from .layouts import efi
from .loader import PeImage, read_image
from .memory import AllocateType, GuestMemory, MemoryType, pages_for
from .protocols import console, initrd, loaded_image, rng
from .registry import Service, load_all, unimplemented
from .report import Report
from .tables import build_firmware_tables

PAGE = efi.PAGE_SIZE
RAM_START = PAGE  # page 0 stays unmapped, so NULL dereferences fault
MIN_MEMORY = 64 << 20
MAX_MEMORY = 64 << 30
STACK_SIZE = 1 << 20
# Guest RAM is mapped in chunks: unicorn copies a whole region when mem_protect splits it.
RAM_CHUNK = 64 << 20
MAX_ADDRESS = 0xFFFFFFFFFFFFFFFF
RUN_UNTIL = MAX_ADDRESS  # an address the guest never reaches: run until stopped
ACCESS_NAMES = {
    UC_MEM_READ_UNMAPPED: "read of unmapped memory", UC_MEM_WRITE_UNMAPPED: "write to unmapped memory",
    UC_MEM_FETCH_UNMAPPED: "instruction fetch from unmapped memory",
    UC_MEM_READ_PROT: "read of protected memory", UC_MEM_WRITE_PROT: "write to read-only memory",
    UC_MEM_FETCH_PROT: "instruction fetch from non-executable memory",
}


def choose_dispatch(requested: str | None) -> str:
    """``native`` or ``python``: the request, else EFISTUB_DISPATCH, else native when it is built."""
    from . import native

    mode = requested or os.environ.get("EFISTUB_DISPATCH") or ("native" if native.available() else "python")
    if mode not in ("native", "python"):
        raise InputError("--dispatch", f"unknown dispatch {mode!r} (native or python)")
    if mode == "native" and not native.available():
        raise InputError("--dispatch", native.UNAVAILABLE)
    return mode


def map_ram(uc, start: int, end: int, special: list[tuple[int, int, int]]) -> None:
    """Map [start, end) read-write without execute, except the ``special`` (start, end, perms) ranges.

    Plain RAM is mapped in pieces of at most RAM_CHUNK, so that a later change of
    permissions (execute granted on an image) splits, and so copies, one piece only.
    """
    cuts = sorted({start, end} | {b for s, e, _ in special for b in (s, e)})
    perms_at = {s: p for s, _, p in special}
    for lo, hi in zip(cuts, cuts[1:]):
        perms = perms_at.get(lo, UC_PROT_READ | UC_PROT_WRITE)
        while lo < hi:
            top = min(hi, (lo // RAM_CHUNK + 1) * RAM_CHUNK)
            uc.mem_map(lo, top - lo, perms)
            lo = top


def service_slots() -> list[Service]:
    """Every stub slot: the table members in table order, then the protocol functions."""
    registry = load_all()
    names = list(efi.BOOT_SERVICES) + list(efi.RUNTIME_SERVICES)
    names += sorted(set(registry) - set(names))
    runtime = set(efi.RUNTIME_SERVICES)
    return [registry.get(n) or unimplemented(n, boot=n not in runtime) for n in names]


class Machine:
    """One run of one EFI image."""

    def __init__(self, image_path: str, options: Options | None = None, console_sink=None, trace=None):
        self.options = options or Options()
        self.dispatch_mode = choose_dispatch(self.options.dispatch)
        if not MIN_MEMORY <= self.options.memory <= MAX_MEMORY or self.options.memory % PAGE:
            raise InputError("--mem", f"{self.options.memory} bytes: guest RAM must be a multiple of 4 KiB "
                                      f"between {MIN_MEMORY >> 20} MiB and {MAX_MEMORY >> 30} GiB")
        if self.options.timeout <= 0:
            raise InputError("--timeout", "must be positive")
        self.image: PeImage = read_image(image_path, arches.supported())
        self.console_sink = console_sink
        self.trace = trace
        self._invalid: tuple[int, int, int] | None = None

    # -- set-up -------------------------------------------------------------------------
    def _boot(self):
        opts, image = self.options, self.image
        fw = self.fw = Firmware(None, RAM_START, opts.memory, opts, self.console_sink)
        arch = self.arch = arches.for_machine(image.machine)(fw)
        slots = service_slots()

        # Place the stubs and the image first, so that RAM is mapped with its final
        # permissions and never split later (unicorn copies a region it splits).
        stub_bytes = (len(slots) + 1) * arch.STUB_STRIDE
        stub_base = fw.allocate_pages(MemoryType.EfiRuntimeServicesCode, pages_for(stub_bytes))
        stub_end = stub_base + pages_for(stub_bytes) * PAGE
        base = self._place_image(fw)
        executable = [(stub_base, stub_end, UC_PROT_READ | UC_PROT_EXEC)]
        for rva, size in image.executable_ranges():
            start = (base + rva) // PAGE * PAGE
            executable.append((start, -(-(base + rva + size) // PAGE) * PAGE, UC_PROT_ALL))
        uc = self.uc = arch.create_engine()
        map_ram(uc, RAM_START, opts.memory, executable)
        fw.mem = GuestMemory(uc)

        fw.mem.write(stub_base, b"".join(arch.stub() for _ in slots) + arch.stub(returns_entry=True))
        fw.stub_address = {s.name: stub_base + i * arch.STUB_STRIDE for i, s in enumerate(slots)}
        return_address = stub_base + len(slots) * arch.STUB_STRIDE
        for rva, data in image.pieces(base):  # RAM is freshly mapped: the rest is zero
            fw.mem.write(base + rva, data)
        fw.loaded_images.append((base, pages_for(image.size_of_image) * PAGE))

        build_firmware_tables(fw, console.install(fw))
        fw.image_handle = loaded_image.install(fw, image, base, opts.cmdline)
        if opts.initrd is not None:
            initrd.install(fw, opts.initrd)
        if opts.rng:
            rng.install(fw)
        arch.install_protocols(fw)
        if opts.dtb is not None:
            fw.set_configuration_table(guids.DEVICE_TREE_TABLE, fw.store(MemoryType.EfiACPIReclaimMemory, opts.dtb))
        stack = fw.allocate_pages(MemoryType.EfiBootServicesData, STACK_SIZE // PAGE)

        self.dispatcher = Dispatcher(fw, slots, self.trace)
        self.native = None
        if self.dispatch_mode == "native":
            from .native import NativeDispatch

            self.native = NativeDispatch(uc, arch, stub_base, slots, self.dispatcher, self._dispatch)
        else:
            arch.install_dispatch(uc, stub_base, len(slots), self.dispatcher.arg_count, self._dispatch)
        # Unmapped accesses can only fall outside RAM: hook just there. A memory hook that
        # covers RAM would keep every guest store on unicorn's slow path.
        uc.hook_add(UC_HOOK_MEM_UNMAPPED, self._on_invalid, None, 0, RAM_START - 1)
        uc.hook_add(UC_HOOK_MEM_UNMAPPED, self._on_invalid, None, opts.memory, MAX_ADDRESS)
        kernel = arch.kernel_entry_offset(image.data[:0x1000])
        if kernel is not None:  # a kernel that runs where it was loaded enters without leaving the image
            self.kernel_entry = base + kernel
            uc.hook_add(UC_HOOK_CODE, self._on_kernel_entry, None, self.kernel_entry, self.kernel_entry)
        self.entry = base + image.entry_rva
        arch.start(uc, self.entry, stack + STACK_SIZE, return_address, (fw.image_handle, fw.system_table))
        self.load_address = base

    def _place_image(self, fw: Firmware) -> int:
        """Allocate the image's LoaderCode range: at its ImageBase when that is free RAM."""
        image = self.image
        pages = pages_for(image.size_of_image)
        try:
            return fw.allocate_pages(MemoryType.EfiLoaderCode, pages, AllocateType.AllocateAddress, image.image_base)
        except EfiError:
            pass
        try:
            base = fw.allocate_pages(MemoryType.EfiLoaderCode, pages, align=image.alignment)
        except EfiError:
            raise InputError(image.path, f"SizeOfImage 0x{image.size_of_image:x} does not fit in "
                                         f"{self.options.memory >> 20} MiB of guest RAM") from None
        if not image.has_relocations and image.image_base:
            fw.note(f"image has no base relocations; loaded at 0x{base:x} instead of ImageBase "
                    f"0x{image.image_base:x}")
        return base

    # -- hooks ------------------------------------------------------------------------------
    def _dispatch(self, slot: int | None, args: list[int]) -> int:
        """A service call from either dispatch path; returns the guest's return value."""
        uc, fw = self.uc, self.fw
        result = 0
        try:
            if slot is None:
                fw.request_stop("fault", reason="hypercall outside the firmware's service stubs")
            else:
                result = self.dispatcher.call(slot, args, lambda i: self.arch.read_arg(uc, i))
        except BaseException as e:  # never let an exception escape into the engine
            import traceback

            fw.request_stop("error", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
        if fw.stop is not None:
            uc.emu_stop()
        return result

    def _on_kernel_entry(self, uc, address, size, user_data):
        if not self.fw.state.boot_services_active:
            self.fw.request_stop("handoff", entry=address)
            uc.emu_stop()

    def _on_invalid(self, uc, access, address, size, value, user_data):
        self._invalid = (access, address, size)
        return False

    # -- the run ---------------------------------------------------------------------------
    def run(self) -> Report:
        started = time.perf_counter()
        cpu_started = time.process_time()
        self._boot()
        boot_done = time.perf_counter()
        uc, fw, arch = self.uc, self.fw, self.arch
        deadline = boot_done + self.options.timeout
        pc = self.entry
        outcome, details = None, {}
        while outcome is None:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                outcome = "timeout"
                continue
            self._invalid = None
            error = None
            # Our own watchdog: unicorn's timeout thread wakes every 2 us and takes a core.
            watchdog = threading.Timer(remaining, uc.emu_stop)
            watchdog.start()
            try:
                uc.emu_start(pc, RUN_UNTIL)
            except UcError as e:
                error = e
            finally:
                watchdog.cancel()
            if fw.stop is not None:
                outcome, details = fw.stop.outcome, fw.stop.details
                if outcome == "handoff":
                    details = {"entry": details["entry"]}
            elif error is not None and error.errno == UC_ERR_FETCH_PROT:
                address = arch.pc(uc)  # unicorn stops with the PC at the address it could not fetch
                if not fw.state.boot_services_active:
                    outcome, details = "handoff", {"entry": address}
                elif (region := fw.in_loaded_image(address)) is not None:
                    uc.mem_protect(region[0], region[1], UC_PROT_ALL)
                    fw.note(f"the image executed its own data at 0x{address:x}; execute granted on the image")
                    pc = address
                else:
                    outcome, details = "fault", self._fault(ACCESS_NAMES[UC_MEM_FETCH_PROT])
            elif error is not None:
                outcome, details = "fault", self._fault(str(error))
            elif time.perf_counter() >= deadline:
                outcome = "timeout"
            elif (hlt := arch.halted_at(uc)) is not None:
                outcome, details = "fault", self._fault("the guest halted (hlt)", pc=hlt)
            else:
                outcome, details = "fault", self._fault("emulation stopped for no known reason")
        if outcome == "timeout":
            details = self._fault(f"still running after --timeout {self.options.timeout:g} s")
        finished = time.perf_counter()
        report = self._report(outcome, details)
        report.dispatch = self.dispatch_mode
        report.engine = engine.loaded().engine
        report.timing = {"setup_s": round(boot_done - started, 4), "run_s": round(finished - boot_done, 4),
                         "total_s": round(finished - started, 4),
                         "cpu_s": round(time.process_time() - cpu_started, 4)}
        return report

    def _fault(self, reason: str, pc: int | None = None) -> dict:
        """Where the guest stopped: reason, PC, instruction, registers, last service calls."""
        uc, arch = self.uc, self.arch
        pc = arch.pc(uc) if pc is None else pc
        fault = {"reason": reason, "pc": pc, "registers": arch.registers(uc)}
        if self._invalid is not None:
            access, address, size = self._invalid
            fault["access"] = {"kind": ACCESS_NAMES.get(access, str(access)), "address": address, "size": size}
        try:
            code = bytes(uc.mem_read(pc, 16))
            insn = next(arch.disassembler().disasm(code, pc), None)
            fault["instruction"] = f"{insn.mnemonic} {insn.op_str}".strip() if insn else f"(undecodable) {code.hex()}"
        except Exception:
            fault["instruction"] = "(pc is not in memory)"
        region = self.fw.in_loaded_image(pc)
        if region is not None:
            fault["image_offset"] = pc - region[0]
        fault["last_calls"] = [c.as_dict() for c in self.dispatcher.calls[-10:]]
        return fault

    def _report(self, outcome: str, details: dict) -> Report:
        fw, image = self.fw, self.image
        report = Report(
            image=os.path.abspath(image.path), arch=self.arch.name, outcome=outcome,
            console="".join(fw.console), calls=self.dispatcher.calls, notes=fw.notes,
            image_info={"load_address": self.load_address, "entry": self.entry, "size": image.size_of_image,
                        "image_base": image.image_base, "has_relocations": image.has_relocations},
            options={"cmdline": self.options.cmdline, "memory": self.options.memory, "seed": self.options.seed,
                     "initrd_size": None if self.options.initrd is None else len(self.options.initrd),
                     "rng": self.options.rng},
        )
        if outcome == "exit":
            from .status import Status

            report.exit_status = Status.name_of(details["status"])
            report.exit_data = details.get("exit_data")
            if details.get("returned"):
                report.notes.append("the image's entry point returned")
        elif outcome == "handoff":
            report.handoff = self._handoff(details["entry"])
        elif outcome == "fault":
            report.fault = details
        elif outcome == "timeout":
            report.timeout = details
        elif outcome == "error":
            report.error = details
        return report

    def _handoff(self, entry: int) -> dict:
        from .handoff import describe

        return describe(self, entry)
