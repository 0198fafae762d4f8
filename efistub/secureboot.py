"""Secure Boot: the platform's mode and its key databases (UEFI 2.10 §32.3, §32.4), kept as EDK2's
AuthVariableLib keeps them, in the variable store.

    state = secureboot.state(store)              # SecureBootState, or None: no Secure Boot model
    state.secure_boot, state.setup_mode          # what SecureBoot and SetupMode say
    secureboot.database(store, "db")             # [SignatureList, ...]: db as parsed EFI_SIGNATURE_LISTs
    secureboot.certificates(store, "KEK")        # the X.509 certificates in KEK
    secureboot.signatures(store, "dbx", guids.CERT_SHA256)   # the SHA-256 hashes in dbx

A run has Secure Boot when it has a variable store (--vars), keys to enroll (--enroll) or a
Secure Boot override (--secure-boot, --no-secure-boot). ``setup`` makes the state when the run
starts: the platform is in user mode when PK exists, else in setup mode; SecureBoot is 1 in
user mode unless EDK2's SecureBootEnable variable says 0 or --no-secure-boot overrides it. The
firmware's variables (SetupMode, SecureBoot, AuditMode, DeployedMode, SignatureSupport,
VendorKeys) are volatile BS+RT variables that guests cannot write. Authenticated writes, which
change the keys and the mode, are efistub.authvar's.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import guids
from .errors import InputError
from .guids import GLOBAL_VARIABLE, IMAGE_SECURITY_DATABASE, Guid
from .layouts import secureboot as layout
from .variables import BOOTSERVICE_ACCESS, BS_RT, NON_VOLATILE, TIME_BASED_AUTHENTICATED_WRITE_ACCESS, VariableStore

if TYPE_CHECKING:  # cryptography is imported where a certificate is read: a run without Secure Boot needs none
    from cryptography import x509

NV_BS = NON_VOLATILE | BOOTSERVICE_ACCESS
NV_BS_RT_AT = NON_VOLATILE | BS_RT | TIME_BASED_AUTHENTICATED_WRITE_ACCESS

# The key databases (§32.3.1, §32.6.1) and where they live. EDK2 treats db, dbx and dbt as image
# security databases; dbr (the OS recovery database) is one too in the spec, and here.
KEY_DATABASES = {"PK": GLOBAL_VARIABLE, "KEK": GLOBAL_VARIABLE, "db": IMAGE_SECURITY_DATABASE,
                 "dbx": IMAGE_SECURITY_DATABASE, "dbt": IMAGE_SECURITY_DATABASE, "dbr": IMAGE_SECURITY_DATABASE}
IMAGE_DATABASES = ("db", "dbx", "dbt", "dbr")
ENROLLED = ("PK", "KEK", "db", "dbx")  # what --enroll sets

# The firmware's own variables: BS+RT, read-only for guests (UEFI 2.10 Table 3-1; EDK2's VarCheck
# marks them read-only, and certdb, certdbv and VendorKeysNv as well). AuditMode and DeployedMode
# are 0: efistub, as EDK2, has no audit or deployed mode.
READ_ONLY = frozenset({(name, GLOBAL_VARIABLE) for name in (
    "SetupMode", "SecureBoot", "AuditMode", "DeployedMode", "SignatureSupport", "VendorKeys",
    "PKDefault", "KEKDefault", "dbDefault", "dbxDefault", "dbtDefault", "dbrDefault")}
    | {("VendorKeysNv", guids.VENDOR_KEYS_NV), ("certdb", guids.CERT_DB), ("certdbv", guids.CERT_DB)})
# EDK2's switches that only a physically present user changes (NeedPhysicallyPresent): with no such
# user, as on a platform whose UserPhysicalPresent() is FALSE, a guest's write is refused.
PHYSICAL_PRESENCE = frozenset({("SecureBootEnable", guids.SECURE_BOOT_ENABLE_DISABLE),
                               ("CustomMode", guids.CUSTOM_MODE_ENABLE)})
SECURE_BOOT_ENABLE = ("SecureBootEnable", guids.SECURE_BOOT_ENABLE_DISABLE)

# EDK2's mSignatureSupport, the SignatureSupport variable, in its order
SIGNATURE_SUPPORT = (guids.CERT_SHA1, guids.CERT_SHA256, guids.CERT_SHA384, guids.CERT_SHA512, guids.CERT_RSA2048,
                     guids.CERT_X509)
# EDK2's mSupportSigItem: the signature types a key database may hold and their data sizes (None:
# any size, an X.509 certificate); their SignatureHeaderSize is 0
SIGNATURE_TYPES = {guids.CERT_SHA256: 32, guids.CERT_RSA2048: 256, guids.CERT_RSA2048_SHA256: 256,
                   guids.CERT_SHA1: 20, guids.CERT_RSA2048_SHA1: 256, guids.CERT_X509: None, guids.CERT_SHA224: 28,
                   guids.CERT_SHA384: 48, guids.CERT_SHA512: 64, guids.CERT_X509_SHA256: 48,
                   guids.CERT_X509_SHA384: 64, guids.CERT_X509_SHA512: 80}
VENDOR_KEYS_VALID = 1  # VendorKeys without VendorKeysNv: the keys are the vendor's


# -- signature lists ---------------------------------------------------------------------------

class SignatureListError(ValueError):
    """Data that is not a sequence of well-formed EFI_SIGNATURE_LISTs."""


@dataclass(frozen=True)
class Signature:
    """An EFI_SIGNATURE_DATA: its owner and its data (a hash, a DER certificate...)."""

    owner: Guid
    data: bytes

    @property
    def raw(self) -> bytes:
        return self.owner.bytes_le + self.data


@dataclass(frozen=True)
class SignatureList:
    """An EFI_SIGNATURE_LIST: its type (guids.CERT_X509, guids.CERT_SHA256, ...), its header and its
    signatures."""

    type: Guid
    header: bytes
    signature_size: int
    signatures: tuple[Signature, ...]

    @property
    def type_name(self) -> str:
        return self.type.name

    def certificates(self) -> list[x509.Certificate]:
        """The list's certificates, for an X.509 list (DER that does not parse is left out)."""
        if self.type != guids.CERT_X509:
            return []
        from cryptography import x509

        out = []
        for signature in self.signatures:
            try:
                out.append(x509.load_der_x509_certificate(signature.data))
            except ValueError:
                continue
        return out


