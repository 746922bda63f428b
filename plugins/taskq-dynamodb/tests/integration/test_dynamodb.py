"""What the DynamoDB backend adds to the kit: its table, its limits and its errors."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator

import boto3
import pytest

from taskq import states
from taskq.errors import BackendUnavailableError, SerializationError
from taskq_dynamodb.backend import MAX_ITEM_BYTES, DynamoDBBackend

# Seconds between the interpreter's thread switches while threads race a counter: short,
# so that concurrent requests interleave on every run rather than once in a while.
RACY_SWITCH_INTERVAL = 0.0001
# Seconds a racing thread may take to finish its increments.
RACE_DEADLINE = 60.0


def _client(url: str) -> object:
    port = url.split(":")[2].split("/")[0]
    return boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1")


def test_the_table_is_created_with_ttl_enabled(table_url: str) -> None:
    backend = DynamoDBBackend(table_url)
    client = _client(table_url)
    ttl = client.describe_time_to_live(TableName=backend.table)["TimeToLiveDescription"]  # type: ignore[attr-defined]
    assert ttl["AttributeName"] == "ttl"
    assert ttl["TimeToLiveStatus"] in {"ENABLED", "ENABLING"}
    backend.close()


def test_a_missing_table_without_create_table_says_how_to_create_it(table_url: str) -> None:
    with pytest.raises(BackendUnavailableError, match="create_table"):
        DynamoDBBackend(table_url, {"create_table": "false"})


def test_an_unreachable_endpoint_names_the_url_with_its_keys_masked() -> None:
    url = "dynamodb://AKID:topsecret@127.0.0.1:9/results"
    with pytest.raises(BackendUnavailableError, match=r"\*\*\*\*:\*\*\*\*@127.0.0.1:9.*is the local DynamoDB") as info:
        DynamoDBBackend(url, {"max_attempts": 2, "connect_timeout": 1})
    assert "topsecret" not in str(info.value)
    assert "AKID" not in str(info.value)  # the access key id too


def test_a_result_larger_than_an_item_fails_clearly_and_stores_nothing(table_url: str) -> None:
    backend = DynamoDBBackend(table_url)
    with pytest.raises(SerializationError, match="DynamoDB item holds at most"):
        backend.store_result("big", "x" * MAX_ITEM_BYTES, states.SUCCESS)
    assert backend.get_task_meta("big")["status"] == states.PENDING
    backend.close()


def test_get_many_reads_more_than_one_batch(table_url: str) -> None:
    backend = DynamoDBBackend(table_url)
    ids = [f"t{i}" for i in range(250)]
    for task_id in ids[::2]:
        backend.store_result(task_id, task_id, states.SUCCESS)
    metas = backend.get_many([*ids, ids[0]])
    assert [metas[t]["status"] for t in ids] == [states.SUCCESS, states.PENDING] * 125
    backend.close()


def test_an_expired_item_is_ignored_before_dynamodb_deletes_it(table_url: str) -> None:
    backend = DynamoDBBackend(table_url, expires=0.2)
    backend.store_result("soon", 1, states.SUCCESS)
    deadline = time.monotonic() + 5
    while backend.get_task_meta("soon")["status"] != states.PENDING:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    item = _client(table_url).get_item(TableName=backend.table, Key={"id": {"S": "celery-task-meta-soon"}})  # type: ignore[attr-defined]
    assert "Item" in item  # still there: moto, like DynamoDB, deletes lazily
    backend.close()


def test_an_expired_counter_starts_again_from_one(table_url: str) -> None:
    backend = DynamoDBBackend(table_url)
    assert [backend.incr("c", expires=0.2) for _ in range(3)] == [1, 2, 3]
    deadline = time.monotonic() + 5
    while backend.get("c") is not None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert backend.incr("c", expires=0.2) == 1
    backend.close()


@pytest.fixture
def racy_threads() -> Iterator[None]:
    """Threads switch often: every read-modify-write on the server side gets interleaved."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(RACY_SWITCH_INTERVAL)
    yield
    sys.setswitchinterval(before)


def _race(backend: DynamoDBBackend, key: str, threads: int, per_thread: int) -> list[int]:
    """Every value ``incr(key)`` answered to ``threads`` threads started together."""
    seen: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def count() -> None:
        start.wait(RACE_DEADLINE)
        mine = [backend.incr(key) for _ in range(per_thread)]
        with lock:
            seen.extend(mine)

    workers = [threading.Thread(target=count) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(RACE_DEADLINE)
    return seen


def test_concurrent_increments_of_a_new_counter_each_count_once(table_url: str, racy_threads: None) -> None:
    # The test server must apply each UpdateItem whole, as DynamoDB does: moto's threaded
    # server does not, and this test fails against it on most rounds (see taskq.testing.conformance._moto).
    backend = DynamoDBBackend(table_url)
    threads, per_thread = 4, 10
    for round_number in range(10):
        seen = _race(backend, f"race-{round_number}", threads, per_thread)
        assert sorted(seen) == list(range(1, threads * per_thread + 1)), f"round {round_number}"
    backend.close()
