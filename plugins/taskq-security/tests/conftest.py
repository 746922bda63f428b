"""Keys and certificates made in the test, with cryptography: no key file is committed."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from taskq_security.signing import PrivateKey


@dataclass
class Identity:
    """A private key, its self-signed certificate, and both as PEM files."""

    key: PrivateKey
    certificate: x509.Certificate
    key_path: Path
    certificate_path: Path


def new_key(kind: str) -> PrivateKey:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(kind)


def make_identity(
    folder: Path,
    name: str,
    *,
    kind: str = "ec",
    valid_from: datetime.datetime | None = None,
    valid_until: datetime.datetime | None = None,
    password: bytes | None = None,
) -> Identity:
    key = new_key(kind)
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from or now - datetime.timedelta(days=1))
        .not_valid_after(valid_until or now + datetime.timedelta(days=30))
        .sign(key, None if kind == "ed25519" else hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    key_path = folder / f"{name}.key"
    certificate_path = folder / f"{name}.pem"
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return Identity(key, certificate, key_path, certificate_path)


MakeIdentity = Callable[..., Identity]


@pytest.fixture
def identity(tmp_path: Path) -> MakeIdentity:
    """``identity(name, kind="ec", valid_until=..., password=...)``: a key and certificate in tmp_path/keys."""

    def make(name: str, **options: object) -> Identity:
        return make_identity(tmp_path / "keys", name, **options)  # type: ignore[arg-type]  # keyword options of make_identity

    return make


@pytest.fixture
def trusting(tmp_path: Path) -> Callable[..., Path]:
    """``trusting(*identities)``: a cert store directory holding their certificates."""
    counter = iter(range(1_000_000))

    def make(*identities: Identity) -> Path:
        folder = tmp_path / f"trusted-{next(counter)}"
        folder.mkdir(parents=True)
        for item in identities:
            (folder / item.certificate_path.name).write_bytes(item.certificate_path.read_bytes())
        return folder

    return make
