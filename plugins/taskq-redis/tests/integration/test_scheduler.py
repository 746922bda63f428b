"""The Redis beat scheduler: the scheduler kit, standby and takeover, a lost lock, its URL."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import redis

from taskq.app import App
from taskq.beat import Beat, Scheduler
from taskq.beat.scheduler import resolve_scheduler
from taskq.errors import BrokerUnavailableError, ConfigError, ScheduleLockedError
from taskq.testing.conformance.scheduler import T0, SchedulerContract, SchedulerFactory, make_app, sent
from taskq_redis import scheduler as redis_scheduler
from taskq_redis.scheduler import RedisScheduler

from ..conftest import RedisServer, free_port

pytestmark = pytest.mark.integration

# How long to wait, in seconds, for something that should happen soon.
DEADLINE = 10.0
# A short lease for the takeover tests, in seconds: a dead beat's lock lapses this fast.
SHORT_LOCK_SECONDS = 1.0


def on_redis(app: App, redis_url: str, prefix: str) -> App:
    """``app`` with its beat state in the test Redis, under the test's own key prefix."""
    app.conf.update(beat_scheduler_url=redis_url, broker_transport_options={"global_keyprefix": prefix})
    return app


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {DEADLINE}s for {what}")
        time.sleep(0.02)


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def short_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    """Leases of SHORT_LOCK_SECONDS, renewed and retried at the module's ratios."""
    monkeypatch.setattr(redis_scheduler, "LOCK_SECONDS", SHORT_LOCK_SECONDS)
    monkeypatch.setattr(redis_scheduler, "RENEW_SECONDS", SHORT_LOCK_SECONDS / 3)
    monkeypatch.setattr(redis_scheduler, "STANDBY_RETRY_SECONDS", SHORT_LOCK_SECONDS / 6)


@pytest.fixture
def free_port_url() -> str:
    """A Redis URL where nothing listens."""
    return f"redis://127.0.0.1:{free_port()}/0"


@pytest.fixture
def closing() -> Iterator[list[Scheduler]]:
    """Schedulers a test made; closed at its end, also when it fails."""
    made: list[Scheduler] = []
    yield made
    for scheduler in made:
        scheduler.close()


class TestRedisScheduler(SchedulerContract):
    @pytest.fixture
    def make_scheduler(self, redis_url: str, prefix: str) -> SchedulerFactory:
        def make(app: App) -> Scheduler:
            return RedisScheduler(on_redis(app, redis_url, prefix))

        return make


# ---- Standby and takeover --------------------------------------------------------------


def start_in_thread(target: Callable[[], object]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


@pytest.mark.usefixtures("short_lease")
def test_a_second_beat_stands_by_and_takes_over_when_the_first_stops(redis_url: str, prefix: str) -> None:
    app = on_redis(make_app({"ping": {"task": "proj.ping", "schedule": 0.1}}), redis_url, prefix)
    received: list[object] = []

    def sends(count: int) -> Callable[[], bool]:
        target = len(received) + count
        return lambda: len(received) + len(received.extend(sent(app)) or ()) >= target

    first, second = Beat(app, scheduler=RedisScheduler), Beat(app, scheduler=RedisScheduler)
    first_thread, first_errors = start_in_thread(first.run)
    second_thread: threading.Thread | None = None
    try:
        wait_for(sends(2), "the first beat to send twice")
        second_thread, second_errors = start_in_thread(second.run)
        wait_for(second.scheduler.standby.is_set, "the second beat to stand by")
        assert not second.ready.is_set()
        first.stop()
        first_thread.join(DEADLINE)
        assert not first_thread.is_alive() and first_errors == []
        wait_for(second.ready.is_set, "the second beat to take over")
        assert not second.scheduler.standby.is_set()
        wait_for(sends(2), "the second beat to send twice")
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
    redis_url: str, prefix: str, closing: list[Scheduler]
) -> None:
    app = on_redis(make_app({"ping": {"task": "proj.ping", "schedule": 30}}), redis_url, prefix)
    dead = RedisScheduler(app)
    closing.append(dead)
    dead.setup(T0)
    dead.tick(T0 + timedelta(seconds=30))
    assert len(sent(app)) == 1
    # it dies here: no more ticks, no close, so its lease runs out
    standby = RedisScheduler(app)
    closing.append(standby)
    thread, errors = start_in_thread(lambda: standby.setup(T0 + timedelta(seconds=45)))
    wait_for(standby.standby.is_set, "the standby to stand by")
    thread.join(DEADLINE)
    assert not thread.is_alive() and errors == []
    state = standby.entries["ping"].state
    assert state is not None
    assert (state.last_run_at, state.total_run_count) == (T0 + timedelta(seconds=30), 1)
    assert standby.tick(T0 + timedelta(seconds=45)) == pytest.approx(15.0)  # due at T0 + 60 s
    assert sent(app) == []  # nothing twice
    standby.tick(T0 + timedelta(seconds=60))
    assert len(sent(app)) == 1  # and nothing skipped


