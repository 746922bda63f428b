"""Core's beat schedulers, offered through the same hook a plugin's would be."""

from __future__ import annotations

from taskq.hookspecs import hookimpl


@hookimpl
def taskq_register_schedulers() -> dict[str, str]:
    return {"file": "taskq.builtins.file_scheduler:FileScheduler", "memory": "taskq.drivers.scheduler:Scheduler"}
