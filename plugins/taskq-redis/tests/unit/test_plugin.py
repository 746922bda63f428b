"""The plugin module registers both drivers by import string and imports neither."""

from __future__ import annotations

import importlib
import subprocess
import sys

from taskq_redis import plugin


def test_plugin_registers_the_redis_transport_and_backend_for_every_scheme() -> None:
    transports = plugin.taskq_register_transports()
    backends = plugin.taskq_register_result_backends()
    assert set(transports) == set(backends) == {"redis", "rediss", "sentinel", "redis+socket"}
    assert set(transports.values()) == {"taskq_redis.transport:RedisTransport"}
    assert set(backends.values()) == {"taskq_redis.backend:RedisBackend"}
    for target in (*transports.values(), *backends.values()):
        module, _, name = target.partition(":")
        assert hasattr(importlib.import_module(module), name)


def test_importing_the_plugin_module_imports_neither_the_drivers_nor_redis() -> None:
    code = (
        "import sys, taskq_redis.plugin\n"
        "loaded = [m for m in ('taskq_redis.transport', 'taskq_redis.backend', 'redis') if m in sys.modules]\n"
        "print(','.join(loaded))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == ""


def test_the_drivers_import_ssl_only_for_rediss_urls() -> None:
    code = (
        "import sys, taskq_redis.transport, taskq_redis.backend\n"
        "print('ssl' in sys.modules)\n"
        "from taskq_redis._connection import ssl_context\n"
        "ssl_context({'ssl_cert_reqs': 'none'})\n"
        "print('ssl' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["False", "True"]
