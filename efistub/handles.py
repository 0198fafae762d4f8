"""The handle database: handles, the protocol interfaces installed on them, and open records."""

from __future__ import annotations

from dataclasses import dataclass, field

from .guids import Guid

# OpenProtocol attributes (UEFI 2.10 §7.3)
BY_HANDLE_PROTOCOL = 0x01
GET_PROTOCOL = 0x02
TEST_PROTOCOL = 0x04
BY_CHILD_CONTROLLER = 0x08
BY_DRIVER = 0x10
EXCLUSIVE = 0x20
OPEN_ATTRIBUTES = (BY_HANDLE_PROTOCOL, GET_PROTOCOL, TEST_PROTOCOL, BY_CHILD_CONTROLLER,
                   BY_DRIVER, EXCLUSIVE, BY_DRIVER | EXCLUSIVE)

HANDLE_SIZE = 16  # bytes of guest memory behind each handle, so handles are real addresses


@dataclass
class OpenRecord:
    agent: int
    controller: int
    attributes: int
    count: int = 1


@dataclass
class Handle:
    address: int
    protocols: dict[Guid, int] = field(default_factory=dict)  # GUID -> interface, in install order
    opens: dict[Guid, list[OpenRecord]] = field(default_factory=dict)


class HandleDatabase:
    def __init__(self, new_handle_address):
        self._new_address = new_handle_address  # callable giving guest memory for a new handle
        self.handles: dict[int, Handle] = {}

    def create(self) -> Handle:
        h = Handle(self._new_address(HANDLE_SIZE))
        self.handles[h.address] = h
        return h

    def get(self, address: int) -> Handle | None:
        return self.handles.get(address)

    def install(self, handle: Handle | None, guid: Guid, interface: int) -> Handle:
        if handle is None:
            handle = self.create()
        handle.protocols[guid] = interface
        return handle

    def uninstall(self, handle: Handle, guid: Guid) -> None:
        del handle.protocols[guid]
        handle.opens.pop(guid, None)
        if not handle.protocols:
            del self.handles[handle.address]

    def with_protocol(self, guid: Guid) -> list[Handle]:
        return [h for h in self.handles.values() if guid in h.protocols]

    def find_interface(self, guid: Guid) -> int | None:
        for h in self.handles.values():
            if guid in h.protocols:
                return h.protocols[guid]
        return None
