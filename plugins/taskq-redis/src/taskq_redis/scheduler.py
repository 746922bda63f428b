"""The Redis beat scheduler (``--scheduler redis``): state in Redis, one beat at a time, standbys.

Beat's memory lives in the hash ``taskq:beat:<app>:state`` (entry name -> JSON of
``last_run_at``, ``total_run_count`` and ``schedule``), in the Redis of ``beat_scheduler_url``
or, when that is unset, the broker's. Any number of beats may run on it; the one holding
the lease ``taskq:beat:<app>:lock`` sends, the others stand by:

* the lock is ``SET NX PX`` with a holder unique to the process (``host:pid:random``),
  leased for :data:`LOCK_SECONDS` and renewed on every tick (at least every
  :data:`RENEW_SECONDS`);
* a standby tries again every :data:`STANDBY_RETRY_SECONDS`, so when the active beat stops
  (it lets go at once) or dies (its lease lapses) a standby takes over within a lease,
  starting from the state the first one saved;
* renewing, recording a run and letting go each check in one script that the lock is
  still this beat's, so a beat that lost its lock (paused past its lease) neither writes
  over its successor's state nor keeps sending: its next tick raises
  :class:`~taskq.errors.ScheduleLockedError`.

While Redis does not answer, the active beat sends nothing (it cannot know the lock is
still its own) and tries again every :data:`STANDBY_RETRY_SECONDS`; if its lease lapsed
meanwhile, it stops with ``ScheduleLockedError`` and a restarted beat picks up the state.
Options (``master_name`` for Sentinel, ``ssl``, ``global_keyprefix``, timeouts) are read
from ``broker_transport_options``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

from taskq.beat.scheduler import EntryState, Scheduler
from taskq.errors import BrokerUnavailableError, ConfigError, ScheduleLockedError
from taskq.utils import mask_url
from taskq_redis import _scripts
from taskq_redis._connection import CONNECTION_ERRORS, Endpoint, connect, unreachable

if TYPE_CHECKING:
    from taskq.app import App

logger = logging.getLogger(__name__)

# Seconds a beat's lock lasts unless renewed: a dead beat's standby takes over within this.
LOCK_SECONDS = 30.0
# Seconds between renewals at most (beat ticks at least this often).
RENEW_SECONDS = LOCK_SECONDS / 3
# Seconds between a standby's attempts at the lock, and between attempts to reach Redis.
STANDBY_RETRY_SECONDS = LOCK_SECONDS / 6

#: URL schemes the scheduler can keep its state behind.
SCHEMES = ("redis", "rediss", "sentinel", "redis+socket", "unix")

# Each script answers 1 when the lock is (now) this beat's, else who holds it (nil: nobody).
# ARGV: lock key, holder, then the script's own.
_TAKE = _scripts.Script(
    r"""
if redis.call('SET', ARGV[1], ARGV[2], 'NX', 'PX', ARGV[3]) then return 1 end
return redis.call('GET', ARGV[1])
"""
)
_RENEW = _scripts.Script(
    r"""
local current = redis.call('GET', ARGV[1])
if current ~= ARGV[2] then return current end
redis.call('PEXPIRE', ARGV[1], ARGV[3])
return 1
"""
)
# ARGV[3]: the state hash, ARGV[4]: the entry, ARGV[5]: its JSON ('' to forget it).
_RECORD = _scripts.Script(
    r"""
local current = redis.call('GET', ARGV[1])
if current ~= ARGV[2] then return current end
if ARGV[5] == '' then redis.call('HDEL', ARGV[3], ARGV[4]) else redis.call('HSET', ARGV[3], ARGV[4], ARGV[5]) end
return 1
"""
)
_RELEASE = _scripts.Script(
    r"""
