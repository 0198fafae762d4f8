"""What the kernel receives at the hand-off, independent of the architecture.

The architecture layer decodes its own structure (x86 boot_params, later the FDT)
and says where the EFI memory map is; this module adds the memory map and the
configuration tables as they lie in guest memory.
"""

from __future__ import annotations

from ..guids import LINUX_EFI_BOOT_MEMMAP, LINUX_EFI_INITRD_MEDIA, Guid
from ..layouts import efi, linux
from ..memory import MemoryType

MAX_DESCRIPTORS = 4096


def describe(platform, entry: int) -> dict:
    fw = platform.fw
    info, memmap = platform.arch.handoff(platform.uc, entry)
    if memmap is not None:
        try:
            info["memory_map"] = read_memory_map(fw.mem, *memmap)
        except Exception as e:
            info["memory_map_error"] = f"cannot read the memory map at 0x{memmap[0]:x}: {e}"
    info["configuration_tables"] = configuration_tables(fw)
    if fw.virtual_map is not None:
        info["virtual_address_map"] = fw.virtual_map
    return info


def read_memory_map(mem, address: int, size: int, descriptor_size: int) -> list[dict]:
    if descriptor_size < efi.MemoryDescriptor.sizeof():
        raise ValueError(f"descriptor size {descriptor_size} is smaller than EFI_MEMORY_DESCRIPTOR")
    count = min(size // descriptor_size, MAX_DESCRIPTORS)
    raw = mem.read(address, count * descriptor_size)
    out = []
    for i in range(count):
        d = efi.MemoryDescriptor.parse(raw[i * descriptor_size:])
        out.append({"type": MemoryType.name_of(d.Type), "start": d.PhysicalStart, "pages": d.NumberOfPages,
                    "attribute": d.Attribute, "virtual": d.VirtualStart})
    return out


def configuration_tables(fw) -> list[dict]:
    """The configuration tables as the system table in guest memory lists them.

    The array is read at its physical address: after SetVirtualAddressMap the system
    table holds its virtual one.
    """
    st = fw.mem.read_struct(fw.layout.SystemTable, fw.system_table)
    entry = fw.layout.ConfigurationTable
    kernel = linux.layouts(fw.width)
    out = []
    for i in range(min(st.NumberOfTableEntries, 1024)):
        e = fw.mem.read_struct(entry, fw.config_table_array + i * entry.sizeof())
        guid = Guid.from_bytes(e.VendorGuid)
        table = {"guid": str(guid), "name": guid.name, "address": e.VendorTable}
        try:
            if guid == LINUX_EFI_INITRD_MEDIA:
                table["initrd"] = dict(fw.mem.read_struct(kernel.InitrdMedia, e.VendorTable))
            elif guid == LINUX_EFI_BOOT_MEMMAP:
                table["boot_memmap"] = dict(fw.mem.read_struct(kernel.BootMemmapHeader, e.VendorTable))
        except Exception as ex:
            table["error"] = str(ex)
        for value in table.values():
            if isinstance(value, dict):
                value.pop("_io", None)
        out.append(table)
    return out
