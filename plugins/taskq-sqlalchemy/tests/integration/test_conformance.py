"""The database backend passes the conformance kit on PostgreSQL, MariaDB and SQLite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from taskq.drivers.backend import ResultBackend
from taskq.testing.conformance import BackendForkSafetyContract, KeyValueStoreContract, ResultBackendContract
from taskq.testing.conformance.backend import BackendFactory
from taskq_sqlalchemy.backend import DatabaseBackend


class TestDatabaseBackend(ResultBackendContract, KeyValueStoreContract, BackendForkSafetyContract):
    @pytest.fixture
    def backend(self, db_url: str, table_name: str, drop_table: None) -> Iterator[DatabaseBackend]:
        backend = DatabaseBackend(db_url, {"table": table_name})
        yield backend
        backend.close()

    @pytest.fixture
    def make_backend(self, db_url: str, table_name: str, drop_table: None) -> Iterator[BackendFactory]:
        made: list[DatabaseBackend] = []

        def make(expires: float | None = None) -> ResultBackend:
            made.append(DatabaseBackend(db_url, {"table": table_name}, expires=expires))
            return made[-1]

        yield make
        for backend in made:
            backend.close()
