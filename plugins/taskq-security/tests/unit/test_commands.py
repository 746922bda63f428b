"""``taskq security keygen`` and ``taskq security fingerprint``."""

from __future__ import annotations

import stat
from pathlib import Path

from click.testing import CliRunner

from taskq_security.commands import security
from taskq_security.signing import Signer, fingerprint


def test_keygen_writes_a_private_key_only_its_owner_reads_and_a_certificate_that_match(tmp_path: Path) -> None:
    result = CliRunner().invoke(security, ["keygen", "web-1", "--dir", str(tmp_path / "keys")])
    assert result.exit_code == 0, result.output
    key, certificate = tmp_path / "keys" / "web-1.key", tmp_path / "keys" / "web-1.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    signer = Signer.from_files(str(key), str(certificate))
    assert f"signer:       {signer.signer}" in result.output
    assert signer.certificate.subject.rfc4514_string() == "CN=web-1"


def test_keygen_makes_each_key_type(tmp_path: Path) -> None:
    for key_type in ("ec", "rsa", "ed25519"):
        result = CliRunner().invoke(security, ["keygen", key_type, "--key-type", key_type, "--dir", str(tmp_path)])
        assert result.exit_code == 0, result.output
        Signer.from_files(str(tmp_path / f"{key_type}.key"), str(tmp_path / f"{key_type}.pem"))


def test_keygen_encrypts_the_key_with_the_password_it_asks_for(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        security, ["keygen", "locked", "--encrypt", "--dir", str(tmp_path)], input="pw-123456\npw-123456\n"
    )
    assert result.exit_code == 0, result.output
    assert "-----BEGIN ENCRYPTED PRIVATE KEY-----" in (tmp_path / "locked.key").read_text()
    Signer.from_files(str(tmp_path / "locked.key"), str(tmp_path / "locked.pem"), password="pw-123456")


def test_keygen_overwrites_nothing(tmp_path: Path) -> None:
    (tmp_path / "web-1.pem").write_text("mine")
    result = CliRunner().invoke(security, ["keygen", "web-1", "--dir", str(tmp_path)])
    assert result.exit_code != 0
    assert "exists already" in str(result.exception)
    assert (tmp_path / "web-1.pem").read_text() == "mine"
    assert not (tmp_path / "web-1.key").exists()


def test_fingerprint_prints_the_signer_name_workers_see(tmp_path: Path) -> None:
    CliRunner().invoke(security, ["keygen", "w", "--dir", str(tmp_path)])
    signer = Signer.from_files(str(tmp_path / "w.key"), str(tmp_path / "w.pem"))
    result = CliRunner().invoke(security, ["fingerprint", str(tmp_path / "w.pem")])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{fingerprint(signer.certificate)}  CN=w  valid until ")
