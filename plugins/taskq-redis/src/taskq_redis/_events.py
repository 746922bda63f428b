"""Events on Redis in kombu's layout: PUBLISHed on the ``celeryev`` channels, read by PSUBSCRIBE.

kombu's Redis transport makes a fanout exchange of pub/sub, and Celery's event exchange is
one there. With Celery's defaults (``fanout_prefix`` and ``fanout_patterns`` on), the event
routed ``task.succeeded`` is PUBLISHed, as kombu's JSON envelope (body in base64,
``delivery_info`` naming the exchange and routing key), on the channel::

    <global_keyprefix>/<db>.celeryev/task.succeeded

and an event receiver (bound with ``#``, which kombu turns into ``*``) PSUBSCRIBEs to
``<global_keyprefix>/<db>.celeryev/*``. kombu puts ``global_keyprefix`` in front of the
channel of PUBLISH and of (P)SUBSCRIBE as in front of every key, so a taskq cluster and a
Celery cluster see each other's events when they share the prefix (and the database).
``fanout_prefix = false`` drops the ``/<db>.`` (a text value replaces it, ``{db}`` standing
for the database), ``fanout_patterns = false`` the ``/<routing key>`` part, as in kombu.

Pub/sub keeps nothing: a reader gets what is published while it is subscribed, and a
reader that lost its connection subscribes again on its next read (what was sent in
between is lost, as for Celery's receivers).

Private: nothing outside taskq-redis imports it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from taskq.drivers.support.event_messages import EVENT_EXCHANGE, EventDecoder
from taskq.drivers.transport import EventReader
from taskq.errors import BrokerUnavailableError, ConfigError
from taskq_redis._codec import RedisAuthError, ResponseError
from taskq_redis._connection import CONNECTION_ERRORS, Endpoint, _flag, connect, unreachable
from taskq_redis._resp import PubSub

logger = logging.getLogger(__name__)

# Most pub/sub replies one read() takes in, so that a flood cannot keep it from returning.
READ_MAX = 10_000
# Pause before subscribing again after a failed attempt, in seconds (bounded by the read's timeout).
RESUBSCRIBE_PAUSE = 0.5
# What read() survives (and subscribes again after): a lost connection, an error reply.
LOST: tuple[type[Exception], ...] = (*CONNECTION_ERRORS, ResponseError)
# Characters a PSUBSCRIBE pattern reads as wildcards; escaped where the name is literal.
GLOB_SPECIAL = "\\*?[]"


class EventLayout:
    """Where events go on one Redis database, from the transport's options (kombu's names)."""

    def __init__(self, options: Mapping[str, object], prefix: str, db: int) -> None:
        self.exchange = str(options.get("event_exchange") or EVENT_EXCHANGE)
        fanout = options.get("fanout_prefix", True)
        marker = f"/{db}." if fanout else ""
        if isinstance(fanout, str):
            marker = fanout.replace("{db}", str(db))  # a prefix of one's own, as kombu takes it
        self.patterns = _flag(options.get("fanout_patterns", True))
        self._topic = f"{prefix}{marker}{self.exchange}"

    def channel(self, routing_key: str) -> str:
        """The channel an event routed ``routing_key`` is PUBLISHed on."""
        return f"{self._topic}/{routing_key}" if self.patterns and routing_key else self._topic

    @property
    def pattern(self) -> str:
        """What a reader PSUBSCRIBEs to: every routing key of the exchange."""
        literal = "".join(f"\\{c}" if c in GLOB_SPECIAL else c for c in self._topic)
        return f"{literal}/*" if self.patterns else literal


class RedisEventReader(EventReader):
    """A PSUBSCRIBE to the event channels on a connection of its own; see the module docstring.

    Made subscribed: the confirmation is read before the constructor returns, so whatever
    is published afterwards reaches it. Raises :class:`BrokerUnavailableError` when Redis
    cannot be reached then; later, a lost connection is logged and subscribed again.
    """

    def __init__(self, url: str, options: Mapping[str, object]) -> None:
        self._endpoint: Endpoint = connect(url, options, setting="broker_url")
        endpoint = self._endpoint
        self._pattern = EventLayout(options, endpoint.prefix, endpoint.db).pattern
        self._decoder = EventDecoder(f"{endpoint.masked_url} (channels {self._pattern})")
        self._pubsub: PubSub | None = None
        self._lost_since: float | None = None
        try:
            self._subscribe()
        except CONNECTION_ERRORS as exc:
            endpoint.client.close()
            raise BrokerUnavailableError(unreachable(endpoint, exc)) from exc
        except RedisAuthError:
            endpoint.client.close()
            raise
        except ResponseError as exc:  # an ACL without these channels, say
            endpoint.client.close()
            raise ConfigError(
                f"Redis at {endpoint.masked_url} refused to subscribe to the event channels {self._pattern!r} "
                f"({exc}); let the user read them (ACL: &{self._pattern})"
            ) from exc

    @property
    def left_out(self) -> int:
        """How many events were left out as unreadable."""
        return self._decoder.left_out

    def _subscribe(self) -> PubSub:
        pubsub = self._endpoint.client.pubsub()
        try:
            pubsub.psubscribe(self._pattern)
            while True:  # nothing is published to us before the confirmation
                reply = pubsub.connection.read_response()
                if isinstance(reply, list) and reply and reply[0] == b"psubscribe":
                    break
        except BaseException:
            pubsub.close()
            raise
        self._pubsub = pubsub
        return pubsub

    def read(self, timeout: float) -> list[dict[str, object]]:
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            remaining = deadline - time.monotonic()
            try:
                pubsub = self._pubsub
                if pubsub is None:
                    with self._endpoint.client.deadline(deadline):
                        pubsub = self._subscribe()
                    self._back()
                events = self._take(pubsub, remaining)
            except RedisAuthError:
                raise  # retrying cannot help: the configuration must change
            except LOST as exc:
                self._lost(exc)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                time.sleep(min(RESUBSCRIBE_PAUSE, remaining))
                continue
            if events or deadline - time.monotonic() <= 0:
                return events

    def _take(self, pubsub: PubSub, timeout: float) -> list[dict[str, object]]:
        """What arrived within ``timeout`` seconds, and everything right behind it."""
        conn = pubsub.connection
        events: list[dict[str, object]] = []
        if not conn.can_read(max(0.0, timeout)):
            return events
        for _ in range(READ_MAX):
            reply = conn.read_response()
            # [b"pmessage", pattern, channel, payload]; confirmations and the rest are skipped
            if isinstance(reply, list) and len(reply) == 4 and reply[0] == b"pmessage":
                payload = reply[3]
                if isinstance(payload, bytes):
                    events += self._decoder.from_envelope(payload)
            if not conn.can_read(0):
                break
        return events

    def _lost(self, exc: BaseException) -> None:
        if self._pubsub is not None:
            self._pubsub.close()
            self._pubsub = None
        if self._lost_since is None:
            self._lost_since = time.monotonic()
            logger.warning(
                "lost the event subscription on %s (%s); subscribing again, events sent meanwhile are lost",
                self._endpoint.masked_url,
                exc,
            )

    def _back(self) -> None:
        if self._lost_since is not None:
            logger.info(
                "subscribed to events on %s again after %.1fs",
                self._endpoint.masked_url,
                time.monotonic() - self._lost_since,
            )
            self._lost_since = None

    def close(self) -> None:
        if self._pubsub is not None:
            self._pubsub.close()
            self._pubsub = None
        self._endpoint.client.close()


__all__ = ["EventLayout", "RedisEventReader"]
