"""Time services (UEFI 2.10 §8.3): GetTime reads the host clock (UTC)."""

from __future__ import annotations

import datetime

from ..layouts import efi
from ..registry import BOOLEAN, POINTER, declare, service
from ..status import Status


@service("GetTime", boot=False, Time=POINTER, Capabilities=POINTER)
def GetTime(fw, time_ptr, capabilities_ptr):
    if not time_ptr:
        return Status.EFI_INVALID_PARAMETER
    now = datetime.datetime.now(datetime.timezone.utc)
    fw.mem.write_struct(efi.Time, time_ptr, dict(
        Year=now.year, Month=now.month, Day=now.day, Hour=now.hour, Minute=now.minute,
        Second=now.second, Nanosecond=now.microsecond * 1000,
        TimeZone=efi.UNSPECIFIED_TIMEZONE, Daylight=0,
    ))
    if capabilities_ptr:
        fw.mem.write_struct(efi.TimeCapabilities, capabilities_ptr,
                            dict(Resolution=1, Accuracy=50_000_000, SetsToZero=0))
    return Status.EFI_SUCCESS


declare("SetTime", boot=False, Time=POINTER)
declare("GetWakeupTime", boot=False, Enabled=POINTER, Pending=POINTER, Time=POINTER)
declare("SetWakeupTime", boot=False, Enable=BOOLEAN, Time=POINTER)
