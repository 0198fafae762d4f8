"""UEFI 2.10 structures used by the firmware, as construct definitions."""

from __future__ import annotations

from construct import (
    Bytes, Int8ul, Int16sl, Int16ul, Int32sl, Int32ul, Int64ul, Padding, Struct,
)

UINTN = Int64ul
POINTER = Int64ul
HANDLE = Int64ul
GUID = Bytes(16)
PAGE_SIZE = 4096

SYSTEM_TABLE_SIGNATURE = 0x5453595320494249  # "IBI SYST"
BOOT_SERVICES_SIGNATURE = 0x56524553544F4F42  # "BOOTSERV"
RUNTIME_SERVICES_SIGNATURE = 0x56524553544E5552  # "RUNTSERV"
SPECIFICATION_REVISION = (2 << 16) | 70  # 2.70

TableHeader = Struct(
    "Signature" / Int64ul,
    "Revision" / Int32ul,
    "HeaderSize" / Int32ul,
    "CRC32" / Int32ul,
    "Reserved" / Int32ul,
)

SystemTable = Struct(
    "Hdr" / TableHeader,
    "FirmwareVendor" / POINTER,
    "FirmwareRevision" / Int32ul,
    Padding(4),
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


def function_table(members, header: bool = True) -> Struct:
    """A table of function pointers, optionally after an EFI_TABLE_HEADER."""
    fields = [name / POINTER for name in members]
    return Struct("Hdr" / TableHeader, *fields) if header else Struct(*fields)


BootServices = function_table(BOOT_SERVICES)
RuntimeServices = function_table(RUNTIME_SERVICES)

ConfigurationTable = Struct("VendorGuid" / GUID, "VendorTable" / POINTER)

MEMORY_DESCRIPTOR_VERSION = 1
MemoryDescriptor = Struct(
    "Type" / Int32ul,
    Padding(4),
    "PhysicalStart" / Int64ul,
    "VirtualStart" / Int64ul,
    "NumberOfPages" / Int64ul,
    "Attribute" / Int64ul,
)
# The stride efistub hands out: larger than the structure, as on EDK2, so guests
# that index the map with sizeof() instead of DescriptorSize fail visibly.
MEMORY_DESCRIPTOR_STRIDE = MemoryDescriptor.sizeof() + 8

LOADED_IMAGE_REVISION = 0x1000
LoadedImage = Struct(
    "Revision" / Int32ul,
    Padding(4),
    "ParentHandle" / HANDLE,
    "SystemTable" / POINTER,
    "DeviceHandle" / HANDLE,
    "FilePath" / POINTER,
    "Reserved" / POINTER,
    "LoadOptionsSize" / Int32ul,
    Padding(4),
    "LoadOptions" / POINTER,
    "ImageBase" / POINTER,
    "ImageSize" / Int64ul,
    "ImageCodeType" / Int32ul,
    "ImageDataType" / Int32ul,
    "Unload" / POINTER,
)

SIMPLE_TEXT_OUTPUT = (
    "Reset", "OutputString", "TestString", "QueryMode", "SetMode",
    "SetAttribute", "ClearScreen", "SetCursorPosition", "EnableCursor",
)
SimpleTextOutput = Struct(*[name / POINTER for name in SIMPLE_TEXT_OUTPUT], "Mode" / POINTER)

SimpleTextOutputMode = Struct(
    "MaxMode" / Int32sl,
    "Mode" / Int32sl,
    "Attribute" / Int32sl,
    "CursorColumn" / Int32sl,
    "CursorRow" / Int32sl,
    "CursorVisible" / Int8ul,
    Padding(3),
)

SIMPLE_TEXT_INPUT = ("Reset", "ReadKeyStroke")
SimpleTextInput = Struct(*[name / POINTER for name in SIMPLE_TEXT_INPUT], "WaitForKey" / POINTER)

InputKey = Struct("ScanCode" / Int16ul, "UnicodeChar" / Int16ul)

LOAD_FILE2 = ("LoadFile",)
LoadFile2 = function_table(LOAD_FILE2, header=False)

RNG = ("GetInfo", "GetRNG")
Rng = function_table(RNG, header=False)

Time = Struct(
    "Year" / Int16ul,
    "Month" / Int8ul,
    "Day" / Int8ul,
    "Hour" / Int8ul,
    "Minute" / Int8ul,
    "Second" / Int8ul,
    Padding(1),
    "Nanosecond" / Int32ul,
    "TimeZone" / Int16sl,
    "Daylight" / Int8ul,
    Padding(1),
)
UNSPECIFIED_TIMEZONE = 0x07FF

TimeCapabilities = Struct(
    "Resolution" / Int32ul,
    "Accuracy" / Int32ul,
    "SetsToZero" / Int8ul,
    Padding(3),
)

# Device paths (UEFI 2.10 §10.3)
DevicePathHeader = Struct("Type" / Int8ul, "SubType" / Int8ul, "Length" / Int16ul)
DEVICE_PATH_MEDIA = 0x04
MEDIA_VENDOR = 0x03
MEDIA_FILE_PATH = 0x04
DEVICE_PATH_END = 0x7F
END_ENTIRE = 0xFF
END_INSTANCE = 0x01
VendorDevicePath = Struct("Header" / DevicePathHeader, "Guid" / GUID)

OpenProtocolInformationEntry = Struct(
    "AgentHandle" / HANDLE,
    "ControllerHandle" / HANDLE,
    "Attributes" / Int32ul,
    "OpenCount" / Int32ul,
)

