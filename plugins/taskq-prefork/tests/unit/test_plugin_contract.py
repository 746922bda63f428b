"""taskq-prefork as a plugin: a cheap plugin module offering the prefork pool."""

from __future__ import annotations

from taskq.testing.conformance import PluginContract


class TestPreforkPlugin(PluginContract):
    entry_point = "prefork"
    distribution = "taskq-prefork"
    offers = {"pools": ["prefork"]}
