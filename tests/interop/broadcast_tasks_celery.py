"""The interop tasks on Celery 5, with a broadcast queue in task_queues (for test_celery_broadcast)."""

from __future__ import annotations

import os

from interop_tasks_celery import app, mark
from kombu.common import Broadcast

NAME = os.environ["BROADCAST_NAME"]
app.conf.task_queues = [Broadcast(NAME)]
# Celery's documented way to send a task to a broadcast queue
app.conf.task_routes = {"interop.mark": {"queue": NAME, "exchange": NAME}}

__all__ = ["app", "mark"]
