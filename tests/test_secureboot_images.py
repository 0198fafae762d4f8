"""Secure Boot's image verification (LoadImage with SecureBoot=1, as EDK2's DxeImageVerificationLib) and
shim 16.1 verifying GRUB against MokList and SBAT, GRUB verifying the kernel through SHIM_LOCK.

Every key is generated here (test_secureboot.Key: RSA 2048, written to the session's tmp folder, never to
the project). Images are copies of corpus files in tmp folders, signed with Debian's sbsign (sbsigntool);
unsigned ones are the corpus files themselves or tiny x86_64 guests built here. The stores are JSON
stores (virt-firmware's format) with the test's PK, KEK and db, and MokList, SbatLevel, dbx entries where
a test needs them.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from conftest import corpus_file
from efistub import guids, pehash, secureboot, varstore
from efistub.guids import IMAGE_SECURITY_DATABASE
from efistub.machine import Machine
from efistub.variables import BOOTSERVICE_ACCESS, NON_VOLATILE, VariableStore
from pe_builder import SECTION_ALIGN, code_image
from test_secureboot import OWNER, Key, esl
from test_varstore import GUESTS, LA, OVMF, offset_of

NV_BS = NON_VOLATILE | BOOTSERVICE_ACCESS  # shim's MokList and SbatLevel: no runtime access
SHIM = "x86_64/shimx64.efi"  # shim 16.1, Debian's shim-unsigned
GRUB = "x86_64/2.06-13+deb12u2_grubx64.efi"
KERNEL = "x86_64/vmlinuz-6.12.117+deb13-amd64"
INITRD = "initrd/initrd-busybox.cpio.gz"
SYSTEMD_BOOT = "x86_64/257.13-1~deb13u1_systemd-bootx64.efi"
HELLO = GUESTS / "x86_64" / "hello.efi"
CMDLINE = "console=ttyS0 rdinit=/init efistub-secureboot"


# -- keys, signed copies, stores ------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """PK, KEK, a db key, a MOK key and an unrelated one; a root CA in db's place for chains, an
    intermediate CA it issued and a leaf the intermediate issued."""
    folder = tmp_path_factory.mktemp("image-keys")
    out = {name: Key(folder, name) for name in ("PK", "KEK", "db", "mok", "other")}
    out["root"] = Key(folder, "root", ca=True)
    out["intermediate"] = Key(folder, "intermediate", issuer=out["root"], ca=True)
    out["leaf"] = Key(folder, "leaf", issuer=out["intermediate"])
    return out


def sbsign(key: Key, source: Path, target: Path, chain: tuple[Key, ...] = ()) -> Path:
    """``source`` signed by ``key`` with sbsign (an Authenticode WIN_CERT_TYPE_PKCS_SIGNED_DATA), the
    ``chain`` certificates added to the signature."""
    if shutil.which("sbsign") is None:
        pytest.skip("sbsign is missing: install Debian's sbsigntool")
    command = ["sbsign", "--key", str(key.key_file), "--cert", str(key.pem), "--output", str(target)]
    if chain:
        bundle = target.with_suffix(".chain.pem")
        bundle.write_bytes(b"".join(k.certificate.public_bytes(serialization.Encoding.PEM) for k in chain))
        command += ["--addcert", str(bundle)]
    subprocess.run(command + [str(source)], check=True, capture_output=True)
    return target


@pytest.fixture(scope="session")
def signed(tmp_path_factory, pki):
    """signed(source, key name, chain names) -> a signed copy, made once per session."""
    folder = tmp_path_factory.mktemp("signed")
    made = {}

    def sign(source: Path, key: str, chain: tuple[str, ...] = ()) -> Path:
        what = (str(source), key, chain)
        if what not in made:
            target = folder / f"{len(made)}-{key}-{Path(source).name}"
            made[what] = sbsign(pki[key], Path(source), target, tuple(pki[name] for name in chain))
        return made[what]

    return sign


def image_hash(path_or_bytes) -> bytes:
    """The PE image hash (SHA-256) a signature and a db entry cover."""
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    return pehash.image_hash(data, ["sha256"])["sha256"]


def make_store(path: Path, pki, db=("db",), db_hashes=(), dbx=(), dbx_hashes=(), dbx_tbs=(), mok=(),
               sbat: bytes | None = None) -> Path:
    """A JSON store in user mode: the test's PK and KEK, ``db`` certificates and SHA-256 image hashes, dbx
    certificates, image hashes and TBSCertificate hashes (EFI_CERT_X509_SHA256), MokList and SbatLevel."""
    store = VariableStore()
    items = [f"PK={pki['PK'].pem}", f"KEK={pki['KEK'].pem}"] + [f"db={pki[n].pem}" for n in db] + \
        [f"dbx={pki[n].pem}" for n in dbx] + [f"dbx={digest.hex()}" for digest in dbx_hashes]
    secureboot.enroll_keys(store, ",".join(items))
    if db_hashes:
        _append(store, "db", esl(hashes_=tuple(db_hashes)))
    if dbx_tbs:
        revoked = [secureboot.Signature(OWNER, hashlib.sha256(pki[n].certificate.tbs_certificate_bytes).digest()
                                        + bytes(16)) for n in dbx_tbs]  # then EFI_TIME 0: revoked for ever
        _append(store, "dbx", secureboot.build_signature_list(guids.CERT_X509_SHA256, b"", 16 + 32 + 16, revoked))
    if mok:
        store.set("MokList", guids.SHIM_LOCK, NV_BS, esl(*(pki[n].certificate for n in mok)))
    if sbat is not None:
        store.set("SbatLevel", guids.SHIM_LOCK, NV_BS, sbat)
    varstore.save(store, path)
    return path


def _append(store: VariableStore, name: str, lists: bytes) -> None:
    current = store.get(name, IMAGE_SECURITY_DATABASE)
    if current is None:
        store.set(name, IMAGE_SECURITY_DATABASE, secureboot.NV_BS_RT_AT, lists)
    else:
        store.set(name, IMAGE_SECURITY_DATABASE, current.attributes, current.data + lists, current.timestamp)


class LoadAndStart:
    """An x86_64 parent whose .data holds a child image: LoadImage(FALSE, itself, NULL, child, size, &handle),
    then StartImage(handle, NULL, NULL) whatever LoadImage gave; it returns StartImage's status."""

    HANDLE, CHILD = 0, 16  # offsets in .data

    def __init__(self, child: bytes):
        text, data = SECTION_ALIGN, 2 * SECTION_ALIGN  # the RVAs code_image gives .text and .data
        boot_services = offset_of(LA.SystemTable, "BootServices")
        code = bytearray(bytes.fromhex("534883ec40"))  # push rbx; sub rsp, 0x40
        code += bytes.fromhex("488b9a") + boot_services.to_bytes(4, "little")  # mov rbx, [rdx+BootServices]
        code += bytes.fromhex("4889ca31c94531c0")  # mov rdx, rcx; xor ecx, ecx; xor r8d, r8d

        def rip(prefix: str, target: int) -> bytes:  # an instruction with a RIP-relative 32-bit displacement
            end = text + len(code) + len(bytes.fromhex(prefix)) + 4
            return bytes.fromhex(prefix) + (data + target - end).to_bytes(4, "little", signed=True)

        code += rip("4c8d0d", self.CHILD)  # lea r9, [rip+child]
        code += bytes.fromhex("48c7442420") + len(child).to_bytes(4, "little")  # mov qword [rsp+0x20], size
        code += rip("488d05", self.HANDLE)  # lea rax, [rip+handle]
        code += bytes.fromhex("4889442428")  # mov [rsp+0x28], rax
        code += bytes.fromhex("ff93") + offset_of(LA.BootServices, "LoadImage").to_bytes(4, "little")
        code += rip("488b0d", self.HANDLE)  # mov rcx, [rip+handle]
        code += bytes.fromhex("31d24531c0")  # xor edx, edx; xor r8d, r8d
        code += bytes.fromhex("ff93") + offset_of(LA.BootServices, "StartImage").to_bytes(4, "little")
        code += bytes.fromhex("4883c4405bc3")  # add rsp, 0x40; pop rbx; ret
        self.image = code_image(bytes(code), data=bytes(self.CHILD) + child)

    def write(self, path: Path) -> Path:
        path.write_bytes(self.image)
        return path


