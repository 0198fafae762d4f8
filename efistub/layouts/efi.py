"""UEFI 2.10 structures used by the firmware, as construct definitions.

Structures are laid out by ``c_struct`` with C natural alignment, as the compilers
EDK2 uses lay them out; no structure states its padding by hand.

Structures that hold a UINTN, a pointer or a handle depend on the guest's pointer
width; ``layouts(width)`` has them (``Firmware.layout`` is ``layouts(fw.width)``).
The ones below at module level are the same on every architecture.
"""

from __future__ import annotations

import functools

from construct import (
    Bytes, Construct, Default, FormatField, Int8ul, Int16sl, Int16ul, Int32sl, Int32ul, Int64ul, Padding, Struct,
    Subconstruct,
)

PAGE_SIZE = 4096
MAX_ALIGNMENT = 8  # UINT64 is 8-aligned also on IA32 (EDK2 builds with -malign-double, or MSVC)


# -- the layout helpers -------------------------------------------------------------------------

def alignment_of(subcon: Construct) -> int:
    """The C alignment of a field: min(size, 8) for integers, the largest member's for a
    ``c_struct``, the element's for an array, 1 for bytes, or what ``c_alignment`` says."""
    explicit = getattr(subcon, "c_alignment", None)
    if explicit is not None:
        return explicit
    if isinstance(subcon, FormatField):
        return min(subcon.length, MAX_ALIGNMENT)
    if isinstance(subcon, Bytes):
        return 1
    if isinstance(subcon, Subconstruct):  # a named field, an array: as its contents
        return alignment_of(subcon.subcon)
    raise TypeError(f"no C alignment known for {subcon!r}; build it with c_struct or set c_alignment")


def offset_of(struct: Struct, name: str) -> int:
    """The byte offset of the field ``name`` in ``struct`` (its padding included, for a ``c_struct``)."""
    offset = 0
    for sub in struct.subcons:
        if sub.name == name:
            return offset
        offset += sub.sizeof()
    raise KeyError(name)


def c_struct(*fields: Construct) -> Struct:
    """A Struct of ``fields`` with C natural alignment.

    Each field starts at a multiple of its alignment (``alignment_of``), and the
    structure ends at a multiple of its own alignment, its largest member's.
    """
    members: list[Construct] = []
    offset, alignment = 0, 1
    for field in fields:
        field_alignment = alignment_of(field)
        gap = -offset % field_alignment
        if gap:
            members.append(Padding(gap))
        members.append(field)
        offset += gap + field.sizeof()
        alignment = max(alignment, field_alignment)
    unpadded = offset
    if offset % alignment:
        members.append(Padding(-offset % alignment))
    struct = Struct(*members)
    struct.c_alignment = alignment
    struct.c_flexible_offset = unpadded  # where a flexible array member (CHAR16 Name[]) would start
    return struct


GUID = Bytes(16)
GUID.c_alignment = 4  # EFI_GUID is {UINT32, UINT16, UINT16, UINT8[8]}

# -- the same on every architecture ----------------------------------------------------------------

SYSTEM_TABLE_SIGNATURE = 0x5453595320494249  # "IBI SYST"
BOOT_SERVICES_SIGNATURE = 0x56524553544F4F42  # "BOOTSERV"
RUNTIME_SERVICES_SIGNATURE = 0x56524553544E5552  # "RUNTSERV"
SPECIFICATION_REVISION = (2 << 16) | 70  # 2.70

TableHeader = c_struct(
    "Signature" / Int64ul,
    "Revision" / Int32ul,
    "HeaderSize" / Int32ul,
    "CRC32" / Int32ul,
    "Reserved" / Int32ul,
)

