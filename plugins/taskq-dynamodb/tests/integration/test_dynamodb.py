"""What the DynamoDB backend adds to the kit: its table, its limits and its errors."""

from __future__ import annotations

import time

import boto3
import pytest

from taskq import states
from taskq.errors import BackendUnavailableError, SerializationError
from taskq_dynamodb.backend import MAX_ITEM_BYTES, DynamoDBBackend


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


def test_an_unreachable_endpoint_names_the_url_with_its_secret_masked() -> None:
    url = "dynamodb://AKID:topsecret@127.0.0.1:9/results"
    with pytest.raises(BackendUnavailableError, match=r"AKID:\*\*\*\*@127.0.0.1:9.*is the local DynamoDB") as info:
        DynamoDBBackend(url, {"max_attempts": 2, "connect_timeout": 1})
    assert "topsecret" not in str(info.value)


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
