"""Remote control's mailbox on Redis in kombu's pidbox layout, so that Celery's ``inspect``
and ``control`` reach taskq workers and taskq's reach Celery workers.

``namespace`` is Celery's ``control_exchange`` (``celery`` by default); ``P`` is
``global_keyprefix`` and ``SEP`` kombu's separator ``\\x06\\x16``.

**Requests** go to the fanout exchange ``<namespace>.pidbox`` with an empty routing key,
which kombu's Redis transport PUBLISHes, as its JSON envelope, on the channel::

    P/<db>.<namespace>.pidbox

(kombu's fanout on Redis, :mod:`taskq_redis._fanout`: ``fanout_prefix`` changes the
``/<db>.``; the empty routing key adds nothing whatever ``fanout_patterns`` says). A
worker's reader PSUBSCRIBEs to that channel alone on a connection of its own, confirmed
before :meth:`RedisMailbox.listen` returns. It also binds the worker's queue
``<hostname>.<namespace>.pidbox`` as a Celery worker does (the member ``SEP SEP <queue>``
of the set ``P_kombu.binding.<namespace>.pidbox``): nothing routes by it, pub/sub does the
fanout, but whatever lists kombu's bindings sees the worker.

**Replies** go to the direct exchange ``reply.<namespace>.pidbox`` under the asking
client's routing key (kombu's ``oid``). kombu routes a direct exchange on Redis through its
binding set ``P_kombu.binding.reply.<namespace>.pidbox``, whose members are
``<routing key>SEP SEP<queue>``: a reply is LPUSHed onto the list ``P<queue>`` of each queue
bound with its routing key. So a collector, taskq's or Celery's, binds its queue
``<routing key>.reply.<namespace>.pidbox`` before the request goes out, pops from its list
(and from the priority lists ``<queue>SEP3``, ``6`` and ``9``, which replies never use,
as kombu's consumer does) and, when done, unbinds the queue and deletes its lists. A reply
is kombu's envelope of the JSON ``{hostname: answer}`` with a ``ticket`` header.

**Expiry.** Celery declares both queues with an ``x-expires`` (``control_queue_expires``),
so kombu 5.7 records a deadline for their binding sets in the sorted set
``P_kombu.binding_deadlines`` (exchange -> ms by the server's clock, at least an hour
ahead, pushed forward while a consumer lives), and Celery workers delete a set whose
deadline has passed. taskq's readers bind the same way and push the deadline forward every
:data:`BINDING_REFRESH` seconds, so kombu's sweep never takes a live taskq reader's
binding. kombu sets no expiry on a reply list when it pushes a reply; taskq does
(:data:`REPLY_KEPT`), so that replies to a client that died pile up nowhere.

**Hostile input.** Whatever any program PUBLISHes on the channel or pushes onto a reply
list reaches a reader. What is not kombu's envelope, is not of a JSON content type or has
a body that is not JSON is left out and logged (at WARNING once per cause and reader, then
at DEBUG; never with the payload), never raised. A letter's headers keep text names only.

Private: nothing outside taskq-redis imports it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping

from taskq.drivers.serializer import json_dumps, json_loads
from taskq.drivers.support.envelope import decode, encode_kombu
from taskq.drivers.support.event_messages import JSON_CONTENT_TYPES
from taskq.drivers.support.mailbox import reply_exchange
from taskq.drivers.transport import Letter, Mailbox, MailboxReader, Message
from taskq.errors import BrokerUnavailableError, MessageDecodeError, SerializationError
from taskq_redis._codec import RedisConnectionError, pack
from taskq_redis._connection import CONNECTION_ERRORS, Endpoint, unreachable
from taskq_redis._fanout import FanoutLayout, FanoutReader, literal
from taskq_redis._follower import LOST, Follower
from taskq_redis._layout import PRIORITY_STEPS, SEP, queue_key
from taskq_redis._resp import Connection
from taskq_redis._scripts import Script, run

logger = logging.getLogger(__name__)

# kombu 5.7's shortest life of a binding set that no consumer refreshes (its MIN_BINDING_TTL), in seconds.
BINDING_TTL = 3600.0
# How often a live reader pushes its binding set's deadline forward, in seconds (a third, as kombu).
BINDING_REFRESH = BINDING_TTL / 3
# Seconds a reply list is kept after its last reply: far longer than a collector waits between reads.
REPLY_KEPT = 60.0
# Longest single BRPOP of a collector, in seconds (a read waits longer in several).
BRPOP_MAX = 5.0
# Seconds beyond a BRPOP's own timeout after which its connection counts as dead.
BRPOP_SLACK = 5.0
# Most replies one read takes from each list.
READ_MAX = 1000
# Seconds close() spends, at most, retrying to unbind from a Redis that does not answer.
UNBIND_TIMEOUT = 2.0

# Why a message was left out: one WARNING each per reader, the rest at DEBUG.
NOT_ENVELOPE = "it is not kombu's message envelope"
NOT_JSON_TYPE = "its content type is not JSON"
NOT_JSON_BODY = "its body is not UTF-8 JSON"
# Longest detail kept in a log line, in characters (it says what was wrong, never the data).
DETAIL_MAX = 200

# ARGV: P, exchange, member, ttl ms. Binds as kombu 5.7 binds a queue declared with an
# x-expires: the member goes in the exchange's binding set, whose deadline moves to
# now + ttl unless it is later already.
BIND = Script(
    r"""
