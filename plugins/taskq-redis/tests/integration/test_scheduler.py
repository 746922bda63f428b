"""The Redis beat scheduler: the standby scheduler kit, a lapsed lock, its keys, Redis down, its URL."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis

from taskq.app import App
from taskq.beat.service import resolve_scheduler
from taskq.drivers.scheduler import Scheduler
from taskq.errors import BrokerUnavailableError, ConfigError, ScheduleLockedError
from taskq.testing.conformance.scheduler import (
    T0,
    LeaseLeft,
    LockHolder,
    SchedulerFactory,
    SetLeaseLeft,
    StandbySchedulerContract,
    TakeLock,
    make_app,
    sent,
)
from taskq_redis.scheduler import RedisScheduler

from ..conftest import RedisServer, free_port

pytestmark = pytest.mark.integration

# A short lease for the takeover tests, in seconds: a dead beat's lock lapses this fast.
SHORT_LOCK_SECONDS = 1.0
# The lease another beat takes in the tests where it takes the lock, in milliseconds.
OTHER_LEASE_MS = 30_000


def on_redis(app: App, redis_url: str, prefix: str) -> App:
    """``app`` with its beat state in the test Redis, under the test's own key prefix."""
    app.conf.update(beat_scheduler_url=redis_url, broker_transport_options={"global_keyprefix": prefix})
    return app


def lock_key(scheduler: Scheduler) -> str:
    assert isinstance(scheduler, RedisScheduler)
    return scheduler.lock_key


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


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


class TestRedisScheduler(StandbySchedulerContract):
    @pytest.fixture
    def make_scheduler(self, redis_url: str, prefix: str) -> SchedulerFactory:
        def make(app: App) -> Scheduler:
            return RedisScheduler(on_redis(app, redis_url, prefix))

        return make

    @pytest.fixture
    def short_lease(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Leases of SHORT_LOCK_SECONDS, renewed and retried at LeasedScheduler's ratios."""
        monkeypatch.setattr(RedisScheduler, "lock_seconds", SHORT_LOCK_SECONDS)

    @pytest.fixture
    def lease_seconds(self) -> float:
        return RedisScheduler.lock_seconds

    @pytest.fixture
    def lock_holder(self, raw: redis.Redis) -> LockHolder:
        def holder(scheduler: Scheduler) -> str | None:
            value = raw.get(lock_key(scheduler))
            return value.decode() if isinstance(value, bytes) else value

        return holder

    @pytest.fixture
    def take_lock(self, raw: redis.Redis) -> TakeLock:
        def take(scheduler: Scheduler, holder: str) -> None:
            raw.set(lock_key(scheduler), holder, px=OTHER_LEASE_MS)

        return take

    @pytest.fixture
    def lease_left(self, raw: redis.Redis) -> LeaseLeft:
        return lambda scheduler: raw.pttl(lock_key(scheduler)) / 1000

    @pytest.fixture
    def set_lease_left(self, raw: redis.Redis) -> SetLeaseLeft:
        def set_left(scheduler: Scheduler, seconds: float) -> None:
            raw.pexpire(lock_key(scheduler), round(seconds * 1000))

        return set_left


def test_beat_wakes_every_renew_seconds(redis_url: str, prefix: str) -> None:
    scheduler = RedisScheduler(on_redis(make_app({}), redis_url, prefix))
    assert scheduler.max_wait == scheduler.renew_seconds


# ---- A lapsed lock ---------------------------------------------------------------------


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
    assert scheduler.tick(T0 + timedelta(seconds=30)) == scheduler.retry_seconds
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