def signature_lists(data: bytes) -> list[SignatureList]:
    """``data`` as EFI_SIGNATURE_LISTs. Each must be whole: its header, its SignatureHeaderSize and
    a whole number of signatures of SignatureSize bytes (at least an owner GUID), as EDK2 walks them
    (GetSignatureListEntryCount); anything else raises SignatureListError."""
    data, offset, lists = bytes(data), 0, []
    header_size = layout.SignatureListHeader.sizeof()
    while offset < len(data):
        if len(data) - offset < header_size:
            raise SignatureListError(f"{len(data) - offset} bytes at offset {offset}: less than a list header")
        header = layout.SignatureListHeader.parse(data[offset:offset + header_size])
        size, extra, each = header.SignatureListSize, header.SignatureHeaderSize, header.SignatureSize
        if size > len(data) - offset or size < header_size + extra:
            raise SignatureListError(f"the list at offset {offset}: SignatureListSize {size} does not fit")
        if each < layout.SIGNATURE_OWNER or (size - header_size - extra) % each:
            raise SignatureListError(f"the list at offset {offset}: SignatureSize {each} does not divide its "
                                     f"{size - header_size - extra} bytes of signatures")
        start = offset + header_size + extra
        signatures = tuple(Signature(Guid.from_bytes(data[at:at + layout.SIGNATURE_OWNER]),
                                     data[at + layout.SIGNATURE_OWNER:at + each])
                           for at in range(start, offset + size, each))
        lists.append(SignatureList(Guid.from_bytes(header.SignatureType),
                                   data[offset + header_size:start], each, signatures))
        offset += size
    return lists


