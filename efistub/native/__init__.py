"""Native dispatch: the C trampoline (trampoline.c beside this file) built by cffi as efistub._trampoline.

The trampoline hooks the trap itself, runs the hottest services in C and hands every
other call to the same Python dispatcher as the pure-Python path. It reads the
arguments by the architecture's CallingConvention record, which it receives from
here. Its C-handled calls are turned into the same report records, in call order.

``ffi`` is always usable: the built module's, or (when it is not built) one in
cffi's ABI mode parsed from the same header, so the shared firmware state has one
layout either way.
"""

from __future__ import annotations

import ctypes
import os
import traceback
import weakref

from ..arch.convention import TRAP_SYSCALL
from ..errors import GuestMemoryError

HEADER = os.path.join(os.path.dirname(__file__), "trampoline.h")

try:
    from .._trampoline import ffi, lib
    UNAVAILABLE = None
except ImportError as e:  # not built: efistub runs with Python dispatch
    from cffi import FFI

    lib = None
    UNAVAILABLE = f"the native trampoline is not built ({e})"
    ffi = FFI()
    with open(HEADER) as f:
        ffi.cdef(f.read())

READ_FAILED, WRITE_FAILED, TPL_NOTE = 1, 2, 4
SLOT_OUTSIDE = 0xFFFFFFFF
SLOT_EXCEPTION = 0xFFFFFFFE  # a CPU exception that is not a trap; args[0] is its number
API_FUNCTIONS = ("reg_read", "reg_write", "mem_read", "mem_write", "emu_stop", "hook_add", "hook_del")


def available() -> bool:
    return lib is not None


def unicorn_library():
    """The libunicorn CDLL the unicorn binding loaded."""
    from unicorn.unicorn_py3 import unicorn as binding

    return binding.uclib


_API_ADDRESSES: dict[int, dict[str, int]] = {}


def api_addresses() -> dict[str, int]:
    """The entry points of API_FUNCTIONS in the libunicorn the binding loaded, found once: each
    ctypes.cast of a function would add to that function's references for good."""
    library = unicorn_library()
    found = _API_ADDRESSES.get(id(library))
    if found is None:
        found = _API_ADDRESSES[id(library)] = {
            name: ctypes.cast(getattr(library, f"uc_{name}"), ctypes.c_void_p).value for name in API_FUNCTIONS}
    return found


def convention_record(cc, out) -> None:
    """Fill the C efistub_convention ``out`` from a CallingConvention."""
    out.width, out.nregs = cc.width, len(cc.arg_registers)
    for i, register in enumerate(cc.arg_registers):
        out.arg_registers[i] = register
    out.return_register, out.sp, out.pc = cc.return_register, cc.sp, cc.pc
    out.link_register = -1 if cc.link_register is None else cc.link_register
    out.trap = lib.EFISTUB_TRAP_SYSCALL if cc.trap == TRAP_SYSCALL else lib.EFISTUB_TRAP_INTERRUPT
    out.ninterrupts = len(cc.trap_interrupts)
    for i, number in enumerate(cc.trap_interrupts):
        out.interrupts[i] = number
    out.stack_args_offset, out.trap_pc_offset = cc.stack_args_offset, cc.trap_pc_offset


class NativeDispatch:
    """Attaches the trampoline to an engine the Python binding created."""

    def __init__(self, uc, convention, stub_base: int, services, arg_slots, dispatcher, ram):
        if lib is None:
            raise RuntimeError(UNAVAILABLE)
        self.uc, self.dispatcher = uc, dispatcher
        self.services = services
        t = self.t = ffi.new("efistub_trampoline *")
        for name, address in api_addresses().items():
            setattr(t.api, name, ffi.cast("void *", address))
        t.uc = ffi.cast("void *", uc._uch.value)
        self._handle = ffi.new_handle(self)
        t.python = self._handle
        convention_record(convention, t.cc)
        fw = dispatcher.fw
        t.state = fw.state  # the one firmware state: C and Python work on the same memory
        self._ram = ffi.new("efistub_range[]", [(start, end, ffi.cast("uint8_t *", fw.mem.host_pointer(start)))
                                                 for start, end in ram])
        t.ram, t.nram = self._ram, len(ram)
        t.stub_base, t.stub_stride, t.slots = stub_base, convention.stub_stride, len(services)
        self._argc = ffi.new("uint32_t[]", [arg_slots(i) for i in range(len(services))])
        # Live observers see every call: then all calls go to Python.
        everything_to_python = dispatcher.trace is not None or bool(dispatcher.observers)
        self._handler = ffi.new("uint8_t[]", [
            0 if everything_to_python or not svc.implemented else lib.efistub_handler(svc.name.encode())
            for svc in services])
        t.argc, t.handler = self._argc, self._handler
        self._calls: list = []
        dispatcher.native = self
        err = lib.efistub_attach(t)
        # What C allocated goes with this object (a run's records, read when its report is): never
        # through the engine, which may be closed first.
        weakref.finalize(self, lib.efistub_release, t)
        if err:
            raise RuntimeError(f"the native trampoline could not hook the engine (error {err})")

    def route_to_python(self, name: str) -> None:
        """Send a C-handled service to Python (for overrides and restricted service sets)."""
        for i, svc in enumerate(self.services):
            if svc.name == name:
                self._handler[i] = 0

    def count(self) -> int:
        """Calls handled in C so far."""
        return self.t.nrecords

    def calls(self, count: int) -> list:
        """Report records of the first ``count`` C-handled calls (converted once, on demand)."""
        from ..dispatch import Call, Dispatcher
        from ..services.events import raise_tpl_note, restore_tpl_note

        t, dispatcher = self.t, self.dispatcher
        for i in range(len(self._calls), count):
            r = t.records[i]
            svc = self.services[r.slot]
            values = dispatcher.decode(r.slot, [r.args[k] for k in range(len(svc.args))])
            record = Call.pending(0, svc, svc.capture(dispatcher.fw, values), r.caller, 0)
            if r.flags & (READ_FAILED | WRITE_FAILED):
                access = "read" if r.flags & READ_FAILED else "write"
                Dispatcher.bad_pointer(record, GuestMemoryError(r.bad_address, r.bad_size, access))
            if r.flags & TPL_NOTE:
                record.note = (raise_tpl_note if svc.name == "RaiseTPL" else restore_tpl_note)(values[0], r.aux)
            record.set_result(svc, r.result)
            self._calls.append(record)
        return self._calls[:count]

    def detach(self) -> None:
        lib.efistub_detach(self.t)


def _last_resort(exc_type, exc_value, tb):
    """Only reached if handling an error failed too; the run then ends without a result."""
    return 0


if lib is not None:
    @ffi.def_extern(onerror=_last_resort)
    def efistub_dispatch(handle, slot, args, count, caller, native_before):
        self = ffi.from_handle(handle)
        try:
            if slot == SLOT_EXCEPTION:
                self.dispatcher.fw.request_stop("fault", reason=f"CPU exception {args[0]}")
                self.uc.emu_stop()
                return 0
            result = self.dispatcher.call(None if slot == SLOT_OUTSIDE else slot, ffi.unpack(args, count), caller,
                                          native_before)
            return 0 if result is None else result
        except BaseException as e:  # cffi would print and swallow it: stop the run and report it instead
            self.dispatcher.fw.request_stop("error", error=f"{type(e).__name__}: {e}",
                                            traceback=traceback.format_exc())
            self.uc.emu_stop()
            return 0
