"""Controlling workers from a client: ``app.control``, as Celery's (``revoke``, ``rate_limit``,
``pool_grow``, ``inspect().active()``...).

Requests travel through the broker's remote control mailbox, in Celery's layout on Redis
and RabbitMQ, so Celery workers answer them too; the worker side is
:mod:`taskq.worker.remote`. Revocations are also kept in the result backend's
revocation log, so that they reach workers that start later.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from taskq.errors import ConfigError

if TYPE_CHECKING:
    from taskq.app import App
    from taskq.drivers.transport import MailboxReader


#: How a revocation by stamp begins in the revocation log, where task ids are kept.
STAMP_REVOCATION = "taskq:revoke-stamped:"


def stamp_revocation(stamps: Mapping[str, object]) -> str:
    """The log entry that revokes tasks carrying any of ``stamps`` (name: value or list of values)."""
    return STAMP_REVOCATION + json.dumps(
        {name: value if isinstance(value, list) else [value] for name, value in stamps.items()}, sort_keys=True
    )


def stamp_key(value: object) -> str:
    """A stamp value as a key that compares equal for equal JSON values."""
    try:
        return json.dumps(value, sort_keys=True, default=repr)
    except (TypeError, ValueError, RecursionError):  # keys of mixed types, a value nested too deeply
        return f"<a {type(value).__name__} that cannot be compared>"


def stamp_matches(revoked: Mapping[str, set[str]], stamps: Mapping[str, object]) -> tuple[str, object] | None:
    """The first ``(name, value)`` of ``stamps`` that ``revoked`` names; None when none does.

    A stamp whose value is a list (stamped with ``append_stamps``) matches by any item."""
    for name, value in stamps.items():
        values = revoked.get(name)
        if not values:
            continue
        for item in value if isinstance(value, list) else [value]:
            if stamp_key(item) in values:
                return name, item
    return None


#: Whom a request is for: one worker's name, several, or None for every worker.
Destination = str | Sequence[str] | None
#: What a command returns: with ``reply=True`` the replies, each ``{hostname: reply}``; else None.
Replies = list[dict[str, object]] | None


def gather(reader: MailboxReader, ticket: str, timeout: float, limit: int | None = None) -> list[dict[str, object]]:
    """The replies to the request ``ticket`` that come within ``timeout`` seconds, or until
    ``limit`` have come, each ``{hostname: reply}`` as Celery's ``broadcast`` returns them.

    Replies come from the broker: replies to other requests and what is not a mapping of
    worker names are skipped."""
    found: list[dict[str, object]] = []
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or (limit is not None and len(found) >= limit):
            return found
        for letter in reader.read(remaining):
            if letter.headers.get("ticket") != ticket or not isinstance(letter.body, dict):
                continue
            answer = {node: value for node, value in letter.body.items() if isinstance(node, str)}
            if answer:
                found.append(answer)
                if limit is not None and len(found) >= limit:  # a read may bring several
                    return found


def _destination(destination: str | Sequence[str] | None) -> list[str] | None:
    if destination is None:
        return None
    names = [destination] if isinstance(destination, str) else list(destination)
    if not all(isinstance(name, str) and name for name in names):
        raise ValueError(f"destination must be worker names (e.g. ['w1@host']), not {destination!r:.100}")
    return names


def _task_ids(task_id: str | Iterable[str]) -> list[str]:
    ids = [task_id] if isinstance(task_id, str) else list(task_id)
    for one in ids:
        if not isinstance(one, str) or not one or one.startswith(STAMP_REVOCATION):
            raise ValueError(f"revoke(): {one!r:.100} is not a task id")
    return ids


class Control:
    """What a client can ask of the workers, as Celery's ``app.control``.

    Requests go through the broker's mailbox (:meth:`Transport.mailbox`), so they reach
    Celery workers on the same broker too, and Celery's clients reach taskq workers.
    Commands that change workers return their replies when ``reply=True`` (a list of
    ``{hostname: reply}``), else None. :meth:`inspect` asks what they hold.

    Revocations are also kept in the result backend's revocation log when there is one,
    so that a worker started later honours them as well.
    """

    def __init__(self, app: App) -> None:
        self.app = app
        self.clock = 0

    # ---- Sending a request ----------------------------------------------------------

    def broadcast(
        self,
        command: str,
        arguments: Mapping[str, object] | None = None,
        destination: Destination = None,
        connection: object = None,
        reply: bool = False,
        timeout: float = 1.0,
        limit: int | None = None,
        callback: Callable[[dict[str, object]], object] | None = None,
        pattern: str | None = None,
        matcher: str | None = None,
    ) -> Replies:
        """Send ``command`` with ``arguments`` to every worker (or those in ``destination``,
        or whose name ``pattern`` matches, by ``matcher`` ``glob`` or ``pcre``); with
        ``reply``, wait up to ``timeout`` seconds (or for ``limit`` replies) and return
        them, calling ``callback`` with each as it comes. ``connection`` is Celery's and
        not used: each call opens its own."""
        if not isinstance(command, str) or not command:
            raise ValueError(f"broadcast(): the command must be a name, not {command!r:.80}")
        names = _destination(destination)
        transport = self.app.new_transport()
        try:
            mailbox = transport.mailbox(str(self.app.conf["control_exchange"]))
            collector = mailbox.collect() if reply else None
            try:
                body: dict[str, object] = {
                    "method": command,
                    "arguments": dict(arguments or {}),
                    "destination": names,
                    "pattern": pattern,
                    "matcher": matcher,
                }
                ticket = uuid.uuid4().hex
                if collector is not None:
                    body.update(ticket=ticket, reply_to=collector.reply_to)
                self.clock += 1
                mailbox.broadcast(body, {"clock": self.clock, "expires": time.time() + timeout})
                if collector is None:
                    return None
                if limit is None and names:
                    limit = len(names)
                replies = gather(collector, ticket, timeout, limit)
            finally:
                if collector is not None:
                    collector.close()
                mailbox.close()
        finally:
            transport.close()
        if callback is not None:
            for answer in replies:
                callback(answer)
        return replies

    def inspect(
        self,
        destination: Destination = None,
        timeout: float = 1.0,
        callback: Callable[[dict[str, object]], object] | None = None,
        connection: object = None,
        app: object = None,
        limit: int | None = None,
        pattern: str | None = None,
        matcher: str | None = None,
    ) -> Inspect:
        """Ask the workers what they hold: ``app.control.inspect().active()``, as Celery's."""
        return Inspect(self, destination, timeout, callback, limit, pattern, matcher)

    def _command(
        self, command: str, arguments: Mapping[str, object], destination: str | Sequence[str] | None, **options: Any
    ) -> Replies:
        return self.broadcast(command, arguments, destination, **options)

    # ---- Commands ---------------------------------------------------------------------

    def ping(self, destination: Destination = None, timeout: float = 1.0, **options: Any) -> list[dict[str, object]]:
        """Which workers answer, within ``timeout`` seconds."""
        return self.broadcast("ping", {}, destination, reply=True, timeout=timeout, **options) or []

    def revoke(
        self,
        task_id: str | Iterable[str],
        destination: Destination = None,
        terminate: bool = False,
        signal: str | None = None,
        **options: Any,
    ) -> Replies:
        """Make workers skip ``task_id`` (one id or several); ``terminate`` also stops it
        where it runs (on a pool that can: prefork, gevent, eventlet, asyncio, thread).

        Kept in the result backend's revocation log when there is one (a worker started
        later honours it) and broadcast to the workers running now.
        """
        ids = _task_ids(task_id)
        kept = self._keep(ids, terminate)
        arguments = {"task_id": ids, "terminate": terminate, "signal": signal}
        return self._revoke_now("revoke", arguments, destination, kept, **options)

    def terminate(
        self,
        task_id: str | Iterable[str],
        destination: Destination = None,
        signal: str | None = None,
        **options: Any,
    ) -> Replies:
        """Revoke ``task_id`` and stop it where it runs."""
        return self.revoke(task_id, destination, terminate=True, signal=signal, **options)

    def revoke_by_stamped_headers(
        self,
        headers: Mapping[str, object],
        destination: Destination = None,
        terminate: bool = False,
        signal: str | None = None,
        **options: Any,
    ) -> Replies:
        """Make workers skip every task stamped with one of ``headers``' values, and with
        ``terminate`` stop those running; as Celery's.

        ``headers`` maps a stamp's name to a value or a list of values:
        ``revoke_by_stamped_headers({"run": "nightly-42"})`` revokes every task of the
        workflow stamped ``run="nightly-42"`` (see docs/canvas.md, "Stamping"). Like
        :meth:`revoke`, it is kept in the result backend too.
        """
        if not isinstance(headers, Mapping) or not headers:
            raise ValueError(
                f"revoke_by_stamped_headers(): give a mapping of stamp names to values, not {headers!r:.100}"
            )
        for name in headers:
            if not isinstance(name, str) or not name:
                raise ValueError(
                    f"revoke_by_stamped_headers(): a stamp's name must be non-empty text, not {name!r:.80}"
                )
        try:
            entry = stamp_revocation(headers)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"revoke_by_stamped_headers(): the stamp values must be JSON values: {exc}") from None
        kept = self._keep([entry], terminate)
        arguments = {"headers": dict(headers), "terminate": terminate, "signal": signal}
        return self._revoke_now("revoke_by_stamped_headers", arguments, destination, kept, **options)

    def _keep(self, entries: list[str], terminate: bool) -> bool:
        """Write ``entries`` to the result backend's revocation log; False without one."""
        if not self.app.has_backend:
            return False
        try:
            self.app.backend.revoke(entries, terminate=terminate)
        except NotImplementedError:
            return False
        return True

    def _revoke_now(
        self, command: str, arguments: Mapping[str, object], destination: object, kept: bool, **options: Any
    ) -> Replies:
        try:
            return self._command(command, arguments, destination, **options)  # type: ignore[arg-type]
        except NotImplementedError as exc:
            if kept:
                return None  # the workers read it from the result backend
            raise ConfigError(
                f"cannot revoke: {exc}, and no result backend keeps revocations; "
                f"configure a result backend (result_backend) or a broker with a mailbox"
            ) from None

    def rate_limit(
        self,
        task_name: str,
        rate_limit: str | float | None,
        destination: Destination = None,
        **options: Any,
    ) -> Replies:
        """Set ``task_name``'s rate limit on the workers (``"10/m"``; 0 or None for none)."""
        return self._command("rate_limit", {"task_name": task_name, "rate_limit": rate_limit}, destination, **options)

    def time_limit(
        self,
        task_name: str,
        soft: float | None = None,
        hard: float | None = None,
        destination: Destination = None,
        **options: Any,
    ) -> Replies:
        """Set ``task_name``'s soft and hard time limits on the workers, in seconds."""
        arguments = {"task_name": task_name, "soft": soft, "hard": hard}
        return self._command("time_limit", arguments, destination, **options)

    def shutdown(self, destination: Destination = None, **options: Any) -> Replies:
        """Stop the workers, warm (their running tasks end first)."""
        return self._command("shutdown", {}, destination, **options)

    def pool_grow(self, n: int = 1, destination: Destination = None, **options: Any) -> Replies:
        """Add ``n`` processes (threads) to the workers' pools."""
        return self._command("pool_grow", {"n": n}, destination, **options)

    def pool_shrink(self, n: int = 1, destination: Destination = None, **options: Any) -> Replies:
        """Take ``n`` processes (threads) from the workers' pools."""
        return self._command("pool_shrink", {"n": n}, destination, **options)

    def autoscale(
        self,
        max: int,  # noqa: A002 - Celery's names
        min: int,  # noqa: A002
        destination: Destination = None,
        **options: Any,
    ) -> Replies:
        """Set the workers' autoscale bounds."""
        return self._command("autoscale", {"max": max, "min": min}, destination, **options)

    def add_consumer(
        self,
        queue: str,
        exchange: str | None = None,
        exchange_type: str = "direct",
        routing_key: str | None = None,
        options: Mapping[str, object] | None = None,
        destination: Destination = None,
        **kwargs: Any,
    ) -> Replies:
        """Have the workers consume ``queue`` as well."""
        arguments = {
            "queue": queue,
            "exchange": exchange,
            "exchange_type": exchange_type,
            "routing_key": routing_key,
            **dict(options or {}),
        }
        return self._command("add_consumer", arguments, destination, **kwargs)

    def cancel_consumer(self, queue: str, destination: Destination = None, **options: Any) -> Replies:
        """Have the workers stop consuming ``queue``."""
        return self._command("cancel_consumer", {"queue": queue}, destination, **options)

    def enable_events(self, destination: Destination = None, **options: Any) -> Replies:
        """Have the workers send task events (as -E)."""
        return self._command("enable_events", {}, destination, **options)

    def disable_events(self, destination: Destination = None, **options: Any) -> Replies:
        """Have the workers stop sending task events."""
        return self._command("disable_events", {}, destination, **options)

    def heartbeat(self, destination: Destination = None, **options: Any) -> Replies:
        """Have the workers send a worker-heartbeat event now."""
        return self._command("heartbeat", {}, destination, **options)


