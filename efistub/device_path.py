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
        if (self.type, self.subtype) == HARDWARE_VENDOR and len(self.data) >= 16:
            return f"VenHw({Guid.from_bytes(self.data[:16]).name})"
        if (self.type, self.subtype) == (efi.DEVICE_PATH_ACPI, efi.ACPI_DP) and len(self.data) == efi.AcpiNode.sizeof():
            node = efi.AcpiNode.parse(self.data)
            if node.HID == efi.PNP0A03:
                return f"PciRoot(0x{node.UID:x})"
        if (self.type, self.subtype) == (efi.DEVICE_PATH_HARDWARE, efi.HARDWARE_PCI) and len(self.data) == 2:
            node = efi.PciNode.parse(self.data)
            return f"Pci(0x{node.Device:x},0x{node.Function:x})"
        if (self.type, self.subtype) == (efi.DEVICE_PATH_MEDIA, efi.MEDIA_HARD_DRIVE) \
                and len(self.data) == efi.HardDriveNode.sizeof():
            hd = efi.HardDriveNode.parse(self.data)
            signature = Guid.from_bytes(hd.Signature) if hd.SignatureType == efi.SIGNATURE_TYPE_GUID else hd.Signature.hex()
            scheme = "GPT" if hd.MBRType == efi.MBR_TYPE_GPT else "MBR"
            return f"HD({hd.PartitionNumber},{scheme},{signature},0x{hd.PartitionStart:x},0x{hd.PartitionSize:x})"
        return f"Path({self.type},{self.subtype},{self.data.hex()})"

    @property
    def is_hard_drive(self) -> bool:
        return (self.type, self.subtype) == (efi.DEVICE_PATH_MEDIA, efi.MEDIA_HARD_DRIVE)

    @property
    def is_file_path(self) -> bool:
        return (self.type, self.subtype) == (efi.DEVICE_PATH_MEDIA, efi.MEDIA_FILE_PATH)

    @property
    def path_name(self) -> str:
        """A file path node's name."""
        return self.data.decode("utf-16-le", errors="replace").split("\0", 1)[0]


END = Node(efi.DEVICE_PATH_END, efi.END_ENTIRE, b"")
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


def decode(raw: bytes) -> list[Node]:
    """The nodes of the device path in ``raw`` (without End); ValueError when it is not one."""
    nodes, offset = [], 0
    for _ in range(MAX_NODES):
        if offset + HEADER.sizeof() > len(raw):
            raise ValueError("no End node")
        header = HEADER.parse(raw[offset:])
        if header.Length < HEADER.sizeof() or offset + header.Length > len(raw):
            raise ValueError(f"a node of length {header.Length} at offset {offset}")
        node = Node(header.Type, header.SubType, raw[offset + HEADER.sizeof():offset + header.Length])
        offset += header.Length
        if node.is_end and node.subtype == efi.END_ENTIRE:
            return nodes
        nodes.append(node)
    raise ValueError(f"more than {MAX_NODES} nodes")


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
