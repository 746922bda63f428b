"""How a task's run is recorded: one function per way it can end, each writing the log
line, storing the state and firing the hook, in that order (and one for its start).

Every task hook has its one caller here. Each function runs where its news is known: the
pool (the worker's thread, a pool thread or a child process) records what the task did,
the consumer in the worker's main process what happened to it from outside.

======================  =====  ===========================  ==========================  ==================
function                where  state stored                 hook                        log line
======================  =====  ===========================  ==========================  ==================
:func:`received`        main   -                            taskq_task_received         - (the consumer's)
:func:`unknown`         main   - (then dead-lettered)       taskq_task_unknown          -
:func:`started`         pool   STARTED (``track_started``)  taskq_task_prerun           -
:func:`succeeded`       pool   SUCCESS                      taskq_task_success          info
:func:`failed`          pool   FAILURE                      taskq_task_failure          error; info if in
                                                                                        ``throws``
:func:`retried`         pool   RETRY                        taskq_task_retry            info
:func:`rejected`        pool   (dead-lettered: see below)   -                           warning
:func:`ran`             pool   - (after every end above,    taskq_task_postrun          -
                               ``Ignore`` included)
:func:`internal_error`  pool   FAILURE                      taskq_task_internal_error,  error
                                                            taskq_task_failure
:func:`revoked`         main   REVOKED                      taskq_task_revoked          warning
:func:`stopped`         main   FAILURE (time limit, lost),  taskq_task_failure,         error; warning
                               REVOKED (terminated)         taskq_task_revoked
:func:`dead_lettered`   main   FAILURE, if the id is known  taskq_task_rejected         warning
======================  =====  ===========================  ==========================  ==================

Per message this costs what the hooks cost: none when no plugin implements them (checked
through the plugin manager's cache), and the success line's ``repr`` only when INFO lines
are written, which the worker reads once as it starts (:func:`read_log_levels`).
"""

from __future__ import annotations

import logging
import os
import traceback as tb
from typing import TYPE_CHECKING

from taskq import states
from taskq.errors import (
    SerializationError,
    TaskqError,
    TaskRevokedError,
    Terminated,
    TimeLimitExceeded,
    WorkerLostError,
)

if TYPE_CHECKING:
    from taskq.app import App
    from taskq.drivers.transport import Message
    from taskq.worker.request import Request

logger = logging.getLogger(__name__)

# Longest repr of a return value in the success line, in characters.
RESULT_REPR_MAX = 200


class _LogLevels:
    """Which optional lines are on, read when a worker starts rather than for every task."""

    info = False


def read_log_levels() -> None:
    """Note whether INFO lines are written; the worker calls this as it starts, after logging is set up.

    Pool processes forked afterwards inherit what was read.
    """
    _LogLevels.info = logger.isEnabledFor(logging.INFO)


# ---- In the pool: what the task did --------------------------------------------------


def received(app: App, request: Request) -> None:
    """The consumer made ``request`` from a message it took: ``taskq_task_received``."""
    plugins = app.plugins
    if plugins.has_impl("taskq_task_received"):
        plugins.task_received(request)


def unknown(app: App, name: str, task_id: str | None, message: Message) -> None:
    """The consumer took a message for a task this worker does not know (it dead-letters
    it next): ``taskq_task_unknown``."""
    plugins = app.plugins
    if plugins.has_impl("taskq_task_unknown"):
        plugins.task_unknown(app, name, task_id, message)


def started(app: App, request: Request, *, store: bool) -> None:
    """The task is about to run: STARTED when it tracks that, then ``taskq_task_prerun``."""
    if store and request.task.track_started:
        _store(app, request, {"pid": os.getpid(), "hostname": request.hostname}, states.STARTED)
    plugins = app.plugins
    if plugins.has_impl("taskq_task_prerun"):
        plugins.task_prerun(request.task, request)


def succeeded(app: App, request: Request, retval: object, runtime: float, *, store: bool) -> None:
    """The task returned ``retval`` after ``runtime`` seconds."""
    if _LogLevels.info:
        text = repr(retval)
        if len(text) > RESULT_REPR_MAX:
            text = text[: RESULT_REPR_MAX - 3] + "..."
        logger.info("Task %s[%s] succeeded in %.6fs: %s", request.name, request.id, runtime, text)
    if store:
        _store(app, request, retval, states.SUCCESS)
    plugins = app.plugins
    if plugins.has_impl("taskq_task_success"):
        plugins.task_success(request.task, request, retval)


