"""Fuzzing the envelope decoder: whatever the bytes, MessageDecodeError or a Message, nothing else."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from taskq.drivers.support import envelope
from taskq.drivers.transport import Message
from taskq.errors import MessageDecodeError

# Examples per property; the decoder is fast, so a few hundred cost well under a second.
EXAMPLES = 400

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
# Envelope-shaped documents whose fields may be of any type, tagged values included.
field_values = json_values | st.sampled_from(
    [
        {"__type__": "datetime", "__value__": "not a date"},
        {"__type__": "decimal", "__value__": "x"},
        {"__type__": "uuid", "__value__": "nope"},
        {"__type__": "base64", "__value__": "!!"},
        {"body_encoding": "base64"},
        {"body_encoding": "rot13", "delivery_info": 1},
        {"delivery_info": {}, "priority": "high"},
    ]
)
FIELDS = ("body", "headers", "properties", "content-type", "content-encoding", "content_type", "body_encoding")
documents = st.fixed_dictionaries({}, optional={name: field_values for name in FIELDS})


def decodes_or_refuses(data: bytes | str) -> None:
    try:
        message = envelope.decode(data)
    except MessageDecodeError:
        return
    assert isinstance(message, Message)
    assert isinstance(message.body, bytes)
    assert isinstance(message.headers, dict)
    assert isinstance(message.properties, dict)


@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
@example(b"[" * 100_000)
@example(b'{"a":' * 100_000)
@example(b"\xff\xfe\x00{")
def test_any_bytes_decode_to_a_message_or_a_message_decode_error(data: bytes) -> None:
    decodes_or_refuses(data)


@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(st.characters(blacklist_categories=()), max_size=200))  # lone surrogates too
def test_any_text_decodes_to_a_message_or_a_message_decode_error(data: str) -> None:
    decodes_or_refuses(data)


@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_any_json_object_with_fields_of_any_type_decodes_or_is_refused(document: dict[str, object]) -> None:
    decodes_or_refuses(json.dumps(document))
    decodes_or_refuses(json.dumps(document).encode())


@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.too_slow])
@given(json_values, json_values | st.binary(max_size=50))
def test_any_stored_fields_decode_to_a_message_or_a_message_decode_error(headers: object, properties: object) -> None:
    stored_properties = properties if isinstance(properties, bytes) else json.dumps(properties).encode()
    try:
        message = envelope.decode_fields(b"", json.dumps(headers).encode(), stored_properties, "text/plain", "utf-8")
    except MessageDecodeError:
        return
    assert isinstance(message.headers, dict)
    assert isinstance(message.properties, dict)
