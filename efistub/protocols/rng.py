"""EFI_RNG_PROTOCOL with the raw algorithm, fed by a stream that depends only on --seed."""

from __future__ import annotations

from .. import guids
from ..layouts import efi
from ..registry import GUID_PTR, POINTER, UINTN, service
from ..status import Status
from .interface import make_interface

ALGORITHMS = [guids.RNG_ALGORITHM_RAW]


@service("Rng.GetInfo", This=POINTER, RNGAlgorithmListSize=POINTER, RNGAlgorithmList=POINTER)
def GetInfo(fw, this, size_ptr, list_ptr):
    if not size_ptr:
        return Status.EFI_INVALID_PARAMETER
    needed = 16 * len(ALGORITHMS)
    available = fw.mem.read_uintn(size_ptr)
    fw.mem.write_uintn(size_ptr, needed)
    if not list_ptr or available < needed:
        return Status.EFI_BUFFER_TOO_SMALL
    fw.mem.write(list_ptr, b"".join(g.to_bytes() for g in ALGORITHMS))
    return Status.EFI_SUCCESS


@service("Rng.GetRNG", This=POINTER, RNGAlgorithm=GUID_PTR, RNGValueLength=UINTN, RNGValue=POINTER)
def GetRNG(fw, this, algorithm, length, value):
    if not value or not length:
        return Status.EFI_INVALID_PARAMETER
    if algorithm and fw.mem.read_guid(algorithm) not in ALGORITHMS:
        return Status.EFI_UNSUPPORTED
    fw.mem.write(value, fw.random.bytes(length))
    return Status.EFI_SUCCESS


def install(fw) -> int | None:
    """EFI_RNG_PROTOCOL, unless the run has none (--no-rng); return the handle."""
    if not fw.options.rng:
        return None
    interface = make_interface(fw, "Rng", efi.RNG, fw.layout.Rng)
    return fw.handles.install(None, guids.RNG_PROTOCOL, interface).address