def test_a_standby_beat_asked_to_stop_gives_up_with_schedule_locked_error(
    redis_url: str, prefix: str, closing: list[Scheduler]
) -> None:
    app = on_redis(make_app({"ping": {"task": "proj.ping", "schedule": 30}}), redis_url, prefix)
    holder = RedisScheduler(app)
    closing.append(holder)
    holder.setup(T0)
    standby = RedisScheduler(app)
    closing.append(standby)
    thread, errors = start_in_thread(lambda: standby.setup(T0))
    wait_for(standby.standby.is_set, "the standby to stand by")
    standby.stopping.set()
    thread.join(DEADLINE)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], ScheduleLockedError)
    assert holder.holder in str(errors[0]) and "asked to stop" in str(errors[0])


def test_beat_run_returns_quietly_when_stopped_while_standing_by(
    redis_url: str, prefix: str, closing: list[Scheduler]
) -> None:
    app = on_redis(make_app({"ping": {"task": "proj.ping", "schedule": 30}}), redis_url, prefix)
    holder = RedisScheduler(app)
    closing.append(holder)
    holder.setup(T0)
    beat = Beat(app, scheduler="redis")
    thread, errors = start_in_thread(beat.run)
    wait_for(beat.scheduler.standby.is_set, "beat to stand by")
    beat.stop()
    thread.join(DEADLINE)
    assert not thread.is_alive() and errors == []
    assert sent(app) == []


def test_closing_lets_go_of_the_lock_only_if_it_is_still_ours(
    redis_url: str, prefix: str, raw: redis.Redis, closing: list[Scheduler]
) -> None:
    app = on_redis(make_app({}), redis_url, prefix)
    scheduler = RedisScheduler(app)
    closing.append(scheduler)
    scheduler.setup(T0)
    raw.set(scheduler.lock_key, "elsewhere:1:beef")
    scheduler.close()
    scheduler.close()  # idempotent
    assert raw.get(scheduler.lock_key) == b"elsewhere:1:beef"


# ---- A lost lock -----------------------------------------------------------------------


def test_a_beat_whose_lock_was_taken_stops_at_its_next_tick(
    redis_url: str, prefix: str, raw: redis.Redis, closing: list[Scheduler]
) -> None:
    app = on_redis(make_app({"ping": {"task": "proj.ping", "schedule": 30}}), redis_url, prefix)
    scheduler = RedisScheduler(app)
    closing.append(scheduler)
    scheduler.setup(T0)
    assert raw.pttl(scheduler.lock_key) > 0
    raw.set(scheduler.lock_key, "elsewhere:1:beef", px=30_000)
    with pytest.raises(ScheduleLockedError, match=r"lost its lock .* to another beat \(elsewhere:1:beef\).*twice"):
        scheduler.tick(T0 + timedelta(seconds=30))
    assert sent(app) == []


def test_a_beat_that_lost_its_lock_does_not_write_over_the_state(
    redis_url: str, prefix: str, raw: redis.Redis, closing: list[Scheduler]
) -> None:
    app = on_redis(make_app({"ping": {"task": "proj.ping", "schedule": 30}}), redis_url, prefix)
    scheduler = RedisScheduler(app)
    closing.append(scheduler)
    scheduler.setup(T0)
    before = raw.hgetall(scheduler.state_key)
    raw.delete(scheduler.lock_key)
    state = scheduler.entries["ping"].state
    assert state is not None
    with pytest.raises(ScheduleLockedError, match="it lapsed"):
        scheduler.save_state("ping", state)
    assert raw.hgetall(scheduler.state_key) == before


