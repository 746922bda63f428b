"""Running one task: call it, classify how it ended, and send what follows it.

:func:`trace_task` runs where the pool runs the task (the worker's thread, a pool thread
or a child process) and returns a :class:`TraceOutcome` the consumer turns into an ack,
a requeue or a dead letter. Storing each end, its hook and its log line is
:mod:`taskq.worker.endings`' job; here the task's callbacks, chain and chord follow it.
:func:`trace_eager` does the same for ``Task.apply``.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
import traceback as tb
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from taskq import states
from taskq._running import set_running_context
from taskq.drivers.backend import ChordPart
from taskq.errors import ChordError, Ignore, Reject, Retry
from taskq.task import Context, ExceptionInfo
from taskq.worker import endings

if TYPE_CHECKING:
    from collections.abc import Awaitable, Mapping, Sequence

    from taskq._protocol import TaskMessage
    from taskq.app import App
    from taskq.canvas import Signature
    from taskq.result import EagerResult
    from taskq.task import Task
    from taskq.worker.request import Request

logger = logging.getLogger(__name__)

#: A lock per OS thread that runs ``async def`` tasks without a loop of its pool's (see _run_to_the_end).
_LOOP_TURNS: dict[int, threading.Lock] = {}


#: Whether outcomes carry what a task event tells (set by the worker before its pool starts,
#: when it sends task events: its pool's processes inherit it).
EVENT_DETAILS = False
# Longest result or exception text a task event carries, in characters.
EVENT_REPR_MAX = 1024


@dataclass(slots=True)
class TraceOutcome:
    """How a task ended and what the consumer should do with its message."""

    state: str
    requeue: bool = False  # give the message back (Reject(requeue=True))
    reject_reason: str | None = None  # dead-letter the message with this reason
    runtime: float | None = None  # seconds the task ran, when it ran to an end
    # With EVENT_DETAILS: the result's or the exception's repr, and the traceback's text.
    detail: str | None = None
    traceback: str | None = None


def trace_task(app: App, request: Request) -> TraceOutcome:
    """Run ``request``'s task and record its outcome. Never raises for task errors, nor for
    an error of the worker's own part around the task (an internal error: a failure)."""
    try:
        started, store_results = _begin(app, request)
        try:
            if request.task.handlers:
                _handler(request, "before_start", request.id, request.args, request.kwargs)
            retval = request.task.run(*request.args, **request.kwargs)
            if inspect.isawaitable(retval):
                # An async def task on a pool without an event loop: run it to the end here.
                retval = _run_to_the_end(retval)
        except Exception as exc:
            return _raised(app, request, exc, started, store_results)
        else:
            return _returned(app, request, retval, started, store_results)
        finally:
            _end(request)
    except Exception as exc:  # raised by what surrounds the task: the task's own errors are handled above
        return _internal_error(app, request, exc)


async def trace_task_async(app: App, request: Request) -> TraceOutcome:
    """:func:`trace_task` for pools that run an event loop: ``async def`` tasks are awaited.

    Storing the result still blocks the loop briefly (one write to the result backend).
    """
    try:
        started, store_results = _begin(app, request)
        try:
            if request.task.handlers:
                _handler(request, "before_start", request.id, request.args, request.kwargs)
            retval = request.task.run(*request.args, **request.kwargs)
            if inspect.isawaitable(retval):
                retval = await retval
        except Exception as exc:
            return _raised(app, request, exc, started, store_results)
        else:
            return _returned(app, request, retval, started, store_results)
        finally:
            _end(request)
    except Exception as exc:  # as in trace_task
        return _internal_error(app, request, exc)


def _run_to_the_end(awaitable: Awaitable[object]) -> object:
    """Run a coroutine on an event loop of its own, one loop at a time per OS thread.

    ``asyncio.run`` refuses to start while another loop runs in the same OS thread, and
    green threads (gevent, eventlet) are many tasks in one OS thread: while one task's
    loop waits, the hub runs another green thread, whose ``async def`` task would fail.
    So each OS thread has a lock, taken for the whole run; the library's patched lock
    makes a green thread that waits for it let the others run. Threads of a thread pool
    each have their own and never wait.
    """
    import asyncio  # imported on use: it adds ~25 ms to every start-up

    thread = threading.get_native_id()
    turn = _LOOP_TURNS.get(thread) or _LOOP_TURNS.setdefault(thread, threading.Lock())
    with turn:
        return asyncio.run(_await(awaitable))


async def _await(awaitable: Awaitable[object]) -> object:
    return await awaitable


def _begin(app: App, request: Request) -> tuple[float, bool]:
    store_results = app.has_backend and not request.ignore_result
    context = request.context()
    request.task.push_request(context)
    set_running_context(context)
    endings.started(app, request, store=store_results)
    return time.perf_counter(), store_results


