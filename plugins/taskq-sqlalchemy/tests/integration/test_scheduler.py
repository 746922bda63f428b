"""The database beat scheduler: the standby scheduler kit, its tables, the database down, its URL.

Every kit app is named "conformance", so tests are kept apart by their store, not by app
name: each test gets its own PostgreSQL schema (the URL's ``search_path``), its own
MariaDB database or its own SQLite file, dropped afterwards. The scheduler needs no
option for it, and tests run in parallel.
"""

from __future__ import annotations

import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from taskq.app import App
from taskq.beat.service import resolve_scheduler
from taskq.drivers.scheduler import Scheduler
from taskq.errors import BackendUnavailableError, ConfigError
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
from taskq_sqlalchemy.backend import sqlalchemy_url
from taskq_sqlalchemy.scheduler import DatabaseScheduler, beat_tables

from .conftest import server_url

pytestmark = pytest.mark.integration

# A short lease for the takeover tests, in seconds: a dead beat's lock lapses this fast.
SHORT_LOCK_SECONDS = 1.0
# The lease another beat takes in the tests where it takes the lock, in seconds.
OTHER_LEASE_SECONDS = 3600.0


def postgresql_store() -> Iterator[str]:
    """A URL whose tables land in a schema of their own, dropped afterwards."""
    url = server_url("postgresql")
    schema = f"taskq_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(sqlalchemy_url(url))
    try:
        with admin.begin() as connection:
            connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
        yield f"{url}?options=-csearch_path%3D{schema}"
        with admin.begin() as connection:
            connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    finally:
        admin.dispose()


def mariadb_store() -> Iterator[str]:
    """A URL on a database of its own, dropped afterwards."""
    url = server_url("mariadb")
    database = f"taskq_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(sqlalchemy_url(url))
    try:
        with admin.begin() as connection:
            connection.execute(sa.text(f"CREATE DATABASE {database}"))
        yield url.rsplit("/", 1)[0] + f"/{database}"
        with admin.begin() as connection:
            connection.execute(sa.text(f"DROP DATABASE {database}"))
    finally:
        admin.dispose()


def sqlite_store(tmp_path: Path) -> Iterator[str]:
    yield f"db+sqlite:///{tmp_path}/beat.db"


STORES: dict[str, Callable[..., Iterator[str]]] = {
    "postgresql": postgresql_store,
    "mariadb": mariadb_store,
    "sqlite": sqlite_store,
}


@pytest.fixture(params=list(STORES))
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """This test's own store, on each database in turn."""
    maker = STORES[request.param]
    yield from (maker(tmp_path) if request.param == "sqlite" else maker())


@pytest.fixture
def raw(store_url: str) -> Iterator[sa.Engine]:
    """An engine on the test's store, to look at and meddle with the tables."""
    engine = sa.create_engine(sqlalchemy_url(store_url))
    yield engine
    engine.dispose()


def on_db(app: App, url: str) -> App:
    """``app`` with its beat state in ``url``."""
    app.conf.update(beat_scheduler_url=url)
    return app


def free_port() -> int:
    """A local TCP port where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def app_name(scheduler: Scheduler) -> str:
    assert isinstance(scheduler, DatabaseScheduler)
    return scheduler.app_name


def set_lock(raw: sa.Engine, scheduler: Scheduler, **values: object) -> None:
    """Change the lock row of ``scheduler``'s app, as another beat would."""
    _entries, lock = beat_tables()
    with raw.begin() as connection:
        connection.execute(sa.update(lock).where(lock.c.app == app_name(scheduler)).values(**values))


def stored_entries(raw: sa.Engine) -> list[tuple[object, ...]]:
    entries, _lock = beat_tables()
    with raw.connect() as connection:
        return [tuple(row) for row in connection.execute(sa.select(entries).order_by(entries.c.app, entries.c.name))]


@pytest.fixture
def closing() -> Iterator[list[Scheduler]]:
    """Schedulers a test made; closed at its end, also when it fails."""
    made: list[Scheduler] = []
    yield made
    for scheduler in made:
        scheduler.close()


