"""taskq-opentelemetry's hooks: the publish and run hooks start and end the spans of
:mod:`taskq_opentelemetry.tracing`.

Cheap to import: OpenTelemetry is imported as a worker is built, or by the first hook
that traces something in a client. Every
hook here is on the per-message path and never raises: a failure of the tracing is logged
(once per hook with its traceback, then at DEBUG) and the send or the task goes on untraced.

Where each runs: the publish hooks in the sending thread (a client's, or a pool's while a
task sends its retry, chain step or chord body); the task hooks in the thread or process
that runs the task (the worker's thread on solo, a pool thread, a prefork child), so the
run's span is current where the task's own code runs. ``taskq_task_failure`` also fires in
the worker's main process for a task its pool lost or stopped at its hard time limit: the
span, where it lives in that process, is ended there. As a worker or a pool process
leaves, the TracerProvider is asked to export what it still holds: a prefork child runs no
``atexit`` handler, and its batch of spans would be lost.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

from taskq import hookimpl

if TYPE_CHECKING:
    from taskq import App, Task
    from taskq.drivers import Request, Worker
    from taskq_opentelemetry.tracing import TaskTracer

logger = logging.getLogger(__name__)

#: The setting that turns tracing off (``TASKQ_OPENTELEMETRY_ENABLED=false``).
SETTING = "opentelemetry_enabled"

_reported: set[str] = set()


def _tracer() -> TaskTracer:
    from taskq_opentelemetry.tracing import TRACER  # on first use: OpenTelemetry's import is not free

    return TRACER


def _started() -> TaskTracer | None:
    """The tracer if anything was traced in this process yet; None spares the import."""
    module = sys.modules.get("taskq_opentelemetry.tracing")
    return None if module is None else module.TRACER


def _is_enabled(app: App) -> bool:
    return app.conf[SETTING] is True


def _failed(hook: str) -> None:
    """Log a tracing failure in ``hook``: with its traceback the first time, at DEBUG after."""
    if hook in _reported:
        logger.debug("taskq-opentelemetry failed in %s; tracing skipped", hook, exc_info=True)
        return
    _reported.add(hook)
    logger.warning(
        "taskq-opentelemetry failed in %s; tracing skipped, the task goes on (later failures here are logged at DEBUG)",
        hook,
        exc_info=True,
    )


@hookimpl
def taskq_worker_init(worker: Worker) -> None:
    """Import OpenTelemetry as a worker is built (before a prefork pool forks its children,
    which then share it), rather than in the worker's first task, which it would delay."""
    try:
        if _is_enabled(worker.app):
            _tracer()
    except Exception:
        _failed("taskq_worker_init")


@hookimpl
def taskq_app_configured(app: App) -> None:
    value = app.conf[SETTING]
    if not isinstance(value, bool):
        logger.error(
            "%s = %r is not a boolean, so tracing is off; set it to true or false "
            "(TASKQ_OPENTELEMETRY_ENABLED=true in the environment)",
            SETTING,
            value,
        )


@hookimpl
def taskq_before_publish(app: App, name: str, task_id: str, headers: dict[str, object], queue: str) -> None:
    try:
        if _is_enabled(app):
            _tracer().message_sending(name, task_id, headers, queue)
    except Exception:
        _failed("taskq_before_publish")


@hookimpl
def taskq_after_publish(task_id: str) -> None:
    try:
        tracer = _started()
        if tracer is not None:
            tracer.message_sent(task_id)
    except Exception:
        _failed("taskq_after_publish")


@hookimpl
def taskq_task_prerun(task: Task[..., object], request: Request) -> None:
    try:
        if _is_enabled(task.app):
            _tracer().task_starting(request)
    except Exception:
        _failed("taskq_task_prerun")


@hookimpl
def taskq_task_retry(request: Request, reason: BaseException) -> None:
    try:
        tracer = _started()
        if tracer is not None:
            tracer.task_retrying(request, reason)
    except Exception:
        _failed("taskq_task_retry")


@hookimpl
def taskq_task_internal_error(request: Request, exc: BaseException) -> None:
    try:
        tracer = _started()
        if tracer is not None:
            tracer.task_internal_error(request, exc)
    except Exception:
        _failed("taskq_task_internal_error")


@hookimpl
def taskq_task_failure(request: Request, exc: BaseException) -> None:
    try:
        tracer = _started()
        if tracer is not None:
            tracer.task_failed(request, exc)
    except Exception:
        _failed("taskq_task_failure")


@hookimpl
def taskq_task_postrun(request: Request, state: str) -> None:
    try:
        tracer = _started()
        if tracer is not None:
            tracer.task_finished(request, state)
    except Exception:
        _failed("taskq_task_postrun")


@hookimpl
def taskq_worker_process_shutdown() -> None:
    _flush("taskq_worker_process_shutdown")


@hookimpl
def taskq_worker_shutdown() -> None:
    _flush("taskq_worker_shutdown")


def _flush(hook: str) -> None:
    """Export the spans the TracerProvider holds before this process leaves (if it traced any)."""
    try:
        if _started() is not None:
            from taskq_opentelemetry.tracing import flush

            flush()
    except Exception:
        _failed(hook)
