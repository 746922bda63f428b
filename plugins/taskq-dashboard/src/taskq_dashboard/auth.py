"""Who may see and act: a token (a bearer header, or a cookie the login form sets) and/or basic auth.

The dashboard is open only on a loopback address with neither set: :func:`check_exposure`
refuses to serve anywhere else without authentication. Actions are POST requests, and a
browser's POST must carry the CSRF token (the ``taskq_dashboard_csrf`` cookie echoed in the
``X-CSRF-Token`` header, which another site's page can neither read nor send); a request
authenticated by its own bearer header needs none, since no browser sends that by itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass

from taskq.errors import ConfigError

#: The cookie the login form sets (an HMAC of the token, never the token itself).
SESSION_COOKIE = "taskq_dashboard_session"
#: The cookie holding the CSRF token, and the header that must repeat it on a POST.
CSRF_COOKIE = "taskq_dashboard_csrf"
CSRF_HEADER = "x-csrf-token"
#: The kinds of authentication ``--auth`` names.
KINDS = ("token", "basic")


@dataclass(frozen=True)
class Auth:
    """The credentials the dashboard accepts; with none, it is open (loopback only)."""

    token: str | None = None
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_options(cls, kinds: tuple[str, ...], token: str | None, basic: str | None) -> Auth:
        """The authentication ``--auth``, ``--token`` and ``--basic-auth`` ask for.

        With no ``--auth``, each credential given is accepted; with ``--auth``, those named
        must be given (and only those are accepted).

        Raises:
            ConfigError: a kind is named without its credential, or ``--basic-auth`` has no colon.
        """
        kinds = tuple(kinds) or tuple(kind for kind, given in (("token", token), ("basic", basic)) if given)
        for kind in kinds:
            if kind not in KINDS:
                raise ConfigError(f"unknown authentication {kind!r}; use one of: {', '.join(KINDS)}")
        if "token" in kinds and not token:
            raise ConfigError(
                "--auth token needs a token: pass --token SECRET or set TASKQ_DASHBOARD_TOKEN "
                '(make one with: python -c "import secrets; print(secrets.token_urlsafe(32))")'
            )
        username = password = None
        if "basic" in kinds:
            if not basic or ":" not in basic:
                raise ConfigError(
                    "--auth basic needs a user and password: pass --basic-auth USER:PASSWORD "
                    "or set TASKQ_DASHBOARD_BASIC_AUTH=USER:PASSWORD"
                )
            username, password = basic.split(":", 1)
            if not username or not password:
                raise ConfigError("--basic-auth needs both a user and a password: USER:PASSWORD")
        return cls(token if "token" in kinds else None, username, password)

    @property
    def is_open(self) -> bool:
        return self.token is None and self.username is None

    @property
    def session(self) -> str | None:
        """What the session cookie holds once logged in with the token."""
        if self.token is None:
            return None
        return hmac.new(self.token.encode("utf-8"), b"taskq-dashboard-session", hashlib.sha256).hexdigest()

    def by_bearer(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header carries the right bearer token."""
        if self.token is None or not authorization:
            return False
        scheme, _, value = authorization.partition(" ")
        return scheme.lower() == "bearer" and _same(value.strip(), self.token)

    def by_basic(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header carries the right user and password."""
        if self.username is None or self.password is None or not authorization:
            return False
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        username, _, password = decoded.partition(":")
        # both compared, always: how long it takes tells nothing about which one was wrong
        return _same(username, self.username) & _same(password, self.password)

    def by_cookie(self, cookie: str | None) -> bool:
        session = self.session
        return session is not None and cookie is not None and _same(cookie, session)

    def allows(self, authorization: str | None, cookie: str | None) -> bool:
        """Whether a request with these headers may see the dashboard."""
        return self.is_open or self.by_bearer(authorization) or self.by_basic(authorization) or self.by_cookie(cookie)

    def login(self, token: str) -> bool:
        """Whether ``token`` (typed in the login form) is the token."""
        return self.token is not None and _same(token, self.token)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def is_loopback(address: str) -> bool:
    """Whether ``address`` (an IP address or ``localhost``) is reachable from this machine only."""
    if address.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_exposure(address: str, auth: Auth) -> None:
    """Refuse to serve an open dashboard on an address others can reach.

    Raises:
        ConfigError: ``address`` is not a loopback address and ``auth`` is open.
    """
    if auth.is_open and not is_loopback(address):
        raise ConfigError(
            f"refusing to serve the dashboard on {address} without authentication: anyone who reaches it "
            f"could revoke tasks and resize pools. Set a token: --auth token --token SECRET "
            f"(or TASKQ_DASHBOARD_TOKEN=SECRET), or basic auth: --basic-auth USER:PASSWORD; "
            f"or serve on 127.0.0.1 only"
        )
