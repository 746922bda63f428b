"""The database result backend: one key/value table on PostgreSQL, MySQL/MariaDB or SQLite.

:class:`DatabaseBackend` is a :class:`~taskq.drivers.backend.KeyValueBackend`: results,
groups, chord counters, revocations and worker heartbeats are rows of one table
(``taskq_results`` by default) keyed as Celery keys them in Redis
(``celery-task-meta-<id>``), holding the serialized Celery record. Columns:

* ``key`` — the key, primary key;
* ``value`` — the encoded record (``NULL`` for a counter);
* ``counter`` — the integer of a counter key (chords, revocation and worker logs);
* ``expires_at`` — milliseconds since the epoch after which the row is dead (``NULL``:
  kept until deleted); indexed, so expired rows are cheap to find and delete.

Expired rows are invisible at once (every read filters on ``expires_at``) and deleted
opportunistically: a process that writes deletes them at most once every
``cleanup_interval`` seconds (5 minutes by default); ``taskq cleanup`` deletes them on
demand. Counters are one atomic statement: ``INSERT ... ON CONFLICT DO UPDATE SET
counter = counter + 1 RETURNING counter`` on PostgreSQL and SQLite, ``INSERT ... ON
DUPLICATE KEY UPDATE counter = LAST_INSERT_ID(counter + 1)`` on MySQL/MariaDB.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar, Unpack

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import mysql, postgresql, sqlite

from taskq.drivers.backend import BackendCapabilities, BackendSettings, KeyValueBackend
from taskq.drivers.support.connections import current_pid, fork_gate, mask_url
from taskq.drivers.support.retrying import RetryPolicy
from taskq.errors import BackendUnavailableError, ConfigError

logger = logging.getLogger(__name__)

#: Table used when the ``table`` option is not given.
DEFAULT_TABLE = "taskq_results"
#: Seconds between two deletions of expired rows by one process; 0 turns them off.
CLEANUP_INTERVAL = 300.0
#: Lost connections, deadlocks and SQLite's "database is locked" alike: the transaction was
#: rolled back, so running it again is safe. Five tries in all, 0.1 s apart, doubling.
RETRYING = RetryPolicy((sa_exc.OperationalError, sa_exc.InterfaceError), attempts=5, first_delay=0.1)
#: Keys per ``SELECT ... WHERE key IN (...)``.
MGET_CHUNK = 500
#: Seconds SQLite waits for a lock held by another connection.
SQLITE_BUSY_TIMEOUT = 30.0

#: The driver used when a URL names none: the ones the extras install.
DEFAULT_DRIVERS = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql", "mariadb": "mariadb+pymysql"}
SUPPORTED_BACKENDS = ("postgresql", "mysql", "mariadb", "sqlite")

#: What installs each driver's DB-API module (the extras install the default drivers).
DRIVER_INSTALL = {
    "psycopg": "pip install 'taskq-sqlalchemy[postgresql]'",
    "psycopg2": "pip install psycopg2-binary",
    "pymysql": "pip install 'taskq-sqlalchemy[mysql]'",
    "mysqldb": "pip install mysqlclient",
}

T = TypeVar("T")


def sqlalchemy_url(url: str) -> sa.URL:
    """The SQLAlchemy URL of a Celery-style ``db+...`` URL (psycopg 3 or PyMySQL by default)."""
    try:
        parsed = sa.make_url(url.removeprefix("db+"))
    except sa_exc.ArgumentError as exc:
        raise ConfigError(
            f"cannot read the result backend URL {mask_url(url)!r}; write it as "
            f"db+postgresql://user:password@host/dbname, db+mysql+pymysql://user@host/dbname "
            f"or db+sqlite:///path/to/file.db"
        ) from exc
    if parsed.get_backend_name() not in SUPPORTED_BACKENDS:
        raise ConfigError(
            f"the database result backend supports {', '.join(SUPPORTED_BACKENDS)}; "
            f"{mask_url(url)!r} names {parsed.get_backend_name()!r}"
        )
    if parsed.drivername in DEFAULT_DRIVERS:
        parsed = parsed.set(drivername=DEFAULT_DRIVERS[parsed.drivername])
    return parsed


def create_engine(url: sa.URL, shown: str, **options: object) -> sa.Engine:
    """:func:`sqlalchemy.create_engine`, with a one-line ``ConfigError`` for a driver not installed.

    ``shown`` is the URL as the user wrote it, masked, for the message.
    """
    try:
        return sa.create_engine(url, **options)
    except ImportError as exc:
        driver = url.get_driver_name()
        install = DRIVER_INSTALL.get(driver, f"pip install {driver}")
        raise ConfigError(
            f"the database driver {driver!r} for {shown} is not installed ({exc}); install it with: {install}"
        ) from None


def results_table(name: str, schema: str | None = None, metadata: sa.MetaData | None = None) -> sa.Table:
    """The key/value table's definition."""
    return sa.Table(
        name,
        metadata or sa.MetaData(),
        # Binary collation on MySQL: keys are case-sensitive, as they are everywhere else.
        sa.Column(
            "key",
            sa.String(255).with_variant(
                mysql.VARCHAR(255, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
            ),
            primary_key=True,
        ),
        sa.Column("value", sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb"), nullable=True),
        sa.Column("counter", sa.BigInteger(), nullable=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=True, index=True),
        schema=schema,
    )


def first_line(exc: BaseException) -> str:
    """The first line of a database error, for messages that fit on one line."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip()
    return text.splitlines()[0] if text else type(orig).__name__


#: MySQL/MariaDB error codes for refused credentials: access denied (to the server, to the database).
_MYSQL_REFUSED = frozenset({1044, 1045, 1698})
#: How PostgreSQL words refused credentials (the connection errors carry no SQLSTATE).
_POSTGRES_REFUSED = ("password authentication failed", "no password supplied", "pg_hba.conf", "authentication failed")


def credentials_refused(exc: BaseException) -> bool:
    """Whether the database refused the user name or password (retrying cannot help)."""
    orig = getattr(exc, "orig", None) or exc
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and args[0] in _MYSQL_REFUSED:
        return True
    text = str(orig)
    return any(words in text for words in _POSTGRES_REFUSED) or (
        "FATAL:" in text and "role" in text and "does not exist" in text
    )


def check_advice(url: sa.URL, backend_name: str) -> str:
    """What to check, and the command that checks it, when the database at ``url`` fails."""
    if backend_name == "postgresql":
        check = url.set(drivername="postgresql").render_as_string(hide_password=True)
        return f"is PostgreSQL running and does the database exist? Check with: psql '{check}' -c 'select 1'"
    if backend_name in ("mysql", "mariadb"):
        return (
            f"is MariaDB/MySQL running and does the database exist? Check with: "
            f"mariadb -h {url.host or 'localhost'} -P {url.port or 3306} -u {url.username or 'root'} -p "
            f"{url.database or ''} -e 'select 1'"
        )
    return f"does the folder exist and may this user write there? Check with: sqlite3 {url.database} 'select 1'"


class DatabaseBackend(KeyValueBackend):
    """Results in a PostgreSQL, MySQL/MariaDB or SQLite table, through SQLAlchemy 2.

    Options (``result_backend_transport_options``): ``table`` (default
    ``taskq_results``), ``schema`` (a PostgreSQL schema or MySQL database),
    ``cleanup_interval`` in seconds, ``engine_options`` passed to
    :func:`sqlalchemy.create_engine`.
    """

    capabilities = BackendCapabilities(push_wait=False, native_join=True, chord_counter=True, expiry=True)

    def __init__(
        self,
        url: str,
        options: Mapping[str, object] | None = None,
        *,
        table: str | None = None,
        schema: str | None = None,
        **settings: Unpack[BackendSettings],
    ) -> None:
        super().__init__(url, options, **settings)
        self.db_url = sqlalchemy_url(url)
        self.backend_name = self.db_url.get_backend_name()
        self.table_name = table or str(self.options.get("table") or DEFAULT_TABLE)
        schema_option = schema or self.options.get("schema")
        self.schema = str(schema_option) if schema_option else None
        self.table = results_table(self.table_name, self.schema)
        self.cleanup_interval = float(str(self.options.get("cleanup_interval", CLEANUP_INTERVAL)))
        engine_options = self.options.get("engine_options") or {}
        if not isinstance(engine_options, Mapping):
            raise ConfigError(f"engine_options must be a table of create_engine() arguments, not {engine_options!r}")
        self._engine_options: dict[str, object] = dict(engine_options)
        self._engine: sa.Engine | None = None
        self._pid = current_pid()
        self._lock = threading.Lock()
        self._has_table = False
        self._next_cleanup = 0.0  # time.monotonic() of the next opportunistic clean-up

    # ---- Connections ------------------------------------------------------------------

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    @property
    def engine(self) -> sa.Engine:
        """This process's engine; in a forked child the parent's pool is dropped first."""
        engine = self._engine
        pid = current_pid()
        if engine is not None and self._pid != pid:
            # Forked: the pooled connections belong to the parent. Forget them without
            # closing them (closing would end the parent's sessions), as SQLAlchemy documents.
            engine.dispose(close=False)
            self._pid = pid
        if engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = self._create_engine()
                    self._pid = pid
                engine = self._engine
        return engine

    def _create_engine(self) -> sa.Engine:
        options: dict[str, object] = {}
        if self.backend_name == "sqlite":
            options["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT}
        options.update(self._engine_options)
        engine = create_engine(self.db_url, self.masked_url, **options)
        if self.backend_name == "sqlite":

            @sa.event.listens_for(engine, "connect")
            def _wal(dbapi_connection: object, _record: object) -> None:
                # WAL lets readers go on while a worker writes.
                cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]  # a DB-API connection
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.close()

        return engine

    def _advice(self) -> str:
        return check_advice(self.db_url, self.backend_name)

    def _unavailable(self, exc: BaseException) -> BackendUnavailableError | ConfigError:
        """The error to raise for ``exc``: refused credentials are a ConfigError, never retried."""
        if credentials_refused(exc):
            return ConfigError(
                f"the result database at {self.masked_url} refused the credentials ({first_line(exc)}); "
                f"fix the user name and password in result_backend"
            )
        return BackendUnavailableError(
            f"cannot reach the result database at {self.masked_url} ({first_line(exc)}); {self._advice()}"
        )

    def create_tables(self) -> bool:
        """Create the table and its index when missing; return whether they were created.

        Raises:
            BackendUnavailableError: the database cannot be reached (no retries: at start
                one clear message beats a slow one).
        """
        with fork_gate:  # no fork halfway through a statement (SQLite's file locks; the pool's state)
            return self._create_tables()

    def _create_tables(self) -> bool:
        try:
            connection = self.engine.connect()
        except sa_exc.DBAPIError as exc:
            raise self._unavailable(exc) from exc
        with connection:
            try:
                if sa.inspect(connection).has_table(self.table_name, schema=self.schema):
                    self._has_table = True
                    return False
                self.table.create(connection)
                connection.commit()
            except sa_exc.DBAPIError as exc:
                # Another process may have created it between our check and our CREATE.
                connection.rollback()
                if not sa.inspect(connection).has_table(self.table_name, schema=self.schema):
                    raise self._unavailable(exc) from exc
                self._has_table = True
                return False
        logger.info("created table %s in %s", self.table_name, self.masked_url)
        self._has_table = True
        return True

    def drop_tables(self) -> None:
        """Drop the table (tests and tear-downs)."""
        self.table.drop(self.engine, checkfirst=True)
        self._has_table = False

    def _run(self, what: str, operation: Callable[[sa.Connection], T]) -> T:
        """Run ``operation`` in a transaction; retry with backoff when the database fails."""
        if not self._has_table:
            self.create_tables()

        def transaction() -> T:
            with fork_gate, self.engine.begin() as connection:  # no fork halfway through a transaction
                return operation(connection)

        def retrying(exc: BaseException, delay: float) -> None:
            logger.warning(
                "result database %s: %s failed (%s); retrying in %.1fs", self.masked_url, what, first_line(exc), delay
            )

        return RETRYING.run(transaction, on_retry=retrying, give_up=self._unavailable)

    # ---- Storage primitives ------------------------------------------------------------

    @staticmethod
    def _now_ms() -> int:
        return int(time.time() * 1000)

    def _expires_at(self, expires: float | None) -> int | None:
        return None if expires is None else self._now_ms() + int(expires * 1000)

    def _is_live(self, now_ms: int) -> sa.ColumnElement[bool]:
        column = self.table.c.expires_at
        return sa.or_(column.is_(None), column > now_ms)

    def get(self, key: str) -> bytes | None:
        return self.mget([key])[0]

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        columns = self.table.c

        def read(connection: sa.Connection) -> list[bytes | None]:
            now = self._now_ms()
            found: dict[str, bytes] = {}
            unique = list(dict.fromkeys(keys))
            for start in range(0, len(unique), MGET_CHUNK):
                chunk = unique[start : start + MGET_CHUNK]
                query = sa.select(columns.key, columns.value, columns.counter).where(
                    columns.key.in_(chunk), self._is_live(now)
                )
                for key, value, counter in connection.execute(query):
                    if value is not None:
                        found[key] = bytes(value)
                    elif counter is not None:
                        found[key] = str(counter).encode("ascii")
            return [found.get(key) for key in keys]

        return self._run("read", read)

    def set(self, key: str, value: bytes, *, expires: float | None = None) -> None:
        # Clean up first, so the expiry is counted from just before the write.
        self._clean_up_now_and_then()
        row = {"key": key, "value": value, "counter": None, "expires_at": self._expires_at(expires)}
        statement = self._upsert(row)
        self._run("write", lambda connection: connection.execute(statement))

    def _upsert(self, row: Mapping[str, object]) -> sa.Executable:
        columns = [name for name in row if name != "key"]
        if self.backend_name in ("mysql", "mariadb"):
            mysql_insert = mysql.insert(self.table).values(row)
            return mysql_insert.on_duplicate_key_update({name: mysql_insert.inserted[name] for name in columns})
        insert = (postgresql.insert if self.backend_name == "postgresql" else sqlite.insert)(self.table).values(row)
        return insert.on_conflict_do_update(
            index_elements=[self.table.c.key], set_={name: insert.excluded[name] for name in columns}
        )

    def delete(self, key: str) -> None:
        statement = sa.delete(self.table).where(self.table.c.key == key)
        self._run("delete", lambda connection: connection.execute(statement))

    def incr(self, key: str, *, expires: float | None = None) -> int:
        columns = self.table.c
        now = self._now_ms()
        expires_at = self._expires_at(expires)
        # A counter whose row expired starts again at 1, as a fresh key would.
        is_expired = sa.and_(columns.expires_at.is_not(None), columns.expires_at <= now)
        next_value = sa.case((is_expired, 1), else_=sa.func.coalesce(columns.counter, 0) + 1)
        row = {"key": key, "counter": 1, "expires_at": expires_at}
        if self.backend_name in ("mysql", "mariadb"):
            # No UPDATE ... RETURNING on MySQL: LAST_INSERT_ID(expr) hands this
            # connection the value its own statement wrote, still one atomic statement.
            mysql_insert = mysql.insert(self.table).values({**row, "counter": sa.func.last_insert_id(1)})
            mysql_statement = mysql_insert.on_duplicate_key_update(
                [("counter", sa.func.last_insert_id(next_value)), ("expires_at", expires_at)]
            )

            def increment_mysql(connection: sa.Connection) -> int:
                connection.execute(mysql_statement)
                return int(connection.execute(sa.select(sa.func.last_insert_id())).scalar_one())

            return self._run("increment", increment_mysql)
        insert = (postgresql.insert if self.backend_name == "postgresql" else sqlite.insert)(self.table).values(row)
        statement = insert.on_conflict_do_update(
            index_elements=[columns.key], set_={"counter": next_value, "expires_at": expires_at}
        ).returning(columns.counter)
        return self._run("increment", lambda connection: int(connection.execute(statement).scalar_one()))

    # ---- Expiry --------------------------------------------------------------------------

    def cleanup(self) -> int:
        """Delete the rows that have expired; return how many."""
        now = self._now_ms()
        statement = sa.delete(self.table).where(self.table.c.expires_at <= now)
        return self._run("clean-up", lambda connection: int(connection.execute(statement).rowcount))

    def _clean_up_now_and_then(self) -> None:
        """Delete expired rows if this process has not for ``cleanup_interval`` seconds."""
        if self.cleanup_interval <= 0:
            return
        if not self._has_table:
            self.create_tables()
        now = time.monotonic()
        if now < self._next_cleanup:
            return
        self._next_cleanup = now + self.cleanup_interval
        try:
            deleted = self.cleanup()
        except BackendUnavailableError as exc:
            logger.warning("could not delete expired results: %s", exc)
            return
        if deleted:
            logger.info("deleted %d expired rows from %s", deleted, self.table_name)

    def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            # In a forked child the connections are the parent's: leave them open.
            engine.dispose(close=self._pid == current_pid())


__all__ = ["DEFAULT_TABLE", "DatabaseBackend", "results_table", "sqlalchemy_url"]
