"""mask_url: no password, key or token written into a URL survives it, in any form."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from taskq.drivers.support.connections import mask_url, redact

SECRET = "\x00SECRET\x00"  # placeholder in the templates below, replaced by a generated secret

TEMPLATES = [
    "redis://:{s}@h1:6379/0",
    "redis://user:{s}@h1:6379/0",
    "rediss://default:{s}@h1:6380/0?ssl_cert_reqs=required",
    "sentinel://:{s}@h1:26379;sentinel://:{s}@h2:26379;sentinel://:{s}@h3:26379/0",
    "sentinel://u:{s}@h1:26379,sentinel://u:{s}@h2:26379/0",
    "redis://:{s}@h1:6379,redis://:{s}@h2:6379/0",
    "mongodb://user:{s}@h1:27017,h2:27017,h3:27017/db?replicaSet=rs0",
    "amqp://guest:{s}@localhost:5672//",
    "amqp://guest:{s}@h1:5672//;amqp://guest:{s}@h2:5672//",
    "db+postgresql+psycopg://taskq:{s}@127.0.0.1:5432/test",
    "db+mysql+pymysql://root:{s}@127.0.0.1/test?charset=utf8mb4",
    "redis://h1:6379/0?password={s}",
    "redis://h1:6379/0?db=1&password={s}&socket_timeout=5",
    "sqs://h1:9324?aws_secret_access_key={s}&region=us-east-1",
    "s3://bucket/prefix?access_key={s}&secret_key={s}",
    "https://h1/path?token={s}",
    "https://h1/path?api_key={s}#frag",
    "https://{s}@github.com/org/repo",
    "dynamodb://{s}:{s}@us-east-1/table",
    "dynamodb://{s}:{s}@127.0.0.1:8000/table?read=5",
    "sqs://{s}:{s}@127.0.0.1:9324",
    "s3://{s}:{s}@bucket/prefix",
    "memcached://user:{s}@h1:11211;h2:11211/",
    "cache+memcached://user:{s}@h1:11211/",
]


def test_mask_url_hides_the_password_and_keeps_the_rest() -> None:
    assert mask_url("redis://user:secret@host:6379/0") == "redis://user:****@host:6379/0"
    assert mask_url("redis://:secret@host:6379/0") == "redis://:****@host:6379/0"
    assert mask_url("redis://host:6379/0") == "redis://host:6379/0"
    assert mask_url("sqlite:///var/lib/taskq.db") == "sqlite:///var/lib/taskq.db"


def test_mask_url_masks_every_host_of_a_multi_host_url() -> None:
    masked = mask_url("sentinel://:pw1@h1:26379;sentinel://:pw2@h2:26379/0")
    assert masked == "sentinel://:****@h1:26379;sentinel://:****@h2:26379/0"
    masked = mask_url("redis://:pw1@h1:6379,redis://:pw2@h2:6379/0")
    assert masked == "redis://:****@h1:6379,redis://:****@h2:6379/0"


def test_mask_url_masks_secrets_in_query_parameters() -> None:
    assert mask_url("redis://h1/0?db=1&password=pw&x=2") == "redis://h1/0?db=1&password=****&x=2"
    assert mask_url("sqs://h?aws_secret_access_key=k&region=eu") == "sqs://h?aws_secret_access_key=****&region=eu"


def test_mask_url_masks_aws_access_keys_as_well_as_secrets() -> None:
    assert mask_url("dynamodb://AKIAEXAMPLE:topsecret@us-east-1/t") == "dynamodb://****:****@us-east-1/t"
    assert mask_url("sqs://AKIAEXAMPLE:topsecret@127.0.0.1:9324") == "sqs://****:****@127.0.0.1:9324"


def test_mask_url_masks_a_password_written_unencoded() -> None:
    assert "p@ss" not in mask_url("redis://:p@ss@host:6379/0")
    assert "p;ss" not in mask_url("redis://:p;ss@host:6379/0")


@pytest.mark.parametrize("value", ["", "not a url", "://", "redis://[::1", "redis://:@h", "x" * 10])
def test_mask_url_never_raises(value: str) -> None:
    assert isinstance(mask_url(value), str)


@settings(max_examples=300, deadline=None)
@given(
    template=st.sampled_from(TEMPLATES),
    secret=st.text(min_size=4, max_size=40).filter(lambda s: s.strip() == s),
    encoded=st.booleans(),
)
def test_no_generated_secret_survives_mask_url(template: str, secret: str, encoded: bool) -> None:
    # A secret is written percent-encoded, as a URL must carry reserved characters; or
    # as typed, when it holds only characters a URL's user part takes unencoded.
    written = quote(secret, safe="") if encoded else secret
    if not encoded:
        assume(all(c.isalnum() or c in "-._~!$&'()*+=@" for c in secret))
        assume("&" not in secret or "?" not in template)
    skeleton = mask_url(template.replace("{s}", ""))
    assume(written not in skeleton and secret not in skeleton)
    masked = mask_url(template.replace("{s}", written))
    assert written not in masked
    assert secret not in masked


def test_redact_masks_urls_and_credentials_in_free_text() -> None:
    line = (
        "lost redis://:pw1@h1:6379/0 and 'sentinel://:pw2@h2;sentinel://:pw3@h3' (user@example.org) "
        "headers={'Authorization': b'AWS4-HMAC-SHA256 Credential=AKIAZQ7EXAMPLEKEY1/2026/us-east-1/s3/aws4_request, "
        "Signature=abc'} key AKIAZQ7EXAMPLEKEY2 Credential=ASIAEXAMPLEEXAMPLE3/x"
    )
    out = redact(line)
    for secret in (
        "pw1",
        "pw2",
        "pw3",
        "AKIAZQ7EXAMPLEKEY1",
        "AKIAZQ7EXAMPLEKEY2",
        "ASIAEXAMPLEEXAMPLE3",
        "Signature=abc",
    ):
        assert secret not in out, out
    assert "redis://:****@h1:6379/0" in out and "user@example.org" in out
