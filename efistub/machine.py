"""The public Machine: one run of one EFI image, configured, run to an outcome, reported.

The machine itself is assembled by efistub.platform and run by efistub.runloop;
this module holds what a user changes before the run (service overrides, injected
failures, observers, Python protocols) and turns the outcome into a Report.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from unicorn import UC_MEM_READ_UNMAPPED, UC_MEM_WRITE_UNMAPPED, UC_PROT_READ, UC_PROT_WRITE

from . import arch as arches
from . import board as boards
from . import engine, guids
from .catalog import load_all
from .errors import EfiError, InputError
from .layouts import efi
from .loader import PeImage, parse_image, read_image
from .memory import MemoryType
from .options import RunOptions
from .registry import POINTER, Result, Service
from .report import Report, from_run
from .status import Status
from .variables import VariableStore

PAGE = efi.PAGE_SIZE
TABLE_SERVICES = tuple(n for n in efi.BOOT_SERVICES + efi.RUNTIME_SERVICES if n != "Reserved")
FAULT_OUTCOMES = ("fault", "error", "timeout")  # a --vars store is saved after these only with --vars-save-on-fault
MIN_MEMORY = 64 << 20
TPM_KINDS = ("model", "swtpm", "none")  # --tpm
MAX_MEMORY = 64 << 30


def choose_dispatch(requested: str | None) -> str:
    """``native`` or ``python``: the request, else EFISTUB_DISPATCH, else native when it is built."""
    from . import native

    mode = requested or os.environ.get("EFISTUB_DISPATCH") or ("native" if native.available() else "python")
    if mode not in ("native", "python"):
        raise InputError("--dispatch", f"unknown dispatch {mode!r} (native or python)")
    if mode == "native" and not native.available():
        raise InputError("--dispatch", native.UNAVAILABLE)
    return mode


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
    call record as it completes. ``save_vars`` False: a ``vars`` store is read, never written back.
    ``debugger``: an efistub.gdbstub.GdbServer that gdb debugs the run through (docs/debugging.md).
    See docs/api.md.
    """

    def __init__(self, image, *, arch: str | None = None, only=None, console=None, trace=None,
                 boot_path: str | None = None, save_vars: bool = True, debugger=None, **options):
        unknown = set(options) - RunOptions.names()
        if unknown:
            raise TypeError(f"Machine() got unknown options {sorted(unknown)}; the run options are: "
                            f"{', '.join(sorted(RunOptions.names()))}")
        self.options = opts = RunOptions(**options)
        opts.cmdline = opts.cmdline or ""
        opts.initrd = _bytes_or_file(opts.initrd, "initrd")
        opts.dtb = _bytes_or_file(opts.dtb, "dtb")
        self.dispatch_mode = choose_dispatch(opts.dispatch)
        if opts.timeout <= 0:
            raise InputError("--timeout", "must be positive")
        if isinstance(image, (bytes, bytearray)):  # an image read from a disk (efistub boot --disk)
            name = f"{os.fspath(opts.disk)}:{boot_path}" if opts.disk and boot_path else "memory buffer"
            self.image: PeImage = parse_image(name, image, arches.supported())
        else:
            self.image = read_image(os.fspath(image), arches.supported())
        self.arch_class = arches.for_machine(self.image.machine)
        self.board = boards.for_arch(self.image.arch, opts.platform)
        if not MIN_MEMORY <= opts.memory <= MAX_MEMORY or opts.memory % PAGE or (
                self.arch_class.RAM_LIMIT and self.board.ram(opts.memory)[-1][1] > self.arch_class.RAM_LIMIT):
            top = "the 4 GiB an IA32 guest reaches" if self.arch_class.RAM_LIMIT else f"{MAX_MEMORY >> 20} MiB"
            raise InputError("--mem", f"{opts.memory} bytes: guest RAM of {self.image.arch} must be a multiple of "
                                      f"4 KiB from {MIN_MEMORY >> 20} MiB, and fit {top} on {self.board.name}")
        if arch is not None and arch != self.image.arch:
            if arch not in arches.supported().values():
                raise ValueError(f"unknown arch {arch!r} (one of {', '.join(arches.supported().values())})")
            raise InputError(self.image.path, f"is an {self.image.arch} image, not {arch}")
        if opts.esp is not None:
            from .volume import HostVolume

            HostVolume(os.fspath(opts.esp))  # a one-line InputError unless it is a folder
        if opts.disk is not None:
            from .disk import open_disk

            open_disk(os.fspath(opts.disk)).close()  # a one-line InputError unless it is a disk image
        if boot_path is not None and opts.esp is None and opts.disk is None:
            raise ValueError("boot_path names a file on the ESP: give esp (or disk) too")
        self.boot_path = boot_path
        self.debugger = debugger
        self.console_sink = console
        self.trace = trace
        self.variables, self._vars_before = VariableStore(), None
        if opts.vars is not None:  # a one-line InputError unless it is a store (or a new JSON one)
            from . import varstore

            self.variables = varstore.open_store(opts.vars, opts.vars_format)
            self._vars_before = varstore.snapshot(self.variables)
        if opts.vars is not None or opts.enroll is not None or opts.secure_boot is not None:
            from . import secureboot  # the keys and the mode; an InputError for keys that cannot be enrolled

            secureboot.setup(self.variables, secure_boot=opts.secure_boot, enroll=opts.enroll)
        self.save_vars = save_vars
        if opts.tpm not in TPM_KINDS:
            raise InputError("--tpm", f"unknown TPM {opts.tpm!r} ({', '.join(TPM_KINDS)})")
        if opts.save_tpm is not None:
            from .protocols import tcg2

            if opts.tpm == "none":
                raise InputError("--save-tpm", "the run has no TPM (--tpm none)")
            tcg2.check_save_path(os.fspath(opts.save_tpm))
        self._overrides: dict[str, object] = {}
        self._injections: dict[str, Injection] = {}
        self._observers: list = []
        self._protocols: list[tuple] = []
        self._session = None  # what forks this run (efistub.snapshot): fork_at, sweep or minimize
        self.forks: list = []  # after run(): the forked runs fork_at asked for (snapshot.Fork)
        self._ran = False
        self._closed = self._running = False
        self.platform = None
        self.only = None if only is None else set(only)
        if self.only is not None:
            unknown = self.only - set(TABLE_SERVICES)
            if unknown:
                raise ValueError(f"--only: unknown services {sorted(unknown)}; the boot and runtime services are: "
                                 f"{', '.join(TABLE_SERVICES)}")

    # What the run was built from, once run() has assembled it (None before).
    fw = property(lambda self: _of_platform(self, "fw"), doc="the firmware state of the run")
    uc = property(lambda self: _of_platform(self, "uc"), doc="the unicorn engine")
    arch = property(lambda self: _of_platform(self, "arch"), doc="the Architecture")
    dispatcher = property(lambda self: _of_platform(self, "dispatcher"), doc="the Dispatcher and its records")
    entry = property(lambda self: _of_platform(self, "entry"), doc="the image's entry point")
    load_address = property(lambda self: _of_platform(self, "load_address"), doc="where the image was loaded")

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

    def fork_at(self, seq: int, status) -> None:
        """Fork the run at its call ``seq`` (the report's numbering, C-handled calls included): the
        copy fails that call with ``status`` and runs on, the run itself goes on unchanged. After
        ``run()``, ``machine.forks`` holds one snapshot.Fork per request, with the copy's report."""
        from . import snapshot

        if self._ran:
            raise RuntimeError("the machine has already run; ask for forks before run()")
        if self._session is None:
            snapshot.check_forkable(self)
            self._session = snapshot.ForkAt()
        if not isinstance(self._session, snapshot.ForkAt):
            raise RuntimeError("fork_at cannot be combined with sweep()")
        self._session.add(seq, Status.parse(status))

    def sweep(self, statuses=None, services=None, jobs: int | None = None, progress=None):
        """Run the image once, and fail every call of it in turn, each in a run forked at that call.

        ``statuses``: the statuses to inject (names or Status); default, for each call, the ones the
        specification lists for its service (efistub.spec_statuses). ``services``: only calls of
        these. ``jobs``: forked runs at a time (default: cores). ``progress(state)`` hears how far
        the sweep is. Returns an efistub.sweep.SweepResult; see docs/sweep.md."""
        from .sweep import Sweep

        if self._ran:
            raise RuntimeError("a Machine runs once; make a new one for another sweep")
        if self._session is not None:
            raise RuntimeError("sweep() cannot be combined with fork_at")
        session = self._session = Sweep(self, statuses, services, jobs, progress)
        return session.result(self.run())

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

    # -- set-up -------------------------------------------------------------------------
    def _assemble(self):
        from . import platform

        slots = [self._implementation(s) for s in service_slots([s for *_, services in self._protocols
                                                                  for s in services])]
        protocols = [lambda fw, p=p: self._install_python_protocol(fw, *p) for p in self._protocols]
        self.platform = platform.assemble(
            self.image, self.options, self.arch_class, slots, console_sink=self.console_sink,
            variables=self.variables, dispatch_mode=self.dispatch_mode, trace=self.trace,
            injections=self._injections, observers=self._observers, python_protocols=protocols,
            python_routed=set(self._overrides) | set(self._injections) | self._routed(),
            on_invalid=self._on_invalid,
            on_kernel_entry=self._on_kernel_entry, boot_path=self.boot_path)

    def _routed(self) -> set[str]:
        """Services a snapshot session needs to see in Python (where a run can fork)."""
        return set() if self._session is None else self._session.routed

    def _implementation(self, svc: Service) -> Service:
        """The service as this machine runs it: efistub's, the test's override, or absent (``only``)."""
        if self.only is not None and svc.name in TABLE_SERVICES and svc.name not in self.only:
            return svc.without_implementation()
        function = self._overrides.get(svc.name)
        if function is None:
            return svc
        return Service(svc.name, _python_service(function, svc.name), svc.args, svc.varargs, svc.boot,
                       svc.returns)

    @staticmethod
    def _install_python_protocol(fw, guid, members, handle, services) -> None:
        names = iter(s.name for s in services)
        raw = b"".join((fw.stub_address[next(names)] if isinstance(m, str) else m).to_bytes(fw.width, "little")
                       for m in members)
        interface = fw.store(MemoryType.EfiBootServicesData, raw)
        target = fw.handles.get(handle) if handle else None
        if handle and target is None:
            raise ValueError(f"install_protocol: 0x{handle:x} is not a handle")
        fw.handles.install(target, guid, interface)

    # -- hooks ------------------------------------------------------------------------------
    def _on_kernel_entry(self, uc, address, size, user_data):
        if not self.fw.state.boot_services_active:
            self.fw.request_stop("handoff", entry=address)
            uc.emu_stop()

    def _on_invalid(self, uc, access, address, size, value, user_data):
        if address + size <= PAGE and self.board.null_page and self.options.null_page == "ram" \
                and access in (UC_MEM_READ_UNMAPPED, UC_MEM_WRITE_UNMAPPED):
            # page 0 is RAM on this board: serve it from now on, and say where it was first used
            uc.mem_map(0, PAGE, UC_PROT_READ | UC_PROT_WRITE)
            pc = uc.reg_read(self.platform.arch.convention.pc)
            verb = "read" if access == UC_MEM_READ_UNMAPPED else "written"
            self.fw.note(f"page 0 (NULL) first {verb} at 0x{address:x} by the code at 0x{pc:x}: served as RAM, as "
                         f"on a {self.board.name} PC (--null-page fault ends the run there)")
            return True
        self._loop.invalid = (access, address, size)
        return False

    # -- the run ---------------------------------------------------------------------------
    def close(self) -> None:
        """Free the run's engine and guest RAM now; the report run() returned stays as it is.

        A finished Machine holds reference cycles, so without close() only Python's cyclic
        collector frees it, and several runs' RAM can pile up before it does. Afterwards the
        Machine cannot run, its ``fw``, ``uc`` and ``dispatcher`` are gone (RuntimeError), and
        references taken from them before must not be used. Closing twice does nothing; a
        Machine is also a context manager that closes on leaving."""
        if self._running:
            raise RuntimeError("a Machine cannot be closed while it runs")
        if self._closed:
            return
        self._closed = True
        if self.platform is not None:
            self.platform.close()
            self.platform = None

    def __enter__(self) -> "Machine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def run(self) -> Report:
        """Run the image to its outcome; a Machine runs once."""
        if self._session is None:
            return self._run()
        from . import snapshot

        return snapshot.run_session(self, self._run)  # a forked copy of the run leaves in there

    def _run(self) -> Report:
        if self._closed:
            raise RuntimeError("this Machine was closed; make a new one for another run")
        if self._ran:
            raise RuntimeError("a Machine runs once; make a new one for another run")
        self._ran = self._running = True
        try:
            return self._run_once()
        finally:
            self._running = False

    def _run_once(self) -> Report:
        from .runloop import RunLoop

        started = time.perf_counter()
        cpu_started = time.process_time()
        self._loop = RunLoop(None, self.options.timeout)
        try:
            self._assemble()
        except EfiError as e:  # the firmware's own allocations, in the RAM the image left
            if e.status not in (Status.EFI_OUT_OF_RESOURCES, Status.EFI_NOT_FOUND):
                raise
            raise InputError(self.image.path, f"SizeOfImage 0x{self.image.size_of_image:x} leaves too little of "
                                              f"{self.options.memory >> 20} MiB of guest RAM for the firmware "
                                              f"({e.note or Status.name_of(e.status)})") from None
        self._loop.p = self.platform
        if self.debugger is not None:
            if self._session is not None:
                raise RuntimeError("a run debugged with gdb cannot fork (fork_at, sweep)")
            self._loop.debugger = self.debugger
            self.debugger.attach(self.platform)
        if self._session is not None:
            self._session.attached(self)
        boot_done = time.perf_counter()
        outcome, details = self._loop.run()
        if self.debugger is not None:
            self.debugger.ended(outcome, details)  # gdb hears how the run ended
        if self._session is not None:
            self._session.ended(self, outcome, details)  # a forked run that needs no report leaves here
        if outcome == "handoff":
            details = {"entry": details["entry"]}
        elif outcome == "timeout":
            details = self._loop.fault(f"still running after --timeout {self.options.timeout:g} s")
        elif outcome in ("fault", "stalled") and "pc" not in details:  # a stop a service asked for
            details = {**self._loop.fault(details.get("reason", outcome)), **details}
            details["caller"] = caller = self.platform.arch.convention.return_address(self.uc, self.fw.mem)
            region = self.fw.in_loaded_image(caller) if caller is not None else None
            if region is not None:
                details["caller_image_offset"] = caller - region[0]
        finished = time.perf_counter()
        report = from_run(self.platform, self.options, outcome, details)
        report.dispatch = self.dispatch_mode
        report.engine = engine.loaded().engine
        report.timing = {"setup_s": round(boot_done - started, 4), "run_s": round(finished - boot_done, 4),
                         "total_s": round(finished - started, 4),
                         "cpu_s": round(time.process_time() - cpu_started, 4)}
        from . import secureboot

        report.secure_boot = secureboot.describe(self.variables)
        report.variable_store = self._save_variables(outcome)
        from .protocols import tcg2

        report.tpm = tcg2.finish(self.fw, None if self.options.save_tpm is None else os.fspath(self.options.save_tpm))
        return report

    def _save_variables(self, outcome: str) -> dict | None:
        """Save the --vars store when the run changed a non-volatile variable, unless the run ended
        in a fault (without --vars-save-on-fault) or saving is off; what was done, for the report."""
        opts = self.options
        if opts.vars is None:
            return None
        from . import varstore

        entry = varstore.describe(self.variables, opts.vars, opts.vars_format, self._vars_before)
        entry["not_saved"] = self._why_not_saved(outcome, entry["changed"])
        if entry["not_saved"] is None:
            try:
                varstore.save(self.variables, opts.vars, opts.vars_format)
                entry["saved"] = True
            except InputError as e:
                entry["error"] = e.problem
        return entry

    def _why_not_saved(self, outcome: str, changed: int) -> str | None:
        if not changed:
            return "no non-volatile variable changed"
        if not self.save_vars:
            return "saving is off (efistub minimize and scan never save)"
        if outcome in FAULT_OUTCOMES and not self.options.vars_save_on_fault:
            return f"the run ended in a {outcome}; --vars-save-on-fault saves anyway"
        return None


def _of_platform(machine: Machine, name: str):
    if machine._closed:
        raise RuntimeError(f"this Machine was closed: its {name} is gone")
    return getattr(machine.platform, name) if machine.platform is not None else None


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


def _python_service(function, name: str):
    """Adapt ``function(ctx, *args)`` to the firmware's service calling convention."""
    from .context import Context

    def run(fw, *values):
        ctx = Context(fw)
        status = _as_status(function(ctx, *values), name)
        return Result(status, ctx.remark) if ctx.remark else status

    return run
