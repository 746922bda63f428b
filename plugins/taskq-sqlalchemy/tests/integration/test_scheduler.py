"""The database beat scheduler: the scheduler kit, standby and takeover, a lost lock, its URL.

Every kit app is named "conformance", so tests are kept apart by their store, not by app
name: each test gets its own PostgreSQL schema (the URL's ``search_path``), its own
MariaDB database or its own SQLite file, dropped afterwards. The scheduler needs no
option for it, and tests run in parallel.
"""

from __future__ import annotations

import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from taskq.app import App
from taskq.beat import Beat, Scheduler
from taskq.beat.scheduler import resolve_scheduler
from taskq.errors import BackendUnavailableError, ConfigError, ScheduleLockedError
from taskq.testing.conformance.scheduler import T0, SchedulerContract, SchedulerFactory, make_app, sent
from taskq_sqlalchemy import scheduler as db_scheduler
from taskq_sqlalchemy.backend import sqlalchemy_url
from taskq_sqlalchemy.scheduler import DatabaseScheduler, beat_tables

from .conftest import server_url

pytestmark = pytest.mark.integration

# How long to wait, in seconds, for something that should happen soon.
DEADLINE = 10.0
# A short lease for the takeover tests, in seconds: a dead beat's lock lapses this fast.
SHORT_LOCK_SECONDS = 1.0


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


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {DEADLINE}s for {what}")
        time.sleep(0.02)


def free_port() -> int:
    """A local TCP port where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def lock_holder(raw: sa.Engine, app_name: str = "conformance") -> str | None:
    _entries, lock = beat_tables()
    with raw.connect() as connection:
        holder = connection.execute(sa.select(lock.c.holder).where(lock.c.app == app_name)).scalar()
    return None if holder is None else str(holder)


def set_holder(raw: sa.Engine, holder: str, app_name: str = "conformance") -> None:
    """Hand the lock to ``holder`` for a long lease, as another beat taking over would."""
    _entries, lock = beat_tables()
    with raw.begin() as connection:
        connection.execute(
            sa.update(lock).where(lock.c.app == app_name).values(holder=holder, expires_at=time.time() + 3600)
        )


def stored_entries(raw: sa.Engine) -> list[tuple[object, ...]]:
    entries, _lock = beat_tables()
    with raw.connect() as connection:
        return [tuple(row) for row in connection.execute(sa.select(entries).order_by(entries.c.app, entries.c.name))]


@pytest.fixture
def short_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    """Leases of SHORT_LOCK_SECONDS, renewed and retried at the module's ratios."""
    monkeypatch.setattr(db_scheduler, "LOCK_SECONDS", SHORT_LOCK_SECONDS)
    monkeypatch.setattr(db_scheduler, "RENEW_SECONDS", SHORT_LOCK_SECONDS / 3)
    monkeypatch.setattr(db_scheduler, "STANDBY_RETRY_SECONDS", SHORT_LOCK_SECONDS / 6)


@pytest.fixture
def closing() -> Iterator[list[Scheduler]]:
    """Schedulers a test made; closed at its end, also when it fails."""
    made: list[Scheduler] = []
    yield made
    for scheduler in made:
        scheduler.close()


def factory(url: str) -> SchedulerFactory:
    def make(app: App) -> Scheduler:
        return DatabaseScheduler(on_db(app, url))

    return make


class TestDatabaseSchedulerOnPostgreSQL(SchedulerContract):
    @pytest.fixture
    def make_scheduler(self) -> Iterator[SchedulerFactory]:
        for url in postgresql_store():
            yield factory(url)


class TestDatabaseSchedulerOnMariaDB(SchedulerContract):
    @pytest.fixture
    def make_scheduler(self) -> Iterator[SchedulerFactory]:
        for url in mariadb_store():
            yield factory(url)


class TestDatabaseSchedulerOnSQLite(SchedulerContract):
    @pytest.fixture
    def make_scheduler(self, tmp_path: Path) -> Iterator[SchedulerFactory]:
        for url in sqlite_store(tmp_path):
            yield factory(url)


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
def test_a_second_beat_stands_by_and_takes_over_when_the_first_stops(store_url: str) -> None:
    app = on_db(make_app({"ping": {"task": "proj.ping", "schedule": 0.1}}), store_url)
    received: list[object] = []

    def sends(count: int) -> Callable[[], bool]:
        target = len(received) + count

        def done() -> bool:
            received.extend(sent(app))
            return len(received) >= target

        return done

    first, second = Beat(app, scheduler=DatabaseScheduler), Beat(app, scheduler=DatabaseScheduler)
    first_thread, first_errors = start_in_thread(first.run)
    second_thread: threading.Thread | None = None
    second_errors: list[BaseException] = []
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
    store_url: str, closing: list[Scheduler]
) -> None:
    app = on_db(make_app({"ping": {"task": "proj.ping", "schedule": 30}}), store_url)
    dead = DatabaseScheduler(app)
    closing.append(dead)
    dead.setup(T0)
    dead.tick(T0 + timedelta(seconds=30))
    assert len(sent(app)) == 1
    # it dies here: no more ticks, no close, so its lease runs out
    standby = DatabaseScheduler(app)
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
    store_url: str, closing: list[Scheduler]
) -> None:
    app = on_db(make_app({"ping": {"task": "proj.ping", "schedule": 30}}), store_url)
    holder = DatabaseScheduler(app)
    closing.append(holder)
    holder.setup(T0)
    standby = DatabaseScheduler(app)
    closing.append(standby)
    thread, errors = start_in_thread(lambda: standby.setup(T0))
    wait_for(standby.standby.is_set, "the standby to stand by")
    standby.stopping.set()
    thread.join(DEADLINE)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], ScheduleLockedError)
    assert holder.holder in str(errors[0]) and "asked to stop" in str(errors[0])


