"""The in-memory UEFI variable store."""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass
class Variable:
    name: str
    guid: Guid
    attributes: int
    data: bytes

    @property
    def size(self) -> int:
        """Bytes the variable takes in the store: its UCS-2 name with NUL, and its data."""
        return 2 * (len(self.name) + 1) + len(self.data)


class VariableStore:
    """Variables keyed by (name, vendor GUID), kept in creation order for GetNextVariableName."""

    def __init__(self, capacity: int = STORAGE_SIZE, max_variable: int = MAX_VARIABLE_SIZE):
        self.capacity = capacity
        self.max_variable = max_variable
        self._vars: dict[tuple[str, Guid], Variable] = {}

    def __iter__(self):
        return iter(list(self._vars.values()))

    def __len__(self) -> int:
        return len(self._vars)

    def get(self, name: str, guid: "Guid | str") -> Variable | None:
        return self._vars.get((name, Guid(str(guid))))

    def set(self, name: str, guid: "Guid | str", attributes: int = NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS,
            data: bytes = b"") -> Variable:
        """Create or replace a variable (for tests: no attribute or size checks)."""
        guid = Guid(str(guid))
        var = Variable(name, guid, attributes, bytes(data))
        self._vars[(name, guid)] = var
        return var

    def delete(self, name: str, guid: "Guid | str") -> None:
        del self._vars[(name, Guid(str(guid)))]

    @property
    def used(self) -> int:
        return sum(v.size for v in self._vars.values())

    @property
    def remaining(self) -> int:
        return self.capacity - self.used