local P, exchange, member, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
redis.call('SADD', P .. '_kombu.binding.' .. exchange, member)
local t = redis.call('TIME')
local due = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + ttl
local deadlines = P .. '_kombu.binding_deadlines'
local was = redis.call('ZSCORE', deadlines, exchange)
if not was or tonumber(was) < due then redis.call('ZADD', deadlines, due, exchange) end
return 1
"""
)

# ARGV: P, exchange, routing key, envelope, ms a list keeps it. Routes as kombu's direct
# exchange on Redis: an LPUSH onto the list of every queue bound with that routing key (the
# priority-0 list: a reply has no priority). Returns how many queues got it.
REPLY = Script(
    r"""
local P, exchange, key, envelope, keep = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local sent = 0
for _, member in ipairs(redis.call('SMEMBERS', P .. '_kombu.binding.' .. exchange)) do
  local bound, queue = string.match(member, '^(.-)\6\22.-\6\22(.*)$')
  if bound == key and queue ~= '' then
    redis.call('LPUSH', P .. queue, envelope)
    redis.call('PEXPIRE', P .. queue, keep)
    sent = sent + 1
  end
end
return sent
"""
)


def pidbox_exchange(namespace: str) -> str:
    """Where requests go, by Celery's name: ``<namespace>.pidbox``."""
    return f"{namespace}.pidbox"


# kombu's delivery modes: requests go out persistent (kombu's Mailbox names their exchange,
# so its producer's default applies), replies transient.
REQUEST_DELIVERY_MODE = 2
REPLY_DELIVERY_MODE = 1


def _message(body: Mapping[str, object], headers: Mapping[str, object], delivery_mode: int) -> Message:
    """A request or reply as kombu's Mailbox sends it: JSON, in ``delivery_mode``."""
    try:
        data = json_dumps(dict(body))
    except (TypeError, ValueError) as exc:
        raise SerializationError(
            f"a remote control message cannot be sent as JSON ({exc}); keep its values to JSON's"
        ) from exc
    return Message(data, dict(headers), "application/json", "utf-8", {"delivery_mode": delivery_mode})


class RedisMailbox(Mailbox):
    """Remote control's mailbox on Redis in kombu's pidbox layout; see the module docstring.

    Requests and replies go out on the transport's connection (``endpoint``); each reader
    has a connection of its own.
    """

    def __init__(
        self, endpoint: Callable[[], Endpoint], url: str, options: Mapping[str, object], namespace: str = "celery"
    ) -> None:
        super().__init__(namespace)
        self._endpoint = endpoint
        self._url = url
        self._options = options

    def broadcast(self, body: Mapping[str, object], headers: Mapping[str, object]) -> None:
        endpoint = self._endpoint()
        exchange = pidbox_exchange(self.namespace)
        channel = FanoutLayout(self._options, endpoint.prefix, endpoint.db, exchange).channel()
        envelope = encode_kombu(_message(body, headers, REQUEST_DELIVERY_MODE), "", exchange=exchange)
        try:
            endpoint.client.execute("PUBLISH", channel, envelope)
        except CONNECTION_ERRORS as exc:
            raise BrokerUnavailableError(unreachable(endpoint, exc)) from exc

    def listen(self, hostname: str) -> MailboxReader:
        return RequestReader(self._url, self._options, self.namespace, hostname)

    def reply(self, reply_to: Mapping[str, str], body: Mapping[str, object], headers: Mapping[str, object]) -> None:
        endpoint = self._endpoint()
        exchange, routing_key = reply_to["exchange"], reply_to["routing_key"]
        envelope = encode_kombu(_message(body, headers, REPLY_DELIVERY_MODE), routing_key, exchange=exchange)
        keep = int(REPLY_KEPT * 1000)
        try:
            sent = run(endpoint.client, REPLY, [endpoint.prefix, exchange, routing_key, envelope, keep])
        except CONNECTION_ERRORS as exc:
            raise BrokerUnavailableError(unreachable(endpoint, exc)) from exc
        if not sent:
            logger.debug("no queue is bound to %s with routing key %s: the reply is dropped", exchange, routing_key)

    def collect(self) -> MailboxReader:
        return ReplyCollector(self._url, self._options, self.namespace)