def _end(request: Request) -> None:
    request.task.pop_request()
    set_running_context(None)


def _returned(app: App, request: Request, retval: object, started: float, store_results: bool) -> TraceOutcome:
    runtime = time.perf_counter() - started
    endings.succeeded(app, request, retval, runtime, store=store_results)
    if request.message.callbacks or request.message.chain:
        _send_callbacks(app, request, retval)
    if request.message.chord:
        on_chord_part_return(app, request, states.SUCCESS, retval)
    if request.task.handlers:
        _handler(request, "on_success", retval, request.id, request.args, request.kwargs)
        _handler(request, "after_return", states.SUCCESS, retval, request.id, request.args, request.kwargs, None)
    endings.ran(app, request, states.SUCCESS, retval)
    return TraceOutcome(states.SUCCESS, runtime=runtime, detail=_shown(retval) if EVENT_DETAILS else None)


def _raised(app: App, request: Request, exc: Exception, started: float, store_results: bool) -> TraceOutcome:
    outcome, retval = _classify(app, request, exc, started, store_results)
    endings.ran(app, request, outcome.state, retval)
    return outcome


def _classify(
    app: App, request: Request, exc: Exception, started: float, store_results: bool
) -> tuple[TraceOutcome, object]:
    """What the task raised makes it a retry, an ignore, a rejection or a failure; the
    outcome, and the value ``taskq_task_postrun`` is given."""
    task = request.task
    if isinstance(exc, Retry):
        return _retry(app, request, exc, store_results)
    if isinstance(exc, Ignore):
        return TraceOutcome(states.IGNORED), None
    if isinstance(exc, Reject):
        endings.rejected(request)
        reason = f"rejected by the task: {exc.reason}" if exc.reason else "rejected by the task"
        return TraceOutcome(states.REJECTED, requeue=exc.requeue, reject_reason=None if exc.requeue else reason), exc
    if (
        task.autoretry_for
        and isinstance(exc, task.autoretry_for)
        and not (task.dont_autoretry_for and isinstance(exc, task.dont_autoretry_for))
    ):
        try:
            options = {k: v for k, v in task.retry_kwargs.items() if k != "countdown"}
            task.retry(exc=exc, countdown=task.backoff_for(request.retries), **options)  # type: ignore[arg-type]  # retry_kwargs are retry()'s options
        except Retry as signal:
            return _retry(app, request, signal, store_results)
        except Exception as final:
            return _failure(app, request, final, started), final
    return _failure(app, request, exc, started), exc


def _retry(app: App, request: Request, signal: Retry, store_results: bool) -> tuple[TraceOutcome, object]:
    reason = signal.exc if signal.exc is not None else signal
    endings.retried(app, request, reason, store=store_results)
    if request.task.handlers:
        _handler(request, "on_retry", reason, request.id, request.args, request.kwargs, _einfo(reason))
    if EVENT_DETAILS:
        return TraceOutcome(states.RETRY, detail=_shown(reason), traceback=_traceback_text(reason)), reason
    return TraceOutcome(states.RETRY), reason


def _failure(app: App, request: Request, exc: BaseException, started: float) -> TraceOutcome:
    runtime = time.perf_counter() - started
    task = request.task
    store = app.has_backend and (not request.ignore_result or bool(task.store_errors_even_if_ignored))
    endings.failed(app, request, exc, runtime, store=store)
    if request.message.errbacks:
        call_errbacks(app, request.message.errbacks, request.id, request.context(), exc)
    if request.message.chord:
        on_chord_part_return(app, request, states.FAILURE, exc)
    if request.message.chain:
        _fail_chain(app, request.message, exc, store)
    if task.handlers:
        einfo = _einfo(exc)
        _handler(request, "on_failure", exc, request.id, request.args, request.kwargs, einfo)
        _handler(request, "after_return", states.FAILURE, exc, request.id, request.args, request.kwargs, einfo)
    if EVENT_DETAILS:
        return TraceOutcome(states.FAILURE, runtime=runtime, detail=_shown(exc), traceback=_traceback_text(exc))
    return TraceOutcome(states.FAILURE, runtime=runtime)


def _shown(value: object) -> str:
    """``repr(value)`` as a task event carries it: cut to :data:`EVENT_REPR_MAX` characters."""
    try:
        text = repr(value)
    except Exception as exc:  # a repr that raises is the task's bug, not the worker's
        text = f"<{type(value).__name__} whose repr raised {type(exc).__name__}>"
    return text if len(text) <= EVENT_REPR_MAX else text[: EVENT_REPR_MAX - 3] + "..."


