"""taskq-eventlet as a plugin: a cheap plugin module offering the eventlet pool."""

from __future__ import annotations

from taskq.testing.conformance import PluginContract


class TestEventletPlugin(PluginContract):
    entry_point = "eventlet"
    distribution = "taskq-eventlet"
    offers = {"pools": ["eventlet"]}
