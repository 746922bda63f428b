"""The SQS message body, queue names and the plugin's registration, without a server."""

from __future__ import annotations

import base64
import json

import pytest

from taskq.drivers.support.envelope import UNDECODABLE_HEADER
from taskq.drivers.transport import Message
from taskq.errors import ConfigError
from taskq.testing.conformance.transport import make_message
from taskq_sqs import plugin
from taskq_sqs._layout import dead_queue_name, decode_body, encode_body, sqs_queue_name, whole_seconds
from taskq_sqs.transport import SQSReceipt


def test_the_body_round_trips_every_field() -> None:
    sent = make_message()
    assert decode_body(encode_body(sent)) == sent


def test_the_body_is_ascii_text() -> None:
    assert encode_body(make_message(nested="gr\u00fc\u00df \u2713 \ufffe")).isascii()


def test_a_body_from_taskq_sqs_01_without_the_base64_marker_is_read() -> None:
    old = json.dumps({"body": base64.b64encode(b"\x00\xff").decode(), "headers": {"id": "x"}, "properties": {}})
    assert decode_body(old) == Message(b"\x00\xff", {"id": "x"})


def test_a_foreign_body_becomes_the_stand_in_that_says_why() -> None:
    stand_in = decode_body("[1, 2]")
    assert stand_in.body == b"[1, 2]"
    assert "not a JSON object" in str(stand_in.headers[UNDECODABLE_HEADER])


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


def test_a_receipt_keys_a_dict_as_the_worker_keys_what_it_holds() -> None:
    receipt = SQSReceipt("https://sqs/q", "handle", "owner", lease_ends=1.0, sent_at=0.0)
    held = {receipt: "delivery"}
    receipt.lease_ends = 2.0  # renewed: still the same key
    assert held[receipt] == "delivery"
