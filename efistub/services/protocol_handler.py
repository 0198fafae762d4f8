"""Protocol handler services (UEFI 2.10 §7.3): installing, finding and opening protocols.

Absent protocols, handles and device paths give EFI_NOT_FOUND where the spec says
so; the Linux stub treats EFI_UNSUPPORTED from LocateProtocol or LocateDevicePath
as fatal.
"""

from __future__ import annotations

import enum

from .. import guids, handles as hdb, shim
from ..errors import EfiError
from ..memory import MemoryType
from .. import device_path
from ..registry import BOOLEAN, EVENT, GUID_INTERFACE_PAIRS, GUID_PTR, HANDLE, POINTER, UINT32, declare, enum_arg, service
from ..status import INVALID, Status

NATIVE_INTERFACE = 0


class SearchType(enum.IntEnum):
    AllHandles = 0
    ByRegisterNotify = 1
    ByProtocol = 2


def _handle(fw, address: int) -> hdb.Handle:
    h = fw.handles.get(address)
    if h is None:
        raise EfiError(INVALID, f"0x{address:x} is not a handle")
    return h


def _guid(fw, address: int) -> guids.Guid:
    if not address:
        raise EfiError(INVALID, "NULL protocol GUID")
    return fw.mem.read_guid(address)


def _pointers(fw, values) -> bytes:
    """An array of handles or pointers, as wide as the guest's."""
    return b"".join(v.to_bytes(fw.width, "little") for v in values)


def guid_address(fw, guid: guids.Guid) -> int:
    """A copy of ``guid`` in firmware memory that lives as long as the firmware."""
    cache = fw.protocol_state.setdefault("guid_copies", {})
    if guid not in cache:
        cache[guid] = fw.store(MemoryType.EfiBootServicesData, guid.to_bytes())
    return cache[guid]


@service("HandleProtocol", Handle=HANDLE, Protocol=GUID_PTR, Interface=POINTER)
def HandleProtocol(fw, handle, protocol, interface):
    return OpenProtocol(fw, handle, protocol, interface, fw.image_handle, 0, hdb.BY_HANDLE_PROTOCOL)


@service("OpenProtocol", Handle=HANDLE, Protocol=GUID_PTR, Interface=POINTER, AgentHandle=HANDLE,
         ControllerHandle=HANDLE, Attributes=UINT32)
def OpenProtocol(fw, handle, protocol, interface, agent, controller, attributes):
    guid = _guid(fw, protocol)
    if not interface and attributes != hdb.TEST_PROTOCOL:
        return INVALID
    if attributes not in hdb.OPEN_ATTRIBUTES:
        return INVALID
    h = _handle(fw, handle)
    if attributes & (hdb.BY_CHILD_CONTROLLER | hdb.BY_DRIVER | hdb.EXCLUSIVE):
        _handle(fw, agent)
    if attributes & (hdb.BY_CHILD_CONTROLLER | hdb.BY_DRIVER):
        _handle(fw, controller)
        if attributes & hdb.BY_CHILD_CONTROLLER and handle == controller:
            return INVALID
    if guid not in h.protocols:
        if interface and attributes != hdb.TEST_PROTOCOL:
            fw.mem.write_uintn(interface, 0)
        return Status.EFI_UNSUPPORTED
    records = h.opens.setdefault(guid, [])
    if attributes & (hdb.BY_DRIVER | hdb.EXCLUSIVE):
        for r in records:
            if r.attributes & hdb.EXCLUSIVE or (r.attributes & hdb.BY_DRIVER and attributes & hdb.EXCLUSIVE):
                return Status.EFI_ACCESS_DENIED
            if r.attributes & hdb.BY_DRIVER and r.agent == agent:
                return Status.EFI_ALREADY_STARTED
    if attributes != hdb.TEST_PROTOCOL:
        fw.mem.write_uintn(interface, h.protocols[guid])
    if attributes != hdb.BY_HANDLE_PROTOCOL:
        for r in records:
            if (r.agent, r.controller, r.attributes) == (agent, controller, attributes):
                r.count += 1
                break
        else:
            records.append(hdb.OpenRecord(agent, controller, attributes))
    return Status.EFI_SUCCESS


@service("CloseProtocol", Handle=HANDLE, Protocol=GUID_PTR, AgentHandle=HANDLE, ControllerHandle=HANDLE)
def CloseProtocol(fw, handle, protocol, agent, controller):
    guid = _guid(fw, protocol)
    h = _handle(fw, handle)
    _handle(fw, agent)
    if controller:
        _handle(fw, controller)
    records = h.opens.get(guid, [])
    if guid not in h.protocols:
        return Status.EFI_NOT_FOUND
    kept = [r for r in records if (r.agent, r.controller) != (agent, controller)]
    if len(kept) == len(records):
        return Status.EFI_NOT_FOUND
    h.opens[guid] = kept
    return Status.EFI_SUCCESS


