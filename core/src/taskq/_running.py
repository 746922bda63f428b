"""The task running in this thread, greenlet or asyncio task: set by the tracer, read when sending.

The worker's tracer (and ``Task.apply``) records the request of the task it runs; sending
reads it to make that task the parent of what it sends and to note the ids it sent (its
children). It lives apart from the app so the worker can set it without importing the app.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taskq.task import Context

# A context variable, not a thread-local: each thread, greenlet and asyncio task sees its own.
_running: ContextVar[Context | None] = ContextVar("taskq.running", default=None)


def set_running_context(context: Context | None) -> None:
    """Record the request of the task running here (``None`` once it ends)."""
    _running.set(context)


def running_context() -> Context | None:
    """The request of the task running here, if a worker (or ``Task.apply``) runs one."""
    return _running.get()


__all__ = ["running_context", "set_running_context"]
