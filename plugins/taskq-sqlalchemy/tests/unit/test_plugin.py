"""The plugin module registers the backend and the commands by import string, importing neither."""

from __future__ import annotations

import importlib
import subprocess
import sys

import click

from taskq_sqlalchemy import plugin


def test_plugin_registers_every_db_scheme_for_one_backend_class() -> None:
    backends = plugin.taskq_register_result_backends()
    assert {"db+postgresql", "db+postgresql+psycopg", "db+mysql+pymysql", "db+sqlite"} <= set(backends)
    assert set(backends.values()) == {"taskq_sqlalchemy.backend:DatabaseBackend"}
    module, _, name = "taskq_sqlalchemy.backend:DatabaseBackend".partition(":")
    assert hasattr(importlib.import_module(module), name)


def test_plugin_registers_the_db_group_and_the_cleanup_command() -> None:
    commands = plugin.taskq_register_commands()
    assert set(commands) == {"db", "cleanup"}
    for target in commands.values():
        module, _, name = target.partition(":")
        assert isinstance(getattr(importlib.import_module(module), name), click.Command)


def test_importing_the_plugin_module_does_not_import_sqlalchemy() -> None:
    code = (
        "import sys, taskq_sqlalchemy.plugin\n"
        "loaded = [m for m in ('taskq_sqlalchemy.backend', 'sqlalchemy', 'psycopg', 'pymysql') if m in sys.modules]\n"
        "print(','.join(loaded))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == ""
