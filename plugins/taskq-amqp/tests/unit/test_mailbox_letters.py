"""What a mailbox reader makes of what arrives: a letter from JSON, nothing (and a log line)
from anything else, and headers in JSON's types with text keys only. Also the layout's names."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from taskq.errors import ConfigError
from taskq_amqp._mailbox import LetterDecoder, PidboxLayout, plain
from taskq_amqp._reader import decode_properties

JSON = {"content_type": "application/json", "content_encoding": "utf-8"}


@pytest.fixture
def decoder() -> LetterDecoder:
    return LetterDecoder("amqp://guest:***@127.0.0.1:5672/ (queue w@host.celery.pidbox)")


def test_a_json_message_is_a_letter_with_its_headers(decoder: LetterDecoder) -> None:
    properties = {**JSON, "application_headers": {"clock": 3, "expires": 1700000000.5}}
    letter = decoder.decode(b'{"method": "ping", "arguments": {"text": "gr\\u00fc\\u00df"}}', properties)
    assert letter is not None
    assert letter.body == {"method": "ping", "arguments": {"text": "gr\u00fc\u00df"}}
    assert letter.headers == {"clock": 3, "expires": 1700000000.5}


def test_any_json_value_is_a_letter_the_reader_of_which_checks_it(decoder: LetterDecoder) -> None:
    letter = decoder.decode(b"[1, 2]", {"content_type": "application/json"})
    assert letter is not None and letter.body == [1, 2] and letter.headers == {}


def test_a_message_without_a_content_type_is_read_as_json(decoder: LetterDecoder) -> None:
    letter = decoder.decode(b'{"method": "ping"}', {})
    assert letter is not None and letter.body == {"method": "ping"}


HOSTILE: dict[str, tuple[bytes, dict[str, object]]] = {
    "not-json": (b"{ not json", JSON),
    "not-utf8": (b"\xff\xfe\x00", JSON),
    "too-deep": (b"[" * 100_000, JSON),
    "pickle": (b"\x80\x04K\x01.", {"content_type": "application/x-python-serialize"}),
    "yaml": (b"method: ping", {"content_type": "application/x-yaml"}),
    "unreadable-properties": (b'{"method": "ping"}', decode_properties(b"\x80\x00\x02\xff\xfe", 0)),
}


@pytest.mark.parametrize("hostile", list(HOSTILE.values()), ids=list(HOSTILE))
def test_a_message_that_is_not_json_is_left_out_and_logged_never_raised(
    decoder: LetterDecoder, hostile: tuple[bytes, dict[str, object]], caplog: pytest.LogCaptureFixture
) -> None:
    body, properties = hostile
    with caplog.at_level(logging.WARNING):
        assert decoder.decode(body, properties) is None
    assert decoder.left_out == 1
    [record] = caplog.records
    assert "left out a control message" in record.getMessage()
    assert "w@host.celery.pidbox" in record.getMessage()


def test_each_cause_is_warned_of_once_then_at_debug(decoder: LetterDecoder, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        for _ in range(3):
            decoder.decode(b"{ not json", JSON)
            decoder.decode(b"x", {"content_type": "text/plain"})
    assert decoder.left_out == 6
    assert [r.levelno for r in caplog.records].count(logging.WARNING) == 2


def test_the_body_never_reaches_the_log(decoder: LetterDecoder, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        decoder.decode(b'{"password": "hunter2"', JSON)
    assert "hunter2" not in caplog.text


def test_headers_keep_only_text_keys_at_every_depth() -> None:
    table: dict[object, object] = {"clock": 1, b"\xff": "dropped", "nested": {b"\xfe": 1, "kept": 2}}
    assert plain(table) == {"clock": 1, "nested": {"kept": 2}}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"caf\xc3\xa9", "caf\u00e9"),
        (b"\xff", "\ufffd"),
        (Decimal("1.25"), 1.25),
        (datetime(2024, 1, 2, 3, 4, 5), datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()),
        (datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()),
        ([1, b"x", [Decimal("2")]], [1, "x", [2.0]]),
        ((1, 2), [1, 2]),
        (None, None),
        (True, True),
        (2**40, 2**40),
        (0.5, 0.5),
    ],
    ids=["bytes", "bytes-not-utf8", "decimal", "timestamp", "aware", "array", "tuple", "void", "bool", "long", "float"],
)
def test_amqp_value_types_become_json_types(value: object, expected: object) -> None:
    assert plain(value) == expected


def test_headers_nested_deeper_than_python_recurses_leave_the_message_out(
    decoder: LetterDecoder, caplog: pytest.LogCaptureFixture
) -> None:
    deep: dict[str, object] = {}
    for _ in range(100_000):
        deep = {"x": deep}
    with caplog.at_level(logging.WARNING):
        assert decoder.decode(b"{}", {**JSON, "application_headers": deep}) is None
    assert "headers cannot be read" in caplog.text


def test_the_layout_names_are_celerys() -> None:
    layout = PidboxLayout({}, "celery")
    assert layout.exchange == "celery.pidbox"
    assert layout.reply_exchange == "reply.celery.pidbox"
    assert layout.node_queue("w1@host") == "w1@host.celery.pidbox"
    assert layout.reply_queue("c0ffee") == "c0ffee.reply.celery.pidbox"
    # control_queue_ttl = 300.0 and control_queue_expires = 10.0, in milliseconds as kombu writes them
    assert layout.queue_arguments() == {"x-message-ttl": 300_000, "x-expires": 10_000}


def test_the_queue_arguments_follow_celerys_settings() -> None:
    layout = PidboxLayout({"control_queue_ttl": 0, "control_queue_expires": 2.5}, "ops")
    assert layout.queue_arguments() == {"x-expires": 2500}
    with pytest.raises(ConfigError, match="control_queue_ttl must be a number of seconds"):
        PidboxLayout({"control_queue_ttl": "soon"}, "ops")


def test_a_node_name_too_long_for_its_queue_says_so() -> None:
    layout = PidboxLayout({}, "celery")
    assert layout.node_queue("w" * 200 + "@host")
    with pytest.raises(ConfigError, match="taskq worker -n"):
        layout.node_queue("w" * 250 + "@host")


def test_a_control_exchange_too_long_for_the_reply_queues_says_so() -> None:
    with pytest.raises(ConfigError, match="control_exchange to a shorter name"):
        PidboxLayout({}, "n" * 210)
