"""dynamodb:// URLs are read as Celery writes them."""

from __future__ import annotations

import pytest

from taskq.errors import ConfigError
from taskq_dynamodb._url import parse_url


def test_host_is_the_region_and_user_password_are_the_keys() -> None:
    settings = parse_url("dynamodb://AKID:se%2Fcret@eu-west-1/results?read=5&write=7", {})
    assert (settings.region, settings.endpoint_url, settings.table) == ("eu-west-1", None, "results")
    assert (settings.access_key, settings.secret_key) == ("AKID", "se/cret")
    assert (settings.read_capacity, settings.write_capacity) == (5, 7)


def test_localhost_means_a_local_endpoint() -> None:
    settings = parse_url("dynamodb://@localhost:8000/results", {})
    assert settings.endpoint_url == "http://localhost:8000"
    assert settings.access_key is None
    assert (settings.read_capacity, settings.write_capacity) == (None, None)


def test_an_ip_address_means_a_local_endpoint() -> None:
    assert parse_url("dynamodb://@127.0.0.1:5000/t", {}).endpoint_url == "http://127.0.0.1:5000"


def test_no_host_leaves_region_and_credentials_to_boto3() -> None:
    settings = parse_url("dynamodb:///results", {})
    assert (settings.region, settings.endpoint_url, settings.access_key) == (None, None, None)


def test_options_win_over_the_url() -> None:
    settings = parse_url(
        "dynamodb://@us-east-1/a", {"region": "ap-south-1", "endpoint_url": "http://x:1", "table": "b"}
    )
    assert (settings.region, settings.endpoint_url, settings.table) == ("ap-south-1", "http://x:1", "b")


def test_only_one_capacity_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="both read= and write="):
        parse_url("dynamodb://@us-east-1/t?read=5", {})


def test_a_capacity_that_is_not_a_number_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="whole number"):
        parse_url("dynamodb://@us-east-1/t?read=x&write=1", {})


# ---- Credentials never appear in an error or a repr -----------------------------------

KEY_ID = "AKIADISTINCTIVEKEY01"
SECRET = "s3cr3t-Distinctive-Dynamo-Value"


@pytest.mark.parametrize(
    "url",
    [
        f"dynamo://{KEY_ID}:{SECRET}@us-east-1/t",
        f"dynamodb://{KEY_ID}:{SECRET}@127.0.0.1:notaport/t",
        f"dynamodb://{KEY_ID}:{SECRET}@us-east-1/t?read=x&write=1",
        f"dynamodb://{KEY_ID}:{SECRET}@us-east-1/t?read=0&write=1",
        f"dynamodb://{KEY_ID}:{SECRET}@us-east-1/t?read=5",
    ],
)
def test_a_bad_url_is_reported_without_its_access_key_or_secret(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_url(url, {})
    assert "****" in str(info.value)
    assert SECRET not in str(info.value)
    assert KEY_ID not in str(info.value)


def test_the_settings_repr_holds_no_credentials() -> None:
    settings = parse_url(f"dynamodb://{KEY_ID}:{SECRET}@us-east-1/t", {})
    assert settings.secret_key == SECRET
    assert SECRET not in repr(settings)
    assert KEY_ID not in repr(settings)
