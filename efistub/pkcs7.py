"""PKCS#7 SignedData over detached content, checked as EDK2's BaseCryptLib checks it for
authenticated variables (CryptoPkg Pkcs7Verify, Pkcs7GetSigners on OpenSSL).

    signed = SignedData(der)               # Pkcs7Error unless it is SignedData
    signed.verify(content, trusted)        # True: every signer chains to ``trusted``
    signature = Authenticode(der)          # a PE image's signature (EDK2's AuthenticodeVerify)
    signature.verify_image(digest, trusted)

The DER is parsed with asn1crypto (the parser signify and certvalidator use), signatures and
certificate issuance are checked with cryptography; nothing here decodes ASN.1 by hand.
What OpenSSL does with EDK2's settings, this does:

- the DER is a ContentInfo holding SignedData, or a bare SignedData (what UEFI 2.10 §8.2.2
  describes, and what sbvarsign writes): EDK2 wraps the latter (WrapPkcs7Data);
- every signer's certificate is in the SignedData's certificates; its signature is over the
  content, or over its signed attributes, whose messageDigest is the content's digest;
- each signer chains through the SignedData's certificates to the trusted certificate, which
  may be the signer itself or any certificate of the chain (X509_V_FLAG_PARTIAL_CHAIN); an
  issuer must be allowed to issue (basicConstraints CA, keyCertSign, the path length);
- validity dates are not checked (X509_V_FLAG_NO_CHECK_TIME), and no key usage or purpose is
  required (X509_PURPOSE_ANY).

An Authenticode signature (Microsoft's "Windows Authenticode Portable Executable Signature
Format") is such a SignedData in a ContentInfo whose content is an SpcIndirectDataContent (signify's
definition, which registers it with asn1crypto): its messageDigest is the PE image hash, and the
signature covers the content's DER value, without its tag and length.
"""

from __future__ import annotations

from dataclasses import dataclass

from asn1crypto import cms
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from signify.asn1 import spc  # registers SpcIndirectDataContent with asn1crypto's ContentInfo

DIGESTS = {"sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}
MAX_CHAIN = 32  # certificates between a signer and its trust anchor (OpenSSL's default depth is 100)
ASN1_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError)  # what asn1crypto raises on bad DER


class Pkcs7Error(ValueError):
    """The DER is not a PKCS#7 SignedData that can be checked."""


@dataclass(frozen=True)
class Signer:
    certificate: x509.Certificate
    info: cms.SignerInfo


class SignedData:
    """A DER PKCS#7 SignedData, or a ContentInfo that holds one."""

    def __init__(self, der: bytes):
        self.asn1 = _signed_data(bytes(der))
        try:
            self.digest_algorithms = [a["algorithm"].native for a in self.asn1["digest_algorithms"]]
            self._asn1_certificates = [c.chosen for c in self.asn1["certificates"] if c.name == "certificate"]
            self.certificates = [x509.load_der_x509_certificate(c.dump()) for c in self._asn1_certificates]
            infos = list(self.asn1["signer_infos"])
            self.signers = [Signer(self._certificate_of(info), info) for info in infos]
        except Pkcs7Error:
            raise
        except ASN1_ERRORS as e:
            raise Pkcs7Error(f"malformed SignedData: {e}") from None
        if not self.signers:
            raise Pkcs7Error("SignedData without a signer")

    @property
    def digest_algorithm(self) -> str | None:
        """SignedData.digestAlgorithms' first algorithm ("sha256", ...), as EDK2 reads it."""
        return self.digest_algorithms[0] if self.digest_algorithms else None

    def _certificate_of(self, info: cms.SignerInfo) -> x509.Certificate:
        """The signer's certificate among the SignedData's (PKCS7_get0_signers)."""
        sid = info["sid"]
        for ours, certificate in zip(self._asn1_certificates, self.certificates):
            if sid.name == "issuer_and_serial_number":
                if ours.serial_number == sid.chosen["serial_number"].native and \
                        ours.issuer == sid.chosen["issuer"]:  # asn1crypto compares names as RFC 5280 says
                    return certificate
            elif ours.key_identifier == sid.chosen.native:
                return certificate
        raise Pkcs7Error("the signer's certificate is not in the SignedData")

    def verify(self, content: bytes, trusted: x509.Certificate) -> bool:
        """Whether every signer signed ``content`` and chains to ``trusted`` (EDK2's Pkcs7Verify)."""
        return all(_signed_by(signer, content) and chains_to(signer.certificate, trusted, self.certificates)
                   for signer in self.signers)


