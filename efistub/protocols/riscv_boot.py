"""RISCV_EFI_BOOT_PROTOCOL: tells the Linux stub which hart it boots on (--hart-id)."""

from __future__ import annotations

from .. import guids
from ..layouts import efi
from ..registry import POINTER, service
from ..status import Status
from .interface import make_interface

REVISION = 0x00010000


@service("RiscvBoot.GetBootHartId", This=POINTER, BootHartId=POINTER)
def GetBootHartId(fw, this, hart_id_ptr):
    if not hart_id_ptr:
        return Status.EFI_INVALID_PARAMETER
    fw.mem.write_uintn(hart_id_ptr, fw.options.hart_id)  # UINTN *BootHartId
    return Status.EFI_SUCCESS


def install(fw) -> int:
    interface = make_interface(fw, "RiscvBoot", efi.RISCV_BOOT, fw.layout.RiscvBootProtocol, Revision=REVISION)
    return fw.handles.install(None, guids.RISCV_EFI_BOOT_PROTOCOL, interface).address