def build_signature_list(kind: Guid, header: bytes, signature_size: int, signatures) -> bytes:
    """An EFI_SIGNATURE_LIST of these signatures (for EDK2's filter of an append)."""
    entries = b"".join(s.raw for s in signatures)
    size = layout.SignatureListHeader.sizeof() + len(header) + len(entries)
    return layout.SignatureListHeader.build(dict(SignatureType=kind.bytes_le, SignatureListSize=size,
                                                 SignatureHeaderSize=len(header),
                                                 SignatureSize=signature_size)) + header + entries


def format_problem(name: str, guid: Guid, data: bytes) -> str | None:
    """Why ``data`` cannot be the value of key database ``name`` (EDK2's CheckSignatureListFormat):
    malformed lists, an unknown signature type, a signature of the wrong size, an X.509 entry with
    no RSA key, or more than one signature in PK. None when it can (or ``name`` is no key database)."""
    if KEY_DATABASES.get(name) != guid or not data:
        return None
    try:
        lists = signature_lists(data)
    except SignatureListError as e:
        return f"{name}: not EFI_SIGNATURE_LISTs ({e})"
    count = 0
    for index, item in enumerate(lists):
        if item.type not in SIGNATURE_TYPES:
            return f"{name}: list {index} has signature type {item.type}, which EDK2 does not take"
        size = SIGNATURE_TYPES[item.type]
        if size is not None and item.signature_size - layout.SIGNATURE_OWNER != size or item.header:
            return f"{name}: list {index} ({item.type_name}) has signatures of {item.signature_size} bytes or a header"
        if item.type == guids.CERT_X509 and item.signatures and item.signatures[0].data:
            from cryptography import x509
            from cryptography.hazmat.primitives.asymmetric import rsa

            try:
                key = x509.load_der_x509_certificate(item.signatures[0].data).public_key()
            except ValueError as e:
                return f"{name}: list {index}: not an X.509 certificate ({e})"
            if not isinstance(key, rsa.RSAPublicKey):
                return f"{name}: list {index}: the certificate has no RSA key (EDK2 takes RSA keys only)"
        count += len(item.signatures)
    if name == "PK" and count > 1:
        return f"PK: {count} signatures; PK holds one"
    return None


# -- the key databases ----------------------------------------------------------------------------

def database(store: VariableStore, name: str) -> list[SignatureList]:
    """Key database ``name`` (PK, KEK, db, dbx, dbt, dbr) as signature lists: [] when it does not
    exist. A malformed one raises SignatureListError."""
    variable = store.get(name, KEY_DATABASES[name])
    return signature_lists(variable.data) if variable is not None else []


def certificates(store: VariableStore, name: str) -> list[x509.Certificate]:
    """The X.509 certificates of key database ``name``, in its order."""
    return [c for item in database(store, name) for c in item.certificates()]


def signatures(store: VariableStore, name: str, kind: Guid) -> list[bytes]:
    """The data of the signatures of type ``kind`` (guids.CERT_SHA256, ...) in key database ``name``."""
    return [s.data for item in database(store, name) if item.type == kind for s in item.signatures]


def counts(store: VariableStore) -> dict:
    """How many signatures each key database that exists holds (None: malformed)."""
    out = {}
    for name, guid in KEY_DATABASES.items():
        if store.get(name, guid) is None:
            continue
        try:
            out[name] = sum(len(item.signatures) for item in database(store, name))
        except SignatureListError:
            out[name] = None
    return out


# -- the state ----------------------------------------------------------------------------------------