# Members of EFI_BOOT_SERVICES after its header, in table order (44).
BOOT_SERVICES = (
    "RaiseTPL", "RestoreTPL",
    "AllocatePages", "FreePages", "GetMemoryMap", "AllocatePool", "FreePool",
    "CreateEvent", "SetTimer", "WaitForEvent", "SignalEvent", "CloseEvent", "CheckEvent",
    "InstallProtocolInterface", "ReinstallProtocolInterface", "UninstallProtocolInterface",
    "HandleProtocol", "Reserved", "RegisterProtocolNotify", "LocateHandle", "LocateDevicePath",
    "InstallConfigurationTable",
    "LoadImage", "StartImage", "Exit", "UnloadImage", "ExitBootServices",
    "GetNextMonotonicCount", "Stall", "SetWatchdogTimer",
    "ConnectController", "DisconnectController",
    "OpenProtocol", "CloseProtocol", "OpenProtocolInformation",
    "ProtocolsPerHandle", "LocateHandleBuffer", "LocateProtocol",
    "InstallMultipleProtocolInterfaces", "UninstallMultipleProtocolInterfaces",
    "CalculateCrc32", "CopyMem", "SetMem", "CreateEventEx",
)

# Members of EFI_RUNTIME_SERVICES after its header, in table order (14).
RUNTIME_SERVICES = (
    "GetTime", "SetTime", "GetWakeupTime", "SetWakeupTime",
    "SetVirtualAddressMap", "ConvertPointer",
    "GetVariable", "GetNextVariableName", "SetVariable",
    "GetNextHighMonotonicCount", "ResetSystem",
    "UpdateCapsule", "QueryCapsuleCapabilities", "QueryVariableInfo",
)

MEMORY_DESCRIPTOR_VERSION = 1
MemoryDescriptor = c_struct(
    "Type" / Int32ul,
    "PhysicalStart" / Int64ul,  # EFI_PHYSICAL_ADDRESS: 64 bits on every architecture
    "VirtualStart" / Int64ul,
    "NumberOfPages" / Int64ul,
    "Attribute" / Int64ul,
)
# The stride efistub hands out: larger than the structure, as on EDK2, so guests
# that index the map with sizeof() instead of DescriptorSize fail visibly.
MEMORY_DESCRIPTOR_STRIDE = MemoryDescriptor.sizeof() + 8

LOADED_IMAGE_REVISION = 0x1000

SIMPLE_TEXT_OUTPUT = (
    "Reset", "OutputString", "TestString", "QueryMode", "SetMode",
    "SetAttribute", "ClearScreen", "SetCursorPosition", "EnableCursor",
)

SimpleTextOutputMode = c_struct(
    "MaxMode" / Int32sl,
    "Mode" / Int32sl,
    "Attribute" / Int32sl,
    "CursorColumn" / Int32sl,
    "CursorRow" / Int32sl,
    "CursorVisible" / Int8ul,
)

SIMPLE_TEXT_INPUT = ("Reset", "ReadKeyStroke")

InputKey = c_struct("ScanCode" / Int16ul, "UnicodeChar" / Int16ul)

# EFI_SIMPLE_TEXT_INPUT_EX_PROTOCOL (UEFI 2.10 §12.2): its functions, and WaitForKeyEx (an event) after the second.
SIMPLE_TEXT_INPUT_EX = ("Reset", "ReadKeyStrokeEx", "SetState", "RegisterKeyNotify", "UnregisterKeyNotify")
KeyState = c_struct("KeyShiftState" / Int32ul, "KeyToggleState" / Int8ul)
KeyData = c_struct("Key" / InputKey, "KeyState" / KeyState)
SHIFT_STATE_VALID = 0x80000000
TOGGLE_STATE_VALID = 0x80

LOAD_FILE2 = ("LoadFile",)
RNG = ("GetInfo", "GetRNG")
RISCV_BOOT = ("GetBootHartId",)  # RISCV_EFI_BOOT_PROTOCOL after its UINT64 Revision
# EFI_UNICODE_COLLATION_PROTOCOL and EFI_UNICODE_COLLATION2_PROTOCOL (UEFI 2.10 §19.1): these
# functions, then CHAR8 *SupportedLanguages.
UNICODE_COLLATION = ("StriColl", "MetaiMatch", "StrLwr", "StrUpr", "FatToStr", "StrToFat")
# EFI_DEVICE_PATH_UTILITIES_PROTOCOL (§10.5): functions only; none of them takes a This.
DEVICE_PATH_UTILITIES = ("GetDevicePathSize", "DuplicateDevicePath", "AppendDevicePath", "AppendDeviceNode",
                         "AppendDevicePathInstance", "GetNextDevicePathInstance", "IsDevicePathMultiInstance",
                         "CreateDeviceNode")
