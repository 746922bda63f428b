"""Running one task: call it, classify the outcome, store the result, fire the hooks.

:func:`trace_task` runs where the pool runs the task (the worker's thread, a pool thread
or a child process) and returns a :class:`TraceOutcome` the consumer turns into an ack,
a requeue or a dead letter. :func:`trace_eager` does the same for ``Task.apply``.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
import traceback as tb
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from taskq import states
from taskq.app import set_running_context
from taskq.errors import ChordError, Ignore, Reject, Retry, SerializationError
from taskq.task import Context

if TYPE_CHECKING:
    from collections.abc import Awaitable, Mapping, Sequence

    from taskq.app import App
    from taskq.canvas import Signature
    from taskq.result import EagerResult
    from taskq.task import Task
    from taskq.worker.request import Request

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class TraceOutcome:
    """How a task ended and what the consumer should do with its message."""

    state: str
    retval: object = None
    runtime: float = 0.0
    requeue: bool = False  # give the message back (Reject(requeue=True))
    reject_reason: str | None = None  # dead-letter the message with this reason
    traceback: str | None = None


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


def trace_task(app: App, request: Request) -> TraceOutcome:
    """Run ``request``'s task and record its outcome. Never raises for task errors."""
    started, store_results = _begin(app, request)
    try:
        try:
            retval = request.task.run(*request.args, **request.kwargs)
            if inspect.isawaitable(retval):
                # An async def task on a pool without an event loop: run it to the end here.
                import asyncio  # imported on use: it adds ~25 ms to every start-up

                retval = asyncio.run(_await(retval))
        except Exception as exc:
            return _on_exception(app, request, exc, started, store_results)
        return _on_success(app, request, retval, started, store_results)
    finally:
        _end(request)


async def trace_task_async(app: App, request: Request) -> TraceOutcome:
    """:func:`trace_task` for pools that run an event loop: ``async def`` tasks are awaited.

    Storing the result still blocks the loop briefly (one write to the result backend).
    """
    started, store_results = _begin(app, request)
    try:
        try:
            retval = request.task.run(*request.args, **request.kwargs)
            if inspect.isawaitable(retval):
                retval = await retval
        except Exception as exc:
            return _on_exception(app, request, exc, started, store_results)
        return _on_success(app, request, retval, started, store_results)
    finally:
        _end(request)


async def _await(awaitable: Awaitable[object]) -> object:
    return await awaitable


def _begin(app: App, request: Request) -> tuple[float, bool]:
    task = request.task
    plugins = app.plugins
    store_results = app.has_backend and not request.ignore_result
    context = request.context()
    task.push_request(context)
    set_running_context(context)
    if task.track_started and store_results:
        _store(app, request, {"pid": os.getpid(), "hostname": request.hostname}, states.STARTED)
    if plugins.has_impl("taskq_task_prerun"):
        plugins.task_prerun(task, request)
    return time.perf_counter(), store_results


def _end(request: Request) -> None:
    request.task.pop_request()
    set_running_context(None)


def _on_success(app: App, request: Request, retval: object, started: float, store_results: bool) -> TraceOutcome:
    task = request.task
    plugins = app.plugins
    runtime = time.perf_counter() - started
    if store_results:
        _store(app, request, retval, states.SUCCESS)
    if plugins.has_impl("taskq_task_success"):
        plugins.task_success(task, request, retval)
    if request.message.callbacks or request.message.chain:
        _send_callbacks(app, request, retval)
    if request.message.chord:
        on_chord_part_return(app, request)
    if plugins.has_impl("taskq_task_postrun"):
        plugins.task_postrun(task, request, states.SUCCESS, retval)
    return TraceOutcome(states.SUCCESS, retval, runtime)


def _on_exception(app: App, request: Request, exc: Exception, started: float, store_results: bool) -> TraceOutcome:
    """Classify what the task raised: a retry, an ignore, a rejection or a failure."""
    task = request.task
    plugins = app.plugins
    if isinstance(exc, Retry):
        return _on_retry(app, request, exc, started, store_results)
    if isinstance(exc, Ignore):
        if plugins.has_impl("taskq_task_postrun"):
            plugins.task_postrun(task, request, states.IGNORED, None)
        return TraceOutcome(states.IGNORED, runtime=time.perf_counter() - started)
    if isinstance(exc, Reject):
        reason = f"rejected by the task: {exc.reason}" if exc.reason else "rejected by the task"
        if plugins.has_impl("taskq_task_postrun"):
            plugins.task_postrun(task, request, states.REJECTED, exc)
        return TraceOutcome(
            states.REJECTED,
            runtime=time.perf_counter() - started,
            requeue=exc.requeue,
            reject_reason=None if exc.requeue else reason,
        )
    if (
        task.autoretry_for
        and isinstance(exc, task.autoretry_for)
        and not (task.dont_autoretry_for and isinstance(exc, task.dont_autoretry_for))
    ):
        try:
            options = {k: v for k, v in task.retry_kwargs.items() if k != "countdown"}
            task.retry(exc=exc, countdown=task.backoff_for(request.retries), **options)  # type: ignore[arg-type]  # retry_kwargs are retry()'s options
        except Retry as signal:
            return _on_retry(app, request, signal, started, store_results)
        except Exception as final:
            return _on_failure(app, request, final, started)
    return _on_failure(app, request, exc, started)


def _on_retry(app: App, request: Request, signal: Retry, started: float, store_results: bool) -> TraceOutcome:
    reason = signal.exc if signal.exc is not None else signal
    if store_results:
        _store(app, request, reason, states.RETRY, _format(reason))
    plugins = app.plugins
    if plugins.has_impl("taskq_task_retry"):
        plugins.task_retry(request.task, request, reason)
    if plugins.has_impl("taskq_task_postrun"):
        plugins.task_postrun(request.task, request, states.RETRY, reason)
    return TraceOutcome(states.RETRY, reason, time.perf_counter() - started)


