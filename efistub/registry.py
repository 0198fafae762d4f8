"""The service registry: the single list of what efistub implements.

A service is a plain function named after the UEFI specification, registered with
``@service(name, Arg=TYPE, ...)``. The keyword arguments declare the service's
parameters in order, with their types. A type knows its size (a UINTN is as wide
as the guest's pointers, a UINT64 takes two argument slots on IA32), turns the raw
value into what the function receives (``decoder(width)``) and renders it for
traces and reports (``show``). Functions receive the firmware state first, then the
decoded values, and return a Status (or raise EfiError). A function may also be a
generator that yields ``dispatch.call_guest(...)`` to call guest code (notification
functions, an image's entry point) and resumes with its result.

This module imports no service: efistub.catalog imports them all.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable

from .errors import EfiError, GuestMemoryError
from .status import Status, from_guest as status_from_guest

def _plain(value):
    return value


def _unreadable(address: int) -> str:
    return f"<unreadable 0x{address:x}>"


# What a record keeps of an argument that points into guest memory is read at the call (the guest may
# change that memory later) and rendered with the report: a Guid, or the text read; the reads are the
# ones the service itself makes (GuestMemory remembers them for the call).
def _capture_guid(fw, address):
    if not address:
        return None
    try:
        return fw.mem.read_guid(address)
    except GuestMemoryError:
        return _unreadable(address)


def _show_guid(guid):
    return guid if guid is None or isinstance(guid, str) else guid.name


SHOWN_STRING = 512  # a CHAR16 * longer than this (in characters, its NUL included) is shown as unreadable


def _capture_string(fw, address):
    if not address:
        return None
    try:
        text = fw.mem.read_ucs2(address)
    except GuestMemoryError:
        return _unreadable(address)
    return text if len(text) < SHOWN_STRING else _unreadable(address)


def _capture_ascii(fw, address):
    if not address:
        return None
    try:
        return fw.mem.read_ascii(address, limit=256)
    except GuestMemoryError:
        return _unreadable(address)


def _unsigned(bits: int | None):
    """A decoder factory: the value masked to ``bits`` (None: the guest's UINTN)."""
    def decoder(width: int):
        mask = (1 << (bits or 8 * width)) - 1
        return lambda v: v & mask
    return decoder


def _int32(width: int):
    return lambda v: (v & 0xFFFFFFFF) - ((v & 0x80000000) << 1)


def _boolean(width: int):
    return lambda v: bool(v & 0xFF)


def _status(width: int):
    mask = (1 << (8 * width)) - 1
    return lambda v: status_from_guest(v & mask, width)


@dataclass(frozen=True)
class ArgType:
    name: str
    size: int | None  # bytes; None: a UINTN, pointer or handle, as wide as the guest's pointers
    decoder: Callable[[int], Callable[[int], Any]]  # width -> (raw value -> what the service receives)
    show: Callable[[Any], Any]  # what the record keeps -> JSON value (when the report is made)
    # (firmware, decoded value) -> what the record keeps of guest memory the value points at, read at the
    # call; None: the record keeps the decoded value
    capture: Callable[[Any, Any], Any] | None = None
    masked: bool = False  # the decoder masks the value to ``size`` bytes (a UINTN's: the slot's) and does no more

    def keeps(self, width: int) -> bool:
        """Whether decoding a value of one ``width``-byte slot gives it back unchanged."""
        return self.masked and (self.size is None or self.size >= width)


UINTN = ArgType("UINTN", None, _unsigned(None), _plain, masked=True)
UINT64 = ArgType("UINT64", 8, _unsigned(64), _plain, masked=True)
UINT32 = ArgType("UINT32", 4, _unsigned(32), _plain, masked=True)
INT32 = ArgType("INT32", 4, _int32, _plain)
UINT16 = ArgType("UINT16", 2, _unsigned(16), _plain, masked=True)
UINT8 = ArgType("UINT8", 1, _unsigned(8), _plain, masked=True)
BOOLEAN = ArgType("BOOLEAN", 1, _boolean, _plain)
POINTER = ArgType("POINTER", None, _unsigned(None), _plain, masked=True)  # any guest pointer, in or out
HANDLE = POINTER
EVENT = POINTER
GUID_PTR = ArgType("EFI_GUID *", None, _unsigned(None), _show_guid, _capture_guid, masked=True)
STRING = ArgType("CHAR16 *", None, _unsigned(None), _plain, _capture_string, masked=True)
ASCII = ArgType("CHAR8 *", None, _unsigned(None), _plain, _capture_ascii, masked=True)
STATUS = ArgType("EFI_STATUS", None, _status, Status.name_of)


@dataclass(frozen=True)
class VarArgs:
    """The variable arguments after the declared ones, decoded by the dispatcher:
    ``decode(fw, slot)`` gives the value the service receives, ``slot(i)`` reading the
    i-th slot after the declared arguments; ``show(value)`` the report's entries (when the
    report is made: the value holds what they need)."""

    decode: Callable[[Any, Callable[[int], int]], Any]
    show: Callable[[Any], dict]


MAX_VARARG_PAIRS = 128


def _decode_pairs(fw, slot):
    pairs = []
    for i in range(0, 2 * MAX_VARARG_PAIRS, 2):
        guid_ptr = slot(i)
        if not guid_ptr:
            return pairs
        pairs.append((fw.mem.read_guid(guid_ptr), slot(i + 1)))
    raise EfiError(Status.EFI_INVALID_PARAMETER, f"no NULL after {MAX_VARARG_PAIRS} GUID/interface pairs")


# (EFI_GUID *, VOID *) pairs ended by a NULL GUID: (Un)InstallMultipleProtocolInterfaces
GUID_INTERFACE_PAIRS = VarArgs(_decode_pairs, lambda pairs: {"Protocols": [g.name for g, _ in pairs]})


def enum_arg(cls: type[enum.IntEnum], width: int = 32) -> ArgType:
    """An enumerated value; shown by name when it has one."""
    def show(value):
        try:
            return cls(value).name
        except ValueError:
            return value

    return ArgType(cls.__name__, width // 8, _unsigned(width), show)


@dataclass(frozen=True)
class Service:
    name: str
    function: Callable | None
    args: tuple[tuple[str, ArgType], ...]
    varargs: VarArgs | None = None
    boot: bool = True  # a boot service, gone after ExitBootServices
    returns: str = "status"  # "status", "value" (e.g. the old TPL) or "void"
    absent: int = Status.EFI_UNSUPPORTED  # what the call returns when nothing implements it

    def without_implementation(self) -> "Service":
        """This service as a firmware without it answers: look-ups find nothing, the rest is unsupported."""
        absent = Status.EFI_NOT_FOUND if self.name in LOOKUPS else Status.EFI_UNSUPPORTED
        return Service(self.name, None, self.args, self.varargs, self.boot, self.returns, absent)

    @property
    def implemented(self) -> bool:
        return self.function is not None

    @cached_property
    def _captures(self) -> tuple:
        return tuple((i, kind.capture) for i, (_, kind) in enumerate(self.args) if kind.capture is not None)

    def capture(self, fw, values: list) -> list:
        """What a record keeps of the decoded ``values``: the values, with what they point at in guest
        memory read now (``ArgType.capture``)."""
        if not self._captures:
            return values
        kept = list(values)
        for i, capture in self._captures:
            if i < len(kept):
                kept[i] = capture(fw, kept[i])
        return kept

    def show_args(self, kept) -> dict:
        """The report's arguments from what a record kept (``capture``)."""
        return {name: kind.show(value) for (name, kind), value in zip(self.args, kept)}


REGISTRY: dict[str, Service] = {}
# Services whose "nothing there" answer is EFI_NOT_FOUND: the Linux stub treats
# EFI_UNSUPPORTED from them as fatal.
LOOKUPS = frozenset({"LocateProtocol", "LocateHandle", "LocateHandleBuffer", "LocateDevicePath"})


def service(name: str, *, varargs: VarArgs | None = None, boot: bool = True, returns: str = "status",
            **args: ArgType):
    """Register the decorated function as the implementation of service ``name``.

    ``varargs``: the function also receives the variable arguments after the declared
    ones, decoded (GUID_INTERFACE_PAIRS for InstallMultipleProtocolInterfaces). ``boot``:
    False for runtime services, which stay callable after ExitBootServices.
    """

    def register(function):
        if name in REGISTRY:
            raise ValueError(f"service {name} registered twice")
        REGISTRY[name] = Service(name, function, tuple(args.items()), varargs, boot, returns)
        return function

    return register


def declare(name: str, *, boot: bool = True, **args: ArgType) -> None:
    """Declare a service efistub does not implement: calls return EFI_UNSUPPORTED, are
    recorded with their decoded arguments, and a Machine may supply an implementation."""
    if name in REGISTRY:
        raise ValueError(f"service {name} registered twice")
    REGISTRY[name] = Service(name, None, tuple(args.items()), None, boot)


@dataclass(frozen=True)
class Result:
    """What a service returns when it has more to say than its status (or value): a note for
    the report, and arguments only it could decode (the GUIDs of InstallMultipleProtocolInterfaces)."""

    value: int
    note: str | None = None
    details: dict | None = None
