"""The worker's events: ``worker-online``, a ``worker-heartbeat`` every two seconds and
``worker-offline`` whenever its broker can carry events, and task events with ``-E``
(``worker_send_task_events``); see :mod:`taskq.events`.

The consumer, in the worker's main process, sends every task event: received as a
message is taken in, started as its task is handed to the pool, then how it ended from
the outcome the pool reports (a prefork child never sends events). The heartbeat comes
from a thread of its own, so a long task on the solo pool does not make the worker look
lost to a monitor.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING

from taskq.drivers.bootstep import Step
from taskq.drivers.support.connections import mask_url
from taskq.events import HEARTBEAT_INTERVAL, SOFTWARE, EventDispatcher
from taskq.worker import trace

if TYPE_CHECKING:
    from taskq.worker.consumer import Consumer
    from taskq.worker.request import Request
    from taskq.worker.worker import Worker

logger = logging.getLogger(__name__)


def task_events_wanted(worker: Worker) -> bool:
    """Whether this worker sends task events (``-E``, ``worker_send_task_events``)."""
    return bool(worker.app.conf["worker_send_task_events"])


def prepare(worker: Worker) -> None:
    """Before the pool starts (its processes inherit it): have the tracer put what a
    task event tells (the result's repr, the exception and traceback) in each outcome."""
    trace.EVENT_DETAILS = task_events_wanted(worker)


class EventStep(Step):
    """Sends the worker's events, when its broker can carry them."""

    name = "events"
    requires = ("consumer",)

    def __init__(self, worker: Worker) -> None:
        super().__init__(worker)
        self.dispatcher: EventDispatcher | None = None
        self._stopped = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def start(self) -> None:
        worker = self.worker
        consumer = worker.consumer
        assert consumer is not None, "the events step starts after the consumer"
        task_events = task_events_wanted(worker)
        if not consumer.transport.capabilities.events:
            if task_events:
                logger.warning(
                    "task events are on (-E) but the broker %s cannot carry events: none are sent",
                    mask_url(worker.broker_url),
                )
            return
        dispatcher = EventDispatcher(worker.app, worker.hostname, groups=None if task_events else {"worker"})
        self.dispatcher = dispatcher
        if task_events:
            consumer.events = dispatcher
        dispatcher.send("worker-online", freq=HEARTBEAT_INTERVAL, **SOFTWARE)
        self._heartbeat = threading.Thread(
            target=self._beat, args=(dispatcher, consumer), name="taskq-event-heartbeat", daemon=True
        )
        self._heartbeat.start()

    def _beat(self, dispatcher: EventDispatcher, consumer: Consumer) -> None:
        while not self._stopped.wait(HEARTBEAT_INTERVAL):
            self.send_heartbeat(dispatcher, consumer)

    @staticmethod
    def send_heartbeat(dispatcher: EventDispatcher, consumer: Consumer) -> None:
        dispatcher.send(
            "worker-heartbeat",
            freq=HEARTBEAT_INTERVAL,
            active=len(consumer.active),
            processed=consumer.processed,
            loadavg=_load_average(),
            **SOFTWARE,
        )

    def stop(self) -> None:
        self._stopped.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=HEARTBEAT_INTERVAL + 1)
        dispatcher = self.dispatcher
        if dispatcher is not None:
            consumer = self.worker.consumer
            if consumer is not None:
                consumer.events = None
            dispatcher.send("worker-offline", freq=HEARTBEAT_INTERVAL, **SOFTWARE)
            dispatcher.close()


def _step(worker: Worker) -> EventStep | None:
    for step in worker.blueprint.started:
        if isinstance(step, EventStep):
            return step
    return None


def set_task_events(worker: Worker, on: bool) -> bool:
    """Start or stop sending task events (``enable_events``/``disable_events``); in the
    loop's thread. False when the broker cannot carry events.

    On a prefork pool whose processes started with events off, the task-succeeded and
    task-failed events carry no result or exception text until those processes are replaced.
    """
    step = _step(worker)
    consumer = worker.consumer
    if step is None or step.dispatcher is None or consumer is None:
        return False
    step.dispatcher.groups = None if on else {"worker"}
    consumer.events = step.dispatcher if on else None
    trace.EVENT_DETAILS = on
    return True


def send_heartbeat(worker: Worker) -> None:
    """Send a worker-heartbeat now (the ``heartbeat`` control command)."""
    step = _step(worker)
    consumer = worker.consumer
    if step is not None and step.dispatcher is not None and consumer is not None:
        step.send_heartbeat(step.dispatcher, consumer)


def _load_average() -> list[float]:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:  # not on this system
        return [0.0, 0.0, 0.0]


# ---- The task events, as the consumer sends them ----------------------------------------


def received(events: EventDispatcher, request: Request) -> None:
    message = request.message
    headers = message.headers
    events.send(
        "task-received",
        uuid=message.id,
        name=message.name,
        args=request.argsrepr,
        kwargs=message.kwargsrepr if message.kwargsrepr is not None else repr(message.kwargs),
        root_id=message.root_id,
        parent_id=message.parent_id,
        retries=message.retries,
        eta=headers.get("eta") if isinstance(headers.get("eta"), str) else None,
        expires=headers.get("expires") if isinstance(headers.get("expires"), str) else None,
    )


def started(events: EventDispatcher, request: Request) -> None:
    events.send("task-started", uuid=request.id)


def ended(events: EventDispatcher, request: Request, outcome: trace.TraceOutcome) -> None:
    """The event of how the task ended, from the outcome the pool reported."""
    from taskq import states

    state = outcome.state
    if state == states.SUCCESS:
        events.send("task-succeeded", uuid=request.id, result=outcome.detail, runtime=outcome.runtime)
    elif state == states.FAILURE:
        events.send("task-failed", uuid=request.id, exception=outcome.detail, traceback=outcome.traceback)
    elif state == states.RETRY:
        events.send("task-retried", uuid=request.id, exception=outcome.detail, traceback=outcome.traceback)
    elif state == states.REJECTED:
        events.send("task-rejected", uuid=request.id, requeue=outcome.requeue)


def revoked(events: EventDispatcher, request: Request, *, expired: bool, terminated: bool = False) -> None:
    events.send("task-revoked", uuid=request.id, terminated=terminated, signum=None, expired=expired)


def stopped(events: EventDispatcher, request: Request, error: BaseException) -> None:
    """The pool ended the task: terminated (revoked), or failed (time limit, lost process)."""
    from taskq.errors import Terminated

    if isinstance(error, Terminated):
        revoked(events, request, expired=False, terminated=True)
    else:
        events.send("task-failed", uuid=request.id, exception=repr(error), traceback=None)


__all__ = [
    "EventStep",
    "ended",
    "prepare",
    "received",
    "revoked",
    "send_heartbeat",
    "set_task_events",
    "started",
    "stopped",
]
