"""taskq-security as a plugin: a cheap plugin module that offers the security command and hooks."""

from __future__ import annotations

from taskq.testing.conformance import PluginContract


class TestSecurityPlugin(PluginContract):
    entry_point = "security"
    distribution = "taskq-security"
    offers = {"commands": ["security"]}
