"""What the S3 backend adds to the kit: expiry clean-up, conditional writes and its errors."""

from __future__ import annotations

import time

import pytest

from taskq import states
from taskq.errors import BackendUnavailableError
from taskq_s3.backend import S3Backend


def test_a_missing_bucket_without_create_bucket_says_how_to_create_it(url: str, options: dict[str, object]) -> None:
    with pytest.raises(BackendUnavailableError, match="aws s3 mb"):
        S3Backend(url, {**options, "create_bucket": False})


def test_an_unreachable_endpoint_names_the_url_and_what_to_check(url: str) -> None:
    options = {"endpoint_url": "http://127.0.0.1:9", "region": "us-east-1", "max_attempts": 2, "connect_timeout": 1}
    with pytest.raises(BackendUnavailableError, match=r"s3://taskq-.*is the S3 endpoint http://127.0.0.1:9 running"):
        S3Backend(url, {**options, "aws_access_key_id": "a", "aws_secret_access_key": "b"})


def test_conditional_writes_are_detected_and_give_a_chord_counter(url: str, options: dict[str, object]) -> None:
    backend = S3Backend(url, options)
    assert backend.capabilities.chord_counter
    backend.close()


def test_without_conditional_writes_there_is_no_chord_counter_and_the_error_names_alternatives(
    url: str, options: dict[str, object]
) -> None:
    backend = S3Backend(url, {**options, "conditional_writes": "false"})
    assert not backend.capabilities.chord_counter
    assert S3Backend.capabilities.chord_counter  # the class keeps its own answer
    with pytest.raises(NotImplementedError, match="redis, dynamodb"):
        backend.incr_chord_counter("g")
    backend.close()


def test_delete_expired_removes_only_expired_objects(url: str, options: dict[str, object]) -> None:
    keeping = S3Backend(url, options)
    expiring = S3Backend(url, {**options, "cleanup_interval": 0}, expires=0.2)
    keeping.store_result("kept", 1, states.SUCCESS)
    expiring.store_result("gone", 1, states.SUCCESS)
    time.sleep(0.3)  # past the expiry, which is what is being tested
    assert expiring.delete_expired() == 1
    listed = expiring.client.list_objects_v2(Bucket=expiring.bucket, Prefix=expiring.prefix)
    assert [entry["Key"] for entry in listed["Contents"]] == ["results/celery-task-meta-kept"]
    keeping.close()
    expiring.close()


def test_an_expired_counter_starts_again_from_one(url: str, options: dict[str, object]) -> None:
    backend = S3Backend(url, options)
    assert [backend.incr("c", expires=0.2) for _ in range(3)] == [1, 2, 3]
    deadline = time.monotonic() + 5
    while backend.get("c") is not None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert backend.incr("c", expires=0.2) == 1
    backend.close()


def test_a_counter_write_that_lost_a_race_is_retried_on_the_new_value(url: str, options: dict[str, object]) -> None:
    first, second = S3Backend(url, options), S3Backend(url, options)
    assert first.incr("c") == 1
    stale_read = first._read_with_etag

    def read_then_lose_the_race(key: str) -> tuple[bytes | None, str | None]:
        found = stale_read(key)
        if first._read_with_etag is read_then_lose_the_race:
            first._read_with_etag = stale_read  # type: ignore[method-assign]
            assert second.incr(key) == 2  # another process writes between our read and our write
        return found

    first._read_with_etag = read_then_lose_the_race  # type: ignore[method-assign]
    assert first.incr("c") == 3
    first.close()
    second.close()
