"""Firmware functions called directly, as the dispatcher would call them, on the firmware of a finished run
(its memory, pools and protocols stay usable while its Machine lives)."""

from __future__ import annotations

from pathlib import Path

from efistub.machine import Machine
from efistub.memory import MemoryType
from efistub.registry import Result

HELLO = Path(__file__).parent / "guests" / "x86_64" / "hello.efi"


def finished_run(**options) -> Machine:
    """A run of hello.efi to its end; ``options`` are Machine's."""
    machine = Machine(str(HELLO), **options)
    machine.run()
    return machine


def put(fw, data: bytes) -> int:
    """``data`` in a new pool allocation of the firmware."""
    return fw.store(MemoryType.EfiBootServicesData, data)


def call(fw, function, *args):
    """Call a service's function as the dispatcher would: (value, note, the reason of a fault it ended the run
    with, or None)."""
    fw.stop = None
    result = function(fw, *args)
    reason = fw.stop.details["reason"] if fw.stop is not None else None
    fw.stop = None
    if isinstance(result, Result):
        return result.value, result.note, reason
    return result, None, reason
