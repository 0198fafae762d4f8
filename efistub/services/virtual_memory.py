"""Virtual memory services (UEFI 2.10 §8.4): SetVirtualAddressMap and ConvertPointer.

SetVirtualAddressMap validates the map the OS hands over, records it for the
report, and moves the firmware's own runtime pointers (the runtime services table's
functions and the system table's runtime members) to their virtual addresses.
Guest memory itself stays physical: code after the hand-off is not emulated.
"""

from __future__ import annotations

from ..errors import EfiError
from ..layouts import efi
from ..memory import MEMORY_RUNTIME, MemoryType
from ..registry import POINTER, UINT32, UINTN, service
from ..status import INVALID, Status
from ..tables import update_system_table, write_table

OPTIONAL_PTR = 0x00000001  # ConvertPointer: a NULL pointer is allowed


def _virtual(fw, address: int) -> int:
    for region in fw.virtual_map or ():
        if region["start"] <= address < region["start"] + region["pages"] * efi.PAGE_SIZE:
            return address - region["start"] + region["virtual"]
    raise EfiError(Status.EFI_NOT_FOUND, f"0x{address:x} is not in a range of the virtual address map")


@service("SetVirtualAddressMap", boot=False, MemoryMapSize=UINTN, DescriptorSize=UINTN, DescriptorVersion=UINT32,
         VirtualMap=POINTER)
def SetVirtualAddressMap(fw, size, descriptor_size, version, virtual_map):
    if fw.state.boot_services_active or fw.virtual_map is not None:
        return Status.EFI_UNSUPPORTED  # only once, and only at runtime
    if version != efi.MEMORY_DESCRIPTOR_VERSION or descriptor_size < efi.MemoryDescriptor.sizeof():
        return INVALID
    if not virtual_map or size % descriptor_size:
        return INVALID
    raw = fw.mem.read(virtual_map, size)
    given = [efi.MemoryDescriptor.parse(raw[i:i + descriptor_size]) for i in range(0, size, descriptor_size)]
    regions = [{"type": MemoryType.name_of(d.Type), "start": d.PhysicalStart, "virtual": d.VirtualStart,
                "pages": d.NumberOfPages} for d in given if d.Attribute & MEMORY_RUNTIME]
    for d in fw.pages.descriptors():
        if d.attribute & MEMORY_RUNTIME and not any(
                r["start"] <= d.start and d.end <= r["start"] + r["pages"] * efi.PAGE_SIZE for r in regions):
            fw.note(f"SetVirtualAddressMap: no virtual address for the runtime range 0x{d.start:x}")
            return Status.EFI_NO_MAPPING
    fw.virtual_map = regions
    rt = fw.mem.read_struct(fw.layout.RuntimeServices, fw.runtime_services)
    moved = {name: _virtual(fw, rt[name]) for name in efi.RUNTIME_SERVICES}
    write_table(fw, fw.layout.RuntimeServices, fw.runtime_services, dict(Hdr=dict(rt.Hdr), **moved))
    st = fw.system_table_value
    update_system_table(fw, RuntimeServices=_virtual(fw, st["RuntimeServices"]),
                        FirmwareVendor=_virtual(fw, st["FirmwareVendor"]),
                        ConfigurationTable=_virtual(fw, st["ConfigurationTable"]))
    return Status.EFI_SUCCESS


@service("ConvertPointer", boot=False, DebugDisposition=UINTN, Address=POINTER)
def ConvertPointer(fw, disposition, address_ptr):
    if not address_ptr:
        return INVALID
    if fw.virtual_map is None:
        return Status.EFI_UNSUPPORTED  # only during SetVirtualAddressMap's notifications, which efistub has none of
    address = fw.mem.read_uintn(address_ptr)
    if not address:
        return Status.EFI_SUCCESS if disposition & OPTIONAL_PTR else INVALID
    fw.mem.write_uintn(address_ptr, _virtual(fw, address))
    return Status.EFI_SUCCESS
