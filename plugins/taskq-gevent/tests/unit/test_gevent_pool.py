"""The gevent plugin and pool against the green pool contract: cheap plugin module, patching
only when chosen, and the pool on its own hub thread in an unpatched process (this one:
nothing here patches)."""

from __future__ import annotations

from collections.abc import Callable

import gevent
import pytest

from taskq.drivers.support.greenpool import GreenPool
from taskq.testing.conformance import GreenPoolContract
from taskq_gevent.pool import GeventPool


class TestGeventPool(GreenPoolContract):
    @pytest.fixture
    def pool_class(self) -> type[GreenPool]:
        return GeventPool

    @pytest.fixture
    def green_sleep(self) -> Callable[[float], object]:
        return gevent.sleep
