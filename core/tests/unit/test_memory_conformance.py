"""The built-in memory transport and result backend pass the conformance kit."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from taskq.builtins.memory_drivers import MemoryBackend, MemoryTransport
from taskq.drivers.backend import ResultBackend
from taskq.testing.conformance import KeyValueStoreContract, ResultBackendContract, TransportContract
from taskq.testing.conformance.backend import BackendFactory


class TestMemoryTransport(TransportContract):
    @pytest.fixture
    def transport(self) -> Iterator[MemoryTransport]:
        transport = MemoryTransport(f"memory://{uuid.uuid4().hex}")
        transport.connect()
        yield transport
        transport.close()


class TestMemoryBackend(ResultBackendContract, KeyValueStoreContract):
    @pytest.fixture
    def url(self) -> str:
        return f"memory://{uuid.uuid4().hex}"

    @pytest.fixture
    def backend(self, url: str) -> MemoryBackend:
        return MemoryBackend(url)

    @pytest.fixture
    def make_backend(self, url: str) -> BackendFactory:
        def make(expires: float | None = None) -> ResultBackend:
            return MemoryBackend(url, expires=expires)

        return make