# EFI_DEVICE_PATH_TO_TEXT_PROTOCOL and EFI_DEVICE_PATH_FROM_TEXT_PROTOCOL (§10.6): functions only, no This.
DEVICE_PATH_TO_TEXT = ("ConvertDeviceNodeToText", "ConvertDevicePathToText")
DEVICE_PATH_FROM_TEXT = ("ConvertTextToDeviceNode", "ConvertTextToDevicePath")

# EFI_TIME (§8.3), its Pad1 and Pad2 named: an authentication descriptor's TimeStamp must have them 0
Time = c_struct(
    "Year" / Int16ul,
    "Month" / Int8ul,
    "Day" / Int8ul,
    "Hour" / Int8ul,
    "Minute" / Int8ul,
    "Second" / Int8ul,
    "Pad1" / Default(Int8ul, 0),
    "Nanosecond" / Int32ul,
    "TimeZone" / Int16sl,
    "Daylight" / Int8ul,
    "Pad2" / Default(Int8ul, 0),
)
UNSPECIFIED_TIMEZONE = 0x07FF

TimeCapabilities = c_struct(
    "Resolution" / Int32ul,
    "Accuracy" / Int32ul,
    "SetsToZero" / Int8ul,
)

# EFI_LOAD_OPTION (§3.1.3), packed: then CHAR16 Description[], FilePathList, OptionalData.
LoadOptionHeader = Struct("Attributes" / Int32ul, "FilePathListLength" / Int16ul)

# EFI_BLOCK_IO_PROTOCOL (§13.9), EFI_DISK_IO_PROTOCOL (§13.7), EFI_PARTITION_INFO_PROTOCOL (§13.18)
BLOCK_IO = ("Reset", "ReadBlocks", "WriteBlocks", "FlushBlocks")
BLOCK_IO_REVISION = 0x0002001F  # revision 3: the media structure has all its fields
DISK_IO = ("ReadDisk", "WriteDisk")
DISK_IO_REVISION = 0x00010000
BlockIoMedia = c_struct(
    "MediaId" / Int32ul,
    "RemovableMedia" / Int8ul,
    "MediaPresent" / Int8ul,
    "LogicalPartition" / Int8ul,
    "ReadOnly" / Int8ul,
    "WriteCaching" / Int8ul,
    "BlockSize" / Int32ul,
    "IoAlign" / Int32ul,
    "LastBlock" / Int64ul,
    "LowestAlignedLba" / Int64ul,
    "LogicalBlocksPerPhysicalBlock" / Int32ul,
    "OptimalTransferLengthGranularity" / Int32ul,
)
PARTITION_INFO_REVISION = 0x00001000
PARTITION_TYPE_OTHER, PARTITION_TYPE_MBR, PARTITION_TYPE_GPT = 0, 1, 2
# Packed in EDK2 (#pragma pack(1)): Revision, Type, System, Reserved[7], then the MBR record or GPT entry.
PartitionInfo = Struct("Revision" / Int32ul, "Type" / Int32ul, "System" / Int8ul, Padding(7), "Info" / Bytes(128))

# EFI_SIMPLE_FILE_SYSTEM_PROTOCOL and EFI_FILE_PROTOCOL (UEFI 2.10 §13.4, §13.5): a Revision, then functions.
SIMPLE_FILE_SYSTEM = ("OpenVolume",)
SIMPLE_FILE_SYSTEM_REVISION = 0x00010000
FILE_PROTOCOL = ("Open", "Close", "Delete", "Read", "Write", "GetPosition", "SetPosition", "GetInfo", "SetInfo",
                 "Flush", "OpenEx", "ReadEx", "WriteEx", "FlushEx")
