"""Events as broker messages, in Celery's layout: how they are sent and how they are read back.

Celery's ``EventDispatcher`` publishes each event to the ``celeryev`` exchange (a topic
exchange; kombu's Redis transport makes it a fanout over pub/sub) with the event's type as
the routing key, dashes turned into dots (``task-succeeded`` -> ``task.succeeded``). The
message is transient (delivery mode 1), its body the event dict as JSON
(``application/json``, UTF-8), with a ``hostname`` header. A Celery worker that buffers
its task events sends them as one message whose body is a *list* of events, routed as
``task.multi``; a reader takes either. The transports that carry events in that layout
(Redis, RabbitMQ) build their messages with :func:`event_message` and read what comes
with an :class:`EventDecoder`.

What comes from a broker may come from anyone. :class:`EventDecoder` never raises: a
payload that is not JSON, not kombu's envelope, has a body that is not base64, is not of
a JSON content type, or is not a JSON object with a text ``type`` (or a list of them) is
left out and logged at WARNING, once per cause per reader (later ones at DEBUG), without
the payload itself.
"""

from __future__ import annotations

import binascii
import json
import logging
from collections.abc import Mapping, Sequence

from taskq.drivers.serializer import json_loads, plain_json_dumps
from taskq.drivers.support.envelope import UNDECODABLE_CONTENT_TYPE, decode
from taskq.drivers.transport import Message
from taskq.errors import MessageDecodeError, SerializationError

logger = logging.getLogger(__name__)

#: Celery's event exchange (its ``event_exchange`` setting).
EVENT_EXCHANGE = "celeryev"
#: Celery's prefix of an event reader's own queue name (``event_queue_prefix``).
EVENT_QUEUE_PREFIX = "celeryev"
#: The content type of an event message (Celery's ``event_serializer = "json"``).
EVENT_CONTENT_TYPE = "application/json"
#: The routing key of a message holding a list of task events (Celery's buffered events).
MULTI_ROUTING_KEY = "task.multi"
#: Content types read as JSON; an event in any other (pickle, YAML) is left out.
JSON_CONTENT_TYPES = frozenset({"application/json", ""})

# Why an event was left out: one WARNING each per decoder, the rest at DEBUG.
NOT_ENVELOPE = "the payload is not kombu's message envelope"
NOT_JSON_PAYLOAD = "the payload is not JSON"
NOT_BASE64 = "the envelope's body is not base64"
UNREADABLE_PROPERTIES = "the message's properties cannot be decoded"
NOT_JSON_TYPE = "the content type is not JSON"
NOT_JSON_BODY = "the body is not UTF-8 JSON"
NOT_AN_EVENT = "the body is not an event (a JSON object with a text 'type')"
# Longest detail kept in a log line, in characters (it says what was wrong, never the data).
DETAIL_MAX = 200


def routing_key(event: Mapping[str, object]) -> str:
    """The routing key of ``event``: its type with dashes as dots (``worker.heartbeat``).

    Raises:
        ValueError: the event has no text ``type``.
    """
    kind = event.get("type")
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"an event needs a text 'type' (task-succeeded, worker-heartbeat...), not {kind!r}")
    return kind.replace("-", ".")


def event_message(event: Mapping[str, object]) -> Message:
    """``event`` as Celery's dispatcher sends it: transient JSON with a ``hostname`` header.

    Raises:
        SerializationError: a value JSON cannot hold.
    """
    return _message(event, event.get("hostname"), event.get("type"))


def _message(value: object, hostname: object, kind: object) -> Message:
    try:
        body = plain_json_dumps(value)
    except (TypeError, ValueError) as exc:
        raise SerializationError(
            f"an event of type {kind!r} cannot be sent as JSON ({exc}); keep its values to JSON's"
        ) from exc
    headers: dict[str, object] = {"hostname": hostname} if isinstance(hostname, str) else {}
    return Message(body, headers, EVENT_CONTENT_TYPE, "utf-8", {"delivery_mode": 1})


#: Most task events one ``task.multi`` message carries.
MULTI_MAX = 500


