"""The beat scheduler conformance kit: one test per behaviour of a scheduler.

Subclass :class:`SchedulerContract` in a plugin's tests and provide a ``make_scheduler``
fixture: a factory ``make_scheduler(app)`` returning a new, not yet set-up instance of the
scheduler, on the same store every time it is called within one test (so the kit can
stop a beat and start another on what the first left). A scheduler that declares
``persistent`` is checked to remember across instances; one that declares ``exclusive``,
to refuse a second beat while the first holds the store.

The kit drives time itself (``setup(now)``, ``tick(now)``), so nothing here sleeps; the
tasks go to a private in-memory broker, where the kit reads what was sent.

A scheduler that holds a lease on its store's lock and stands by for another beat's
(``open`` waits, ``tick`` renews, see :mod:`taskq.drivers.scheduler`) subclasses
:class:`StandbySchedulerContract` instead: the same suite, plus standby, takeover, a lost
lock and the lease. Those tests run real :class:`~taskq.beat.Beat` loops and standbys in
threads, every wait with a deadline; they need the store-specific fixtures listed there.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from taskq.app import App
from taskq.beat.service import Beat
from taskq.drivers.scheduler import SEND_RETRY_DELAY, Scheduler
from taskq.errors import ScheduleLockedError
from taskq.testing.conformance.transport import DEADLINE, wait_until

SchedulerFactory = Callable[[App], Scheduler]
#: ``lock_holder(scheduler)``: who holds the lock of the scheduler's store now (None: nobody).
LockHolder = Callable[[Scheduler], "str | None"]
#: ``take_lock(scheduler, holder)``: give the lock to ``holder`` for a long lease.
TakeLock = Callable[[Scheduler, str], None]
#: ``lease_left(scheduler)``: seconds before the lease of the scheduler's lock lapses.
LeaseLeft = Callable[[Scheduler], float]
#: ``set_lease_left(scheduler, seconds)``: make the lock's lease lapse in ``seconds``.
SetLeaseLeft = Callable[[Scheduler, float], None]

#: How another beat names itself in the lock, in the tests where it takes it.
OTHER_HOLDER = "elsewhere:1:beef"

#: A Monday, 10:00:30 UTC: the start of every test's clock.
T0 = datetime(2026, 3, 2, 10, 0, 30, tzinfo=UTC)


def make_app(schedule: dict[str, object], **settings: object) -> App:
    """An app on a private in-memory broker with ``schedule`` as its ``beat_schedule``."""
    app = App("conformance", broker=f"memory://beat-{uuid.uuid4().hex}", read_config=False, set_as_current=False)
    app.conf.update(result_backend="disabled", beat_schedule=schedule, **settings)
    return app


def sent(app: App, queue: str = "taskq") -> list[tuple[str, list[object], dict[str, object]]]:
    """``(task, args, kwargs)`` of every message waiting in ``queue``, oldest first; takes them."""
    transport = app.transport
    found = []
    while deliveries := transport.claim([queue], 100):
        for delivery in deliveries:
            args, kwargs, _embed = json.loads(delivery.message.body)
            found.append((str(delivery.message.headers["task"]), args, kwargs))
        transport.ack(deliveries)
    return found


class SchedulerContract:
    """Every behaviour a beat scheduler promises. Subclass it and provide ``make_scheduler``."""

    @pytest.fixture
    def make_scheduler(self) -> SchedulerFactory:
        raise NotImplementedError(
            "provide a 'make_scheduler' fixture returning a factory make_scheduler(app) -> Scheduler, "
            "every instance on the same store"
        )

    @pytest.fixture
    def running(self, make_scheduler: SchedulerFactory) -> Iterator[list[Scheduler]]:
        """Schedulers a test set up; closed at its end, also when it fails."""
        started: list[Scheduler] = []
        yield started
        for scheduler in started:
            scheduler.close()

    def start(self, make_scheduler: SchedulerFactory, running: list[Scheduler], app: App, now: datetime) -> Scheduler:
        scheduler = make_scheduler(app)
        scheduler.setup(now)
        running.append(scheduler)
        return scheduler

    # ---- Sending what is due ----------------------------------------------------------

    def test_max_wait_is_none_or_positive(self, make_scheduler: SchedulerFactory) -> None:
        max_wait = make_scheduler(make_app({})).max_wait
        assert max_wait is None or max_wait > 0

    def test_an_interval_entry_runs_one_interval_after_it_is_first_seen(
        self, make_scheduler: SchedulerFactory, running: list[Scheduler]
    ) -> None:
        app = make_app({"ping": {"task": "proj.ping", "schedule": 30, "args": [1], "kwargs": {"k": "v"}}})
        scheduler = self.start(make_scheduler, running, app, T0)
        assert scheduler.tick(T0 + timedelta(seconds=1)) == pytest.approx(29.0)
        assert sent(app) == []
        wait = scheduler.tick(T0 + timedelta(seconds=30))
        assert sent(app) == [("proj.ping", [1], {"k": "v"})]
        assert wait == pytest.approx(30.0)
        assert scheduler.entries["ping"].state is not None
        assert scheduler.entries["ping"].state.total_run_count == 1

    def test_a_crontab_entry_runs_on_its_minute(
        self, make_scheduler: SchedulerFactory, running: list[Scheduler]
    ) -> None:
        app = make_app({"report": {"task": "proj.report", "schedule": "1 10 * * *"}})
        scheduler = self.start(make_scheduler, running, app, T0)
        assert scheduler.tick(T0 + timedelta(seconds=29)) == pytest.approx(1.0)  # 10:00:59
        assert sent(app) == []
        scheduler.tick(T0 + timedelta(seconds=30))  # 10:01:00
        assert sent(app) == [("proj.report", [], {})]
        assert scheduler.tick(T0 + timedelta(seconds=31)) == pytest.approx(24 * 3600 - 1)

    def test_options_route_the_message(self, make_scheduler: SchedulerFactory, running: list[Scheduler]) -> None:
        app = make_app({"low": {"task": "proj.low", "schedule": 10, "options": {"queue": "background"}}})
        scheduler = self.start(make_scheduler, running, app, T0)
        scheduler.tick(T0 + timedelta(seconds=10))
        assert sent(app) == []
        assert sent(app, "background") == [("proj.low", [], {})]

    def test_missed_runs_are_sent_once_not_caught_up(
        self, make_scheduler: SchedulerFactory, running: list[Scheduler]
    ) -> None:
        app = make_app({"ping": {"task": "proj.ping", "schedule": 30}})
        scheduler = self.start(make_scheduler, running, app, T0)
        late = T0 + timedelta(hours=1)
        assert scheduler.tick(late) == pytest.approx(30.0)
        assert scheduler.tick(late) == pytest.approx(30.0)
        assert len(sent(app)) == 1

    def test_the_wait_is_until_the_soonest_entry(
        self, make_scheduler: SchedulerFactory, running: list[Scheduler]
    ) -> None:
        app = make_app(
            {
                "slow": {"task": "proj.slow", "schedule": 300},
                "fast": {"task": "proj.fast", "schedule": 20},
            }
        )
        scheduler = self.start(make_scheduler, running, app, T0)
        assert scheduler.tick(T0) == pytest.approx(20.0)
        assert scheduler.tick(T0 + timedelta(seconds=20)) == pytest.approx(20.0)
        assert sent(app) == [("proj.fast", [], {})]

    def test_a_failed_send_is_not_recorded_and_is_tried_again(
        self, make_scheduler: SchedulerFactory, running: list[Scheduler]
    ) -> None:
        app = make_app({"bad": {"task": "proj.bad", "schedule": 10, "options": {"serializer": "no-such-serializer"}}})
        scheduler = self.start(make_scheduler, running, app, T0)
        due = T0 + timedelta(seconds=10)
        assert scheduler.tick(due) == pytest.approx(SEND_RETRY_DELAY)
        state = scheduler.entries["bad"].state
        assert state is not None
        assert state.total_run_count == 0
        assert state.last_run_at == T0

    def test_periodic_tasks_added_in_code_run_too(
        self, make_scheduler: SchedulerFactory, running: list[Scheduler]
    ) -> None:
        app = make_app({})
        name = app.add_periodic_task(15.0, "proj.add", (2, 3))
        assert name == "proj.add(2, 3)"
        scheduler = self.start(make_scheduler, running, app, T0)
        scheduler.tick(T0 + timedelta(seconds=15))
        assert sent(app) == [("proj.add", [2, 3], {})]

    # ---- Memory -----------------------------------------------------------------------

    def test_a_changed_schedule_starts_afresh(self, make_scheduler: SchedulerFactory, running: list[Scheduler]) -> None:
        app = make_app({"ping": {"task": "proj.ping", "schedule": 30}})
        first = self.start(make_scheduler, running, app, T0)
        first.tick(T0 + timedelta(seconds=30))
        first.close()
        app.conf.update(beat_schedule={"ping": {"task": "proj.ping", "schedule": 60}})
        later = T0 + timedelta(seconds=40)
        second = self.start(make_scheduler, running, app, later)
        state = second.entries["ping"].state
        assert state is not None
        assert (state.last_run_at, state.total_run_count) == (later, 0)

    def test_entries_no_longer_configured_are_forgotten(
        self, make_scheduler: SchedulerFactory, running: list[Scheduler]
    ) -> None:
        app = make_app({"keep": {"task": "proj.keep", "schedule": 30}, "drop": {"task": "proj.drop", "schedule": 30}})
        self.start(make_scheduler, running, app, T0).close()
        app.conf.update(beat_schedule={"keep": {"task": "proj.keep", "schedule": 30}})
        second = self.start(make_scheduler, running, app, T0)
        assert set(second.load_state()) == {"keep"}

    def test_a_new_beat_takes_up_where_the_last_one_stopped(
        self, make_scheduler: SchedulerFactory, running: list[Scheduler]
    ) -> None:
        if not make_scheduler(make_app({})).persistent:
            pytest.skip("the scheduler declares persistent=False")
        app = make_app({"ping": {"task": "proj.ping", "schedule": 30}})
        first = self.start(make_scheduler, running, app, T0)
        first.tick(T0 + timedelta(seconds=30))
        first.close()
        assert len(sent(app)) == 1
        second = self.start(make_scheduler, running, app, T0 + timedelta(seconds=45))
        state = second.entries["ping"].state
        assert state is not None
        assert state.total_run_count == 1
        assert state.last_run_at == T0 + timedelta(seconds=30)
        assert second.tick(T0 + timedelta(seconds=45)) == pytest.approx(15.0)
        assert sent(app) == []

    def test_a_second_beat_on_the_same_store_is_refused(
        self, make_scheduler: SchedulerFactory, running: list[Scheduler]
    ) -> None:
        if not make_scheduler(make_app({})).exclusive:
            pytest.skip("the scheduler declares exclusive=False")
        app = make_app({"ping": {"task": "proj.ping", "schedule": 30}})
        first = self.start(make_scheduler, running, app, T0)
        second = make_scheduler(app)
        second.stopping.set()  # a scheduler that stands by gives up at once, as when beat stops
        with pytest.raises(ScheduleLockedError, match="another beat"):
            second.setup(T0)
        first.close()
        self.start(make_scheduler, running, app, T0)  # free again once the first has stopped


def start_in_thread(target: Callable[[], object]) -> tuple[threading.Thread, list[BaseException]]:
    """Run ``target`` in a daemon thread; what it raises lands in the returned list."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def join(thread: threading.Thread, what: str) -> None:
    """Wait up to DEADLINE seconds for ``thread`` to end; fail naming ``what`` if it does not."""
    thread.join(DEADLINE)
    if thread.is_alive():
        pytest.fail(f"{what}: still running after {DEADLINE}s")


