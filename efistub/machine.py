"""A run: load an image into a fresh emulated machine, run it to an outcome, report.

Guest RAM is mapped read-write without execute. Only the executable sections of the
loaded image and the firmware's stubs may run. The first instruction fetch from
memory without execute is, after a successful ExitBootServices, the hand-off to the
kernel. Before it, a fetch inside the loaded image (code the image placed in its
own data) or in pages allocated as code (EfiLoaderCode and the like: a boot
loader's modules) is allowed by granting execute there; anything else is a fault.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

from unicorn import (
    UC_ERR_FETCH_PROT, UC_HOOK_CODE, UC_HOOK_MEM_UNMAPPED, UC_MEM_FETCH_PROT, UC_MEM_FETCH_UNMAPPED,
    UC_MEM_READ_PROT, UC_MEM_READ_UNMAPPED, UC_MEM_WRITE_PROT, UC_MEM_WRITE_UNMAPPED, UC_PROT_ALL, UC_PROT_EXEC,
    UC_PROT_READ, UC_PROT_WRITE, UcError,
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
from .registry import POINTER, Service, load_all
from .report import Report
from .services import events
from .status import Status
from .tables import build_firmware_tables
from .variables import VariableStore

PAGE = efi.PAGE_SIZE
RAM_START = PAGE  # page 0 stays unmapped, so NULL dereferences fault
TABLE_SERVICES = tuple(n for n in efi.BOOT_SERVICES + efi.RUNTIME_SERVICES if n != "Reserved")
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


def service_slots(extra: list[Service] = ()) -> list[Service]:
    """Every stub slot: the table members in table order, then the protocol functions."""
    registry = load_all()
    names = list(efi.BOOT_SERVICES) + list(efi.RUNTIME_SERVICES)
    names += sorted(set(registry) - set(names))
    return [registry[n] for n in names] + list(extra)  # every table member is declared


def _bytes_or_file(value, what: str) -> bytes | None:
    if value is None or isinstance(value, (bytes, bytearray)):
        return value
    try:
        with open(value, "rb") as f:
            return f.read()
    except OSError as e:
        raise InputError(os.fspath(value), e.strerror or str(e)) from None


def _as_status(value, service: str) -> int:
    """What a Python implementation returned, as a status value (a name, a Status or an int)."""
    if value is None:
        return Status.EFI_SUCCESS
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(f"{service} returned {value!r}; return a status such as 'EFI_SUCCESS' or efistub.Status")
    return int(Status.parse(value))


@dataclass
class Injection:
    status: Status
    times: int
    after: int
    passed: int = 0
    injected: int = 0

    def fires(self) -> bool:
        """Whether this call fails: the first ``times`` calls after ``after`` calls that ran normally."""
        if self.passed >= self.after and self.injected < self.times:
            self.injected += 1
            return True
        self.passed += 1
        return False


class Machine:
    """One run of one EFI image: configure it, optionally change services, then ``run()``.

    ``image`` is the path of a PE32+ EFI image. ``initrd`` and ``dtb`` are bytes or a
    path. ``arch`` ("x86_64", "aarch64", "riscv64"), when given, must match the image.
    ``console`` receives the guest's console output as it is printed, ``trace`` every
    call record as it completes. See docs/api.md.
    """

    def __init__(self, image, *, cmdline: str | None = None, initrd=None, dtb=None, memory: int = 1 << 30,
                 seed: int = 0, timeout: float = 60.0, arch: str | None = None, hart_id: int = 0, keys: str = "",
                 rng: bool = True, dispatch: str | None = None, only=None, console=None, trace=None):
        self.options = Options(cmdline=cmdline or "", initrd=_bytes_or_file(initrd, "initrd"),
                               dtb=_bytes_or_file(dtb, "dtb"), memory=memory, seed=seed, timeout=timeout,
                               hart_id=hart_id, keys=keys, rng=rng, dispatch=dispatch)
        self.dispatch_mode = choose_dispatch(self.options.dispatch)
        if not MIN_MEMORY <= self.options.memory <= MAX_MEMORY or self.options.memory % PAGE:
            raise InputError("--mem", f"{self.options.memory} bytes: guest RAM must be a multiple of 4 KiB "
                                      f"between {MIN_MEMORY >> 20} MiB and {MAX_MEMORY >> 30} GiB")
        if self.options.timeout <= 0:
            raise InputError("--timeout", "must be positive")
        self.image: PeImage = read_image(os.fspath(image), arches.supported())
        if arch is not None and arch != self.image.arch:
            if arch not in arches.supported().values():
                raise ValueError(f"unknown arch {arch!r} (one of {', '.join(arches.supported().values())})")
            raise InputError(self.image.path, f"is an {self.image.arch} image, not {arch}")
        self.console_sink = console
        self.trace = trace
        self.variables = VariableStore()
        self._overrides: dict[str, object] = {}
        self._injections: dict[str, Injection] = {}
        self._observers: list = []
        self._protocols: list[tuple] = []
        self._invalid: tuple[int, int, int] | None = None
        self._ran = False
        self.only = None if only is None else set(only)
        if self.only is not None:
            unknown = self.only - set(TABLE_SERVICES)
            if unknown:
                raise ValueError(f"--only: unknown services {sorted(unknown)}; the boot and runtime services are: "
                                 f"{', '.join(TABLE_SERVICES)}")

    # -- changing the firmware before the run -------------------------------------------
    def _check_service(self, name: str) -> Service:
        svc = load_all().get(name) or next((s for _, _, _, services in self._protocols for s in services
                                            if s.name == name), None)
        if svc is None:
            known = ", ".join(sorted(load_all()))
            raise ValueError(f"unknown service {name!r}; known services: {known}")
        if self._ran:
            raise RuntimeError("the machine has already run; configure services before run()")
        return svc

    def service(self, name: str):
        """Decorator: ``fn(ctx, *args)`` implements service ``name`` for this machine.

        ``ctx`` is an efistub.Context; the arguments arrive decoded as the service
        declares them. Return a status: a name such as "EFI_NOT_FOUND", or a Status.
        """
        svc = self._check_service(name)

        def register(function):
            expected = len(svc.args) + (1 if svc.varargs else 0)
            _check_arity(function, expected + 1, f"an implementation of {name}")
            self._overrides[name] = function
            return function

        return register

    def inject(self, service: str, status, times: int = 1, after: int = 0) -> None:
        """Make calls of ``service`` fail with ``status``: the first ``times`` calls after
        ``after`` calls that ran normally. The failing calls do not run the service."""
        self._check_service(service)
        if times < 1 or after < 0:
            raise ValueError("times must be at least 1 and after at least 0")
        self._injections[service] = Injection(Status.parse(status), times, after)

    def on_call(self, function) -> None:
        """``function(call, when)`` sees every call, ``when`` being "before" or "after" it runs."""
        _check_arity(function, 2, "an on_call observer")
        self._observers.append(function)

    def install_protocol(self, guid, interface, handle: int | None = None) -> None:
        """Offer a Python object as the protocol ``guid``.

        ``interface.members`` lists the protocol structure in order: a method name for
        each function pointer, an int for each UINT64 data field. Each method is called
        as ``method(ctx, This, *args)`` and returns a status. ``handle``: an existing
        handle to install on; by default a new one.
        """
        members = list(getattr(interface, "members", ()))
        if not members or not all(isinstance(m, (str, int)) for m in members):
            raise TypeError("the interface needs a 'members' list of method names (and ints for data fields)")
        guid = guids.Guid(str(guid))
        prefix = f"{type(interface).__name__}.{guid.name}"
        services = []
        for member in members:
            if isinstance(member, str):
                method = getattr(interface, member, None)
                if not callable(method):
                    raise TypeError(f"{type(interface).__name__} has no method {member!r}")
                count = _check_arity(method, None, f"{type(interface).__name__}.{member}") - 1
                args = tuple((f"arg{i}" if i else "This", POINTER) for i in range(count))
                services.append(Service(f"{prefix}.{member}", _python_service(method, f"{prefix}.{member}"), args))
        self._protocols.append((guid, members, handle, services))

    # -- set-up ----------------------------------------------------------------------------
    # -- set-up -------------------------------------------------------------------------
    def _boot(self):
        opts, image = self.options, self.image
        fw = self.fw = Firmware(None, RAM_START, opts.memory, opts, self.console_sink, self.variables)
        arch = self.arch = arches.for_machine(image.machine)(fw)
        slots = [self._implementation(s) for s in service_slots([s for *_, services in self._protocols
                                                                  for s in services])]

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
        for guid, members, handle, services in self._protocols:
            self._install_python_protocol(guid, members, handle, services)
        if opts.dtb is not None:
            fw.set_configuration_table(guids.DEVICE_TREE_TABLE, fw.store(MemoryType.EfiACPIReclaimMemory, opts.dtb))
        stack = fw.allocate_pages(MemoryType.EfiBootServicesData, STACK_SIZE // PAGE)

        self.dispatcher = Dispatcher(fw, slots, self.trace, injections=self._injections,
                                     observers=self._observers)
        self.native = None
        if self.dispatch_mode == "native":
            from .native import NativeDispatch

            self.native = NativeDispatch(uc, arch, stub_base, slots, self.dispatcher, self._dispatch)
            for name in set(self._overrides) | set(self._injections):
                self.native.route_to_python(name)
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

    def _implementation(self, svc: Service) -> Service:
        """The service as this machine runs it: efistub's, the test's override, or absent (``only``)."""
        if self.only is not None and svc.name in TABLE_SERVICES and svc.name not in self.only:
            return svc.without_implementation()
        function = self._overrides.get(svc.name)
        if function is None:
            return svc
        return Service(svc.name, _python_service(function, svc.name, svc.varargs), svc.args, svc.varargs, svc.boot,
                       svc.returns)

    def _install_python_protocol(self, guid, members, handle, services) -> None:
        fw = self.fw
        names = iter(s.name for s in services)
        raw = b"".join((fw.stub_address[next(names)] if isinstance(m, str) else m).to_bytes(8, "little")
                       for m in members)
        interface = fw.store(MemoryType.EfiBootServicesData, raw)
        target = fw.handles.get(handle) if handle else None
        if handle and target is None:
            raise ValueError(f"install_protocol: 0x{handle:x} is not a handle")
        fw.handles.install(target, guid, interface)

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
        """Run the image to its outcome; a Machine runs once."""
        if self._ran:
            raise RuntimeError("a Machine runs once; make a new one for another run")
        self._ran = True
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
            except Exception as e:  # a hook raised: the binding re-raises it here; report it, never crash
                import traceback

                fw.request_stop("error", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
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
                elif (region := fw.code_range(address)) is not None:
                    start, size, what = region
                    uc.mem_protect(start, size, UC_PROT_ALL)
                    fw.note(f"code ran at 0x{address:x} in {what}; execute granted on "
                            f"0x{start:x}-0x{start + size:x}")
                    pc = address
                else:
                    outcome, details = "fault", self._fault(ACCESS_NAMES[UC_MEM_FETCH_PROT])
            elif error is not None:
                outcome, details = "fault", self._fault(str(error))
            elif time.perf_counter() >= deadline:
                outcome = "timeout"
            elif (halt := arch.halted_at(uc)) is not None:
                # Waiting for an interrupt: the only interrupts are efistub's virtual timers.
                if fw.state.boot_services_active and events.advance_to_next_timer(fw):
                    pc = arch.pc(uc)
                    continue
                outcome, details = "fault", self._fault("the guest halted with no timer to wake it", pc=halt)
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
            report.exit_status = Status.name_of(details["status"])
            report.exit_data = details.get("exit_data")
            if details.get("returned"):
                report.notes.append("the image's entry point returned")
        elif outcome == "handoff":
            report.handoff = self._handoff(details["entry"])
        elif outcome == "reset":
            report.reset = {"type": details["type"], "status": Status.name_of(details["status"]),
                            "data": details["data"]}
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


def _check_arity(function, expected: int | None, what: str) -> int:
    """The number of positional parameters ``function`` takes; TypeError when it is not ``expected``."""
    import inspect

    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return expected or 0
    if any(p.kind == p.VAR_POSITIONAL for p in parameters):
        return expected or 0
    count = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters)
    if expected is not None and count != expected:
        raise TypeError(f"{what} must take {expected} positional parameters (ctx and the arguments), "
                        f"{getattr(function, '__name__', function)} takes {count}")
    return count


def _python_service(function, name: str, varargs: bool = False):
    """Adapt ``function(ctx, *args)`` to the firmware's service calling convention."""
    from .context import Context

    def run(fw, *values):
        return _as_status(function(Context(fw), *values), name)

    return run
