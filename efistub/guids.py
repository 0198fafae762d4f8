"""EFI GUIDs: the value type, the constants efistub itself uses, and name lookup.

The constants below are the GUIDs the firmware implements or looks at. Names of
every other known GUID (for reports) come from ``guid_table.KNOWN_GUIDS``.
"""

from __future__ import annotations

import uuid


class Guid(uuid.UUID):
    """An EFI_GUID. Its in-memory form is the mixed-endian ``bytes_le``."""

    __slots__ = ()

    SIZE = 16

    @classmethod
    def from_bytes(cls, raw: bytes) -> "Guid":
        if type(raw) is not bytes:
            raw = bytes(raw)
        guid = _BY_BYTES.get(raw)
        if guid is None:
            guid = _BY_BYTES[raw] = cls(bytes_le=raw)
        return guid

    def to_bytes(self) -> bytes:
        return self.bytes_le

    @property
    def name(self) -> str:
        """The macro name of a known GUID, else the GUID text."""
        return guid_name(self)


_BY_BYTES: dict[bytes, "Guid"] = {}  # GUIDs repeat: parse each one once
_NAMES: dict[uuid.UUID, str] = {}


def guid_name(guid: uuid.UUID) -> str:
    """The macro name of a known GUID, else the GUID text."""
    name = _NAMES.get(guid)
    if name is None:
        from .guid_table import KNOWN_GUIDS

        text = str(guid)
        name = _NAMES[guid] = KNOWN_GUIDS.get(text, text)
    return name


# Protocols
LOADED_IMAGE_PROTOCOL = Guid("5b1b31a1-9562-11d2-8e3f-00a0c969723b")
LOADED_IMAGE_DEVICE_PATH_PROTOCOL = Guid("bc62157e-3e33-4fec-9920-2d3b36d750df")
DEVICE_PATH_PROTOCOL = Guid("09576e91-6d3f-11d2-8e39-00a0c969723b")
HII_DATABASE_PROTOCOL = Guid("ef9fc172-a1b2-4693-b327-6d32fc416042")
HII_STRING_PROTOCOL = Guid("0fd96974-23aa-4cdc-b9cb-98d17750322a")
HII_CONFIG_ROUTING_PROTOCOL = Guid("587e72d7-cc50-4f79-8209-ca291fc1a10f")
SIMPLE_TEXT_INPUT_PROTOCOL = Guid("387477c1-69c7-11d2-8e39-00a0c969723b")
SIMPLE_TEXT_INPUT_EX_PROTOCOL = Guid("dd9e7534-7762-4698-8c14-f58517a625aa")
SIMPLE_TEXT_OUTPUT_PROTOCOL = Guid("387477c2-69c7-11d2-8e39-00a0c969723b")
LOAD_FILE2_PROTOCOL = Guid("4006c0c1-fcb3-403e-996d-4a6c8724e06d")
LOAD_FILE_PROTOCOL = Guid("56ec3091-954c-11d2-8e3f-00a0c969723b")
BLOCK_IO_PROTOCOL = Guid("964e5b21-6459-11d2-8e39-00a0c969723b")
DISK_IO_PROTOCOL = Guid("ce345171-ba0b-11d2-8e4f-00a0c969723b")
PARTITION_INFO_PROTOCOL = Guid("8cf2f62c-bc9b-4821-808d-ec9ec421a1a0")
SIMPLE_FILE_SYSTEM_PROTOCOL = Guid("964e5b22-6459-11d2-8e39-00a0c969723b")
FILE_INFO = Guid("09576e92-6d3f-11d2-8e39-00a0c969723b")
FILE_SYSTEM_INFO = Guid("09576e93-6d3f-11d2-8e39-00a0c969723b")
FILE_SYSTEM_VOLUME_LABEL = Guid("db47d7d3-fe81-11d3-9a35-0090273fc14d")
ESP_PARTITION_TYPE = Guid("c12a7328-f81f-11d2-ba4b-00a0c93ec93b")  # EFI system partition (GPT type)
RNG_PROTOCOL = Guid("3152bca5-eade-433d-862e-c01cdc291f44")
RNG_ALGORITHM_RAW = Guid("e43176d7-b6e8-4827-b784-7ffdc4b68561")
RISCV_EFI_BOOT_PROTOCOL = Guid("ccd15fec-6f73-4eec-8395-3e69e4b940bf")
UNICODE_COLLATION_PROTOCOL = Guid("1d85cd7f-f43d-11d2-9a0c-0090273fc14d")  # EFI 1.1, ISO 639-2 languages
UNICODE_COLLATION2_PROTOCOL = Guid("a4c751fc-23ae-4c3e-92e9-4964cf63f349")  # RFC 4646 languages
DEVICE_PATH_UTILITIES_PROTOCOL = Guid("0379be4e-d706-437d-b037-edb82fb772a4")
DEVICE_PATH_TO_TEXT_PROTOCOL = Guid("8b843e20-8132-4852-90cc-551a4e4a7f1c")
DEVICE_PATH_FROM_TEXT_PROTOCOL = Guid("05c99a21-c70f-4ad2-8a5f-35df3343f51e")

