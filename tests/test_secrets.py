"""No password, key or token reaches a log line, an error, a repr, a banner or CLI output.

Every URL here carries a distinctive secret; every text a user can see is scanned for it.
"""

from __future__ import annotations

import pytest

from taskq import App
from taskq.errors import ConfigError

SECRET = "Zq7-distinctive-SECRET-4tw"
KEY_ID = "AKIAZQ7DISTINCTIVEKEY"


def assert_clean(text: str, *secrets: str) -> None:
    for secret in secrets or (SECRET, KEY_ID):
        assert secret not in text, f"a secret leaked into:\n{text}"


# ---- Errors and reprs of drivers, without a server --------------------------------------


def test_s3_reports_a_bad_url_without_its_keys() -> None:
    from taskq_s3.backend import parse_url

    with pytest.raises(ConfigError) as info:
        parse_url(f"s4://{KEY_ID}:{SECRET}@bucket/prefix")
    assert_clean(str(info.value))


def test_amqp_reports_a_bad_url_and_its_parameters_without_the_password() -> None:
    from taskq_amqp._connection import parse_url

    with pytest.raises(ConfigError) as info:
        parse_url(f"amqx://guest:{SECRET}@127.0.0.1:5672//?password={SECRET}", {})
    assert_clean(str(info.value))
    params = parse_url(f"amqp://guest:{SECRET}@127.0.0.1:5672//", {})
    assert params.password == SECRET
    assert_clean(repr(params))
    assert_clean(params.masked)


def test_an_app_repr_and_a_url_without_a_scheme_hide_the_password() -> None:
    app = App("secrets", broker=f"redis://:{SECRET}@127.0.0.1:1/0", read_config=False)
    assert_clean(repr(app))
    with pytest.raises(ConfigError) as info:
        App("secrets", broker=f"user:{SECRET}@127.0.0.1:1", read_config=False).new_transport()
    assert_clean(str(info.value))
