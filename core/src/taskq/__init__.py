"""taskq: a distributed task queue with a minimal core and pluggable everything.

The public API; everything a project imports comes from here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from taskq import states
from taskq.app import App, current_app, shared_task
from taskq.errors import (
    ConfigError,
    DriverNotFoundError,
    Ignore,
    MaxRetriesExceededError,
    Reject,
    Retry,
    TaskError,
    TaskqError,
    TimeoutError,
)
from taskq.hookspecs import hookimpl
from taskq.task import Context, Task

if TYPE_CHECKING:
    from taskq.canvas import Signature, chain, chord, group, signature
    from taskq.result import AsyncResult, EagerResult, GroupResult, ResultSet

#: Public names whose module is imported on first use (PEP 562): a worker starts without them.
_LAZY = {
    "AsyncResult": "taskq.result",
    "EagerResult": "taskq.result",
    "GroupResult": "taskq.result",
    "ResultSet": "taskq.result",
    "Signature": "taskq.canvas",
    "chain": "taskq.canvas",
    "chord": "taskq.canvas",
    "group": "taskq.canvas",
    "signature": "taskq.canvas",
}

__version__ = "0.1.0"

__all__ = [
    "App",
    "AsyncResult",
    "ConfigError",
    "Context",
    "DriverNotFoundError",
    "EagerResult",
    "GroupResult",
    "Ignore",
    "MaxRetriesExceededError",
    "Reject",
    "ResultSet",
    "Retry",
    "Signature",
    "Task",
    "TaskError",
    "TaskqError",
    "TimeoutError",
    "__version__",
    "chain",
    "chord",
    "current_app",
    "group",
    "hookimpl",
    "shared_task",
    "signature",
    "states",
]


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'taskq' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