FILE_PROTOCOL_REVISION = 0x00010000  # the Ex functions (revision 2) are there, but declared only
FILE_MODE_READ = 0x1
FILE_MODE_WRITE = 0x2
FILE_MODE_CREATE = 0x8000000000000000
FILE_READ_ONLY = 0x01
FILE_DIRECTORY = 0x10
FILE_VALID_ATTR = 0x37
# EFI_FILE_INFO and EFI_FILE_SYSTEM_INFO: fixed fields, then a NUL-terminated CHAR16 name at
# c_flexible_offset (80 and 36, EDK2's SIZE_OF_EFI_FILE_INFO and SIZE_OF_EFI_FILE_SYSTEM_INFO).
FileInfo = c_struct(
    "Size" / Int64ul,
    "FileSize" / Int64ul,
    "PhysicalSize" / Int64ul,
    "CreateTime" / Time,
    "LastAccessTime" / Time,
    "ModificationTime" / Time,
    "Attribute" / Int64ul,
)
FileSystemInfo = c_struct(
    "Size" / Int64ul,
    "ReadOnly" / Int8ul,
    "VolumeSize" / Int64ul,
    "FreeSpace" / Int64ul,
    "BlockSize" / Int32ul,
)

# Device paths (UEFI 2.10 §10.3). Device path nodes are byte-packed (EDK2 declares
# them under #pragma pack(1)), so these are plain Structs, not c_structs.
DevicePathHeader = Struct("Type" / Int8ul, "SubType" / Int8ul, "Length" / Int16ul)
# Node data after the header; device path nodes are byte-packed.
DEVICE_PATH_HARDWARE = 0x01
HARDWARE_PCI = 0x01
HARDWARE_VENDOR = 0x04
DEVICE_PATH_ACPI = 0x02
ACPI_DP = 0x01
DEVICE_PATH_MEDIA = 0x04
MEDIA_HARD_DRIVE = 0x01
MEDIA_VENDOR = 0x03
MEDIA_FILE_PATH = 0x04
PNP0A03 = 0x0A0341D0  # EISA_PNP_ID(0x0A03): a PCI root bridge
AcpiNode = Struct("HID" / Int32ul, "UID" / Int32ul)
PciNode = Struct("Function" / Int8ul, "Device" / Int8ul)
HardDriveNode = Struct("PartitionNumber" / Int32ul, "PartitionStart" / Int64ul, "PartitionSize" / Int64ul,
                       "Signature" / GUID, "MBRType" / Int8ul, "SignatureType" / Int8ul)
MBR_TYPE_GPT = 0x02
SIGNATURE_TYPE_GUID = 0x02
DEVICE_PATH_END = 0x7F
END_ENTIRE = 0xFF
END_INSTANCE = 0x01
VendorDevicePath = Struct("Header" / DevicePathHeader, "Guid" / GUID)


# -- the ones that depend on the pointer width ----------------------------------------------------

