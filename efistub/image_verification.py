"""Image verification with Secure Boot (UEFI 2.10 §32.4, §32.5), as EDK2's DxeImageVerificationLib
does it for OVMF's LoadImage: whether an image may run, from its Authenticode signatures, its image
hash and the key databases db and dbx.

    verdict = image_verification.verify(store, image)   # None when SecureBoot is 0: nothing is checked
    verdict.allowed, verdict.reason, verdict.decided_by  # the db or dbx entry that decided, if one did
    verdict.status(policy)                              # EFI_SUCCESS, EFI_SECURITY_VIOLATION, EFI_ACCESS_DENIED
    verdict.as_dict(policy)                             # the report's images[].verification

The rules, with SecureBoot=1 (EDK2's DxeImageVerificationHandler):

- An unsigned image (no certificate table) may run when one of its image hashes (SHA-1, SHA-256,
  SHA-384, SHA-512: EFI_CERT_SHA1/256/384/512 entries) is in db and none is in dbx.
- A signed image's certificate table is walked entry by entry: WIN_CERTIFICATEs on 8-byte boundaries
  that must fill the table exactly, or the image is refused. WIN_CERT_TYPE_PKCS_SIGNED_DATA, and
  WIN_CERT_TYPE_EFI_GUID of EFI_CERT_TYPE_PKCS7_GUID, hold an Authenticode signature; other entries
  are skipped. Each signature, with the image hash of its digest algorithm, in this order:
  - it verifies against an X.509 certificate in dbx, or the TBSCertificate hash of its signer's
    certificate or of an issuer of it in the signature is in dbx (EFI_CERT_X509_SHA256/384/512):
    refused, whatever an earlier signature allowed (efistub has no dbt, so no timestamp saves it);
  - it verifies against an X.509 certificate in db, directly or through intermediates the signature
    carries, and that certificate's own hash is not in dbx: allowed;
  - the image hash is in dbx: refused; in db: allowed.
- "Verifies against" is EDK2's AuthenticodeVerify: the SpcIndirectDataContent holds the image hash,
  and the PKCS#7 verifies as efistub.pkcs7 checks it (partial chains, no dates, no key usage).
- A db or dbx that is not well-formed signature lists allows nothing and forbids everything: EDK2
  counts an error while searching dbx as found.

Work is done once: the image hashes once per image (pehash.digests, shared with measured boot), the
signature checks once per signature, trusted certificate and digest in the process.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import guids, pehash, secureboot
from .errors import InputError
from .guids import Guid
from .layouts import secureboot as layout
from .status import Status

if TYPE_CHECKING:  # cryptography and the PKCS#7 parser are imported where a signature is read
    from cryptography import x509

    from . import pkcs7

# EDK2's mHash, with the signature types of their image hashes in db and dbx
IMAGE_HASHES = {"sha1": guids.CERT_SHA1, "sha256": guids.CERT_SHA256, "sha384": guids.CERT_SHA384,
                "sha512": guids.CERT_SHA512}
# dbx entries that revoke a certificate by the hash of its TBSCertificate (then an EFI_TIME)
CERTIFICATE_HASHES = {guids.CERT_X509_SHA256: "sha256", guids.CERT_X509_SHA384: "sha384",
                      guids.CERT_X509_SHA512: "sha512"}
REPORTED_HASH = "sha256"  # the image hash every verdict carries (the one measured boot logs too)

# What LoadImage does with an image that fails (EDK2's PcdFixedMediaImageVerificationPolicy and
# PcdRemovableMediaImageVerificationPolicy): DEFER_EXECUTE_ON_SECURITY_VIOLATION loads it untrusted,
# LoadImage and StartImage give EFI_SECURITY_VIOLATION; DENY_EXECUTE_ON_SECURITY_VIOLATION (OVMF's
# setting, SecurityPkg's default) does not load it, EFI_ACCESS_DENIED.
# ALWAYS_EXECUTE, EDK2's policy for images from its firmware volume, verifies nothing.
DEFER, DENY, ALWAYS = "defer", "deny", "always"
POLICIES = {DEFER: Status.EFI_SECURITY_VIOLATION, DENY: Status.EFI_ACCESS_DENIED}


@dataclass(frozen=True)
class Entry:
    """A signature of db or dbx: the one that decided."""

    database: str
    kind: Guid
    owner: Guid
    data: bytes

    def as_dict(self) -> dict:
        out = {"database": self.database, "type": self.kind.name, "owner": str(self.owner)}
        certificate = _certificate(self.data) if self.kind == guids.CERT_X509 else None
        if certificate is not None:
            out["subject"] = certificate.subject.rfc4514_string()
            out["sha256"] = hashlib.sha256(self.data).hexdigest()
        else:
            size = hashlib.new(CERTIFICATE_HASHES[self.kind]).digest_size if self.kind in CERTIFICATE_HASHES \
                else len(self.data)
            out["hash"] = self.data[:size].hex()
        return out

    def describe(self) -> str:
        d = self.as_dict()
        return f"{self.database}'s {self.kind.name} {d.get('subject') or d['hash']}"


@dataclass
class Signature:
    """One WIN_CERTIFICATE of the image's certificate table, as far as it was read."""

    certificate_type: str
    digest_algorithm: str | None = None
    signer: str | None = None  # the signer certificate's subject
    issuer: str | None = None
    serial: str | None = None
    chain: list[str] = field(default_factory=list)  # the signer and its issuers in the signature
    problem: str | None = None  # why it could not count

    def as_dict(self) -> dict:
        return {"certificate_type": self.certificate_type, "digest_algorithm": self.digest_algorithm,
                "signer": self.signer, "issuer": self.issuer, "serial": self.serial, "chain": self.chain,
                "problem": self.problem}