class Authenticode(SignedData):
    """An Authenticode signature: a ContentInfo with SignedData over an SpcIndirectDataContent, as
    EDK2's AuthenticodeVerify takes it (d2i_PKCS7: a ContentInfo; bytes after it are ignored)."""

    def __init__(self, der: bytes):
        der = bytes(der)
        try:
            info = cms.ContentInfo.load(der)
            der = der[:len(info.dump())]  # a WIN_CERTIFICATE may pad its CertData
        except ASN1_ERRORS as e:
            raise Pkcs7Error(f"not a DER PKCS#7 ContentInfo ({e})") from None
        super().__init__(der)
        try:
            encapsulated = self.asn1["encap_content_info"]
            kind = encapsulated["content_type"].native
            if kind != SPC_INDIRECT_DATA:
                raise Pkcs7Error(f"its content is {kind}, not Authenticode's SpcIndirectDataContent")
            content = encapsulated["content"]
            if not isinstance(content, spc.SpcIndirectDataContent):
                raise Pkcs7Error("no SpcIndirectDataContent")
            digest = content["message_digest"]
            self.image_digest_algorithm: str = digest["digest_algorithm"]["algorithm"].native
            self.image_digest: bytes = digest["digest"].native
            self.content: bytes = content.contents  # what the signature covers: the value, no tag or length
        except Pkcs7Error:
            raise
        except ASN1_ERRORS as e:
            raise Pkcs7Error(f"malformed SpcIndirectDataContent: {e}") from None

    def verify_image(self, image_digest: bytes, trusted: x509.Certificate) -> bool:
        """Whether the signature is over ``image_digest`` (the PE image hash with the signature's
        digest algorithm) and every signer chains to ``trusted`` (EDK2's AuthenticodeVerify)."""
        return self.image_digest == image_digest and self.verify(self.content, trusted)

    def chain(self) -> list[x509.Certificate]:
        """The first signer's certificate and its issuers among the SignedData's certificates, as far
        as they go (EDK2's Pkcs7GetSigners: the certificates whose hashes dbx may hold)."""
        out = [self.signers[0].certificate]
        while len(out) <= MAX_CHAIN:
            issuer = next((c for c in self.certificates if c not in out and _issued(out[-1], c)), None)
            if issuer is None:
                break
            out.append(issuer)
        return out


SPC_INDIRECT_DATA = "microsoft_spc_indirect_data_content"  # 1.3.6.1.4.1.311.2.1.4, as signify names it


def _signed_data(der: bytes) -> cms.SignedData:
    try:
        info = cms.ContentInfo.load(der, strict=True)
        kind = info["content_type"].native
    except ASN1_ERRORS:
        info = None
    if info is not None:
        if kind != "signed_data":
            raise Pkcs7Error(f"a PKCS#7 {kind}, not SignedData")
        return info["content"]
    try:
        signed = cms.SignedData.load(der, strict=True)
        signed["version"].native  # parses the outer fields: a bad tag raises here
        return signed
    except ASN1_ERRORS as e:
        raise Pkcs7Error(f"not a DER PKCS#7 SignedData ({e})") from None


def _signed_by(signer: Signer, content: bytes) -> bool:
    """Whether the signer info's signature over ``content`` (or over its signed attributes, which
    carry the content's digest) is the signer certificate's key's."""
    info = signer.info
    try:
        algorithm = DIGESTS[info["digest_algorithm"]["algorithm"].native]
        digest = hashes.Hash(algorithm())
        digest.update(content)
        attributes = info["signed_attrs"]
        if len(attributes):
            values = {a["type"].native: a["values"] for a in attributes}
            if "message_digest" not in values or len(values["message_digest"]) != 1 or \
                    values["message_digest"][0].native != digest.finalize():
                return False
            signed = cms.CMSAttributes(contents=attributes.contents).dump()  # as a SET OF (RFC 5652 §5.4)
        else:
            signed = content
        signature = info["signature"].native
        scheme = info["signature_algorithm"].signature_algo
        key = signer.certificate.public_key()
        if isinstance(key, rsa.RSAPublicKey) and scheme == "rsassa_pkcs1v15":
            key.verify(signature, signed, padding.PKCS1v15(), algorithm())
        elif isinstance(key, ec.EllipticCurvePublicKey) and scheme == "ecdsa":
            key.verify(signature, signed, ec.ECDSA(algorithm()))
        else:
            return False
        return True
    except (InvalidSignature, UnsupportedAlgorithm, KeyError) + ASN1_ERRORS:
        return False


def chains_to(certificate: x509.Certificate, trusted: x509.Certificate, untrusted: list[x509.Certificate]) -> bool:
    """Whether ``certificate`` is ``trusted`` or was issued, through a chain of ``untrusted``
    certificates that may issue, by ``trusted`` (OpenSSL's X509_verify_cert with a partial chain
    and no time checks)."""

    def walk(current: x509.Certificate, chain: list[x509.Certificate]) -> bool:
        if current == trusted:
            return True
        if len(chain) > MAX_CHAIN:
            return False
        for issuer in [trusted] + untrusted:
            if issuer in chain or not _issued(current, issuer) or not may_issue(issuer, _path_length(chain)):
                continue
            if walk(issuer, chain + [issuer]):
                return True
        return False

    return walk(certificate, [certificate])


def _issued(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
        return True
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False


def _path_length(chain: list[x509.Certificate]) -> int:
    """The intermediate CAs below the next issuer: the chain without its leaf and self-issued ones."""
    return sum(1 for c in chain[1:] if c.issuer != c.subject)


def may_issue(certificate: x509.Certificate, below: int = 0) -> bool:
    """Whether ``certificate`` may issue others, as OpenSSL's X509_check_ca decides (and the path
    length of its basicConstraints allows ``below`` intermediates under it)."""
    try:
        extensions = certificate.extensions
    except ValueError:  # extensions cryptography cannot parse: not a certificate OpenSSL would use
        return False
    try:
        usage = extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.key_cert_sign:
            return False
        has_usage = True
    except x509.ExtensionNotFound:
        has_usage = False
    try:
        constraints = extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        # a v1 self-signed root, or a certificate whose keyUsage allows certSign
        return certificate.version == x509.Version.v1 and certificate.issuer == certificate.subject or has_usage
    return constraints.ca and (constraints.path_length is None or below <= constraints.path_length)
