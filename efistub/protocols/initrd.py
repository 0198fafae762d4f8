"""The initrd as Linux expects it: LOAD_FILE2 on the VenMedia(LINUX_EFI_INITRD_MEDIA) device path."""

from __future__ import annotations

from .. import guids
from ..layouts import efi
from ..memory import MemoryType
from ..registry import BOOLEAN, POINTER, service
from ..status import Status
from .. import device_path
from .interface import make_interface


@service("LoadFile2.LoadFile", This=POINTER, FilePath=POINTER, BootPolicy=BOOLEAN, BufferSize=POINTER,
         Buffer=POINTER)
def LoadFile(fw, this, file_path, boot_policy, size_ptr, buffer):
    files = fw.protocol_state["load_file2"]
    if this not in files:
        return Status.EFI_INVALID_PARAMETER
    if boot_policy:
        return Status.EFI_UNSUPPORTED  # LOAD_FILE2 never serves boot-policy loads
    if not file_path or not size_ptr:
        return Status.EFI_INVALID_PARAMETER
    data = files[this]
    available = fw.mem.read_uintn(size_ptr)
    fw.mem.write_uintn(size_ptr, len(data))
    if not buffer or available < len(data):
        return Status.EFI_BUFFER_TOO_SMALL
    fw.mem.write(buffer, data)
    return Status.EFI_SUCCESS


def install(fw) -> int | None:
    """Offer the run's initrd (--initrd), if it has one; return the handle."""
    data = fw.options.initrd
    if data is None:
        return None
    interface = make_interface(fw, "LoadFile2", efi.LOAD_FILE2, fw.layout.LoadFile2)
    fw.protocol_state.setdefault("load_file2", {})[interface] = bytes(data)
    path = fw.store(MemoryType.EfiBootServicesData,
                    device_path.encode([device_path.vendor_media(guids.LINUX_EFI_INITRD_MEDIA)]))
    handle = fw.handles.install(None, guids.DEVICE_PATH_PROTOCOL, path)
    fw.handles.install(handle, guids.LOAD_FILE2_PROTOCOL, interface)
    return handle.address
