"""Variable services (UEFI 2.10 §8.2) over the store ``fw.variables`` (in memory; loaded from and saved
to a file with --vars, efistub/varstore.py). A store with Secure Boot (efistub.secureboot) has
authenticated variables: SetVariable and QueryVariableInfo go to efistub.authvar there."""

from __future__ import annotations

from .. import authvar
from .. import variables as v
from ..registry import GUID_PTR, POINTER, STRING, UINT32, UINTN, Result, service
from ..status import INVALID, NOT_FOUND, Status


def _visible(fw, var: v.Variable | None) -> bool:
    """After ExitBootServices only variables with runtime access exist for the caller."""
    return var is not None and (fw.state.boot_services_active or bool(var.attributes & v.RUNTIME_ACCESS))


@service("GetVariable", boot=False, VariableName=STRING, VendorGuid=GUID_PTR, Attributes=POINTER,
         DataSize=POINTER, Data=POINTER)
def GetVariable(fw, name_ptr, guid_ptr, attributes_ptr, size_ptr, data_ptr):
    if not name_ptr or not guid_ptr or not size_ptr:
        return INVALID
    var = fw.variables.get(fw.mem.read_ucs2(name_ptr), fw.mem.read_guid(guid_ptr))
    if not _visible(fw, var):
        return NOT_FOUND
    available = fw.mem.read_uintn(size_ptr)
    fw.mem.write_uintn(size_ptr, len(var.data))
    if attributes_ptr:
        fw.mem.write_u32(attributes_ptr, var.attributes)
    if available < len(var.data):
        return Status.EFI_BUFFER_TOO_SMALL
    if not data_ptr and var.data:
        return INVALID
    fw.mem.write(data_ptr, var.data)
    return Status.EFI_SUCCESS


@service("GetNextVariableName", boot=False, VariableNameSize=POINTER, VariableName=POINTER, VendorGuid=POINTER)
def GetNextVariableName(fw, size_ptr, name_ptr, guid_ptr):
    if not size_ptr or not name_ptr or not guid_ptr:
        return INVALID
    size = fw.mem.read_uintn(size_ptr)
    raw = fw.mem.read(name_ptr, min(size, 2 * (v.MAX_VARIABLE_SIZE + 1)) & ~1)
    end = next((i for i in range(0, len(raw), 2) if raw[i:i + 2] == b"\0\0"), None)
    if end is None:
        return INVALID  # no NUL within VariableNameSize
    name = raw[:end].decode("utf-16-le", errors="replace")
    visible = [var for var in fw.variables if _visible(fw, var)]
    if not name:
        position = 0
    else:
        guid = fw.mem.read_guid(guid_ptr)
        keys = [(var.name, var.guid) for var in visible]
        if (name, guid) not in keys:
            return INVALID
        position = keys.index((name, guid)) + 1
    if position >= len(visible):
        return NOT_FOUND
    following = visible[position]
    encoded = (following.name + "\0").encode("utf-16-le")
    fw.mem.write_uintn(size_ptr, len(encoded))
    if size < len(encoded):
        return Status.EFI_BUFFER_TOO_SMALL
    fw.mem.write(name_ptr, encoded)
    fw.mem.write_guid(guid_ptr, following.guid)
    return Status.EFI_SUCCESS


@service("SetVariable", boot=False, VariableName=STRING, VendorGuid=GUID_PTR, Attributes=UINT32,
         DataSize=UINTN, Data=POINTER)
def SetVariable(fw, name_ptr, guid_ptr, attributes, size, data_ptr):
    if not name_ptr or not guid_ptr or (size and not data_ptr):
        return INVALID
    name, guid = fw.mem.read_ucs2(name_ptr), fw.mem.read_guid(guid_ptr)
    if not name:
        return INVALID
    if fw.variables.secure_boot is not None:
        status, note = authvar.set_variable(fw.variables, name, guid, attributes, size,
                                            lambda offset, length: fw.mem.read(data_ptr + offset, length),
                                            runtime=not fw.state.boot_services_active)
        return Result(status, note) if note else status
    if attributes & ~v.KNOWN_ATTRIBUTES:
        return INVALID
    if attributes & v.AUTHENTICATED:
        return Status.EFI_UNSUPPORTED  # no authenticated variables in this store
    if attributes & v.RUNTIME_ACCESS and not attributes & v.BOOTSERVICE_ACCESS:
        return INVALID
    if not fw.state.boot_services_active and attributes and not (
            attributes & v.RUNTIME_ACCESS and attributes & v.NON_VOLATILE):
        return INVALID  # after ExitBootServices only NV+RT variables may be written
    existing = fw.variables.get(name, guid)
    if existing is not None and not _visible(fw, existing):
        return NOT_FOUND if not attributes else INVALID
    append = bool(attributes & v.APPEND_WRITE)
    stored_attributes = attributes & ~v.APPEND_WRITE
    if not append and (size == 0 or not stored_attributes):
        if existing is None:
            return NOT_FOUND
        fw.variables.delete(name, guid)
        return Status.EFI_SUCCESS
    if existing is not None and existing.attributes != stored_attributes:
        return INVALID
    if append and existing is None and not size:
        return Status.EFI_SUCCESS
    kept = existing.data if append and existing is not None else b""
    problem = v.no_room(fw.variables, name, guid, stored_attributes, len(kept) + size)
    if problem is not None:
        return Result(*problem)  # checked before the data is read: a huge DataSize costs nothing
    fw.variables.set(name, guid, stored_attributes, kept + fw.mem.read(data_ptr, size))
    return Status.EFI_SUCCESS


@service("QueryVariableInfo", boot=False, Attributes=UINT32, MaximumVariableStorageSize=POINTER,
         RemainingVariableStorageSize=POINTER, MaximumVariableSize=POINTER)
def QueryVariableInfo(fw, attributes, max_storage_ptr, remaining_ptr, max_size_ptr):
    if not max_storage_ptr or not remaining_ptr or not max_size_ptr or not attributes:
        return INVALID
    if fw.variables.secure_boot is not None:
        problem = authvar.query_problem(attributes, runtime=not fw.state.boot_services_active)
        if problem is not None:
            return Result(*problem)
    elif attributes & v.RUNTIME_ACCESS and not attributes & v.BOOTSERVICE_ACCESS:
        return INVALID
    elif attributes & v.AUTHENTICATED:
        return Status.EFI_UNSUPPORTED
    capacity, remaining, largest = fw.variables.query(attributes)  # UINT64 outputs on every architecture
    fw.mem.write_u64(max_storage_ptr, capacity)
    fw.mem.write_u64(remaining_ptr, remaining)
    fw.mem.write_u64(max_size_ptr, largest)
    return Status.EFI_SUCCESS
