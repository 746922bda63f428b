"""The solo pool against the pool conformance suite."""

from __future__ import annotations

import pytest

from taskq.drivers.pool import Pool
from taskq.testing.conformance import PoolContract
from taskq_solo.pool import SoloPool


class TestSoloPool(PoolContract):
    @pytest.fixture
    def pool_class(self) -> type[Pool]:
        return SoloPool