class TestDatabaseScheduler(StandbySchedulerContract):
    """The kit on each database in turn (``store_url``), each test on a store of its own."""

    @pytest.fixture
    def make_scheduler(self, store_url: str) -> SchedulerFactory:
        def make(app: App) -> Scheduler:
            return DatabaseScheduler(on_db(app, store_url))

        return make

    @pytest.fixture
    def short_lease(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Leases of SHORT_LOCK_SECONDS, renewed and retried at LeasedScheduler's ratios."""
        monkeypatch.setattr(DatabaseScheduler, "lock_seconds", SHORT_LOCK_SECONDS)

    @pytest.fixture
    def lease_seconds(self) -> float:
        return DatabaseScheduler.lock_seconds

    @pytest.fixture
    def lock_holder(self, raw: sa.Engine) -> LockHolder:
        def holder(scheduler: Scheduler) -> str | None:
            _entries, lock = beat_tables()
            with raw.connect() as connection:
                found = connection.execute(sa.select(lock.c.holder).where(lock.c.app == app_name(scheduler))).scalar()
            return None if found is None else str(found)

        return holder

    @pytest.fixture
    def take_lock(self, raw: sa.Engine) -> TakeLock:
        def take(scheduler: Scheduler, holder: str) -> None:
            set_lock(raw, scheduler, holder=holder, expires_at=time.time() + OTHER_LEASE_SECONDS)

        return take

    @pytest.fixture
    def lease_left(self, raw: sa.Engine) -> LeaseLeft:
        def left(scheduler: Scheduler) -> float:
            _entries, lock = beat_tables()
            query = sa.select(lock.c.expires_at).where(lock.c.app == app_name(scheduler))
            with raw.connect() as connection:
                expires_at = connection.execute(query).scalar_one()
            return float(expires_at) - time.time()

        return left

    @pytest.fixture
    def set_lease_left(self, raw: sa.Engine) -> SetLeaseLeft:
        def set_left(scheduler: Scheduler, seconds: float) -> None:
            set_lock(raw, scheduler, expires_at=time.time() + seconds)

        return set_left


def test_beat_wakes_every_renew_seconds(tmp_path: Path) -> None:
    scheduler = DatabaseScheduler(make_app({}, beat_scheduler_url=f"db+sqlite:///{tmp_path}/beat.db"))
    assert scheduler.max_wait == scheduler.renew_seconds


# ---- The tables -------------------------------------------------------------------------


def test_the_state_is_one_row_per_entry_under_the_apps_name(
    store_url: str, raw: sa.Engine, closing: list[Scheduler]
) -> None:
    app = on_db(make_app({"ping": {"task": "proj.ping", "schedule": 30}}), store_url)
    scheduler = DatabaseScheduler(app)
    closing.append(scheduler)
    scheduler.setup(T0)
    assert stored_entries(raw) == [
        ("conformance", "ping", T0.timestamp(), 0, scheduler.entries["ping"].schedule.describe())
    ]


# ---- The database unavailable ----------------------------------------------------------


def test_an_unreachable_store_says_how_to_check_the_database(tmp_path: Path) -> None:
    url = f"db+sqlite:///{tmp_path}/no/such/folder/beat.db"
    app = make_app({"ping": {"task": "proj.ping", "schedule": 30}}, beat_scheduler_url=url)
    with pytest.raises(BackendUnavailableError, match=re.escape(f"Check with: sqlite3 {tmp_path}/no/such")):
        DatabaseScheduler(app).setup(T0)


def test_an_unreachable_server_says_how_to_check_postgresql() -> None:
    port = free_port()
    url = f"db+postgresql://postgres@127.0.0.1:{port}/test"
    app = make_app({"ping": {"task": "proj.ping", "schedule": 30}}, beat_scheduler_url=url)
    with pytest.raises(BackendUnavailableError, match=re.escape(f"psql 'postgresql://postgres@127.0.0.1:{port}")):
        DatabaseScheduler(app).setup(T0)


def test_while_the_database_is_unreachable_beat_sends_nothing_and_tries_again(
    tmp_path: Path, closing: list[Scheduler]
) -> None:
    folder = tmp_path / "store"
    folder.mkdir()
    app = make_app({"ping": {"task": "proj.ping", "schedule": 30}}, beat_scheduler_url=f"db+sqlite:///{folder}/beat.db")
    scheduler = DatabaseScheduler(app)
    closing.append(scheduler)
    scheduler.setup(T0)
    hidden = tmp_path / "hidden"
    folder.rename(hidden)  # the file is gone: new connections cannot open it
    scheduler._store().dispose()  # and the pooled one is dropped, as after a server restart
    assert scheduler.tick(T0 + timedelta(seconds=30)) == scheduler.retry_seconds
    assert sent(app) == []
    hidden.rename(folder)
    scheduler.tick(T0 + timedelta(seconds=30))
    assert len(sent(app)) == 1


# ---- Where the state lives -------------------------------------------------------------


def test_a_db_result_backend_serves_when_no_store_url_is_set(tmp_path: Path) -> None:
    url = f"db+sqlite:///{tmp_path}/results.db"
    app = make_app({})
    app.conf.update(result_backend=url)
    scheduler = DatabaseScheduler(app)
    assert scheduler.url == url
    assert scheduler.db_url.get_backend_name() == "sqlite"


def test_a_plain_sqlalchemy_url_serves_too(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/beat.db"
    assert DatabaseScheduler(make_app({}, beat_scheduler_url=url)).url == url


@pytest.mark.parametrize(
    ("settings", "found"),
    [
        ({}, "beat_scheduler_url is unset and the result_backend is 'disabled'"),
        ({"result_backend": "redis://cache:6379/1"}, "the result_backend is 'redis://cache:6379/1'"),
        ({"beat_scheduler_url": "mongodb://db:27017"}, "cannot use beat_scheduler_url 'mongodb://db:27017'"),
    ],
)
def test_a_store_url_that_is_not_a_database_is_a_config_error(settings: dict[str, object], found: str) -> None:
    app = make_app({})
    app.conf.update(**settings)
    with pytest.raises(ConfigError, match=re.escape(found) + r'.*set beat_scheduler_url = "db\+postgresql://'):
        DatabaseScheduler(app)


def test_the_plugin_offers_the_database_scheduler() -> None:
    assert resolve_scheduler(make_app({}), "database") is DatabaseScheduler
