"""The spans of taskq: one per task message sent, one per task run, joined by the message headers.

* **send** (``send <queue>``, kind PRODUCER): from ``taskq_before_publish`` to
  ``taskq_after_publish``, in the sending thread, a child of whatever span is current there
  (a web request's, or the run of the task that sends it: its retry, the next step of its
  chain, a chord's body). Its context goes into the message headers (``traceparent``,
  ``tracestate``) through the global propagator.
* **create** (``create <queue>``, PRODUCER) under one **send** span (CLIENT) per group: the
  members of a group or chord header sent where no span is current (a script, a shell) are
  a batch, as OpenTelemetry's messaging conventions model one, so the whole workflow is
  one trace rather than one per member.
* **process** (``process <queue>``, kind CONSUMER): from ``taskq_task_prerun`` to
  ``taskq_task_postrun``, in the thread or process that runs the task, a child of the
  context the message carries. It is the current span while the task runs, so the spans
  the task makes, and the messages it sends, are its children.

Every method here runs on the per-message path: quick, and guarded by the hooks in
:mod:`taskq_opentelemetry.plugin`, so that nothing here can fail a send or a task.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from taskq_opentelemetry.carrier import HEADER_GETTER, HEADER_SETTER

if TYPE_CHECKING:
    from collections.abc import Mapping
    from contextvars import Token

    from opentelemetry.context import Context
    from opentelemetry.util.types import AttributeValue

    from taskq.drivers import Request

logger = logging.getLogger(__name__)

#: The name the spans give as ``messaging.system`` (and the instrumentation scope's name).
MESSAGING_SYSTEM = "taskq"
INSTRUMENTATION_NAME = "taskq_opentelemetry"
INSTRUMENTATION_VERSION = "0.1.0"
#: The semantic conventions the span names and attributes follow.
SCHEMA_URL = "https://opentelemetry.io/schemas/1.30.0"

# Longest a send span waits for taskq_after_publish, in seconds: a send that raised never
# gets it, and its span is then ended with an ERROR status as unconfirmed.
UNCONFIRMED_SEND_SECONDS = 300.0
# Most send spans waiting for taskq_after_publish at once; past it the oldest is ended as unconfirmed.
MAX_UNCONFIRMED_SENDS = 10_000
# Most groups remembered, so that a member sent late joins its group's trace.
MAX_REMEMBERED_GROUPS = 256
# Longest text (an exception's message, a retry's reason) put on a span, in characters.
MAX_TEXT = 1024
# Longest wait for the TracerProvider to export what it holds as a process leaves, in milliseconds.
FLUSH_TIMEOUT_MILLIS = 5000


@dataclass(slots=True)
class _Batch:
    """The send span of a group sent where no span was current, and its members in flight."""

    span: Span
    context: Context
    members: int = 0
    in_flight: int = 0
    ended: bool = False


@dataclass(slots=True)
class _Send:
    """A message's send (or create) span, waiting for the broker to have the message."""

    span: Span
    started: float  # time.monotonic()
    batch: _Batch | None


@dataclass(slots=True)
class _Run:
    """A task's process span, current in ``thread`` while the task runs."""

    span: Span
    token: Token[Context]  # from opentelemetry.context.attach, to restore the context before
    thread: int
    failed: bool = False  # its exception is recorded already
    internal_error: bool = False  # no taskq_task_postrun will follow
    ended: bool = False  # ended from another thread; its context is restored if the run ever returns