local current = redis.call('GET', ARGV[1])
if current ~= ARGV[2] then return current end
redis.call('DEL', ARGV[1])
return 1
"""
)


class RedisScheduler(Scheduler):
    """Beat's state in Redis, with a leased lock: one beat sends, the others stand by."""

    persistent = True
    exclusive = True

    @property
    def max_wait(self) -> float:
        """Beat ticks at least this often, so that the lock is renewed before it lapses."""
        return RENEW_SECONDS

    def __init__(self, app: App, *, schedule_filename: str | os.PathLike[str] | None = None) -> None:
        super().__init__(app, schedule_filename=schedule_filename)
        self.url = store_url(app)
        self.options = cast("Mapping[str, object]", app.conf["broker_transport_options"] or {})
        #: Who this beat is in the lock: ``host:pid:random``.
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._name = f"taskq:beat:{app.main or 'default'}:"
        self._endpoint: Endpoint | None = None

    @property
    def lock_key(self) -> str:
        return self._prefix() + self._name + "lock"

    @property
    def state_key(self) -> str:
        return self._prefix() + self._name + "state"

    def _prefix(self) -> str:
        return str(self.options.get("global_keyprefix") or "")

    # ---- The store --------------------------------------------------------------------

    def open(self) -> None:
        endpoint = self._endpoint = connect(self.url, self.options)
        while True:
            try:
                answer = self._lock_script(_TAKE, _milliseconds(LOCK_SECONDS))
            except CONNECTION_ERRORS as exc:
                if not self.standby.is_set():
                    self.close()
                    raise BrokerUnavailableError(unreachable(endpoint, exc)) from exc
                logger.warning(
                    "beat: standing by, cannot reach Redis at %s (%s); trying again in %gs",
                    endpoint.masked_url,
                    exc,
                    STANDBY_RETRY_SECONDS,
                )
                answer = "?"
            if answer is None:
                continue  # the lock lapsed between SET and GET: try again at once
            if answer == 1:
                break
            if self.stopping.is_set():
                self.close()
                raise ScheduleLockedError(
                    f"another beat ({answer}) holds the beat lock {self.lock_key} at {endpoint.masked_url}; "
                    f"this beat stood by and was asked to stop"
                )
            if not self.standby.is_set():
                logger.warning(
                    "beat: another beat (%s) holds the lock %s at %s; this beat stands by and takes over "
                    "when that one stops (within %gs if it dies)",
                    answer,
                    self.lock_key,
                    endpoint.masked_url,
                    LOCK_SECONDS,
                )
                self.standby.set()
            self.stopping.wait(STANDBY_RETRY_SECONDS)
        if self.standby.is_set():
            logger.warning("beat: took over the lock %s; this beat now sends", self.lock_key)
            self.standby.clear()
        else:
            logger.info("beat: holding the lock %s at %s as %s", self.lock_key, endpoint.masked_url, self.holder)

    def load_state(self) -> dict[str, EntryState]:
        client = self._store().client
        try:
            raw = client.execute("HGETALL", self.state_key)
        except CONNECTION_ERRORS as exc:
            raise self._unavailable(exc) from exc
        fields = cast("list[bytes]", raw)  # RESP2: name, value, name, value...
        states: dict[str, EntryState] = {}
        for name, value in zip(fields[::2], fields[1::2], strict=True):
            entry = name.decode()
            try:
                states[entry] = _decode(value)
            except (ValueError, KeyError, TypeError) as exc:
                logger.warning("beat: ignoring the unreadable state of %s in %s (%s)", entry, self.state_key, exc)
        return states

    def save_state(self, name: str, state: EntryState | None) -> None:
        encoded = "" if state is None else _encode(state)
        try:
            answer = self._lock_script(_RECORD, self.state_key, name, encoded)
        except CONNECTION_ERRORS as exc:
            raise self._unavailable(exc) from exc
        if answer != 1:
            raise self._lost(answer)

    def close(self) -> None:
        endpoint, self._endpoint = self._endpoint, None
        if endpoint is None:
            return
        try:
            if self._lock_script(_RELEASE, endpoint=endpoint) == 1:
                logger.info("beat: let go of the lock %s", self.lock_key)
        except Exception as exc:  # close never raises: an unreleased lock lapses by itself
            logger.warning(
                "beat: could not let go of the lock %s (%s); it lapses within %gs", self.lock_key, exc, LOCK_SECONDS
            )
        with contextlib.suppress(Exception):
            endpoint.client.close()

    # ---- The lease --------------------------------------------------------------------

    def tick(self, now: datetime | None = None) -> float:
        """Renew the lock, then send what is due; raises ScheduleLockedError if the lock is lost."""
        try:
            answer = self._lock_script(_RENEW, _milliseconds(LOCK_SECONDS))
        except CONNECTION_ERRORS as exc:
            logger.warning(
                "beat: %s; sending nothing until it answers, trying again in %gs",
                unreachable(self._store(), exc),
                STANDBY_RETRY_SECONDS,
            )
            return STANDBY_RETRY_SECONDS
        if answer != 1:
            raise self._lost(answer)
        return super().tick(now)

    def _lock_script(self, script: _scripts.Script, *args: object, endpoint: Endpoint | None = None) -> object:
        """Run one of the lock's scripts: 1 when the lock is this beat's, else its holder (text or None)."""
        client = (endpoint or self._store()).client
        answer = _scripts.run(client, script, [self.lock_key, self.holder, *args])
        return _scripts.as_text(answer) if isinstance(answer, bytes) else answer

    def _store(self) -> Endpoint:
        assert self._endpoint is not None, "open() first"
        return self._endpoint

    def _lost(self, holder: object) -> ScheduleLockedError:
        by = (
            f"to another beat ({holder})" if holder is not None else f"(it lapsed: no renewal within {LOCK_SECONDS:g}s)"
        )
        return ScheduleLockedError(
            f"this beat lost its lock {self.lock_key} at {self._store().masked_url} {by}; "
            f"it stops so as not to send tasks twice"
        )

    def _unavailable(self, exc: BaseException) -> BrokerUnavailableError:
        return BrokerUnavailableError(f"beat's schedule store: {unreachable(self._store(), exc)}")


def store_url(app: App) -> str:
    """Where the scheduler keeps its state: ``beat_scheduler_url``, else a Redis broker's URL."""
    configured = app.conf["beat_scheduler_url"]
    url = str(configured or app.conf["broker_url"] or "")
    if _scheme(url) in SCHEMES:
        return url
    where = "beat_scheduler_url" if configured else "the broker_url (beat_scheduler_url is unset)"
    raise ConfigError(
        f"the redis scheduler keeps its state in Redis, but {where} is {mask_url(url)!r}; "
        f'set beat_scheduler_url = "redis://host:6379/0" (or rediss://, sentinel://)'
    )


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def _milliseconds(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _encode(state: EntryState) -> str:
    return json.dumps(
        {
            "last_run_at": state.last_run_at.timestamp(),
            "total_run_count": state.total_run_count,
            "schedule": state.schedule,
        }
    )


def _decode(value: bytes) -> EntryState:
    record = json.loads(value)
    return EntryState(
        datetime.fromtimestamp(float(record["last_run_at"]), tz=UTC),
        int(record["total_run_count"]),
        str(record["schedule"]),
    )


__all__ = ["LOCK_SECONDS", "RENEW_SECONDS", "STANDBY_RETRY_SECONDS", "RedisScheduler", "store_url"]
