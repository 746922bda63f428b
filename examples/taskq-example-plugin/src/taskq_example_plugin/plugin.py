"""The plugin module the ``taskq.plugins`` entry point names: hook implementations only.

taskq imports this module in every process that loads plugins (clients, workers, the
CLI), so it stays cheap: it imports nothing but the hook marker and answers with import
strings. The serializer and the command are imported only when taskq needs them.
"""

from __future__ import annotations

from taskq.hookspecs import hookimpl


@hookimpl
def taskq_register_serializers() -> dict[str, str]:
    return {"jsonz": "taskq_example_plugin.serializer:JSONZ"}


@hookimpl
def taskq_register_commands() -> dict[str, str]:
    return {"example-hello": "taskq_example_plugin.commands:hello"}