def _traceback_text(exc: BaseException) -> str:
    return "".join(tb.format_exception(type(exc), exc, exc.__traceback__))


def _internal_error(app: App, request: Request, exc: Exception) -> TraceOutcome:
    """The worker's part around the task raised: the task failed, and its message is settled
    as a failed task's. Its callbacks, errbacks and chord are left as they were (Celery 5
    also calls the errbacks and counts the chord part: here the error may have come after
    either)."""
    task = request.task
    store = app.has_backend and (not request.ignore_result or bool(task.store_errors_even_if_ignored))
    endings.internal_error(app, request, exc, store=store)
    return TraceOutcome(states.FAILURE)


def call_errbacks(
    app: App, errbacks: Sequence[Mapping[str, object]], task_id: str, context: Context, exc: BaseException
) -> None:
    """Call the error callbacks of the failed task ``task_id``, each the way its function asks,
    as Celery 5 does: one that takes ``(request, exc, traceback)`` is called here and now,
    with the failed task's context, its exception and traceback text; one that takes a task id
    (a function of one parameter, or a task this worker does not have) is sent as a task."""
    text: str | None = None
    for data in errbacks:
        try:
            errback = _signature(data, app)
            task = app.tasks.get(errback.task)
            if task is not None and _takes_request_exc_traceback(task):
                if text is None:
                    text = "".join(tb.format_exception(type(exc), exc, exc.__traceback__))
                task(context, exc, text, *errback.args, **errback.kwargs)
            else:
                errback.apply_async((task_id,), parent_id=task_id)
        except Exception:
            logger.exception("the error callback %r of task %s failed", data, task_id)


def _takes_request_exc_traceback(task: Task[..., object]) -> bool:
    """Whether ``task``'s function takes more than one positional argument (``self`` aside)."""
    try:
        parameters = list(inspect.signature(task.fn).parameters.values())
    except (TypeError, ValueError):
        return False
    if task.bind:
        parameters = parameters[1:]
    positional = [
        p for p in parameters if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    return len(positional) > 1 or any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters)


def _handler(request: Request, name: str, *args: object) -> None:
    """Call the task's handler ``name`` if its class overrides it; what it raises is logged."""
    if name not in request.task.handlers:
        return
    try:
        getattr(request.task, name)(*args)
    except Exception:
        logger.exception("the %s handler of %s[%s] raised", name, request.name, request.id)


def _einfo(exc: BaseException) -> ExceptionInfo:
    return ExceptionInfo(exc, "".join(tb.format_exception(type(exc), exc, exc.__traceback__)))


def _fail_chain(app: App, message: TaskMessage, exc: BaseException, store: bool, state: str = states.FAILURE) -> None:
    """The steps after a failed one never run: each is given the failure (see :func:`_fail_unrun`)."""
    for data in message.chain or ():
        try:
            _fail_unrun(app, _signature(data, app), exc, message, store=store, state=state)
        except Exception:
            logger.exception("could not fail the chain step %r after %s[%s]", data, message.name, message.id)


def _fail_unrun(
    app: App,
    step: Signature,
    exc: BaseException,
    message: TaskMessage,
    *,
    store: bool = True,
    state: str = states.FAILURE,
) -> None:
    """``step`` will never run, because of ``exc`` (met by ``message``'s task): its results
    are the failure (in ``state``), so that a ``get()`` raises it rather than waiting for
    ever; where it is a member of a chord's header it counts as a failed part (the chord's
    body then fails too); and the chain that was to follow it fails the same way."""
    for task in _result_tasks(step):
        task_id = cast("str | None", task.options.get("task_id"))
        if store and task_id and app.has_backend:
            app.backend.store_result(task_id, exc, state)
        chord, group_id = task.options.get("chord"), task.options.get("group_id")
        if chord and isinstance(group_id, str):
            index = cast("int | None", task.options.get("group_index"))
            part = ChordPart(group_id, task_id or "", index, state, exc)
            count_chord_part(app, cast("Mapping[str, object]", chord), part, message)
        for data in cast("list[Mapping[str, object]]", task.options.get("chain") or []):
            _fail_unrun(app, _signature(data, app), exc, message, store=store, state=state)


