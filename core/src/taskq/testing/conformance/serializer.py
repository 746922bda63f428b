"""The serializer contract as a test suite: subclass :class:`SerializerContract` and give it one.

    class TestMsgpackSerializer(SerializerContract):
        @pytest.fixture
        def serializer(self) -> Serializer:
            return MSGPACK

A serializer carries task arguments and results, so every value taskq's JSON carries
with a type tag (datetimes, dates, times, UUIDs, decimals, bytes) must come back equal
and of the same type, nested at any depth; its content type and encoding must be what
the message says; and a worker whose ``accept_content`` does not list it must refuse
its messages with :class:`taskq.errors.ContentDisallowedError` rather than decode them.
"""

from __future__ import annotations

import datetime
import decimal
import threading
import uuid

import pytest

from taskq._serialization import SerializerRegistry
from taskq.drivers.serializer import JSON, Serializer
from taskq.errors import ContentDisallowedError

#: A content type no serializer has, for an accept list that lets nothing of ours in.
FOREIGN_CONTENT_TYPE = "application/x-taskq-conformance-other"

_UTC_PLUS_2 = datetime.timezone(datetime.timedelta(hours=2))

#: One value per type that JSON carries only with a tag, and containers nesting them.
TAGGED_VALUES: dict[str, object] = {
    "datetime with a time zone": datetime.datetime(2024, 2, 29, 13, 5, 7, 123456, tzinfo=_UTC_PLUS_2),
    "naive datetime": datetime.datetime(1999, 12, 31, 23, 59, 59),
    "date": datetime.date(2024, 2, 29),
    "time": datetime.time(8, 30, 15, 500),
    "uuid": uuid.UUID("6f1c1b0e-3a8e-4c1b-9f0a-2f6f2a1d9c3e"),
    "decimal": decimal.Decimal("-1234.5678901234567890"),
    "text bytes": b"plain ascii and \xc3\xa9",
    "binary bytes": bytes(range(256)),
    "empty bytes": b"",
    "nested containers": {
        "list": [1, "two", [3.5, None, True], {"when": datetime.date(2020, 1, 2)}],
        "ids": [uuid.UUID(int=1), uuid.UUID(int=2)],
        "deep": {"a": {"b": {"c": [decimal.Decimal("0.1"), b"\x00\xff"]}}},
        "unicode": "naïve ☃ 日本",
    },
}


class SerializerContract:
    """Reusable tests for a :class:`taskq.drivers.serializer.Serializer`. Provide ``serializer``."""

    @pytest.fixture
    def serializer(self) -> Serializer:
        raise NotImplementedError("define a serializer fixture returning your Serializer")

    @pytest.fixture
    def registry(self, serializer: Serializer) -> SerializerRegistry:
        """The serializer as a worker holds it, with JSON beside it; only it is accepted."""
        others = [JSON] if serializer.content_type != JSON.content_type else []
        return SerializerRegistry([*others, serializer], [serializer.content_type])

    # ---- Round trips --------------------------------------------------------------------

    @pytest.mark.parametrize("kind", list(TAGGED_VALUES))
    def test_a_tagged_value_comes_back_equal_and_of_the_same_type(self, serializer: Serializer, kind: str) -> None:
        value = TAGGED_VALUES[kind]
        back = serializer.loads(serializer.dumps(value))
        assert back == value
        assert _types(back) == _types(value), f"{kind} came back as other types"

    def test_a_tagged_value_survives_the_message_path(
        self, registry: SerializerRegistry, serializer: Serializer
    ) -> None:
        args = [list(TAGGED_VALUES.values()), dict(TAGGED_VALUES)]
        data, content_type, _ = registry.dumps(args, serializer.name)
        assert registry.loads(data, content_type) == args

    def test_dumps_returns_bytes(self, serializer: Serializer) -> None:
        assert isinstance(serializer.dumps({"x": 1}), bytes)

    def test_a_value_it_cannot_represent_raises_on_dumps(self, serializer: Serializer) -> None:
        with pytest.raises(Exception):  # noqa: B017 - each format raises its own type
            serializer.dumps({"lock": threading.Lock()})

    # ---- Content type and encoding ----------------------------------------------------------

    def test_the_content_type_is_a_media_type(self, serializer: Serializer) -> None:
        main, _, sub = serializer.content_type.partition("/")
        assert main and sub and serializer.content_type == serializer.content_type.strip().lower()

    def test_the_encoding_is_utf8_text_or_binary(self, serializer: Serializer) -> None:
        assert serializer.content_encoding in ("utf-8", "binary")
        if serializer.content_encoding == "utf-8":
            serializer.dumps(TAGGED_VALUES["nested containers"]).decode("utf-8")

    def test_the_message_carries_the_serializers_content_type_and_encoding(
        self, registry: SerializerRegistry, serializer: Serializer
    ) -> None:
        _, content_type, encoding = registry.dumps({"x": 1}, serializer.name)
        assert (content_type, encoding) == (serializer.content_type, serializer.content_encoding)

    # ---- accept_content ------------------------------------------------------------------------

    def test_content_outside_accept_content_is_refused_undecoded(self, serializer: Serializer) -> None:
        registry = SerializerRegistry([serializer], [FOREIGN_CONTENT_TYPE])
        with pytest.raises(ContentDisallowedError, match="accept_content"):
            registry.loads(serializer.dumps({"x": 1}), serializer.content_type)

    def test_content_is_decoded_once_accept_content_names_the_serializer(self, serializer: Serializer) -> None:
        registry = SerializerRegistry([serializer], [serializer.name])
        assert registry.loads(serializer.dumps({"x": 1}), serializer.content_type) == {"x": 1}


def _types(value: object) -> object:
    """The shape of ``value``'s types, nested containers included."""
    if isinstance(value, dict):
        return {key: _types(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_types(item) for item in value]
    return type(value)


__all__ = ["TAGGED_VALUES", "SerializerContract"]