def test_beat_run_returns_quietly_when_stopped_while_standing_by(store_url: str, closing: list[Scheduler]) -> None:
    app = on_db(make_app({"ping": {"task": "proj.ping", "schedule": 30}}), store_url)
    holder = DatabaseScheduler(app)
    closing.append(holder)
    holder.setup(T0)
    beat = Beat(app, scheduler="database")
    thread, errors = start_in_thread(beat.run)
    wait_for(beat.scheduler.standby.is_set, "beat to stand by")
    beat.stop()
    thread.join(DEADLINE)
    assert not thread.is_alive() and errors == []
    assert sent(app) == []


def test_closing_lets_go_of_the_lock_only_if_it_is_still_ours(
    store_url: str, raw: sa.Engine, closing: list[Scheduler]
) -> None:
    app = on_db(make_app({}), store_url)
    scheduler = DatabaseScheduler(app)
    closing.append(scheduler)
    scheduler.setup(T0)
    set_holder(raw, "elsewhere:1:beef")
    scheduler.close()
    scheduler.close()  # idempotent
    assert lock_holder(raw) == "elsewhere:1:beef"


def test_closing_lets_go_of_its_own_lock(store_url: str, raw: sa.Engine, closing: list[Scheduler]) -> None:
    app = on_db(make_app({}), store_url)
    scheduler = DatabaseScheduler(app)
    closing.append(scheduler)
    scheduler.setup(T0)
    assert lock_holder(raw) == scheduler.holder
    scheduler.close()
    assert lock_holder(raw) is None


# ---- A lost lock -----------------------------------------------------------------------


def test_a_beat_whose_lock_was_taken_stops_at_its_next_tick(
    store_url: str, raw: sa.Engine, closing: list[Scheduler]
) -> None:
    app = on_db(make_app({"ping": {"task": "proj.ping", "schedule": 30}}), store_url)
    scheduler = DatabaseScheduler(app)
    closing.append(scheduler)
    scheduler.setup(T0)
    set_holder(raw, "elsewhere:1:beef")
    with pytest.raises(ScheduleLockedError, match=r"lost its lock .* to another beat \(elsewhere:1:beef\).*twice"):
        scheduler.tick(T0 + timedelta(seconds=30))
    assert sent(app) == []


def test_a_beat_that_lost_its_lock_does_not_write_over_the_state(
    store_url: str, raw: sa.Engine, closing: list[Scheduler]
) -> None:
    app = on_db(make_app({"ping": {"task": "proj.ping", "schedule": 30}}), store_url)
    scheduler = DatabaseScheduler(app)
    closing.append(scheduler)
    scheduler.setup(T0)
    before = stored_entries(raw)
    set_holder(raw, "elsewhere:1:beef")
    state = scheduler.entries["ping"].state
    assert state is not None
    with pytest.raises(ScheduleLockedError, match=r"to another beat \(elsewhere:1:beef\)"):
        scheduler.save_state("ping", None)
    assert stored_entries(raw) == before


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


def test_each_tick_renews_the_lease_and_wakes_beat_in_time_to_renew_again(
    store_url: str, raw: sa.Engine, closing: list[Scheduler]
) -> None:
    app = on_db(make_app({"daily": {"task": "proj.daily", "schedule": "@daily"}}), store_url)
    scheduler = DatabaseScheduler(app)
    closing.append(scheduler)
    scheduler.setup(T0)
    _entries, lock = beat_tables()
    with raw.begin() as connection:
        connection.execute(sa.update(lock).values(expires_at=0.0))
    assert scheduler.tick(T0) > db_scheduler.RENEW_SECONDS  # the schedule's own wait (a day)
    assert scheduler.max_wait == db_scheduler.RENEW_SECONDS  # what beat sleeps at most
    with raw.connect() as connection:
        expires_at = connection.execute(sa.select(lock.c.expires_at)).scalar_one()
    assert expires_at > time.time() + db_scheduler.LOCK_SECONDS / 2


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
    assert scheduler.tick(T0 + timedelta(seconds=30)) == db_scheduler.STANDBY_RETRY_SECONDS
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