class Inspect:
    """Questions to the workers; each returns ``{hostname: answer}``, or None when no
    worker answered within the timeout (as Celery's)."""

    def __init__(
        self,
        control: Control,
        destination: str | Sequence[str] | None,
        timeout: float,
        callback: Callable[[dict[str, object]], object] | None,
        limit: int | None,
        pattern: str | None,
        matcher: str | None,
    ) -> None:
        self.control = control
        self.destination = destination
        self.timeout = timeout
        self.callback = callback
        self.limit = limit
        self.pattern = pattern
        self.matcher = matcher

    def _request(self, command: str, **arguments: object) -> dict[str, object] | None:
        replies = self.control.broadcast(
            command,
            arguments,
            self.destination,
            reply=True,
            timeout=self.timeout,
            limit=self.limit,
            callback=self.callback,
            pattern=self.pattern,
            matcher=self.matcher,
        )
        merged: dict[str, object] = {}
        for answer in replies or []:
            merged.update(answer)
        return merged or None

    def ping(self, destination: Destination = None) -> dict[str, object] | None:
        if destination is not None:
            self.destination = destination
        return self._request("ping")

    def active(self, safe: bool | None = None) -> dict[str, object] | None:
        return self._request("active", safe=safe)

    def reserved(self, safe: bool | None = None) -> dict[str, object] | None:
        return self._request("reserved", safe=safe)

    def scheduled(self, safe: bool | None = None) -> dict[str, object] | None:
        return self._request("scheduled", safe=safe)

    def revoked(self) -> dict[str, object] | None:
        return self._request("revoked")

    def registered(self, *taskinfoitems: str) -> dict[str, object] | None:
        return self._request("registered", taskinfoitems=list(taskinfoitems))

    registered_tasks = registered

    def stats(self) -> dict[str, object] | None:
        return self._request("stats")

    def active_queues(self) -> dict[str, object] | None:
        return self._request("active_queues")

    def query_task(self, *ids: str | Sequence[str]) -> dict[str, object] | None:
        flat: list[str] = []
        for one in ids:
            flat.extend([one] if isinstance(one, str) else one)
        return self._request("query_task", ids=flat)

    def conf(self, with_defaults: bool = False) -> dict[str, object] | None:
        return self._request("conf", with_defaults=with_defaults)

    def report(self) -> dict[str, object] | None:
        return self._request("report")

    def clock(self) -> dict[str, object] | None:
        return self._request("clock")

    def hello(self, from_node: str, revoked: object = None) -> dict[str, object] | None:
        return self._request("hello", from_node=from_node, revoked=revoked)


__all__ = ["STAMP_REVOCATION", "Control", "Inspect", "gather", "stamp_key", "stamp_matches", "stamp_revocation"]
