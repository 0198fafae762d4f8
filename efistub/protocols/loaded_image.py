"""LOADED_IMAGE and the device paths of the image and its boot device."""

from __future__ import annotations

import os

from .. import guids
from ..layouts import efi
from ..memory import MemoryType, ucs2
from .. import device_path

# The vendor GUID of efistub's boot device node: VenHw(EFISTUB_BOOT_DEVICE).
EFISTUB_BOOT_DEVICE = guids.Guid("6f0f8a1c-5b7e-4b1e-9a43-65666973747a")


def install(fw, image, base: int, cmdline: str, parent: int = 0, device: int = 0,
            file_path: list | None = None) -> int:
    """Install the image's handle with LOADED_IMAGE and LOADED_IMAGE_DEVICE_PATH; return the handle.

    ``device``: the handle it was loaded from (its DeviceHandle), ``file_path`` the device-path
    nodes of the file on that device. Without a device, a VenHw node of efistub's stands for
    the host file the image came from.
    """
    if device:
        device_nodes = device_path.read(fw.mem, fw.handles.get(device).protocols[guids.DEVICE_PATH_PROTOCOL])[0]
    else:
        device_nodes = [device_path.vendor_hardware(EFISTUB_BOOT_DEVICE)]
        device = fw.handles.install(None, guids.DEVICE_PATH_PROTOCOL,
                                    fw.store(MemoryType.EfiBootServicesData, device_path.encode(device_nodes))).address
    file_nodes = file_path if file_path is not None else [device_path.file_path("\\" + os.path.basename(image.path))]
    file_path_address = fw.store(MemoryType.EfiBootServicesData, device_path.encode(file_nodes)) if file_nodes else 0
    options = ucs2(cmdline) if cmdline else b""
    loaded = dict(
        Revision=efi.LOADED_IMAGE_REVISION, ParentHandle=parent, SystemTable=fw.system_table,
        DeviceHandle=device, FilePath=file_path_address, Reserved=0,
        LoadOptionsSize=len(options),
        LoadOptions=fw.store(MemoryType.EfiLoaderData, options) if options else 0,
        ImageBase=base, ImageSize=image.size_of_image,
        ImageCodeType=MemoryType.EfiLoaderCode, ImageDataType=MemoryType.EfiLoaderData, Unload=0,
    )
    layout = fw.layout.LoadedImage
    interface = fw.allocate_pool(MemoryType.EfiBootServicesData, layout.sizeof())
    fw.mem.write_struct(layout, interface, loaded)
    handle = fw.handles.install(None, guids.LOADED_IMAGE_PROTOCOL, interface)
    full_path = fw.store(MemoryType.EfiBootServicesData, device_path.encode(device_nodes + file_nodes))
    fw.handles.install(handle, guids.LOADED_IMAGE_DEVICE_PATH_PROTOCOL, full_path)
    return handle.address


def set_load_options(fw, handle: int, options: bytes) -> None:
    """Give an image its LoadOptions (a boot option's OptionalData), as the boot manager does."""
    interface = fw.handles.get(handle).protocols[guids.LOADED_IMAGE_PROTOCOL]
    layout = fw.layout.LoadedImage
    loaded = dict(fw.mem.read_struct(layout, interface))
    loaded.pop("_io", None)
    loaded.update(LoadOptionsSize=len(options), LoadOptions=fw.store(MemoryType.EfiLoaderData, options))
    fw.mem.write_struct(layout, interface, loaded)
