"""PE/COFF constants and headers (Microsoft PE format specification) as construct definitions.

efistub parses images with pefile (efistub/loader.py). The header layouts here are
what pefile does not give: a way to write an image from nothing (tests/pe_builder.py
and tests/guests/elf2pe.py build theirs with them), and the header sizes that the
loader names in its errors.
"""

from __future__ import annotations

from construct import Bytes, Int16ul, Int32ul, Int64ul, Int8ul, Struct

DOS_MAGIC = 0x5A4D  # "MZ"
E_LFANEW = 0x3C  # the DOS header field that holds the file offset of the PE signature
PE_SIGNATURE = 0x00004550  # "PE\0\0"
PE32_MAGIC = 0x10B
PE32PLUS_MAGIC = 0x20B

MACHINE_I386 = 0x014C
MACHINE_AMD64 = 0x8664
MACHINE_ARM64 = 0xAA64
MACHINE_RISCV64 = 0x5064
MACHINE_NAMES = {
    MACHINE_I386: "ia32",
    MACHINE_AMD64: "x86_64",
    MACHINE_ARM64: "aarch64",
    MACHINE_RISCV64: "riscv64",
    0x01C2: "arm (thumb)",
    0x01C4: "armv7",
    0x5032: "riscv32",
    0x6264: "loongarch64",
    0x0200: "ia64",
    0x0EBC: "EFI byte code",
}
# The pointer width of the machines that have one; each fixes the optional header's format
# (PE32 for 4, PE32+ for 8). EFI byte code, whose width is the host's, is in neither.
MACHINE_WIDTHS = {
    MACHINE_I386: 4, 0x01C2: 4, 0x01C4: 4, 0x5032: 4,
    MACHINE_AMD64: 8, MACHINE_ARM64: 8, MACHINE_RISCV64: 8, 0x6264: 8, 0x0200: 8,
}

SUBSYSTEM_EFI_APPLICATION = 10
SUBSYSTEM_EFI_BOOT_SERVICE_DRIVER = 11
SUBSYSTEM_EFI_RUNTIME_DRIVER = 12
SUBSYSTEM_NAMES = {
    1: "native", 2: "Windows GUI", 3: "Windows console",
    SUBSYSTEM_EFI_APPLICATION: "EFI application",
    SUBSYSTEM_EFI_BOOT_SERVICE_DRIVER: "EFI boot service driver",
    SUBSYSTEM_EFI_RUNTIME_DRIVER: "EFI runtime driver",
    13: "EFI ROM",
}

DIRECTORY_SECURITY = 4  # the certificate table; its "VirtualAddress" is a file offset
DIRECTORY_BASERELOC = 5

SCN_MEM_EXECUTE = 0x20000000
SCN_CNT_CODE = 0x00000020
# COFF symbols and long section names: a section name "/N" is the string at offset N of the
# string table, which follows the NumberOfSymbols symbols of COFF_SYMBOL_SIZE bytes
COFF_SYMBOL_SIZE = 18
COFF_LONG_NAME = "/"

REL_BASED_ABSOLUTE = 0
REL_BASED_HIGHLOW = 3
REL_BASED_DIR64 = 10

CoffHeader = Struct(
    "Signature" / Int32ul,
    "Machine" / Int16ul,
    "NumberOfSections" / Int16ul,
    "TimeDateStamp" / Int32ul,
    "PointerToSymbolTable" / Int32ul,
    "NumberOfSymbols" / Int32ul,
    "SizeOfOptionalHeader" / Int16ul,
    "Characteristics" / Int16ul,
)

DataDirectory = Struct("VirtualAddress" / Int32ul, "Size" / Int32ul)


def _optional_header(word, pe32: bool) -> Struct:
    """The optional header of PE32 (``word`` 32-bit, with BaseOfData) or PE32+ (``word`` 64-bit):
    ImageBase and the stack and heap sizes are pointer-wide, the rest is the same."""
    return Struct(
        "Magic" / Int16ul,
        "MajorLinkerVersion" / Int8ul,
        "MinorLinkerVersion" / Int8ul,
        "SizeOfCode" / Int32ul,
        "SizeOfInitializedData" / Int32ul,
        "SizeOfUninitializedData" / Int32ul,
        "AddressOfEntryPoint" / Int32ul,
        "BaseOfCode" / Int32ul,
        *(["BaseOfData" / Int32ul] if pe32 else []),
        "ImageBase" / word,
        "SectionAlignment" / Int32ul,
        "FileAlignment" / Int32ul,
        "MajorOperatingSystemVersion" / Int16ul,
        "MinorOperatingSystemVersion" / Int16ul,
        "MajorImageVersion" / Int16ul,
        "MinorImageVersion" / Int16ul,
        "MajorSubsystemVersion" / Int16ul,
        "MinorSubsystemVersion" / Int16ul,
        "Win32VersionValue" / Int32ul,
        "SizeOfImage" / Int32ul,
        "SizeOfHeaders" / Int32ul,
        "CheckSum" / Int32ul,
        "Subsystem" / Int16ul,
        "DllCharacteristics" / Int16ul,
        "SizeOfStackReserve" / word,
        "SizeOfStackCommit" / word,
        "SizeOfHeapReserve" / word,
        "SizeOfHeapCommit" / word,
        "LoaderFlags" / Int32ul,
        "NumberOfRvaAndSizes" / Int32ul,
    )


OptionalHeader32 = _optional_header(Int32ul, pe32=True)  # PE32
OptionalHeader64 = _optional_header(Int64ul, pe32=False)  # PE32+

# Optional header magic -> its layout (the data directories follow it), format name, pointer width
OPTIONAL_HEADERS = {PE32_MAGIC: OptionalHeader32, PE32PLUS_MAGIC: OptionalHeader64}
FORMAT_NAMES = {PE32_MAGIC: "PE32", PE32PLUS_MAGIC: "PE32+"}
POINTER_WIDTHS = {PE32_MAGIC: 4, PE32PLUS_MAGIC: 8}

SectionHeader = Struct(
    "Name" / Bytes(8),
    "VirtualSize" / Int32ul,
    "VirtualAddress" / Int32ul,
    "SizeOfRawData" / Int32ul,
    "PointerToRawData" / Int32ul,
    "PointerToRelocations" / Int32ul,
    "PointerToLinenumbers" / Int32ul,
    "NumberOfRelocations" / Int16ul,
    "NumberOfLinenumbers" / Int16ul,
    "Characteristics" / Int32ul,
)