@dataclass
class SecureBootState:
    """The platform's Secure Boot state (UEFI 2.10 §32.3): SetupMode is 1 while there is no PK;
    SecureBoot is 1 in user mode unless disabled. AuditMode and DeployedMode are always 0."""

    setup_mode: bool
    secure_boot: bool = False  # the SecureBoot variable
    override: bool | None = None  # --secure-boot (True), --no-secure-boot (False), or None
    enrolled: bool = False  # the keys came from --enroll
    vendor_keys: int = VENDOR_KEYS_VALID
    audit_mode: bool = False
    deployed_mode: bool = False
    changes: list = field(default_factory=list)  # mode changes during the run: "user mode", "setup mode"

    @property
    def user_mode(self) -> bool:
        return not self.setup_mode

    @property
    def mode(self) -> str:
        return "setup" if self.setup_mode else "user"


def state(store: VariableStore) -> SecureBootState | None:
    return store.secure_boot


def setup(store: VariableStore, *, secure_boot: bool | None = None, enroll: str | None = None) -> SecureBootState:
    """Give ``store`` its Secure Boot state, as EDK2's AuthVariableLibInitialize does: enroll the
    ``enroll`` key set first, then user mode if PK exists, SecureBoot from SecureBootEnable (or
    ``secure_boot``, the override), and the firmware's variables. InputError for keys that cannot
    be enrolled, or --secure-boot with no PK."""
    if enroll is not None:
        enroll_keys(store, enroll)
    setup_mode = store.get("PK", GLOBAL_VARIABLE) is None
    if secure_boot and setup_mode:
        raise InputError("--secure-boot", "the store has no PK, so the platform is in setup mode and Secure Boot "
                                          "cannot be on: enroll keys, for example --enroll PK=pk.pem,KEK=kek.pem,"
                                          "db=db.pem")
    enable = store.get(*SECURE_BOOT_ENABLE)
    enabled = not enable or not enable.data or enable.data[0] == 1  # absent: EDK2 creates it on, in user mode
    vendor = store.get("VendorKeysNv", guids.VENDOR_KEYS_NV)
    result = SecureBootState(setup_mode, override=secure_boot, enrolled=enroll is not None,
                             vendor_keys=vendor.data[0] if vendor is not None and vendor.data else VENDOR_KEYS_VALID)
    result.secure_boot = result.user_mode and (enabled if secure_boot is None else secure_boot)
    store.secure_boot = result
    firmware_variable(store, "SetupMode", bytes([result.setup_mode]))
    firmware_variable(store, "SignatureSupport", b"".join(g.bytes_le for g in SIGNATURE_SUPPORT))
    firmware_variable(store, "SecureBoot", bytes([result.secure_boot]))
    firmware_variable(store, "AuditMode", bytes([result.audit_mode]))
    firmware_variable(store, "DeployedMode", bytes([result.deployed_mode]))
    firmware_variable(store, "VendorKeys", bytes([result.vendor_keys]))
    return result


def firmware_variable(store: VariableStore, name: str, data: bytes) -> None:
    """Set one of the firmware's BS+RT global variables (volatile: never saved)."""
    store.set(name, GLOBAL_VARIABLE, BS_RT, data)


def describe(store: VariableStore) -> dict | None:
    """The report's ``secure_boot``: the state at the end of the run."""
    result = store.secure_boot
    if result is None:
        return None
    return {"secure_boot": result.secure_boot, "setup_mode": result.setup_mode, "audit_mode": result.audit_mode,
            "deployed_mode": result.deployed_mode,
            "override": None if result.override is None else ("on" if result.override else "off"),
            "enrolled": result.enrolled, "keys": counts(store), "mode_changes": list(result.changes)}


def summary(entry: dict) -> str:
    """One line for the CLI's summary from the report's ``secure_boot``."""
    override = {"on": " (--secure-boot)", "off": " (--no-secure-boot)"}.get(entry["override"], "")
    keys = ", ".join(f"{name} {'malformed' if n is None else n}" for name, n in entry["keys"].items()) or "no keys"
    mode = "setup mode" if entry["setup_mode"] else "user mode"
    changes = f"; during the run: {', '.join(entry['mode_changes'])}" if entry["mode_changes"] else ""
    return f"{'on' if entry['secure_boot'] else 'off'}{override}, {mode}; {keys}{changes}"