def holder_of(scheduler: Scheduler) -> str:
    """How ``scheduler`` names itself in the lock: its ``holder`` attribute."""
    holder = getattr(scheduler, "holder", None)
    if not isinstance(holder, str):
        pytest.fail(f"{type(scheduler).__name__} needs a 'holder' attribute: the text it writes into the lock")
    return holder


class StandbySchedulerContract(SchedulerContract):
    """A scheduler that leases its store's lock, renews it each tick and stands by for it.

    Subclass it instead of :class:`SchedulerContract` and provide, besides
    ``make_scheduler``, the store-specific fixtures below. The scheduler names itself in
    the lock by a ``holder`` attribute, and :class:`~taskq.beat.Beat` builds it from the app
    alone (``type(scheduler)(app)``), so ``make_scheduler`` must point the app's settings at
    the test's store.
    """

    @pytest.fixture
    def short_lease(self) -> None:
        raise NotImplementedError(
            "provide a 'short_lease' fixture that shortens the scheduler's lease to about a second "
            "(monkeypatch its module's lock, renew and standby-retry constants), so that a dead beat's lock "
            "lapses within the kit's deadline"
        )

    @pytest.fixture
    def lease_seconds(self) -> float:
        raise NotImplementedError(
            "provide a 'lease_seconds' fixture returning how long, in seconds, the scheduler leases its lock"
        )

    @pytest.fixture
    def lock_holder(self) -> LockHolder:
        raise NotImplementedError(
            "provide a 'lock_holder' fixture returning lock_holder(scheduler) -> str | None: who holds the lock "
            "of the scheduler's store now, read from the store (None when nobody does)"
        )

    @pytest.fixture
    def take_lock(self) -> TakeLock:
        raise NotImplementedError(
            "provide a 'take_lock' fixture returning take_lock(scheduler, holder): write `holder` into the lock "
            "of the scheduler's store with a long lease, as another beat taking over would"
        )

    @pytest.fixture
    def lease_left(self) -> LeaseLeft:
        raise NotImplementedError(
            "provide a 'lease_left' fixture returning lease_left(scheduler) -> float: the seconds before the "
            "lease of the scheduler's lock lapses, read from the store"
        )

    @pytest.fixture
    def set_lease_left(self) -> SetLeaseLeft:
        raise NotImplementedError(
            "provide a 'set_lease_left' fixture returning set_lease_left(scheduler, seconds): make the lease of "
            "the scheduler's lock lapse in `seconds`, keeping its holder"
        )

    def beat(self, make_scheduler: SchedulerFactory, app: App) -> Beat:
        """A beat on ``app`` with the scheduler's class; ``make_scheduler`` points ``app`` at the store."""
        return Beat(app, scheduler=type(make_scheduler(app)))

    # ---- Standby and takeover ---------------------------------------------------------

    @pytest.mark.usefixtures("short_lease")
    def test_a_second_beat_stands_by_and_takes_over_when_the_first_stops(
        self, make_scheduler: SchedulerFactory
    ) -> None:
        app = make_app({"ping": {"task": "proj.ping", "schedule": 0.1}})
        first, second = self.beat(make_scheduler, app), self.beat(make_scheduler, app)
        received: list[object] = []

        def sends(count: int) -> Callable[[], bool]:
            target = len(received) + count

            def done() -> bool:
                received.extend(sent(app))
                return len(received) >= target

            return done

        first_thread, first_errors = start_in_thread(first.run)
        second_thread: threading.Thread | None = None
        second_errors: list[BaseException] = []
        try:
            wait_until(sends(2), "the first beat to send twice")
            second_thread, second_errors = start_in_thread(second.run)
            wait_until(second.scheduler.standby.is_set, "the second beat to stand by")
            assert not second.ready.is_set()
            first.stop()
            join(first_thread, "the first beat, stopped")
            assert first_errors == []
            wait_until(second.ready.is_set, "the second beat to take over")
            assert not second.scheduler.standby.is_set()
            wait_until(sends(2), "the second beat to send twice")
        finally:
            first.stop()
            second.stop()
            first_thread.join(DEADLINE)
            if second_thread is not None:
                second_thread.join(DEADLINE)
        assert second_thread is not None and not second_thread.is_alive() and second_errors == []
        received.extend(sent(app))
        state = second.scheduler.entries["ping"].state
        assert state is not None
        assert state.total_run_count == len(received)  # counted on from the first beat's runs

    @pytest.mark.usefixtures("short_lease")
    def test_a_dead_beats_lock_lapses_and_a_standby_takes_over_from_its_state(
        self, make_scheduler: SchedulerFactory, running: list[Scheduler]
    ) -> None:
        app = make_app({"ping": {"task": "proj.ping", "schedule": 30}})
        dead = self.start(make_scheduler, running, app, T0)
        dead.tick(T0 + timedelta(seconds=30))
        assert len(sent(app)) == 1
        # it dies here: no more ticks, no close, so its lease runs out
        standby = make_scheduler(app)
        running.append(standby)
        thread, errors = start_in_thread(lambda: standby.setup(T0 + timedelta(seconds=45)))
        wait_until(standby.standby.is_set, "the standby to stand by")
        join(thread, "the standby's setup, once the dead beat's lease lapsed")
        assert errors == []
        state = standby.entries["ping"].state
        assert state is not None
        assert (state.last_run_at, state.total_run_count) == (T0 + timedelta(seconds=30), 1)
        assert standby.tick(T0 + timedelta(seconds=45)) == pytest.approx(15.0)  # due at T0 + 60 s
        assert sent(app) == []  # nothing twice
        standby.tick(T0 + timedelta(seconds=60))
        assert len(sent(app)) == 1  # and nothing skipped

    def test_a_standby_beat_asked_to_stop_gives_up_with_schedule_locked_error(
        self, make_scheduler: SchedulerFactory, running: list[Scheduler]
    ) -> None:
        app = make_app({"ping": {"task": "proj.ping", "schedule": 30}})
        holder = self.start(make_scheduler, running, app, T0)
        standby = make_scheduler(app)
        running.append(standby)
        thread, errors = start_in_thread(lambda: standby.setup(T0))
        wait_until(standby.standby.is_set, "the standby to stand by")
        standby.stopping.set()
        join(thread, "the standby's setup, asked to stop")
        assert len(errors) == 1 and isinstance(errors[0], ScheduleLockedError)
        assert holder_of(holder) in str(errors[0]) and "asked to stop" in str(errors[0])

    def test_beat_run_returns_quietly_when_stopped_while_standing_by(
        self, make_scheduler: SchedulerFactory, running: list[Scheduler]
    ) -> None:
        app = make_app({"ping": {"task": "proj.ping", "schedule": 30}})
        self.start(make_scheduler, running, app, T0)
        beat = self.beat(make_scheduler, app)
        thread, errors = start_in_thread(beat.run)
        wait_until(beat.scheduler.standby.is_set, "beat to stand by")
        beat.stop()
        join(thread, "beat, stopped while standing by")
        assert errors == []
        assert sent(app) == []

    # ---- The lock and its lease -------------------------------------------------------

    def test_closing_lets_go_of_its_own_lock(
        self, make_scheduler: SchedulerFactory, running: list[Scheduler], lock_holder: LockHolder
    ) -> None:
        scheduler = self.start(make_scheduler, running, make_app({}), T0)
        assert lock_holder(scheduler) == holder_of(scheduler)
        scheduler.close()
        assert lock_holder(scheduler) is None

    def test_closing_lets_go_of_the_lock_only_if_it_is_still_ours(
        self,
        make_scheduler: SchedulerFactory,
        running: list[Scheduler],
        lock_holder: LockHolder,
        take_lock: TakeLock,
    ) -> None:
        scheduler = self.start(make_scheduler, running, make_app({}), T0)
        take_lock(scheduler, OTHER_HOLDER)
        scheduler.close()
        scheduler.close()  # idempotent
        assert lock_holder(scheduler) == OTHER_HOLDER

    def test_a_beat_whose_lock_was_taken_stops_at_its_next_tick(
        self, make_scheduler: SchedulerFactory, running: list[Scheduler], take_lock: TakeLock
    ) -> None:
        app = make_app({"ping": {"task": "proj.ping", "schedule": 30}})
        scheduler = self.start(make_scheduler, running, app, T0)
        take_lock(scheduler, OTHER_HOLDER)
        with pytest.raises(ScheduleLockedError, match=r"lost its lock .* to another beat \(elsewhere:1:beef\).*twice"):
            scheduler.tick(T0 + timedelta(seconds=30))
        assert sent(app) == []

    def test_a_beat_whose_lock_was_taken_does_not_write_over_the_state(
        self, make_scheduler: SchedulerFactory, running: list[Scheduler], take_lock: TakeLock
    ) -> None:
        app = make_app({"ping": {"task": "proj.ping", "schedule": 30}})
        scheduler = self.start(make_scheduler, running, app, T0)
        before = scheduler.load_state()
        assert set(before) == {"ping"}
        take_lock(scheduler, OTHER_HOLDER)
        with pytest.raises(ScheduleLockedError, match=r"to another beat \(elsewhere:1:beef\)"):
            scheduler.save_state("ping", None)
        assert scheduler.load_state() == before

    def test_each_tick_renews_the_lease_and_wakes_beat_in_time_to_renew_again(
        self,
        make_scheduler: SchedulerFactory,
        running: list[Scheduler],
        lease_seconds: float,
        lease_left: LeaseLeft,
        set_lease_left: SetLeaseLeft,
    ) -> None:
        app = make_app({"daily": {"task": "proj.daily", "schedule": "@daily"}})
        scheduler = self.start(make_scheduler, running, app, T0)
        assert lease_left(scheduler) > lease_seconds / 2  # leased on setup
        max_wait = scheduler.max_wait
        assert max_wait is not None
        assert 0 < max_wait < lease_seconds / 2  # beat renews at least twice per lease
        set_lease_left(scheduler, 1.0)
        assert scheduler.tick(T0) > max_wait  # the schedule's own wait (a day): beat sleeps max_wait at most
        assert lease_left(scheduler) > lease_seconds / 2  # renewed to a whole lease


__all__ = [
    "OTHER_HOLDER",
    "T0",
    "LeaseLeft",
    "LockHolder",
    "SchedulerContract",
    "SchedulerFactory",
    "SetLeaseLeft",
    "StandbySchedulerContract",
    "TakeLock",
    "holder_of",
    "join",
    "make_app",
    "sent",
    "start_in_thread",
]
