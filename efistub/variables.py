"""The in-memory UEFI variable store.

A store has two regions, as edk2 has: the non-volatile one (flash, what a --vars file
holds) and the volatile one. Each counts the bytes a variable takes its own way
(``Region``): efistub's own store counts names and data; a store loaded from an edk2
flash image counts edk2's variable records (efistub/varstore.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from .guids import Guid
from .status import Status

NON_VOLATILE = 0x01
BOOTSERVICE_ACCESS = 0x02
RUNTIME_ACCESS = 0x04
HARDWARE_ERROR_RECORD = 0x08
AUTHENTICATED_WRITE_ACCESS = 0x10
TIME_BASED_AUTHENTICATED_WRITE_ACCESS = 0x20
APPEND_WRITE = 0x40
ENHANCED_AUTHENTICATED_ACCESS = 0x80
AUTHENTICATED = AUTHENTICATED_WRITE_ACCESS | TIME_BASED_AUTHENTICATED_WRITE_ACCESS | ENHANCED_AUTHENTICATED_ACCESS
KNOWN_ATTRIBUTES = 0xFF
BS_RT = BOOTSERVICE_ACCESS | RUNTIME_ACCESS  # a volatile variable that boot and runtime services see
# EDK2's EFI_VARIABLE_ATTRIBUTES_MASK: what a SetVariable may give when the store has authenticated
# variables (ENHANCED_AUTHENTICATED_ACCESS is a reserved bit there; AUTHENTICATED_WRITE_ACCESS is
# refused on its own)
ATTRIBUTES_MASK = (NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS | HARDWARE_ERROR_RECORD
                   | TIME_BASED_AUTHENTICATED_WRITE_ACCESS | APPEND_WRITE)

STORAGE_SIZE = 256 * 1024
MAX_VARIABLE_SIZE = 64 * 1024


def payload_size(name: str, data_size: int) -> int:
    """Bytes of a variable's UCS-2 name with its NUL and its data."""
    return 2 * (len(name) + 1) + data_size


class EfiTime(NamedTuple):
    """A timestamp that is no date (month 0, day 31 of a 30-day month): an EFI_TIME's fields, kept as
    they are, as EDK2 keeps them. sbvarsign writes such TimeStamps (its months count from 0).
    virt-firmware writes it like a datetime (``microsecond`` is 0)."""

    year: int
    month: int
    day: int
    hour: int
    minute: int
    second: int

    @property
    def microsecond(self) -> int:
        return 0


def time_key(timestamp: "datetime | EfiTime | None") -> tuple:
    """A timestamp's (Year, Month, Day, Hour, Minute, Second), as EDK2 compares them; no timestamp
    is all zeros."""
    if timestamp is None:
        return (0, 0, 0, 0, 0, 0)
    return (timestamp.year, timestamp.month, timestamp.day, timestamp.hour, timestamp.minute, timestamp.second)


@dataclass
class Variable:
    name: str
    guid: Guid
    attributes: int
    data: bytes
    timestamp: datetime | EfiTime | None = None  # time-based authenticated variables: their last write's

    @property
    def size(self) -> int:
        """Bytes the variable takes in the store: its UCS-2 name with NUL, and its data."""
        return payload_size(self.name, len(self.data))

    @property
    def non_volatile(self) -> bool:
        return bool(self.attributes & NON_VOLATILE)