def fail_following(app: App, message: TaskMessage, state: str, error: BaseException, *, errbacks: bool) -> None:
    """The task of ``message`` ended without running to its end, in the worker's main
    process: revoked or expired before it started, stopped by the pool, or dead-lettered
    (an unknown task, a poison message). What was to follow it ends the same way, so that
    nothing waits for ever: its chord counts it as a part that ended ``state`` (the body
    then fails), the rest of its chain is given ``error``, and with ``errbacks`` its error
    callbacks are called, as for a task that raised."""
    try:
        if errbacks and message.errbacks:
            context = Context(
                id=message.id,
                task=message.name,
                args=message.args,
                kwargs=message.kwargs,
                group=message.group,
                group_index=message.group_index,
                root_id=message.root_id,
                parent_id=message.parent_id,
                called_directly=False,
            )
            call_errbacks(app, message.errbacks, message.id, context, error)
        if message.chord and message.group and app.has_backend:
            part = ChordPart(message.group, message.id, message.group_index, state, error)
            count_chord_part(app, message.chord, part, message)
        if message.chain and app.has_backend:
            _fail_chain(app, message, error, True, state)
    except Exception:
        logger.exception("could not end what follows %s[%s]", message.name, message.id)


def _result_tasks(step: Signature) -> list[Signature]:
    """The tasks whose results are ``step``'s: a chord's body, a group's members, or the task."""
    from taskq.canvas import chord, group

    if isinstance(step, chord):
        return [step.body]
    if isinstance(step, group):
        return list(step.tasks)
    return [step]


def on_chord_part_return(app: App, request: Request, state: str, result: object) -> None:
    """Count a finished chord header task; the last one sends the body with all results."""
    chord = request.message.chord
    group_id = cast("str | None", request.message.headers.get("group"))
    if not chord or not group_id or not app.has_backend:
        return
    index = cast("int | None", request.message.headers.get("group_index"))
    count_chord_part(app, chord, ChordPart(group_id, request.id, index, state, result), request.message)


def count_chord_part(app: App, chord: Mapping[str, object], part: ChordPart, message: TaskMessage) -> None:
    """Count one ended ``part`` of a chord (ended by ``message``'s task); the last part
    sends the body with every result, or fails it when a part failed, then confirms it to
    the backend (until then, the same part counted again sends it again: see
    :meth:`~taskq.drivers.backend.ResultBackend.count_chord_part`)."""
    if not app.has_backend:
        return
    body = _signature(chord, app)
    group_id = part.group_id
    try:
        metas = app.backend.count_chord_part(part, cast("int | None", body.get("chord_size")))
    except ChordError as exc:
        logger.error("%s (counting the end of %s[%s])", exc, message.name, message.id)
        return
    except Exception:
        logger.exception("chord %s: could not count the end of %s[%s]", group_id, message.name, message.id)
        return
    if metas is None:
        return
    failed = [(str(m.get("task_id")), m) for m in metas if m["status"] != states.SUCCESS]
    body_id = cast("str | None", body.options.get("task_id"))
    if failed:
        culprit, meta = failed[0]
        error = ChordError(f"chord {group_id}: header task {culprit} ended {meta['status']}: {meta.get('result')!r}")
        logger.error("%s; the body %s will not run", error, body.task)
        try:
            _fail_unrun(app, body, error, message)
        except Exception:
            logger.exception("chord %s: could not fail its body %s[%s]", group_id, body.task, body_id)
        errbacks = cast("list[Mapping[str, object]]", body.options.get("link_error") or [])
        if errbacks and body_id:
            context = Context(id=body_id, task=body.task, args=body.args, kwargs=body.kwargs, group=group_id)
            call_errbacks(app, errbacks, body_id, context, error)
        _confirm_chord_body(app, group_id, body)
        return
    values = [m.get("result") for m in metas]
    body.apply_async((values,), parent_id=message.id, root_id=message.headers.get("root_id"))
    _confirm_chord_body(app, group_id, body)


def _confirm_chord_body(app: App, group_id: str, body: Signature) -> None:
    """Tell the backend the chord's body was sent (or failed), so that no part counted again sends it."""
    try:
        app.backend.chord_body_sent(group_id)
    except Exception:
        logger.exception(
            "chord %s: its body %s[%s] was sent but could not be marked sent; a header task run again "
            "would send it again",
            group_id,
            body.task,
            body.options.get("task_id"),
        )


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
        if request.message.reply_to:  # the client that sent the chain waits for its result there (rpc://)
            options["reply_to"] = request.message.reply_to
        following.apply_async((retval,), **cast("dict[str, Any]", options))


def _signature(data: Mapping[str, object], app: App) -> Signature:
    """The signature a message carries (canvas is imported only once a task has callbacks)."""
    from taskq.canvas import Signature

    return Signature.from_dict(data, app)


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
        context = Context(
            id=task_id, task=task.name, args=args, kwargs=kwargs, retries=retries, is_eager=True, called_directly=False
        )
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
            if link_error:
                call_errbacks(app, [dict(e) for e in _as_list(link_error)], task_id, context, exc)
            text = "".join(tb.format_exception(exc))
            return EagerResult(task_id, exc, states.FAILURE, text, app=app, task_name=task.name)
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
