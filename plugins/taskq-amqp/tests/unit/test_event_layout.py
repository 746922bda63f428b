"""Celery's event layout on RabbitMQ: the exchange, a reader's queue, and an event's frames."""

from __future__ import annotations

import json

import pytest
from amqp.serialization import decode_properties_basic

from taskq.drivers.support.event_messages import event_message
from taskq.errors import ConfigError
from taskq_amqp._connection import encode_message
from taskq_amqp._events import EventLayout
from taskq_amqp._frames import publish_frames


def test_the_defaults_are_celerys() -> None:
    layout = EventLayout({})
    assert layout.exchange == "celeryev"
    assert layout.queue_prefix == "celeryev"
    # event_queue_ttl = 5.0 and event_queue_expires = 60.0, in milliseconds as kombu writes them
    assert layout.queue_arguments() == {"x-message-ttl": 5000, "x-expires": 60000}


def test_celerys_setting_names_change_them() -> None:
    layout = EventLayout(
        {"event_exchange": "ev", "event_queue_prefix": "mon", "event_queue_ttl": 0.5, "event_queue_expires": None}
    )
    assert (layout.exchange, layout.queue_prefix) == ("ev", "mon")
    assert layout.queue_arguments() == {"x-message-ttl": 500}


def test_a_ttl_that_is_not_a_number_says_so() -> None:
    with pytest.raises(ConfigError, match="event_queue_ttl must be a number of seconds"):
        EventLayout({"event_queue_ttl": "soon"})


def test_an_event_goes_out_as_celerys_dispatcher_sends_it() -> None:
    event = {"type": "worker-heartbeat", "hostname": "w1@host", "timestamp": 1.5, "active": 0}
    message = event_message(event)
    frames = publish_frames(1, "celeryev", "worker.heartbeat", encode_message(message), message.body, 131072)
    # method frame: basic.publish to celeryev with the routing key
    size = int.from_bytes(frames[3:7], "big")
    method = frames[7 : 7 + size]
    assert b"\x08celeryev\x10worker.heartbeat" in method
    # content header frame: the properties py-amqp reads back
    header_at = 7 + size + 1
    header_size = int.from_bytes(frames[header_at + 3 : header_at + 7], "big")
    header = frames[header_at + 7 : header_at + 7 + header_size]
    properties, _ = decode_properties_basic(header, 12)
    assert properties["content_type"] == "application/json"
    assert properties["content_encoding"] == "utf-8"
    assert properties["delivery_mode"] == 1
    assert properties["application_headers"] == {"hostname": "w1@host"}
    body_at = header_at + 7 + header_size + 1
    assert json.loads(frames[body_at + 7 : -1]) == event