class LetterDecoder:
    """Turns kombu envelopes into letters, leaving out (and logging) what is not one.

    One per reader; ``source`` names where the messages come from in its log lines (a
    masked URL and a channel or list). :attr:`left_out` counts what was left out.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.left_out = 0
        self._warned: set[str] = set()

    def letters(self, payloads: Iterable[bytes]) -> list[Letter]:
        found: list[Letter] = []
        for payload in payloads:
            letter = self.letter(payload)
            if letter is not None:
                found.append(letter)
        return found

    def letter(self, payload: bytes) -> Letter | None:
        """The letter in one envelope, or None (logged) when there is none."""
        try:
            message = decode(payload)
        except MessageDecodeError as exc:
            self._leave_out(NOT_ENVELOPE, str(exc))  # says what was wrong, never the data
            return None
        media = message.content_type.split(";", 1)[0].strip().lower()
        if media not in JSON_CONTENT_TYPES:
            self._leave_out(NOT_JSON_TYPE, f"it is {media[:DETAIL_MAX]!r}")
            return None
        try:
            body = json_loads(message.body)
        except Exception as exc:  # not UTF-8, not JSON, too deep, a tagged value that does not parse
            self._leave_out(NOT_JSON_BODY, _detail(exc))
            return None
        return Letter(body, {name: value for name, value in message.headers.items() if isinstance(name, str)})

    def _leave_out(self, reason: str, detail: str) -> None:
        self.left_out += 1
        if reason in self._warned:
            logger.debug("left out a remote control message from %s: %s (%s)", self.source, reason, detail)
            return
        self._warned.add(reason)
        logger.warning(
            "left out a remote control message from %s: %s (%s); more for this reason are logged at DEBUG",
            self.source,
            reason,
            detail,
        )


def _detail(exc: BaseException) -> str:
    """What was wrong with a body: where JSON or UTF-8 failed, never the data."""
    if isinstance(exc, (json.JSONDecodeError, UnicodeDecodeError)):
        return str(exc)[:DETAIL_MAX]
    return "nested too deeply" if isinstance(exc, RecursionError) else type(exc).__name__


class _Binding:
    """One queue bound to an exchange as kombu 5.7 binds a queue that expires (:data:`BIND`)."""

    def __init__(self, endpoint: Endpoint, exchange: str, routing_key: str, queue: str) -> None:
        self._endpoint = endpoint
        self.exchange = exchange
        self.member = SEP.join([routing_key, "", queue])
        self._bound_at = 0.0

    def bind(self) -> None:
        endpoint = self._endpoint
        run(endpoint.client, BIND, [endpoint.prefix, self.exchange, self.member, int(BINDING_TTL * 1000)])
        self._bound_at = time.monotonic()

    def refresh(self) -> None:
        """Push the binding set's deadline forward when it is time to."""
        if time.monotonic() - self._bound_at >= BINDING_REFRESH:
            self.bind()

    def unbind(self, *lists: str) -> None:
        """Remove the binding and delete ``lists``, as kombu deletes a queue; a Redis that is gone is let be."""
        endpoint = self._endpoint
        prefix, exchange = endpoint.prefix, self.exchange
        commands: list[tuple[object, ...]] = [
            ("SREM", f"{prefix}_kombu.binding.{exchange}", self.member),
            ("SREM", f"{prefix}_kombu.binding_permanent.{exchange}", self.member),
        ]
        if lists:
            commands.append(("DEL", *lists))
        with contextlib.suppress(*LOST), endpoint.client.deadline(time.monotonic() + UNBIND_TIMEOUT):
            endpoint.client.pipeline(commands)


