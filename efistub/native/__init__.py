"""Native dispatch: the C trampoline (native/trampoline.c) built by cffi as efistub._trampoline.

The trampoline hooks the hypercall itself, runs the hottest services in C and hands
every other call to the same Python dispatcher as the pure-Python path. Its
C-handled calls are turned into the same report records here, in call order.
"""

from __future__ import annotations

import ctypes
import traceback

from .errors import GuestMemoryError

try:
    from ._trampoline import ffi, lib
    UNAVAILABLE = None
except ImportError as e:  # not built: efistub runs with Python dispatch
    ffi = lib = None
    UNAVAILABLE = f"the native trampoline is not built ({e})"

# Services the trampoline runs in C; the numbers are its H_* handler ids.
C_HANDLED = {"CopyMem": 1, "SetMem": 2, "CalculateCrc32": 3, "RaiseTPL": 4, "RestoreTPL": 5, "Stall": 6,
             "GetNextMonotonicCount": 7}
READ_FAILED, WRITE_FAILED, TPL_NOTE = 1, 2, 4
SLOT_OUTSIDE = 0xFFFFFFFF
SLOT_EXCEPTION = 0xFFFFFFFE  # a CPU exception that is not a hypercall; args[0] is its number
ARCH_IDS = {"x86_64": 0, "aarch64": 1, "riscv64": 2}
API_FUNCTIONS = ("reg_read", "reg_write", "mem_read", "mem_write", "emu_stop", "hook_add", "hook_del")


def available() -> bool:
    return lib is not None


def unicorn_library():
    """The libunicorn CDLL the unicorn binding loaded."""
    from unicorn.unicorn_py3 import unicorn as binding

    return binding.uclib


class NativeDispatch:
    """Attaches the trampoline to an engine the Python binding created."""

    def __init__(self, uc, arch, stub_base: int, services, dispatcher, dispatch):
        if lib is None:
            raise RuntimeError(UNAVAILABLE)
        if arch.name not in ARCH_IDS:
            raise RuntimeError(f"the native trampoline does not support {arch.name}")
        self.uc, self.dispatcher, self.dispatch = uc, dispatcher, dispatch
        self.services = services
        t = self.t = ffi.new("efistub_trampoline *")
        library = unicorn_library()
        for name in API_FUNCTIONS:
            setattr(t.api, name, ffi.cast("void *", ctypes.cast(getattr(library, f"uc_{name}"), ctypes.c_void_p).value))
        t.uc = ffi.cast("void *", uc._uch.value)
        self._handle = ffi.new_handle(self)
        t.python = self._handle
        t.arch = ARCH_IDS[arch.name]
        t.stub_base, t.stub_stride, t.slots = stub_base, arch.STUB_STRIDE, len(services)
        for i, svc in enumerate(services):
            t.argc[i] = len(svc.args)
            t.handler[i] = C_HANDLED.get(svc.name, 0) if svc.implemented else 0
        fw = dispatcher.fw
        for field in ("tpl", "monotonic_count", "virtual_time_us", "boot_services_active"):
            setattr(t.state, field, getattr(fw.state, field))
        fw.state = t.state  # from now on C and Python services share these counters
        self._calls: list = []
        if dispatcher.trace is not None or dispatcher.observers:  # live observers see every call: all go to Python
            for i in range(len(services)):
                t.handler[i] = 0
        dispatcher.native = self
        err = lib.efistub_attach(t)
        if err:
            raise RuntimeError(f"the native trampoline could not hook the engine (error {err})")

    def route_to_python(self, name: str) -> None:
        """Send a C-handled service to Python (for overrides and restricted service sets)."""
        for i, svc in enumerate(self.services):
            if svc.name == name:
                self.t.handler[i] = 0

    def count(self) -> int:
        """Calls handled in C so far."""
        return self.t.nrecords

    def calls(self, count: int) -> list:
        """Report records of the first ``count`` C-handled calls (converted once, on demand)."""
        from .dispatch import Call, Dispatcher
        from .services.events import raise_tpl_note, restore_tpl_note

        t, fw = self.t, self.dispatcher.fw
        for i in range(len(self._calls), count):
            r = t.records[i]
            svc = self.services[r.slot]
            values = [kind.decode(r.args[k]) for k, (_, kind) in enumerate(svc.args)]
            record = Call(0, svc.name, svc.show_args(fw, values))
            if r.flags & (READ_FAILED | WRITE_FAILED):
                access = "read" if r.flags & READ_FAILED else "write"
                Dispatcher.bad_pointer(record, GuestMemoryError(r.bad_address, r.bad_size, access))
            if r.flags & TPL_NOTE:
                record.note = (raise_tpl_note if svc.name == "RaiseTPL" else restore_tpl_note)(values[0], r.aux)
            Dispatcher.set_result(record, svc, r.result)
            self._calls.append(record)
        return self._calls[:count]

    def detach(self) -> None:
        lib.efistub_detach(self.t)


def _last_resort(exc_type, exc_value, tb):
    """Only reached if handling an error failed too; the run then ends without a result."""
    return 0


if lib is not None:
    @ffi.def_extern(onerror=_last_resort)
    def efistub_dispatch(handle, slot, args, count):
        self = ffi.from_handle(handle)
        try:
            if slot == SLOT_EXCEPTION:
                self.dispatcher.fw.request_stop("fault", reason=f"CPU exception {args[0]}")
                self.uc.emu_stop()
                return 0
            return self.dispatch(None if slot == SLOT_OUTSIDE else slot, [args[i] for i in range(count)])
        except BaseException as e:  # cffi would print and swallow it: stop the run and report it instead
            self.dispatcher.fw.request_stop("error", error=f"{type(e).__name__}: {e}",
                                            traceback=traceback.format_exc())
            self.uc.emu_stop()
            return 0
