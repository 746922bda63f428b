"""The beat scheduler conformance kit: one test per behaviour of a scheduler.

Subclass :class:`SchedulerContract` in a plugin's tests and provide a ``make_scheduler``
fixture: a factory ``make_scheduler(app)`` returning a new, not yet set-up instance of the
scheduler, on the same store every time it is called within one test (so the kit can
stop a beat and start another on what the first left). A scheduler that declares
``persistent`` is checked to remember across instances; one that declares ``exclusive``,
to refuse a second beat while the first holds the store.

The kit drives time itself (``setup(now)``, ``tick(now)``), so nothing here sleeps; the
tasks go to a private in-memory broker, where the kit reads what was sent.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from taskq.app import App
from taskq.beat.scheduler import SEND_RETRY_DELAY, Scheduler
from taskq.errors import ScheduleLockedError

SchedulerFactory = Callable[[App], Scheduler]

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


__all__ = ["T0", "SchedulerContract", "SchedulerFactory", "make_app", "sent"]
