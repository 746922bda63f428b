"""Hostile input: events, result records and remote control replies are checked; none crashes anything."""

from __future__ import annotations

import math
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskq_dashboard.checks import MAX_TEXT, clean_event, clean_record
from taskq_dashboard.cluster import _requests, _stats
from taskq_dashboard.ingest import Ingest
from taskq_dashboard.store import Store

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)
KEYS = [
    "type",
    "uuid",
    "timestamp",
    "hostname",
    "name",
    "args",
    "kwargs",
    "result",
    "exception",
    "traceback",
    "runtime",
    "retries",
    "root_id",
    "parent_id",
    "eta",
    "expires",
    "freq",
    "active",
    "processed",
    "loadavg",
    "pid",
]
TYPES = [
    "task-received",
    "task-started",
    "task-succeeded",
    "task-failed",
    "task-retried",
    "task-revoked",
    "task-sent",
    "task-rejected",
    "worker-online",
    "worker-heartbeat",
    "worker-offline",
    "task-",
    "weird",
]
event_like = st.dictionaries(
    st.sampled_from(KEYS),
    json_values | st.sampled_from(TYPES) | st.floats(allow_nan=True, allow_infinity=True),
    max_size=len(KEYS),
)


def test_a_good_event_is_kept_with_its_fields() -> None:
    event = clean_event(
        {
            "type": "task-received",
            "uuid": "u",
            "timestamp": 1.5,
            "name": "n",
            "args": "(1,)",
            "retries": 2,
            "extra": object(),
        }
    )
    assert event == {"type": "task-received", "uuid": "u", "timestamp": 1.5, "name": "n", "args": "(1,)", "retries": 2}


def test_events_with_fields_of_the_wrong_kind_are_refused() -> None:
    base = {"type": "task-succeeded", "uuid": "u", "timestamp": 1.0}
    assert clean_event(base) is not None
    for bad in (
        {"uuid": 5},
        {"timestamp": math.nan},
        {"timestamp": "now"},
        {"runtime": "fast"},
        {"retries": True},
        {"retries": -1},
        {"name": ["x"]},
        {"uuid": "u" * 300},
        {"type": 7},
        {"traceback": {"a": 1}},
    ):
        assert clean_event({**base, **bad}) is None, bad
    assert clean_event(["not", "a", "mapping"]) is None
    assert clean_event({"type": "worker-heartbeat", "timestamp": 1.0}) is None  # no hostname


def test_long_text_is_cut() -> None:
    event = clean_event({"type": "task-succeeded", "uuid": "u", "timestamp": 1.0, "result": "x" * (MAX_TEXT * 3)})
    assert event is not None
    assert len(str(event["result"])) <= MAX_TEXT + 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(event_like | json_values, max_size=30))
def test_fuzzed_events_never_crash_the_ingest_and_are_counted(tmp_path: Path, events: list[object]) -> None:
    store = Store(tmp_path / "fuzz.db")
    ingest = Ingest(store)
    for raw in events:
        ingest.take(raw)
    ingest.flush()
    assert ingest.events == len(events)
    kept = sum(1 for raw in events if clean_event(raw) is not None)
    assert ingest.malformed == len(events) - kept
    store.tasks(limit=500)
    store.count_by_state()
    store.rates(time.time() - 3600)
    assert store.counters().get("malformed", 0) >= ingest.malformed
    store.close()


@settings(max_examples=200, deadline=None)
@given(json_values | event_like)
def test_fuzzed_result_records_are_shown_or_refused_never_raise(raw: object) -> None:
    record = clean_record(raw)
    assert record is None or isinstance(record["status"], str)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_fuzzed_remote_control_replies_are_checked(raw: object) -> None:
    assert isinstance(_stats(raw), dict)
    assert isinstance(_requests(raw), list)
    assert isinstance(_stats({"pool": raw, "total": raw, "uptime": raw, "broker": raw}), dict)
    assert isinstance(_requests([raw, {"id": "x", "args": raw, "kwargs": raw, "time_start": raw}]), list)
