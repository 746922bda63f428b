"""Making a signing identity: a private key and a self-signed certificate, written as PEM files.

What ``taskq security keygen`` does; ``openssl req -x509`` does the same (see docs/security.md).
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from taskq.errors import ConfigError
from taskq_security.signing import PrivateKey

#: Key types ``keygen`` makes, by the name ``--key-type`` takes.
KEY_TYPES = ("ec", "rsa", "ed25519")
# Size of a new RSA key, in bits.
RSA_BITS = 3072


def new_key(key_type: str = "ec") -> PrivateKey:
    """A new private key: EC P-256, RSA (3072 bits) or Ed25519."""
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ConfigError(f"no key type {key_type!r}; choose one of: {', '.join(KEY_TYPES)}")


def self_signed(key: PrivateKey, name: str, days: int = 365) -> x509.Certificate:
    """A certificate for ``key`` with the common name ``name``, valid from now for ``days`` days."""
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # a little slack for clocks
        .not_valid_after(now + datetime.timedelta(days=days))
        .sign(key, None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256())
    )


def write_identity(
    folder: Path, name: str, key: PrivateKey, certificate: x509.Certificate, *, password: bytes | None = None
) -> tuple[Path, Path]:
    """Write ``<name>.key`` (readable by its owner only; encrypted with ``password`` if given) and
    ``<name>.pem`` into ``folder``; return their paths.

    Raises:
        ConfigError: either file exists already (nothing is overwritten).
    """
    key_path, certificate_path = folder / f"{name}.key", folder / f"{name}.pem"
    for path in (key_path, certificate_path):
        if path.exists():
            raise ConfigError(f"{path} exists already; remove it or choose another name")
    folder.mkdir(parents=True, exist_ok=True)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return key_path, certificate_path


__all__ = ["KEY_TYPES", "new_key", "self_signed", "write_identity"]
