"""The plugin module registers the drivers by import string and imports no driver."""

from __future__ import annotations

import importlib
import subprocess
import sys

from taskq_amqp import plugin


def test_plugin_registers_the_amqp_transports_and_the_rpc_backend() -> None:
    transports = plugin.taskq_register_transports()
    backends = plugin.taskq_register_result_backends()
    assert set(transports) == {"amqp", "amqps", "pyamqp"}
    assert backends == {"rpc": "taskq_amqp.backend:RpcBackend"}
    for target in (*transports.values(), *backends.values()):
        module, _, name = target.partition(":")
        assert hasattr(importlib.import_module(module), name)


def test_importing_the_plugin_module_does_not_import_the_drivers() -> None:
    code = (
        "import sys, taskq_amqp.plugin\n"
        "loaded = [m for m in ('taskq_amqp.transport', 'taskq_amqp.backend', 'amqp') if m in sys.modules]\n"
        "print(','.join(loaded))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == ""
