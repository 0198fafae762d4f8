"""EFI_DEVICE_PATH_FROM_TEXT_PROTOCOL (UEFI 2.10 §10.6.3), as EDK2's UefiDevicePathLib reads text
(MdePkg/Library/UefiDevicePathLib/DevicePathFromText.c, which EDK2's DevicePathDxe installs).

ConvertTextToDeviceNode gives one node (without an End node), ConvertTextToDevicePath a device
path (End-of-instance nodes for ``,``, and the End node), each in a new pool allocation of
EfiBootServicesData for the caller to FreePool. The text is read as device_path_text reads it:
text that is no node's form is a file path node, as in EDK2. NULL for a NULL or empty text, for
text that does not read (a node's parameters that do not fit it, unbalanced parentheses, a node
longer than 64 KiB or a path longer than device_path.MAX_PATH_SIZE; EDK2 makes something of such
text, efistub does not), and when there is no pool; the report's note says why.

The text is read as far as it goes, at most MAX_TEXT characters; text that is not in guest memory,
or has no NUL by then, ends the run as a fault (interface.fault_on_bad_memory).
"""

from __future__ import annotations

from .. import device_path, guids
from ..layouts import efi
from ..registry import STRING, Result, service
from .interface import fault_on_bad_memory, make_interface, new_pool
from .unicode_collation import units

PREFIX = "DevicePathFromText"
MAX_TEXT = 1 << 18  # characters: the text of a 64 KiB device path of hex data, and then some


def _text(fw, address: int) -> str:
    return "".join(map(chr, units(fw.mem, address, limit=MAX_TEXT)))


def _convert(fw, address: int, path: bool):
    """The text at ``address`` as a device path (``path``) or as one node, in a new pool allocation:
    0 for NULL or empty text, and for text that does not read (the note says why)."""
    text = _text(fw, address) if address else ""
    if not text:
        return 0
    from .. import device_path_text  # its table of node forms is built on the first conversion

    try:
        parsed = device_path_text.parse_path(text) if path else device_path_text.parse_node(text)
    except ValueError as e:
        return Result(0, note=str(e))
    return new_pool(fw, device_path.encode(parsed) if path else parsed.to_bytes())


@service("DevicePathFromText.ConvertTextToDeviceNode", returns="value", TextDeviceNode=STRING)
@fault_on_bad_memory(PREFIX)
def ConvertTextToDeviceNode(fw, address):
    return _convert(fw, address, path=False)


@service("DevicePathFromText.ConvertTextToDevicePath", returns="value", TextDevicePath=STRING)
@fault_on_bad_memory(PREFIX)
def ConvertTextToDevicePath(fw, address):
    return _convert(fw, address, path=True)


def install(fw) -> int:
    """The protocol on a handle of its own; return the handle."""
    interface = make_interface(fw, PREFIX, efi.DEVICE_PATH_FROM_TEXT, fw.layout.DevicePathFromText)
    return fw.handles.install(None, guids.DEVICE_PATH_FROM_TEXT_PROTOCOL, interface).address
