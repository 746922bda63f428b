"""Results sit in Celery's collections and fields; counters survive a race; faults are explained."""

from __future__ import annotations

import datetime
import socket
import threading
import uuid
from collections.abc import Iterator

import pymongo
import pytest

from taskq import states
from taskq.errors import BackendUnavailableError
from taskq_mongo.backend import MongoBackend, database_name


@pytest.fixture
def backend(mongo_url: str) -> Iterator[MongoBackend]:
    made = MongoBackend(mongo_url, expires=3600)
    yield made
    made.close()


@pytest.fixture
def raw(mongo_url: str) -> Iterator[pymongo.database.Database[dict[str, object]]]:
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(mongo_url, tz_aware=True)
    yield client[database_name(mongo_url)]
    client.close()


def test_a_result_is_a_celery_taskmeta_document(
    backend: MongoBackend, raw: pymongo.database.Database[dict[str, object]]
) -> None:
    task_id = uuid.uuid4().hex
    backend.store_result(task_id, {"sum": 3}, states.SUCCESS, request_info={"name": "tests.add", "args": [1, 2]})
    doc = raw["celery_taskmeta"].find_one({"_id": task_id})
    assert doc is not None
    assert doc["status"] == states.SUCCESS
    assert doc["result"] == '{"sum": 3}' or doc["result"] == '{"sum":3}'
    assert isinstance(doc["date_done"], datetime.datetime)
    assert isinstance(doc["expires_at"], datetime.datetime)
    assert doc["name"] == "tests.add"


def test_a_group_is_a_celery_groupmeta_document(
    backend: MongoBackend, raw: pymongo.database.Database[dict[str, object]]
) -> None:
    group_id, members = uuid.uuid4().hex, [uuid.uuid4().hex, uuid.uuid4().hex]
    backend.save_group(group_id, members)
    doc = raw["celery_groupmeta"].find_one({"_id": group_id})
    assert doc is not None
    assert backend._load(doc["result"]) == members


def test_an_expired_document_not_yet_removed_by_the_ttl_monitor_is_ignored(
    backend: MongoBackend, raw: pymongo.database.Database[dict[str, object]]
) -> None:
    task_id = uuid.uuid4().hex
    backend.store_result(task_id, 1, states.SUCCESS)
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1)
    raw["celery_taskmeta"].update_one({"_id": task_id}, {"$set": {"expires_at": past}})
    assert backend.get_task_meta(task_id)["status"] == states.PENDING


def test_an_expired_counter_starts_again_at_one(
    backend: MongoBackend, raw: pymongo.database.Database[dict[str, object]]
) -> None:
    group_id = uuid.uuid4().hex
    assert backend.incr_chord_counter(group_id) == 1
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1)
    raw["taskq_kv"].update_one({"_id": f"chord-unlock-{group_id}"}, {"$set": {"expires_at": past}})
    assert backend.incr_chord_counter(group_id) == 1


def test_many_first_time_counters_raced_by_threads_each_count_exactly(backend: MongoBackend) -> None:
    # Upserts that race a first-time upsert can return None after incrementing: the
    # backend creates counters with insert_one instead, so every value is seen once.
    groups = [uuid.uuid4().hex for _ in range(20)]
    seen: dict[str, list[int]] = {group: [] for group in groups}
    lock = threading.Lock()

    def count() -> None:
        for group in groups:
            for _ in range(5):
                value = backend.incr_chord_counter(group)
                with lock:
                    seen[group].append(value)

    threads = [threading.Thread(target=count) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for group in groups:
        assert sorted(seen[group]) == list(range(1, 21))


def test_unreachable_mongodb_raises_backend_unavailable_with_the_masked_url() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = MongoBackend(f"mongodb://user:secret@127.0.0.1:{port}/db", {"server_selection_timeout": 0.3})
    with pytest.raises(BackendUnavailableError, match=r"user:\*\*\*\*@127\.0\.0\.1.*is MongoDB running") as info:
        backend.get_task_meta(uuid.uuid4().hex)
    assert "secret" not in str(info.value)
