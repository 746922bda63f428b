"""The filesystem transport (across processes too) and result backend pass the conformance kit, on a real directory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

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
from taskq_filesystem import _logs
from taskq_filesystem.backend import FilesystemBackend
from taskq_filesystem.transport import FilesystemTransport


class TestFilesystemTransport(MultiProcessTransportContract, TransportForkSafetyContract, EventLogContract):
    @pytest.fixture
    def transport(self, url: str) -> Iterator[FilesystemTransport]:
        transport = FilesystemTransport(url)
        transport.connect()
        yield transport
        transport.close()

    def stored_events(self, transport: Transport) -> int:
        folder = _events_folder(transport)
        return sum(len(_logs.lines_of((Path(folder) / name).read_bytes())) for name in os.listdir(folder))

    def store_unreadable(self, transport: Transport, entries: list[bytes]) -> None:
        assert isinstance(transport, FilesystemTransport)
        files = _logs.LogFiles(_events_folder(transport), os.path.join(transport.root, "tmp"))
        files.append(b"".join(entry + b"\n" for entry in entries), len(entries))


def _events_folder(transport: Transport) -> str:
    assert isinstance(transport, FilesystemTransport)
    return os.path.join(transport.root, _logs.EVENTS)


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
