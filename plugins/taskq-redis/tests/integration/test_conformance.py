"""The Redis transport (multi-process contract included) and result backend pass the kit, on real Redis."""

from __future__ import annotations

from collections.abc import Iterator

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
from taskq_redis.backend import RedisBackend
from taskq_redis.transport import RedisTransport

pytestmark = pytest.mark.integration


class TestRedisTransport(MultiProcessTransportContract, TransportForkSafetyContract):
    @pytest.fixture
    def transport(self, redis_url: str, prefix: str) -> Iterator[RedisTransport]:
        transport = RedisTransport(redis_url, {"global_keyprefix": prefix})
        transport.connect()
        yield transport
        transport.close()


class TestRedisBackend(ResultBackendContract, KeyValueStoreContract, BackendForkSafetyContract):
    @pytest.fixture
    def backend(self, redis_url: str, prefix: str) -> Iterator[RedisBackend]:
        backend = RedisBackend(redis_url, {"global_keyprefix": prefix})
        yield backend
        backend.close()

    @pytest.fixture
    def make_backend(self, redis_url: str, prefix: str) -> Iterator[BackendFactory]:
        made: list[RedisBackend] = []

        def make(expires: float | None = None) -> ResultBackend:
            made.append(RedisBackend(redis_url, {"global_keyprefix": prefix}, expires=expires))
            return made[-1]

        yield make
        for backend in made:
            backend.close()
