"""Celery's message protocol 2: building, encoding and decoding task messages."""

from __future__ import annotations

import datetime

import pytest

from taskq._protocol import REPR_MAX, TaskMessage, build_headers, decode, encode, from_iso, to_iso
from taskq._serialization import SerializerRegistry
from taskq.builtins.pickle import PICKLE
from taskq.drivers.serializer import JSON
from taskq.drivers.transport import Message
from taskq.errors import ContentDisallowedError, MessageDecodeError

# Celery 5's protocol 2 headers and delivery properties (celery/app/amqp.py, as_task_v2).
CELERY_HEADERS = {
    "lang",
    "task",
    "id",
    "shadow",
    "eta",
    "expires",
    "group",
    "group_index",
    "retries",
    "timelimit",
    "root_id",
    "parent_id",
    "argsrepr",
    "kwargsrepr",
    "origin",
    "ignore_result",
}
CELERY_PROPERTIES = {"correlation_id", "reply_to", "delivery_mode"}


@pytest.fixture
def registry() -> SerializerRegistry:
    return SerializerRegistry([JSON, PICKLE], ["json"])


def headers_for(name: str = "proj.add", task_id: str = "id-1", **options: object) -> dict[str, object]:
    return build_headers(name, task_id, args=(2, 3), kwargs={"z": 1}, **options)  # type: ignore[arg-type]


def test_headers_carry_every_field_of_celery_protocol_2() -> None:
    headers = headers_for()
    assert set(headers) >= CELERY_HEADERS
    assert headers["lang"] == "py"
    assert headers["task"] == "proj.add"
    assert headers["id"] == "id-1"
    assert headers["retries"] == 0
    assert headers["timelimit"] == [None, None]
    assert headers["ignore_result"] is False


def test_root_id_defaults_to_the_task_id() -> None:
    assert headers_for()["root_id"] == "id-1"
    assert headers_for(root_id="root", parent_id="parent")["root_id"] == "root"


def test_argsrepr_and_kwargsrepr_are_python_reprs() -> None:
    headers = headers_for()
    assert headers["argsrepr"] == "(2, 3)"
    assert headers["kwargsrepr"] == "{'z': 1}"


def test_long_argsrepr_is_truncated() -> None:
    headers = build_headers("proj.big", "id", args=("x" * 5000,), kwargs={})
    argsrepr = headers["argsrepr"]
    assert isinstance(argsrepr, str)
    assert len(argsrepr) == REPR_MAX
    assert argsrepr.endswith("...")


def test_origin_is_pid_at_host() -> None:
    origin = headers_for()["origin"]
    assert isinstance(origin, str)
    pid, _, host = origin.partition("@")
    assert pid.isdigit() and host


def test_extra_headers_are_merged_in() -> None:
    assert headers_for(extra={"x-tenant": "acme"})["x-tenant"] == "acme"


def test_encoded_message_has_celery_properties_and_body(registry: SerializerRegistry) -> None:
    headers = headers_for()
    message = encode(registry, "json", headers, [2, 3], {"z": 1}, reply_to="replies", priority=7)
    assert set(message.properties) >= CELERY_PROPERTIES
    assert message.properties["correlation_id"] == "id-1"
    assert message.properties["reply_to"] == "replies"
    assert message.properties["delivery_mode"] == 2
    assert message.properties["priority"] == 7
    assert message.content_type == "application/json"
    assert message.content_encoding == "utf-8"
    body = JSON.loads(message.body)
    assert body == [[2, 3], {"z": 1}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]


def test_encode_then_decode_gives_back_the_task(registry: SerializerRegistry) -> None:
    eta = to_iso(1_700_000_000.5)
    headers = headers_for(eta=eta, expires=eta, retries=2, group_id="g", group_index=1, time_limit=10.0)
    callback = {"task": "proj.log", "args": [], "kwargs": {}, "options": {}}
    chain = [{"task": "proj.next", "args": [], "kwargs": {}, "options": {}}]
    message = encode(
        registry, "json", headers, [2, 3], {"z": 1}, callbacks=[callback], errbacks=[callback], chain=chain
    )
    task = decode(registry, message)
    assert isinstance(task, TaskMessage)
    assert (task.name, task.id, task.args, task.kwargs) == ("proj.add", "id-1", [2, 3], {"z": 1})
    assert task.retries == 2
    assert task.eta == 1_700_000_000.5
    assert task.expires == 1_700_000_000.5
    assert task.headers["group"] == "g"
    assert task.headers["group_index"] == 1
    assert task.headers["timelimit"] == [10.0, None]
    assert task.callbacks == [callback]
    assert task.errbacks == [callback]
    assert task.chain == chain
    assert task.chord is None
    assert task.properties["correlation_id"] == "id-1"


