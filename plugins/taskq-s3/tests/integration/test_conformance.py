"""The S3 result backend passes the conformance kit against a real S3 API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from taskq.drivers.backend import ResultBackend
from taskq.testing.conformance import BackendForkSafetyContract, KeyValueStoreContract, ResultBackendContract
from taskq.testing.conformance.backend import BackendFactory
from taskq_s3.backend import S3Backend


class TestS3Backend(ResultBackendContract, KeyValueStoreContract, BackendForkSafetyContract):
    @pytest.fixture
    def backend(self, url: str, options: dict[str, object]) -> Iterator[S3Backend]:
        backend = S3Backend(url, options)
        yield backend
        backend.close()

    @pytest.fixture
    def make_backend(self, url: str, options: dict[str, object]) -> Iterator[BackendFactory]:
        made: list[S3Backend] = []

        def make(expires: float | None = None) -> ResultBackend:
            made.append(S3Backend(url, options, expires=expires))
            return made[-1]

        yield make
        for backend in made:
            backend.close()