def event_messages(events: Sequence[Mapping[str, object]]) -> list[tuple[str, Message]]:
    """``events`` as the messages to publish, with their routing keys, in order.

    As a Celery worker buffers its task events, the task events of one sender that follow
    each other go as one ``task.multi`` message whose body is their list (at most
    :data:`MULTI_MAX`): a batch costs one encoding and one publish rather than one per
    event, and Celery's receivers (``celery events``, Flower) read it. Any other event goes
    alone, routed by its type.

    Raises:
        SerializationError: a value JSON cannot hold (nothing is returned then).
        ValueError: an event without a text ``type``.
    """
    out: list[tuple[str, Message]] = []
    run: list[Mapping[str, object]] = []
    run_host: object = None
    keys: dict[object, str] = {}  # type -> routing key, worked out once per batch

    def close_run() -> None:
        if len(run) == 1:
            out.append((routing_key(run[0]), event_message(run[0])))
        elif run:
            out.append((MULTI_ROUTING_KEY, _message(list(run), run_host, "task.multi")))
        run.clear()

    for event in events:
        kind = event.get("type")
        key = keys.get(kind) if type(kind) is str else None
        if key is None:
            key = keys[kind] = routing_key(event)
        if not key.startswith("task."):
            close_run()
            out.append((key, event_message(event)))
            continue
        host = event.get("hostname")
        if run and (host != run_host or len(run) >= MULTI_MAX):
            close_run()
        if not run:
            run_host = host
        run.append(event)
    close_run()
    return out


class EventDecoder:
    """Turns what a reader receives into events, leaving out (and logging) what is not one.

    One per reader; ``source`` names where the events come from in its log lines (a
    masked URL and channel or queue). :attr:`left_out` counts what was left out.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.left_out = 0
        self._warned: set[str] = set()

    def from_envelope(self, payload: bytes) -> list[dict[str, object]]:
        """The events in kombu's JSON envelope (a Redis pub/sub message)."""
        try:
            message = decode(payload)
        except MessageDecodeError as exc:
            cause = exc.__cause__
            if isinstance(cause, binascii.Error):
                reason = NOT_BASE64
            elif isinstance(cause, (json.JSONDecodeError, UnicodeError, RecursionError)):
                reason = NOT_JSON_PAYLOAD
            else:
                reason = NOT_ENVELOPE
            self.leave_out(reason, _detail(cause) if cause is not None else str(exc))
            return []
        return self.from_body(message.body, message.content_type)

    def from_body(self, body: bytes, content_type: str | None) -> list[dict[str, object]]:
        """The events in a message body of ``content_type``: one event, or a list of them."""
        if content_type == UNDECODABLE_CONTENT_TYPE:
            self.leave_out(UNREADABLE_PROPERTIES, "see the delivery's undecodable header")
            return []
        media = (content_type or "").split(";", 1)[0].strip().lower()
        if media not in JSON_CONTENT_TYPES:
            self.leave_out(NOT_JSON_TYPE, f"it is {media[:DETAIL_MAX]!r}")
            return []
        try:
            found = json_loads(body)
        except Exception as exc:  # not UTF-8, not JSON, too deep, a tagged value that does not parse
            self.leave_out(NOT_JSON_BODY, _detail(exc))
            return []
        if type(found) is dict:
            if isinstance(found.get("type"), str):
                return [found]
            self.leave_out(NOT_AN_EVENT, f"its 'type' is {type(found.get('type')).__name__}")
            return []
        if type(found) is list:  # a worker's buffered events, routed as <group>.multi
            events: list[dict[str, object]] = []
            for item in found:
                if type(item) is dict and isinstance(item.get("type"), str):
                    events.append(item)
                else:
                    self.leave_out(NOT_AN_EVENT, f"a list holds {type(item).__name__}")
            return events
        self.leave_out(NOT_AN_EVENT, f"it is {type(found).__name__}")
        return []

    def leave_out(self, reason: str, detail: str) -> None:
        """Count an event left out; log the first of each ``reason`` at WARNING, the rest at DEBUG."""
        self.left_out += 1
        if reason in self._warned:
            logger.debug("left out an event from %s: %s (%s)", self.source, reason, detail)
            return
        self._warned.add(reason)
        logger.warning(
            "left out an event from %s: %s (%s); more for this reason are logged at DEBUG", self.source, reason, detail
        )


def _detail(exc: BaseException) -> str:
    """What was wrong, without the data: where JSON or UTF-8 failed, or the error's type."""
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 at byte {exc.start}"
    if isinstance(exc, binascii.Error):
        return str(exc)[:DETAIL_MAX]  # what is wrong with the base64, never the data
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return type(exc).__name__


__all__ = [
    "EVENT_CONTENT_TYPE",
    "EVENT_EXCHANGE",
    "EVENT_QUEUE_PREFIX",
    "EventDecoder",
    "event_message",
    "routing_key",
]