class RequestReader(FanoutReader[Letter], MailboxReader):
    """A worker's reader of the requests on its namespace's channel; see the module docstring."""

    following = "the remote control subscription"
    meanwhile = "requests sent meanwhile are lost"

    def __init__(self, url: str, options: Mapping[str, object], namespace: str, hostname: str) -> None:
        super().__init__(url, options)
        endpoint = self._endpoint
        exchange = pidbox_exchange(namespace)
        channel = FanoutLayout(options, endpoint.prefix, endpoint.db, exchange).channel()
        self.pattern = literal(channel)
        self._binding = _Binding(endpoint, exchange, "", f"{hostname}.{exchange}")
        self._decoder = LetterDecoder(f"{endpoint.masked_url} (channel {channel})")
        self._start()

    @property
    def left_out(self) -> int:
        """How many messages were left out as unreadable."""
        return self._decoder.left_out

    def _attach(self) -> None:
        super()._attach()
        self._binding.bind()

    def _take(self, timeout: float) -> list[Letter]:
        self._binding.refresh()
        return super()._take(timeout)

    def _payload(self, payload: bytes) -> list[Letter]:
        return self._decoder.letters([payload])

    def read(self, timeout: float) -> list[Letter]:
        return self._follow(timeout)

    def close(self) -> None:
        self._binding.unbind()
        super().close()


class ReplyCollector(Follower[Letter], MailboxReader):
    """A client's reader of the replies to its routing key, from its own bound queue; see the module docstring."""

    following = "a remote control reply queue"
    meanwhile = "replies sent while its queue is unbound are lost"

    def __init__(self, url: str, options: Mapping[str, object], namespace: str) -> None:
        super().__init__(url, options)
        endpoint = self._endpoint
        routing_key = str(uuid.uuid4())
        exchange = reply_exchange(namespace)
        queue = f"{routing_key}.{exchange}"
        self.reply_to = {"exchange": exchange, "routing_key": routing_key}
        self._lists = [queue_key(queue, step, endpoint.prefix) for step in PRIORITY_STEPS]
        self._binding = _Binding(endpoint, exchange, routing_key, queue)
        self._decoder = LetterDecoder(f"{endpoint.masked_url} (list {self._lists[0]})")
        self._conn: Connection | None = None  # for BRPOP, which blocks it
        self._start()

    @property
    def left_out(self) -> int:
        """How many messages were left out as unreadable."""
        return self._decoder.left_out

    def _attach(self) -> None:
        self._binding.bind()

    def _take(self, timeout: float) -> list[Letter]:
        self._binding.refresh()
        found = self._pop()
        if not found and timeout >= 0.001:
            first = self._wait(min(timeout, BRPOP_MAX))
            if first is not None:
                found = [first, *self._pop()]
        return self._decoder.letters(found)

    def _pop(self) -> list[bytes]:
        """Whatever the lists hold now, oldest first (priority 0 first, as kombu pops)."""
        replies = self._endpoint.client.pipeline([("RPOP", key, READ_MAX) for key in self._lists])
        found: list[bytes] = []
        for reply in replies:
            if isinstance(reply, list):
                found += [item for item in reply if isinstance(item, bytes)]
        return found

    def _wait(self, timeout: float) -> bytes | None:
        """BRPOP for up to ``timeout`` seconds (at least 0.001) on this reader's own connection."""
        conn = self._conn
        if conn is None:
            conn = self._conn = self._endpoint.client.connection()
        try:
            conn.send(pack(("BRPOP", *self._lists, f"{timeout:.3f}")))
            if not conn.can_read(timeout + BRPOP_SLACK):
                raise RedisConnectionError(f"Redis did not answer a BRPOP within {timeout + BRPOP_SLACK:.1f}s")
            reply = conn.read_response()
        except BaseException:
            conn.disconnect()  # its BRPOP may still be waiting: its reply must answer no later command
            raise
        if isinstance(reply, list) and len(reply) == 2 and isinstance(reply[1], bytes):
            return reply[1]
        return None

    def _detach(self) -> None:
        if self._conn is not None:
            self._conn.disconnect()
            self._conn = None

    def read(self, timeout: float) -> list[Letter]:
        return self._follow(timeout)

    def close(self) -> None:
        self._binding.unbind(*self._lists)
        super().close()


__all__ = ["LetterDecoder", "RedisMailbox", "ReplyCollector", "RequestReader", "pidbox_exchange"]
