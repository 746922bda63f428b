"""``taskq security keygen`` and ``taskq security fingerprint``: signing identities from the command line."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def security() -> None:
    """Make and inspect the keys and certificates of signed messages (taskq-security)."""


@security.command()
@click.argument("name")
@click.option(
    "--key-type",
    type=click.Choice(["ec", "rsa", "ed25519"]),
    default="ec",
    show_default=True,
    help="EC P-256, RSA 3072 bits, or Ed25519.",
)
@click.option(
    "--days", type=click.IntRange(min=1), default=365, show_default=True, help="How long the certificate is valid."
)
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Where to write NAME.key and NAME.pem.",
)
@click.option("--encrypt", is_flag=True, help="Encrypt the key with a password, asked for on the terminal.")
def keygen(name: str, key_type: str, days: int, folder: Path, encrypt: bool) -> None:
    """Write a private key NAME.key and its self-signed certificate NAME.pem (common name NAME)."""
    from taskq_security.keys import new_key, self_signed, write_identity
    from taskq_security.signing import fingerprint

    password = click.prompt("Key password", hide_input=True, confirmation_prompt=True) if encrypt else None
    key = new_key(key_type)
    certificate = self_signed(key, name, days)
    key_path, certificate_path = write_identity(
        folder, name, key, certificate, password=password.encode("utf-8") if password else None
    )
    click.echo(f"private key:  {key_path}  (keep it secret: security_key)")
    click.echo(
        f"certificate:  {certificate_path}  (security_certificate; copy it into the workers' security_cert_store)"
    )
    click.echo(f"signer:       {fingerprint(certificate)}")
    click.echo(f"valid until:  {certificate.not_valid_after_utc.isoformat()}")


@security.command(name="fingerprint")
@click.argument("certificates", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def fingerprint_command(certificates: tuple[Path, ...]) -> None:
    """Print each certificate's signer name (as in the x-taskq-signer header), subject and expiry."""
    from cryptography import x509

    from taskq.errors import ConfigError
    from taskq_security.signing import fingerprint

    for path in certificates:
        try:
            found = x509.load_pem_x509_certificates(path.read_bytes())
        except ValueError as exc:
            raise ConfigError(f"{path} holds no PEM certificate") from exc
        for certificate in found:
            subject = certificate.subject.rfc4514_string() or "(no subject)"
            until = certificate.not_valid_after_utc.isoformat()
            click.echo(f"{fingerprint(certificate)}  {subject}  valid until {until}  {path}")