def measured(saved: Path) -> list[dict]:
    """The images the firmware measured, from a --save-tpm file."""
    import json

    return [e for e in json.loads(saved.read_text())["events"] if e["type"] == "EV_EFI_BOOT_SERVICES_APPLICATION"]


def calls(report, *services) -> list[tuple[str, str | None]]:
    return [(c.service, c.status) for c in report.calls if c.service in services]


# -- LoadImage and the first image ------------------------------------------------------------------------------

@pytest.mark.parametrize("source", [KERNEL, "x86_64/vmlinuz-6.1.0-57-amd64"], ids=["6.12", "6.1"])
def test_a_kernel_signed_by_a_db_key_runs_to_its_handoff_and_the_report_says_why(corpus, tmp_path, pki, signed,
                                                                                 source):
    kernel = signed(corpus_file(corpus, source), "db")
    store = make_store(tmp_path / "vars.json", pki)
    report = Machine(str(kernel), vars=str(store), cmdline=CMDLINE, save_tpm=str(tmp_path / "tpm.json")).run()
    assert report.outcome == "handoff", report.fault or report.error
    verdict = report.images[0]["verification"]
    assert verdict["status"] == "EFI_SUCCESS" and verdict["allowed"] and verdict["signed"]
    assert verdict["sha256"] == image_hash(kernel).hex() == image_hash(corpus_file(corpus, source)).hex()
    (signature,) = verdict["signatures"]
    assert signature["certificate_type"] == "WIN_CERT_TYPE_PKCS_SIGNED_DATA"
    assert signature["digest_algorithm"] == "sha256"
    assert signature["signer"] == "CN=efistub test db" and signature["chain"] == ["CN=efistub test db"]
    decided = verdict["decided_by"]
    assert (decided["database"], decided["type"], decided["subject"]) == ("db", "EFI_CERT_X509_GUID",
                                                                           "CN=efistub test db")
    assert decided["owner"] == str(OWNER)
    # measured boot logs the same image hash
    assert [e["digests"]["sha256"] for e in measured(tmp_path / "tpm.json")] == [verdict["sha256"]]