class TaskTracer:
    """Starts and ends the spans of sends and runs in one process; safe across threads and forks."""

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        # A proxy until a TracerProvider is set: one set after this (in the app's module,
        # in a pool child) is used from then on.
        self.tracer = trace.get_tracer(
            INSTRUMENTATION_NAME, INSTRUMENTATION_VERSION, tracer_provider, schema_url=SCHEMA_URL
        )
        self._lock = threading.Lock()
        self._sends: OrderedDict[str, _Send] = OrderedDict()  # by task id
        self._batches: OrderedDict[str, _Batch] = OrderedDict()  # by group id
        self._runs: dict[int, _Run] = {}  # by id() of the request

    def forget_all(self) -> None:
        """Drop every span in flight without ending it: a forked child has none of its parent's."""
        self._lock = threading.Lock()  # the parent's may have been held by another thread at the fork
        self._sends = OrderedDict()
        self._batches = OrderedDict()
        self._runs = {}

    # ---- Sending ---------------------------------------------------------------------

    def message_sending(self, name: str, task_id: str, headers: dict[str, object], queue: str) -> None:
        """A message is about to be sent: start its span and put the span's context in ``headers``."""
        parent = otel_context.get_current()
        batch: _Batch | None = None
        if not trace.get_current_span(parent).get_span_context().is_valid:
            group_id = headers.get("group")
            if type(group_id) is str:
                batch = self._batch(group_id, queue, parent)
                parent = batch.context
        operation = "create" if batch is not None else "send"
        attributes = _messaging(operation, queue, task_id)
        attributes.update(_task_attributes(name, headers))
        span = self.tracer.start_span(
            f"{operation} {queue}", context=parent, kind=SpanKind.PRODUCER, attributes=attributes
        )
        propagate.inject(headers, context=trace.set_span_in_context(span, parent), setter=HEADER_SETTER)
        now = time.monotonic()
        with self._lock:
            replaced = self._sends.pop(task_id, None)
            expired = self._expired(now)
            self._sends[task_id] = _Send(span, now, batch)
            if batch is not None:
                batch.members += 1
                batch.in_flight += 1
        if replaced is not None:
            expired.append(replaced)
        for send in expired:
            send.span.set_status(Status(StatusCode.ERROR, "the message was not confirmed sent"))
            self._end_send(send)

    def message_sent(self, task_id: str) -> None:
        """The broker has the message ``task_id``: end its span (once, however many queues got it)."""
        with self._lock:
            send = self._sends.pop(task_id, None)
        if send is not None:
            self._end_send(send)

    def _batch(self, group_id: str, queue: str, parent: Context) -> _Batch:
        with self._lock:
            batch = self._batches.get(group_id)
            if batch is not None:
                return batch
        attributes = _messaging("send", queue, None)
        attributes["taskq.group.id"] = group_id
        span = self.tracer.start_span(f"send {queue}", context=parent, kind=SpanKind.CLIENT, attributes=attributes)
        batch = _Batch(span, trace.set_span_in_context(span, parent))
        with self._lock:
            batch = self._batches.setdefault(group_id, batch)
            while len(self._batches) > MAX_REMEMBERED_GROUPS:
                self._batches.popitem(last=False)
        return batch

    def _expired(self, now: float) -> list[_Send]:
        """Pop the sends waiting too long, and the oldest when there is no room for one more;
        called with the lock held, before a send is added."""
        found = []
        sends = self._sends
        while sends:
            oldest = next(iter(sends.values()))
            if len(sends) < MAX_UNCONFIRMED_SENDS and now - oldest.started < UNCONFIRMED_SEND_SECONDS:
                break
            found.append(sends.popitem(last=False)[1])
        return found

    def _end_send(self, send: _Send) -> None:
        send.span.end()
        batch = send.batch
        if batch is None:
            return
        with self._lock:
            batch.in_flight -= 1
            done = batch.in_flight <= 0 and not batch.ended
            if done:
                batch.ended = True
        if done:
            batch.span.set_attribute("messaging.batch.message_count", batch.members)
            batch.span.end()

    # ---- Running ---------------------------------------------------------------------

    def task_starting(self, request: Request) -> None:
        """``request``'s task is about to run here: start its span and make it current."""
        message = request.message
        parent = propagate.extract(message.headers, getter=HEADER_GETTER)
        queue = request.delivery.queue
        attributes = _messaging("process", queue, message.id)
        attributes["messaging.client.id"] = request.hostname
        attributes["taskq.task.name"] = message.name
        attributes["taskq.task.retries"] = message.retries
        attributes["taskq.task.deliveries"] = request.delivery.deliveries
        for key, value in (
            ("taskq.task.root_id", message.root_id),
            ("taskq.task.parent_id", message.parent_id),
            ("taskq.group.id", message.group),
        ):
            if value is not None:
                attributes[key] = value
        span = self.tracer.start_span(f"process {queue}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes)
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        self._runs[id(request)] = _Run(span, token, threading.get_ident())

    def task_retrying(self, request: Request, reason: BaseException) -> None:
        """The task asked to run again: an event on its span (the new message's span follows it)."""
        run = self._runs.get(id(request))
        if run is not None:
            run.span.add_event(
                "taskq.task.retry",
                {
                    "exception.type": _qualified_name(type(reason)),
                    "exception.message": _text(reason),
                    "taskq.task.retries": request.message.retries,
                },
            )

    def task_failed(self, request: Request, exc: BaseException) -> None:
        """The task failed with ``exc``: record it and set the status to ERROR.

        The span ends here when no ``taskq_task_postrun`` will come: after an internal error,
        or when the failure is known elsewhere than where the task ran (a time limit).
        """
        run = self._runs.get(id(request))
        if run is None:
            return
        if not run.failed:
            _record_failure(run, exc)
        if run.internal_error:
            self.task_finished(request, "FAILURE")
        elif run.thread != threading.get_ident() and not run.ended:
            # Known in the worker's main thread (a time limit): the run may never return
            # to end its span; if it does, taskq_task_postrun still restores its context.
            run.ended = True
            run.span.set_attribute("taskq.task.state", "FAILURE")
            run.span.end()

    def task_internal_error(self, request: Request, exc: BaseException) -> None:
        """The worker's part around the task failed: the task fails, and its span ends at the failure."""
        run = self._runs.get(id(request))
        if run is not None:
            _record_failure(run, exc)
            run.span.set_attribute("taskq.internal_error", True)
            run.internal_error = True

    def task_finished(self, request: Request, state: str) -> None:
        """The task has run: end its span, with the task's final ``state``, and restore the context."""
        run = self._runs.pop(id(request), None)
        if run is None:
            return
        try:
            if not run.ended:
                run.span.set_attribute("taskq.task.state", state)
                run.span.end()
        finally:
            if run.thread == threading.get_ident():
                otel_context.detach(run.token)

    def runs_in_flight(self) -> int:
        """How many process spans are open in this process (for tests and diagnostics)."""
        return len(self._runs)

    def sends_in_flight(self) -> int:
        """How many send spans wait for the broker to have their message."""
        return len(self._sends)


def flush() -> bool:
    """Have the global TracerProvider export the spans it holds (an SDK's, with a ``force_flush``).

    A prefork child leaves without running ``atexit`` handlers, so the spans its batch
    processor still holds would be lost. Returns whether there was a provider to flush.
    """
    force_flush = getattr(trace.get_tracer_provider(), "force_flush", None)
    if not callable(force_flush):
        return False
    force_flush(FLUSH_TIMEOUT_MILLIS)
    return True


def _messaging(operation: str, queue: str, message_id: str | None) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {
        "messaging.system": MESSAGING_SYSTEM,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.destination.name": queue,
    }
    if message_id is not None:
        attributes["messaging.message.id"] = message_id
    return attributes


def _task_attributes(name: str, headers: Mapping[str, object]) -> dict[str, AttributeValue]:
    """The taskq attributes of a message about to be sent (its headers are core's own)."""
    attributes: dict[str, AttributeValue] = {"taskq.task.name": name}
    retries = headers.get("retries")
    if type(retries) is int:
        attributes["taskq.task.retries"] = retries
    for key, header in (
        ("taskq.task.root_id", "root_id"),
        ("taskq.task.parent_id", "parent_id"),
        ("taskq.group.id", "group"),
        ("taskq.task.eta", "eta"),
    ):
        value = headers.get(header)
        if type(value) is str:
            attributes[key] = value
    return attributes


def _record_failure(run: _Run, exc: BaseException) -> None:
    run.failed = True
    span = run.span
    kind = _qualified_name(type(exc))
    span.set_attribute("error.type", kind)
    span.set_status(Status(StatusCode.ERROR, f"{kind}: {_text(exc)}"))
    try:
        span.record_exception(exc)
    except Exception:  # an exception whose str() or traceback raises: its type is on the span
        span.add_event("exception", {"exception.type": kind, "exception.message": _text(exc)})


def _qualified_name(kind: type[BaseException]) -> str:
    module = getattr(kind, "__module__", None)
    name = getattr(kind, "__qualname__", kind.__name__)
    return name if module in (None, "builtins") else f"{module}.{name}"


def _text(value: object) -> str:
    """``str(value)``, cut to :data:`MAX_TEXT`; a ``__str__`` that raises gives a placeholder."""
    try:
        text = str(value)
    except Exception:
        return f"<{type(value).__name__} whose str() raised>"
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."


#: The process's tracer: what the plugin's hooks use.
TRACER = TaskTracer()
os.register_at_fork(after_in_child=TRACER.forget_all)

__all__ = [
    "INSTRUMENTATION_NAME",
    "MESSAGING_SYSTEM",
    "SCHEMA_URL",
    "TRACER",
    "TaskTracer",
    "flush",
]
