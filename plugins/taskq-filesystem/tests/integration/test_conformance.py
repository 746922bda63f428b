"""The filesystem transport (across processes too) and result backend pass the conformance kit, on a real directory."""

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
from taskq_filesystem.backend import FilesystemBackend
from taskq_filesystem.transport import FilesystemTransport


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"file://{tmp_path}/taskq"


class TestFilesystemTransport(MultiProcessTransportContract, TransportForkSafetyContract):
    @pytest.fixture
    def transport(self, url: str) -> Iterator[FilesystemTransport]:
        transport = FilesystemTransport(url)
        transport.connect()
        yield transport
        transport.close()


class TestFilesystemBackend(ResultBackendContract, KeyValueStoreContract, BackendForkSafetyContract):
    @pytest.fixture
    def backend(self, url: str) -> Iterator[FilesystemBackend]:
        backend = FilesystemBackend(url)
        yield backend
        backend.close()

    @pytest.fixture
    def make_backend(self, url: str) -> Iterator[BackendFactory]:
        made: list[FilesystemBackend] = []

        def make(expires: float | None = None) -> ResultBackend:
            made.append(FilesystemBackend(url, expires=expires))
            return made[-1]

        yield make
        for backend in made:
            backend.close()
