"""taskq-thread as a plugin: a cheap plugin module offering the thread pool."""

from __future__ import annotations

from taskq.testing.conformance import PluginContract


class TestThreadPlugin(PluginContract):
    entry_point = "thread"
    distribution = "taskq-thread"
    offers = {"pools": ["thread", "threads"]}
