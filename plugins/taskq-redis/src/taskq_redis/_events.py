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
reader that lost its connection subscribes again on a later read (what was sent in
between is lost, as for Celery's receivers). The channels and the reader are kombu's
fanout on Redis (:mod:`taskq_redis._fanout`).

Private: nothing outside taskq-redis imports it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from taskq.drivers.support.event_messages import EVENT_EXCHANGE, EventDecoder
from taskq.drivers.transport import EventReader, in_groups
from taskq_redis._codec import ResponseError
from taskq_redis._fanout import FanoutLayout, FanoutReader


class EventLayout(FanoutLayout):
    """Where events go on one Redis database, from the transport's options (kombu's names)."""

    def __init__(self, options: Mapping[str, object], prefix: str, db: int) -> None:
        super().__init__(options, prefix, db, str(options.get("event_exchange") or EVENT_EXCHANGE))


class RedisEventReader(FanoutReader[dict[str, object]], EventReader):
    """A PSUBSCRIBE to the event channels on a connection of its own; see the module docstring.

    Made subscribed: the confirmation is read before the constructor returns, so whatever
    is published afterwards reaches it. Raises :class:`BrokerUnavailableError` when Redis
    cannot be reached then; later, a lost connection is logged and subscribed again.
    """

    following = "the event subscription"
    meanwhile = "events sent meanwhile are lost"

    def __init__(self, url: str, options: Mapping[str, object], groups: Collection[str] | None = None) -> None:
        super().__init__(url, options)
        endpoint = self._endpoint
        layout = EventLayout(options, endpoint.prefix, endpoint.db)
        self.groups = groups
        # one group (a gossiping worker's "worker"): Redis sends only its channels, as to Celery's gossip
        narrow = layout.pattern_under(next(iter(groups))) if groups is not None and len(groups) == 1 else None
        self.pattern = narrow or layout.pattern
        self._decoder = EventDecoder(f"{endpoint.masked_url} (channels {self.pattern})")
        self._start()

    @property
    def left_out(self) -> int:
        """How many events were left out as unreadable."""
        return self._decoder.left_out

    def _refused(self, exc: ResponseError) -> str:
        return (
            f"Redis at {self._endpoint.masked_url} refused to subscribe to the event channels {self.pattern!r} "
            f"({exc}); let the user read them (ACL: &{self.pattern})"
        )

    def _payload(self, payload: bytes) -> list[dict[str, object]]:
        events = self._decoder.from_envelope(payload)
        if self.groups is None:
            return events
        return [event for event in events if in_groups(event["type"], self.groups)]

    def read(self, timeout: float) -> list[dict[str, object]]:
        return self._follow(timeout)


__all__ = ["EventLayout", "RedisEventReader"]
