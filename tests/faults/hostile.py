"""Hostile messages, as a foreign producer writes them straight into a broker, and the
hypothesis strategies that make them.

A :class:`Hostile` is the fields of one message (headers, body, content type and
encoding, properties) or, for the brokers that keep a message as one document (Redis,
SQS, files), the raw bytes of its envelope. Each carries a ``token``: a word written
somewhere in its bytes, so the test finds its dead letter, its entry in the run log or
its result afterwards, whatever else in it is broken.
"""

from __future__ import annotations

import base64
import datetime
import json
import pickle
import uuid
from dataclasses import dataclass, field

from hypothesis import strategies as st

from taskq._protocol import build_headers

# The task every well-formed hostile message names: it writes "ran <key> <pid>" to the run log.
RECORD = "e2e_app.tasks.record"
# Nesting deep enough to overflow a recursive decoder (Python's limit is 1000 frames).
DEEP = 100_000
# Protocol 2's headers, each of which a worker reads: every one taskq writes (core's
# test_protocol.py checks that list against Celery's).
PROTOCOL_HEADERS = tuple(build_headers(RECORD, "id", args=(), kwargs={}))
#: The headers issue 13 names as crashing a worker when unparsable (fuzzed apart, see the tests).
CRASHING_HEADERS = ("eta", "expires", "timelimit")
# Delivery properties a worker reads.
PROPERTY_NAMES = (
    "correlation_id",
    "reply_to",
    "priority",
    "delivery_mode",
    "content_type",
    "body_encoding",
    "message_id",
    "type",
    "app_id",
)
CONTENT_TYPES = (
    "application/json",
    "application/x-python-serialize",
    "application/x-yaml",
    "application/x-msgpack",
    "application/data",
    "text/plain",
    "",
)


@dataclass
class Hostile:
    """One message to write raw. ``envelope`` (when set) replaces every other field."""

    token: str
    headers: object = None
    body: bytes = b""
    content_type: object = "application/json"
    content_encoding: object = "utf-8"
    properties: object = field(default_factory=dict)
    # Raw JSON text for the headers, for shapes json.dumps cannot make (too deep, not UTF-8).
    headers_raw: bytes | None = None
    envelope: bytes | None = None

    def id(self) -> str | None:
        """The task id the message carries, when it is one a result can be stored under."""
        if isinstance(self.headers, dict) and isinstance(self.headers.get("id"), str):
            return str(self.headers["id"])
        return None

    def due(self) -> float | None:
        """When the ``eta`` header asks the task to run, as a POSIX time; None when there is none
        or it is no date a worker can keep.

        Read as the protocol defines it: ISO-8601 text (no zone means UTC) or seconds since
        1970, a date in the years 1 to 9999 (what Python's datetime, and so Celery, can hold).
        """
        if self.headers_raw is not None or self.envelope is not None or not isinstance(self.headers, dict):
            return None
        eta = self.headers.get("eta")
        try:
            if isinstance(eta, str):
                when = datetime.datetime.fromisoformat(eta)
                seconds = (when if when.tzinfo else when.replace(tzinfo=datetime.UTC)).timestamp()
            elif isinstance(eta, (int, float)) and not isinstance(eta, bool):
                seconds = float(eta)
            else:
                return None
            datetime.datetime.fromtimestamp(seconds, datetime.UTC)  # within the years 1 to 9999
        except (ValueError, OverflowError, OSError):
            return None
        return seconds

    def headers_bytes(self) -> bytes:
        if self.headers_raw is not None:
            return self.headers_raw
        return json.dumps(self.headers).encode("utf-8")

    def as_envelope(self) -> bytes:
        """kombu's envelope for these fields (body in base64), or the raw one."""
        if self.envelope is not None:
            return self.envelope
        properties = self.properties
        if isinstance(properties, dict):
            properties = {**properties, "body_encoding": "base64"}
        document = {
            "body": base64.b64encode(self.body).decode("ascii"),
            "content-encoding": self.content_encoding,
            "content-type": self.content_type,
            "headers": "@HEADERS@",
            "properties": properties,
        }
        text = json.dumps(document).encode("utf-8")
        return text.replace(b'"@HEADERS@"', self.headers_bytes(), 1)


def new_token() -> str:
    return "fz" + uuid.uuid4().hex[:16]


def good_headers(token: str) -> dict[str, object]:
    """Headers of a valid message for RECORD."""
    return {"lang": "py", "task": RECORD, "id": str(uuid.uuid4()), "x-fuzz": token, "retries": 0}


def good_body(token: str) -> bytes:
    return json.dumps([[token], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]).encode()


# ---- Strategies -------------------------------------------------------------------------

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)  # JSON has no NaN; json.dumps would write one
    | st.text(max_size=30)
)
json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
# Values a date header might hold: dates in every spelling, nearly-dates, and junk.
date_like = (
    json_values
    | st.sampled_from(["not-a-date", "", "2024-13-45T99:99:99", "9999-12-31T23:59:59", "0001-01-01", "now", "T"])
    | st.floats(min_value=-1e20, max_value=1e20)
    | st.text(alphabet="0123456789-:T.+Z ", max_size=32)
)
timelimit_like = json_values | st.lists(json_values, min_size=2, max_size=2) | st.just([1e9, "x"])


