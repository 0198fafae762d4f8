"""HII package formats (UEFI 2.10 §33.3) and the members of the HII protocols (§34).

Packages are byte-packed (EDK2 declares them under #pragma pack(1)): plain Structs.
A package header is one UINT32: the package's length in its low 24 bits, its type
in the high 8.
"""

from __future__ import annotations

from construct import Bytes, Int8ul, Int16ul, Int32ul, Struct

from .efi import GUID

PackageListHeader = Struct("PackageListGuid" / GUID, "PackageLength" / Int32ul)
PackageHeader = Int32ul  # Length : 24, Type : 8
PACKAGE_LENGTH_MASK = 0x00FFFFFF
PACKAGE_TYPE_SHIFT = 24


def package_header_value(length: int, kind: int) -> int:
    return length | kind << PACKAGE_TYPE_SHIFT


def package_header(length: int, kind: int) -> bytes:
    return PackageHeader.build(package_header_value(length, kind))


def split_package_header(value: int) -> tuple[int, int]:
    """(length, type) of a package header."""
    return value & PACKAGE_LENGTH_MASK, value >> PACKAGE_TYPE_SHIFT


# Package types
PACKAGE_TYPE_ALL = 0x00
PACKAGE_TYPE_GUID = 0x01
PACKAGE_FORMS = 0x02
PACKAGE_STRINGS = 0x04
PACKAGE_FONTS = 0x05
PACKAGE_IMAGES = 0x06
PACKAGE_SIMPLE_FONTS = 0x07
PACKAGE_DEVICE_PATH = 0x08
PACKAGE_KEYBOARD_LAYOUT = 0x09
PACKAGE_ANIMATIONS = 0x0A
PACKAGE_END = 0xDF
PACKAGE_TYPE_SYSTEM_BEGIN = 0xE0

# EFI_HII_STRING_PACKAGE_HDR up to its NUL-terminated ASCII Language (RFC 4646).
StringPackageHeader = Struct(
    "Header" / Int32ul,
    "HdrSize" / Int32ul,
    "StringInfoOffset" / Int32ul,
    "LanguageWindow" / Bytes(32),  # CHAR16[16]
    "LanguageName" / Int16ul,  # the string ID of the language's own name
)

# String information block types (§33.3.6.2)
SIBT_END = 0x00
SIBT_STRING_SCSU = 0x10
SIBT_STRING_SCSU_FONT = 0x11
SIBT_STRINGS_SCSU = 0x12
SIBT_STRINGS_SCSU_FONT = 0x13
SIBT_STRING_UCS2 = 0x14
SIBT_STRING_UCS2_FONT = 0x15
SIBT_STRINGS_UCS2 = 0x16
SIBT_STRINGS_UCS2_FONT = 0x17
SIBT_DUPLICATE = 0x20
SIBT_SKIP2 = 0x21
SIBT_SKIP1 = 0x22
SIBT_EXT1 = 0x30
SIBT_EXT2 = 0x31
SIBT_EXT4 = 0x32
SIBT_FONT = 0x40  # the BlockType2 of an EXT2 block that defines a font

# After the block type byte:
Count16 = Int16ul  # SIBT_STRINGS_*, SIBT_SKIP2, SIBT_DUPLICATE (a string ID)
Count8 = Int8ul  # SIBT_SKIP1, a font identifier
Ext1 = Struct("BlockType2" / Int8ul, "Length" / Int8ul)
Ext2 = Struct("BlockType2" / Int8ul, "Length" / Int16ul)
Ext4 = Struct("BlockType2" / Int8ul, "Length" / Int32ul)
EXT_HEADERS = {SIBT_EXT1: Ext1, SIBT_EXT2: Ext2, SIBT_EXT4: Ext4}  # Length counts the whole block

# Protocol members, in the order of their structures
HII_DATABASE = ("NewPackageList", "RemovePackageList", "UpdatePackageList", "ListPackageLists",
                "ExportPackageLists", "RegisterPackageNotify", "UnregisterPackageNotify",
                "FindKeyboardLayouts", "GetKeyboardLayout", "SetKeyboardLayout", "GetPackageListHandle")
HII_STRING = ("NewString", "GetString", "SetString", "GetLanguages", "GetSecondaryLanguages")
HII_CONFIG_ROUTING = ("ExtractConfig", "ExportConfig", "RouteConfig", "BlockToConfig", "ConfigToBlock",
                      "GetAltConfig")