# Vendor GUIDs of device path nodes with text forms of their own (device_path_text)
PC_ANSI = Guid("e0c14753-f9be-11d2-9a0c-0090273fc14d")  # VenPcAnsi()
VT_100 = Guid("dfa66065-b419-11d3-9a2d-0090273fc14d")  # VenVt100()
VT_100_PLUS = Guid("7baec70b-57e0-4c76-8e87-2f9e28088343")  # VenVt100Plus()
VT_UTF8 = Guid("ad15a0d6-8bec-4acf-a073-d01de77e2d88")  # VenUtf8()
UART_DEVICE_PATH = Guid("37499a9d-542f-4c89-a026-35da142094e4")  # UartFlowCtrl()
DEBUG_PORT = Guid("eba4e8d2-3858-41ec-a281-2647ba9660d0")  # DebugPort()
VIRTUAL_DISK = Guid("77ab535a-45fc-624b-5560-f7b281d1f96e")  # VirtualDisk()
VIRTUAL_CD = Guid("3d5abd30-4175-87ce-6d64-d2ade523c4bb")  # VirtualCD()
PERSISTENT_VIRTUAL_DISK = Guid("5cea02c9-4d07-69d3-269f-4496fbe096f9")  # PersistentVirtualDisk()
PERSISTENT_VIRTUAL_CD = Guid("08018188-42cd-bb48-100f-5387d53ded3d")  # PersistentVirtualCD()

# Configuration tables and variables
GLOBAL_VARIABLE = Guid("8be4df61-93ca-11d2-aa0d-00e098032b8c")
DEVICE_TREE_TABLE = Guid("b1b621d5-f19c-41a5-830b-d9152c69aae0")
EVENT_GROUP_EXIT_BOOT_SERVICES = Guid("27abf055-b1b8-4c26-8048-748f37baa2df")
EVENT_GROUP_BEFORE_EXIT_BOOT_SERVICES = Guid("8be0e274-3970-4b44-80c5-1ab9502f3bfc")
EVENT_GROUP_VIRTUAL_ADDRESS_CHANGE = Guid("13fa7698-c831-49c7-87ea-8f43fcc25196")
EVENT_GROUP_READY_TO_BOOT = Guid("7ce88fb3-4bd7-4679-87a8-a8d8dee50d2b")
EVENT_GROUP_AFTER_READY_TO_BOOT = Guid("3a2a00ad-98b9-4cdf-a478-702777f1c10b")
LINUX_EFI_INITRD_MEDIA = Guid("5568e427-68fc-4f3d-ac74-ca555231cc68")
LINUX_EFI_BOOT_MEMMAP = Guid("800f683f-d08b-423a-a293-965c3c6fe2b4")

# Measured boot (TCG EFI Protocol Specification, family 2.0)
TCG2_PROTOCOL = Guid("607f766c-7455-42be-930b-e4d76db2720f")
TCG2_FINAL_EVENTS_TABLE = Guid("1e2ed096-30e2-4254-bd89-863bbef82325")  # EFI_TCG2_FINAL_EVENTS_TABLE_GUID

# Secure Boot (UEFI 2.10 §32; EDK2's SecurityPkg for the ones the spec does not name)
IMAGE_SECURITY_DATABASE = Guid("d719b2cb-3d3a-4596-a3bc-dad00e67656f")  # db, dbx, dbt, dbr
CERT_SHA1 = Guid("826ca512-cf10-4ac9-b187-be01496631bd")
CERT_SHA224 = Guid("0b6e5233-a65c-44c9-9407-d9ab83bfc8bd")
CERT_SHA256 = Guid("c1c41626-504c-4092-aca9-41f936934328")
CERT_SHA384 = Guid("ff3e5307-9fd0-48c9-85f1-8ad56c701e01")
CERT_SHA512 = Guid("093e0fae-a6c4-4f50-9f1b-d41e2b89c19a")
CERT_RSA2048 = Guid("3c5766e8-269c-4e34-aa14-ed776e85b3b6")
CERT_RSA2048_SHA256 = Guid("e2b36190-879b-4a3d-ad8d-f2e7bba32784")
CERT_RSA2048_SHA1 = Guid("67f8444f-8743-48f1-a328-1eaab8736080")
CERT_X509 = Guid("a5c059a1-94e4-4aa7-87b5-ab155c2bf072")
CERT_X509_SHA256 = Guid("3bd2a492-96c0-4079-b420-fcf98ef103ed")
CERT_X509_SHA384 = Guid("7076876e-80c2-4ee6-aad2-28b349a6865b")
CERT_X509_SHA512 = Guid("446dbf63-2502-4cda-bcfa-2465d2b0fe9d")
CERT_TYPE_PKCS7 = Guid("4aafd29d-68df-49ee-8aa9-347d375665a7")  # WIN_CERTIFICATE_UEFI_GUID.CertType
SECURE_BOOT_ENABLE_DISABLE = Guid("f0a30bc7-af08-4556-99c4-001009c93a44")  # EDK2: SecureBootEnable
CUSTOM_MODE_ENABLE = Guid("c076ec0c-7028-4399-a072-71ee5c448b9f")  # EDK2: CustomMode
VENDOR_KEYS_NV = Guid("9073e4e0-60ec-4b6e-9903-4c223c260f3c")  # EDK2: VendorKeysNv
CERT_DB = Guid("d9bee56e-75dc-49d9-b4d7-b534210f637a")  # EDK2: certdb, certdbv
OVMF_ENROLL_DEFAULT_KEYS = Guid("a0baa8a3-041d-48a8-bc87-c36d121b5e3d")  # owner of keys OVMF (and virt-firmware) enrolls

# shim (rhboot/shim): its protocol and its variables (MokList, MokListRT, SbatLevel, ...)
SHIM_LOCK = Guid("605dab50-e046-4300-abb6-3dd810dd8b23")

# Firmware volumes (PI 1.8 vol. 3 §3.2.2): an edk2 flash image's variable store, and firmware files
NV_DATA_FILE_SYSTEM = Guid("fff12b8d-7696-4c8b-a985-2747075b4f50")  # EFI_SYSTEM_NV_DATA_FV_GUID
FIRMWARE_FILE_SYSTEM2 = Guid("8c8ce578-8a3d-4f1c-9935-896185c32dd3")