@service("OpenProtocolInformation", Handle=HANDLE, Protocol=GUID_PTR, EntryBuffer=POINTER, EntryCount=POINTER)
def OpenProtocolInformation(fw, handle, protocol, entry_buffer, entry_count):
    guid = _guid(fw, protocol)
    h = _handle(fw, handle)
    if not entry_buffer or not entry_count:
        return INVALID
    if guid not in h.protocols:
        return Status.EFI_NOT_FOUND
    entry = fw.layout.OpenProtocolInformationEntry
    raw = b"".join(entry.build(dict(AgentHandle=r.agent, ControllerHandle=r.controller,
                                    Attributes=r.attributes, OpenCount=r.count)) for r in h.opens.get(guid, []))
    fw.mem.write_uintn(entry_buffer, fw.store(MemoryType.EfiBootServicesData, raw) if raw else 0)
    fw.mem.write_uintn(entry_count, len(raw) // entry.sizeof())
    return Status.EFI_SUCCESS


@service("LocateProtocol", Protocol=GUID_PTR, Registration=POINTER, Interface=POINTER)
def LocateProtocol(fw, protocol, registration, interface):
    guid = _guid(fw, protocol)
    if not interface:
        return INVALID
    found = None if registration else fw.handles.find_interface(guid)
    fw.mem.write_uintn(interface, found or 0)
    return Status.EFI_SUCCESS if found is not None else Status.EFI_NOT_FOUND


def _search(fw, search_type, protocol) -> list[int]:
    if search_type == SearchType.AllHandles:
        return list(fw.handles.handles)
    if search_type == SearchType.ByProtocol:
        guid = _guid(fw, protocol)
        return [h.address for h in fw.handles.with_protocol(guid)]
    if search_type == SearchType.ByRegisterNotify:
        return []  # RegisterProtocolNotify is not implemented, so no registration can match
    raise EfiError(INVALID, f"unknown search type {search_type}")


@service("LocateHandle", SearchType=enum_arg(SearchType), Protocol=GUID_PTR, SearchKey=POINTER,
         BufferSize=POINTER, Buffer=POINTER)
def LocateHandle(fw, search_type, protocol, search_key, size_ptr, buffer):
    if not size_ptr:
        return INVALID
    found = _search(fw, search_type, protocol)
    if not found:
        return Status.EFI_NOT_FOUND
    needed = len(found) * fw.width
    available = fw.mem.read_uintn(size_ptr)
    fw.mem.write_uintn(size_ptr, needed)
    if available < needed:
        return Status.EFI_BUFFER_TOO_SMALL
    if not buffer:
        return INVALID
    fw.mem.write(buffer, _pointers(fw, found))
    return Status.EFI_SUCCESS


@service("LocateHandleBuffer", SearchType=enum_arg(SearchType), Protocol=GUID_PTR, SearchKey=POINTER,
         NoHandles=POINTER, Buffer=POINTER)
def LocateHandleBuffer(fw, search_type, protocol, search_key, count_ptr, buffer_ptr):
    if not count_ptr or not buffer_ptr:
        return INVALID
    found = _search(fw, search_type, protocol)
    fw.mem.write_uintn(count_ptr, len(found))
    if not found:
        fw.mem.write_uintn(buffer_ptr, 0)
        return Status.EFI_NOT_FOUND
    fw.mem.write_uintn(buffer_ptr, fw.store(MemoryType.EfiBootServicesData, _pointers(fw, found)))
    return Status.EFI_SUCCESS


def locate(fw, guid: guids.Guid, wanted: list) -> tuple[hdb.Handle, int] | None:
    """The handle with ``guid`` whose device path is the longest prefix of the nodes ``wanted``,
    and how many nodes that prefix has (LocateDevicePath's rule)."""
    best, best_nodes = None, -1
    for h in fw.handles.with_protocol(guid):
        if guids.DEVICE_PATH_PROTOCOL not in h.protocols:
            continue
        nodes, _ = device_path.read(fw.mem, h.protocols[guids.DEVICE_PATH_PROTOCOL])
        if len(nodes) > best_nodes and wanted[: len(nodes)] == nodes:
            best, best_nodes = h, len(nodes)
    return None if best is None else (best, best_nodes)


@service("LocateDevicePath", Protocol=GUID_PTR, DevicePath=POINTER, Device=POINTER)
def LocateDevicePath(fw, protocol, path_ptr, device_ptr):
    guid = _guid(fw, protocol)
    if not path_ptr or not device_ptr:
        return INVALID
    path = fw.mem.read_uintn(path_ptr)
    if not path:
        return INVALID
    try:
        wanted, _ = device_path.read(fw.mem, path)
    except ValueError as e:
        raise EfiError(INVALID, str(e)) from None
    found = locate(fw, guid, wanted)
    if found is None:
        return Status.EFI_NOT_FOUND
    best, best_nodes = found
    consumed = sum(len(n.to_bytes()) for n in wanted[:best_nodes])
    fw.mem.write_uintn(device_ptr, best.address)
    fw.mem.write_uintn(path_ptr, path + consumed)
    return Status.EFI_SUCCESS


@service("ProtocolsPerHandle", Handle=HANDLE, ProtocolBuffer=POINTER, ProtocolBufferCount=POINTER)
def ProtocolsPerHandle(fw, handle, buffer_ptr, count_ptr):
    h = _handle(fw, handle)
    if not buffer_ptr or not count_ptr:
        return INVALID
    raw = _pointers(fw, [guid_address(fw, g) for g in h.protocols])
    fw.mem.write_uintn(buffer_ptr, fw.store(MemoryType.EfiBootServicesData, raw))
    fw.mem.write_uintn(count_ptr, len(h.protocols))
    return Status.EFI_SUCCESS


def _install(fw, handle_ptr: int, guid: guids.Guid, interface: int) -> None:
    current = fw.mem.read_uintn(handle_ptr)
    h = _handle(fw, current) if current else None
    if h is not None and guid in h.protocols:
        raise EfiError(INVALID, f"{guid.name} is already installed on handle 0x{current:x}")
    h = fw.handles.install(h, guid, interface)
    fw.mem.write_uintn(handle_ptr, h.address)
    shim.installed(fw, guid, interface)  # SHIM_LOCK: its Verify calls are watched


@service("InstallProtocolInterface", Handle=POINTER, Protocol=GUID_PTR, InterfaceType=UINT32, Interface=POINTER)
def InstallProtocolInterface(fw, handle_ptr, protocol, interface_type, interface):
    guid = _guid(fw, protocol)
    if not handle_ptr or interface_type != NATIVE_INTERFACE:
        return INVALID
    _install(fw, handle_ptr, guid, interface)
    return Status.EFI_SUCCESS


@service("UninstallProtocolInterface", Handle=HANDLE, Protocol=GUID_PTR, Interface=POINTER)
def UninstallProtocolInterface(fw, handle, protocol, interface):
    guid = _guid(fw, protocol)
    h = _handle(fw, handle)
    if h.protocols.get(guid, None) != interface:
        return Status.EFI_NOT_FOUND
    if any(r.attributes & (hdb.BY_DRIVER | hdb.EXCLUSIVE) for r in h.opens.get(guid, [])):
        return Status.EFI_ACCESS_DENIED
    fw.handles.uninstall(h, guid)
    return Status.EFI_SUCCESS


@service("ReinstallProtocolInterface", Handle=HANDLE, Protocol=GUID_PTR, OldInterface=POINTER, NewInterface=POINTER)
def ReinstallProtocolInterface(fw, handle, protocol, old, new):
    guid = _guid(fw, protocol)
    h = _handle(fw, handle)
    if h.protocols.get(guid, None) != old:
        return Status.EFI_NOT_FOUND
    h.protocols[guid] = new
    return Status.EFI_SUCCESS


@service("InstallMultipleProtocolInterfaces", varargs=GUID_INTERFACE_PAIRS, Handle=POINTER)
def InstallMultipleProtocolInterfaces(fw, handle_ptr, pairs):
    if not handle_ptr:
        return INVALID
    for guid, interface in pairs:
        if guid == guids.DEVICE_PATH_PROTOCOL:
            nodes, _ = device_path.read(fw.mem, interface)
            for other in fw.handles.with_protocol(guids.DEVICE_PATH_PROTOCOL):
                if device_path.read(fw.mem, other.protocols[guid])[0] == nodes:
                    return Status.EFI_ALREADY_STARTED
    original = fw.mem.read_uintn(handle_ptr)
    done = []
    try:
        for guid, interface in pairs:
            _install(fw, handle_ptr, guid, interface)
            done.append(guid)
    except EfiError:
        h = fw.handles.get(fw.mem.read_uintn(handle_ptr))
        for guid in done:
            fw.handles.uninstall(h, guid)
        fw.mem.write_uintn(handle_ptr, original)
        raise
    return Status.EFI_SUCCESS


@service("UninstallMultipleProtocolInterfaces", varargs=GUID_INTERFACE_PAIRS, Handle=HANDLE)
def UninstallMultipleProtocolInterfaces(fw, handle, pairs):
    h = _handle(fw, handle)
    if any(h.protocols.get(guid, None) != interface for guid, interface in pairs):
        return INVALID  # the spec's status when any one pair cannot be removed; nothing is removed
    for guid, _ in pairs:
        fw.handles.uninstall(h, guid)
    return Status.EFI_SUCCESS


declare("RegisterProtocolNotify", Protocol=GUID_PTR, Event=EVENT, Registration=POINTER)
@service("ConnectController", ControllerHandle=HANDLE, DriverImageHandle=POINTER, RemainingDevicePath=POINTER,
         Recursive=BOOLEAN)
def ConnectController(fw, controller, driver_images, remaining, recursive):
    """efistub has no drivers to bind: everything it offers is installed when the run starts, so
    no driver gets connected, which the spec answers with EFI_NOT_FOUND (as EDK2 does for a
    controller whose drivers are all started)."""
    _handle(fw, controller)
    return Status.EFI_NOT_FOUND
declare("DisconnectController", ControllerHandle=HANDLE, DriverImageHandle=HANDLE, ChildHandle=HANDLE)
declare("Reserved")  # the EFI 1.0 slot between HandleProtocol and RegisterProtocolNotify