@dataclass
class Verdict:
    allowed: bool
    reason: str
    digests: dict[str, bytes]  # the image hashes computed, by algorithm
    signed: bool
    signatures: list[Signature] = field(default_factory=list)
    decided_by: Entry | None = None

    def status(self, policy: str) -> int:
        return Status.EFI_SUCCESS if self.allowed else POLICIES[policy]

    def as_dict(self, policy: str) -> dict:
        return {"status": Status.name_of(self.status(policy)), "allowed": self.allowed, "reason": self.reason,
                "policy": policy, REPORTED_HASH: self.digests[REPORTED_HASH].hex(), "signed": self.signed,
                "signatures": [s.as_dict() for s in self.signatures],
                "decided_by": None if self.decided_by is None else self.decided_by.as_dict()}


class _Databases:
    """db and dbx as their signatures: None for one that is not well-formed signature lists."""

    def __init__(self, store):
        self.lists = {}
        for name in ("db", "dbx"):
            try:
                self.lists[name] = secureboot.database(store, name)
            except secureboot.SignatureListError:
                self.lists[name] = None

    def entries(self, name: str, kinds) -> list[Entry]:
        return [Entry(name, item.type, s.owner, s.data) for item in self.lists[name] or []
                if item.type in kinds for s in item.signatures]

    def hash_entry(self, name: str, algorithm: str, digest: bytes) -> Entry | None:
        """The EFI_CERT_SHA* entry of ``name`` that is ``digest`` (EDK2's IsSignatureFoundInDatabase)."""
        return next((e for e in self.entries(name, (IMAGE_HASHES[algorithm],)) if e.data == digest), None)

    def certificate_revoked(self, certificate: x509.Certificate) -> Entry | None:
        """The dbx entry with the hash of ``certificate``'s TBSCertificate (IsCertHashFoundInDbx)."""
        tbs = certificate.tbs_certificate_bytes
        for entry in self.entries("dbx", CERTIFICATE_HASHES):
            digest = hashlib.new(CERTIFICATE_HASHES[entry.kind], tbs).digest()
            if entry.data[:len(digest)] == digest:
                return entry
        return None


def enabled(store, policy: str = DEFER) -> bool:
    """Whether LoadImage verifies images: SecureBoot is 1, and the policy is not ALWAYS."""
    state = secureboot.state(store)
    return state is not None and state.secure_boot and policy != ALWAYS


