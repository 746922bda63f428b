"""Beat's scheduler: which periodic tasks are due, sending them, remembering when each ran.

A scheduler holds the entries of ``beat_schedule`` (and of :meth:`taskq.App.add_periodic_task`)
and, for each, when it last ran. :meth:`Scheduler.tick` sends what is due and says how long
beat may sleep. What differs between schedulers is only where that memory lives; a plugin
offering one (``taskq_register_schedulers``) subclasses :class:`Scheduler` and writes four
methods:

* :meth:`Scheduler.open`: take the store; where only one beat may use it at a time, take
  its lock too. When another beat holds it, either raise
  :class:`~taskq.errors.ScheduleLockedError`, or stand by: set :attr:`Scheduler.standby`
  and wait for the lock until it is free or :attr:`Scheduler.stopping` is set (then
  raise ``ScheduleLockedError``). A scheduler whose lock lapses unless renewed renews it
  in :meth:`Scheduler.tick`, raising ``ScheduleLockedError`` if it finds the lock taken
  by another beat, and sets :attr:`Scheduler.max_wait` so that beat wakes up in time;
* :meth:`Scheduler.load_state`: what the store remembers, by entry name;
* :meth:`Scheduler.save_state`: remember one entry's state (``None``: forget it), called
  after each send;
* :meth:`Scheduler.close`: let go of the store and its lock.

The base class keeps its memory in the process (the ``memory`` scheduler); core's
``file`` scheduler (the default, :mod:`taskq.builtins.file_scheduler`) keeps it in a local
SQLite file.
``taskq.testing.conformance.scheduler.SchedulerContract`` checks a scheduler against this.

Delivery: a run is recorded after its message is sent, so beat stopped between the two
sends that run again when it starts (at least once, never skipped). Runs missed while no
beat was running are not caught up one by one: a late entry runs once, then keeps its
schedule.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, ClassVar

from taskq.beat.schedules import Schedule, to_schedule
from taskq.errors import ConfigError, ScheduleLockedError, TaskqError

if TYPE_CHECKING:
    from taskq.app import App
    from taskq.canvas import Signature

logger = logging.getLogger(__name__)

#: The keys a ``beat_schedule`` entry may have.
ENTRY_KEYS = frozenset({"task", "schedule", "args", "kwargs", "options", "relative"})
#: Seconds before beat tries again to send an entry whose send failed.
SEND_RETRY_DELAY = 5.0

#: Seconds before beat asks again an entry whose schedule raised.
SCHEDULE_RETRY_DELAY = 60.0


@dataclass
class EntryState:
    """What a scheduler remembers of one entry."""

    #: When it last ran (or, before its first run, when beat first saw it); aware, UTC.
    last_run_at: datetime
    #: How many times beat has sent it.
    total_run_count: int = 0
    #: ``Schedule.describe()`` of the schedule it ran on: a different one starts afresh.
    schedule: str = ""


@dataclass
class ScheduleEntry:
    """One periodic task: what to send, on which schedule, and its state."""

    name: str
    task: str
    schedule: Schedule
    args: tuple[object, ...] = ()
    kwargs: dict[str, object] = field(default_factory=dict)
    #: Options of ``App.send_task``, the fields of ``taskq.sending.SendOptions`` (queue, priority, expires, ...).
    options: dict[str, object] = field(default_factory=dict)
    #: A workflow (chain, group, ...) sent instead of ``task``, from ``add_periodic_task``.
    signature: Signature | None = None
    state: EntryState | None = None

    def remaining(self, now: datetime, tz: tzinfo) -> float:
        """Seconds until this entry is due (<= 0: due now)."""
        assert self.state is not None, "the scheduler gives every entry a state"
        return self.schedule.remaining(self.state.last_run_at, now, tz)


def _send_options() -> frozenset[str]:
    from taskq.sending import SEND_OPTIONS

    return SEND_OPTIONS


def parse_entry(name: str, raw: object) -> ScheduleEntry:
    """One ``beat_schedule`` entry, checked; ConfigError names what is wrong."""
    where = f"beat_schedule entry {name!r}"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a table with 'task' and 'schedule', not {type(raw).__name__}")
    unknown = set(raw) - ENTRY_KEYS
    if unknown:
        raise ConfigError(
            f"{where} has unknown key(s) {', '.join(sorted(map(str, unknown)))}; known: {', '.join(sorted(ENTRY_KEYS))}"
        )
    task = raw.get("task")
    if not isinstance(task, str) or not task:
        raise ConfigError(f"{where} needs 'task', the task's registered name (e.g. \"proj.tasks.cleanup\")")
    if "schedule" not in raw:
        raise ConfigError(f"{where} needs 'schedule': seconds, a crontab string or a table with every/crontab/solar")
    value = raw["schedule"]
    if raw.get("relative") and isinstance(value, (int, float, timedelta)):
        seconds = value.total_seconds() if isinstance(value, timedelta) else value
        value = {"every": seconds, "relative": True}
    try:
        schedule = to_schedule(value)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    args = raw.get("args", ())
    if isinstance(args, (str, bytes)) or not isinstance(args, Sequence):
        raise ConfigError(f"{where}: 'args' must be a list, not {type(args).__name__}")
    kwargs = raw.get("kwargs", {})
    if not isinstance(kwargs, Mapping):
        raise ConfigError(f"{where}: 'kwargs' must be a table, not {type(kwargs).__name__}")
    options = raw.get("options", {})
    if not isinstance(options, Mapping):
        raise ConfigError(f"{where}: 'options' must be a table, not {type(options).__name__}")
    bad = set(options) - _send_options()
    if bad:
        raise ConfigError(
            f"{where}: unknown option(s) {', '.join(sorted(map(str, bad)))}; "
            f"options are send_task's: {', '.join(sorted(_send_options()))}"
        )
    return ScheduleEntry(name, task, schedule, tuple(args), dict(kwargs), dict(options))


class Scheduler:
    """The scheduler logic, keeping its state in this process (``--scheduler memory``).

    Subclasses keep the state elsewhere by overriding :meth:`open`, :meth:`load_state`,
    :meth:`save_state` and :meth:`close` (see the module docstring).
    """

    #: Whether what it remembers outlives the process.
    persistent: ClassVar[bool] = False
    #: Whether a second beat on the same store is refused while the first holds it.
    exclusive: ClassVar[bool] = False

    @property
    def max_wait(self) -> float | None:
        """The longest beat may sleep between two ticks, whatever the schedule says.

        None: no limit but ``beat_max_loop_interval``. A scheduler that renews a lease in
        :meth:`tick` returns how often it must.
        """
        return None

    def __init__(self, app: App, *, schedule_filename: str | os.PathLike[str] | None = None) -> None:
        self.app = app
        #: Where a file-backed scheduler keeps its state (``-s``); others may ignore it.
        self.schedule_filename = schedule_filename
        self.entries: dict[str, ScheduleEntry] = {}
        #: Set by :meth:`open` while it waits, as a standby, for another beat to let go.
        self.standby = threading.Event()
        #: Set when beat is asked to stop; a standby :meth:`open` gives up waiting then.
        self.stopping = threading.Event()
        self._memory: dict[str, EntryState] = {}
        self._tz: tzinfo | None = None

    # ---- The store: what subclasses override -------------------------------------------

    def open(self) -> None:
        """Take the store (and its lock, for an exclusive one)."""

    def load_state(self) -> dict[str, EntryState]:
        """Every entry's remembered state, by name."""
        return dict(self._memory)

    def save_state(self, name: str, state: EntryState | None) -> None:
        """Remember ``state`` for entry ``name``; forget the entry when ``state`` is None."""
        if state is None:
            self._memory.pop(name, None)
        else:
            self._memory[name] = state

    def close(self) -> None:
        """Let go of the store and its lock. Must not raise."""

    # ---- The logic ------------------------------------------------------------------------

    @property
    def tz(self) -> tzinfo:
        """The app's ``timezone``, which crontab and solar schedules read the clock in."""
        if self._tz is None:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            name = str(self.app.conf["timezone"])
            try:
                self._tz = ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                raise ConfigError(
                    f"timezone {name!r} is not a known time zone; use an IANA name such as "
                    f'"UTC" or "Europe/Paris" (install the tzdata package where the system has none)'
                ) from None
        return self._tz

    def configured_entries(self) -> dict[str, ScheduleEntry]:
        """The entries of ``beat_schedule`` and of ``add_periodic_task``, checked."""
        raw = self.app.conf["beat_schedule"]
        if not isinstance(raw, Mapping):
            raise ConfigError(f"beat_schedule must be a table of entries, not {type(raw).__name__}")
        entries = {str(name): parse_entry(str(name), value) for name, value in raw.items()}
        for name, entry in self.app.periodic_tasks.items():
            if name in entries:
                raise ConfigError(
                    f"periodic task {name!r} is both in beat_schedule and given to add_periodic_task; rename one"
                )
            entries[name] = entry
        return entries

    def setup(self, now: datetime | None = None) -> None:
        """Open the store and match the configured entries with what it remembers.

        A new entry, or one whose schedule changed, starts from ``now`` (an interval entry
        first runs one interval later); what the store remembers of entries no longer
        configured is forgotten.
        """
        now = now or datetime.now(UTC)
        entries = self.configured_entries()
        _ = self.tz  # a bad time zone is an error at start, not at the first crontab
        self.open()
        try:
            remembered = self.load_state()
            for name in sorted(set(remembered) - set(entries)):
                logger.info("beat: forgetting %s, no longer in the schedule", name)
                self.save_state(name, None)
            for name, entry in entries.items():
                state = remembered.get(name)
                described = entry.schedule.describe()
                if state is None or state.schedule != described:
                    state = EntryState(now, 0, described)
                    self.save_state(name, state)
                entry.state = state
        except BaseException:
            self.close()
            raise
        self.entries = entries

    def tick(self, now: datetime | None = None) -> float:
        """Send every entry that is due; return the seconds until the next one is."""
        now = now or datetime.now(UTC)
        tz = self.tz
        wait = float("inf")
        for entry in self.entries.values():
            try:
                remaining = entry.remaining(now, tz)
            except Exception:  # a schedule's own bug (a user's Schedule subclass): the others go on
                logger.exception(
                    "beat: the schedule of %s failed; trying again in %gs", entry.name, SCHEDULE_RETRY_DELAY
                )
                wait = min(wait, SCHEDULE_RETRY_DELAY)
                continue
            if remaining <= 0:
                remaining = entry.remaining(now, tz) if self.send(entry, now) else SEND_RETRY_DELAY
            wait = min(wait, remaining)
        return max(0.0, wait)

    def send(self, entry: ScheduleEntry, now: datetime) -> bool:
        """Send ``entry`` and record the run; False (logged) when the send failed."""
        try:
            if entry.signature is not None:
                result = entry.signature.apply_async()
            else:
                result = self.app.send_task(entry.task, entry.args, entry.kwargs, **entry.options)  # type: ignore[arg-type]
        except Exception:
            logger.exception(
                "beat: could not send %s (%s); trying again in %gs", entry.name, entry.task, SEND_RETRY_DELAY
            )
            return False
        assert entry.state is not None
        entry.state = EntryState(now, entry.state.total_run_count + 1, entry.state.schedule)
        logger.info("beat: sent %s (%s) as %s", entry.name, entry.task, getattr(result, "id", "?"))
        try:
            self.save_state(entry.name, entry.state)
        except Exception:
            logger.exception("beat: sent %s but could not record it; it may run again after a restart", entry.name)
        return True


