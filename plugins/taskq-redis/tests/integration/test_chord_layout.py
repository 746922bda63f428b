"""A chord's claim in Celery's Redis layout: the ``.c`` key, held by the part that took the
chord until the body is marked sent, and shared with Celery workers' claims."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from taskq import states
from taskq.drivers.backend import ChordPart
from taskq_redis.backend import CHORD_CLAIM_SECONDS, CHORD_DONE_SECONDS, RedisBackend

pytestmark = pytest.mark.integration

SIZE = 3


@pytest.fixture
def backend(redis_url: str, prefix: str) -> Iterator[RedisBackend]:
    backend = RedisBackend(redis_url, {"global_keyprefix": prefix})
    yield backend
    backend.close()


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def header(backend: RedisBackend) -> list[ChordPart]:
    """A chord of SIZE ended header tasks, its size recorded, none of them counted yet."""
    group_id = str(uuid.uuid4())
    parts = [ChordPart(group_id, str(uuid.uuid4()), index, states.SUCCESS, index) for index in range(SIZE)]
    backend.set_chord_size(group_id, SIZE)
    for part in parts:
        backend.store_result(part.task_id, part.result, part.state)
    return parts


def key(prefix: str, part: ChordPart, suffix: str) -> str:
    return f"{prefix}celery-taskset-meta-{part.group_id}{suffix}"


def test_the_part_that_takes_a_chord_holds_its_claim_until_the_body_is_marked_sent(
    backend: RedisBackend, raw: redis.Redis, prefix: str
) -> None:
    parts = header(backend)
    assert backend.count_chord_part(parts[0]) is None
    assert backend.count_chord_part(parts[2]) is None
    assert backend.count_chord_part(parts[1]) is not None
    assert raw.get(key(prefix, parts[1], ".c")) == f"taskq {parts[1].task_id}:1".encode()
    assert 0 < raw.ttl(key(prefix, parts[1], ".c")) <= CHORD_CLAIM_SECONDS
    assert raw.zcard(key(prefix, parts[1], ".j")) == SIZE  # kept: the same part counted again needs it
    backend.chord_body_sent(parts[1].group_id)
    assert raw.get(key(prefix, parts[1], ".c")) == b"done"
    assert 0 < raw.ttl(key(prefix, parts[1], ".c")) <= CHORD_DONE_SECONDS
    assert raw.exists(*(key(prefix, parts[1], suffix) for suffix in (".j", ".t", ".s", ".d"))) == 0


def test_a_chord_claimed_by_a_celery_worker_is_taken_only_once_the_claim_lapsed(
    backend: RedisBackend, raw: redis.Redis, prefix: str
) -> None:
    parts = header(backend)
    assert backend.count_chord_part(parts[0]) is None
    assert backend.count_chord_part(parts[1]) is None
    raw.set(key(prefix, parts[0], ".c"), uuid.uuid4().hex, ex=60)  # a Celery worker's claim token
    assert backend.count_chord_part(parts[2]) is None
    raw.delete(key(prefix, parts[0], ".c"))  # what its expiry does: that worker died
    metas = backend.count_chord_part(parts[2])
    assert metas is not None
    assert [m["result"] for m in metas] == [0, 1, 2]


def test_a_taskq_claim_that_lapsed_is_taken_by_another_part(
    backend: RedisBackend, raw: redis.Redis, prefix: str
) -> None:
    parts = header(backend)
    for part in parts:
        backend.count_chord_part(part)
    assert backend.count_chord_part(parts[0]) is None  # the claim is parts[2]'s
    raw.delete(key(prefix, parts[0], ".c"))  # what its expiry does
    metas = backend.count_chord_part(parts[0])
    assert metas is not None
    assert [m["result"] for m in metas] == [0, 1, 2]


def test_a_chord_a_celery_worker_marked_done_is_not_taken(backend: RedisBackend, raw: redis.Redis, prefix: str) -> None:
    parts = header(backend)
    assert backend.count_chord_part(parts[0]) is None
    assert backend.count_chord_part(parts[1]) is None
    raw.set(key(prefix, parts[0], ".c"), "done", ex=60)
    assert backend.count_chord_part(parts[2]) is None
