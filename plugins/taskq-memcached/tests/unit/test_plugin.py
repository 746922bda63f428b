"""The plugin module registers the backend by import string and imports nothing heavy."""

from __future__ import annotations

import importlib
import subprocess
import sys

from taskq_memcached import plugin


def test_plugin_registers_the_backend_under_both_schemes() -> None:
    backends = plugin.taskq_register_result_backends()
    assert backends == {
        "cache+memcached": "taskq_memcached.backend:MemcachedBackend",
        "memcached": "taskq_memcached.backend:MemcachedBackend",
    }
    module, _, name = backends["memcached"].partition(":")
    assert hasattr(importlib.import_module(module), name)


def test_importing_the_plugin_module_does_not_import_the_backend_or_pymemcache() -> None:
    code = (
        "import sys, taskq_memcached.plugin\n"
        "print(','.join(m for m in ('taskq_memcached.backend', 'pymemcache') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == ""
