"""A protocol's structure in guest memory, every function member pointing at its stub; and what
a protocol function without a status does with guest memory it cannot use, and when it has no
pool for what it returns."""

from __future__ import annotations

import functools

from ..errors import EfiError, GuestMemoryError
from ..memory import MemoryType
from ..registry import Result


def make_interface(fw, prefix: str, members, layout, **data) -> int:
    """Write ``layout`` with function members ``prefix.member`` into firmware memory."""
    value = {name: fw.stub_address[f"{prefix}.{name}"] for name in members}
    value.update(data)
    address = fw.allocate_pool(MemoryType.EfiBootServicesData, layout.sizeof())
    fw.mem.write_struct(layout, address, value)
    return address


def fault_on_bad_memory(prefix: str):
    """For a protocol function that returns a value or nothing, not a status: guest memory it
    cannot read or write (a wild pointer, a string or device path with no end within its bound)
    ends the run as a fault, since the guest cannot be told. The call returns 0, with a note."""
    def wrap(function):
        @functools.wraps(function)
        def run(fw, *args):
            try:
                return function(fw, *args)
            except GuestMemoryError as error:
                fw.request_stop("fault", reason=f"{prefix}.{function.__name__}: {error}")
                return Result(0, note=f"bad guest pointer: {error}")
        return run
    return wrap


def new_pool(fw, data: bytes, **details):
    """For a protocol function that returns a pointer, not a status: ``data`` in a new pool allocation
    of EfiBootServicesData (the caller's to FreePool), or NULL with a note when there is no pool for
    it. ``details`` are shown with the report's call."""
    try:
        address = fw.store(MemoryType.EfiBootServicesData, data)
    except EfiError as e:
        return Result(0, note=f"no pool for {len(data)} bytes: {e.note or e.status}")
    return Result(address, details=details) if details else address
