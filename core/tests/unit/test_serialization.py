"""Serializers: the JSON tagging Celery reads, the accept list, and naming errors."""

from __future__ import annotations

import datetime
import decimal
import json
import platform
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskq import App
from taskq._serialization import SerializerRegistry
from taskq.builtins.pickle import PICKLE
from taskq.drivers import serializer
from taskq.drivers.serializer import JSON, json_dumps, plain_json_dumps
from taskq.errors import ContentDisallowedError, SerializationError

JSON_TYPE = "application/json"
PICKLE_TYPE = "application/x-python-serialize"


def round_trip(value: object) -> object:
    return JSON.loads(JSON.dumps(value))


@pytest.mark.parametrize(
    "value",
    [
        datetime.datetime(2024, 5, 17, 12, 30, 45, 123456, tzinfo=datetime.UTC),
        datetime.datetime(2024, 5, 17, 12, 30, 45),
        datetime.date(2024, 5, 17),
        datetime.time(12, 30, 45, 500),
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        decimal.Decimal("3.14159265358979323846"),
        b"plain utf-8 \xc3\xa9",
        b"\xff\xfe\x00binary",
    ],
    ids=["aware-datetime", "naive-datetime", "date", "time", "uuid", "decimal", "utf8-bytes", "binary-bytes"],
)
def test_json_round_trips_extra_types_with_their_type(value: object) -> None:
    back = round_trip(value)
    assert back == value
    assert type(back) is type(value)


def test_json_tags_extra_types_the_way_kombu_does() -> None:
    data = json.loads(
        JSON.dumps(
            {
                "when": datetime.datetime(2024, 5, 17, 12, 0, tzinfo=datetime.UTC),
                "day": datetime.date(2024, 5, 17),
                "at": datetime.time(8, 15),
                "id": uuid.UUID(int=1),
                "price": decimal.Decimal("1.50"),
                "raw": b"abc",
            }
        )
    )
    assert data == {
        "when": {"__type__": "datetime", "__value__": "2024-05-17T12:00:00+00:00"},
        "day": {"__type__": "date", "__value__": "2024-05-17"},
        "at": {"__type__": "time", "__value__": "08:15:00"},
        "id": {"__type__": "uuid", "__value__": "00000000-0000-0000-0000-000000000001"},
        "price": {"__type__": "decimal", "__value__": "1.50"},
        "raw": {"__type__": "bytes", "__value__": "abc"},
    }


def test_json_keeps_bytes_that_are_not_utf8_as_base64() -> None:
    data = json.loads(JSON.dumps(b"\xff\x00"))
    assert data == {"__type__": "base64", "__value__": "/wA="}


def test_json_reads_tagged_values_written_by_kombu() -> None:
    text = (
        b'[{"__type__": "datetime", "__value__": "2024-05-17T12:00:00+00:00"},'
        b' {"__type__": "uuid", "__value__": "00000000-0000-0000-0000-000000000002"}]'
    )
    assert JSON.loads(text) == [datetime.datetime(2024, 5, 17, 12, tzinfo=datetime.UTC), uuid.UUID(int=2)]


def test_json_leaves_mappings_with_unknown_tags_alone() -> None:
    value = {"__type__": "mystery", "__value__": "x"}
    assert round_trip(value) == value


def test_json_writes_tuples_and_sets_as_lists() -> None:
    assert round_trip({"t": (1, 2), "s": {3}}) == {"t": [1, 2], "s": [3]}


def test_json_refuses_values_it_cannot_represent() -> None:
    with pytest.raises(TypeError, match="object is not JSON serializable"):
        JSON.dumps(object())


def test_json_writes_compact_utf8() -> None:
    assert JSON.dumps({"a": "é"}) == '{"a":"é"}'.encode()
    assert JSON.content_type == JSON_TYPE
    assert JSON.content_encoding == "utf-8"


def test_registry_refuses_pickle_content_by_default_with_advice() -> None:
    registry = SerializerRegistry([JSON, PICKLE], ["json"])
    data, content_type, _ = registry.dumps({"x": 1}, "pickle")
    with pytest.raises(ContentDisallowedError) as info:
        registry.loads(data, content_type)
    message = str(info.value)
    assert PICKLE_TYPE in message
    assert "Add it to accept_content" in message


