"""taskq-security's plugin module: signs what an app sends and checks what its worker receives.

Signing is on in a process whose settings name ``security_key`` (with
``security_certificate``); checking is on in a worker whose settings name
``security_cert_store``. Keys and certificates load the first time they are needed, once
per app and process (again if the settings change), so importing this module stays cheap:
``cryptography`` is imported only then.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import TYPE_CHECKING

from taskq.errors import ConfigError
from taskq.hookspecs import hookimpl

if TYPE_CHECKING:
    from taskq import App
    from taskq.drivers.transport import Message
    from taskq_security.signing import Signer, Verifier

logger = logging.getLogger(__name__)

#: The settings that decide what this plugin does, in the order of :class:`_Security`'s key.
SETTINGS = (
    "security_key",
    "security_key_password",
    "security_certificate",
    "security_cert_store",
    "security_digest",
    "security_reject_replays",
)


class _Security:
    """One app's signer and verifier, as its settings say (either may be None: off)."""

    def __init__(self, app: App, key: tuple[object, ...]) -> None:
        self.key = key
        conf = app.conf
        key_path, password, certificate, store, digest, reject_replays = key
        self.signer: Signer | None = None
        self.verifier: Verifier | None = None
        self.reject_replays = bool(reject_replays) and store is not None
        if key_path is None and certificate is None and store is None:
            return  # off: cryptography is not even imported
        from taskq_security.signing import Signer, Verifier  # heavy: only once signing is used

        if self.reject_replays and app.backend_url is None:
            raise ConfigError(
                "security_reject_replays is on, but results are disabled: it looks for a finished task's "
                "record in the result backend. Set result_backend, or turn security_reject_replays off."
            )
        if key_path is not None or certificate is not None:
            if key_path is None or certificate is None:
                missing = "security_certificate" if certificate is None else "security_key"
                raise ConfigError(
                    f"{missing} is not set: signing needs both security_key (the private key) and "
                    f"security_certificate (its certificate), as PEM file paths"
                )
            self.signer = Signer.from_files(
                str(key_path),
                str(certificate),
                password=password if isinstance(password, (str, bytes)) else None,
                digest=str(digest),
            )
        if store is not None:
            if self.signer is None:
                raise ConfigError(
                    "security_cert_store is set, so this worker checks signatures, but security_key and "
                    "security_certificate are not: it could not sign the retries, chain steps, callbacks and "
                    "chord bodies it sends, and workers would dead-letter them. Give the worker a key and "
                    "certificate of its own (trusted by every worker's security_cert_store)."
                )
            self.verifier = Verifier.from_store(str(store))
            if not self.verifier.trusts(self.signer.certificate):
                logger.warning(
                    "this worker's own certificate (security_certificate = %s) is not in security_cert_store = "
                    "%s: workers trusting only that store will dead-letter the retries and chain steps it sends",
                    conf["security_certificate"],
                    store,
                )


_states: weakref.WeakKeyDictionary[App, _Security] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _security(app: App) -> _Security:
    conf = app.conf
    key = tuple(conf[name] for name in SETTINGS)
    state = _states.get(app)
    if state is None or state.key != key:
        with _lock:
            state = _states.get(app)
            if state is None or state.key != key:
                state = _states[app] = _Security(app, key)
    return state


def setup_security(
    app: App,
    *,
    key: str,
    certificate: str,
    cert_store: str | None = None,
    key_password: str | None = None,
    digest: str = "sha256",
) -> None:
    """Turn signing on for ``app`` (and checking, with ``cert_store``), as Celery's ``setup_security``.

    The same as setting ``security_key``, ``security_certificate``, ``security_cert_store``,
    ``security_key_password`` and ``security_digest``, except that the files are loaded at
    once, so a wrong path or password fails here.

    Raises:
        ConfigError: a file is missing or unreadable, the password is wrong, the key does not
            match the certificate, or the store holds no certificate.
    """
    app.conf.update(
        security_key=key,
        security_key_password=key_password,
        security_certificate=certificate,
        security_cert_store=cert_store,
        security_digest=digest,
    )
    _security(app)


@hookimpl
def taskq_message_encoded(app: App, message: Message) -> None:
    signer = _security(app).signer
    if signer is not None:
        signer.sign(message)


@hookimpl
def taskq_message_received(app: App, message: Message) -> str | None:
    state = _security(app)
    if state.verifier is None:
        return None
    reason = state.verifier.check(message)
    if reason is None and state.reject_replays:
        return _replayed(app, message)
    return reason


def _replayed(app: App, message: Message) -> str | None:
    """Why a genuinely signed message is a replay (its task already finished), or None."""
    from taskq import states

    task_id, name = message.headers.get("id"), message.headers.get("task")
    if not isinstance(task_id, str):
        return None
    try:
        status = app.backend.get_task_meta(task_id).get("status")
    except Exception as exc:
        # Refusing here would dead-letter every message while the store is away: run it, and say so.
        logger.warning(
            "could not look for a replay of task %s[%s] (%s: %s); running it",
            name,
            task_id,
            type(exc).__name__,
            exc,
        )
        return None
    if status in states.READY_STATES:
        return (
            f"replayed message (task {name!r}[{task_id}]): a task with this id already finished ({status}); "
            f"with security_reject_replays on, a signed message runs once"
        )
    return None


@hookimpl
def taskq_register_commands() -> dict[str, str]:
    return {"security": "taskq_security.commands:security"}


@hookimpl
def taskq_register_bootsteps() -> dict[str, list[str]]:
    # Loads the keys and the store as the worker starts: a wrong setting stops it there.
    return {"worker": ["taskq_security.step:SecurityStep"]}


def load_security(app: App) -> None:
    """Load ``app``'s signing key and trusted certificates now (raises ConfigError on a mistake)."""
    _security(app)
