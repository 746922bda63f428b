"""taskq-dashboard's plugin module: the ``taskq dashboard`` command (imported only when run)."""

from __future__ import annotations

from taskq.hookspecs import hookimpl


@hookimpl
def taskq_register_commands() -> dict[str, str]:
    return {"dashboard": "taskq_dashboard.command:dashboard"}
