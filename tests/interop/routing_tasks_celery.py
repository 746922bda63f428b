"""The interop tasks on Celery 5, with a topic exchange declared in task_queues (for test_celery_routing)."""

from __future__ import annotations

import os

from interop_tasks_celery import add, app
from kombu import Exchange, Queue

app.conf.task_queues = [
    Queue(os.environ["ROUTING_QUEUE"], Exchange(os.environ["ROUTING_EXCHANGE"], type="topic"), routing_key="jobs.hi.#")
]

__all__ = ["add", "app"]
