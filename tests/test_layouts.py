"""UEFI and Linux layouts at both pointer widths: sizes and offsets as the C compilers lay them out.

Width 8 is what efistub has always used (x64, AArch64, RISC-V 64); width 4 is EDK2's IA32
build, where UINT64 members stay 8-aligned.
"""

from __future__ import annotations

import pytest
from construct import Int8ul, Int16ul, Int32ul, Int64ul

from efistub.layouts import efi, linux
from efistub.layouts.efi import c_struct, layouts, offset_of


def offsets(struct) -> dict[str, int]:
    return {sc.name: offset_of(struct, sc.name) for sc in struct.subcons if sc.name}


SIZES = {
    # name: (width 8, width 4)
    "SystemTable": (120, 72),
    "BootServices": (376, 200),
    "RuntimeServices": (136, 80),
    "ConfigurationTable": (24, 20),
    "LoadedImage": (96, 64),
    "SimpleTextOutput": (80, 40),
    "SimpleTextInput": (24, 12),
    "LoadFile2": (8, 4),
    "Rng": (16, 8),
    "RiscvBootProtocol": (16, 16),
    "OpenProtocolInformationEntry": (24, 16),
}


@pytest.mark.parametrize("name", SIZES)
@pytest.mark.parametrize("width", [8, 4])
def test_sizes(name, width):
    assert getattr(layouts(width), name).sizeof() == SIZES[name][width == 4]


def test_system_table_offsets():
    names = ["Hdr", "FirmwareVendor", "FirmwareRevision", "ConsoleInHandle", "ConIn", "ConsoleOutHandle", "ConOut",
             "StandardErrorHandle", "StdErr", "RuntimeServices", "BootServices", "NumberOfTableEntries",
             "ConfigurationTable"]
    assert offsets(layouts(8).SystemTable) == dict(zip(names, [0, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112]))
    assert offsets(layouts(4).SystemTable) == dict(zip(names, [0, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60, 64, 68]))


def test_loaded_image_offsets():
    names = ["Revision", "ParentHandle", "SystemTable", "DeviceHandle", "FilePath", "Reserved", "LoadOptionsSize",
             "LoadOptions", "ImageBase", "ImageSize", "ImageCodeType", "ImageDataType", "Unload"]
    assert offsets(layouts(8).LoadedImage) == dict(zip(names, [0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 84, 88]))
    # IA32: ImageSize is a UINT64, 8-aligned at 40 after ImageBase at 32
    assert offsets(layouts(4).LoadedImage) == dict(zip(names, [0, 4, 8, 12, 16, 20, 24, 28, 32, 40, 48, 52, 56]))


@pytest.mark.parametrize("width", [8, 4])
def test_service_tables_are_pointers_after_the_header(width):
    la = layouts(width)
    for table, members in ((la.BootServices, efi.BOOT_SERVICES), (la.RuntimeServices, efi.RUNTIME_SERVICES)):
        assert offsets(table) == {"Hdr": 0, **{name: 24 + width * i for i, name in enumerate(members)}}
    assert offset_of(la.BootServices, "GetMemoryMap") == {8: 56, 4: 40}[width]
    assert offset_of(la.RuntimeServices, "QueryVariableInfo") == {8: 128, 4: 76}[width]


@pytest.mark.parametrize("width", [8, 4])
def test_small_structures(width):
    la = layouts(width)
    assert offset_of(la.ConfigurationTable, "VendorTable") == 16
    assert offset_of(la.SimpleTextOutput, "Mode") == 9 * width
    assert offset_of(la.SimpleTextInput, "WaitForKey") == 2 * width
    assert offset_of(la.RiscvBootProtocol, "GetBootHartId") == 8  # after the UINT64 Revision
    assert offsets(la.OpenProtocolInformationEntry) == {
        "AgentHandle": 0, "ControllerHandle": width, "Attributes": 2 * width, "OpenCount": 2 * width + 4}
    assert la.UINTN.sizeof() == la.POINTER.sizeof() == la.HANDLE.sizeof() == width
    assert la.width == width


def test_fixed_width_structures():
    assert efi.TableHeader.sizeof() == 24
    assert efi.MemoryDescriptor.sizeof() == 40 and efi.MEMORY_DESCRIPTOR_STRIDE == 48
    assert offsets(efi.MemoryDescriptor) == {"Type": 0, "PhysicalStart": 8, "VirtualStart": 16,
                                             "NumberOfPages": 24, "Attribute": 32}
    assert efi.SimpleTextOutputMode.sizeof() == 24
    assert efi.InputKey.sizeof() == 4
    assert efi.Time.sizeof() == 16
    assert (offset_of(efi.Time, "Nanosecond"), offset_of(efi.Time, "TimeZone"), offset_of(efi.Time, "Daylight")) == (
        8, 12, 14)
    assert efi.TimeCapabilities.sizeof() == 12
    assert efi.DevicePathHeader.sizeof() == 4 and efi.VendorDevicePath.sizeof() == 20


def test_linux_tables():
    assert linux.layouts(8).InitrdMedia.sizeof() == 16 and linux.layouts(4).InitrdMedia.sizeof() == 8
    assert offsets(linux.layouts(8).BootMemmapHeader) == {"map_size": 0, "desc_size": 8, "desc_ver": 16,
                                                          "map_key": 24, "buff_size": 32}
    assert linux.layouts(8).BootMemmapHeader.sizeof() == 40
    assert offsets(linux.layouts(4).BootMemmapHeader) == {"map_size": 0, "desc_size": 4, "desc_ver": 8,
                                                          "map_key": 12, "buff_size": 16}
    assert linux.layouts(4).BootMemmapHeader.sizeof() == 20


@pytest.mark.parametrize("width", [8, 4])
def test_uint64_after_uint32_is_padded_on_both_widths(width):
    s = c_struct("a" / Int32ul, "b" / Int64ul)
    assert s.sizeof() == 16 and offset_of(s, "b") == 8
    assert s.build(dict(a=1, b=2)) == bytes([1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0])
    assert s.parse(s.build(dict(a=1, b=2))).b == 2


def test_pointer_then_uint32_has_tail_padding():
    assert c_struct("p" / layouts(8).POINTER, "n" / Int32ul).sizeof() == 16
    assert c_struct("p" / layouts(4).POINTER, "n" / Int32ul).sizeof() == 8


def test_nested_struct_aligns_to_its_largest_member():
    inner = c_struct("x" / Int64ul, "y" / Int8ul)
    assert inner.sizeof() == 16
    outer = c_struct("a" / Int8ul, "inner" / inner, "b" / Int16ul)
    assert offset_of(outer, "inner") == 8 and offset_of(outer, "b") == 24 and outer.sizeof() == 32
    assert c_struct("a" / Int8ul, "h" / Int16ul).sizeof() == 4
    assert c_struct("a" / Int8ul, "g" / efi.GUID).sizeof() == 20  # EFI_GUID is 4-aligned


def test_layouts_are_cached_and_only_4_or_8():
    assert layouts(8) is layouts(8) and layouts(4) is not layouts(8)
    with pytest.raises(ValueError):
        layouts(2)
    with pytest.raises(ValueError):
        linux.layouts(16)
