"""What the Secure Boot tests share (tests/test_secureboot.py, tests/test_secureboot_images.py): the keys the
session generates, their signature lists, stores in user mode with them enrolled, and OVMF with Secure Boot
support (SMM) booted in QEMU.

Every key is generated here (cryptography: RSA 2048, one ECDSA P-256), written to the session's tmp folder,
never to the project; tests/conftest.py's ``keys`` fixture is the session's Keys.
"""

from __future__ import annotations

import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from efistub import guids, secureboot, varstore
from efistub.variables import VariableStore

OWNER = guids.OVMF_ENROLL_DEFAULT_KEYS  # the owner of the test's signatures: the one --enroll gives (an append
# compares whole EFI_SIGNATURE_DATA, owners included)
EPOCH = datetime(2020, 1, 1, tzinfo=timezone.utc)  # the test certificates' notBefore: enrolled keys' timestamp
# The keys that are not plain RSA leaves signed by themselves: name -> Key's keywords (issuer by name).
KEY_FORMS = {
    "kek-ca": dict(ca=True),  # a CA in KEK, with a leaf it issued
    "kek-leaf": dict(issuer="kek-ca"),
    "ec": dict(curve=True),
    "root": dict(ca=True),  # a root CA in db's place for chains, an intermediate CA it issued, a leaf of that
    "intermediate": dict(issuer="root", ca=True),
    "leaf": dict(issuer="intermediate"),
}
OVMF_SERIAL_POLL = 0.2  # seconds between looks at OVMF's serial log


class Key:
    """A key and its certificate, written to FOLDER/NAME.key and NAME.pem."""

    def __init__(self, folder: Path, name: str, issuer: "Key | None" = None, ca: bool = False, curve: bool = False):
        self.name = name
        self.key = ec.generate_private_key(ec.SECP256R1()) if curve else rsa.generate_private_key(65537, 2048)
        subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, f"efistub test {name}")])
        builder = (x509.CertificateBuilder().subject_name(subject)
                   .issuer_name(issuer.certificate.subject if issuer else subject)
                   .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(EPOCH).not_valid_after(EPOCH + timedelta(days=365 * 30))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ca:
            builder = builder.add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                                            critical=True)
        self.certificate = builder.sign(issuer.key if issuer else self.key, hashes.SHA256())
        self.pem = folder / f"{name}.pem"
        self.pem.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        self.key_file = folder / f"{name}.key"
        self.key_file.write_bytes(self.key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.TraditionalOpenSSL,
                                                         serialization.NoEncryption()))


class Keys(dict):
    """The session's keys by name, each generated when a test first asks for it (KEY_FORMS; any other name
    is an RSA key of its own): PK, KEK, db, mok, other, vendor, intruder, ..."""

    def __init__(self, folder: Path):
        super().__init__()
        self.folder = folder

    def __missing__(self, name: str) -> Key:
        form = dict(KEY_FORMS.get(name, {}))
        if "issuer" in form:
            form["issuer"] = self[form["issuer"]]
        self[name] = key = Key(self.folder, name, **form)
        return key


def esl(*certificates: x509.Certificate, hashes_: tuple[bytes, ...] = ()) -> bytes:
    """EFI_SIGNATURE_LISTs of these certificates and SHA-256 hashes, as virt-firmware builds them."""
    from virt.firmware.efi import guids as vguids
    from virt.firmware.efi import siglist

    db = siglist.EfiSigDB()
    for certificate in certificates:
        db.add_cert_data(vguids.parse_str(str(OWNER)), certificate.public_bytes(serialization.Encoding.PEM))
    for digest in hashes_:
        db.add_hash(vguids.parse_str(str(OWNER)), digest)
    return bytes(db)


def enroll(store: VariableStore, keys, kek=("KEK",), db=("db",), dbx=(), dbx_hashes=()) -> VariableStore:
    """``store`` with the test's PK, the ``kek``, ``db`` and ``dbx`` keys' certificates and the ``dbx_hashes``
    (SHA-256 image hashes) enrolled, as --enroll enrolls them: in user mode."""
    items = [f"PK={keys['PK'].pem}"] + [f"KEK={keys[n].pem}" for n in kek] + [f"db={keys[n].pem}" for n in db] \
        + [f"dbx={keys[n].pem}" for n in dbx] + [f"dbx={digest.hex()}" for digest in dbx_hashes]
    secureboot.enroll_keys(store, ",".join(items))
    return store


def enrolled_store(path: Path, keys, **enrolled) -> Path:
    """A JSON store at ``path`` with the test's keys enrolled (``enroll``'s keywords)."""
    varstore.save(enroll(VariableStore(), keys, **enrolled), path)
    return path


def ovmf_secure_boot(qemu: str, code: Path, store: Path, esp: Path, serial: Path, until: bytes, timeout: float,
                     settle: float = 0.0) -> str:
    """OVMF (``code``, with Secure Boot support: SMM) booted in QEMU on the flash store ``store`` with ``esp`` as
    its disk, until its serial console (the file ``serial``) shows ``until`` or ``timeout`` seconds pass; then
    ``settle`` seconds more (for variables written after the line), and QEMU ends. The console."""
    command = [qemu, "-machine", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on", "-m", "256",
               "-display", "none", "-net", "none", "-serial", f"file:{serial}",
               "-drive", f"if=pflash,format=raw,unit=0,file={code},readonly=on",
               "-drive", f"if=pflash,format=raw,unit=1,file={store}",
               "-drive", f"file=fat:rw:{esp},format=raw,media=disk"]
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as vm:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and vm.poll() is None:
            if serial.exists() and until in serial.read_bytes():
                break
            time.sleep(OVMF_SERIAL_POLL)
        time.sleep(settle)
        vm.terminate()
    return serial.read_bytes().decode("utf-8", errors="replace") if serial.exists() else ""
