"""The memcached result backend passes the conformance kit, on a real memcached."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from taskq.drivers.backend import ResultBackend
from taskq.testing.conformance import BackendForkSafetyContract, KeyValueStoreContract, ResultBackendContract
from taskq.testing.conformance.backend import BackendFactory
from taskq_memcached.backend import MemcachedBackend


class TestMemcachedBackend(ResultBackendContract, KeyValueStoreContract, BackendForkSafetyContract):
    @pytest.fixture
    def backend(self, memcached_url: str) -> Iterator[MemcachedBackend]:
        backend = MemcachedBackend(memcached_url)
        yield backend
        backend.close()

    @pytest.fixture
    def make_backend(self, memcached_url: str) -> Iterator[BackendFactory]:
        made: list[MemcachedBackend] = []

        def make(expires: float | None = None) -> ResultBackend:
            made.append(MemcachedBackend(memcached_url, expires=expires))
            return made[-1]

        yield make
        for backend in made:
            backend.close()
