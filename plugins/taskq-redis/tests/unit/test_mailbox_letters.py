"""What a remote control reader makes of a payload: a letter from kombu's envelope, nothing (logged) from the rest."""

from __future__ import annotations

import base64
import json
import logging

import pytest

from taskq.drivers.transport import Letter
from taskq_redis._mailbox import LetterDecoder


def envelope(body: bytes, content_type: str = "application/json", headers: object = None) -> bytes:
    return json.dumps(
        {
            "body": base64.b64encode(body).decode(),
            "content-encoding": "utf-8",
            "content-type": content_type,
            "headers": headers if headers is not None else {"clock": 3, "ticket": "t-1"},
            "properties": {
                "delivery_info": {"exchange": "celery.pidbox", "routing_key": ""},
                "body_encoding": "base64",
            },
        }
    ).encode()


REQUEST = {"method": "ping", "arguments": {}, "destination": None, "pattern": None, "matcher": None}

HOSTILE = {
    "not-json": b"\xff\x00{ not json",
    "not-an-object": b'["a", "list"]',
    "no-body": b'{"properties": {}, "headers": {}}',
    "bad-base64": json.dumps({"body": "%%%", "properties": {"body_encoding": "base64"}}).encode(),
    "headers-not-an-object": envelope(b"{}", headers=["clock"]),
    "pickle": envelope(b"\x80\x04K\x01.", "application/x-python-serialize"),
    "msgpack": envelope(b"\x81\xa6method\xa4ping", "application/x-msgpack"),
    "body-not-json": envelope(b"{'method': 'ping'}"),
    "body-not-utf8": envelope(b'{"method": "\xff"}'),
    "deep-body": envelope(b"[" * 100_000),
    "deep-envelope": b"[" * 100_000,
    "empty": b"",
}


def test_kombus_envelope_gives_its_body_and_headers() -> None:
    decoder = LetterDecoder("test")
    assert decoder.letters([envelope(json.dumps(REQUEST).encode())]) == [Letter(REQUEST, {"clock": 3, "ticket": "t-1"})]
    assert decoder.left_out == 0


def test_a_body_that_is_not_an_object_is_handed_on_unchecked() -> None:
    [letter] = LetterDecoder("test").letters([envelope(b"[1, 2]")])
    assert letter.body == [1, 2]


@pytest.mark.parametrize("payload", list(HOSTILE.values()), ids=list(HOSTILE))
def test_a_hostile_payload_is_left_out_and_logged_without_its_data(
    payload: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    decoder = LetterDecoder("redis://host/0 (channel /0.celery.pidbox)")
    good = envelope(json.dumps(REQUEST).encode())
    with caplog.at_level(logging.WARNING):
        letters = decoder.letters([payload, good])
    assert [letter.body for letter in letters] == [REQUEST]
    assert decoder.left_out == 1
    [warning] = caplog.records
    assert "left out a remote control message from redis://host/0 (channel /0.celery.pidbox)" in warning.getMessage()
    assert "ping" not in warning.getMessage()  # what was wrong, never the data


def test_each_cause_is_warned_of_once_then_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    decoder = LetterDecoder("test")
    with caplog.at_level(logging.DEBUG, logger="taskq_redis._mailbox"):
        decoder.letters([HOSTILE["not-json"], HOSTILE["pickle"]] * 3)
    assert decoder.left_out == 6
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2
    assert len([r for r in caplog.records if r.levelno == logging.DEBUG]) == 4
