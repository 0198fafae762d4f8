"""RISCV_EFI_BOOT_PROTOCOL: tells the Linux stub which hart it boots on (--hart-id)."""

from __future__ import annotations

from construct import Int64ul, Struct

from .. import guids
from ..registry import POINTER, service
from ..status import Status
from . import make_interface

REVISION = 0x00010000
MEMBERS = ("GetBootHartId",)
RiscvBootProtocol = Struct("Revision" / Int64ul, "GetBootHartId" / Int64ul)


@service("RiscvBoot.GetBootHartId", This=POINTER, BootHartId=POINTER)
def GetBootHartId(fw, this, hart_id_ptr):
    if not hart_id_ptr:
        return Status.EFI_INVALID_PARAMETER
    fw.mem.write_u64(hart_id_ptr, fw.options.hart_id)
    return Status.EFI_SUCCESS


def install(fw) -> int:
    interface = make_interface(fw, "RiscvBoot", MEMBERS, RiscvBootProtocol, Revision=REVISION)
    return fw.handles.install(None, guids.RISCV_EFI_BOOT_PROTOCOL, interface).address
