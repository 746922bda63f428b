"""kombu's fanout exchanges on Redis: the pub/sub channel a message goes to, and a reader of them.

kombu's Redis transport makes a fanout exchange of pub/sub: a message sent to the exchange
``<exchange>`` with routing key ``<key>`` is PUBLISHed, as kombu's JSON envelope, on::

    <global_keyprefix>/<db>.<exchange>/<key>

and on ``<global_keyprefix>/<db>.<exchange>`` when the key is empty (Celery's remote
control requests). A consumer PSUBSCRIBEs to the channel of the key its queue is bound
with (Celery's event receivers bind with ``#``, which kombu turns into ``*``). kombu
puts ``global_keyprefix`` in front of the channels of PUBLISH and PSUBSCRIBE as in front
of every key. The transport options are kombu's: ``fanout_prefix = false`` drops the
``/<db>.`` (a text value replaces it, ``{db}`` standing for the database) and
``fanout_patterns = false`` drops the ``/<key>`` part.

Pub/sub keeps nothing: a reader gets what is published while it is subscribed.

Private: nothing outside taskq-redis imports it.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping

from taskq_redis._connection import _flag
from taskq_redis._follower import Follower, T
from taskq_redis._resp import PubSub

# Most pub/sub replies one read takes in, so that a flood cannot keep it from returning.
READ_MAX = 10_000
# Characters a PSUBSCRIBE pattern reads as wildcards; escaped where a name is literal.
GLOB_SPECIAL = "\\*?[]"


def literal(name: str) -> str:
    """A PSUBSCRIBE pattern that matches ``name`` and nothing else."""
    return "".join(f"\\{c}" if c in GLOB_SPECIAL else c for c in name)


class FanoutLayout:
    """Where the messages of one fanout exchange go on one Redis database (kombu's names)."""

    def __init__(self, options: Mapping[str, object], prefix: str, db: int, exchange: str) -> None:
        self.exchange = exchange
        fanout = options.get("fanout_prefix", True)
        marker = f"/{db}." if fanout else ""
        if isinstance(fanout, str):
            marker = fanout.replace("{db}", str(db))  # a prefix of one's own, as kombu takes it
        self.patterns = _flag(options.get("fanout_patterns", True))
        self._topic = f"{prefix}{marker}{exchange}"

    def channel(self, routing_key: str = "") -> str:
        """The channel a message routed ``routing_key`` is PUBLISHed on."""
        return f"{self._topic}/{routing_key}" if self.patterns and routing_key else self._topic

    @property
    def pattern(self) -> str:
        """What a reader of every routing key PSUBSCRIBEs to."""
        return f"{literal(self._topic)}/*" if self.patterns else literal(self._topic)

    def pattern_under(self, first_word: str) -> str | None:
        """What a reader of the routing keys ``<first_word>.*`` PSUBSCRIBEs to; None when the
        channels do not carry routing keys (``fanout_patterns`` off)."""
        return f"{literal(self._topic)}/{literal(first_word)}.*" if self.patterns else None


class FanoutReader(Follower[T]):
    """A PSUBSCRIBE to :attr:`pattern` on a connection of its own, confirmed before use.

    A subclass sets :attr:`pattern` before calling :meth:`_start` and turns each payload
    into what it reads (:meth:`_payload`).
    """

    pattern = ""
    _pubsub: PubSub | None = None

    @abstractmethod
    def _payload(self, payload: bytes) -> list[T]:
        """What one message published on the channels holds (never raises)."""

    def _attach(self) -> None:
        pubsub = self._endpoint.client.pubsub()
        try:
            pubsub.psubscribe(self.pattern)
            while True:  # nothing is published to us before the confirmation
                reply = pubsub.connection.read_response()
                if isinstance(reply, list) and reply and reply[0] == b"psubscribe":
                    break
        except BaseException:
            pubsub.close()
            raise
        self._pubsub = pubsub

    def _take(self, timeout: float) -> list[T]:
        """What arrived within ``timeout`` seconds, and everything right behind it."""
        assert self._pubsub is not None
        conn = self._pubsub.connection
        found: list[T] = []
        if not conn.can_read(max(0.0, timeout)):
            return found
        for _ in range(READ_MAX):
            reply = conn.read_response()
            # [b"pmessage", pattern, channel, payload]; confirmations and the rest are skipped
            if isinstance(reply, list) and len(reply) == 4 and reply[0] == b"pmessage":
                payload = reply[3]
                if isinstance(payload, bytes):
                    found += self._payload(payload)
            if not conn.can_read(0):
                break
        return found

    def _detach(self) -> None:
        if self._pubsub is not None:
            self._pubsub.close()
            self._pubsub = None


__all__ = ["READ_MAX", "FanoutLayout", "FanoutReader", "literal"]
