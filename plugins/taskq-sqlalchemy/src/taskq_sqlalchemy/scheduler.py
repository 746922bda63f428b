"""The database beat scheduler (``--scheduler database``): state in SQL, one beat at a time, standbys.

Beat's memory lives in two tables of the database of ``beat_scheduler_url`` or, when that
is unset, of a ``db+...`` result backend; both are created when missing:

* ``taskq_beat_entries``: one row per app and entry (``app``, ``name``, ``last_run_at`` as
  a POSIX time, ``total_run_count``, ``schedule``);
* ``taskq_beat_lock``: one row per app, the lease: ``holder`` (``host:pid:random``) and
  ``expires_at``, a POSIX time read from the database's own clock, so that beats on
  machines whose clocks disagree still agree on when a lease lapses.

Any number of beats may run on one database; the one holding the lease sends, the others
stand by, as with the redis scheduler:

* taking the lock is one upsert that writes this beat's row only when there is none, its
  lease has lapsed or it is already this beat's; the lease lasts 30 s and is renewed on
  every tick (at least every 10 s), as :class:`~taskq.drivers.LeasedScheduler` does;
* a standby tries again every 5 s, so when the active beat stops
  (it deletes its row) or dies (its lease lapses) a standby takes over within a lease,
  starting from the state the first one saved;
* renewing and recording a run both start with ``UPDATE ... WHERE app = ? AND holder = ?``:
  no row updated means another beat took the lock, and this one raises
  :class:`~taskq.errors.ScheduleLockedError` rather than send twice or write over its
  successor's state. The update keeps the row locked until the state is committed.

While the database does not answer, the active beat sends nothing and tries again every
5 s; if another beat took the lock meanwhile, its next tick
raises ``ScheduleLockedError``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import mysql, postgresql, sqlite

from taskq.drivers.scheduler import EntryState, LeasedScheduler
from taskq.drivers.support.connections import mask_url
from taskq.drivers.support.retrying import RetryPolicy
from taskq.errors import BackendUnavailableError, ConfigError
from taskq_sqlalchemy.backend import SQLITE_BUSY_TIMEOUT, check_advice, create_engine, first_line, sqlalchemy_url

if TYPE_CHECKING:
    from taskq import App

logger = logging.getLogger(__name__)

ENTRIES_TABLE = "taskq_beat_entries"
LOCK_TABLE = "taskq_beat_lock"

# The errors of a database that went away, refused us, or is locked for too long.
CONNECTION_ERRORS = (sa_exc.OperationalError, sa_exc.InterfaceError)
# A transaction the database failed (a deadlock, a dropped connection): three tries in all,
# 0.1 s apart, doubling.
RETRYING = RetryPolicy(CONNECTION_ERRORS, attempts=3, first_delay=0.1)

T = TypeVar("T")


def _name_column(name: str, *, primary_key: bool = False) -> sa.Column[str]:
    # Binary collation on MySQL: names are case-sensitive, as they are everywhere else.
    kind = sa.String(255).with_variant(
        mysql.VARCHAR(255, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
    )
    return sa.Column(name, kind, primary_key=primary_key, nullable=False)


def beat_tables(metadata: sa.MetaData | None = None) -> tuple[sa.Table, sa.Table]:
    """The entries table and the lock table."""
    metadata = metadata or sa.MetaData()
    entries = sa.Table(
        ENTRIES_TABLE,
        metadata,
        _name_column("app", primary_key=True),
        _name_column("name", primary_key=True),
        sa.Column("last_run_at", sa.Double(), nullable=False),
        sa.Column("total_run_count", sa.BigInteger(), nullable=False),
        sa.Column("schedule", sa.Text(), nullable=False),
    )
    lock = sa.Table(
        LOCK_TABLE,
        metadata,
        _name_column("app", primary_key=True),
        _name_column("holder"),
        sa.Column("expires_at", sa.Double(), nullable=False),
    )
    return entries, lock


# The database's clock as a POSIX time in seconds, in each dialect's words.
_CLOCKS = {
    "postgresql": "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)",
    # UTC_TIMESTAMP needs no time zone conversion, so no hour is ambiguous.
    "mysql": "(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) / 1000000.0)",
    "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
}


class DatabaseScheduler(LeasedScheduler):
    """Beat's state in a SQL database, with a leased lock: one beat sends, the others stand by."""

    unavailable_errors = CONNECTION_ERRORS

    def __init__(self, app: App, *, schedule_filename: str | os.PathLike[str] | None = None) -> None:
        super().__init__(app, schedule_filename=schedule_filename)
        self.url = store_url(app)
        self.db_url = sqlalchemy_url(self.url)
        self.backend_name = self.db_url.get_backend_name()
        #: The app's rows in both tables: its name, ``default`` without one.
        self.app_name = app.main or "default"
        self.entries_table, self.lock_table = beat_tables()
        self._engine: sa.Engine | None = None

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    # ---- The lock ---------------------------------------------------------------------

    @property
    def lock_name(self) -> str:
        return f"the lock of {self.app_name!r} in {LOCK_TABLE} at {self.masked_url}"

    def connect(self) -> None:
        self._engine = self._create_engine()
        try:
            self._create_tables()
        except CONNECTION_ERRORS as exc:
            self.disconnect()
            raise self.unavailable(exc) from exc

    def disconnect(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            with contextlib.suppress(Exception):
                engine.dispose()

    def take_lock(self) -> str | None:
        return self._run(self._take)

    def renew_lock(self) -> bool:
        return self._run(self._renew)

    def release_lock(self) -> bool:
        if self._engine is None:
            return False
        lock = self.lock_table
        release = sa.delete(lock).where(lock.c.app == self.app_name, lock.c.holder == self.holder)
        with self._engine.begin() as connection:
            return bool(connection.execute(release).rowcount)

    def read_holder(self) -> str | None:
        lock = self.lock_table
        query = sa.select(lock.c.holder).where(lock.c.app == self.app_name)
        holder = self._run(lambda connection: connection.execute(query).scalar())
        return None if holder is None else str(holder)

    # ---- The state --------------------------------------------------------------------

    def load_state(self) -> dict[str, EntryState]:
        columns = self.entries_table.c
        query = sa.select(columns.name, columns.last_run_at, columns.total_run_count, columns.schedule).where(
            columns.app == self.app_name
        )
        try:
            rows = self._run(lambda connection: list(connection.execute(query)))
        except CONNECTION_ERRORS as exc:
            raise self.unavailable(exc) from exc
        return {
            name: EntryState(datetime.fromtimestamp(float(last), tz=UTC), int(count), str(schedule))
            for name, last, count, schedule in rows
        }

    def save_state(self, name: str, state: EntryState | None) -> None:
        table = self.entries_table

        def record(connection: sa.Connection) -> bool:
            if not self._renew(connection):
                return False  # the transaction rolls back: nothing written
            connection.execute(sa.delete(table).where(table.c.app == self.app_name, table.c.name == name))
            if state is not None:
                row = {
                    "app": self.app_name,
                    "name": name,
                    "last_run_at": state.last_run_at.timestamp(),
                    "total_run_count": state.total_run_count,
                    "schedule": state.schedule,
                }
                connection.execute(sa.insert(table).values(row))
            return True

        try:
            is_ours = self._run(record)
        except CONNECTION_ERRORS as exc:
            raise self.unavailable(exc) from exc
        if not is_ours:
            raise self.lost_lock()

    # ---- Statements -------------------------------------------------------------------

    def _clock(self) -> sa.ColumnElement[float]:
        """The database's clock, in seconds since the epoch."""
        dialect = "mysql" if self.backend_name == "mariadb" else self.backend_name
        return sa.literal_column(_CLOCKS[dialect], sa.Double())

    def _take(self, connection: sa.Connection) -> str | None:
        """Take the lock if it is free, lapsed or ours; return who holds it now (None: nobody)."""
        lock = self.lock_table
        clock = self._clock()
        row = {"app": self.app_name, "holder": self.holder, "expires_at": clock + self.lock_seconds}
        is_free = sa.or_(lock.c.expires_at < clock, lock.c.holder == self.holder)
        statement: sa.Executable
        if self.backend_name in ("mysql", "mariadb"):
            insert = mysql.insert(lock).values(row)
            # MySQL assigns left to right: once holder is ours, expires_at follows it.
            statement = insert.on_duplicate_key_update(
                [
                    ("holder", sa.case((is_free, insert.inserted.holder), else_=lock.c.holder)),
                    (
                        "expires_at",
                        sa.case((lock.c.holder == self.holder, insert.inserted.expires_at), else_=lock.c.expires_at),
                    ),
                ]
            )
        else:
            dialect_insert = postgresql.insert if self.backend_name == "postgresql" else sqlite.insert
            upsert = dialect_insert(lock).values(row)
            statement = upsert.on_conflict_do_update(
                index_elements=[lock.c.app],
                set_={"holder": upsert.excluded.holder, "expires_at": upsert.excluded.expires_at},
                where=is_free,
            )
        connection.execute(statement)
        # Read in the same transaction, after the upsert locked the row: the answer is current.
        holder = connection.execute(sa.select(lock.c.holder).where(lock.c.app == self.app_name)).scalar()
        return None if holder is None else str(holder)

    def _renew(self, connection: sa.Connection) -> bool:
        """Extend this beat's lease; False when the lock is no longer this beat's."""
        lock = self.lock_table
        statement = (
            sa.update(lock)
            .where(lock.c.app == self.app_name, lock.c.holder == self.holder)
            .values(expires_at=self._clock() + self.lock_seconds)
        )
        return connection.execute(statement).rowcount > 0

    # ---- Connections ------------------------------------------------------------------

    def _create_engine(self) -> sa.Engine:
        options: dict[str, object] = {"pool_pre_ping": True}
        if self.backend_name == "sqlite":
            options["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT}
        return create_engine(self.db_url, mask_url(self.url), **options)

    def _create_tables(self) -> None:
        metadata = self.entries_table.metadata
        try:
            metadata.create_all(self._store(), checkfirst=True)
        except sa_exc.DBAPIError:
            # Another beat may have created them between our check and our CREATE.
            inspector = sa.inspect(self._store())
            if not all(inspector.has_table(name) for name in (ENTRIES_TABLE, LOCK_TABLE)):
                raise

    def _run(self, operation: Callable[[sa.Connection], T]) -> T:
        """Run ``operation`` in one transaction; try again when the database fails it.

        Deadlocks, lock waits and dropped connections alike roll the transaction back, so
        running it again is safe; what still fails after :data:`RETRYING`'s tries raises.
        """

        def transaction() -> T:
            with self._store().begin() as connection:
                return operation(connection)

        return RETRYING.run(transaction, on_retry=_log_retry)

    def _store(self) -> sa.Engine:
        assert self._engine is not None, "open() first"
        return self._engine

    def unavailable(self, exc: BaseException) -> BackendUnavailableError:
        return BackendUnavailableError(
            f"beat's schedule store: cannot reach the database at {self.masked_url} ({first_line(exc)}); "
            f"{self._advice()}"
        )

    def _advice(self) -> str:
        return check_advice(self.db_url, self.backend_name)


def _log_retry(exc: BaseException, delay: float) -> None:
    logger.debug("beat: the database failed a statement (%s); retrying in %.1fs", first_line(exc), delay)


def store_url(app: App) -> str:
    """Where the scheduler keeps its state: ``beat_scheduler_url``, else a ``db+...`` result backend."""
    configured = app.conf["beat_scheduler_url"]
    backend = str(app.conf["result_backend"] or "")
    url = str(configured) if configured else backend
    advice = 'set beat_scheduler_url = "db+postgresql://user:password@host/dbname" (or another SQLAlchemy URL)'
    if not configured and not backend.startswith("db+"):
        raise ConfigError(
            f"the database scheduler keeps its state in a database, but beat_scheduler_url is unset and "
            f"the result_backend is {mask_url(backend)!r}, not a db+ URL; {advice}"
        )
    try:
        sqlalchemy_url(url)
    except ConfigError as exc:
        where = "beat_scheduler_url" if configured else "the result_backend"
        raise ConfigError(f"the database scheduler cannot use {where} {mask_url(url)!r} ({exc}); {advice}") from None
    return url


__all__ = ["DatabaseScheduler", "beat_tables", "store_url"]
