"""Where events go on Redis: kombu's fanout channels for the ``celeryev`` exchange."""

from __future__ import annotations

import pytest

from taskq_redis._events import EventLayout


def test_an_event_is_published_on_kombus_fanout_channel_for_its_routing_key() -> None:
    layout = EventLayout({}, "", 3)
    assert layout.exchange == "celeryev"
    assert layout.channel("task.succeeded") == "/3.celeryev/task.succeeded"
    assert layout.pattern == "/3.celeryev/*"


def test_the_global_keyprefix_comes_first_as_kombu_puts_it_before_every_channel() -> None:
    layout = EventLayout({}, "app1:", 0)
    assert layout.channel("worker.heartbeat") == "app1:/0.celeryev/worker.heartbeat"
    assert layout.pattern == "app1:/0.celeryev/*"


def test_wildcards_in_the_prefix_are_escaped_in_the_pattern() -> None:
    layout = EventLayout({}, "a*[b]?:", 0)
    assert layout.pattern == "a\\*\\[b\\]\\?:/0.celeryev/*"


@pytest.mark.parametrize(
    ("options", "channel", "pattern"),
    [
        ({"fanout_prefix": False}, "celeryev/task.sent", "celeryev/*"),
        ({"fanout_prefix": "/custom{db}."}, "/custom2.celeryev/task.sent", "/custom2.celeryev/*"),
        ({"fanout_patterns": False}, "/2.celeryev", "/2.celeryev"),
        ({"event_exchange": "myev"}, "/2.myev/task.sent", "/2.myev/*"),
    ],
)
def test_kombus_fanout_options_change_the_channels_as_in_kombu(
    options: dict[str, object], channel: str, pattern: str
) -> None:
    layout = EventLayout(options, "", 2)
    assert layout.channel("task.sent") == channel
    assert layout.pattern == pattern
