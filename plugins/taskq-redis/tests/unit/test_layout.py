"""kombu's names on Redis: priorities map to its list names, URLs read as Celery writes them.

The envelope itself is core's (``taskq.drivers.support.envelope``) and tested there.
"""

from __future__ import annotations

import pytest

from taskq.errors import ConfigError
from taskq_redis._connection import connect
from taskq_redis._layout import kombu_topic_pattern
from taskq_redis.transport import priority_step, queue_key


@pytest.mark.parametrize(
    ("priority", "step"),
    [(None, "0"), (0, "0"), (2, "0"), (3, "3"), (5, "3"), (6, "6"), (8, "6"), (9, "9"), (42, "9"), (-1, "0")],
)
def test_priorities_round_down_to_kombus_steps(priority: object, step: str) -> None:
    assert priority_step(priority) == step


def test_queue_keys_are_kombus_names() -> None:
    assert queue_key("celery") == "celery"
    assert queue_key("celery", 4) == "celery\x06\x163"
    assert queue_key("celery", 9, prefix="p:") == "p:celery\x06\x169"


def test_a_sentinel_url_without_a_master_name_says_what_to_set() -> None:
    with pytest.raises(ConfigError, match="master_name"):
        connect("sentinel://127.0.0.1:26379", {})


def test_an_unknown_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="redis://"):
        connect("amqp://127.0.0.1", {})


def test_urls_are_read_as_celery_writes_them() -> None:
    endpoint = connect("redis://:secret@127.0.0.1:6390/3", {"global_keyprefix": "app:"})
    assert endpoint.db == 3
    assert endpoint.prefix == "app:"
    assert "secret" not in endpoint.masked_url
    endpoint.client.close()


def test_kombu_topic_patterns_are_written_as_kombu_writes_them() -> None:
    assert kombu_topic_pattern("jobs.*.#") == r"^jobs\.[^\.]+\..*?$"
    assert kombu_topic_pattern("a-b.c") == r"^a\-b\.c$"
