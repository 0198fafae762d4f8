"""The in-memory UEFI variable store.

A store has two regions, as edk2 has: the non-volatile one (flash, what a --vars file
holds) and the volatile one. Each counts the bytes a variable takes its own way
(``Region``): efistub's own store counts names and data; a store loaded from an edk2
flash image counts edk2's variable records (efistub/varstore.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .guids import Guid

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

STORAGE_SIZE = 256 * 1024
MAX_VARIABLE_SIZE = 64 * 1024


def payload_size(name: str, data_size: int) -> int:
    """Bytes of a variable's UCS-2 name with its NUL and its data."""
    return 2 * (len(name) + 1) + data_size


@dataclass
class Variable:
    name: str
    guid: Guid
    attributes: int
    data: bytes
    timestamp: datetime | None = None  # time-based authenticated variables: the time of their last write

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
        self._vars: dict[tuple[str, Guid], Variable] = {}

    def __iter__(self):
        return iter(list(self._vars.values()))

    def __len__(self) -> int:
        return len(self._vars)

    def get(self, name: str, guid: "Guid | str") -> Variable | None:
        return self._vars.get((name, Guid(str(guid))))

    def set(self, name: str, guid: "Guid | str", attributes: int = NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS,
            data: bytes = b"", timestamp: datetime | None = None) -> Variable:
        """Create or replace a variable (for tests: no attribute or size checks)."""
        guid = Guid(str(guid))
        var = Variable(name, guid, attributes, bytes(data), timestamp)
        self._vars[(name, guid)] = var
        return var

    def delete(self, name: str, guid: "Guid | str") -> None:
        del self._vars[(name, Guid(str(guid)))]

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
