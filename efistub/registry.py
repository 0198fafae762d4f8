"""The service registry: the single list of what efistub implements.

A service is a plain function named after the UEFI specification, registered with
``@service(name, Arg=TYPE, ...)``. The keyword arguments declare the service's
parameters in order, with their types. Types decode the raw 64-bit register or
stack value for the function (``decode``) and render it for traces and reports
(``show``). Functions receive the firmware state first, then the decoded values,
and return a Status (or raise EfiError).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Callable

from .errors import GuestMemoryError
from .status import Status

MASK64 = 0xFFFFFFFFFFFFFFFF


@dataclass(frozen=True)
class ArgType:
    name: str
    decode: Callable[[int], Any]
    show: Callable[[Any, Any], Any]  # (firmware, decoded value) -> JSON value


def _plain(fw, value):
    return value


def _guid(fw, address):
    if not address:
        return None
    try:
        return fw.mem.read_guid(address).name
    except GuestMemoryError:
        return f"<unreadable 0x{address:x}>"


def _string(fw, address):
    if not address:
        return None
    try:
        return fw.mem.read_ucs2(address, limit=512)
    except GuestMemoryError:
        return f"<unreadable 0x{address:x}>"


UINTN = ArgType("UINTN", lambda v: v & MASK64, _plain)
UINT64 = UINTN
UINT32 = ArgType("UINT32", lambda v: v & 0xFFFFFFFF, _plain)
INT32 = ArgType("INT32", lambda v: (v & 0xFFFFFFFF) - ((v & 0x80000000) << 1), _plain)
UINT8 = ArgType("UINT8", lambda v: v & 0xFF, _plain)
BOOLEAN = ArgType("BOOLEAN", lambda v: bool(v & 0xFF), _plain)
POINTER = ArgType("POINTER", lambda v: v & MASK64, _plain)  # any guest pointer, in or out
HANDLE = POINTER
EVENT = POINTER
GUID_PTR = ArgType("EFI_GUID *", lambda v: v & MASK64, _guid)
STRING = ArgType("CHAR16 *", lambda v: v & MASK64, _string)
STATUS = ArgType("EFI_STATUS", lambda v: v & MASK64, lambda fw, v: Status.name_of(v))


def enum_arg(cls: type[enum.IntEnum], width: int = 32) -> ArgType:
    """An enumerated value; shown by name when it has one."""
    mask = (1 << width) - 1

    def show(fw, value):
        try:
            return cls(value).name
        except ValueError:
            return value

    return ArgType(cls.__name__, lambda v: v & mask, show)


@dataclass(frozen=True)
class Service:
    name: str
    function: Callable | None
    args: tuple[tuple[str, ArgType], ...]
    varargs: bool = False
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

    def show_args(self, fw, values) -> dict:
        return {name: kind.show(fw, value) for (name, kind), value in zip(self.args, values)}


REGISTRY: dict[str, Service] = {}
# Services whose "nothing there" answer is EFI_NOT_FOUND: the Linux stub treats
# EFI_UNSUPPORTED from them as fatal.
LOOKUPS = frozenset({"LocateProtocol", "LocateHandle", "LocateHandleBuffer", "LocateDevicePath"})


def service(name: str, *, varargs: bool = False, boot: bool = True, returns: str = "status", **args: ArgType):
    """Register the decorated function as the implementation of service ``name``.

    ``varargs``: the function also receives a callable giving the i-th argument after
    the declared ones (InstallMultipleProtocolInterfaces). ``boot``: False for runtime
    services, which stay callable after ExitBootServices.
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
    REGISTRY[name] = Service(name, None, tuple(args.items()), False, boot)



def load_all() -> dict[str, Service]:
    """Import every module that registers services; return the registry."""
    from . import protocols, services  # noqa: F401 - imported for their registrations

    return REGISTRY
