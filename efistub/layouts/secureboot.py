"""Secure Boot structures, as construct definitions: the authentication descriptor of a time-based
authenticated SetVariable (UEFI 2.10 §8.2.2), a PE image's certificates (§32.2.4), signature lists
(§32.4.1) and EDK2's certdb.

Everything is packed and little-endian, as the spec and EDK2 declare these structures.
"""

from __future__ import annotations

from construct import Bytes, Int16ul, Int32ul, Struct

from .efi import Time

# WIN_CERTIFICATE (§32.2.4): dwLength counts the whole certificate, this header included.
WinCertificate = Struct(
    "dwLength" / Int32ul,
    "wRevision" / Int16ul,
    "wCertificateType" / Int16ul,
)
WIN_CERT_REVISION = 0x0200
WIN_CERT_TYPE_PKCS_SIGNED_DATA = 0x0002  # WIN_CERTIFICATE_EFI_PKCS: CertData is an Authenticode PKCS#7
WIN_CERT_TYPE_EFI_GUID = 0x0EF1
WIN_CERT_TYPE_NAMES = {WIN_CERT_TYPE_PKCS_SIGNED_DATA: "WIN_CERT_TYPE_PKCS_SIGNED_DATA",
                       WIN_CERT_TYPE_EFI_GUID: "WIN_CERT_TYPE_EFI_GUID"}
# In a PE image's certificate table each WIN_CERTIFICATE starts on an 8-byte boundary (PE/COFF
# "The Attribute Certificate Table"; EDK2's ALIGN_SIZE).
WIN_CERTIFICATE_ALIGNMENT = 8

# WIN_CERTIFICATE_UEFI_GUID: the header, then CertType; CertData (for EFI_CERT_TYPE_PKCS7_GUID a
# DER PKCS#7 SignedData) fills the rest of dwLength.
WinCertificateUefiGuid = Struct(
    "Hdr" / WinCertificate,
    "CertType" / Bytes(16),
)

# EFI_VARIABLE_AUTHENTICATION_2: the TimeStamp, then the certificate; the variable's new value
# follows the certificate.
VariableAuthentication2 = Struct(
    "TimeStamp" / Time,  # EFI_TIME: Pad1, Nanosecond, TimeZone, Daylight and Pad2 must be 0
    "AuthInfo" / WinCertificateUefiGuid,
)
AUTHENTICATION_2_TIMESTAMP = Time.sizeof()  # where AuthInfo starts (OFFSET_OF(..., AuthInfo))

# EFI_SIGNATURE_LIST: this header, SignatureHeaderSize bytes of header, then signatures of
# SignatureSize bytes each (EFI_SIGNATURE_DATA: the owner's GUID, then the signature).
SignatureListHeader = Struct(
    "SignatureType" / Bytes(16),
    "SignatureListSize" / Int32ul,
    "SignatureHeaderSize" / Int32ul,
    "SignatureSize" / Int32ul,
)
SIGNATURE_OWNER = 16  # EFI_SIGNATURE_DATA.SignatureOwner, an EFI_GUID

# EDK2's certdb and certdbv (SecurityPkg AuthServiceInternal.h): a UINT32 with the size of the
# whole variable, then one AUTH_CERT_DB_DATA per authenticated variable: this header, the
# variable's name (NameSize CHAR16s, no NUL), then CertDataSize bytes: the digest of its signer.
CertDbListSize = Int32ul
CertDbEntry = Struct(
    "VendorGuid" / Bytes(16),
    "CertNodeSize" / Int32ul,
    "NameSize" / Int32ul,
    "CertDataSize" / Int32ul,
)
