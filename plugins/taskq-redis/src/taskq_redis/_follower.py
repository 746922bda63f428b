"""A reader that follows Redis on a connection of its own and comes back after losing it.

The event reader, a worker's remote control mailbox and a client's reply collector each
wait on a connection that blocks (a subscription, a ``BRPOP``), so none of them can share
the transport's. What happens around the wait is the same for all three, and lives here:
attaching (subscribing, binding a queue) before the constructor returns, so nothing sent
afterwards is missed; reading until something comes or the timeout passes; and, when the
connection is lost, logging it once, pausing and attaching again on a later read rather
than raising, since a reader is polled in a loop by code that cannot do better.

Private: nothing outside taskq-redis imports it.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Generic, TypeVar

from taskq.errors import BrokerUnavailableError, ConfigError
from taskq_redis._codec import RedisAuthError, ResponseError
from taskq_redis._connection import CONNECTION_ERRORS, Endpoint, connect, unreachable

logger = logging.getLogger(__name__)

# Pause before attaching again after a failed attempt, in seconds (bounded by the read's timeout).
REATTACH_PAUSE = 0.5
# What a read survives (and attaches again after): a lost connection, an error reply.
LOST: tuple[type[Exception], ...] = (*CONNECTION_ERRORS, ResponseError)

T = TypeVar("T")


class Follower(ABC, Generic[T]):
    """A reader with a Redis connection of its own; see the module docstring.

    A subclass says how to attach (:meth:`_attach`), wait for what comes (:meth:`_take`)
    and let go of the connection (:meth:`_detach`), then calls :meth:`_start` at the end
    of its constructor. :meth:`_start` raises :class:`BrokerUnavailableError` when Redis
    cannot be reached then; later losses are logged and survived.
    """

    #: What is followed, for log lines ("the event subscription").
    following = "the subscription"
    #: What a loss costs, for log lines ("events sent meanwhile are lost").
    meanwhile = "what is sent meanwhile is lost"

    def __init__(self, url: str, options: Mapping[str, object]) -> None:
        self._endpoint: Endpoint = connect(url, options, setting="broker_url")
        self._attached = False
        self._lost_since: float | None = None

    @abstractmethod
    def _attach(self) -> None:
        """Subscribe, bind: what must be in place before anything sent can reach this reader."""

    @abstractmethod
    def _take(self, timeout: float) -> list[T]:
        """What arrived within ``timeout`` seconds (raising what :data:`LOST` holds on a lost connection)."""

    @abstractmethod
    def _detach(self) -> None:
        """Drop the connection (lost, or closing); never raises."""

    def _refused(self, exc: ResponseError) -> str:
        """The advice when Redis refuses to attach at start (an ACL, say)."""
        return f"Redis at {self._endpoint.masked_url} refused {self.following} ({exc})"

    def _start(self) -> None:
        endpoint = self._endpoint
        try:
            self._attach()
        except CONNECTION_ERRORS as exc:
            self._detach()
            endpoint.client.close()
            raise BrokerUnavailableError(unreachable(endpoint, exc)) from exc
        except RedisAuthError:
            self._detach()
            endpoint.client.close()
            raise
        except ResponseError as exc:
            self._detach()
            endpoint.client.close()
            raise ConfigError(self._refused(exc)) from exc
        self._attached = True

    def _follow(self, timeout: float) -> list[T]:
        """Read for up to ``timeout`` seconds: attach again if need be, return what came."""
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            try:
                with self._endpoint.client.deadline(deadline):
                    if not self._attached:
                        self._attach()
                        self._attached = True
                        self._back()
                    found = self._take(deadline - time.monotonic())
            except RedisAuthError:
                raise  # retrying cannot help: the configuration must change
            except LOST as exc:
                self._lost(exc)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                time.sleep(min(REATTACH_PAUSE, remaining))
                continue
            if found or deadline - time.monotonic() <= 0:
                return found

    def _lost(self, exc: BaseException) -> None:
        self._detach()
        self._attached = False
        if self._lost_since is None:
            self._lost_since = time.monotonic()
            logger.warning(
                "lost %s on %s (%s); following again, %s",
                self.following,
                self._endpoint.masked_url,
                exc,
                self.meanwhile,
            )

    def _back(self) -> None:
        if self._lost_since is not None:
            logger.info(
                "%s on %s is back after %.1fs",
                self.following,
                self._endpoint.masked_url,
                time.monotonic() - self._lost_since,
            )
            self._lost_since = None

    def close(self) -> None:
        self._detach()
        self._attached = False
        self._endpoint.client.close()


__all__ = ["LOST", "Follower"]
