"""Device paths: building, reading and matching the nodes of EFI_DEVICE_PATH_PROTOCOL."""

from __future__ import annotations

from dataclasses import dataclass

from .guids import Guid
from .layouts import efi
from .memory import ucs2

HEADER = efi.DevicePathHeader
MAX_NODES = 64


@dataclass(frozen=True)
class Node:
    type: int
    subtype: int
    data: bytes

    def to_bytes(self) -> bytes:
        return HEADER.build(dict(Type=self.type, SubType=self.subtype, Length=HEADER.sizeof() + len(self.data))) + self.data

    @property
    def is_end(self) -> bool:
        return self.type == efi.DEVICE_PATH_END

    def text(self) -> str:
        if self.type == efi.DEVICE_PATH_MEDIA and self.subtype == efi.MEDIA_VENDOR and len(self.data) >= 16:
            return f"VenMedia({Guid.from_bytes(self.data[:16]).name})"
        if self.type == efi.DEVICE_PATH_MEDIA and self.subtype == efi.MEDIA_FILE_PATH:
            return self.data.decode("utf-16-le", errors="replace").rstrip("\0")
        if self.type == 0x01 and self.subtype == 0x04 and len(self.data) >= 16:
            return f"VenHw({Guid.from_bytes(self.data[:16]).name})"
        return f"Path({self.type},{self.subtype},{self.data.hex()})"


END = Node(efi.DEVICE_PATH_END, efi.END_ENTIRE, b"")
HARDWARE_VENDOR = (0x01, 0x04)


def vendor_media(guid: Guid) -> Node:
    return Node(efi.DEVICE_PATH_MEDIA, efi.MEDIA_VENDOR, guid.to_bytes())


def vendor_hardware(guid: Guid) -> Node:
    return Node(*HARDWARE_VENDOR, guid.to_bytes())


def file_path(path: str) -> Node:
    return Node(efi.DEVICE_PATH_MEDIA, efi.MEDIA_FILE_PATH, ucs2(path))


def encode(nodes: list[Node]) -> bytes:
    """A device path: the nodes followed by the End node."""
    return b"".join(n.to_bytes() for n in nodes) + END.to_bytes()


def read(mem, address: int) -> tuple[list[Node], int]:
    """The nodes of the device path at ``address`` (without End) and its size including End."""
    nodes, offset = [], 0
    for _ in range(MAX_NODES):
        header = mem.read_struct(HEADER, address + offset)
        if header.Length < HEADER.sizeof():
            raise ValueError(f"device path node at 0x{address + offset:x} has length {header.Length}")
        node = Node(header.Type, header.SubType, mem.read(address + offset + HEADER.sizeof(), header.Length - HEADER.sizeof()))
        offset += header.Length
        if node.is_end and node.subtype == efi.END_ENTIRE:
            return nodes, offset
        nodes.append(node)
    raise ValueError(f"device path at 0x{address:x} has more than {MAX_NODES} nodes")


def text(nodes: list[Node]) -> str:
    return "/".join(n.text() for n in nodes) or "End"
