"""taskq-prometheus's plugin module: the ``taskq metrics`` command, the worker step, the task hooks.

A worker whose settings name ``prometheus_port`` gets a :class:`~taskq_prometheus.worker.WorkerMetrics`
as it is made (``taskq_worker_init``, in the main process, before the pool forks: prefork
children inherit it and its pipe); the task hooks below feed it, from whichever process the
hook fires in. A worker without the setting has none, and each hook returns at once.
Importing this module imports neither prometheus_client nor the worker's metrics.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from taskq.hookspecs import hookimpl

if TYPE_CHECKING:
    from taskq import App, Task
    from taskq.drivers import Request, Worker
    from taskq_prometheus.worker import WorkerMetrics

_metrics: weakref.WeakKeyDictionary[App, WorkerMetrics] = weakref.WeakKeyDictionary()

# The states in which the pool, not the task, ended a task it had started (endings.stopped).
_STOPPED_STATE = "failed"


def worker_metrics(worker: Worker) -> WorkerMetrics | None:
    """The metrics of ``worker``, or None when its settings ask for none."""
    found = _metrics.get(worker.app)
    return found if found is not None and found.worker is worker else None


@hookimpl
def taskq_register_commands() -> dict[str, str]:
    return {"metrics": "taskq_prometheus.commands:metrics"}


@hookimpl
def taskq_register_bootsteps() -> dict[str, list[str]]:
    return {"worker": ["taskq_prometheus.worker:PrometheusStep"]}


@hookimpl
def taskq_worker_init(worker: Worker) -> None:
    port = worker.app.conf["prometheus_port"]
    if port is None or port == "":
        _metrics.pop(worker.app, None)
        return
    from taskq_prometheus.worker import WorkerMetrics  # only for a worker that serves metrics

    previous = _metrics.pop(worker.app, None)
    if previous is not None:
        previous.close()
    _metrics[worker.app] = WorkerMetrics(worker)


@hookimpl
def taskq_worker_shutdown(worker: Worker) -> None:
    found = worker_metrics(worker)
    if found is not None:
        del _metrics[worker.app]
        found.close()


@hookimpl
def taskq_task_received(request: Request) -> None:
    found = _metrics.get(request.task.app)
    if found is not None:
        found.received(request)


@hookimpl
def taskq_task_prerun(task: Task[..., object], request: Request) -> None:
    found = _metrics.get(task.app)
    if found is not None:
        found.started(request)


@hookimpl
def taskq_task_postrun(task: Task[..., object], request: Request, state: str) -> None:
    found = _metrics.get(task.app)
    if found is not None:
        found.ended(request, state)


@hookimpl
def taskq_task_failure(task: Task[..., object], request: Request) -> None:
    found = _metrics.get(task.app)
    # A task's own failure is counted by its postrun; only the pool's ending of it is counted here.
    if found is not None and not found.is_running_here(request):
        found.stopped(request, _STOPPED_STATE)


@hookimpl
def taskq_task_revoked(request: Request, terminated: bool) -> None:
    found = _metrics.get(request.task.app)
    if found is not None:
        found.revoked(request, terminated)


@hookimpl
def taskq_task_rejected(request: Request | None, reason: str) -> None:
    if not _metrics:
        return
    if request is not None:
        found = _metrics.get(request.task.app)
        if found is not None:
            found.rejected(request, reason)
        return
    for found in list(_metrics.values()):  # no request: the one worker of this process
        found.rejected(None, reason)
