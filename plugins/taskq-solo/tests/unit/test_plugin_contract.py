"""taskq-solo as a plugin: a cheap plugin module offering the solo pool."""

from __future__ import annotations

from taskq.testing.conformance import PluginContract


class TestSoloPlugin(PluginContract):
    entry_point = "solo"
    distribution = "taskq-solo"
    offers = {"pools": ["solo"]}
