"""Partition tables as construct definitions: the MBR and the GPT (UEFI 2.10 §5).

Everything on disk is packed and little-endian. GUIDs are 16 raw bytes in the mixed-endian
EFI_GUID form (``efistub.guids.Guid.from_bytes`` reads them).
"""

from __future__ import annotations

from construct import Bytes, Int8ul, Int16ul, Int32ul, Int64ul, Struct

BLOCK_SIZE = 512  # the logical block size efistub's disks have

# -- MBR (UEFI 2.10 §5.2.1, Table 5.1 and 5.2) ----------------------------------------------------

MBR_SIGNATURE = 0xAA55  # bytes 0x55 0xAA at offset 510
MBR_PARTITIONS = 4
MBR_TYPE_PROTECTIVE = 0xEE  # the one partition of a protective MBR: the whole disk is GPT
MBR_TYPE_ESP = 0xEF  # an EFI system partition on an MBR disk
MBR_TYPES_EXTENDED = (0x05, 0x0F, 0x85)  # containers of logical partitions (a chain of EBRs)
MBR_BOOT_INDICATOR_ACTIVE = 0x80

MbrPartitionRecord = Struct(
    "BootIndicator" / Int8ul,
    "StartingCHS" / Bytes(3),
    "OSType" / Int8ul,
    "EndingCHS" / Bytes(3),
    "StartingLBA" / Int32ul,
    "SizeInLBA" / Int32ul,
)

Mbr = Struct(
    "BootCode" / Bytes(440),
    "UniqueMBRDiskSignature" / Int32ul,
    "Unknown" / Int16ul,
    "Partition" / MbrPartitionRecord[MBR_PARTITIONS],
    "Signature" / Int16ul,
)
assert Mbr.sizeof() == BLOCK_SIZE

# -- GPT (UEFI 2.10 §5.3.2 and §5.3.3) ------------------------------------------------------------

GPT_SIGNATURE = b"EFI PART"
GPT_REVISION = 0x00010000  # 1.0
GPT_HEADER_SIZE = 92
GPT_ENTRY_SIZE = 128
GPT_ENTRIES = 128  # the entry count partitioning tools write: 16 KiB of entries, 32 blocks
GPT_NAME_CHARS = 36

GptHeader = Struct(
    "Signature" / Bytes(8),
    "Revision" / Int32ul,
    "HeaderSize" / Int32ul,
    "HeaderCRC32" / Int32ul,
    "Reserved" / Int32ul,  # 0
    "MyLBA" / Int64ul,
    "AlternateLBA" / Int64ul,
    "FirstUsableLBA" / Int64ul,
    "LastUsableLBA" / Int64ul,
    "DiskGUID" / Bytes(16),
    "PartitionEntryLBA" / Int64ul,
    "NumberOfPartitionEntries" / Int32ul,
    "SizeOfPartitionEntry" / Int32ul,
    "PartitionEntryArrayCRC32" / Int32ul,
)
assert GptHeader.sizeof() == GPT_HEADER_SIZE

GPT_HEADER_CRC_OFFSET = 16  # HeaderCRC32, zeroed while the header's CRC32 is computed

GptPartitionEntry = Struct(
    "PartitionTypeGUID" / Bytes(16),
    "UniquePartitionGUID" / Bytes(16),
    "StartingLBA" / Int64ul,
    "EndingLBA" / Int64ul,  # inclusive
    "Attributes" / Int64ul,
    "PartitionName" / Bytes(2 * GPT_NAME_CHARS),  # UTF-16LE, NUL-padded
)
assert GptPartitionEntry.sizeof() == GPT_ENTRY_SIZE

GPT_ATTRIBUTE_REQUIRED = 1 << 0  # platform required
GPT_ATTRIBUTE_NO_BLOCK_IO = 1 << 1  # firmware must not make a BLOCK_IO for it
GPT_ATTRIBUTE_LEGACY_BIOS_BOOTABLE = 1 << 2
