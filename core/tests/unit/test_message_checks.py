"""Every field of a task message is checked where it is decoded: a hostile value is refused
there with a :class:`MessageDecodeError` that names the field, and a message that passes
never makes the worker's :class:`Request` (or the ``self.request`` it builds) raise.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from taskq import App
from taskq._protocol import LIMIT_MAX, build_headers, decode, encode
from taskq.builtins.memory_drivers import MemoryTransport
from taskq.drivers.transport import Delivery, Message
from taskq.errors import MessageDecodeError
from taskq.worker.request import Request

StartWorker = Callable[..., Any]
WaitUntil = Callable[..., None]
TIMEOUT = 10.0

# (header, value, what the reason must name)
HOSTILE_HEADERS = [
    ("eta", "not-a-date", "eta"),
    ("eta", {"a": 1}, "eta"),
    ("eta", [2026, 1, 1], "eta"),
    ("eta", float("nan"), "eta"),
    ("eta", True, "eta"),
    ("eta", "9999-12-31T23:59:59+99:00", "eta"),
    # numbers and dates no datetime holds: self.request.eta could not be written as a date
    ("eta", 2.603480286016317e16, "eta"),
    ("eta", -1e20, "eta"),
    ("eta", "9999-12-31T23:59:59-05:00", "eta"),
    ("expires", 1e300, "expires"),
    ("expires", "not-a-date", "expires"),
    ("expires", {"a": 1}, "expires"),
    ("expires", float("inf"), "expires"),
    ("timelimit", [1e9, "x"], "timelimit"),
    ("timelimit", ["x", None], "timelimit"),
    ("timelimit", [-1, None], "timelimit"),
    ("timelimit", [float("nan"), None], "timelimit"),
    ("timelimit", [1, 2, 3], "timelimit"),
    ("timelimit", "10", "timelimit"),
    ("timelimit", {"hard": 1}, "timelimit"),
    ("retries", "x", "retries"),
    ("retries", -1, "retries"),
    ("retries", 1.5, "retries"),
    ("retries", [], "retries"),
    ("group_index", "first", "group_index"),
    ("group_index", 1.5, "group_index"),
    ("root_id", 7, "root_id"),
    ("parent_id", ["a"], "parent_id"),
    ("group", {"id": "x"}, "group"),
    ("ignore_result", "yes", "ignore_result"),
    ("argsrepr", 5, "argsrepr"),
    ("kwargsrepr", [], "kwargsrepr"),
    ("origin", 5, "origin"),
    ("shadow", 5, "shadow"),
]

HOSTILE_PROPERTIES = [
    ("reply_to", 5, "reply_to"),
    ("correlation_id", {"a": 1}, "correlation_id"),
    ("priority", "high", "priority"),
    ("priority", 1.5, "priority"),
]

HOSTILE_EMBEDS = [
    ({"callbacks": "x"}, "callbacks"),
    ({"callbacks": [1]}, "callbacks"),
    ({"errbacks": {"a": 1}}, "errbacks"),
    ({"chain": [None]}, "chain"),
    ({"chord": []}, "chord"),
    ({"chord": "x"}, "chord"),
    # mappings that are no signatures: the worker failed the task after it ran, sending what follows
    ({"chain": [{"task": 5}]}, "chain holds a signature whose task is 5"),
    ({"callbacks": [{"task": "t", "args": "12"}]}, "callbacks holds a signature whose args"),
    ({"errbacks": [{"task": "t", "kwargs": [1]}]}, "errbacks holds a signature whose kwargs"),
    ({"chord": {"task": "t", "options": []}}, "chord holds a signature whose options"),
    (
        {"chain": [{"task": "celery.group", "subtask_type": "group", "kwargs": {"tasks": [{"args": []}]}}]},
        "task is None",
    ),
    (
        {"chain": [{"task": "celery.chord", "subtask_type": "chord", "kwargs": {"header": [], "body": 7}}]},
        "7, which is not a signature",
    ),
]


@pytest.fixture
def app(memory_url: str) -> App:
    app = App("checks", broker=memory_url, read_config=False)

    @app.task(name="tests.add")
    def add(x: int, y: int) -> int:
        return x + y

    return app


def message(app: App, *, headers: dict[str, object] | None = None, **encode_options: Any) -> Message:
    task_id = str(uuid.uuid4())
    built = build_headers("tests.add", task_id, args=(1, 2), kwargs={})
    built.update(headers or {})
    return encode(app.serializers, "json", built, (1, 2), {}, **encode_options)


def request_of(app: App, raw: Message) -> Request:
    """What the consumer does with a message: decode it, then build the request and its context."""
    checked = decode(app.serializers, raw)
    request = Request(Delivery(raw, "taskq", "tag", 1), checked, app.tasks["tests.add"], "host")
    request.context()
    assert request.time_limits is not None
    return request


def test_a_normal_message_decodes_to_typed_fields(app: App) -> None:
    raw = message(app, headers={"eta": "2026-01-01T00:00:00+00:00", "timelimit": [10, 5.5], "retries": 2})
    checked = decode(app.serializers, raw)
    assert checked.eta == 1767225600.0
    assert checked.expires is None
    assert checked.timelimit == (10.0, 5.5)
    assert checked.retries == 2
    assert checked.ignore_result is False
    assert checked.root_id == checked.id
    context = request_of(app, raw).context()
    assert context.eta == "2026-01-01T00:00:00+00:00"
    assert context.timelimit == (10.0, 5.5)


def test_celery_s_empty_header_values_are_accepted(app: App) -> None:
    raw = message(
        app,
        headers={
            "timelimit": [None, None],
            "group_index": None,
            "retries": None,
            "ignore_result": None,
            "stamps": None,
        },
    )
    request = request_of(app, raw)
    assert request.time_limits == (None, None)
    assert request.retries == 0
    assert request.ignore_result is False


def test_a_numeric_eta_is_a_posix_time(app: App) -> None:
    checked = decode(app.serializers, message(app, headers={"eta": 1767225600, "expires": 1767225600.5}))
    assert checked.eta == 1767225600.0
    assert checked.expires == 1767225600.5


@pytest.mark.parametrize(("header", "value", "named"), HOSTILE_HEADERS)
def test_a_hostile_header_value_is_refused_at_decode_naming_the_header(
    app: App, header: str, value: object, named: str
) -> None:
    raw = message(app, headers={header: value})
    with pytest.raises(MessageDecodeError, match=named):
        decode(app.serializers, raw)


@pytest.mark.parametrize(("prop", "value", "named"), HOSTILE_PROPERTIES)
def test_a_hostile_property_is_refused_at_decode_naming_it(app: App, prop: str, value: object, named: str) -> None:
    raw = message(app)
    raw.properties[prop] = value
    with pytest.raises(MessageDecodeError, match=named):
        decode(app.serializers, raw)


@pytest.mark.parametrize(("embed", "named"), HOSTILE_EMBEDS)
def test_a_hostile_workflow_field_is_refused_at_decode_naming_it(
    app: App, embed: dict[str, object], named: str
) -> None:
    raw = message(app)
    body = [[1, 2], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None, **embed}]
    raw.body = app.serializers.dumps(body, "json")[0]
    with pytest.raises(MessageDecodeError, match=named):
        decode(app.serializers, raw)


def test_kwargs_with_keys_that_are_not_text_are_refused(app: App) -> None:
    from taskq._serialization import SerializerRegistry
    from taskq.builtins.pickle import PICKLE

    registry = SerializerRegistry([PICKLE], ["pickle"])
    raw = message(app)
    raw.body, raw.content_type, raw.content_encoding = registry.dumps([[1], {1: 2}, {}], "pickle")
    with pytest.raises(MessageDecodeError, match="kwargs"):
        decode(registry, raw)


@pytest.mark.parametrize("headers", [{"id": 5}, {"task": ["x"]}, {"task": None}])
def test_a_task_name_or_id_that_is_not_text_is_refused(app: App, headers: dict[str, object]) -> None:
    with pytest.raises(MessageDecodeError):
        decode(app.serializers, message(app, headers=headers))


def test_a_serializer_s_recursion_error_is_a_message_decode_error(app: App) -> None:
    raw = message(app)
    raw.body = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(MessageDecodeError, match="body"):
        decode(app.serializers, raw)


def test_a_time_limit_longer_than_a_thread_can_wait_is_refused(app: App) -> None:
    checked = decode(app.serializers, message(app, headers={"timelimit": [LIMIT_MAX, 0]}))
    assert checked.timelimit == (LIMIT_MAX, 0.0)
    for limit in (1e308, 10**400, LIMIT_MAX * 2):
        with pytest.raises(MessageDecodeError, match="timelimit"):
            decode(app.serializers, message(app, headers={"timelimit": [limit, None]}))


# ---- A real worker goes on ---------------------------------------------------------------


def broker(app: App) -> MemoryTransport:
    return MemoryTransport(str(app.conf["broker_url"]))


@pytest.mark.parametrize(
    "headers",
    [
        {"eta": "not-a-date"},
        {"eta": {"a": 1}},
        {"expires": "not-a-date"},
        {"timelimit": [1e9, "x"]},
        {"retries": "x"},
        {"group_index": "x"},
    ],
    ids=lambda headers: ",".join(f"{k}={v!r}" for k, v in headers.items()),
)
def test_the_worker_dead_letters_a_message_with_a_hostile_header_once_and_runs_the_next(
    app: App, start_worker: StartWorker, wait_until: WaitUntil, headers: dict[str, object]
) -> None:
    transport = broker(app)
    bad = message(app, headers=headers)
    transport.publish("taskq", bad)
    runner = start_worker(app)
    assert app.tasks["tests.add"].delay(2, 3).get(timeout=TIMEOUT) == 5
    assert runner.thread.is_alive()
    wait_until(lambda: transport.dead_letters("taskq"), "the bad message is dead-lettered")
    [letter] = transport.dead_letters("taskq")
    header = next(iter(headers))
    assert header in letter.reason, letter.reason
    assert letter.message.headers["id"] == bad.headers["id"]
    assert transport.depth("taskq") == 0


def test_send_task_refuses_a_header_the_worker_would_reject(app: App) -> None:
    from taskq.errors import TaskqError

    for headers in (
        {"eta": "not-a-date"},
        {"expires": {"a": 1}},
        {"timelimit": [1e9, "x"]},
        {"retries": "x"},
        {"id": 5},
        {"task": None},
    ):
        with pytest.raises((TaskqError, TypeError, ValueError), match=next(iter(headers))):
            app.send_task("tests.add", [1, 2], headers=headers)
    assert broker(app).depth("taskq") == 0


# ---- The consumer's own dead-letter path ---------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [None, [], "text", 5, {"id": 5}, {"id": ["x"]}, {"id": ""}, {"id": "x" * 10_000}, {1: 2}],
    ids=repr,
)
def test_the_consumer_reads_no_task_id_from_odd_headers_and_never_raises(headers: object) -> None:
    from taskq.worker.consumer import _header_id

    delivery = Delivery(Message(b"", headers), "taskq", "tag", 1)  # type: ignore[arg-type]  # hostile on purpose
    assert _header_id(delivery) is None


def test_the_consumer_reads_the_task_id_of_an_undecodable_message() -> None:
    from taskq.worker.consumer import _header_id

    assert _header_id(Delivery(Message(b"", {"id": "abc", "eta": "x"}), "taskq", "tag", 1)) == "abc"


class PickyTransport(MemoryTransport):
    """A memory broker whose dead-letter store, like a JSON store, refuses headers JSON cannot hold."""

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        import json

        json.dumps(delivery.message.headers)  # TypeError on a value JSON cannot hold
        super().dead_letter(delivery, reason)


def test_a_message_the_dead_letter_store_cannot_hold_is_dead_lettered_as_its_raw_body(
    app: App, memory_url: str
) -> None:
    from taskq.worker.consumer import Consumer

    worker = app.Worker(pool="solo")
    consumer = Consumer(worker)
    consumer.transport = PickyTransport(memory_url)
    raw = Message(b"raw bytes", {"task": "tests.add", "id": "abc", "eta": object()})
    consumer.transport.publish("taskq", raw)
    [delivery] = consumer.transport.claim(["taskq"], 1)
    consumer._on_delivery(delivery)
    [letter] = consumer.transport.dead_letters("taskq")
    assert "eta is <object object" in letter.reason, letter.reason
    assert letter.message.body == b"raw bytes"
    assert "could not be kept" in str(letter.message.headers)
    assert consumer.transport.depth("taskq") == 0
    assert app.AsyncResult("abc").state == "FAILURE"
    consumer.close()


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"eta": "not-a-date"}, "eta"),
        ({"eta": {"a": 1}}, "eta"),
        ({"eta": float("nan")}, "eta"),
        ({"eta": 1e20}, "eta"),
        ({"eta": "9999-12-31T23:59:59-05:00"}, "eta"),
        ({"countdown": "x"}, "countdown"),
        ({"countdown": 1e20}, "countdown"),
        ({"expires": -1e20}, "expires"),
        ({"countdown": float("inf")}, "countdown"),
        ({"expires": object()}, "expires"),
        ({"expires": float("nan")}, "expires"),
        ({"time_limit": "x"}, "timelimit"),  # the header the worker reads
        ({"soft_time_limit": -1}, "timelimit"),
        ({"retries": -1}, "retries"),
        ({"group_index": "x"}, "group_index"),
    ],
    ids=repr,
)
def test_apply_async_refuses_options_the_worker_would_reject(app: App, options: dict[str, object], named: str) -> None:
    with pytest.raises((TypeError, ValueError), match=f"cannot send task tests.add: .*{named}"):
        app.tasks["tests.add"].apply_async((1, 2), **options)
    assert broker(app).depth("taskq") == 0


def test_apply_async_still_takes_every_kind_of_eta_and_expires(app: App) -> None:
    import datetime

    task = app.tasks["tests.add"]
    task.apply_async((1, 2), eta=datetime.datetime(2030, 1, 1), expires=60)
    task.apply_async((1, 2), eta="2030-01-01T00:00:00+00:00", expires="2030-01-02T00:00:00")
    task.apply_async((1, 2), eta=1893456000, expires=datetime.datetime(2030, 1, 2, tzinfo=datetime.UTC))
    task.apply_async((1, 2), countdown=5, time_limit=10, soft_time_limit=5.5)
    assert broker(app).depth("taskq") == 4
