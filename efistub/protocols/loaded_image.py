"""LOADED_IMAGE and the device paths of the image and its boot device."""

from __future__ import annotations

import os

from .. import guids
from ..layouts import efi
from ..memory import MemoryType, ucs2
from .. import device_path

# The vendor GUID of efistub's boot device node: VenHw(EFISTUB_BOOT_DEVICE).
EFISTUB_BOOT_DEVICE = guids.Guid("6f0f8a1c-5b7e-4b1e-9a43-65666973747a")


def install(fw, image, base: int, cmdline: str, parent: int = 0) -> int:
    """Install the image's handle with LOADED_IMAGE (ParentHandle ``parent``); return the handle."""
    device_nodes = [device_path.vendor_hardware(EFISTUB_BOOT_DEVICE)]
    device = fw.handles.install(None, guids.DEVICE_PATH_PROTOCOL,
                                fw.store(MemoryType.EfiBootServicesData, device_path.encode(device_nodes)))
    file_node = device_path.file_path("\\" + os.path.basename(image.path))
    file_path = fw.store(MemoryType.EfiBootServicesData, device_path.encode([file_node]))
    options = ucs2(cmdline) if cmdline else b""
    loaded = dict(
        Revision=efi.LOADED_IMAGE_REVISION, ParentHandle=parent, SystemTable=fw.system_table,
        DeviceHandle=device.address, FilePath=file_path, Reserved=0,
        LoadOptionsSize=len(options),
        LoadOptions=fw.store(MemoryType.EfiLoaderData, options) if options else 0,
        ImageBase=base, ImageSize=image.size_of_image,
        ImageCodeType=MemoryType.EfiLoaderCode, ImageDataType=MemoryType.EfiLoaderData, Unload=0,
    )
    layout = fw.layout.LoadedImage
    interface = fw.allocate_pool(MemoryType.EfiBootServicesData, layout.sizeof())
    fw.mem.write_struct(layout, interface, loaded)
    handle = fw.handles.install(None, guids.LOADED_IMAGE_PROTOCOL, interface)
    full_path = fw.store(MemoryType.EfiBootServicesData, device_path.encode(device_nodes + [file_node]))
    fw.handles.install(handle, guids.LOADED_IMAGE_DEVICE_PATH_PROTOCOL, full_path)
    return handle.address