def verify(store, image, policy: str = DEFER) -> Verdict | None:
    """The verdict on ``image`` (a loader.PeImage) with the store's db and dbx; None when SecureBoot is 0
    or the policy verifies nothing."""
    if not enabled(store, policy):
        return None
    databases = _Databases(store)
    try:
        digests = dict(pehash.digests(image, [REPORTED_HASH]))
        table = image.certificate_table
    except (pehash.NotPeImage, pehash.BadPeImage, InputError) as e:
        problem = e.problem if isinstance(e, InputError) else str(e)
        return Verdict(False, f"not a valid PE/COFF image: {problem}", {REPORTED_HASH: hashlib.sha256(
            image.data).digest()}, signed=False)
    if table is None:
        return _unsigned(image, databases, digests)
    return _signed(image, table, databases, digests)


def _unsigned(image, databases: _Databases, digests: dict) -> Verdict:
    if databases.lists["dbx"] is None:
        return Verdict(False, "not signed, and dbx is malformed (EDK2 counts that as found)", digests, False)
    found = None
    for algorithm in reversed(IMAGE_HASHES):  # EDK2 tries SHA-512 first, SHA-1 last
        kind = IMAGE_HASHES[algorithm]
        if not databases.entries("db", (kind,)) and not databases.entries("dbx", (kind,)):
            continue  # no entry of that type: the hash cannot be found
        digests.update(pehash.digests(image, [algorithm]))
        revoked = databases.hash_entry("dbx", algorithm, digests[algorithm])
        if revoked is not None:
            return Verdict(False, f"not signed, and its {algorithm} hash is in dbx", digests, False, [], revoked)
        found = found or databases.hash_entry("db", algorithm, digests[algorithm])
    if found is not None:
        return Verdict(True, f"not signed, and its {_algorithm_of(found)} hash is in db", digests, False, [], found)
    return Verdict(False, "not signed, and no hash of it is in db", digests, False)


def _signed(image, table: tuple[int, int], databases: _Databases, digests: dict) -> Verdict:
    data = image.data
    offset, size = table
    end = offset + size
    header = layout.WinCertificate.sizeof()
    guid_header = layout.WinCertificateUefiGuid.sizeof()
    signatures: list[Signature] = []
    allowed: Entry | None = None
    refusal: tuple[str, Entry | None] | None = None
    at = offset
    while at < end:  # EDK2's walk of the attribute certificate table
        left = end - at
        if left <= header:
            break
        entry = layout.WinCertificate.parse(data[at:at + header])
        length = entry.dwLength
        padding = -length % layout.WIN_CERTIFICATE_ALIGNMENT
        if left < length or left - length < padding:
            break
        kind = entry.wCertificateType
        if kind == layout.WIN_CERT_TYPE_PKCS_SIGNED_DATA:
            if length <= header:
                break
            der = bytes(data[at + header:at + length])
        elif kind == layout.WIN_CERT_TYPE_EFI_GUID:
            if length <= guid_header:
                break
            cert_type = Guid.from_bytes(bytes(data[at + header:at + guid_header]))
            der = bytes(data[at + guid_header:at + length]) if cert_type == guids.CERT_TYPE_PKCS7 else None
        else:
            if length < header:
                break
            der = None
        at += length + padding
        if der is None:
            continue
        signature, parsed = _read_signature(layout.WIN_CERT_TYPE_NAMES[kind], der)
        signatures.append(signature)
        if parsed is None:
            continue
        if parsed.digest_algorithm not in IMAGE_HASHES:
            signature.problem = f"digest algorithm {parsed.digest_algorithm} is not one EDK2 hashes images with"
            continue
        algorithm = parsed.digest_algorithm
        digests.update(pehash.digests(image, [algorithm]))
        digest = digests[algorithm]
        forbidden = _forbidden(der, parsed, digest, databases)
        if forbidden is not None:
            refusal = forbidden
            break
        if allowed is None:
            allowed = _allowed_by_db(der, digest, databases)
        revoked = databases.hash_entry("dbx", algorithm, digest)
        if revoked is not None:
            refusal = (f"signed, but its {algorithm} hash is in dbx", revoked)
            break
        if allowed is None:
            allowed = databases.hash_entry("db", algorithm, digest)
    signer = next((s.signer for s in signatures if s.signer), None)
    if refusal is not None:
        return Verdict(False, refusal[0], digests, True, signatures, refusal[1])
    if at != end:
        return Verdict(False, f"the certificate table (file offset 0x{offset:x}, 0x{size:x} bytes) does not end "
                              f"where its last certificate does (0x{at:x})", digests, True, signatures)
    if allowed is not None:
        how = f"its {_algorithm_of(allowed)} hash is in db" if allowed.kind in IMAGE_HASHES.values() else \
            f"its signature verifies against {allowed.describe()}"
        return Verdict(True, f"signed by {signer}; {how}" if signer else how, digests, True, signatures, allowed)
    if not signatures:
        return Verdict(False, "its certificate table holds no PKCS#7 signature", digests, True, signatures)
    who = f"signed by {signer}" if signer else "signed"
    return Verdict(False, f"{who}, which no certificate in db verifies, and no hash of it is in db", digests, True,
                   signatures)


