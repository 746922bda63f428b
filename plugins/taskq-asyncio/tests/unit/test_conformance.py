"""The asyncio pool against the pool conformance suite (given coroutine jobs)."""

from __future__ import annotations

import pytest

from taskq.drivers.pool import Pool
from taskq.testing.conformance import PoolContract
from taskq_asyncio.pool import AsyncioPool


class TestAsyncioPool(PoolContract):
    @pytest.fixture
    def pool_class(self) -> type[Pool]:
        return AsyncioPool