class Layouts:
    """The UEFI structures at one pointer width (4: IA32; 8: x64, AArch64, RISC-V 64).

    UINTN, POINTER and HANDLE are the same construct: an unsigned little-endian
    integer ``width`` bytes wide. UINT64 fields (ImageSize, the memory descriptor's
    addresses) stay 64 bits, 8-aligned, on every width.
    """

    def __init__(self, width: int):
        if width not in (4, 8):
            raise ValueError(f"pointer width must be 4 or 8 bytes, not {width!r}")
        self.width = width
        self.UINTN = self.POINTER = self.HANDLE = Int64ul if width == 8 else Int32ul
        POINTER, HANDLE, UINTN = self.POINTER, self.HANDLE, self.UINTN

        self.SystemTable = c_struct(
            "Hdr" / TableHeader,
            "FirmwareVendor" / POINTER,
            "FirmwareRevision" / Int32ul,
            "ConsoleInHandle" / HANDLE,
            "ConIn" / POINTER,
            "ConsoleOutHandle" / HANDLE,
            "ConOut" / POINTER,
            "StandardErrorHandle" / HANDLE,
            "StdErr" / POINTER,
            "RuntimeServices" / POINTER,
            "BootServices" / POINTER,
            "NumberOfTableEntries" / UINTN,
            "ConfigurationTable" / POINTER,
        )
        self.BootServices = self.function_table(BOOT_SERVICES)
        self.RuntimeServices = self.function_table(RUNTIME_SERVICES)
        self.ConfigurationTable = c_struct("VendorGuid" / GUID, "VendorTable" / POINTER)
        self.LoadedImage = c_struct(
            "Revision" / Int32ul,
            "ParentHandle" / HANDLE,
            "SystemTable" / POINTER,
            "DeviceHandle" / HANDLE,
            "FilePath" / POINTER,
            "Reserved" / POINTER,
            "LoadOptionsSize" / Int32ul,
            "LoadOptions" / POINTER,
            "ImageBase" / POINTER,
            "ImageSize" / Int64ul,  # UINT64
            "ImageCodeType" / Int32ul,
            "ImageDataType" / Int32ul,
            "Unload" / POINTER,
        )
        self.SimpleTextOutput = c_struct(*[name / POINTER for name in SIMPLE_TEXT_OUTPUT], "Mode" / POINTER)
        self.SimpleTextInput = c_struct(*[name / POINTER for name in SIMPLE_TEXT_INPUT], "WaitForKey" / POINTER)
        reset, read, *rest = SIMPLE_TEXT_INPUT_EX
        self.SimpleTextInputEx = c_struct(reset / POINTER, read / POINTER, "WaitForKeyEx" / POINTER,
                                          *[name / POINTER for name in rest])
        self.LoadFile2 = self.function_table(LOAD_FILE2, header=False)
        self.Rng = self.function_table(RNG, header=False)
        self.UnicodeCollation = c_struct(*[name / POINTER for name in UNICODE_COLLATION],
                                         "SupportedLanguages" / POINTER)
        self.DevicePathUtilities = self.function_table(DEVICE_PATH_UTILITIES, header=False)
        self.DevicePathToText = self.function_table(DEVICE_PATH_TO_TEXT, header=False)
        self.DevicePathFromText = self.function_table(DEVICE_PATH_FROM_TEXT, header=False)
        self.BlockIo = c_struct("Revision" / Int64ul, "Media" / POINTER, *[name / POINTER for name in BLOCK_IO])
        self.DiskIo = c_struct("Revision" / Int64ul, *[name / POINTER for name in DISK_IO])
        self.SimpleFileSystem = c_struct("Revision" / Int64ul, *[name / POINTER for name in SIMPLE_FILE_SYSTEM])
        self.FileProtocol = c_struct("Revision" / Int64ul, *[name / POINTER for name in FILE_PROTOCOL])
        self.RiscvBootProtocol = c_struct("Revision" / Int64ul, *[name / POINTER for name in RISCV_BOOT])
        self.OpenProtocolInformationEntry = c_struct(
            "AgentHandle" / HANDLE,
            "ControllerHandle" / HANDLE,
            "Attributes" / Int32ul,
            "OpenCount" / Int32ul,
        )

    def function_table(self, members, header: bool = True) -> Struct:
        """A table of function pointers, optionally after an EFI_TABLE_HEADER."""
        fields = [name / self.POINTER for name in members]
        return c_struct("Hdr" / TableHeader, *fields) if header else c_struct(*fields)

    def __repr__(self) -> str:
        return f"<efi.Layouts width={self.width}>"


@functools.lru_cache(maxsize=None)
def layouts(width: int) -> Layouts:
    """The UEFI structures for a guest whose UINTN and pointers are ``width`` bytes (4 or 8)."""
    return Layouts(width)
