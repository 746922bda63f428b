"""Signing task messages and checking their signatures: the canonical form, the signer, the verifier.

What is signed (:func:`canonical_form`) is one byte string: a version line, then the
headers that decide what runs and where its result goes (:data:`SIGNED_HEADERS`, a
missing one read as ``null``), the content type and encoding and the ``reply_to``
property, as sorted-key compact ASCII JSON on one line, then the body bytes exactly as
sent (the arguments and the workflow: callbacks, errbacks, chain, chord). The signature
and the signer's certificate fingerprint travel in two headers
(:data:`SIGNATURE_HEADER`, :data:`SIGNER_HEADER`) that the form leaves out.

A :class:`Verifier` answers every message with ``None`` (signed by a trusted, valid
certificate and unchanged) or a reason to dead-letter it; it never raises on what a
message holds. Keys: RSA (PSS padding), elliptic curve (ECDSA) and Ed25519.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import glob
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from taskq.drivers.support.envelope import UNDECODABLE_HEADER
from taskq.drivers.transport import Message
from taskq.errors import ConfigError

logger = logging.getLogger(__name__)

#: The header holding ``"<digest>:<base64 signature>"``.
SIGNATURE_HEADER = "x-taskq-signature"
#: The header naming the signer: ``"sha256:<hex fingerprint of its certificate>"``.
SIGNER_HEADER = "x-taskq-signer"
#: Protocol 2 headers the signature covers: what runs, when, for how long, in which workflow.
SIGNED_HEADERS = (
    "task",
    "id",
    "shadow",
    "eta",
    "expires",
    "retries",
    "timelimit",
    "root_id",
    "parent_id",
    "group",
    "group_index",
    "ignore_result",
)
#: The first line of the signed form; a new layout gets a new one.
FORM_VERSION = b"taskq-signature-1"
#: Digests a signature may use, by the name ``security_digest`` takes.
DIGESTS: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
# Longest piece of an untrusted header quoted in a reason, in characters.
QUOTE_MAX = 80
# Certificate files read from a cert store directory.
CERT_SUFFIXES = (".pem", ".crt", ".cer")

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


class SignatureUnusableError(ValueError):
    """The signed form cannot be built from this message (a covered header JSON cannot hold)."""


def canonical_form(message: Message) -> bytes:
    """The bytes a signature covers (see the module docstring)."""
    headers = message.headers
    document = {
        "headers": {name: headers.get(name) for name in SIGNED_HEADERS},
        "content_type": message.content_type,
        "content_encoding": message.content_encoding,
        "reply_to": message.properties.get("reply_to"),
    }
    try:
        text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise SignatureUnusableError(f"a signed header is not plain JSON: {exc}") from exc
    return b"%s\n%s\n%s" % (FORM_VERSION, text.encode("ascii"), message.body)


def fingerprint(certificate: x509.Certificate) -> str:
    """How a signer is named in :data:`SIGNER_HEADER`: the SHA-256 of its certificate's DER."""
    return "sha256:" + certificate.fingerprint(hashes.SHA256()).hex()


def _digest(name: str) -> hashes.HashAlgorithm:
    try:
        return DIGESTS[name]()
    except KeyError:
        raise ConfigError(
            f"security_digest = {name!r} is not a digest taskq-security signs with; use one of: {', '.join(DIGESTS)}"
        ) from None