def failed(app: App, request: Request, exc: BaseException, runtime: float, *, store: bool) -> None:
    """The task raised ``exc`` after ``runtime`` seconds and will not be retried.

    An exception the task declares in ``throws`` is expected: logged in one line, at INFO.
    """
    text = _format(exc)
    task = request.task
    if task.throws and isinstance(exc, task.throws):
        logger.info("Task %s[%s] raised an expected %r", request.name, request.id, exc)
    else:
        logger.error("Task %s[%s] raised %r after %.6fs\n%s", request.name, request.id, exc, runtime, text)
    if store:
        _store(app, request, exc, states.FAILURE, text)
    _fire_failure(app, request, exc, text)


def retried(app: App, request: Request, reason: BaseException, *, store: bool) -> None:
    """The task asked to run again later (``retry()``, or an automatic retry), for ``reason``."""
    logger.info("Task %s[%s] will be retried: %r", request.name, request.id, reason)
    if store:
        _store(app, request, reason, states.RETRY, _format(reason))
    plugins = app.plugins
    if plugins.has_impl("taskq_task_retry"):
        plugins.task_retry(request.task, request, reason)


def rejected(request: Request) -> None:
    """The task raised ``Reject``: its message is requeued or, when the consumer has
    dead-lettered it, recorded by :func:`dead_lettered`. Nothing is stored here."""
    logger.warning("Task %s[%s] rejected its message", request.name, request.id)


def ran(app: App, request: Request, state: str, retval: object) -> None:
    """The task has run, whatever its end (``state``): ``taskq_task_postrun``, after the rest."""
    plugins = app.plugins
    if plugins.has_impl("taskq_task_postrun"):
        plugins.task_postrun(request.task, request, state, retval)


def internal_error(app: App, request: Request, exc: BaseException, *, store: bool) -> None:
    """The worker's own part around the task raised ``exc`` (not the task's function): the
    task is recorded as failed, as Celery does, with ``taskq_task_internal_error`` first."""
    text = _format(exc)
    logger.error("Task %s[%s] INTERNAL ERROR: %r\n%s", request.name, request.id, exc, text)
    plugins = app.plugins
    if plugins.has_impl("taskq_task_internal_error"):
        plugins.task_internal_error(request.task, request, exc, text)
    if store:
        _store(app, request, exc, states.FAILURE, text)
    _fire_failure(app, request, exc, text)


# ---- In the main process: what happened to the task ----------------------------------


def revoked(app: App, request: Request, *, expired: bool, stamp: tuple[str, object] | None = None) -> None:
    """The task was not run: revoked before it started (by its id, or by ``stamp``, one of
    its stamps), or past its ``expires`` time."""
    if expired:
        logger.warning("Task %s[%s] expired before it ran; not running it", request.name, request.id)
        why = f"task {request.name}[{request.id}] expired"
    elif stamp is not None:
        logger.warning(
            "Task %s[%s] was revoked by its stamp %s=%r; not running it", request.name, request.id, stamp[0], stamp[1]
        )
        why = f"task {request.name}[{request.id}] was revoked by its stamp {stamp[0]}={stamp[1]!r}"
    else:
        logger.warning("Task %s[%s] was revoked; not running it", request.name, request.id)
        why = f"task {request.name}[{request.id}] was revoked"
    if app.has_backend:
        try:
            app.backend.store_result(request.id, TaskRevokedError(why), states.REVOKED)
        except Exception:
            logger.exception("could not record the revocation of %s[%s]", request.name, request.id)
    _fire_revoked(app, request, terminated=False, expired=expired)


