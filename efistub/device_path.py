"""Device paths: building, reading and matching the nodes of EFI_DEVICE_PATH_PROTOCOL."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, Iterator

from .guids import Guid
from .layouts import efi
from .memory import ucs2, ucs2_text

HEADER = efi.DevicePathHeader
MAX_NODES = 64  # nodes read() and decode() take, End included
MAX_PATH_SIZE = 1 << 16  # bytes valid_nodes() reads before it gives up on finding the End node


@dataclass(frozen=True)
class Node:
    type: int
    subtype: int
    data: bytes

    def to_bytes(self) -> bytes:
        return HEADER.build(dict(Type=self.type, SubType=self.subtype, Length=HEADER.sizeof() + len(self.data))) + self.data

    @property
    def is_end(self) -> bool:
        """An End node: of the entire path, or of an instance of a multi-instance path."""
        return self.type == efi.DEVICE_PATH_END

    @property
    def is_end_of_path(self) -> bool:
        return self.is_end and self.subtype == efi.END_ENTIRE

    @property
    def length(self) -> int:
        """The node's Length: its bytes, header included."""
        return HEADER.sizeof() + len(self.data)

    def text(self, display_only: bool = False, allow_shortcuts: bool = False) -> str:
        """The node's text, as EDK2's DevicePathToText writes it (efistub.device_path_text)."""
        from .device_path_text import node_text

        return node_text(self, display_only, allow_shortcuts)

    @property
    def is_hard_drive(self) -> bool:
        return (self.type, self.subtype) == (efi.DEVICE_PATH_MEDIA, efi.MEDIA_HARD_DRIVE)

    @property
    def is_file_path(self) -> bool:
        return (self.type, self.subtype) == (efi.DEVICE_PATH_MEDIA, efi.MEDIA_FILE_PATH)

    @property
    def path_name(self) -> str:
        """A file path node's name."""
        return ucs2_text(self.data)


END = Node(efi.DEVICE_PATH_END, efi.END_ENTIRE, b"")
END_OF_INSTANCE = Node(efi.DEVICE_PATH_END, efi.END_INSTANCE, b"")
HARDWARE_VENDOR = (efi.DEVICE_PATH_HARDWARE, efi.HARDWARE_VENDOR)


def vendor_media(guid: Guid) -> Node:
    return Node(efi.DEVICE_PATH_MEDIA, efi.MEDIA_VENDOR, guid.to_bytes())


def vendor_hardware(guid: Guid) -> Node:
    return Node(*HARDWARE_VENDOR, guid.to_bytes())


def pci_root(uid: int = 0) -> Node:
    return Node(efi.DEVICE_PATH_ACPI, efi.ACPI_DP, efi.AcpiNode.build(dict(HID=efi.PNP0A03, UID=uid)))


def pci(device: int, function: int = 0) -> Node:
    return Node(efi.DEVICE_PATH_HARDWARE, efi.HARDWARE_PCI, efi.PciNode.build(dict(Function=function, Device=device)))


def hard_drive_node(number: int, start_lba: int, blocks: int, signature: bytes, mbr_type: int,
                    signature_type: int) -> Node:
    """HD(number,GPT|MBR,signature,start,size): a partition (UEFI 2.10 §10.3.5.1)."""
    return Node(efi.DEVICE_PATH_MEDIA, efi.MEDIA_HARD_DRIVE, efi.HardDriveNode.build(dict(
        PartitionNumber=number, PartitionStart=start_lba, PartitionSize=blocks, Signature=signature,
        MBRType=mbr_type, SignatureType=signature_type)))


def file_path(path: str) -> Node:
    return Node(efi.DEVICE_PATH_MEDIA, efi.MEDIA_FILE_PATH, ucs2(path))


def encode(nodes: list[Node]) -> bytes:
    """A device path: the nodes followed by the End node."""
    return b"".join(n.to_bytes() for n in nodes) + END.to_bytes()


def size(nodes: list[Node]) -> int:
    """The bytes of the device path of ``nodes``, End included (what encode() gives)."""
    return sum(n.length for n in nodes) + END.length


