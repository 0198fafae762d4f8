"""EFI_DEVICE_PATH_UTILITIES_PROTOCOL (UEFI 2.10 §10.5), as EDK2's UefiDevicePathLib does it
(MdePkg/Library/UefiDevicePathLib/DevicePathUtilities.c, which EDK2's DevicePathDxe installs).

The functions return values, not statuses. A device path is read as EDK2's IsDevicePathValid
checks it (device_path.valid_nodes): a node shorter than its header, a file path node without its
NUL or an End node longer than its header makes it invalid, and then the size is 0, the new path
NULL and IsDevicePathMultiInstance FALSE. NULL arguments behave as in EDK2: AppendDevicePath and
AppendDeviceNode ignore a NULL one (both NULL: a copy of an End node), AppendDevicePathInstance
with a NULL path copies the instance, and with a NULL instance gives NULL.

New paths are pool allocations of EfiBootServicesData that the caller frees with FreePool; when
no pool can be had, the result is NULL. A path that is not in guest memory, or that has no End
node in device_path.MAX_PATH_SIZE bytes, ends the run as a fault (interface.fault_on_bad_memory).
"""

from __future__ import annotations

from .. import device_path, guids
from ..device_path import Node
from ..errors import GuestMemoryError
from ..layouts import efi
from ..registry import POINTER, UINT8, UINT16, Result, service
from .interface import fault_on_bad_memory, make_interface, new_pool

PREFIX = "DevicePathUtilities"
HEADER = device_path.HEADER


def _read(fw, address: int) -> list[Node] | None:
    """The nodes of a valid device path at ``address`` (End-of-instance nodes included), or None."""
    try:
        return device_path.read_valid(fw.mem, address)
    except device_path.PathTooLong:
        raise GuestMemoryError(address, device_path.MAX_PATH_SIZE, "find the End node of a device path in") from None


def _new_path(fw, nodes: list[Node] | None):
    return 0 if nodes is None else new_pool(fw, device_path.encode(nodes))


def _node(fw, address: int) -> list[Node] | None:
    """The device node at ``address`` as a path of its own (followed by an End node), if that path is
    valid; a node shorter than its header is not."""
    header = fw.mem.read_struct(HEADER, address)
    if header.Length < HEADER.sizeof():
        return None
    return device_path.valid_bytes(fw.mem.read(address, header.Length) + device_path.END.to_bytes())


def _append(first: list[Node] | None, second: list[Node] | None) -> list[Node] | None:
    return None if first is None or second is None else first + second


@service("DevicePathUtilities.GetDevicePathSize", returns="value", DevicePath=POINTER)
@fault_on_bad_memory(PREFIX)
def GetDevicePathSize(fw, path):
    nodes = _read(fw, path) if path else None
    return 0 if nodes is None else device_path.size(nodes)


@service("DevicePathUtilities.DuplicateDevicePath", returns="value", DevicePath=POINTER)
@fault_on_bad_memory(PREFIX)
def DuplicateDevicePath(fw, path):
    return _new_path(fw, _read(fw, path) if path else None)


@service("DevicePathUtilities.AppendDevicePath", returns="value", Src1=POINTER, Src2=POINTER)
@fault_on_bad_memory(PREFIX)
def AppendDevicePath(fw, first, second):
    return _new_path(fw, _append(_read(fw, first) if first else [], _read(fw, second) if second else []))


@service("DevicePathUtilities.AppendDeviceNode", returns="value", DevicePath=POINTER, DeviceNode=POINTER)
@fault_on_bad_memory(PREFIX)
def AppendDeviceNode(fw, path, node):
    return _new_path(fw, _append(_read(fw, path) if path else [], _node(fw, node) if node else []))


@service("DevicePathUtilities.AppendDevicePathInstance", returns="value", DevicePath=POINTER,
         DevicePathInstance=POINTER)
@fault_on_bad_memory(PREFIX)
def AppendDevicePathInstance(fw, path, instance):
    if not instance:
        return 0
    if not path:
        return _new_path(fw, _read(fw, instance))
    first = _read(fw, path)
    return _new_path(fw, _append(None if first is None else first + [device_path.END_OF_INSTANCE],
                                 _read(fw, instance)))


@service("DevicePathUtilities.GetNextDevicePathInstance", returns="value", DevicePathInstance=POINTER,
         DevicePathInstanceSize=POINTER)
@fault_on_bad_memory(PREFIX)
def GetNextDevicePathInstance(fw, instance_ptr, size_ptr):
    if not size_ptr:
        return Result(0, note="DevicePathInstanceSize is NULL")  # EDK2 asserts
    start = fw.mem.read_uintn(instance_ptr) if instance_ptr else 0
    if not start:
        fw.mem.write_uintn(size_ptr, 0)
        return 0
    nodes = _read(fw, start)
    if nodes is None:
        return 0
    # The instance ends at its first End node: an End of instance, or the End of the entire path.
    end = next((i for i, n in enumerate(nodes) if n.is_end), len(nodes))
    instance = nodes[:end]
    offset = sum(n.length for n in instance)
    fw.mem.write_uintn(size_ptr, offset + HEADER.sizeof())
    # EDK2 copies the instance with its End node made an End of the entire path, so an End of
    # instance longer than a header makes the copy invalid (NULL); the walk goes on after it anyway.
    copy = _new_path(fw, instance) if end == len(nodes) or not nodes[end].data else 0
    fw.mem.write_uintn(instance_ptr, 0 if end == len(nodes) else start + offset + nodes[end].length)
    return copy


@service("DevicePathUtilities.IsDevicePathMultiInstance", returns="value", DevicePath=POINTER)
@fault_on_bad_memory(PREFIX)
def IsDevicePathMultiInstance(fw, path):
    nodes = _read(fw, path) if path else None
    return int(nodes is not None and any(n.is_end and n.subtype == efi.END_INSTANCE for n in nodes))


@service("DevicePathUtilities.CreateDeviceNode", returns="value", NodeType=UINT8, NodeSubType=UINT8,
         NodeLength=UINT16)
@fault_on_bad_memory(PREFIX)
def CreateDeviceNode(fw, node_type, node_subtype, length):
    if length < HEADER.sizeof():
        return 0
    return new_pool(fw, Node(node_type, node_subtype, bytes(length - HEADER.sizeof())).to_bytes())


def install(fw) -> int:
    """The protocol on a handle of its own; return the handle."""
    interface = make_interface(fw, PREFIX, efi.DEVICE_PATH_UTILITIES, fw.layout.DevicePathUtilities)
    return fw.handles.install(None, guids.DEVICE_PATH_UTILITIES_PROTOCOL, interface).address
