"""SetVariable and QueryVariableInfo on a store with Secure Boot (efistub.secureboot): attributes,
the firmware's read-only variables, and time-based authenticated writes, verified, as EDK2's
variable driver (MdeModulePkg Variable.c) and AuthVariableLib (SecurityPkg) do them.

- PK, KEK and the image security databases (db, dbx, dbt, dbr) are non-volatile, time-based
  authenticated variables. In setup mode (no PK) a write needs the EFI_VARIABLE_AUTHENTICATION_2
  descriptor but no signature; PK enrolled that way switches to user mode. In user mode PK and
  KEK writes must be signed by PK, db/dbx/dbt/dbr writes by PK or a KEK certificate; a signed
  empty PK write deletes PK and switches to setup mode.
- Any other time-based authenticated variable is signed by whoever creates it; later writes must
  be signed by the same signer, which EDK2 remembers in its certdb (certdbv for volatile ones)
  as the digest of the signer's common name and its top-level certificate's tbsCertificate.
- The signature is a PKCS#7 SignedData over VariableName (no NUL), VendorGuid, Attributes,
  TimeStamp and the new data (UEFI 2.10 §8.2.2), checked by efistub.pkcs7. TimeStamp must be
  later than the variable's, except for APPEND_WRITE; an append to KEK or an image database
  adds only signatures that are not there yet.
- Count-based authenticated variables (AUTHENTICATED_WRITE_ACCESS) are not supported, as in EDK2.
- No user is physically present: SecureBootEnable and CustomMode cannot be written, and custom
  mode does not exist (EDK2 with UserPhysicalPresent() FALSE; OVMF says TRUE).

Functions here know no guest memory: ``set_variable`` reads the data through a callback.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Callable

from construct import ConstructError

from . import guids, secureboot
from .errors import EfiError
from .guids import GLOBAL_VARIABLE, IMAGE_SECURITY_DATABASE, Guid
from .layouts import secureboot as layout
from .status import Status
from .variables import (APPEND_WRITE, ATTRIBUTES_MASK, AUTHENTICATED_WRITE_ACCESS, BS_RT, HARDWARE_ERROR_RECORD,
                        NON_VOLATILE, RUNTIME_ACCESS, TIME_BASED_AUTHENTICATED_WRITE_ACCESS, EfiTime, VariableStore,
                        no_room, time_key, too_large)

if TYPE_CHECKING:  # cryptography and the PKCS#7 parser are imported where a signed write is checked
    from cryptography import x509

    from .pkcs7 import SignedData

AT = TIME_BASED_AUTHENTICATED_WRITE_ACCESS
AW = AUTHENTICATED_WRITE_ACCESS
DESCRIPTOR = layout.VariableAuthentication2.sizeof()  # OFFSET_OF_AUTHINFO2_CERT_DATA: the smallest DataSize
CERTIFICATE_HEADER = layout.WinCertificateUefiGuid.sizeof()  # OFFSET_OF(WIN_CERTIFICATE_UEFI_GUID, CertData)
SIGNER_DIGESTS = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}  # EDK2's mHashInfo
FILTERED = {("KEK", GLOBAL_VARIABLE)} | {(name, IMAGE_SECURITY_DATABASE) for name in secureboot.IMAGE_DATABASES}
CERT_DB_ATTRIBUTES = {True: NON_VOLATILE | BS_RT | AT, False: BS_RT | AT}  # certdb, certdbv

Reader = Callable[[int, int], bytes]  # (offset, size) -> bytes of the guest's Data


def set_variable(store: VariableStore, name: str, guid: Guid, attributes: int, size: int, read: Reader,
                 runtime: bool) -> tuple[int, str | None]:
    """SetVariable(name, guid, attributes, size, Data) on a store with Secure Boot, after the
    service checked its pointers: the status, and a note for the report (or None)."""
    try:
        return Status.EFI_SUCCESS, _set(store, name, guid, attributes, size, read, runtime)
    except EfiError as e:
        return e.status, e.note


def query_problem(attributes: int, runtime: bool) -> tuple[int, str] | None:
    """Why QueryVariableInfo refuses ``attributes`` (EDK2's order of checks), or None."""
    if attributes & AW:
        return Status.EFI_UNSUPPORTED, "AUTHENTICATED_WRITE_ACCESS (count-based) is not supported"
    if not attributes & ATTRIBUTES_MASK:
        return Status.EFI_UNSUPPORTED, f"attributes 0x{attributes:x} name no kind of variable"
    if attributes & ATTRIBUTES_MASK == NON_VOLATILE:
        return Status.EFI_INVALID_PARAMETER, "NON_VOLATILE alone"
    if attributes & BS_RT == RUNTIME_ACCESS:
        return Status.EFI_INVALID_PARAMETER, "RUNTIME_ACCESS without BOOTSERVICE_ACCESS"
    if runtime and not attributes & RUNTIME_ACCESS:
        return Status.EFI_INVALID_PARAMETER, "after ExitBootServices only RUNTIME_ACCESS variables remain"
    if attributes & (NON_VOLATILE | HARDWARE_ERROR_RECORD) == HARDWARE_ERROR_RECORD:
        return Status.EFI_INVALID_PARAMETER, "HARDWARE_ERROR_RECORD without NON_VOLATILE"
    return None


# -- SetVariable ---------------------------------------------------------------------------------

def _set(store, name, guid, attributes, size, read, runtime) -> str | None:
    if attributes & ~(ATTRIBUTES_MASK | AW):
        reserved = attributes & ~(ATTRIBUTES_MASK | AW)
        raise EfiError(Status.EFI_INVALID_PARAMETER, f"reserved attribute bits 0x{reserved:x}")
    refusal = Status.EFI_UNSUPPORTED if attributes & AW else Status.EFI_INVALID_PARAMETER
    if attributes & BS_RT == RUNTIME_ACCESS:
        raise EfiError(refusal, "RUNTIME_ACCESS without BOOTSERVICE_ACCESS")
    if attributes & ATTRIBUTES_MASK == NON_VOLATILE:
        raise EfiError(refusal, "NON_VOLATILE alone")
    if attributes & AW:
        raise EfiError(Status.EFI_UNSUPPORTED, "count-based authenticated variables (AUTHENTICATED_WRITE_ACCESS) "
                                               "are not supported, as in EDK2")
    start = 0
    if attributes & AT:
        if size < DESCRIPTOR:
            raise EfiError(Status.EFI_SECURITY_VIOLATION, f"{name}: DataSize {size} is less than an "
                                                          f"EFI_VARIABLE_AUTHENTICATION_2 ({DESCRIPTOR} bytes)")
        length = layout.VariableAuthentication2.parse(read(0, DESCRIPTOR)).AuthInfo.Hdr.dwLength
        if length > size - layout.AUTHENTICATION_2_TIMESTAMP or length < CERTIFICATE_HEADER:
            raise EfiError(Status.EFI_SECURITY_VIOLATION, f"{name}: AuthInfo.Hdr.dwLength {length} does not fit "
                                                          f"DataSize {size}")
        start = layout.AUTHENTICATION_2_TIMESTAMP + length
    problem = too_large(store, name, attributes, size - start) or (
        too_large(store, name, attributes, size, "name and DataSize (OVMF's SMM buffer takes no more)")
        if start else None)
    if problem is not None:
        raise EfiError(*problem)  # checked before the data is read: a huge DataSize costs nothing
    deleting = not attributes or (not attributes & APPEND_WRITE and size == start)
    if (name, guid) in secureboot.READ_ONLY:
        raise EfiError(Status.EFI_WRITE_PROTECTED, f"{name} is read-only: the firmware sets it")
    if guid == GLOBAL_VARIABLE and name in ("PK", "KEK") and not deleting and \
            attributes & ~APPEND_WRITE != secureboot.NV_BS_RT_AT:
        raise EfiError(Status.EFI_INVALID_PARAMETER, f"{name} takes NV, BS, RT and time-based authenticated write "
                                                     f"access, not 0x{attributes:x}")
    existing = store.get(name, guid)
    if runtime:
        if existing is not None and (not existing.attributes & RUNTIME_ACCESS or not existing.non_volatile):
            raise EfiError(Status.EFI_WRITE_PROTECTED, f"{name}: after ExitBootServices only non-volatile runtime "
                                                       f"variables change")
        if attributes and not (attributes & RUNTIME_ACCESS and attributes & NON_VOLATILE):
            raise EfiError(Status.EFI_INVALID_PARAMETER, "after ExitBootServices only NV+RT variables may be written")
    if existing is not None and attributes and attributes & ~APPEND_WRITE != existing.attributes:
        raise EfiError(Status.EFI_INVALID_PARAMETER, f"{name} exists with attributes 0x{existing.attributes:x}, "
                                                     f"not 0x{attributes & ~APPEND_WRITE:x}")
    data = read(0, size) if size else b""
    write = Write(store, name, guid, attributes, data, start, runtime)
    if guid == GLOBAL_VARIABLE and name == "PK":
        return write.with_pk(is_pk=True)
    if guid == GLOBAL_VARIABLE and name == "KEK":
        return write.with_pk(is_pk=False)
    if guid == IMAGE_SECURITY_DATABASE and name in secureboot.IMAGE_DATABASES:
        try:
            return write.with_pk(is_pk=False)
        except EfiError:
            return write.with_kek()
    return write.other()


class Write:
    """One SetVariable that got past the checks: what AuthVariableLibProcessVariable does with it."""

    def __init__(self, store: VariableStore, name: str, guid: Guid, attributes: int, data: bytes, start: int,
                 runtime: bool):
        self.store, self.name, self.guid, self.attributes = store, name, guid, attributes
        self.data, self.start, self.runtime = data, start, runtime
        self.state: secureboot.SecureBootState = store.secure_boot
        self.append = bool(attributes & APPEND_WRITE)

    @property
    def payload(self) -> bytes:
        return self.data[self.start:]

    @property
    def timestamp(self):
        return layout.VariableAuthentication2.TimeStamp.parse(self.data[:layout.AUTHENTICATION_2_TIMESTAMP])

    def _key_database_attributes(self) -> None:
        if not self.attributes & NON_VOLATILE or not self.attributes & AT:
            raise EfiError(Status.EFI_INVALID_PARAMETER, f"{self.name} is a non-volatile, time-based authenticated "
                                                         f"variable: attributes 0x{self.attributes:x}")

    # -- PK, KEK, db, dbx, dbt, dbr -----------------------------------------------------------------
    def with_pk(self, is_pk: bool) -> str | None:
        """ProcessVarWithPk: unsigned in setup mode, else signed by PK."""
        self._key_database_attributes()
        if self.state.setup_mode:
            self._check_format(self.payload)
            self._update(self.payload, _stored_time(self.timestamp))
            deleted, note = not self.payload, "setup mode: taken without a signature, as EDK2 does"
        else:
            deleted, note = self._verified("PK")
        if is_pk and self.state.setup_mode and not deleted:
            _platform_mode(self.store, setup_mode=False, runtime=self.runtime)
            note = "PK enrolled in setup mode: now in user mode"
        elif is_pk and self.state.user_mode and deleted:
            _platform_mode(self.store, setup_mode=True, runtime=self.runtime)
            note = "PK deleted: now in setup mode"
        return note

    def with_kek(self) -> str | None:
        """ProcessVarWithKek: for db, dbx, dbt and dbr, signed by a KEK certificate in user mode."""
        self._key_database_attributes()
        if self.state.user_mode:
            return self._verified("KEK")[1]
        self._check_format(self.payload)
        self._update(self.payload, _stored_time(self.timestamp))
        return "setup mode: taken without a signature, as EDK2 does"

    def other(self) -> str | None:
        """ProcessVariable: every other variable."""
        existing = self.store.get(self.name, self.guid)
        if (self.name, self.guid) in secureboot.PHYSICAL_PRESENCE:
            raise EfiError(Status.EFI_SECURITY_VIOLATION, f"{self.name} changes only with a user physically present, "
                                                          f"and there is none")
        if self.attributes & AT:
            return self._verified("private")[1]
        if existing is not None and existing.attributes & (AW | AT):
            raise EfiError(Status.EFI_WRITE_PROTECTED, f"{self.name} is an authenticated variable: a write needs "
                                                       f"TIME_BASED_AUTHENTICATED_WRITE_ACCESS and its signer's "
                                                       f"signature")
        update_variable(self.store, self.name, self.guid, self.attributes, self.data, None)
        return None

    # -- VerifyTimeBasedPayloadAndUpdate -------------------------------------------------------------
    def _verified(self, authority: str) -> tuple[bool, str]:
        """Check the descriptor and the signature against ``authority`` ("PK", "KEK" or "private":
        the variable's own signer), then update: (whether the variable was deleted, a note)."""
        existing = self.store.get(self.name, self.guid)
        header = layout.VariableAuthentication2.parse(self.data[:DESCRIPTOR])
        stamp = header.TimeStamp
        if stamp.Pad1 or stamp.Nanosecond or stamp.TimeZone or stamp.Daylight or stamp.Pad2:
            raise self._violation("TimeStamp: Pad1, Nanosecond, TimeZone, Daylight and Pad2 must be 0")
        new_time = _stored_time(stamp)
        if existing is not None and not self.append and time_key(new_time) <= time_key(existing.timestamp):
            raise self._violation(f"TimeStamp {_show(new_time)} is not later than the variable's, "
                                  f"{_show(existing.timestamp)}")
        info = header.AuthInfo
        if info.Hdr.wCertificateType != layout.WIN_CERT_TYPE_EFI_GUID or \
                Guid.from_bytes(info.CertType) != guids.CERT_TYPE_PKCS7:
            raise self._violation("AuthInfo is not a WIN_CERTIFICATE_UEFI_GUID of EFI_CERT_TYPE_PKCS7_GUID")
        from .pkcs7 import Pkcs7Error, SignedData

        try:
            signed = SignedData(self.data[DESCRIPTOR:self.start])
        except Pkcs7Error as e:
            raise self._violation(f"AuthInfo.CertData: {e}") from None
        algorithm = signed.digest_algorithm
        if algorithm not in SIGNER_DIGESTS:
            raise self._violation(f"the SignedData's digest algorithm is {algorithm}, not SHA-256, -384 or -512")
        content = (self.name.encode("utf-16-le") + self.guid.bytes_le
                   + self.attributes.to_bytes(4, "little") + self.data[:layout.AUTHENTICATION_2_TIMESTAMP]
                   + self.payload)
        signer = signed.signers[0].certificate  # EDK2's top-level certificate: the signer's
        if authority == "PK":
            note = self._signed_by_pk(signed, signer, content)
        elif authority == "KEK":
            note = self._signed_by_kek(signed, content)
        else:
            note = self._signed_by_owner(signed, signer, content, existing, algorithm)
        self._check_format(self.payload)
        deleted = existing is not None and not self.payload and not self.append
        remember = authority == "private" and existing is None and self.payload
        if remember:  # InsertCertsToDb, before the update as in EDK2: it may refuse
            digest = _signer_digest(signer, algorithm)
            if _recorded_signer(self.store, self.name, self.guid, self.attributes) is not None:
                raise self._violation("certdb already has a signer for it")
        self._update(self.payload, new_time)
        if remember:
            _insert_signer(self.store, self.name, self.guid, self.attributes, digest)
        if authority == "private" and deleted:
            _delete_signer(self.store, self.name, self.guid, self.attributes)
        return deleted, note

    def _signed_by_pk(self, signed: SignedData, signer: x509.Certificate, content: bytes) -> str:
        pk = self.store.get("PK", GLOBAL_VARIABLE)
        if pk is None:
            raise self._violation("there is no PK to check the signature with")
        try:
            enrolled = secureboot.signature_lists(pk.data)[0].signatures[0].data
        except (secureboot.SignatureListError, IndexError):
            raise self._violation("PK holds no signature to check with") from None
        from cryptography.hazmat.primitives.serialization import Encoding

        if signer.public_bytes(Encoding.DER) != enrolled:
            raise self._violation(f"signed by {_name(signer)}, not by the PK")
        if not signed.verify(content, signer):
            raise self._violation("the PK's signature does not verify")
        return f"signed by the PK ({_name(signer)})"

    def _signed_by_kek(self, signed: SignedData, content: bytes) -> str:
        kek = self.store.get("KEK", GLOBAL_VARIABLE)
        if kek is None:
            raise EfiError(Status.EFI_NOT_FOUND, f"{self.name}: not signed by the PK, and there is no KEK")
        try:
            lists = secureboot.signature_lists(kek.data)
        except secureboot.SignatureListError as e:
            raise self._violation(f"not signed by the PK, and KEK is malformed ({e})") from None
        trusted = [c for item in lists for c in item.certificates()]
        for certificate in trusted:
            if signed.verify(content, certificate):
                return f"signed by a KEK: {_name(certificate)}"
        raise self._violation(f"signed by {_name(signed.signers[0].certificate)}: neither the PK nor one of the "
                              f"{len(trusted)} KEK certificates")

    def _signed_by_owner(self, signed: SignedData, signer: x509.Certificate, content: bytes, existing,
                         algorithm: str) -> str:
        if existing is not None:
            recorded = _recorded_signer(self.store, self.name, self.guid, self.attributes)
            if recorded is None:
                raise self._violation("certdb has no signer for it")
            if len(recorded) == SIGNER_DIGESTS[algorithm]().digest_size:
                matches = recorded == _signer_digest(signer, algorithm)
            else:  # EDK2's older certdb kept the whole signer certificate stack
                matches = recorded == _certificate_stack([c.certificate for c in signed.signers])
            if not matches:
                raise self._violation(f"signed by {_name(signer)}, not by the signer that created it")
        if not signed.verify(content, signer):
            raise self._violation("its signature does not verify")
        return f"signed by {_name(signer)}"

    # -- helpers -----------------------------------------------------------------------------------------
    def _violation(self, why: str) -> EfiError:
        return EfiError(Status.EFI_SECURITY_VIOLATION, f"{self.name}: {why}")

    def _check_format(self, payload: bytes) -> None:
        problem = secureboot.format_problem(self.name, self.guid, payload)
        if problem is not None:
            raise EfiError(Status.EFI_INVALID_PARAMETER, problem)

    def _update(self, payload: bytes, timestamp) -> None:
        """AuthServiceInternalUpdateVariableWithTimeStamp: an append to KEK or an image database
        keeps only the signatures that are new."""
        existing = self.store.get(self.name, self.guid)
        if existing is not None and self.append and (self.name, self.guid) in FILTERED:
            payload = _new_signatures(existing.data, payload)
        update_variable(self.store, self.name, self.guid, self.attributes, payload, timestamp)


def update_variable(store: VariableStore, name: str, guid: Guid, attributes: int, data: bytes, timestamp) -> None:
    """EDK2's UpdateVariable: delete, append, create or replace; a time-based authenticated variable
    keeps ``timestamp`` (an append: the later of the two). EfiError when it cannot."""
    existing = store.get(name, guid)
    append, stored = bool(attributes & APPEND_WRITE), attributes & ~APPEND_WRITE
    if existing is not None:
        if (not append and not data) or not attributes & BS_RT:
            store.delete(name, guid)
            return
        if append:
            data = existing.data + data
            problem = too_large(store, name, attributes, len(data))
            if problem is not None:
                raise EfiError(*problem)
            if timestamp is not None and time_key(existing.timestamp) > time_key(timestamp):
                timestamp = existing.timestamp
    else:
        if not data and append:
            return
        if not data or not attributes & BS_RT:
            raise EfiError(Status.EFI_NOT_FOUND, f"{name} does not exist")
        if append:
            timestamp = None  # EDK2 leaves a variable an append creates without a timestamp
    if not stored & AT:
        timestamp = None
    problem = no_room(store, name, guid, stored, len(data))
    if problem is not None:
        raise EfiError(*problem)
    store.set(name, guid, stored, data, timestamp)


def _platform_mode(store: VariableStore, setup_mode: bool, runtime: bool) -> None:
    """EDK2's UpdatePlatformMode: SetupMode, and before ExitBootServices SecureBoot (unless
    --no-secure-boot) and SecureBootEnable (set in user mode, deleted in setup mode)."""
    state = store.secure_boot
    state.setup_mode = setup_mode
    state.changes.append("setup mode" if setup_mode else "user mode")
    secureboot.firmware_variable(store, "SetupMode", bytes([setup_mode]))
    if runtime:
        return
    state.secure_boot = not setup_mode and state.override is not False
    secureboot.firmware_variable(store, "SecureBoot", bytes([state.secure_boot]))
    name, guid = secureboot.SECURE_BOOT_ENABLE
    if not setup_mode:
        store.set(name, guid, secureboot.NV_BS, b"\x01")
    elif store.get(name, guid) is not None:
        store.delete(name, guid)


def _new_signatures(existing: bytes, new: bytes) -> bytes:
    """EDK2's FilterSignatureList: ``new`` without the EFI_SIGNATURE_DATA (owner and data) that a list
    of the same type and signature size in ``existing`` has."""
    try:
        old, lists = secureboot.signature_lists(existing), secureboot.signature_lists(new)
    except secureboot.SignatureListError as e:
        raise EfiError(Status.EFI_INVALID_PARAMETER, f"an append: {e}") from None
    out = b""
    for item in lists:
        there = {s.raw for o in old if o.type == item.type and o.signature_size == item.signature_size
                 for s in o.signatures}
        kept = [s for s in item.signatures if s.raw not in there]
        if kept:
            out += secureboot.build_signature_list(item.type, item.header, item.signature_size, kept)
    return out


def _stored_time(stamp):
    """A descriptor's TimeStamp as a variable keeps it: None when all zero, else a datetime, or an
    EfiTime when it is no date."""
    from datetime import datetime, timezone

    fields = (stamp.Year, stamp.Month, stamp.Day, stamp.Hour, stamp.Minute, stamp.Second)
    if not stamp.Year:
        return None if not any(fields) else EfiTime(*fields)
    try:
        return datetime(*fields, tzinfo=timezone.utc)
    except ValueError:
        return EfiTime(*fields)


def _show(timestamp) -> str:
    key = time_key(timestamp)
    return "none" if timestamp is None else f"{key[0]:04}-{key[1]:02}-{key[2]:02} {key[3]:02}:{key[4]:02}:{key[5]:02}"


def _name(certificate: x509.Certificate) -> str:
    from cryptography import x509

    names = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return f"CN={names[0].value}" if names else certificate.subject.rfc4514_string() or "a certificate without a name"


# -- EDK2's certdb: who signed each authenticated variable -----------------------------------------------

def _signer_digest(signer: x509.Certificate, algorithm: str) -> bytes:
    """CalculatePrivAuthVarSignChainSHADigest: the digest of the signer's common name and the
    top-level certificate's tbsCertificate (EDK2's top-level certificate is the signer's)."""
    from cryptography import x509

    names = signer.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    if not names:
        raise EfiError(Status.EFI_SECURITY_VIOLATION, "the signer's certificate has no common name (EDK2 needs one "
                                                      "to remember it)")
    return SIGNER_DIGESTS[algorithm](str(names[0].value).encode("utf-8") + signer.tbs_certificate_bytes).digest()


def _certificate_stack(certificates: list[x509.Certificate]) -> bytes:
    """Pkcs7GetSigners' certificate stack (UINT8 count, then UINT32 length and DER of each), which
    EDK2's older certdb kept."""
    from cryptography.hazmat.primitives.serialization import Encoding

    out = bytes([len(certificates)])
    for certificate in certificates:
        der = certificate.public_bytes(Encoding.DER)
        out += len(der).to_bytes(4, "little") + der
    return out


def _cert_db(store: VariableStore, attributes: int):
    name = "certdb" if attributes & NON_VOLATILE else "certdbv"
    return name, store.get(name, guids.CERT_DB)


def _entries(data: bytes) -> list[tuple[int, int, Guid, str, bytes]]:
    """certdb's entries: (offset, node size, vendor GUID, variable name, signer digest); a
    malformed certdb has none past the malformation (FindCertsFromDb gives up there)."""
    header, entry = layout.CertDbListSize.sizeof(), layout.CertDbEntry.sizeof()
    if len(data) < header or layout.CertDbListSize.parse(data[:header]) != len(data):
        return []
    out, offset = [], header
    while offset + entry <= len(data):
        try:
            node = layout.CertDbEntry.parse(data[offset:offset + entry])
        except ConstructError:
            break
        name_end = offset + entry + 2 * node.NameSize
        if node.CertNodeSize != entry + 2 * node.NameSize + node.CertDataSize or offset + node.CertNodeSize > len(data):
            break
        name = data[offset + entry:name_end].decode("utf-16-le", errors="replace")
        out.append((offset, node.CertNodeSize, Guid.from_bytes(node.VendorGuid), name,
                    data[name_end:name_end + node.CertDataSize]))
        offset += node.CertNodeSize
    return out


def _recorded_signer(store: VariableStore, name: str, guid: Guid, attributes: int) -> bytes | None:
    _, db = _cert_db(store, attributes)
    if db is None:
        return None
    return next((digest for _, _, vendor, entry, digest in _entries(db.data) if vendor == guid and entry == name), None)


def _insert_signer(store: VariableStore, name: str, guid: Guid, attributes: int, digest: bytes) -> None:
    """InsertCertsToDb: remember the signer of a new authenticated variable (certdb is created on
    first use; EDK2 creates it when it starts)."""
    db_name, db = _cert_db(store, attributes)
    data = db.data if db is not None else layout.CertDbListSize.build(layout.CertDbListSize.sizeof())
    encoded = name.encode("utf-16-le")
    node = layout.CertDbEntry.build(dict(VendorGuid=guid.bytes_le, CertNodeSize=layout.CertDbEntry.sizeof()
                                         + len(encoded) + len(digest), NameSize=len(name), CertDataSize=len(digest)))
    grown = data + node + encoded + digest
    grown = layout.CertDbListSize.build(len(grown)) + grown[layout.CertDbListSize.sizeof():]
    store.set(db_name, guids.CERT_DB, CERT_DB_ATTRIBUTES[bool(attributes & NON_VOLATILE)], grown)


def _delete_signer(store: VariableStore, name: str, guid: Guid, attributes: int) -> None:
    """DeleteCertsFromDb: forget the signer of a deleted authenticated variable."""
    db_name, db = _cert_db(store, attributes)
    if db is None:
        return
    for offset, size, vendor, entry, _ in _entries(db.data):
        if vendor == guid and entry == name:
            rest = db.data[:offset] + db.data[offset + size:]
            rest = layout.CertDbListSize.build(len(rest)) + rest[layout.CertDbListSize.sizeof():]
            store.set(db_name, guids.CERT_DB, db.attributes, rest, db.timestamp)
            return
