"""TPM 2.0 commands and responses (TPM 2.0 Library, Part 2 "Structures" and Part 3 "Commands"),
as construct definitions: what SubmitCommand carries, and what efistub sends to swtpm.

TPM structures are big-endian and byte-packed. Only the commands efistub answers or sends are here.
"""

from __future__ import annotations

from construct import Bytes, Int8ub, Int16ub, Int32ub, PrefixedArray, Rebuild, Struct, this

# TPM_ST
ST_RSP_COMMAND = 0x00C4
ST_NO_SESSIONS = 0x8001
ST_SESSIONS = 0x8002

# TPM_CC
CC_PCR_Allocate = 0x0000012B
CC_Startup = 0x00000144
CC_GetCapability = 0x0000017A
CC_GetRandom = 0x0000017B
CC_PCR_Read = 0x0000017E
CC_PCR_Extend = 0x00000182

# TPM_RC (Part 2 §6.6)
RC_SUCCESS = 0x000
RC_BAD_TAG = 0x01E
RC_VER1 = 0x100
RC_INITIALIZE = RC_VER1 + 0x000
RC_FAILURE = RC_VER1 + 0x001
RC_COMMAND_SIZE = RC_VER1 + 0x042
RC_COMMAND_CODE = RC_VER1 + 0x043
RC_FMT1 = 0x080
RC_HASH = RC_FMT1 + 0x003
RC_VALUE = RC_FMT1 + 0x004
RC_SIZE = RC_FMT1 + 0x015
RC_INSUFFICIENT = RC_FMT1 + 0x01A
RC_P = 0x040  # a format-one code names a parameter ...
RC_1 = 0x100  # ... parameter number 1 (RC_2 = 0x200, ...)
RC_WARN = 0x900
RC_REFERENCE_S0 = RC_WARN + 0x018  # the first session's handle references no loaded session
RC_NAMES = {RC_SUCCESS: "TPM_RC_SUCCESS", RC_BAD_TAG: "TPM_RC_BAD_TAG", RC_INITIALIZE: "TPM_RC_INITIALIZE",
            RC_FAILURE: "TPM_RC_FAILURE", RC_COMMAND_SIZE: "TPM_RC_COMMAND_SIZE",
            RC_COMMAND_CODE: "TPM_RC_COMMAND_CODE", RC_HASH: "TPM_RC_HASH", RC_VALUE: "TPM_RC_VALUE",
            RC_SIZE: "TPM_RC_SIZE", RC_INSUFFICIENT: "TPM_RC_INSUFFICIENT", RC_REFERENCE_S0: "TPM_RC_REFERENCE_S0"}


def parameter_error(code: int, parameter: int) -> int:
    """A format-one response code for command parameter ``parameter`` (1-based)."""
    return code | RC_P | (parameter * RC_1)


# TPM_ALG_ID of the hash algorithms, with their digest sizes and hashlib names
ALG_SHA1 = 0x0004
ALG_SHA256 = 0x000B
ALG_SHA384 = 0x000C
ALG_SHA512 = 0x000D
ALG_SM3_256 = 0x0012
HASHES = {ALG_SHA1: ("sha1", 20), ALG_SHA256: ("sha256", 32), ALG_SHA384: ("sha384", 48),
          ALG_SHA512: ("sha512", 64), ALG_SM3_256: ("sm3", 32)}

# TPM_CAP
CAP_ALGS = 0x0
CAP_HANDLES = 0x1
CAP_COMMANDS = 0x2
CAP_PP_COMMANDS = 0x3
CAP_AUDIT_COMMANDS = 0x4
CAP_PCRS = 0x5
CAP_TPM_PROPERTIES = 0x6
CAP_PCR_PROPERTIES = 0x7
CAP_ECC_CURVES = 0x8
CAP_AUTH_POLICIES = 0x9
CAP_ACT = 0xA
CAP_VENDOR_PROPERTY = 0x100