@dataclass(frozen=True)
class Region:
    """One region of a store: ``capacity`` bytes of variable records, a record being ``header``
    bytes, the name and the data, rounded up to ``alignment``. ``max_variable``: the most a
    variable's name and data may take together."""

    capacity: int = STORAGE_SIZE
    max_variable: int = MAX_VARIABLE_SIZE
    header: int = 0
    alignment: int = 1

    def record_size(self, name: str, data_size: int) -> int:
        size = self.header + payload_size(name, data_size)
        return -(-size // self.alignment) * self.alignment


class VariableStore:
    """Variables keyed by (name, vendor GUID), kept in creation order for GetNextVariableName
    (an update keeps a variable's place)."""

    def __init__(self, capacity: int = STORAGE_SIZE, max_variable: int = MAX_VARIABLE_SIZE, *,
                 non_volatile: Region | None = None, volatile: Region | None = None):
        self.non_volatile = non_volatile or Region(capacity, max_variable)
        self.volatile = volatile or Region(capacity, max_variable)
        self.origin = None  # the file the store was opened from (efistub.varstore.Origin), or None
        self.secure_boot = None  # its Secure Boot state (efistub.secureboot.SecureBootState), or None: no
        # authenticated variables (runs without a store)
        # by (name, the vendor GUID's number): a Guid hashes in Python (uuid.UUID.__hash__), its number in C
        self._vars: dict[tuple[str, int], Variable] = {}

    def __iter__(self):
        return iter(list(self._vars.values()))

    def __len__(self) -> int:
        return len(self._vars)

    def get(self, name: str, guid: "Guid | str") -> Variable | None:
        return self._vars.get((name, (guid if type(guid) is Guid else Guid(str(guid))).int))

    def set(self, name: str, guid: "Guid | str", attributes: int = NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS,
            data: bytes = b"", timestamp: datetime | EfiTime | None = None) -> Variable:
        """Create or replace a variable (for tests: no attribute or size checks)."""
        guid = Guid(str(guid))
        var = Variable(name, guid, attributes, bytes(data), timestamp)
        self._vars[(name, guid.int)] = var
        return var

    def delete(self, name: str, guid: "Guid | str") -> None:
        del self._vars[(name, Guid(str(guid)).int)]

    # -- sizes ---------------------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        return self.non_volatile.capacity

    @property
    def max_variable(self) -> int:
        return self.non_volatile.max_variable

    def region(self, attributes: int) -> Region:
        """The region a variable with these attributes lives in."""
        return self.non_volatile if attributes & NON_VOLATILE else self.volatile

    def used(self, attributes: int) -> int:
        """Bytes taken in the region of ``attributes``."""
        region, nv = self.region(attributes), bool(attributes & NON_VOLATILE)
        return sum(region.record_size(v.name, len(v.data)) for v in self._vars.values() if v.non_volatile == nv)

    def remaining(self, attributes: int) -> int:
        return self.region(attributes).capacity - self.used(attributes)

    def fits(self, name: str, guid: "Guid | str", attributes: int, data_size: int) -> bool:
        """Whether the region of ``attributes`` has room for this variable, in place of the one
        it replaces."""
        region, existing = self.region(attributes), self.get(name, guid)
        freed = 0
        if existing is not None and existing.non_volatile == bool(attributes & NON_VOLATILE):
            freed = region.record_size(existing.name, len(existing.data))
        return region.record_size(name, data_size) - freed <= self.remaining(attributes)

    def query(self, attributes: int) -> tuple[int, int, int]:
        """QueryVariableInfo's answer for the region of ``attributes``: its capacity, what is left
        and the largest variable that still fits (as edk2: no more than what is left)."""
        region, remaining = self.region(attributes), self.remaining(attributes)
        return region.capacity, remaining, max(0, min(region.max_variable, remaining - region.header))


def no_room(store: VariableStore, name: str, guid, attributes: int, data_size: int) -> tuple[Status, str] | None:
    """Why the store cannot take this variable, with a note: larger than its largest variable
    (EFI_INVALID_PARAMETER), or more than its region has left (EFI_OUT_OF_RESOURCES)."""
    problem = too_large(store, name, attributes, data_size)
    if problem is not None:
        return problem
    if not store.fits(name, guid, attributes, data_size):
        region, kind = store.region(attributes), _kind(attributes)
        return Status.EFI_OUT_OF_RESOURCES, (f"{name}: {region.record_size(name, data_size)} bytes do not fit in "
                                             f"the {kind} store ({store.remaining(attributes)} bytes left)")
    return None


def too_large(store: VariableStore, name: str, attributes: int, data_size: int,
              what: str = "name and data") -> tuple[Status, str] | None:
    """EFI_INVALID_PARAMETER, with a note, when a name and ``data_size`` bytes are more than the
    largest variable of the region of ``attributes``."""
    region, size = store.region(attributes), payload_size(name, data_size)
    if size > region.max_variable:
        return Status.EFI_INVALID_PARAMETER, (f"{name}: {size} bytes of {what}, more than the "
                                              f"{region.max_variable} a {_kind(attributes)} variable may take")
    return None


def _kind(attributes: int) -> str:
    return "non-volatile" if attributes & NON_VOLATILE else "volatile"
