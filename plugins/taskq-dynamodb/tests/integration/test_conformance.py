"""The DynamoDB result backend passes the conformance kit against a real DynamoDB API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from taskq.drivers.backend import ResultBackend
from taskq.testing.conformance import BackendForkSafetyContract, KeyValueStoreContract, ResultBackendContract
from taskq.testing.conformance.backend import BackendFactory
from taskq_dynamodb.backend import DynamoDBBackend


class TestDynamoDBBackend(ResultBackendContract, KeyValueStoreContract, BackendForkSafetyContract):
    @pytest.fixture
    def backend(self, table_url: str) -> Iterator[DynamoDBBackend]:
        backend = DynamoDBBackend(table_url)
        yield backend
        backend.close()

    @pytest.fixture
    def make_backend(self, table_url: str) -> Iterator[BackendFactory]:
        made: list[DynamoDBBackend] = []

        def make(expires: float | None = None) -> ResultBackend:
            made.append(DynamoDBBackend(table_url, expires=expires))
            return made[-1]

        yield make
        for backend in made:
            backend.close()
