"""Server lists from URLs, and memcached's expiry times."""

from __future__ import annotations

import pytest

from taskq.errors import ConfigError
from taskq_memcached.backend import RELATIVE_EXPIRY_MAX, exptime, parse_servers


def test_celery_url_gives_one_server() -> None:
    assert parse_servers("cache+memcached://10.0.0.1:11311/") == [("10.0.0.1", 11311)]


def test_plain_memcached_scheme_and_default_port() -> None:
    assert parse_servers("memcached://cache.local") == [("cache.local", 11211)]


def test_semicolons_separate_several_servers() -> None:
    assert parse_servers("cache+memcached://a:1;b:2/") == [("a", 1), ("b", 2)]


def test_a_bad_port_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError, match="x:notaport"):
        parse_servers("memcached://x:notaport/")


def test_no_expiry_is_zero_meaning_forever() -> None:
    assert exptime(None) == 0


def test_expiry_is_rounded_up_with_one_second_for_the_coarse_clock() -> None:
    assert exptime(0.5) == 2
    assert exptime(10) == 11
    assert exptime(10.2) == 12


def test_expiry_past_thirty_days_becomes_an_absolute_unix_time() -> None:
    assert exptime(RELATIVE_EXPIRY_MAX - 1) == RELATIVE_EXPIRY_MAX
    assert exptime(RELATIVE_EXPIRY_MAX, now=1_700_000_000) == 1_700_000_000 + RELATIVE_EXPIRY_MAX + 1
