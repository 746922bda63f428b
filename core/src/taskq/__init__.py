"""taskq: a distributed task queue with a minimal core and pluggable everything.

The public API; everything a project imports comes from here.
"""

from __future__ import annotations

from taskq import states
from taskq.app import App, current_app, shared_task
from taskq.canvas import Signature, chain, chord, group, signature
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
from taskq.result import AsyncResult, EagerResult, GroupResult, ResultSet
from taskq.task import Context, Task

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
