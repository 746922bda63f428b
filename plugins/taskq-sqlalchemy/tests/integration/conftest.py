"""Fixtures for the real databases of SERVICES.md: PostgreSQL, MariaDB, and SQLite in a tmp dir.

A server that cannot be reached fails the test with the command that starts it. Each test
gets its own table name, dropped afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from taskq_sqlalchemy.backend import DatabaseBackend, results_table, sqlalchemy_url

SERVERS = {
    "postgresql": (
        "db+postgresql://postgres@127.0.0.1:5432/test",
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    ),
    "mariadb": (
        "db+mysql+pymysql://root@127.0.0.1:3306/test",
        "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
    ),
}


@pytest.fixture(params=["postgresql", "mariadb", "sqlite"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL per database kind; the server is checked once it is asked for."""
    if request.param == "sqlite":
        return f"db+sqlite:///{tmp_path}/taskq.db"
    return server_url(request.param)


@pytest.fixture
def postgresql_url() -> str:
    return server_url("postgresql")


def server_url(name: str) -> str:
    """The URL of a running server, or a failure that says how to start it."""
    url, start = SERVERS[name]
    engine = sa.create_engine(sqlalchemy_url(url))
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("select 1"))
    except sa.exc.DBAPIError as exc:
        pytest.fail(f"cannot reach {name} at {url} ({exc.orig}); start it with: {start}")
    finally:
        engine.dispose()
    return url


@pytest.fixture
def table_name() -> str:
    return f"taskq_test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def drop_table(db_url: str, table_name: str) -> Iterator[None]:
    """Drop this test's table when the test ends."""
    yield
    engine = sa.create_engine(sqlalchemy_url(db_url))
    try:
        results_table(table_name).drop(engine, checkfirst=True)
    finally:
        engine.dispose()


@pytest.fixture
def backend(db_url: str, table_name: str, drop_table: None) -> Iterator[DatabaseBackend]:
    backend = DatabaseBackend(db_url, {"table": table_name})
    yield backend
    backend.close()