class PathTooLong(ValueError):
    """No End node within the nodes or bytes the reader takes."""


def _walk(fetch: Callable[[int, int], bytes], max_nodes: int | None = None,
          max_size: int | None = None) -> Iterator[tuple[int, Node]]:
    """(offset, node) for every node of a device path, up to and including the End of the entire
    path. ``fetch(offset, size)`` gives bytes of the path (and raises where there are none).
    ValueError for a node shorter than its header; PathTooLong past ``max_nodes`` nodes or
    ``max_size`` bytes."""
    offset = 0
    for count in itertools.count():
        if max_nodes is not None and count >= max_nodes:
            raise PathTooLong(f"more than {max_nodes} nodes")
        if max_size is not None and offset + HEADER.sizeof() > max_size:
            raise PathTooLong(f"no End node in {max_size} bytes")
        header = HEADER.parse(fetch(offset, HEADER.sizeof()))
        if header.Length < HEADER.sizeof():
            raise ValueError(f"a node of length {header.Length} at offset {offset}")
        if max_size is not None and offset + header.Length > max_size:
            raise PathTooLong(f"no End node in {max_size} bytes")
        node = Node(header.Type, header.SubType, fetch(offset + HEADER.sizeof(), header.Length - HEADER.sizeof()))
        yield offset, node
        offset += header.Length
        if node.is_end_of_path:
            return


def _bytes_of(raw: bytes) -> Callable[[int, int], bytes]:
    def fetch(offset: int, size: int) -> bytes:
        if offset + size > len(raw):
            raise ValueError(f"no End node in {len(raw)} bytes")
        return raw[offset:offset + size]
    return fetch


def decode(raw: bytes) -> list[Node]:
    """The nodes of the device path in ``raw`` (without End); ValueError when it is not one."""
    return [node for _, node in _walk(_bytes_of(raw), MAX_NODES) if not node.is_end_of_path]


def read(mem, address: int) -> tuple[list[Node], int]:
    """The nodes of the device path at ``address`` (without End) and its size including End."""
    nodes = []
    try:
        for offset, node in _walk(lambda offset, n: mem.read(address + offset, n), MAX_NODES):
            if node.is_end_of_path:
                return nodes, offset + node.length
            nodes.append(node)
    except ValueError as e:
        raise ValueError(f"device path at 0x{address:x}: {e}") from None
    raise AssertionError("unreachable: _walk ends with the End node")


def valid_nodes(fetch: Callable[[int, int], bytes], max_size: int | None = MAX_PATH_SIZE) -> list[Node] | None:
    """The nodes (without the End of the entire path; End-of-instance nodes included) of a device path
    that is valid as EDK2's IsDevicePathValid sees it, else None: every node is at least a header
    long, a file path node ends in a NUL character, and the End node is exactly a header.
    PathTooLong when no End node comes within ``max_size`` bytes; what ``fetch`` raises (a
    GuestMemoryError) passes through."""
    nodes = []
    try:
        for _, node in _walk(fetch, max_size=max_size):
            if node.is_end_of_path:
                return None if node.data else nodes
            # The node's last two bytes, as EDK2 checks them (in a node with no name: its Length).
            if node.is_file_path and node.to_bytes()[-2:] != b"\0\0":
                return None
            nodes.append(node)
    except PathTooLong:
        raise
    except ValueError:
        return None
    raise AssertionError("unreachable: _walk ends with the End node")


def read_valid(mem, address: int, max_size: int = MAX_PATH_SIZE) -> list[Node] | None:
    """valid_nodes() of the device path at ``address`` in guest memory."""
    return valid_nodes(lambda offset, n: mem.read(address + offset, n), max_size)


def valid_bytes(raw: bytes) -> list[Node] | None:
    """valid_nodes() of a device path in ``raw``; one that runs past the end of ``raw`` is invalid."""
    return valid_nodes(_bytes_of(raw), None)


def text(nodes: list[Node]) -> str:
    """A path's text for reports and notes: as ConvertDevicePathToText writes it, or End for an empty path."""
    from .device_path_text import path_text

    return path_text(nodes) or "End"