def test_app_refuses_pickle_content_unless_accept_content_names_it() -> None:
    app = App("tests", broker="memory://unused", read_config=False)
    data, content_type, _ = app.serializers.dumps([1, 2], "pickle")
    with pytest.raises(ContentDisallowedError):
        app.serializers.loads(data, content_type)


def test_pickle_content_is_accepted_when_configured() -> None:
    app = App("tests", broker="memory://unused", read_config=False, accept_content=["json", "pickle"])
    data, content_type, encoding = app.serializers.dumps({1, 2}, "pickle")
    assert (content_type, encoding) == (PICKLE_TYPE, "binary")
    assert app.serializers.loads(data, content_type) == {1, 2}


def test_accept_content_may_name_content_types() -> None:
    registry = SerializerRegistry([JSON, PICKLE], [PICKLE_TYPE])
    assert registry.accept == frozenset({PICKLE_TYPE})


def test_loads_with_an_explicit_accept_set_overrides_the_default() -> None:
    registry = SerializerRegistry([JSON, PICKLE], ["json"])
    data, content_type, _ = registry.dumps("x", "pickle")
    assert registry.loads(data, content_type, accept=registry.accept_types(["pickle"])) == "x"


def test_unknown_serializer_name_lists_the_installed_ones() -> None:
    registry = SerializerRegistry([JSON, PICKLE], ["json"])
    with pytest.raises(SerializationError, match=r"no serializer named 'msgpack'; installed: json, pickle") as info:
        registry.get("msgpack")
    assert "pip install taskq-msgpack" in str(info.value)


def test_accept_content_naming_an_unknown_serializer_lists_the_installed_ones() -> None:
    with pytest.raises(SerializationError, match=r"'yaml', which no installed plugin provides; installed: json"):
        SerializerRegistry([JSON], ["json", "yaml"])


def test_sending_with_an_unknown_serializer_names_the_installed_ones() -> None:
    app = App("tests", broker="memory://unused", read_config=False, task_serializer="msgpack")
    with pytest.raises(SerializationError, match="no serializer named 'msgpack'; installed: json, pickle"):
        app.send_task("proj.add", (1, 2))


def test_content_type_no_serializer_reads_is_an_error_naming_the_installed_ones() -> None:
    registry = SerializerRegistry([JSON], ["application/x-yaml"])
    with pytest.raises(SerializationError, match="no installed serializer reads content type 'application/x-yaml'"):
        registry.loads(b"a: 1", "application/x-yaml")


def test_value_the_serializer_cannot_carry_is_a_serialization_error_with_advice() -> None:
    registry = SerializerRegistry([JSON], ["json"])
    with pytest.raises(SerializationError, match=r"cannot serialize object with 'json'.*choose another serializer"):
        registry.dumps(object(), "json")


# ---- plain_json_dumps: events and other values built of JSON's own types, fast ----------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=30,
)


def test_plain_json_dumps_uses_orjson_where_taskq_core_installs_it() -> None:
    # taskq-core asks for orjson on CPython: a test environment that lacks it is not what users get.
    if platform.python_implementation() == "CPython":
        assert serializer._orjson is not None


@given(JSON_VALUES)
@settings(max_examples=300, deadline=None)
def test_plain_json_dumps_reads_back_as_json_dumps_does(value: object) -> None:
    plain = plain_json_dumps(value)
    assert json.loads(plain) == json.loads(json_dumps(value)) == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2**70, 2**70),  # beyond 64 bits: orjson refuses, the standard encoder writes it
        ({1: "a"}, {"1": "a"}),  # a key that is not text: as the standard encoder writes it
        ((1, 2), [1, 2]),  # a tuple, as a list
    ],
)
def test_plain_json_dumps_leaves_what_orjson_refuses_to_the_standard_encoder(value: object, expected: object) -> None:
    assert json.loads(plain_json_dumps(value)) == expected


def test_plain_json_dumps_raises_type_error_for_a_value_json_cannot_hold() -> None:
    with pytest.raises(TypeError):
        plain_json_dumps({"exception": object()})
