"""The edk2 variable store in flash (OVMF_VARS.fd), as construct definitions.

virt-firmware reads and writes these stores (efistub/varstore.py); efistub uses these
definitions only to check that a file is whole and to count the bytes a variable takes,
as edk2 counts them. Everything is packed and little-endian (edk2's
MdeModulePkg/Include/Guid/VariableFormat.h, PI 1.8 vol. 3 §3.2.1).
"""

from __future__ import annotations

from construct import Bytes, Int8ul, Int16ul, Int32ul, Int64ul, Struct

from .efi import Time

# EFI_FIRMWARE_VOLUME_HEADER without its block map, which follows it. The variable store
# is the first file system of an NvData volume (FileSystemGuid); the volume's FvLength
# covers the store, the fault-tolerant-write working block and the spare block.
FirmwareVolumeHeader = Struct(
    "ZeroVector" / Bytes(16),
    "FileSystemGuid" / Bytes(16),
    "FvLength" / Int64ul,
    "Signature" / Bytes(4),  # b"_FVH"
    "Attributes" / Int32ul,
    "HeaderLength" / Int16ul,
    "Checksum" / Int16ul,
    "ExtHeaderOffset" / Int16ul,
    "Reserved" / Int8ul,
    "Revision" / Int8ul,
)

# How virt-firmware's find_nvdata walks an image to the variable store's volume: from offset 0,
# over a firmware file system volume by its FvLength, else on by 1024 bytes, while more than
# 64 bytes are left.
FIND_NVDATA_STEP = 1024
FIND_NVDATA_MINIMUM = 64

# VARIABLE_STORE_HEADER: Size counts the header and the variables after it.
VariableStoreHeader = Struct(
    "Signature" / Bytes(16),  # gEfiAuthenticatedVariableGuid: every variable has the header below
    "Size" / Int32ul,
    "Format" / Int8ul,
    "State" / Int8ul,
    "Reserved" / Int16ul,
    "Reserved1" / Int32ul,
)

# AUTHENTICATED_VARIABLE_HEADER; the name (UCS-2 with its NUL) and the data follow it, and
# the next variable starts at the next multiple of VARIABLE_ALIGNMENT.
AuthenticatedVariableHeader = Struct(
    "StartId" / Int16ul,  # 0x55AA
    "State" / Int8ul,
    "Reserved" / Int8ul,
    "Attributes" / Int32ul,
    "MonotonicCount" / Int64ul,
    "TimeStamp" / Time,
    "PubKeyIndex" / Int32ul,
    "NameSize" / Int32ul,
    "DataSize" / Int32ul,
    "VendorGuid" / Bytes(16),
)
VARIABLE_ALIGNMENT = 4  # HEADER_ALIGNMENT
