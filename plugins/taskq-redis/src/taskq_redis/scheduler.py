"""The Redis beat scheduler (``--scheduler redis``): state in Redis, one beat at a time, standbys.

Beat's memory lives in the hash ``taskq:beat:<app>:state`` (entry name -> JSON of
``last_run_at``, ``total_run_count`` and ``schedule``), in the Redis of ``beat_scheduler_url``
or, when that is unset, the broker's. Any number of beats may run on it; the one holding
the lease ``taskq:beat:<app>:lock`` sends, the others stand by:

* the lock is ``SET NX PX`` with a holder unique to the process (``host:pid:random``),
  leased for :attr:`~taskq.drivers.LeasedScheduler.lock_seconds` (30 s) and renewed on every tick (at
  least every 10 s);
* a standby tries again every 5 s, so when the active beat stops
  (it lets go at once) or dies (its lease lapses) a standby takes over within a lease,
  starting from the state the first one saved;
* renewing, recording a run and letting go each check in one script that the lock is
  still this beat's, so a beat that lost its lock (paused past its lease) neither writes
  over its successor's state nor keeps sending: its next tick raises
  :class:`~taskq.errors.ScheduleLockedError`.

While Redis does not answer, the active beat sends nothing (it cannot know the lock is
still its own) and tries again every 5 s; if its lease lapsed
meanwhile, it stops with ``ScheduleLockedError`` and a restarted beat picks up the state.
Options (``master_name`` for Sentinel, ``ssl``, ``global_keyprefix``, timeouts) are read
from ``broker_transport_options``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

from taskq.drivers.scheduler import EntryState, LeasedScheduler
from taskq.drivers.support.connections import mask_url
from taskq.errors import BrokerUnavailableError, ConfigError
from taskq_redis import _scripts
from taskq_redis._connection import CONNECTION_ERRORS, Endpoint, connect, unreachable

if TYPE_CHECKING:
    from taskq import App

logger = logging.getLogger(__name__)

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


class RedisScheduler(LeasedScheduler):
    """Beat's state in Redis, with a leased lock: one beat sends, the others stand by."""

    unavailable_errors = CONNECTION_ERRORS

    def __init__(self, app: App, *, schedule_filename: str | os.PathLike[str] | None = None) -> None:
        super().__init__(app, schedule_filename=schedule_filename)
        self.url = store_url(app)
        self.options = cast("Mapping[str, object]", app.conf["broker_transport_options"] or {})
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

    # ---- The lock ---------------------------------------------------------------------

    @property
    def lock_name(self) -> str:
        return f"the lock {self.lock_key} at {mask_url(self.url)}"

    def connect(self) -> None:
        self._endpoint = connect(self.url, self.options, setting="beat_scheduler_url (or broker_url, when unset)")

    def disconnect(self) -> None:
        endpoint, self._endpoint = self._endpoint, None
        if endpoint is not None:
            with contextlib.suppress(Exception):
                endpoint.client.close()

    def take_lock(self) -> str | None:
        answer = self._lock_script(_TAKE, _milliseconds(self.lock_seconds))
        return self.holder if answer == 1 else cast("str | None", answer)

    def renew_lock(self) -> bool:
        return self._lock_script(_RENEW, _milliseconds(self.lock_seconds)) == 1

    def release_lock(self) -> bool:
        return self._endpoint is not None and self._lock_script(_RELEASE) == 1

    def read_holder(self) -> str | None:
        answer = self._store().client.execute("GET", self.lock_key)
        return _scripts.as_text(answer) if isinstance(answer, bytes) else None

    def unavailable(self, exc: BaseException) -> BrokerUnavailableError:
        return BrokerUnavailableError(f"beat's schedule store: {unreachable(self._store(), exc)}")

    # ---- The state --------------------------------------------------------------------

    def load_state(self) -> dict[str, EntryState]:
        client = self._store().client
        try:
            raw = client.execute("HGETALL", self.state_key)
        except CONNECTION_ERRORS as exc:
            raise self.unavailable(exc) from exc
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
            raise self.unavailable(exc) from exc
        if answer != 1:
            raise self.lost_lock()

    def _lock_script(self, script: _scripts.Script, *args: object) -> object:
        """Run one of the lock's scripts: 1 when the lock is this beat's, else its holder (text or None)."""
        answer = _scripts.run(self._store().client, script, [self.lock_key, self.holder, *args])
        return _scripts.as_text(answer) if isinstance(answer, bytes) else answer

    def _store(self) -> Endpoint:
        assert self._endpoint is not None, "open() first"
        return self._endpoint


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


__all__ = ["RedisScheduler", "store_url"]