def _read_signature(kind: str, der: bytes) -> tuple[Signature, pkcs7.Authenticode | None]:
    parsed = _authenticode(der)
    if isinstance(parsed, str):
        return Signature(kind, problem=parsed), None
    signer = parsed.signers[0].certificate
    return Signature(kind, parsed.digest_algorithm, signer.subject.rfc4514_string(), signer.issuer.rfc4514_string(),
                     f"{signer.serial_number:x}", [c.subject.rfc4514_string() for c in parsed.chain()]), parsed


def _forbidden(der: bytes, parsed: pkcs7.Authenticode, digest: bytes,
               databases: _Databases) -> tuple[str, Entry | None] | None:
    """Why dbx forbids the signature, and the entry that does (EDK2's IsForbiddenByDbx)."""
    if databases.lists["dbx"] is None:
        return "dbx is malformed (EDK2 counts that as found)", None
    for entry in databases.entries("dbx", (guids.CERT_X509,)):
        if _verifies(der, entry.data, digest):
            return f"its signature verifies against {entry.describe()}", entry
    for certificate in parsed.chain():
        revoked = databases.certificate_revoked(certificate)
        if revoked is not None:
            return (f"the certificate {certificate.subject.rfc4514_string()} of its signature is revoked by "
                    f"{revoked.describe()} (and no dbt timestamp can save it)"), revoked
    return None


def _allowed_by_db(der: bytes, digest: bytes, databases: _Databases) -> Entry | None:
    """The db certificate the signature verifies against, unless dbx revokes it (IsAllowedByDb)."""
    for entry in databases.entries("db", (guids.CERT_X509,)):
        if _verifies(der, entry.data, digest):
            certificate = _certificate(entry.data)
            # EDK2 stops at the first db certificate that verifies, revoked or not
            return None if databases.certificate_revoked(certificate) is not None else entry
    return None


def _algorithm_of(entry: Entry) -> str:
    return next(name for name, kind in IMAGE_HASHES.items() if kind == entry.kind)


# -- checks done once per process ----------------------------------------------------------------

@functools.lru_cache(maxsize=256)
def _authenticode(der: bytes) -> pkcs7.Authenticode | str:
    """The parsed signature, or why it is none."""
    from . import pkcs7

    try:
        return pkcs7.Authenticode(der)
    except pkcs7.Pkcs7Error as e:
        return str(e)


@functools.lru_cache(maxsize=1024)
def _certificate(der: bytes) -> x509.Certificate | None:
    from cryptography import x509

    try:
        return x509.load_der_x509_certificate(der)
    except ValueError:
        return None


@functools.lru_cache(maxsize=4096)
def _verifies(der: bytes, trusted: bytes, digest: bytes) -> bool:
    """EDK2's AuthenticodeVerify(signature, trusted certificate, image hash)."""
    signature, certificate = _authenticode(der), _certificate(trusted)
    return not isinstance(signature, str) and certificate is not None and signature.verify_image(digest, certificate)
