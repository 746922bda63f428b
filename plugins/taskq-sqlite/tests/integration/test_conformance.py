"""The SQLite transport (across processes too) and result backend pass the conformance kit, on a real file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq.drivers.backend import ResultBackend
from taskq.testing.conformance import (
    BackendForkSafetyContract,
    KeyValueStoreContract,
    MultiProcessTransportContract,
    ResultBackendContract,
    TransportForkSafetyContract,
)
from taskq.testing.conformance.backend import BackendFactory
from taskq_sqlite.backend import SqliteBackend
from taskq_sqlite.transport import SqliteTransport


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/taskq.db"


class TestSqliteTransport(MultiProcessTransportContract, TransportForkSafetyContract):
    @pytest.fixture
    def transport(self, url: str) -> Iterator[SqliteTransport]:
        transport = SqliteTransport(url)
        transport.connect()
        yield transport
        transport.close()


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
