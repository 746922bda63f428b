"""The SQLite transport (across processes too) and result backend pass the conformance kit, on a real file."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest

from taskq.drivers.backend import ResultBackend
from taskq.drivers.transport import Transport
from taskq.testing.conformance import (
    BackendForkSafetyContract,
    EventLogContract,
    KeyValueStoreContract,
    MultiProcessTransportContract,
    ResultBackendContract,
    TransportForkSafetyContract,
)
from taskq.testing.conformance.backend import BackendFactory
from taskq_sqlite.backend import SqliteBackend
from taskq_sqlite.transport import SqliteTransport


class TestSqliteTransport(MultiProcessTransportContract, TransportForkSafetyContract, EventLogContract):
    @pytest.fixture
    def transport(self, url: str) -> Iterator[SqliteTransport]:
        transport = SqliteTransport(url)
        transport.connect()
        yield transport
        transport.close()

    def stored_events(self, transport: Transport) -> int:
        with sqlite3.connect(_path(transport)) as conn:
            (count,) = conn.execute("SELECT count(*) FROM taskq_events").fetchone()
        return int(count)

    def store_unreadable(self, transport: Transport, entries: list[bytes]) -> None:
        conn = sqlite3.connect(_path(transport))
        with conn:
            conn.executemany(
                "INSERT INTO taskq_events (sent_at, event) VALUES (0, CAST(? AS TEXT))", [(e,) for e in entries]
            )
        conn.close()


def _path(transport: Transport) -> str:
    assert isinstance(transport, SqliteTransport)
    return transport.path


class TestSqliteBackend(ResultBackendContract, KeyValueStoreContract, BackendForkSafetyContract):
    @pytest.fixture
    def backend(self, url: str) -> Iterator[SqliteBackend]:
        backend = SqliteBackend(url)
        yield backend
        backend.close()

    @pytest.fixture
    def make_backend(self, url: str) -> Iterator[BackendFactory]:
        made: list[SqliteBackend] = []

        def make(expires: float | None = None) -> ResultBackend:
            made.append(SqliteBackend(url, expires=expires))
            return made[-1]

        yield make
        for backend in made:
            backend.close()