def test_decode_reads_a_message_whose_embed_is_null(registry: SerializerRegistry) -> None:
    message = Message(JSON.dumps([[1], {}, None]), headers_for())
    task = decode(registry, message)
    assert task.args == [1]
    assert task.callbacks is None


def test_decode_of_a_body_that_is_not_a_three_item_list_fails(registry: SerializerRegistry) -> None:
    for body in ({"args": []}, [[1], {}], [[1], {}, {}, {}], "text"):
        with pytest.raises(MessageDecodeError, match=r"body is not \[args, kwargs, embed\]"):
            decode(registry, Message(JSON.dumps(body), headers_for()))


def test_decode_of_args_that_are_not_a_list_fails(registry: SerializerRegistry) -> None:
    with pytest.raises(MessageDecodeError, match="args must be a list and kwargs a mapping"):
        decode(registry, Message(JSON.dumps([{"a": 1}, {}, {}]), headers_for()))
    with pytest.raises(MessageDecodeError, match="args must be a list and kwargs a mapping"):
        decode(registry, Message(JSON.dumps([[], [], {}]), headers_for()))


def test_decode_of_an_embed_that_is_not_a_mapping_fails(registry: SerializerRegistry) -> None:
    with pytest.raises(MessageDecodeError, match="embed must be a mapping"):
        decode(registry, Message(JSON.dumps([[], {}, [1]]), headers_for()))


def test_decode_of_a_message_without_task_headers_says_it_is_not_protocol_2(registry: SerializerRegistry) -> None:
    with pytest.raises(MessageDecodeError, match="not a protocol 2 task message"):
        decode(registry, Message(JSON.dumps({"task": "proj.add", "id": "x", "args": []}), {}))


def test_decode_of_headers_without_an_id_fails(registry: SerializerRegistry) -> None:
    with pytest.raises(MessageDecodeError, match="lack a task name or id"):
        decode(registry, Message(JSON.dumps([[], {}, {}]), {"task": "proj.add"}))


def test_decode_of_a_body_that_is_not_json_is_a_decode_error(registry: SerializerRegistry) -> None:
    with pytest.raises(MessageDecodeError, match="cannot read the body"):
        decode(registry, Message(b"\xff\x00 not json", headers_for()))


def test_decode_of_disallowed_content_says_so(registry: SerializerRegistry) -> None:
    data, content_type, encoding = registry.dumps([[], {}, {}], "pickle")
    with pytest.raises(MessageDecodeError, match="accept_content") as caught:
        decode(registry, Message(data, headers_for(), content_type, encoding))
    assert isinstance(caught.value.__cause__, ContentDisallowedError)


def test_decode_of_a_bad_eta_is_a_decode_error(registry: SerializerRegistry) -> None:
    with pytest.raises(MessageDecodeError, match="eta 'next tuesday' is not a date and time"):
        decode(registry, Message(JSON.dumps([[], {}, {}]), headers_for(eta="next tuesday")))


def test_to_iso_writes_utc_timestamps() -> None:
    assert to_iso(0.0) == "1970-01-01T00:00:00+00:00"
    assert to_iso(datetime.datetime(2024, 1, 1, 12)) == "2024-01-01T12:00:00+00:00"
    paris = datetime.timezone(datetime.timedelta(hours=1))
    assert to_iso(datetime.datetime(2024, 1, 1, 13, tzinfo=paris)) == "2024-01-01T13:00:00+01:00"
    assert to_iso(None) is None


def test_from_iso_reads_naive_timestamps_as_utc() -> None:
    assert from_iso("1970-01-01T00:01:00") == 60.0
    assert from_iso("1970-01-01T01:01:00+01:00") == 60.0
    assert from_iso(12) == 12.0
    assert from_iso(None) is None
