"""Memory allocation services (UEFI 2.10 §7.2)."""

from __future__ import annotations

from ..layouts import efi
from ..memory import AllocateType, MemoryType
from ..registry import POINTER, UINT64, UINTN, enum_arg, service
from ..status import INVALID, Status


@service("AllocatePages", Type=enum_arg(AllocateType), MemoryType=enum_arg(MemoryType),
         Pages=UINTN, Memory=POINTER)
def AllocatePages(fw, kind, memory_type, pages, memory):
    if kind > AllocateType.AllocateAddress or not memory:
        return INVALID
    requested = fw.mem.read_u64(memory)  # EFI_PHYSICAL_ADDRESS: 64 bits on every architecture
    address = fw.allocate_pages(memory_type, pages, kind, requested)
    fw.mem.write_u64(memory, address)
    return Status.EFI_SUCCESS


@service("FreePages", Memory=UINT64, Pages=UINTN)  # EFI_PHYSICAL_ADDRESS is 64-bit everywhere
def FreePages(fw, memory, pages):
    fw.pages.free(memory, pages)
    return Status.EFI_SUCCESS


@service("AllocatePool", PoolType=enum_arg(MemoryType), Size=UINTN, Buffer=POINTER)
def AllocatePool(fw, pool_type, size, buffer):
    if not buffer:
        return INVALID
    fw.mem.read_uintn(buffer)  # the output pointer must be writable guest memory
    fw.mem.write_uintn(buffer, fw.allocate_pool(pool_type, size))
    return Status.EFI_SUCCESS


@service("FreePool", Buffer=POINTER)
def FreePool(fw, buffer):
    if not buffer:
        return INVALID
    fw.free_pool(buffer)
    return Status.EFI_SUCCESS


@service("GetMemoryMap", MemoryMapSize=POINTER, MemoryMap=POINTER, MapKey=POINTER,
         DescriptorSize=POINTER, DescriptorVersion=POINTER)
def GetMemoryMap(fw, size_ptr, map_ptr, key_ptr, desc_size_ptr, desc_version_ptr):
    if not size_ptr:
        return INVALID
    stride = efi.MEMORY_DESCRIPTOR_STRIDE
    descriptors = fw.pages.descriptors()
    needed = len(descriptors) * stride
    available = fw.mem.read_uintn(size_ptr)
    # The size probe must still report the descriptor size and version (the Linux stub divides by it).
    if desc_size_ptr:
        fw.mem.write_uintn(desc_size_ptr, stride)
    if desc_version_ptr:
        fw.mem.write_u32(desc_version_ptr, efi.MEMORY_DESCRIPTOR_VERSION)
    if key_ptr:
        fw.mem.write_uintn(key_ptr, fw.pages.map_key)
    fw.mem.write_uintn(size_ptr, needed)
    if available < needed:
        return Status.EFI_BUFFER_TOO_SMALL
    if not map_ptr:
        return INVALID
    raw = b"".join(
        efi.MemoryDescriptor.build(dict(Type=d.type, PhysicalStart=d.start, VirtualStart=0,
                                        NumberOfPages=d.pages, Attribute=d.attribute)).ljust(stride, b"\0")
        for d in descriptors
    )
    fw.mem.write(map_ptr, raw)
    return Status.EFI_SUCCESS
