"""Dispatch: from a trap in a service's stub to the service function and back, and calls into the guest.

Each service has a stub slot; the architecture layer turns a trap in slot N into
``Dispatcher.call(N, slots)`` and writes the returned value to the guest's return
register. The dispatcher decodes the arguments, enforces the boot / runtime split,
turns errors into statuses, and records every call.

The firmware calls guest code too (notification functions, an image's entry point).
A service that does is a generator: it yields ``call_guest(function, *args)`` and
resumes with the guest function's result. The dispatcher keeps such services on a
continuation stack (``frames``) and leaves a ``Transfer`` for the run loop, which
points the CPU at the guest function; when that function returns to the firmware's
return stub, the dispatcher resumes the service, and when the service is done the
run loop gives its caller the CPU state of the original call back, with the result.
``Exit`` unwinds the stack to the frame that started the exiting image.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from types import GeneratorType
from typing import Any, Callable

from .errors import EfiError, GuestMemoryError
from .registry import Result, Service
from .status import Status, name_of as status_name, to_guest

INJECTED = "failure injected by Machine.inject"
_new_object = object.__new__


class Call:
    """The record of one service call.

    Its arguments are kept as the call left them (the decoded values, with what they point
    at in guest memory read at the call: Service.capture) and rendered for the report only
    when ``args`` is first read, as the records of C-handled calls are.
    """

    __slots__ = ("seq", "service", "status", "value", "note", "unimplemented", "violation", "native_before",
                 "caller", "image", "_args", "_svc", "_kept", "_more")

    def __init__(self, seq: int, service: str, args: dict | None = None, status: str | None = None,
                 value: int | None = None, note: str | None = None, unimplemented: bool = False,
                 violation: bool = False, native_before: int = 0, caller: int | None = None,
                 image: int | None = None):
        self.seq, self.service = seq, service
        self.status = status  # status name; None for services that return no status
        self.value = value  # the return value of services that return one (RaiseTPL)
        self.note = note
        self.unimplemented = unimplemented
        self.violation = violation  # a boot service called after ExitBootServices
        self.native_before = native_before  # calls handled in C before this one (native dispatch only)
        self.caller = caller  # the call's return address in the guest
        self.image = image  # the index in the report's chain of images of the image that made the call
        self._args = {} if args is None else args
        # Until rendered: the registry.Service, the values it kept (Service.capture), and None or a list
        # of more arguments (dicts, or callables that give one) that join them in order.
        self._svc = self._kept = self._more = None

    @staticmethod
    def pending(seq: int, service, kept: list, caller: int | None, native_before: int) -> "Call":
        """The record of a call being made to ``service`` (a registry.Service), its arguments ``kept``
        (Service.capture) to be rendered later: __init__'s work without its keyword arguments."""
        call = _new_object(Call)
        call.seq, call.service, call.caller, call.native_before = seq, service.name, caller, native_before
        call.status = call.value = call.note = call.image = call._args = call._more = None
        call.unimplemented = call.violation = False
        call._svc, call._kept = service, kept
        return call

    def set_result(self, svc, result: int) -> None:
        """What the call to ``svc`` (a registry.Service) returned: its status (or the one injected), or its value."""
        if svc.returns == "status" or self.note == INJECTED:
            self.status = status_name(result)
        elif svc.returns == "value":
            self.value = result

    @property
    def rendered(self) -> bool:
        """Whether ``args`` has been rendered (it is, the first time it is read)."""
        return self._svc is None

    @property
    def args(self) -> dict:
        if self._svc is not None:
            args = self._svc.show_args(self._kept)
            for extra in self._more or ():
                args.update(extra() if callable(extra) else extra)
            self._args, self._svc = args, None
            self._kept = self._more = None
        return self._args

    @args.setter
    def args(self, value: dict) -> None:
        self._args, self._svc = value, None
        self._kept = self._more = None

    def add_args(self, extra) -> None:
        """Arguments only the service or its variable arguments give: a dict, or a callable that gives
        one when the report is made."""
        if self._svc is None:
            self._args.update(extra() if callable(extra) else extra)
        elif self._more is None:
            self._more = [extra]
        else:
            self._more.append(extra)

    def __getstate__(self):  # a pickled record (a forked run's report) carries its rendered arguments
        args = self.args
        return {name: getattr(self, name) for name in self.__slots__ if name != "_args"} | {"_args": args}

    def __setstate__(self, state):
        for name, value in state.items():
            setattr(self, name, value)

    def __eq__(self, other):
        if not isinstance(other, Call):
            return NotImplemented
        return self.__getstate__() == other.__getstate__()

    def __repr__(self) -> str:
        return f"Call(seq={self.seq}, service={self.service!r}, args={self.args!r}, status={self.status!r})"

    def as_dict(self) -> dict:
        out: dict[str, Any] = {"seq": self.seq, "service": self.service, "args": self.args, "status": self.status}
        if self.value is not None:
            out["value"] = self.value
        if self.image is not None:
            out["image"] = self.image
        for key in ("note", "unimplemented", "violation"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        return out


@dataclass(frozen=True)
class GuestCall:
    """A request to call ``function(*args)`` in the guest (yielded by a service)."""

    function: int
    args: tuple[int, ...]
    image: int | None = None  # the image this call starts: Exit of that image returns here
    stack: int | None = None  # the top of a stack of the callee's own; None: below the caller's


def call_guest(function: int, *args: int, image: int | None = None, stack: int | None = None) -> GuestCall:
    """What a service yields to call guest code; the yield gives the function's return value
    (for an image started with ``image=``, an ImageExit when it left through Exit)."""
    return GuestCall(function, tuple(args), image, stack)


@dataclass(frozen=True)
class ImageExit:
    """How an image left through Exit: what its starter's ``yield call_guest(...)`` receives."""

    status: int
    exit_data_size: int = 0
    exit_data: int = 0  # a guest pointer to the exit data (the image allocated it)
    exited: bool = True  # False: the image returned from its entry point


class Unwind(Exception):
    """Raised by Exit: leave the image ``image`` and resume its starter with ``value``."""

    def __init__(self, image: int, value: ImageExit):
        super().__init__(f"exit of image 0x{image:x}")
        self.image, self.value = image, value


@dataclass
class Frame:
    """A service (or the firmware's own code) waiting for a guest call to return."""

    gen: Any  # the generator
    record: Call | None  # the service call's record; None for the firmware's own code
    svc: Service | None
    image: int | None = None  # the image whose entry point this frame called
    context: dict | None = None  # the CPU state to give the service's caller back, saved by the run loop


@dataclass
class Transfer:
    """What the run loop does to the CPU before it goes on: ``call`` a guest function for
    ``frame``, or ``resume`` the caller of ``frame`` with ``result``."""

    kind: str
    frame: Frame
    call: GuestCall | None = None
    result: int | None = None  # for the return register; None leaves it alone


@dataclass
class Dispatcher:
    fw: Any
    services: list[Service]  # index = stub slot; slot len(services) is the return from a guest call
    width: int = 8  # the guest's pointer width
    slots_of: Callable[[int | None], int] = lambda size: 1  # argument slots of a value (CallingConvention)
    trace: Callable[[Call], None] | None = None
    native: Any = None  # native.NativeDispatch, whose C-handled calls join ``calls`` in order
    injections: dict = field(default_factory=dict)  # service name -> machine.Injection
    observers: list = field(default_factory=list)  # fn(call, "before" | "after")
    # fn(call, slot) at every call that reaches Python, before it is answered: where a run may fork
    # (efistub.snapshot). It returns a status to fail the call with, or None; it may change services.
    snapshot: Callable | None = None
    notifications: Callable | None = None  # fw -> a generator running due notifications, or None
    vararg: Callable[[int], int] | None = None  # index -> argument slot ``index`` of the call being made
    stop_engine: Callable[[], None] = lambda: None  # stops the emulation (uc.emu_stop)
    frames: list[Frame] = field(default_factory=list)
    transfer: Transfer | None = None
    _python_calls: list[Call] = field(default_factory=list)
    _merged: tuple = ((), 0, [])

    def __post_init__(self):
        # Per slot: one decoder per argument and where its slots start, the slot count, and whether the
        # decoded values are the slots themselves (every argument one slot that needs no decoding).
        self._plans = []
        for svc in self.services:
            plan, first, same = [], 0, True
            for _, kind in svc.args:
                n = self.slots_of(kind.size)
                decoder = kind.decoder(self.width)
                plan.append((decoder, first, n))
                same = same and n == 1 and self.width == 8 and kind.keeps(self.width)
                first += n
            self._plans.append((tuple(plan), first, same))

    @property
    def return_slot(self) -> int:
        return len(self.services)

    def arg_slots(self, slot: int) -> int:
        """How many argument slots the service in ``slot`` takes."""
        return self._plans[slot][1] if slot < len(self.services) else 1

    def decode(self, slot: int, raw: list[int]) -> list:
        plan, count, same = self._plans[slot]
        if same and len(raw) == count:  # masks that keep every bit of a 64-bit slot
            return raw
        if self.width == 8:
            return [decode(r) for (decode, _, _), r in zip(plan, raw)]
        bits = 8 * self.width
        values = []
        for decode, first, n in plan:
            value = 0
            for i in range(n):
                value |= (raw[first + i] if first + i < len(raw) else 0) << (bits * i)
            values.append(decode(value))
        return values

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

    # -- a call from the guest ---------------------------------------------------------------
    def call(self, slot: int | None, raw: list[int], caller: int | None = None, native_before: int = 0) -> int | None:
        """A trap from either dispatch path: run the service in ``slot`` (None: the trap was outside the
        stubs), its argument slots ``raw``, ``caller`` its return address, ``native_before`` the calls
        handled in C before it. Returns the value for the guest's return register, or None when a
        Transfer is pending (the run loop then sets the CPU up). Never raises: an error stops the run,
        and the engine stops (``stop_engine``) whenever the run stops or a Transfer is due."""
        fw = self.fw
        try:
            if slot is None:
                fw.request_stop("fault", reason="hypercall outside the firmware's service stubs")
                return None
            services = self.services
            if slot == len(services):  # the return slot
                return self.returned(raw[0] if raw else 0)
            svc = services[slot]
            fw.mem.forget()
            values = self.decode(slot, raw)
            kept = svc.capture(fw, values)  # what the arguments point at in guest memory, read now
            record = Call.pending(len(self._python_calls), svc, kept, caller, native_before)
            self._python_calls.append(record)
            for observer in self.observers:
                observer(record, "before")
            injection = self.injections.get(svc.name)
            if svc.boot and not fw.state.boot_services_active:
                record.violation = True
                record.note = "boot service called after ExitBootServices"
                return self._complete(Frame(None, record, svc), Status.EFI_UNSUPPORTED)
            if self.snapshot is not None:
                answer = self.snapshot(record, slot)
                svc = self.services[slot]  # a forked run may answer this service differently from here on
                if answer is not None:
                    record.note = INJECTED
                    return self._complete(Frame(None, record, svc), answer)
            if injection is not None and injection.fires():
                record.note = INJECTED
                return self._complete(Frame(None, record, svc), injection.status)
            if svc.function is None:  # not implemented
                record.unimplemented = True
                return self._complete(Frame(None, record, svc), svc.absent)
            try:
                if svc.varargs is None:
                    returned = svc.function(fw, *values)
                else:  # decoded here, so the record shows them even when the call fails
                    first = self._plans[slot][1]
                    extra = svc.varargs.decode(fw, lambda i: self.vararg(first + i))
                    record.add_args(lambda show=svc.varargs.show, value=extra: show(value))
                    returned = svc.function(fw, *values, extra)
            except BaseException as e:  # noqa: BLE001 - turned into a status, or an error outcome
                return self._failed(Frame(None, record, svc), e)
            if isinstance(returned, GeneratorType):
                return self._advance(Frame(returned, record, svc), None)
            if fw.state.notify_armed:  # a notification may be due: the slower path that can run it
                return self._complete(Frame(None, record, svc), returned)
            return self._result(record, svc, returned)
        except BaseException as e:  # never let an exception escape into the engine
            fw.request_stop("error", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
            return None
        finally:
            if fw.stop is not None or self.transfer is not None:
                self.stop_engine()

    def start(self, gen) -> int | None:
        """Run firmware code (a generator, not a service call) that may call the guest."""
        return self._advance(Frame(gen, None, None), None)

    def returned(self, value: int) -> int | None:
        """A guest function called through call_guest returned ``value``."""
        if not self.frames:
            self.fw.request_stop("fault", reason="the firmware's return stub was reached with no guest call pending")
            return None
        return self._advance(self.frames.pop(), value)

    # -- driving services that call the guest -----------------------------------------------
    def _advance(self, frame: Frame, value) -> int | None:
        try:
            request = frame.gen.send(value)
        except StopIteration as stop:
            return self._complete(frame, stop.value)
        except BaseException as e:  # noqa: BLE001
            return self._failed(frame, e)
        if not isinstance(request, GuestCall):
            return self._failed(frame, TypeError(f"a service yielded {request!r}; yield call_guest(...)"))
        if request.image is not None:
            frame.image = request.image
        self.frames.append(frame)
        self.transfer = Transfer("call", frame, request)
        return None

    def _failed(self, frame: Frame, error: BaseException) -> int | None:
        record, fw = frame.record, self.fw
        if isinstance(error, Unwind):
            return self._unwind(frame, error)
        if isinstance(error, EfiError):
            if record is not None:
                record.note = error.note
            return self._complete(frame, error.status)
        if isinstance(error, GuestMemoryError):
            if record is not None:
                self.bad_pointer(record, error)
            return self._complete(frame, Status.EFI_INVALID_PARAMETER)
        if not isinstance(error, Exception):
            raise error
        name = frame.svc.name if frame.svc is not None else "the firmware"
        fw.request_stop("error", service=name, error=f"{type(error).__name__}: {error}",
                        traceback="".join(traceback.format_exception(error)))
        if record is not None:
            record.note = f"internal error: {error}"
        return self._complete(frame, Status.EFI_DEVICE_ERROR)

    def _unwind(self, frame: Frame, unwind: Unwind) -> int | None:
        """Exit: finish the Exit call, drop the frames of the exiting image, resume its starter."""
        depth = next((i for i in range(len(self.frames) - 1, -1, -1) if self.frames[i].image is not None), None)
        if depth is None or self.frames[depth].image != unwind.image:  # only the running image may exit
            return self._complete(frame, Status.EFI_INVALID_PARAMETER)
        if frame.record is not None:
            self.finish(frame.record, frame.svc, Status.EFI_SUCCESS)
        starter = self.frames[depth]
        for abandoned in self.frames[depth + 1:]:
            if abandoned.record is not None and abandoned.record.status is None and abandoned.record.value is None:
                abandoned.record.note = "abandoned: its image left through Exit"
        del self.frames[depth:]
        self.transfer = None
        result = self._advance(starter, unwind.value)
        if result is not None:  # the starter finished at once: give its caller the result
            self.transfer = Transfer("resume", starter, result=result)
        return None

    def _complete(self, frame: Frame, returned) -> int | None:
        """The service is done: due notifications first, then record the result and return it."""
        due = self.notifications(self.fw) if self.notifications is not None else None
        if due is not None:
            frame.gen = _then(due, returned)
            return self._advance(frame, None)
        guest = self._result(frame.record, frame.svc, returned)
        if frame.context is None:
            return guest  # still inside the original trap: the hook writes the return register
        self.transfer = Transfer("resume", frame, result=guest)
        return None

    def _result(self, record: Call | None, svc: Service | None, returned) -> int | None:
        """Record what a service returned; the value for the guest's return register."""
        if isinstance(returned, Result):
            if record is not None:
                if returned.note:
                    record.note = returned.note
                if returned.details:
                    record.add_args(returned.details)
            returned = returned.value
        result = Status.EFI_SUCCESS if returned is None else int(returned)
        if record is not None:
            self.finish(record, svc, result)
        if svc is None:  # the firmware's own code: its caller's registers stay as they were
            return None
        if svc.returns != "status" or self.width == 8:  # a 64-bit guest sees a status as it is
            return result
        return to_guest(result, self.width)

    def take_transfer(self) -> Transfer | None:
        transfer, self.transfer = self.transfer, None
        return transfer

    # -- records --------------------------------------------------------------------------------
    @staticmethod
    def bad_pointer(record: Call, error: GuestMemoryError) -> None:
        record.note = f"bad guest pointer: {error}"

    def finish(self, record: Call, svc: Service, result: int) -> None:
        record.set_result(svc, result)
        for observer in self.observers:
            observer(record, "after")
        if self.trace is not None:
            self.trace(record)


def _then(first, returned):
    """Run the generator ``first`` (due notifications), then return what the service returned."""
    yield from first
    return returned