def stopped(app: App, request: Request, error: BaseException, *, requeued: bool) -> None:
    """The pool ended the task: at its hard time limit, on ``revoke(terminate=True)``, or by
    losing the process that ran it (``error`` says which).

    ``requeued``: the lost task's message went back to the broker (``reject_on_worker_lost``)
    to run again, so nothing is recorded beyond the log line.
    """
    recorded: BaseException
    if isinstance(error, Terminated):
        logger.warning("Task %s[%s] was terminated: %s", request.name, request.id, error)
        state, recorded = states.REVOKED, TaskRevokedError(str(error))
    elif isinstance(error, TimeLimitExceeded):
        logger.error("Task %s[%s] ran past its hard time limit and was stopped", request.name, request.id)
        state, recorded = states.FAILURE, error
    else:
        logger.error("Task %s[%s] was lost by the pool: %r", request.name, request.id, error)
        if requeued:
            return
        lost = error if isinstance(error, WorkerLostError) else WorkerLostError(repr(error))
        state, recorded = states.FAILURE, lost
    if app.has_backend:
        try:
            app.backend.store_result(request.id, recorded, state)
        except Exception:
            logger.exception("could not record the end of %s[%s]", request.name, request.id)
    if state == states.REVOKED:
        _fire_revoked(app, request, terminated=True, expired=False)
    else:
        _fire_failure(app, request, error, repr(error))


def dead_lettered(
    app: App,
    queue: str,
    reason: str,
    *,
    task_id: str | None = None,
    error: BaseException | None = None,
    request: Request | None = None,
) -> None:
    """The consumer set a message aside on the dead-letter queue instead of running (or
    finishing) its task. The sender of a task whose id is known learns why: FAILURE with
    ``error``, else a ``TaskqError`` carrying ``reason``.

    ``request`` is None when the message was refused before one was built (undecodable,
    unknown task, poison message).
    """
    # The one WARNING line per dead letter (a transport logs its own part at DEBUG).
    logger.warning("dead-lettered a message from queue %r: %s", queue, reason)
    if task_id is not None and app.has_backend:
        try:
            app.backend.store_result(task_id, error or TaskqError(reason), states.FAILURE)
        except Exception:
            logger.exception("could not record the rejection of %s", task_id)
    plugins = app.plugins
    if plugins.has_impl("taskq_task_rejected"):
        plugins.task_rejected(request, reason)


# ---- Shared by the endings above -----------------------------------------------------


def _fire_failure(app: App, request: Request, exc: BaseException, traceback: str) -> None:
    plugins = app.plugins
    if plugins.has_impl("taskq_task_failure"):
        plugins.task_failure(request.task, request, exc, traceback)


def _fire_revoked(app: App, request: Request, *, terminated: bool, expired: bool) -> None:
    plugins = app.plugins
    if plugins.has_impl("taskq_task_revoked"):
        plugins.task_revoked(request, terminated=terminated, expired=expired)


def _request_info(request: Request) -> dict[str, object]:
    return {
        "name": request.name,
        "args": request.args,
        "kwargs": request.kwargs,
        "worker": request.hostname,
        "retries": request.retries,
        "queue": request.delivery.queue,
    }


def _store(app: App, request: Request, result: object, state: str, traceback: str | None = None) -> None:
    """Store a state from the pool, with the request (``result_extended``) and the task's children."""
    info: dict[str, object] | None = _request_info(request) if app.conf["result_extended"] else None
    children = request.task.request.children
    if children:
        # Celery's layout for a child: [[task_id, parent], None].
        info = {**(info or {}), "children": [[[child, None], None] for child in children]}
    try:
        app.backend.store_result(request.id, result, state, traceback, info)
    except Exception as exc:
        # A result that cannot be stored must not lose the task's outcome silently: the
        # task fails with the reason instead (an unserializable or oversized value).
        logger.error("could not store the %s result of %s[%s]: %s", state, request.name, request.id, exc)
        if state != states.SUCCESS:
            return
        if isinstance(exc, SerializationError):
            error: Exception = exc
        else:
            error = SerializationError(
                f"the return value of {request.name} could not be stored "
                f"({type(result).__name__}): {type(exc).__name__}: {exc}"
            )
        try:
            app.backend.store_result(request.id, error, states.FAILURE, None, info)
        except Exception:
            logger.exception("could not store the failure of %s[%s] either", request.name, request.id)


def _format(exc: BaseException) -> str:
    return "".join(tb.format_exception(type(exc), exc, exc.__traceback__))


__all__ = [
    "dead_lettered",
    "failed",
    "internal_error",
    "ran",
    "read_log_levels",
    "rejected",
    "retried",
    "revoked",
    "started",
    "stopped",
    "succeeded",
]
