"""The context a Python implementation of a service receives (Machine.service, install_protocol)."""

from __future__ import annotations

import uuid

from .guids import Guid
from .memory import MemoryType


class Context:
    """Guest memory, UCS-2 strings, GUIDs and the firmware state, for one machine.

    Every accessor raises ``efistub.GuestMemoryError`` for memory the guest does not
    have; raised from a service, that becomes EFI_INVALID_PARAMETER for the guest and
    a note on the call, as for efistub's own services.
    """

    def __init__(self, firmware):
        self.firmware = firmware
        self.remark: str | None = None  # what note() said, shown on the call

    # guest memory
    def read(self, address: int, size: int) -> bytes:
        return self.firmware.mem.read(address, size)

    def write(self, address: int, data: bytes) -> None:
        self.firmware.mem.write(address, bytes(data))

    def read_u32(self, address: int) -> int:
        return self.firmware.mem.read_u32(address)

    def read_u64(self, address: int) -> int:
        return self.firmware.mem.read_u64(address)

    def write_u32(self, address: int, value: int) -> None:
        self.firmware.mem.write_u32(address, value)

    def write_u64(self, address: int, value: int) -> None:
        self.firmware.mem.write_u64(address, value)

    # UINTN, pointers, handles and EFI_EVENTs: as wide as the guest's pointers (``width``).
    # UINT64 and EFI_PHYSICAL_ADDRESS are read_u64/write_u64 on every architecture.
    @property
    def width(self) -> int:
        """The guest's pointer width in bytes: 8, or 4 for an IA32 image."""
        return self.firmware.width

    def read_uintn(self, address: int) -> int:
        return self.firmware.mem.read_uintn(address)

    def write_uintn(self, address: int, value: int) -> None:
        self.firmware.mem.write_uintn(address, value)

    # strings and GUIDs
    def read_string(self, address: int) -> str:
        """A NUL-terminated UCS-2 string."""
        return self.firmware.mem.read_ucs2(address)

    def write_string(self, address: int, text: str) -> None:
        """``text`` as UCS-2 with its NUL."""
        self.firmware.mem.write_ucs2(address, text)

    def read_guid(self, address: int) -> Guid:
        return self.firmware.mem.read_guid(address)

    def write_guid(self, address: int, guid: "uuid.UUID | str") -> None:
        self.firmware.mem.write_guid(address, Guid(str(guid)))

    # firmware state
    def allocate_pool(self, size: int, memory_type: int = MemoryType.EfiBootServicesData) -> int:
        return self.firmware.allocate_pool(memory_type, size)

    @property
    def variables(self):
        return self.firmware.variables

    @property
    def boot_services_active(self) -> bool:
        return bool(self.firmware.state.boot_services_active)

    def note(self, text: str) -> None:
        """A remark shown on the current call in the report."""
        self.remark = text
