"""The eventlet plugin and pool against the green pool contract: cheap plugin module,
patching only when chosen, and the pool on its own hub thread in an unpatched process
(this one: nothing here patches)."""

from __future__ import annotations

from collections.abc import Callable

import eventlet
import pytest

from taskq.drivers.support.greenpool import GreenPool
from taskq.testing.conformance import GreenPoolContract
from taskq_eventlet.pool import EventletPool


class TestEventletPool(GreenPoolContract):
    @pytest.fixture
    def pool_class(self) -> type[GreenPool]:
        return EventletPool

    @pytest.fixture
    def green_sleep(self) -> Callable[[float], object]:
        return eventlet.sleep
