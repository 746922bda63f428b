"""The settings taskq-security declares (entry point ``taskq.settings``), with their defaults.

Read by core whenever a configuration names a setting core does not have; importing this
module imports nothing else.
"""

from __future__ import annotations

DEFAULTS: dict[str, object] = {
    # Path of this process's PEM private key: set, every task message it sends is signed.
    "security_key": None,
    # Password of an encrypted security_key; None for an unencrypted key.
    "security_key_password": None,
    # Path of the PEM certificate of security_key: its fingerprint names the signer.
    "security_certificate": None,
    # Directory, glob pattern or file of trusted PEM certificates: set, a worker runs only
    # messages signed by one of them and dead-letters the rest.
    "security_cert_store": None,
    # Digest of the signatures this process makes: sha256, sha384 or sha512.
    "security_digest": "sha256",
    # With checking on: dead-letter a signed message whose task id already finished
    # (SUCCESS, FAILURE or REVOKED in the result backend), a replay. One backend read per message.
    "security_reject_replays": False,
}

__all__ = ["DEFAULTS"]
