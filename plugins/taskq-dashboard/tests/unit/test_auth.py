"""Credentials: what --auth, --token and --basic-auth accept, and the refusal to serve an open dashboard."""

from __future__ import annotations

import base64

import pytest

from taskq.errors import ConfigError
from taskq_dashboard.auth import Auth, check_exposure, is_loopback


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_an_open_dashboard_on_a_public_address_is_refused_with_how_to_set_a_token() -> None:
    with pytest.raises(ConfigError, match="TASKQ_DASHBOARD_TOKEN"):
        check_exposure("0.0.0.0", Auth())
    with pytest.raises(ConfigError, match="--auth token"):
        check_exposure("dashboard.example.org", Auth())
    check_exposure("0.0.0.0", Auth(token="t"))
    check_exposure("127.0.0.1", Auth())
    check_exposure("::1", Auth())
    check_exposure("localhost", Auth())


def test_loopback_addresses() -> None:
    assert is_loopback("127.0.0.2") and is_loopback("[::1]") and is_loopback("LOCALHOST")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("10.0.0.1")


def test_auth_named_without_its_credential_says_how_to_give_it() -> None:
    with pytest.raises(ConfigError, match="--token SECRET or set TASKQ_DASHBOARD_TOKEN"):
        Auth.from_options(("token",), None, None)
    with pytest.raises(ConfigError, match="USER:PASSWORD"):
        Auth.from_options(("basic",), None, "no-colon")


def test_credentials_given_are_accepted_without_naming_them() -> None:
    auth = Auth.from_options((), "secret", "ann:pw")
    assert auth.by_bearer("Bearer secret") and not auth.by_bearer("Bearer wrong")
    assert auth.by_basic(basic("ann", "pw")) and not auth.by_basic(basic("ann", "no"))
    assert not auth.by_basic("Basic !!!not-base64")
    assert Auth.from_options(("basic",), "secret", "ann:pw").token is None  # only what --auth names


def test_the_session_cookie_is_not_the_token() -> None:
    auth = Auth(token="secret")
    assert auth.session and "secret" not in auth.session
    assert auth.by_cookie(auth.session) and not auth.by_cookie("secret")
    assert Auth().allows(None, None) and not auth.allows(None, None)