# -- enrolling keys (--enroll) ---------------------------------------------------------------------------

PRESETS = {  # virt-fw-vars --enroll-microsoft / --enroll-redhat: PK, KEK, dbx, and Microsoft's db
    "microsoft": "enroll_platform_microsoft",
    "redhat": "enroll_platform_redhat",
}
SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
DISTRO = "distro:"


def key_set_items(text: str) -> list[tuple[str, str]]:
    """The items of an --enroll key set: ("preset", name) or (database, value)."""
    items = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            if part not in PRESETS:
                raise InputError("--enroll", f"{part!r} is neither NAME=VALUE nor a key set of virt-firmware "
                                             f"({', '.join(PRESETS)})")
            items.append(("preset", part))
            continue
        name, value = (s.strip() for s in part.split("=", 1))
        if name not in ENROLLED:
            raise InputError("--enroll", f"{name!r}: the key databases are {', '.join(ENROLLED)}")
        if not value:
            raise InputError("--enroll", f"{name}= names no file")
        items.append((name, value))
    if sum(1 for name, _ in items if name == "PK") > 1:
        raise InputError("--enroll", "more than one PK: the platform has one")
    if not any(name == "PK" or name == "preset" for name, _ in items):
        raise InputError("--enroll", "the key set has no PK: give PK=FILE (a certificate), or a key set of "
                                     f"virt-firmware ({', '.join(PRESETS)})")
    return items


def enroll_keys(store: VariableStore, text: str) -> None:
    """Replace the store's PK, KEK, db and dbx with the --enroll key set (those it leaves out are
    removed). The signature lists are virt-firmware's (what virt-fw-vars --set-pk, --add-kek,
    --add-db, --add-dbx-hash, --distro-keys, --enroll-microsoft and --enroll-redhat write), owned by
    OVMF's EnrollDefaultKeys GUID; InputError names a file that is missing or no certificate."""
    from virt.firmware.efi import certs as distributions

    from .varstore import virt_firmware

    items = key_set_items(text)
    owner = str(guids.OVMF_ENROLL_DEFAULT_KEYS)
    with virt_firmware(signature_databases=True):
        from virt.firmware.efi import efivar

        varlist = efivar.EfiVarList()
        for name, value in items:
            if name == "preset":
                getattr(varlist, PRESETS[value])()
                varlist.add_microsoft_keys()
            elif name == "db" and value.startswith(DISTRO):
                distro = value[len(DISTRO):]
                if distro not in distributions.DISTRO_CA:
                    raise InputError("--enroll", f"db={value}: virt-firmware's distributions are "
                                                 f"{', '.join(distributions.DISTRO_CA)}")
                varlist.add_distro_keys(distro)
            elif name == "dbx" and SHA256_HEX.fullmatch(value):
                varlist.add_hash("dbx", owner, value.lower())
            else:
                _add_certificate(varlist, name, owner, value)
    for name in ENROLLED:
        record = varlist.get(name)
        if record is None:
            if store.get(name, KEY_DATABASES[name]) is not None:
                store.delete(name, KEY_DATABASES[name])
            continue
        store.set(name, KEY_DATABASES[name], record.attr, bytes(record.data), record.time)


def _add_certificate(varlist, name: str, owner: str, path: str) -> None:
    if os.path.isdir(path):
        raise InputError(path, "is a folder, not a certificate")
    try:
        varlist.add_cert(name, owner, path, replace=name == "PK")
    except OSError as e:
        raise InputError(path, e.strerror or str(e)) from None
    except (ValueError, TypeError) as e:
        raise InputError(path, f"not an X.509 certificate (PEM or DER) for {name}: {e}") from None