# TPM_PT (Part 2 §6.13): PT_FIXED, then PT_VAR
PT_FIXED = 0x100
PT_FAMILY_INDICATOR = PT_FIXED + 0
PT_LEVEL = PT_FIXED + 1
PT_REVISION = PT_FIXED + 2
PT_DAY_OF_YEAR = PT_FIXED + 3
PT_YEAR = PT_FIXED + 4
PT_MANUFACTURER = PT_FIXED + 5
PT_VENDOR_STRING_1 = PT_FIXED + 6
PT_VENDOR_STRING_2 = PT_FIXED + 7
PT_VENDOR_STRING_3 = PT_FIXED + 8
PT_VENDOR_STRING_4 = PT_FIXED + 9
PT_VENDOR_TPM_TYPE = PT_FIXED + 10
PT_FIRMWARE_VERSION_1 = PT_FIXED + 11
PT_FIRMWARE_VERSION_2 = PT_FIXED + 12
PT_INPUT_BUFFER = PT_FIXED + 13
PT_PCR_COUNT = PT_FIXED + 18
PT_PCR_SELECT_MIN = PT_FIXED + 19
PT_MAX_COMMAND_SIZE = PT_FIXED + 30
PT_MAX_RESPONSE_SIZE = PT_FIXED + 31
PT_MAX_DIGEST = PT_FIXED + 32
PT_VAR = 0x200
PT_PERMANENT = PT_VAR + 0
PT_STARTUP_CLEAR = PT_VAR + 1

RS_PW = 0x40000009  # the password authorization session
PCR_SELECT_MAX = 3  # bytes of a PCR bitmap: 24 PCRs

Header = Struct("tag" / Int16ub, "size" / Int32ub, "code" / Int32ub)  # commandCode or responseCode
# A whole command or response: the header, its size counting itself, then the body (handles, sessions, parameters)
Message = Struct("tag" / Int16ub, "size" / Rebuild(Int32ub, lambda ctx: Header.sizeof() + len(ctx.body)),
                 "code" / Int32ub, "body" / Bytes(lambda ctx: ctx.size - Header.sizeof()))

PcrSelection = Struct("hash" / Int16ub, "sizeofSelect" / Int8ub, "pcrSelect" / Bytes(this.sizeofSelect))
PcrSelectionList = PrefixedArray(Int32ub, PcrSelection)  # TPML_PCR_SELECTION
Digest2B = PrefixedArray(Int16ub, Int8ub)  # TPM2B_DIGEST (as a list of bytes)
DigestList = PrefixedArray(Int32ub, Digest2B)  # TPML_DIGEST
TaggedProperty = Struct("property" / Int32ub, "value" / Int32ub)
TaggedPropertyList = PrefixedArray(Int32ub, TaggedProperty)  # TPML_TAGGED_TPM_PROPERTY
TaggedHash = Struct("hashAlg" / Int16ub, "digest" / Bytes(lambda ctx: HASHES[ctx.hashAlg][1]))
DigestValues = PrefixedArray(Int32ub, TaggedHash)  # TPML_DIGEST_VALUES

# Command parameters after the header (and after the handle area and sessions, for commands that have them)
GetCapabilityCommand = Struct("capability" / Int32ub, "property" / Int32ub, "propertyCount" / Int32ub)
GetRandomCommand = Struct("bytesRequested" / Int16ub)
# A password session with an empty password, as TPMS_AUTH_COMMAND
PasswordSession = Struct("sessionHandle" / Int32ub, "nonce" / PrefixedArray(Int16ub, Int8ub),
                         "sessionAttributes" / Int8ub, "hmac" / PrefixedArray(Int16ub, Int8ub))
MAX_DIGESTS_PER_READ = 8  # TPML_DIGEST holds at most 8 digests
MAX_CAP_BUFFER = 1024
MAX_TPM_PROPERTIES = (MAX_CAP_BUFFER - 4 - 4) // TaggedProperty.sizeof()
YES, NO = 1, 0
Bool = Int8ub  # TPMI_YES_NO
