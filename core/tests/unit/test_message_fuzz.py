"""Fuzzing the whole intake of a message, as the worker runs it: the envelope (or a store's
columns), then protocol 2's decode and check, then the worker's Request and the
``self.request`` it builds. Whatever the bytes, headers, body or content type, only
:class:`MessageDecodeError` may come out of the decoding, and a message that passes never
makes the Request raise.

Pickle is not in the registry: unpickling random bytes can call anything.
"""

from __future__ import annotations

import datetime
import decimal
import json
import math
import uuid

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from taskq import App
from taskq._protocol import TaskMessage, build_headers, decode, encode
from taskq.control import stamp_revocation
from taskq.drivers.serializer import json_dumps
from taskq.drivers.support import envelope
from taskq.drivers.transport import Delivery, Message
from taskq.errors import MessageDecodeError
from taskq.worker.request import Request
from taskq.worker.revocations import Revocations

# Examples per property: each costs well under a millisecond; the file runs in seconds.
EXAMPLES = 300
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**20, max_value=10**400)
    | st.floats()  # NaN and infinities too
    | st.floats(min_value=-1e20, max_value=1e20)  # POSIX times, most of them past the year 9999
    | st.text(max_size=30)
    | st.sampled_from(["not-a-date", "2026-01-01T00:00:00", "9999-12-31T23:59:59+14:00", "0001-01-01", ""])
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=16,
)
# What a decoded store can hand over besides JSON's own: tagged values, AMQP's table types.
any_values = json_values | st.sampled_from(
    [
        datetime.datetime(2026, 1, 1),
        datetime.datetime(1, 1, 1, tzinfo=datetime.UTC),
        decimal.Decimal("1.5"),
        decimal.Decimal("NaN"),
        uuid.UUID(int=1),
        b"\xff\xfe",
        (1, 2),
        [1e9, "x"],
        [None, -1],
        [float("inf"), None],
        [1e308, 0],
        {"__type__": "datetime", "__value__": "x"},
    ]
)
HEADER_NAMES = [
    "eta",
    "expires",
    "timelimit",
    "retries",
    "group",
    "group_index",
    "root_id",
    "parent_id",
    "ignore_result",
    "argsrepr",
    "kwargsrepr",
    "origin",
    "shadow",
    "stamped_headers",
    "stamps",
    "replaced_task_nesting",
    envelope.UNDECODABLE_HEADER,
]
PROPERTY_NAMES = ["reply_to", "correlation_id", "priority", "delivery_mode", "body_encoding"]
task_names = st.sampled_from(["tests.add"]) | st.text(max_size=10) | any_values
headers_dicts = st.fixed_dictionaries(
    {"task": task_names, "id": st.sampled_from(["id-1"]) | any_values},
    optional={name: any_values for name in HEADER_NAMES},
) | st.dictionaries(st.text(max_size=10), any_values, max_size=6)
properties_dicts = st.fixed_dictionaries({}, optional={name: any_values for name in PROPERTY_NAMES})
embeds = (
    st.fixed_dictionaries({}, optional={name: any_values for name in ("callbacks", "errbacks", "chain", "chord")})
    | any_values
)
bodies_json = st.tuples(any_values, any_values, embeds).map(lambda parts: list(parts)) | any_values
content_types = st.sampled_from(
    ["application/json", "application/x-python-serialize", "application/x-yaml", "text/plain", ""]
) | st.text(max_size=20)


# A worker's revocations, with stamps revoked: every decoded message's stamps are matched.
REVOKED_STAMPS = Revocations()
REVOKED_STAMPS.add(stamp_revocation({"run": ["r1", 0, None, [1]], "": [{"a": 1}]}))


@pytest.fixture(scope="module")
def app() -> App:
    app = App("fuzz", broker=f"memory://{uuid.uuid4().hex}", read_config=False)

    @app.task(name="tests.add")
    def add(x: int, y: int) -> int:
        return x + y

    return app


def intake(app: App, message: Message) -> None:
    """What the consumer does with a claimed message, up to handing it to the pool."""
    try:
        checked = decode(app.serializers, message)
    except MessageDecodeError as exc:
        assert str(exc)  # a reason to dead-letter with
        return
    assert isinstance(checked, TaskMessage)
    request = Request(Delivery(message, "taskq", "tag", 1), checked, app.tasks["tests.add"], "host")
    hard, soft = request.time_limits
    for limit in (hard, soft):
        assert limit is None or (isinstance(limit, float) and math.isfinite(limit) and limit >= 0)
    for when in (request.eta, request.expires):
        assert when is None or (isinstance(when, float) and math.isfinite(when))
    assert isinstance(request.retries, int) and request.retries >= 0
    assert isinstance(request.argsrepr, str)
    assert isinstance(request.ignore_result, bool)
    context = request.context()
    assert context.eta is None or isinstance(context.eta, str)
    assert context.group is None or isinstance(context.group, str)
    assert context.root_id is None or isinstance(context.root_id, str)
    assert all(isinstance(key, str) for key in checked.kwargs)
    stamps = request.stamps
    assert isinstance(stamps, dict) and all(isinstance(name, str) for name in stamps)
    assert context.stamped_headers is None or context.stamped_headers == list(stamps)
    REVOKED_STAMPS.stamped(stamps)  # what the consumer asks of every stamped message
    repr(request)


