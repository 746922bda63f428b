"""The plugin module registers both drivers by import string and imports neither."""

from __future__ import annotations

import importlib
import subprocess
import sys

from taskq_sqlite import plugin


def test_plugin_registers_the_sqlite_transport_and_backend() -> None:
    transports = plugin.taskq_register_transports()
    backends = plugin.taskq_register_result_backends()
    assert transports == {"sqlite": "taskq_sqlite.transport:SqliteTransport"}
    assert backends == {"sqlite": "taskq_sqlite.backend:SqliteBackend"}
    for target in (*transports.values(), *backends.values()):
        module, _, name = target.partition(":")
        assert hasattr(importlib.import_module(module), name)


def test_importing_the_plugin_module_does_not_import_the_drivers() -> None:
    code = (
        "import sys, taskq_sqlite.plugin\n"
        "loaded = [m for m in ('taskq_sqlite.transport', 'taskq_sqlite.backend', 'sqlite3') if m in sys.modules]\n"
        "print(','.join(loaded))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == ""
