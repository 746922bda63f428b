"""taskq-memcached as a plugin: a cheap plugin module offering the memcached result backend."""

from __future__ import annotations

from taskq.testing.conformance import PluginContract


class TestMemcachedPlugin(PluginContract):
    entry_point = "memcached"
    distribution = "taskq-memcached"
    offers = {"result_backends": ["cache+memcached", "memcached"]}
