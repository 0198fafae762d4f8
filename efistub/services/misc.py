"""Miscellaneous boot services (UEFI 2.10 §7.5)."""

from __future__ import annotations

import enum

from ..errors import GuestMemoryError
from ..memory import ucs2_text
from ..registry import GUID_PTR, POINTER, STATUS, STRING, UINT8, UINT64, UINTN, Result, declare, enum_arg, service
from ..status import INVALID, Status

MASK64 = (1 << 64) - 1


@service("SetWatchdogTimer", Timeout=UINTN, WatchdogCode=UINTN, DataSize=UINTN, WatchdogData=STRING)
def SetWatchdogTimer(fw, timeout, code, data_size, data):
    """Accepted and recorded; the watchdog never fires (the run has its own --timeout)."""
    if 0 < code <= 0xFFFF:
        return INVALID  # codes up to 0xFFFF are reserved for the firmware
    return Status.EFI_SUCCESS


@service("CopyMem", returns="void", Destination=POINTER, Source=POINTER, Length=UINTN)
def CopyMem(fw, destination, source, length):
    """Also in the C trampoline, with the same checks in the same order."""
    if length and destination != source:
        fw.mem.move(destination, source, length)  # overlap is allowed


@service("SetMem", returns="void", Buffer=POINTER, Size=UINTN, Value=UINT8)
def SetMem(fw, buffer, size, value):
    """Also in the C trampoline."""
    if size:
        fw.mem.fill(buffer, size, value)


@service("GetNextMonotonicCount", Count=POINTER)
def GetNextMonotonicCount(fw, count):
    """Also in the C trampoline."""
    if not count:
        return INVALID
    fw.mem.check(count, 8, "write")
    fw.state.monotonic_count = (fw.state.monotonic_count + 1) & MASK64
    fw.mem.write_u64(count, fw.state.monotonic_count)  # UINT64 *Count
    return Status.EFI_SUCCESS


@service("CalculateCrc32", Data=POINTER, DataSize=UINTN, Crc32=POINTER)
def CalculateCrc32(fw, data, size, crc_ptr):
    """Also in the C trampoline."""
    if not data or not crc_ptr or not size:
        return INVALID
    fw.mem.write_u32(crc_ptr, fw.mem.crc32(data, size))
    return Status.EFI_SUCCESS


@service("InstallConfigurationTable", Guid=GUID_PTR, Table=POINTER)
def InstallConfigurationTable(fw, guid, table):
    if not guid:
        return INVALID
    fw.set_configuration_table(fw.mem.read_guid(guid), table)
    return Status.EFI_SUCCESS


@service("GetNextHighMonotonicCount", boot=False, HighCount=POINTER)
def GetNextHighMonotonicCount(fw, high_count):
    """Advance the high 32 bits of the monotonic count (UEFI 2.10 §8.5.2)."""
    if not high_count:
        return INVALID
    fw.state.monotonic_count = (((fw.state.monotonic_count >> 32) + 1) << 32) & MASK64
    fw.mem.write_u32(high_count, fw.state.monotonic_count >> 32)
    return Status.EFI_SUCCESS


class ResetType(enum.IntEnum):
    EfiResetCold = 0
    EfiResetWarm = 1
    EfiResetShutdown = 2
    EfiResetPlatformSpecific = 3


@service("ResetSystem", boot=False, returns="void", ResetType=enum_arg(ResetType), ResetStatus=STATUS,
         DataSize=UINTN, ResetData=POINTER)
def ResetSystem(fw, reset_type, reset_status, data_size, data):
    """Ends the run with outcome "reset": the type, the status and the data string, if any."""
    text = note = None
    if data and data_size:
        try:
            text = ucs2_text(fw.mem.read(data, min(data_size, 4096)))
        except GuestMemoryError:
            note = "ResetData is not readable"
    fw.request_stop("reset", type=ResetType(reset_type).name if reset_type in ResetType.__members__.values()
                    else reset_type, status=reset_status, data=text)
    return Result(0, note)
declare("UpdateCapsule", boot=False, CapsuleHeaderArray=POINTER, CapsuleCount=UINTN, ScatterGatherList=UINT64)  # EFI_PHYSICAL_ADDRESS
declare("QueryCapsuleCapabilities", boot=False, CapsuleHeaderArray=POINTER, CapsuleCount=UINTN,
        MaximumCapsuleSize=POINTER, ResetType=POINTER)
