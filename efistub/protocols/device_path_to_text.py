"""EFI_DEVICE_PATH_TO_TEXT_PROTOCOL (UEFI 2.10 §10.6.2), as EDK2's UefiDevicePathLib does it
(MdePkg/Library/UefiDevicePathLib/DevicePathToText.c, which EDK2's DevicePathDxe installs).

Both functions return the text in a new pool allocation of EfiBootServicesData (CHAR16, with its
NUL), which the caller frees with FreePool, or NULL: for a NULL argument, a node shorter than its
header, a device path that is not valid as EDK2's IsDevicePathValid sees it (device_path.valid_nodes),
or when there is no pool for it. The text is device_path_text's: EDK2's forms, DisplayOnly and
AllowShortcuts as EDK2 applies them; a path of just its End node is the empty string.

A node or path that is not in guest memory, or a path with no End node in device_path.MAX_PATH_SIZE
bytes, ends the run as a fault (interface.fault_on_bad_memory): these functions have no status.
"""

from __future__ import annotations

from .. import device_path, guids
from ..device_path import Node
from ..errors import GuestMemoryError
from ..layouts import efi
from ..memory import ucs2
from ..registry import BOOLEAN, POINTER, Result, service
from .interface import fault_on_bad_memory, make_interface, new_pool

PREFIX = "DevicePathToText"
HEADER = device_path.HEADER
MAX_SHOWN = 512  # characters of the text a report's call shows


def new_string(fw, text: str):
    """``text`` as a NUL-terminated CHAR16 string in new pool memory (the report's call shows it as Text),
    or NULL (with a note) when there is no pool for it."""
    return new_pool(fw, ucs2(text), Text=text[:MAX_SHOWN])


@service("DevicePathToText.ConvertDeviceNodeToText", returns="value", DeviceNode=POINTER, DisplayOnly=BOOLEAN,
         AllowShortcuts=BOOLEAN)
@fault_on_bad_memory(PREFIX)
def ConvertDeviceNodeToText(fw, node, display_only, allow_shortcuts):
    if not node:
        return 0
    header = fw.mem.read_struct(HEADER, node)
    if header.Length < HEADER.sizeof():
        return Result(0, note=f"a node of length {header.Length}")
    data = fw.mem.read(node + HEADER.sizeof(), header.Length - HEADER.sizeof())
    from ..device_path_text import node_text  # its table of node forms is built on the first conversion

    return new_string(fw, node_text(Node(header.Type, header.SubType, data), display_only, allow_shortcuts))


@service("DevicePathToText.ConvertDevicePathToText", returns="value", DevicePath=POINTER, DisplayOnly=BOOLEAN,
         AllowShortcuts=BOOLEAN)
@fault_on_bad_memory(PREFIX)
def ConvertDevicePathToText(fw, path, display_only, allow_shortcuts):
    if not path:
        return 0
    try:
        nodes = device_path.read_valid(fw.mem, path)
    except device_path.PathTooLong:
        raise GuestMemoryError(path, device_path.MAX_PATH_SIZE, "find the End node of a device path in") from None
    if nodes is None:
        return Result(0, note="not a valid device path")
    from ..device_path_text import path_text

    return new_string(fw, path_text(nodes, display_only, allow_shortcuts))


def install(fw) -> int:
    """The protocol on a handle of its own; return the handle."""
    interface = make_interface(fw, PREFIX, efi.DEVICE_PATH_TO_TEXT, fw.layout.DevicePathToText)
    return fw.handles.install(None, guids.DEVICE_PATH_TO_TEXT_PROTOCOL, interface).address