def _subject(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string() or "(no subject)"


def _read(path: Path, what: str, setting: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {setting} = {str(path)!r}: {exc.strerror or exc}") from exc


# ---- Signing ----------------------------------------------------------------------------


class Signer:
    """Signs messages with one private key, naming the certificate that vouches for it."""

    def __init__(self, key: PrivateKey, certificate: x509.Certificate, digest: str = "sha256") -> None:
        if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
            raise ConfigError(
                f"security_key holds a {type(key).__name__}; taskq-security signs with RSA, EC or Ed25519 keys"
            )
        if key.public_key() != certificate.public_key():
            raise ConfigError(
                f"security_key does not belong to security_certificate (subject {_subject(certificate)}): "
                f"the certificate vouches for another key. Give the key the certificate was issued for."
            )
        self.key = key
        self.certificate = certificate
        self.digest = digest
        self._hash = _digest(digest)
        self.signer = fingerprint(certificate)
        now = datetime.datetime.now(datetime.UTC)
        if certificate.not_valid_after_utc < now:
            logger.warning(
                "the signing certificate (subject %s) expired at %s: workers will dead-letter every message "
                "it signs; renew it",
                _subject(certificate),
                certificate.not_valid_after_utc.isoformat(),
            )

    @classmethod
    def from_files(
        cls, key_path: str, certificate_path: str, *, password: str | bytes | None = None, digest: str = "sha256"
    ) -> Signer:
        """A signer from a PEM private key (encrypted with ``password`` if given) and a PEM certificate.

        Raises:
            ConfigError: a file is unreadable, not PEM, the password is wrong, or the key and
                certificate do not match.
        """
        key_bytes = _read(Path(key_path), "private key", "security_key")
        cert_bytes = _read(Path(certificate_path), "certificate", "security_certificate")
        secret = password.encode("utf-8") if isinstance(password, str) else password
        try:
            key = serialization.load_pem_private_key(key_bytes, password=secret or None)
        except TypeError as exc:  # encrypted without a password, or a password for a plain key
            raise ConfigError(
                f"cannot load the private key {key_path!r}: {exc}. Set security_key_password to the key's "
                f"password, or leave it unset for an unencrypted key."
            ) from exc
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise ConfigError(
                f"cannot load the private key {key_path!r}: not a PEM private key, or a wrong "
                f"security_key_password ({type(exc).__name__})"
            ) from exc
        try:
            certificate = x509.load_pem_x509_certificate(cert_bytes)
        except ValueError as exc:
            raise ConfigError(f"cannot load the certificate {certificate_path!r}: not a PEM certificate") from exc
        if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
            raise ConfigError(
                f"the private key {key_path!r} is a {type(key).__name__}; taskq-security signs with RSA, EC or "
                f"Ed25519 keys"
            )
        return cls(key, certificate, digest)

    def sign(self, message: Message) -> None:
        """Add the signature and signer headers to ``message``."""
        data = canonical_form(message)
        key = self.key
        if isinstance(key, rsa.RSAPrivateKey):
            signature = key.sign(data, _pss(self._hash), self._hash)
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            signature = key.sign(data, ec.ECDSA(self._hash))
        else:
            signature = key.sign(data)
        message.headers[SIGNATURE_HEADER] = f"{self.digest}:{base64.b64encode(signature).decode('ascii')}"
        message.headers[SIGNER_HEADER] = self.signer


def _pss(algorithm: hashes.HashAlgorithm) -> padding.PSS:
    # The salt as long as the digest: the length both sides agree on without a parameter.
    return padding.PSS(mgf=padding.MGF1(algorithm), salt_length=padding.PSS.DIGEST_LENGTH)


# ---- Verifying ----------------------------------------------------------------------------


def load_certificates(store: str) -> list[tuple[str, x509.Certificate]]:
    """Every certificate in ``store``, with the file it came from.

    ``store`` is a directory (its ``*.pem``, ``*.crt`` and ``*.cer`` files), a glob pattern
    or one file; a file may hold several PEM certificates.

    Raises:
        ConfigError: nothing matches, a file is unreadable or holds no PEM certificate.
    """
    root = Path(store).expanduser()
    if root.is_dir():
        paths = sorted(p for p in root.iterdir() if p.suffix.lower() in CERT_SUFFIXES and p.is_file())
    elif root.is_file():
        paths = [root]
    else:
        paths = sorted(Path(p) for p in glob.glob(str(root)) if Path(p).is_file())
    if not paths:
        raise ConfigError(
            f"security_cert_store = {store!r} holds no certificate: give a directory of PEM certificates "
            f"(*.pem, *.crt), a glob pattern, or one PEM file"
        )
    found: list[tuple[str, x509.Certificate]] = []
    for path in paths:
        data = _read(path, "trusted certificate", "in security_cert_store")
        try:
            certificates = x509.load_pem_x509_certificates(data)
        except ValueError as exc:
            raise ConfigError(
                f"{path} in security_cert_store = {store!r} holds no PEM certificate; remove it or fix it"
            ) from exc
        found.extend((str(path), certificate) for certificate in certificates)
    return found


class Verifier:
    """Checks messages against a store of trusted certificates (see :meth:`check`)."""

    def __init__(
        self,
        certificates: Sequence[x509.Certificate],
        *,
        store: str = "(in code)",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.trusted: dict[str, x509.Certificate] = {fingerprint(c): c for c in certificates}
        self.store = store
        self._clock = clock
        # Per signer, what a check needs, parsed once: reading a key out of its certificate
        # costs more than checking a signature with it.
        self._keys = {name: _TrustedKey(certificate) for name, certificate in self.trusted.items()}

    @classmethod
    def from_store(cls, store: str) -> Verifier:
        """A verifier trusting every certificate in ``store`` (see :func:`load_certificates`)."""
        loaded = load_certificates(store)
        now = datetime.datetime.now(datetime.UTC)
        for path, certificate in loaded:
            if certificate.not_valid_after_utc < now:
                logger.warning(
                    "the trusted certificate %s (subject %s) expired at %s: messages it signs are dead-lettered",
                    path,
                    _subject(certificate),
                    certificate.not_valid_after_utc.isoformat(),
                )
        return cls([certificate for _, certificate in loaded], store=store)

    def trusts(self, certificate: x509.Certificate) -> bool:
        return fingerprint(certificate) in self.trusted

    def check(self, message: Message) -> str | None:
        """None when ``message`` is signed by a trusted, valid certificate and unchanged; else why not.

        Never raises on what the message holds.
        """
        if (
            type(message.headers) is not dict
            or type(message.properties) is not dict
            or not isinstance(message.body, bytes)
            or not isinstance(message.content_type, str)
            or not isinstance(message.content_encoding, str)
        ):
            return "malformed message: its headers or properties are not a mapping, or its body is not bytes"
        try:
            return self._check(message)
        except Exception as exc:  # a bug here must not stop the worker: the message is refused
            logger.exception("checking the signature of a message failed")
            return f"cannot check the signature: {type(exc).__name__}"

    def _check(self, message: Message) -> str | None:
        headers = message.headers
        why = headers.get(UNDECODABLE_HEADER)
        if isinstance(why, str):  # the transport could not read the envelope: say so, as decoding would
            return f"cannot decode the message: {why}"
        signature_text = headers.get(SIGNATURE_HEADER)
        signer = headers.get(SIGNER_HEADER)
        if signature_text is None and signer is None:
            return (
                f"unsigned message{_claim(headers)}: it has no {SIGNATURE_HEADER} header and this worker "
                f"accepts only signed messages (security_cert_store is set). Sign it on the sender with "
                f"taskq-security (security_key, security_certificate)"
            )
        if not isinstance(signature_text, str) or not isinstance(signer, str):
            return f"malformed signature{_claim(headers)}: {SIGNATURE_HEADER} and {SIGNER_HEADER} must both be text"
        trusted = self._keys.get(signer)
        if trusted is None:
            return (
                f"unknown signer {_quote(signer)}{_claim(headers)}: no certificate with this fingerprint is in "
                f"security_cert_store = {self.store!r}; add the sender's certificate there to accept its messages"
            )
        certificate = trusted.certificate
        now = self._clock()
        if now > trusted.not_after:
            return (
                f"expired certificate{_claim(headers)}: the signer's certificate (subject {_subject(certificate)}) "
                f"was valid until {certificate.not_valid_after_utc.isoformat()}; renew it on the sender"
            )
        if now < trusted.not_before:
            return (
                f"certificate not yet valid{_claim(headers)}: the signer's certificate (subject "
                f"{_subject(certificate)}) is valid from {certificate.not_valid_before_utc.isoformat()}; "
                f"check the clocks"
            )
        digest_name, _, encoded = signature_text.partition(":")
        algorithm = DIGESTS.get(digest_name)
        if algorithm is None:
            return (
                f"malformed signature{_claim(headers)}: unknown digest {_quote(digest_name)} "
                f"(taskq signs with {', '.join(DIGESTS)})"
            )
        try:
            signature = base64.b64decode(encoded, validate=True)
            data = canonical_form(message)
        except (binascii.Error, ValueError) as exc:
            return f"malformed signature{_claim(headers)}: {exc}"
        if not _verifies(trusted.public_key, signature, data, algorithm()):
            return (
                f"bad signature{_claim(headers)} from {_subject(certificate)}: the message was changed after it "
                f"was signed (task, id, arguments, eta, expires, time limits, retries, workflow or body)"
            )
        return None


class _TrustedKey:
    """A trusted certificate with its public key and validity read out once."""

    __slots__ = ("certificate", "not_after", "not_before", "public_key")

    def __init__(self, certificate: x509.Certificate) -> None:
        self.certificate = certificate
        self.public_key = certificate.public_key()
        self.not_before = certificate.not_valid_before_utc.timestamp()
        self.not_after = certificate.not_valid_after_utc.timestamp()


def _verifies(public_key: object, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm) -> bool:
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, _pss(algorithm), algorithm)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, data)
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


def _quote(value: str) -> str:
    """An untrusted string, quoted and cut short, for a reason."""
    return repr(value if len(value) <= QUOTE_MAX else value[:QUOTE_MAX] + "...")


def _claim(headers: Mapping[str, object]) -> str:
    """`` (task 'x'[id], unverified)``: what the headers claim, so the dead letter can be found."""
    name, task_id = headers.get("task"), headers.get("id")
    if not isinstance(name, str) or not isinstance(task_id, str):
        return ""
    return f" (task {_quote(name)}[{_quote(task_id)[1:-1]}], unverified)"


__all__ = [
    "DIGESTS",
    "SIGNATURE_HEADER",
    "SIGNED_HEADERS",
    "SIGNER_HEADER",
    "SignatureUnusableError",
    "Signer",
    "Verifier",
    "canonical_form",
    "fingerprint",
    "load_certificates",
]
