"""Fuzzing what monitors and ``taskq graph`` read from a broker or a result store: event
messages (Redis and RabbitMQ), event log entries (SQLite, filesystem) and recorded
workflow shapes. Whatever was written there, the reader leaves it out or refuses it with
its own error; it never raises anything else."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskq import App
from taskq.drivers.backend import WORKFLOW_PREFIX, WORKFLOW_STATE
from taskq.drivers.support.event_messages import EventDecoder
from taskq.drivers.support.eventlog import decode_event
from taskq.errors import SerializationError
from taskq.graph import workflow_tree

EXAMPLES = 300

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=25,
)
# Event-like documents: the fields readers look at, holding anything.
events = st.fixed_dictionaries(
    {},
    optional={
        "type": json_values | st.sampled_from(["task-succeeded", "worker-heartbeat", ""]),
        "hostname": json_values,
        "timestamp": json_values,
        "uuid": json_values,
        "clock": json_values,
    },
)
bodies = (
    st.binary(max_size=200)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.lists(events).map(lambda v: json.dumps(v).encode())
    | events.map(lambda v: json.dumps(v).encode())
)
content_types = st.sampled_from(["application/json", "", "application/x-python-serialize", "text/plain; x"]) | st.none()


def envelope(body: bytes, content_type: object, encoding: object, extra: dict[str, object]) -> bytes:
    document = {
        "body": base64.b64encode(body).decode(),
        "content-type": content_type,
        "content-encoding": encoding,
        "headers": {},
        "properties": {"body_encoding": "base64", "delivery_info": {"exchange": "celeryev", "routing_key": "x"}},
        **extra,
    }
    return json.dumps(document).encode()


def only_events(found: object) -> None:
    assert isinstance(found, list)
    for event in found:
        assert isinstance(event, dict) and isinstance(event["type"], str)


@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(body=bodies, content_type=content_types)
def test_an_event_body_is_read_or_left_out(body: bytes, content_type: str | None) -> None:
    only_events(EventDecoder("fuzz").from_body(body, content_type))


@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    body=bodies,
    content_type=json_values,
    encoding=json_values,
    extra=st.dictionaries(st.sampled_from(["body", "headers", "properties", "content-type"]), json_values, max_size=2),
)
def test_an_event_envelope_is_read_or_left_out(
    body: bytes, content_type: object, encoding: object, extra: dict[str, object]
) -> None:
    only_events(EventDecoder("fuzz").from_envelope(envelope(body, content_type, encoding, extra)))


@settings(max_examples=EXAMPLES, deadline=None)
@given(payload=st.binary(max_size=300))
def test_any_bytes_on_an_event_channel_are_read_or_left_out(payload: bytes) -> None:
    only_events(EventDecoder("fuzz").from_envelope(payload))


@settings(max_examples=EXAMPLES, deadline=None)
@given(raw=st.binary(max_size=200) | json_values.map(json.dumps) | events.map(json.dumps))
def test_an_event_log_entry_is_an_event_or_a_value_error(raw: bytes | str) -> None:
    try:
        event = decode_event(raw)
    except ValueError:
        return
    assert isinstance(event["type"], str)


# Workflow shapes: the kinds and keys taskq writes, holding anything.
kinds = st.sampled_from(["task", "group", "chain", "chord", "chunks", "spiral"]) | json_values
shapes = st.recursive(
    st.fixed_dictionaries({"kind": kinds}, optional={"id": json_values, "task": json_values}),
    lambda inner: st.fixed_dictionaries(
        {"kind": kinds},
        optional={
            "id": json_values | st.text(max_size=6),
            "steps": st.lists(inner, max_size=3) | json_values,
            "members": st.lists(inner, max_size=3) | json_values,
            "header": inner | json_values,
            "body": inner | json_values,
            "items": json_values,
        },
    ),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def graph_app() -> App:
    return App("fuzz-graph", broker="memory://fuzz-graph", backend="memory://fuzz-graph", read_config=False)


@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(shape=shapes | json_values)
def test_a_recorded_workflow_shape_is_shown_or_refused(graph_app: App, shape: object) -> None:
    key = WORKFLOW_PREFIX + "fuzzed"
    graph_app.backend.store_meta(key, {"status": WORKFLOW_STATE, "result": shape, "task_id": key})
    try:
        tree = workflow_tree("fuzzed", graph_app, children=False)
    except SerializationError as exc:
        assert "is malformed" in str(exc)
        return
    assert isinstance(tree, dict) and "kind" in tree
