"""The SQS envelope, queue names and the plugin's registration, without a server."""

from __future__ import annotations

import pytest

from taskq.errors import ConfigError
from taskq.testing.conformance.transport import make_message
from taskq_sqs import plugin
from taskq_sqs.transport import dead_queue_name, decode, encode, sqs_queue_name, whole_seconds


def test_envelope_round_trips_every_field() -> None:
    sent = make_message()
    assert decode(encode(sent)) == sent


def test_envelope_is_ascii_text() -> None:
    assert encode(make_message()).isascii()


def test_a_foreign_body_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="envelope"):
        decode("[1, 2]")


def test_queue_names_get_the_prefix_and_lose_characters_sqs_refuses() -> None:
    assert sqs_queue_name("celery.high", "app-") == "app-celery-high"
    assert sqs_queue_name("orders.fifo") == "orders.fifo"
    assert dead_queue_name("orders.fifo") == "orders-dead.fifo"


def test_a_queue_name_too_long_for_sqs_says_so() -> None:
    with pytest.raises(ConfigError, match="80"):
        sqs_queue_name("q" * 81)


def test_fractions_of_a_second_round_up() -> None:
    assert [whole_seconds(s) for s in (0, 0.3, 1.0, 1.2)] == [0, 1, 1, 2]


def test_plugin_registers_the_sqs_scheme() -> None:
    assert plugin.taskq_register_transports() == {"sqs": "taskq_sqs.transport:SQSTransport"}
