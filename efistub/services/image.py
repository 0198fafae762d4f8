"""Image services (UEFI 2.10 §7.4): Exit and ExitBootServices.

LoadImage, StartImage and UnloadImage of a second image are declared, not implemented.
"""

from __future__ import annotations

from ..registry import BOOLEAN, HANDLE, POINTER, STATUS, UINTN, declare, service
from ..status import Status
from ..tables import update_system_table


@service("Exit", ImageHandle=HANDLE, ExitStatus=STATUS, ExitDataSize=UINTN, ExitData=POINTER)
def Exit(fw, image_handle, exit_status, data_size, data):
    if image_handle != fw.image_handle:
        return Status.EFI_INVALID_PARAMETER
    exit_data = None
    if data and data_size:
        raw = fw.mem.read(data, data_size)
        text = raw.decode("utf-16-le", errors="replace")
        exit_data = text.split("\0", 1)[0]
    fw.request_stop("exit", status=exit_status, exit_data=exit_data)
    return Status.EFI_SUCCESS


@service("ExitBootServices", ImageHandle=HANDLE, MapKey=UINTN)
def ExitBootServices(fw, image_handle, map_key):
    if map_key != fw.pages.map_key:
        fw.note(f"ExitBootServices with a stale map key {map_key} (current {fw.pages.map_key})")
        return Status.EFI_INVALID_PARAMETER
    fw.state.boot_services_active = False
    # The spec has the firmware clear the boot-time members of the system table.
    update_system_table(fw, BootServices=0, ConsoleInHandle=0, ConIn=0, ConsoleOutHandle=0, ConOut=0,
                        StandardErrorHandle=0, StdErr=0)
    fw.exit_boot_services_key = map_key
    return Status.EFI_SUCCESS


declare("LoadImage", BootPolicy=BOOLEAN, ParentImageHandle=HANDLE, DevicePath=POINTER, SourceBuffer=POINTER,
        SourceSize=UINTN, ImageHandle=POINTER)
declare("StartImage", ImageHandle=HANDLE, ExitDataSize=POINTER, ExitData=POINTER)
declare("UnloadImage", ImageHandle=HANDLE)