def dumps(value: object) -> bytes:
    try:
        return json_dumps(value)
    except (TypeError, ValueError):  # a value JSON cannot hold: the fuzzer writes its repr
        return repr(value).encode("utf-8", "surrogatepass")


@FUZZ
@given(headers=headers_dicts, properties=properties_dicts, body=bodies_json, content_type=content_types)
@example(
    headers={"task": "tests.add", "id": "1", "eta": "not-a-date"},
    properties={},
    body=[[1, 2], {}, {}],
    content_type="application/json",
)
@example(
    headers={"task": "tests.add", "id": None, envelope.UNDECODABLE_HEADER: ""},
    properties={},
    body=None,
    content_type="application/json",
)
@example(
    headers={"task": "tests.add", "id": "1", "timelimit": [1e9, "x"]},
    properties={},
    body=[[], {}, None],
    content_type="application/json",
)
@example(
    headers={"task": "tests.add", "id": "1", "expires": {"a": 1}},
    properties={},
    body=[[], {}, None],
    content_type="application/json",
)
def test_decoded_headers_and_bodies_are_refused_or_never_make_the_request_raise(
    app: App, headers: dict[str, object], properties: dict[str, object], body: object, content_type: str
) -> None:
    intake(app, Message(dumps(body), headers, content_type, "utf-8", properties))


times = (
    any_values
    | st.floats(min_value=-1e20, max_value=1e20)
    | st.datetimes(timezones=st.none() | st.timezones()).map(lambda when: when.isoformat())
)


@FUZZ
@given(eta=times, expires=times)
@example(eta=2.603480286016317e16, expires=None)
@example(eta=None, expires=-1e20)
def test_any_eta_or_expires_of_a_good_message_is_refused_or_read_as_a_date(
    app: App, eta: object, expires: object
) -> None:
    """A time the worker keeps must be one it can write back as a date (self.request.eta)."""
    headers = build_headers("tests.add", "id-1", args=(1, 2), kwargs={})
    headers.update(eta=eta, expires=expires)
    intake(app, Message(json_dumps([[1, 2], {}, {}]), headers, "application/json", "utf-8", {}))


@FUZZ
@given(body=st.binary(max_size=200), content_type=content_types)
@example(body=b"[" * 100_000 + b"]" * 100_000, content_type="application/json")
@example(body=b'{"a":' * 50_000, content_type="application/json")
def test_any_body_bytes_are_refused_or_decoded(app: App, body: bytes, content_type: str) -> None:
    headers = build_headers("tests.add", "id-1", args=(), kwargs={})
    intake(app, Message(body, headers, content_type, "utf-8", {}))


@FUZZ
@given(headers=headers_dicts, properties=properties_dicts, body=bodies_json, content_type=content_types)
def test_whole_envelopes_go_through_the_transport_decoder_then_the_worker_s(
    app: App, headers: dict[str, object], properties: dict[str, object], body: object, content_type: str
) -> None:
    document = {
        "body": dumps(body).decode("utf-8", "replace"),
        "content-encoding": "utf-8",
        "content-type": content_type,
        "headers": headers,
        "properties": properties,
    }
    try:
        raw = json_dumps(document)
    except (TypeError, ValueError):
        raw = dumps(document)
    try:
        message = envelope.decode(raw)
    except MessageDecodeError as exc:
        message = envelope.undecodable(raw, exc)  # what every transport hands over
    intake(app, message)


@FUZZ
@given(data=st.binary(max_size=300) | st.text(max_size=200).map(lambda text: text.encode("utf-8", "surrogatepass")))
@example(data=b'{"headers": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
def test_any_envelope_bytes_end_as_a_dead_letter_reason_or_a_request(app: App, data: bytes) -> None:
    try:
        message = envelope.decode(data)
    except MessageDecodeError as exc:
        message = envelope.undecodable(data, exc)
    intake(app, message)


@FUZZ
@given(
    body=st.binary(max_size=50) | st.text(max_size=20) | st.integers() | st.floats(),
    headers=st.binary(max_size=100) | json_values.map(lambda v: json.dumps(v).encode()) | st.integers(),
    properties=st.none() | st.binary(max_size=50) | json_values.map(lambda v: json.dumps(v)),
    content_type=st.text(max_size=20) | st.binary(max_size=5) | st.integers(),
)
def test_any_stored_columns_end_as_a_dead_letter_reason_or_a_request(
    app: App, body: object, headers: object, properties: object, content_type: object
) -> None:
    try:
        message = envelope.decode_fields(body, headers, properties, content_type, "utf-8")  # type: ignore[arg-type]  # any stored type
    except MessageDecodeError as exc:
        message = envelope.undecodable(body, exc)
    intake(app, message)


def test_a_normal_message_goes_all_the_way(app: App) -> None:
    headers = build_headers("tests.add", "id-1", args=(1, 2), kwargs={}, eta="2026-01-01T00:00:00+00:00")
    message = encode(app.serializers, "json", headers, (1, 2), {})
    checked = decode(app.serializers, envelope.decode(envelope.encode(message)))
    assert checked.args == [1, 2] and checked.eta == 1767225600.0