def _on_failure(app: App, request: Request, exc: BaseException, started: float) -> TraceOutcome:
    runtime = time.perf_counter() - started
    text = _format(exc)
    task = request.task
    expected = bool(task.throws) and isinstance(exc, task.throws)
    if app.has_backend and (not request.ignore_result or task.store_errors_even_if_ignored):
        _store(app, request, exc, states.FAILURE, text)
    plugins = app.plugins
    if plugins.has_impl("taskq_task_failure"):
        plugins.task_failure(task, request, exc, text)
    for errback in request.message.errbacks or ():
        try:
            _signature(errback, app).apply_async((request.id,), parent_id=request.id)
        except Exception:
            logger.exception("could not send the error callback %r of %s[%s]", errback, request.name, request.id)
    if request.message.chord:
        on_chord_part_return(app, request)
    if plugins.has_impl("taskq_task_postrun"):
        plugins.task_postrun(task, request, states.FAILURE, exc)
    outcome = TraceOutcome(states.FAILURE, exc, runtime, traceback=None if expected else text)
    return outcome


def on_chord_part_return(app: App, request: Request) -> None:
    """Count a finished chord header task; the last one sends the body with all results."""
    chord = request.message.chord
    group_id = cast("str | None", request.message.headers.get("group"))
    if not chord or not group_id or not app.has_backend:
        return
    body = _signature(chord, app)
    try:
        backend = app.backend
        done = backend.incr_chord_counter(group_id)
        size = cast("int | None", body.get("chord_size"))
        member_ids = backend.restore_group(group_id) or []
        if size is None:
            size = len(member_ids)
        if done < size:
            return
        metas = backend.get_many(member_ids)
    except Exception:
        logger.exception("chord %s: could not count the end of %s[%s]", group_id, request.name, request.id)
        return
    failed = [(i, m) for i, m in ((i, metas[i]) for i in member_ids) if m["status"] != states.SUCCESS]
    body_id = cast("str | None", body.options.get("task_id"))
    if failed:
        culprit, meta = failed[0]
        error = ChordError(f"chord {group_id}: header task {culprit} ended {meta['status']}: {meta.get('result')!r}")
        logger.error("%s; the body %s will not run", error, body.task)
        if body_id:
            backend.store_result(body_id, error, states.FAILURE)
        for errback in cast("list[Mapping[str, object]]", body.options.get("link_error") or []):
            _signature(errback, app).apply_async((body_id,))
        return
    values = [metas[i].get("result") for i in member_ids]
    body.apply_async((values,), parent_id=request.id, root_id=request.message.headers.get("root_id"))


def _send_callbacks(app: App, request: Request, retval: object) -> None:
    root_id = cast("str | None", request.message.headers.get("root_id")) or request.id
    for callback in request.message.callbacks or ():
        try:
            _signature(callback, app).apply_async((retval,), parent_id=request.id, root_id=root_id)
        except Exception:
            logger.exception("could not send the callback %r of %s[%s]", callback, request.name, request.id)
    chain = request.message.chain
    if chain:
        remaining = list(chain)
        following = _signature(remaining.pop(), app)
        options: dict[str, object] = {"parent_id": request.id, "root_id": root_id}
        if remaining:
            options["chain"] = remaining
        following.apply_async((retval,), **cast("dict[str, Any]", options))


def _signature(data: Mapping[str, object], app: App) -> Signature:
    """The signature a message carries (canvas is imported only once a task has callbacks)."""
    from taskq.canvas import Signature

    return Signature.from_dict(data, app)


def _format(exc: BaseException) -> str:
    return "".join(tb.format_exception(type(exc), exc, exc.__traceback__))


def trace_eager(
    task: Task[..., object],
    args: list[object],
    kwargs: dict[str, object],
    *,
    task_id: str,
    retries: int,
    throw: bool,
    link: Signature | Sequence[Signature] | None,
    link_error: Signature | Sequence[Signature] | None,
) -> EagerResult[object]:
    """Run a task in this process as a worker would, retrying at once instead of later."""
    from taskq.result import EagerResult

    app = task.app
    app.plugins  # noqa: B018 - settle the task's defaults from the settings
    while True:
        context = Context(id=task_id, args=args, kwargs=kwargs, retries=retries, is_eager=True, called_directly=False)
        task.push_request(context)
        set_running_context(context)
        try:
            retval = task.run(*args, **kwargs)
        except Retry:
            retries += 1
            continue
        except Exception as exc:
            if task.autoretry_for and isinstance(exc, task.autoretry_for):
                limit = cast("int | None", task.retry_kwargs.get("max_retries", task.max_retries))
                if limit is None or retries < limit:
                    retries += 1
                    continue
            if throw:
                raise
            for errback in _as_list(link_error):
                _signature(errback, app).apply_async((task_id,))
            return EagerResult(task_id, exc, states.FAILURE, _format(exc), app=app, task_name=task.name)
        finally:
            task.pop_request()
            set_running_context(None)
        for callback in _as_list(link):
            _signature(callback, app).apply_async((retval,))
        return EagerResult(task_id, retval, states.SUCCESS, app=app, task_name=task.name)


def _as_list(value: Signature | Sequence[Signature] | Mapping[str, object] | None) -> list[Signature]:
    if value is None:
        return []
    if isinstance(value, dict):
        return [cast("Signature", value)]
    return list(cast("Sequence[Signature]", value))


__all__ = ["TraceOutcome", "trace_eager", "trace_task", "trace_task_async"]