def _header_value(name: str) -> st.SearchStrategy[object]:
    if name in ("eta", "expires"):
        return date_like
    if name == "timelimit":
        return timelimit_like
    return json_values


@st.composite
def hostile_headers(draw: st.DrawFn, fields: tuple[str, ...]) -> Hostile:
    """A message for RECORD whose headers ``fields`` (some of them) hold anything JSON can."""
    token = new_token()
    headers = good_headers(token)
    for name in draw(st.lists(st.sampled_from(fields), min_size=1, max_size=4, unique=True)):
        if draw(st.booleans()):
            headers[name] = draw(_header_value(name))
        else:
            headers.pop(name, None)
    return Hostile(token, headers=headers, body=good_body(token))


@st.composite
def hostile_shapes(draw: st.DrawFn) -> Hostile:
    """Headers or properties of the wrong shape: not an object, not UTF-8, nested too deeply."""
    token = new_token()
    kind = draw(st.sampled_from(["list", "scalar", "not-utf8", "deep-list", "deep-object", "not-json", "properties"]))
    message = Hostile(token, headers=good_headers(token), body=good_body(token))
    token_json = json.dumps(token).encode()
    if kind == "list":
        message.headers_raw = b"[" + token_json + b"]"
    elif kind == "scalar":
        message.headers_raw = token_json
    elif kind == "not-utf8":
        message.headers_raw = b'{"x-fuzz": ' + token_json + b', "task": "\xff\xfe"}'
    elif kind == "deep-list":
        message.headers_raw = b'{"x-fuzz": ' + token_json + b', "x": ' + b"[" * DEEP + b"]" * DEEP + b"}"
    elif kind == "deep-object":
        message.headers_raw = b'{"x-fuzz": ' + token_json + b', "x": ' + b'{"a":' * DEEP + b"1" + b"}" * DEEP + b"}"
    elif kind == "not-json":
        message.headers_raw = b"{" + token.encode() + b": nope"
    else:
        message.properties = draw(json_values.filter(lambda v: not isinstance(v, dict)))
    return message


@st.composite
def hostile_bodies(draw: st.DrawFn) -> Hostile:
    """Valid headers; a body and content type/encoding that may be anything."""
    token = new_token()
    shape = draw(st.sampled_from(["bytes", "json", "args", "embed", "pickle"]))
    if shape == "bytes":
        body = token.encode() + draw(st.binary(max_size=64))
    elif shape == "json":
        body = json.dumps([token, draw(json_values)]).encode()
    elif shape == "args":  # [args, kwargs, embed] with each of the wrong type
        body = json.dumps([draw(json_values), draw(json_values), {"x-fuzz": token}]).encode()
    elif shape == "embed":  # callbacks, errbacks, chain, chord: each of the wrong shape
        embed = {name: draw(json_values) for name in ("callbacks", "errbacks", "chain", "chord")}
        body = json.dumps([[token], {}, embed]).encode()
    else:
        body = pickle.dumps(("x-fuzz", token))  # must never be unpickled unless pickle is accepted
    content_type = draw(st.sampled_from(CONTENT_TYPES) | st.text(max_size=20) | json_values)
    content_encoding = draw(st.sampled_from(["utf-8", "binary", "latin-1", "rot13", ""]) | json_values)
    return Hostile(
        token,
        headers=good_headers(token),
        body=body,
        content_type=content_type,
        content_encoding=content_encoding,
    )


@st.composite
def hostile_options(draw: st.DrawFn) -> Hostile:
    """Valid headers and body; delivery properties (reply_to, priority, correlation_id...) of any value."""
    token = new_token()
    names = draw(st.lists(st.sampled_from(PROPERTY_NAMES) | st.text(max_size=10), min_size=1, max_size=4))
    properties = {name: draw(json_values) for name in names}
    return Hostile(token, headers=good_headers(token), body=good_body(token), properties=properties)


@st.composite
def hostile_envelopes(draw: st.DrawFn) -> Hostile:
    """Raw envelope bytes: garbage, JSON that is not an envelope, envelopes with fields of the wrong type."""
    token = new_token()
    token_json = json.dumps(token).encode()
    kind = draw(st.sampled_from(["bytes", "json", "fields", "deep", "not-utf8", "body"]))
    if kind == "bytes":
        raw = token.encode() + draw(st.binary(max_size=64))
    elif kind == "json":
        raw = json.dumps([token, draw(json_values)]).encode()
    elif kind == "fields":
        document: dict[str, object] = {"x-fuzz": token}
        for name in draw(st.lists(st.sampled_from(["body", "headers", "properties", "content-type"]), max_size=4)):
            document[name] = draw(json_values)
        raw = json.dumps(document).encode()
    elif kind == "deep":
        raw = b'{"x-fuzz": ' + token_json + b', "headers": ' + b"[" * DEEP + b"]" * DEEP + b"}"
    elif kind == "not-utf8":
        raw = b'{"x-fuzz": ' + token_json + b', "body": "\xff\xfe\xfd"}'
    else:  # a body that claims base64 and is not
        bad = draw(st.text(max_size=20))
        raw = json.dumps(
            {
                "x-fuzz": token,
                "body": bad + "!",
                "headers": good_headers(token),
                "properties": {"body_encoding": "base64"},
            }
        ).encode()
    return Hostile(token, envelope=raw)
