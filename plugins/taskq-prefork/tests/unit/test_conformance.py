"""The prefork pool against the pool conformance suite."""

from __future__ import annotations

import pytest

from taskq.drivers.pool import Pool
from taskq.testing.conformance import PoolContract
from taskq_prefork.pool import PreforkPool


class TestPreforkPool(PoolContract):
    @pytest.fixture
    def pool_class(self) -> type[Pool]:
        return PreforkPool
