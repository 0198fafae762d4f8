"""Measured boot: EFI_TCG2_PROTOCOL's structures (TCG EFI Protocol Specification, family 2.0, rev 1.22)
and the event log's (TCG PC Client Platform Firmware Profile, PFP), as construct definitions.

The protocol's structures are the spec's C declarations: EFI_TCG2_BOOT_SERVICE_CAPABILITY with
natural alignment, EFI_TCG2_EVENT and its header packed (EDK2 declares them under
``#pragma pack(1)``). The event log is byte-packed. Everything is little-endian; TPM 2.0
commands (big-endian) are in layouts.tpm2.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

from construct import Bytes, Int8ul, Int16ul, Int32ul, Int64ul, Struct

from .efi import GUID, c_struct

# EFI_TCG2_PROTOCOL (§6.3): its functions, in order
TCG2 = ("GetCapability", "GetEventLog", "HashLogExtendEvent", "SubmitCommand", "GetActivePcrBanks",
        "SetActivePcrBanks", "GetResultOfSetActivePcrBanks")

# -- EFI_TCG2_BOOT_SERVICE_CAPABILITY (§6.4) -------------------------------------------------------
Tcg2Version = c_struct("Major" / Int8ul, "Minor" / Int8ul)
BootServiceCapability = c_struct(
    "Size" / Int8ul,
    "StructureVersion" / Tcg2Version,
    "ProtocolVersion" / Tcg2Version,
    "HashAlgorithmBitmap" / Int32ul,
    "SupportedEventLogs" / Int32ul,
    "TPMPresentFlag" / Int8ul,
    "MaxCommandSize" / Int16ul,
    "MaxResponseSize" / Int16ul,
    "ManufacturerID" / Int32ul,
    "NumberOfPCRBanks" / Int32ul,
    "ActivePcrBanks" / Int32ul,
)
# EFI_TCG2_BOOT_SERVICE_CAPABILITY_SIZE_1_0: the 1.0 structure ends before NumberOfPCRBanks (28 bytes)
CAPABILITY_SIZE_1_0 = BootServiceCapability.sizeof() - 2 * Int32ul.sizeof()
STRUCTURE_VERSION = (1, 1)
PROTOCOL_VERSION = (1, 1)

# EFI_TCG2_EVENT_ALGORITHM_BITMAP
BOOT_HASH_ALG_SHA1 = 0x1
BOOT_HASH_ALG_SHA256 = 0x2
BOOT_HASH_ALG_SHA384 = 0x4
BOOT_HASH_ALG_SHA512 = 0x8
BOOT_HASH_ALG_SM3_256 = 0x10
# EFI_TCG2_EVENT_LOG_BITMAP / EFI_TCG2_EVENT_LOG_FORMAT
EVENT_LOG_FORMAT_TCG_1_2 = 0x1
EVENT_LOG_FORMAT_TCG_2 = 0x2

# HashLogExtendEvent's Flags
EXTEND_ONLY = 0x1
PE_COFF_IMAGE = 0x10
KNOWN_FLAGS = EXTEND_ONLY | PE_COFF_IMAGE

# -- EFI_TCG2_EVENT (§6.6.5), packed ----------------------------------------------------------------
EVENT_HEADER_VERSION = 1
EventHeader = Struct("HeaderSize" / Int32ul, "HeaderVersion" / Int16ul, "PCRIndex" / Int32ul,
                     "EventType" / Int32ul)
Tcg2Event = Struct("Size" / Int32ul, "Header" / EventHeader)  # then UINT8 Event[]
# EFI_TCG2_TAGGED_EVENT (the Event of an EV_EVENT_TAG): then UINT8 Event[EventSize]
TaggedEvent = Struct("EventId" / Int32ul, "EventSize" / Int32ul)

MAX_PCR_INDEX = 23
PCR_COUNT = 24

# -- the event log (PFP §10) ------------------------------------------------------------------------
# TCG_PCR_EVENT: the SHA-1 event format; in a crypto-agile log only its first entry, the Spec ID event
SHA1_DIGEST_SIZE = 20
PcrEvent = Struct("PCRIndex" / Int32ul, "EventType" / Int32ul, "Digest" / Bytes(SHA1_DIGEST_SIZE),
                  "EventSize" / Int32ul)  # then UINT8 Event[EventSize]
# TCG_EfiSpecIDEventStruct up to its digest sizes, which numberOfAlgorithms of these follow,
# then UINT8 vendorInfoSize and the vendor information
SPEC_ID_SIGNATURE = b"Spec ID Event03\0"
SPEC_VERSION_MAJOR = 2
SPEC_VERSION_MINOR = 0
SPEC_ERRATA = 0  # TCG_EfiSpecIDEventStruct_SPEC_ERRATA_TPM2
PLATFORM_CLASS_CLIENT = 0
SpecIdEvent = Struct("signature" / Bytes(16), "platformClass" / Int32ul, "specVersionMinor" / Int8ul,
                     "specVersionMajor" / Int8ul, "specErrata" / Int8ul, "uintnSize" / Int8ul,
                     "numberOfAlgorithms" / Int32ul)
SpecIdAlgorithmSize = Struct("algorithmId" / Int16ul, "digestSize" / Int16ul)
# TCG_PCR_EVENT2: this, TPML_DIGEST_VALUES (count, then count TPMT_HA: hashAlg and the digest),
# UINT32 EventSize and the event data; little-endian, as the firmware writes it
PcrEvent2Header = Struct("PCRIndex" / Int32ul, "EventType" / Int32ul)
DigestCount = Int32ul
HashAlgorithm = Int16ul
EventSize = Int32ul

# EFI_TCG2_FINAL_EVENTS_TABLE (§7): this header, then NumberOfEvents TCG_PCR_EVENT2 entries
FINAL_EVENTS_TABLE_VERSION = 1
FinalEventsTable = c_struct("Version" / Int64ul, "NumberOfEvents" / Int64ul)

# Event types (PFP §10.4.1)
EV_PREBOOT_CERT = 0x0
EV_POST_CODE = 0x1
EV_UNUSED = 0x2
EV_NO_ACTION = 0x3
EV_SEPARATOR = 0x4
EV_ACTION = 0x5
EV_EVENT_TAG = 0x6
EV_S_CRTM_CONTENTS = 0x7
EV_S_CRTM_VERSION = 0x8
EV_CPU_MICROCODE = 0x9
EV_PLATFORM_CONFIG_FLAGS = 0xA
EV_TABLE_OF_DEVICES = 0xB
EV_COMPACT_HASH = 0xC
EV_IPL = 0xD
EV_IPL_PARTITION_DATA = 0xE
EV_NONHOST_CODE = 0xF
EV_NONHOST_CONFIG = 0x10
EV_NONHOST_INFO = 0x11
EV_OMIT_BOOT_DEVICE_EVENTS = 0x12
EV_EFI_EVENT_BASE = 0x80000000
EV_EFI_VARIABLE_DRIVER_CONFIG = EV_EFI_EVENT_BASE + 0x1
EV_EFI_VARIABLE_BOOT = EV_EFI_EVENT_BASE + 0x2
EV_EFI_BOOT_SERVICES_APPLICATION = EV_EFI_EVENT_BASE + 0x3
EV_EFI_BOOT_SERVICES_DRIVER = EV_EFI_EVENT_BASE + 0x4
EV_EFI_RUNTIME_SERVICES_DRIVER = EV_EFI_EVENT_BASE + 0x5
EV_EFI_GPT_EVENT = EV_EFI_EVENT_BASE + 0x6
EV_EFI_ACTION = EV_EFI_EVENT_BASE + 0x7
EV_EFI_PLATFORM_FIRMWARE_BLOB = EV_EFI_EVENT_BASE + 0x8
EV_EFI_HANDOFF_TABLES = EV_EFI_EVENT_BASE + 0x9
EV_EFI_PLATFORM_FIRMWARE_BLOB2 = EV_EFI_EVENT_BASE + 0xA
EV_EFI_HANDOFF_TABLES2 = EV_EFI_EVENT_BASE + 0xB
EV_EFI_VARIABLE_BOOT2 = EV_EFI_EVENT_BASE + 0xC
EV_EFI_HCRTM_EVENT = EV_EFI_EVENT_BASE + 0x10
EV_EFI_VARIABLE_AUTHORITY = EV_EFI_EVENT_BASE + 0xE0
EV_EFI_SPDM_FIRMWARE_BLOB = EV_EFI_EVENT_BASE + 0xE1
EV_EFI_SPDM_FIRMWARE_CONFIG = EV_EFI_EVENT_BASE + 0xE2
EVENT_TYPE_NAMES = {value: name for name, value in globals().items() if name.startswith("EV_")
                    and name != "EV_EFI_EVENT_BASE"}

# The strings EDK2 measures as EV_EFI_ACTION (MdePkg/Include/IndustryStandard/UefiTcgPlatform.h)
CALLING_EFI_APPLICATION = b"Calling EFI Application from Boot Option"
RETURNING_FROM_EFI_APPLICATION = b"Returning from EFI Application from Boot Option"
EXIT_BOOT_SERVICES_INVOCATION = b"Exit Boot Services Invocation"
EXIT_BOOT_SERVICES_FAILED = b"Exit Boot Services Returned with Failure"
EXIT_BOOT_SERVICES_SUCCEEDED = b"Exit Boot Services Returned with Success"
SEPARATOR_DATA = bytes(4)  # EV_SEPARATOR's event: a UINT32 0, which is also what is hashed

# UEFI_VARIABLE_DATA (PFP §10.2.3), packed: then CHAR16 UnicodeName[] and the variable's data
VariableData = Struct("VariableName" / GUID, "UnicodeNameLength" / Int64ul, "VariableDataLength" / Int64ul)


@functools.lru_cache(maxsize=None)
def layouts(width: int) -> SimpleNamespace:
    """The structures with UINTN members, at a guest's pointer width (4 or 8 bytes)."""
    if width not in (4, 8):
        raise ValueError(f"pointer width must be 4 or 8 bytes, not {width!r}")
    uintn = Int64ul if width == 8 else Int32ul
    return SimpleNamespace(
        # UEFI_IMAGE_LOAD_EVENT (PFP §10.2.3), packed: then the image's device path
        ImageLoadEvent=Struct("ImageLocationInMemory" / Int64ul, "ImageLengthInMemory" / uintn,
                              "ImageLinkTimeAddress" / uintn, "LengthOfDevicePath" / uintn),
    )