class LeasedScheduler(Scheduler):
    """A scheduler on a shared store whose lock is a lease: one beat sends, the others stand by.

    The lease logic lives here; a subclass writes only its store's primitives:
    :meth:`connect` and :meth:`disconnect`; :meth:`take_lock` (atomically take the lock
    when it is free, lapsed or already ours, and say who holds it now), :meth:`renew_lock`,
    :meth:`release_lock` and :meth:`read_holder`; :meth:`load_state` and a
    :meth:`save_state` fenced by the lock (raising :meth:`lost_lock` when it is not ours);
    and :attr:`unavailable_errors` with :meth:`unavailable`, which turn the store's
    connection errors into the error a user reads. :attr:`lock_name` names the lock in
    messages.

    * :meth:`open` takes the lock, or stands by: it logs once who holds it, sets
      :attr:`standby`, and tries again every :attr:`retry_seconds` until it gets it, or
      until :attr:`stopping` is set (then ``ScheduleLockedError``).
    * :meth:`tick` renews the lease first; :attr:`max_wait` makes beat tick at least every
      :attr:`renew_seconds`. A lock found taken raises ``ScheduleLockedError``, so the beat
      stops rather than send twice. While the store does not answer, a tick sends nothing
      and asks to be called again in :attr:`retry_seconds`.
    * A beat that dies keeps the lock until its lease lapses (:attr:`lock_seconds`); a
      standby then takes over from the state the dead one recorded.
    """

    persistent = True
    exclusive = True
    #: Seconds a lock lasts unless renewed: a dead beat's standby takes over within this.
    lock_seconds: ClassVar[float] = 30.0
    #: The store's errors that mean it does not answer (connection lost, refused, timed out).
    unavailable_errors: ClassVar[tuple[type[BaseException], ...]] = ()

    def __init__(self, app: App, *, schedule_filename: str | os.PathLike[str] | None = None) -> None:
        super().__init__(app, schedule_filename=schedule_filename)
        #: Who this beat is in the lock: ``host:pid:random``.
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"

    @property
    def renew_seconds(self) -> float:
        """The longest time between two renewals of the lease."""
        return self.lock_seconds / 3

    @property
    def retry_seconds(self) -> float:
        """Time between a standby's attempts at the lock, and between attempts to reach the store."""
        return self.lock_seconds / 6

    @property
    def max_wait(self) -> float:
        return self.renew_seconds

    # ---- The store's primitives: what subclasses write ---------------------------------

    @property
    def lock_name(self) -> str:
        """The lock and where it is, for messages (``the lock K at redis://...``)."""
        raise NotImplementedError

    def connect(self) -> None:
        """Connect to the store (and create what it needs); raise :meth:`unavailable`'s error."""
        raise NotImplementedError

    def disconnect(self) -> None:
        """Close the connection; idempotent, never raises."""
        raise NotImplementedError

    def take_lock(self) -> str | None:
        """Take the lock if it is free, lapsed or this beat's; return who holds it now (None: nobody)."""
        raise NotImplementedError

    def renew_lock(self) -> bool:
        """Extend this beat's lease; False when the lock is no longer this beat's."""
        raise NotImplementedError

    def release_lock(self) -> bool:
        """Let go of the lock if it is this beat's (True then); False when not connected or not ours."""
        raise NotImplementedError

    def read_holder(self) -> str | None:
        """Who holds the lock now (None: nobody)."""
        raise NotImplementedError

    def unavailable(self, exc: BaseException) -> TaskqError:
        """The error to raise for ``exc``, one of :attr:`unavailable_errors`: what failed, how to check."""
        raise NotImplementedError

    # ---- The lease ------------------------------------------------------------------------

    def open(self) -> None:
        self.connect()
        while True:
            try:
                holder = self.take_lock()
            except self.unavailable_errors as exc:
                if not self.standby.is_set():
                    error = self.unavailable(exc)  # while still connected: it may name the server
                    self.close()
                    raise error from exc
                logger.warning("beat: standing by, %s; trying again in %gs", self.unavailable(exc), self.retry_seconds)
                holder = "?"
            if holder is None:
                continue  # the lock lapsed between taking and reading: try again at once
            if holder == self.holder:
                break
            if self.stopping.is_set():
                self.close()
                raise ScheduleLockedError(
                    f"another beat ({holder}) holds {self.lock_name}; this beat stood by and was asked to stop"
                )
            if not self.standby.is_set():
                logger.warning(
                    "beat: another beat (%s) holds %s; this beat stands by and takes over when that one stops "
                    "(within %gs if it dies)",
                    holder,
                    self.lock_name,
                    self.lock_seconds,
                )
                self.standby.set()
            self.stopping.wait(self.retry_seconds)
        if self.standby.is_set():
            logger.warning("beat: took over %s; this beat now sends", self.lock_name)
            self.standby.clear()
        else:
            logger.info("beat: holding %s as %s", self.lock_name, self.holder)

    def close(self) -> None:
        try:
            if self.release_lock():
                logger.info("beat: let go of %s", self.lock_name)
        except Exception as exc:  # close never raises: an unreleased lock lapses by itself
            logger.warning(
                "beat: could not let go of %s (%s); it lapses within %gs", self.lock_name, exc, self.lock_seconds
            )
        self.disconnect()

    def tick(self, now: datetime | None = None) -> float:
        """Renew the lock, then send what is due; raises ScheduleLockedError if the lock is lost."""
        try:
            is_ours = self.renew_lock()
        except self.unavailable_errors as exc:
            logger.warning(
                "beat: %s; sending nothing until it answers, trying again in %gs",
                self.unavailable(exc),
                self.retry_seconds,
            )
            return self.retry_seconds
        if not is_ours:
            raise self.lost_lock()
        return super().tick(now)

    def lost_lock(self) -> ScheduleLockedError:
        """The error of a beat that finds its lock no longer its own."""
        try:
            holder = self.read_holder()
        except self.unavailable_errors:
            holder = "?"
        by = (
            f"to another beat ({holder})"
            if holder is not None
            else f"(it lapsed or was let go: no renewal within {self.lock_seconds:g}s)"
        )
        return ScheduleLockedError(
            f"this beat lost its lock ({self.lock_name}) {by}; it stops so as not to send tasks twice"
        )


__all__ = [
    "EntryState",
    "LeasedScheduler",
    "ScheduleEntry",
    "Scheduler",
    "parse_entry",
]