def test_the_state_is_json_under_the_apps_name(
    redis_url: str, prefix: str, raw: redis.Redis, closing: list[Scheduler]
) -> None:
    app = on_redis(make_app({"ping": {"task": "proj.ping", "schedule": 30}}), redis_url, prefix)
    scheduler = RedisScheduler(app)
    closing.append(scheduler)
    scheduler.setup(T0)
    assert scheduler.state_key == f"{prefix}taskq:beat:conformance:state"
    assert scheduler.lock_key == f"{prefix}taskq:beat:conformance:lock"
    assert raw.get(scheduler.lock_key) == scheduler.holder.encode()
    stored = raw.hget(scheduler.state_key, "ping")
    assert stored is not None
    assert json.loads(stored) == {
        "last_run_at": T0.timestamp(),
        "total_run_count": 0,
        "schedule": scheduler.entries["ping"].schedule.describe(),
    }


def test_each_tick_renews_the_lease_and_wakes_beat_in_time_to_renew_again(
    redis_url: str, prefix: str, raw: redis.Redis, closing: list[Scheduler]
) -> None:
    app = on_redis(make_app({"daily": {"task": "proj.daily", "schedule": "@daily"}}), redis_url, prefix)
    scheduler = RedisScheduler(app)
    closing.append(scheduler)
    scheduler.setup(T0)
    raw.pexpire(scheduler.lock_key, 1_000)
    assert scheduler.tick(T0) > redis_scheduler.RENEW_SECONDS  # the schedule's own wait (a day)
    assert scheduler.max_wait == redis_scheduler.RENEW_SECONDS  # what beat sleeps at most
    assert raw.pttl(scheduler.lock_key) > 1_000


# ---- Redis unavailable -----------------------------------------------------------------


def test_an_unreachable_store_says_how_to_check_redis(free_port_url: str) -> None:
    app = make_app({"ping": {"task": "proj.ping", "schedule": 30}}, beat_scheduler_url=free_port_url)
    with pytest.raises(BrokerUnavailableError, match=re.escape("redis-cli -u redis://127.0.0.1:")):
        RedisScheduler(app).setup(T0)


def test_while_redis_is_down_beat_sends_nothing_and_stops_if_its_lease_lapsed(
    private_redis: RedisServer, closing: list[Scheduler]
) -> None:
    app = make_app({"ping": {"task": "proj.ping", "schedule": 30}}, beat_scheduler_url=private_redis.url)
    scheduler = RedisScheduler(app)
    closing.append(scheduler)
    scheduler.setup(T0)
    private_redis.kill()
    assert scheduler.tick(T0 + timedelta(seconds=30)) == redis_scheduler.STANDBY_RETRY_SECONDS
    assert sent(app) == []
    private_redis.start()  # in memory only: the lock is gone with the old server
    with pytest.raises(ScheduleLockedError, match="it lapsed"):
        scheduler.tick(T0 + timedelta(seconds=35))
    assert sent(app) == []


# ---- Where the state lives -------------------------------------------------------------


def test_the_broker_url_serves_when_no_store_url_is_set(redis_url: str) -> None:
    app = make_app({})
    app.conf.update(broker_url=redis_url)
    assert RedisScheduler(app).url == redis_url


@pytest.mark.parametrize(
    ("settings", "found"),
    [
        ({}, "the broker_url (beat_scheduler_url is unset) is 'memory://"),
        ({"beat_scheduler_url": "mongodb://db:27017"}, "beat_scheduler_url is 'mongodb://db:27017'"),
    ],
)
def test_a_store_url_that_is_not_redis_is_a_config_error(settings: dict[str, object], found: str) -> None:
    app = make_app({}, **settings)
    with pytest.raises(ConfigError, match=re.escape(found) + r'.*set beat_scheduler_url = "redis://'):
        RedisScheduler(app)


def test_the_plugin_offers_the_redis_scheduler() -> None:
    assert resolve_scheduler(make_app({}), "redis") is RedisScheduler
