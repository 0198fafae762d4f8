"""Dispatch: from a hypercall in a service's stub to the service function and back.

Each service has a stub slot; the architecture layer turns a trap in slot N into
``Dispatcher.call(N, raw_args, vararg)`` and writes the returned value to the
guest's return register. The dispatcher decodes arguments, enforces the boot /
runtime split, turns errors into statuses, and records every call.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import EfiError, GuestMemoryError
from .registry import Service
from .status import Status

INJECTED = "failure injected by Machine.inject"


@dataclass
class Call:
    seq: int
    service: str
    args: dict
    status: str | None = None  # status name; None for services that return no status
    value: int | None = None  # the return value of services that return one (RaiseTPL)
    note: str | None = None
    unimplemented: bool = False
    violation: bool = False  # a boot service called after ExitBootServices
    native_before: int = 0  # calls handled in C before this one (native dispatch only)

    def as_dict(self) -> dict:
        out: dict[str, Any] = {"seq": self.seq, "service": self.service, "args": self.args, "status": self.status}
        if self.value is not None:
            out["value"] = self.value
        for key in ("note", "unimplemented", "violation"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        return out


@dataclass
class Dispatcher:
    fw: Any
    services: list[Service]  # index = stub slot
    trace: Callable[[Call], None] | None = None
    native: Any = None  # native.NativeDispatch, whose C-handled calls join ``calls`` in order
    injections: dict = field(default_factory=dict)  # service name -> machine.Injection
    observers: list = field(default_factory=list)  # fn(call, "before" | "after")
    _python_calls: list[Call] = field(default_factory=list)
    _merged: tuple = ((), 0, [])

    @property
    def calls(self) -> list[Call]:
        """Every call in order, numbered; C-handled calls are turned into records only here."""
        if self.native is None:
            return self._python_calls
        done, count, merged = self._merged
        native_count = self.native.count()
        if (done, count) != (len(self._python_calls), native_count):
            c_calls = self.native.calls(native_count)
            merged, position = [], 0
            for call in self._python_calls:
                merged += c_calls[position:call.native_before]
                position = call.native_before
                merged.append(call)
            merged += c_calls[position:]
            for seq, call in enumerate(merged):
                call.seq = seq
            self._merged = (len(self._python_calls), native_count, merged)
        return merged

    def arg_count(self, slot: int) -> int:
        return len(self.services[slot].args) if slot < len(self.services) else 1

    def call(self, slot: int, raw: list[int], vararg: Callable[[int], int]) -> int:
        """Run the service in ``slot``; return the value for the guest's return register."""
        fw = self.fw
        if slot == len(self.services):  # the image's entry point returned to the firmware
            fw.request_stop("exit", status=raw[0], returned=True)
            return raw[0]
        svc = self.services[slot]
        fw.mem.forget()
        values = [kind.decode(r) for (_, kind), r in zip(svc.args, raw)]
        record = Call(len(self._python_calls), svc.name, svc.show_args(fw, values))
        if self.native is not None:
            record.native_before = self.native.count()
        result: int = Status.EFI_UNSUPPORTED
        for observer in self.observers:
            observer(record, "before")
        injection = self.injections.get(svc.name)
        if svc.boot and not fw.state.boot_services_active:
            record.violation = True
            record.note = "boot service called after ExitBootServices"
        elif injection is not None and injection.fires():
            result, record.note = injection.status, INJECTED
        elif not svc.implemented:
            record.unimplemented = True
            result = svc.absent
        else:
            try:
                extra = (lambda i: vararg(len(svc.args) + i),) if svc.varargs else ()
                fw.call_note = fw.call_details = None
                try:
                    returned = svc.function(fw, *values, *extra)
                finally:
                    if fw.call_details:  # arguments only the service could decode (the GUIDs of varargs)
                        record.args.update(fw.call_details)
                result = 0 if returned is None else int(returned)
                record.note = fw.call_note
            except EfiError as e:
                result, record.note = e.status, e.note
            except GuestMemoryError as e:
                result = Status.EFI_INVALID_PARAMETER
                self.bad_pointer(record, e)
            except Exception as e:  # a bug in a service: stop at once, report it
                fw.request_stop("error", service=svc.name, error=f"{type(e).__name__}: {e}",
                                traceback=traceback.format_exc())
                result, record.note = Status.EFI_DEVICE_ERROR, f"internal error: {e}"
        self.finish(record, svc, result)
        return result

    @staticmethod
    def bad_pointer(record: Call, error: GuestMemoryError) -> None:
        record.note = f"bad guest pointer: {error}"

    @staticmethod
    def set_result(record: Call, svc: Service, result: int) -> None:
        if svc.returns == "status" or record.note == INJECTED:
            record.status = Status.name_of(result)
        elif svc.returns == "value":
            record.value = result

    def finish(self, record: Call, svc: Service, result: int) -> None:
        self.set_result(record, svc, result)
        self._python_calls.append(record)
        for observer in self.observers:
            observer(record, "after")
        if self.trace is not None:
            self.trace(record)
