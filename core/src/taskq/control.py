"""Controlling workers from a client: ``app.control.revoke(...)``.

Revocations travel through the result backend's revocation log, so they reach every
worker, including those that are offline now and start later.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taskq.app import App


class Control:
    """What a client can ask of the workers. Reached as ``app.control``."""

    def __init__(self, app: App) -> None:
        self.app = app

    def revoke(self, task_id: str | Iterable[str], *, terminate: bool = False) -> None:
        """Make workers skip ``task_id`` (one id or several); ``terminate`` stops it if running.

        Needs a result backend (where the revocation is kept); stopping a running task
        needs a pool that can (prefork, gevent, eventlet, asyncio, thread).
        """
        ids = [task_id] if isinstance(task_id, str) else list(task_id)
        self.app.backend.revoke(ids, terminate=terminate)


__all__ = ["Control"]