@pytest.mark.parametrize("policy, status", [("defer", "EFI_SECURITY_VIOLATION"), ("deny", "EFI_ACCESS_DENIED")])
def test_an_unsigned_kernel_is_refused_and_never_started(corpus, tmp_path, pki, policy, status):
    store = make_store(tmp_path / "vars.json", pki)
    report = Machine(str(corpus_file(corpus, KERNEL)), vars=str(store), image_policy=policy,
                     save_tpm=str(tmp_path / "tpm.json")).run()
    assert (report.outcome, report.exit_status) == ("exit", status)
    image = report.images[0]
    assert not image["started"] and image["unloaded"] and report.calls == []
    verdict = image["verification"]
    assert verdict["status"] == status and not verdict["allowed"] and not verdict["signed"]
    assert verdict["reason"] == "not signed, and no hash of it is in db" and verdict["decided_by"] is None
    assert any(note.endswith(f"not started: Secure Boot refused it ({status}): not signed, and no hash of it is in "
                             f"db; sha256 {verdict['sha256']}") for note in report.notes), report.notes
    assert measured(tmp_path / "tpm.json") == []  # a refused image is not measured


def test_the_cli_says_why_it_refused_the_image(corpus, tmp_path, pki):
    store = make_store(tmp_path / "vars.json", pki)
    result = subprocess.run([sys.executable, "-m", "efistub", "run", str(HELLO), "--vars", str(store)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "exit status   EFI_SECURITY_VIOLATION" in result.stdout
    assert "Secure Boot refused it (EFI_SECURITY_VIOLATION): not signed, and no hash of it is in db" in result.stdout
    assert "Hello from efistub guest" not in result.stdout


def load_and_start(tmp_path, pki, child: bytes, policy: str = "defer", **store):
    """Run LoadAndStart with ``child``; the parent itself is allowed by its image hash in db."""
    parent = LoadAndStart(child).write(tmp_path / "parent.efi")
    path = make_store(tmp_path / "vars.json", pki, db_hashes=(image_hash(parent),) + tuple(store.pop("db_hashes", ())),
                      **store)
    return Machine(str(parent), vars=str(path), image_policy=policy).run()


def test_a_refused_child_stays_loaded_and_start_image_refuses_it(tmp_path, pki):
    """UEFI 2.10 §7.4: EFI_SECURITY_VIOLATION from LoadImage means the image was loaded, with a handle and a
    LOADED_IMAGE, and the platform policy says it must not be started; StartImage gives the same status, as
    EDK2's CoreStartImage gives its LoadImageStatus."""
    report = load_and_start(tmp_path, pki, HELLO.read_bytes())
    assert report.images[0]["verification"]["decided_by"]["type"] == "EFI_CERT_SHA256_GUID"  # the parent, by hash
    assert calls(report, "LoadImage", "StartImage") == [("LoadImage", "EFI_SECURITY_VIOLATION"),
                                                       ("StartImage", "EFI_SECURITY_VIOLATION")]
    assert report.exit_status == "EFI_SECURITY_VIOLATION"
    child = report.images[1]
    assert child["verification"]["status"] == "EFI_SECURITY_VIOLATION" and not child["started"]
    assert not child["unloaded"]  # the caller's to unload
    load = next(c for c in report.calls if c.service == "LoadImage")
    assert load.note.startswith("Secure Boot refused it (EFI_SECURITY_VIOLATION): not signed")
    assert "Hello from efistub guest" not in report.console


def test_with_the_deny_policy_a_refused_child_is_not_loaded(tmp_path, pki):
    """OVMF's policy (DENY_EXECUTE_ON_SECURITY_VIOLATION): EFI_ACCESS_DENIED, no image, a NULL handle."""
    report = load_and_start(tmp_path, pki, HELLO.read_bytes(), policy="deny")
    assert calls(report, "LoadImage", "StartImage") == [("LoadImage", "EFI_ACCESS_DENIED"),
                                                       ("StartImage", "EFI_INVALID_PARAMETER")]
    start = next(c for c in report.calls if c.service == "StartImage")
    assert start.args["ImageHandle"] == 0
    assert len(report.images) == 1


def test_a_child_signed_by_db_is_loaded_and_started(tmp_path, pki, signed):
    report = load_and_start(tmp_path, pki, signed(HELLO, "db").read_bytes())
    assert calls(report, "LoadImage", "StartImage") == [("LoadImage", "EFI_SUCCESS"), ("StartImage", "EFI_SUCCESS")]
    assert "Hello from efistub guest" in report.console
    assert report.images[1]["verification"]["decided_by"]["subject"] == "CN=efistub test db"


def test_an_unsigned_child_whose_hash_is_in_db_is_loaded(tmp_path, pki):
    report = load_and_start(tmp_path, pki, HELLO.read_bytes(), db_hashes=(image_hash(HELLO),))
    assert calls(report, "LoadImage", "StartImage") == [("LoadImage", "EFI_SUCCESS"), ("StartImage", "EFI_SUCCESS")]
    verdict = report.images[1]["verification"]
    assert verdict["reason"] == "not signed, and its sha256 hash is in db"
    assert verdict["decided_by"] == {"database": "db", "type": "EFI_CERT_SHA256_GUID", "owner": str(OWNER),
                                     "hash": image_hash(HELLO).hex()}


@pytest.mark.parametrize("case", ["signed-image-hash", "unsigned-image-hash", "signer-certificate",
                                  "signer-tbs-hash"])
def test_dbx_refuses_what_db_would_allow(tmp_path, pki, signed, case):
    """A dbx-listed image hash (of a signed image, or of an unsigned one whose hash db lists too), the signer's
    certificate in dbx, or the hash of its TBSCertificate (EFI_CERT_X509_SHA256) in dbx."""
    child, store = signed(HELLO, "db"), {}
    if case == "signed-image-hash":
        store = dict(dbx_hashes=(image_hash(child),))
    elif case == "unsigned-image-hash":
        child, store = HELLO, dict(db_hashes=(image_hash(HELLO),), dbx_hashes=(image_hash(HELLO),))
    elif case == "signer-certificate":
        store = dict(dbx=("db",))
    else:
        store = dict(dbx_tbs=("db",))
    report = load_and_start(tmp_path, pki, child.read_bytes(), **store)
    assert calls(report, "LoadImage")[0] == ("LoadImage", "EFI_SECURITY_VIOLATION")
    verdict = report.images[1]["verification"]
    decided = verdict["decided_by"]
    assert not verdict["allowed"] and decided["database"] == "dbx"
    expected = {"signed-image-hash": ("EFI_CERT_SHA256_GUID", "signed, but its sha256 hash is in dbx"),
                "unsigned-image-hash": ("EFI_CERT_SHA256_GUID", "not signed, and its sha256 hash is in dbx"),
                "signer-certificate": ("EFI_CERT_X509_GUID", "its signature verifies against dbx's "
                                                             "EFI_CERT_X509_GUID CN=efistub test db"),
                "signer-tbs-hash": ("EFI_CERT_X509_SHA256_GUID", "the certificate CN=efistub test db of its "
                                                                 "signature is revoked by dbx's")}[case]
    assert decided["type"] == expected[0] and verdict["reason"].startswith(expected[1]), verdict["reason"]
    if case.endswith("image-hash"):
        assert decided["hash"] == image_hash(child).hex()


def test_a_signer_that_chains_to_db_through_an_intermediate_is_allowed(tmp_path, pki, signed):
    """db holds only the root CA; the leaf's signature carries the intermediate that links them."""
    child = signed(HELLO, "leaf", ("intermediate",))
    report = load_and_start(tmp_path, pki, child.read_bytes(), db=("root",))
    assert calls(report, "LoadImage", "StartImage") == [("LoadImage", "EFI_SUCCESS"), ("StartImage", "EFI_SUCCESS")]
    verdict = report.images[1]["verification"]
    assert verdict["decided_by"]["subject"] == "CN=efistub test root"
    assert verdict["signatures"][0]["signer"] == "CN=efistub test leaf"
    assert verdict["signatures"][0]["chain"] == ["CN=efistub test leaf", "CN=efistub test intermediate"]


def test_without_the_intermediate_the_leaf_does_not_chain_to_db(tmp_path, pki, signed):
    report = load_and_start(tmp_path, pki, signed(HELLO, "leaf").read_bytes(), db=("root",))
    assert calls(report, "LoadImage")[0] == ("LoadImage", "EFI_SECURITY_VIOLATION")
    assert report.images[1]["verification"]["reason"] == ("signed by CN=efistub test leaf, which no certificate in "
                                                          "db verifies, and no hash of it is in db")


def test_a_certificate_table_that_does_not_add_up_refuses_the_image(tmp_path, pki, signed):
    """A signed image with a byte added after its certificate table, counted in the table's Size: the last
    WIN_CERTIFICATE no longer ends where the table does (EDK2 refuses it even though db allows the signer)."""
    import pefile

    data = bytearray(signed(HELLO, "db").read_bytes())
    security = pefile.PE(data=bytes(data), fast_load=True).OPTIONAL_HEADER.DATA_DIRECTORY[4]
    at = security.get_file_offset() + 4  # IMAGE_DATA_DIRECTORY.Size
    data[at:at + 4] = (security.Size + 8).to_bytes(4, "little")
    report = load_and_start(tmp_path, pki, bytes(data) + bytes(8))
    verdict = report.images[1]["verification"]
    assert not verdict["allowed"] and "does not end where its last certificate does" in verdict["reason"]


@pytest.mark.parametrize("policy", ["defer", "deny"])
def test_the_boot_manager_skips_a_boot_option_it_refuses(tmp_path, pki, signed, policy):
    """Boot0001 names an unsigned image: the boot manager notes the refusal and goes on, as EDK2's does, to
    Boot0002 (signed by db), which runs."""
    from efistub import device_path
    from test_boot import load_option

    esp = tmp_path / "esp"
    (esp / "EFI" / "BOOT").mkdir(parents=True)
    shutil.copy(signed(HELLO, "db"), esp / "EFI" / "BOOT" / "BOOTX64.EFI")
    shutil.copy(HELLO, esp / "unsigned.efi")
    shutil.copy(signed(HELLO, "db"), esp / "signed.efi")
    store = make_store(tmp_path / "vars.json", pki)
    machine = Machine(str(esp / "EFI" / "BOOT" / "BOOTX64.EFI"), esp=str(esp), boot_path="\\EFI\\BOOT\\BOOTX64.EFI",
                      vars=str(store), image_policy=policy)
    for number, name in ((1, "unsigned"), (2, "signed")):
        machine.variables.set(f"Boot000{number}", guids.GLOBAL_VARIABLE,
                              data=load_option(name, [device_path.file_path(f"\\{name}.efi")]))
    machine.variables.set("BootOrder", guids.GLOBAL_VARIABLE, data=bytes([1, 0, 2, 0]))
    report = machine.run()
    assert report.exit_status == "EFI_SUCCESS" and "Hello from efistub guest" in report.console
    status = {"defer": "EFI_SECURITY_VIOLATION", "deny": "EFI_ACCESS_DENIED"}[policy]
    how = "not started" if policy == "defer" else "not loaded"
    assert any(n.startswith(f"Boot0001 (unsigned): {how}: Secure Boot refused it ({status}): not signed")
               for n in report.notes), report.notes
    assert "Boot0002 (signed) returned EFI_SUCCESS" in report.notes
    started = [(i["source"], i["started"]) for i in report.images]
    expected = [("\\EFI\\BOOT\\BOOTX64.EFI", False)] + ([("\\unsigned.efi", False)] if policy == "defer" else []) + \
        [("\\signed.efi", True)]
    assert started == expected


def test_systemd_boot_signed_by_db_loads_a_kernel_signed_by_db_and_unloads_an_unsigned_one(corpus, tmp_path, pki,
                                                                                          signed):
    """The kernel comes through systemd-boot's LoadImage from the ESP: signed by db, it runs to its hand-off; the
    corpus kernel itself (unsigned) gets EFI_SECURITY_VIOLATION, which systemd-boot reports and unloads."""
    results = {}
    for kernel in ("signed", "unsigned"):
        esp = tmp_path / kernel / "esp"
        (esp / "EFI" / "BOOT").mkdir(parents=True)
        (esp / "loader" / "entries").mkdir(parents=True)
        shutil.copy(signed(corpus_file(corpus, SYSTEMD_BOOT), "db"), esp / "EFI" / "BOOT" / "BOOTX64.EFI")
        source = signed(corpus_file(corpus, KERNEL), "db") if kernel == "signed" else corpus_file(corpus, KERNEL)
        shutil.copy(source, esp / "vmlinuz")
        shutil.copy(corpus_file(corpus, INITRD), esp / "initrd.img")
        (esp / "loader" / "loader.conf").write_text("timeout 0\ndefault efistub.conf\n")
        (esp / "loader" / "entries" / "efistub.conf").write_text(
            f"title efistub\nlinux /vmlinuz\ninitrd /initrd.img\noptions {CMDLINE}\n")
        store = make_store(tmp_path / kernel / "vars.json", pki)
        results[kernel] = Machine(str(esp / "EFI" / "BOOT" / "BOOTX64.EFI"), esp=str(esp),
                                  boot_path="\\EFI\\BOOT\\BOOTX64.EFI", vars=str(store)).run()
    good, bad = results["signed"], results["unsigned"]
    assert good.outcome == "handoff", good.fault or good.error or good.console[-2000:]
    assert [i["verification"]["status"] for i in good.images] == ["EFI_SUCCESS", "EFI_SUCCESS"]
    assert "EFI stub: UEFI Secure Boot is enabled." in good.console
    assert calls(bad, "LoadImage", "UnloadImage") == [("LoadImage", "EFI_SECURITY_VIOLATION"),
                                                      ("UnloadImage", "EFI_SUCCESS")]
    assert "Error loading \\vmlinuz: Security violation" in bad.console
    assert bad.images[1]["unloaded"] and not bad.images[1]["started"]


def test_grub_signed_by_db_is_started(corpus, tmp_path, pki, signed):
    """GRUB as the first image, signed by the test's db key: verified and started. Without shim, GRUB in Secure
    Boot mode (lockdown) reads no grub.cfg, and waits at its prompt."""
    esp = tmp_path / "esp"
    (esp / "EFI" / "BOOT").mkdir(parents=True)
    shutil.copy(signed(corpus_file(corpus, GRUB), "db"), esp / "EFI" / "BOOT" / "BOOTX64.EFI")
    store = make_store(tmp_path / "vars.json", pki)
    report = Machine(str(esp / "EFI" / "BOOT" / "BOOTX64.EFI"), esp=str(esp), boot_path="\\EFI\\BOOT\\BOOTX64.EFI",
                     vars=str(store), timeout=60).run()
    assert report.images[0]["verification"]["allowed"] and report.images[0]["started"]
    assert "Welcome to GRUB!" in report.console and report.outcome == "stalled"


MICROSOFT_STORE = OVMF / "OVMF_VARS_4M.ms.fd"


def test_debians_shim_is_unsigned_and_refused_with_microsofts_keys_as_ovmf_refuses_it(corpus, tmp_path):
    """The corpus shimx64.efi is Debian's shim-unsigned 16.1 (MANIFEST.md): it has no certificate table, so
    Microsoft's UEFI CA in db cannot allow it. efistub refuses it; with OVMF's policy (deny) the status is OVMF's
    own, EFI_ACCESS_DENIED, which OVMF's boot manager prints on the serial console."""
    if not MICROSOFT_STORE.exists():
        pytest.skip(f"{MICROSOFT_STORE} is missing: install Debian's ovmf package")
    shim = corpus_file(corpus, SHIM)
    if shutil.which("sbverify"):
        listed = subprocess.run(["sbverify", "--list", str(shim)], capture_output=True, text=True)
        assert "No signature table present" in listed.stdout + listed.stderr
    store = tmp_path / "vars.fd"
    shutil.copy(MICROSOFT_STORE, store)
    statuses = {}
    for policy in ("defer", "deny"):
        report = Machine(str(shim), vars=str(store), image_policy=policy).run()
        verdict = report.images[0]["verification"]
        assert not verdict["signed"] and verdict["reason"] == "not signed, and no hash of it is in db"
        assert report.outcome == "exit" and not report.images[0]["started"]
        statuses[policy] = report.exit_status
    assert statuses == {"defer": "EFI_SECURITY_VIOLATION", "deny": "EFI_ACCESS_DENIED"}

    qemu, code = shutil.which("qemu-system-x86_64"), OVMF / "OVMF_CODE_4M.ms.fd"
    if qemu is None or not code.exists():
        pytest.skip("qemu-system-x86_64 (qemu-system-x86) or OVMF_CODE_4M.ms.fd (ovmf) is missing: OVMF not checked")
    esp = tmp_path / "esp"
    (esp / "EFI" / "BOOT").mkdir(parents=True)
    shutil.copy(shim, esp / "EFI" / "BOOT" / "BOOTX64.EFI")
    serial = tmp_path / "serial.log"
    command = [qemu, "-machine", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on", "-m", "256",
               "-display", "none", "-net", "none", "-serial", f"file:{serial}",
               "-drive", f"if=pflash,format=raw,unit=0,file={code},readonly=on",
               "-drive", f"if=pflash,format=raw,unit=1,file={store}",
               "-drive", f"file=fat:rw:{esp},format=raw,media=disk"]
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as vm:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and vm.poll() is None:
            if serial.exists() and b"No bootable option" in serial.read_bytes():
                break
            time.sleep(0.5)
        vm.terminate()
    console = serial.read_bytes().decode("utf-8", errors="replace")
    refused = [line for line in console.splitlines() if "failed to load Boot" in line and "HARDDISK" in line]
    assert refused and refused[0].rstrip("\r").endswith(": Access Denied"), console[-3000:]


# -- shim: MokList, SHIM_LOCK, SBAT ------------------------------------------------------------------------------

def shim_esp(corpus, signed, folder: Path, shim_key: str | None = "db", grub_key: str = "mok",
             kernel_key: str = "mok", loader: str = "linux") -> Path:
    """An ESP with shim as BOOTX64.EFI (signed by ``shim_key``, or the unsigned corpus file), GRUB beside it as
    grubx64.efi and the kernel, each signed by its key, and a grub.cfg that boots the kernel with ``loader``
    (linux, or Debian's linuxefi)."""
    boot = folder / "EFI" / "BOOT"
    boot.mkdir(parents=True)
    shim = corpus_file(corpus, SHIM)
    shutil.copy(signed(shim, shim_key) if shim_key else shim, boot / "BOOTX64.EFI")
    shutil.copy(signed(corpus_file(corpus, GRUB), grub_key), boot / "grubx64.efi")
    shutil.copy(signed(corpus_file(corpus, KERNEL), kernel_key), folder / "vmlinuz")
    shutil.copy(corpus_file(corpus, INITRD), folder / "initrd.img")
    initrd = "initrdefi" if loader == "linuxefi" else "initrd"
    (boot / "grub.cfg").write_text(f"set timeout=0\nmenuentry efistub {{\n  {loader} /vmlinuz {CMDLINE}\n"
                                   f"  {initrd} /initrd.img\n}}\n")
    return folder


def run_shim(esp: Path, store: Path, **options):
    machine = Machine(str(esp / "EFI" / "BOOT" / "BOOTX64.EFI"), esp=str(esp), boot_path="\\EFI\\BOOT\\BOOTX64.EFI",
                      vars=str(store), timeout=120, **options)
    return machine, machine.run()


def test_shim_verifies_grub_by_moklist_and_grub_verifies_the_kernel_through_shim_lock(corpus, tmp_path, pki, signed):
    """shim (signed by the test's db key) reads MokList from the store, verifies GRUB (signed by the MOK key) and
    starts it; GRUB verifies the kernel (signed by the MOK key too) with SHIM_LOCK.Verify, twice (its shim_lock
    verifier, then its linuxefi loader), and hands it over through the EFI handover entry."""
    esp = shim_esp(corpus, signed, tmp_path / "esp")
    store = make_store(tmp_path / "vars.json", pki, mok=("mok",))
    machine, report = run_shim(esp, store)
    assert report.outcome == "handoff", report.fault or report.timeout or report.stalled or report.console[-2000:]
    assert report.handoff["boot_params"]["cmdline"] == f"BOOT_IMAGE=/vmlinuz {CMDLINE}"
    assert report.images[0]["verification"]["decided_by"]["subject"] == "CN=efistub test db"
    assert len(report.images) == 1  # shim loads GRUB with its own loader, not LoadImage
    assert "Verification failed" not in report.console and "Welcome to GRUB!" in report.console
    assert "EFI stub: UEFI Secure Boot is enabled." in report.console
    kernel = (esp / "vmlinuz").read_bytes()
    verified = report.shim["verify"]
    assert [v["status"] for v in verified] == ["EFI_SUCCESS", "EFI_SUCCESS"]
    assert {(v["size"], v["sha256"], v["authenticode_sha256"]) for v in verified} == {
        (len(kernel), hashlib.sha256(kernel).hexdigest(), image_hash(kernel).hex())}
    assert report.shim["installed"][0]["verify"] != 0
    # shim mirrors MokList (with its vendor certificate first) into the volatile MokListRT
    mirrored = machine.variables.get("MokListRT", guids.SHIM_LOCK)
    assert mirrored is not None and mirrored.attributes & NON_VOLATILE == 0
    assert pki["mok"].certificate.public_bytes(serialization.Encoding.DER) in mirrored.data
    # and sets SbatLevel, whose generations GRUB's .sbat passes
    level = machine.variables.get("SbatLevel", guids.SHIM_LOCK)
    assert level.data.startswith(b"sbat,1,") and b"grub," in level.data


def test_shim_refuses_grub_signed_by_a_key_that_is_not_in_moklist(corpus, tmp_path, pki, signed):
    """GRUB signed by a key neither in db nor in MokList: shim says so in a dialog (Enter closes it), does not start
    it, looks for MokManager (not there) and gives up. shim itself is unsigned here: db allows it by its image
    hash."""
    esp = shim_esp(corpus, signed, tmp_path / "esp", shim_key=None, grub_key="other")
    store = make_store(tmp_path / "vars.json", pki, db_hashes=(image_hash(corpus_file(corpus, SHIM)),), mok=("mok",))
    _, report = run_shim(esp, store, keys="\r")
    assert report.images[0]["verification"]["reason"] == "not signed, and its sha256 hash is in db"
    assert_shim_refused_grub(report)


def assert_shim_refused_grub(report):
    assert "Verification failed: (0x1A) Security Violation" in report.console, report.console[-2000:]
    assert "Failed to load image: Security Policy Violation" in report.console
    assert "Welcome to GRUB!" not in report.console and report.shim["verify"] == []
    assert "start_image() returned Not Found" in report.console  # MokManager, shim's next try, is not there
    assert (report.outcome, report.exit_status) == ("exit", "EFI_NOT_FOUND")


def test_an_sbat_revocation_of_grubs_generation_makes_shim_refuse_it(corpus, tmp_path, pki, signed):
    """SbatLevel (NV, BS, later than shim's own, so shim keeps it) revokes grub generation 5, the one GRUB's .sbat
    says it is: shim refuses GRUB although MokList allows its signer."""
    from efistub.loader import read_image

    assert "\ngrub,5," in read_image(str(corpus_file(corpus, GRUB))).sbat
    level = b"sbat,1,2099010100\nshim,4\ngrub,6\n"
    esp = shim_esp(corpus, signed, tmp_path / "esp")
    store = make_store(tmp_path / "vars.json", pki, mok=("mok",), sbat=level)
    machine, report = run_shim(esp, store, keys="\r")
    assert_shim_refused_grub(report)
    assert machine.variables.get("SbatLevel", guids.SHIM_LOCK).data == level
