"""The thread pool against the pool conformance suite."""

from __future__ import annotations

import pytest

from taskq.drivers.pool import Pool
from taskq.testing.conformance import PoolContract
from taskq_thread.pool import ThreadPool


class TestThreadPool(PoolContract):
    @pytest.fixture
    def pool_class(self) -> type[Pool]:
        return ThreadPool
