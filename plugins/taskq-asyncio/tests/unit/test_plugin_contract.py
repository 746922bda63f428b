"""taskq-asyncio as a plugin: a cheap plugin module offering the asyncio pool."""

from __future__ import annotations

from taskq.testing.conformance import PluginContract


class TestAsyncioPlugin(PluginContract):
    entry_point = "asyncio"
    distribution = "taskq-asyncio"
    offers = {"pools": ["asyncio"]}
