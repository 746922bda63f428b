"""The MongoDB result backend passes the conformance kit, on a real MongoDB-protocol server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from taskq.drivers.backend import ResultBackend
from taskq.testing.conformance import BackendForkSafetyContract, KeyValueStoreContract, ResultBackendContract
from taskq.testing.conformance.backend import BackendFactory
from taskq_mongo.backend import MongoBackend


class TestMongoBackend(ResultBackendContract, KeyValueStoreContract, BackendForkSafetyContract):
    @pytest.fixture
    def backend(self, mongo_url: str) -> Iterator[MongoBackend]:
        backend = MongoBackend(mongo_url)
        yield backend
        backend.close()

    @pytest.fixture
    def make_backend(self, mongo_url: str) -> Iterator[BackendFactory]:
        made: list[MongoBackend] = []

        def make(expires: float | None = None) -> ResultBackend:
            made.append(MongoBackend(mongo_url, expires=expires))
            return made[-1]

        yield make
        for backend in made:
            backend.close()
