"""taskq-gevent as a plugin: a cheap plugin module offering the gevent pool."""

from __future__ import annotations

from taskq.testing.conformance import PluginContract


class TestGeventPlugin(PluginContract):
    entry_point = "gevent"
    distribution = "taskq-gevent"
    offers = {"pools": ["gevent"]}
