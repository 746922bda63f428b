"""A cluster's state, kept in memory from its events: workers alive or lost, tasks with
their history. What ``taskq top`` shows and a monitor keeps, as Celery's ``State``.

Feed it events (:meth:`State.event`, or ``EventReceiver(app, {"*": state.event})``).
Memory is bounded: the most recent :attr:`State.max_tasks` tasks and
:attr:`State.max_workers` workers are kept, the least recently heard of go first.

Events may come late or out of order (several senders, batches): a task's state only
moves forward in its life (PENDING, RECEIVED, STARTED, then how it ended), except that a
new attempt (a retry, or the message delivered again) after a retry starts it again; an
older event never overwrites a newer one.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import cast

from taskq import states

#: How many heartbeat intervals without a heartbeat make a worker lost (Celery's: 2).
HEARTBEAT_EXPIRE_WINDOW = 2.0
#: Heartbeat interval assumed of a worker that did not say (``freq``), and the longest believed.
DEFAULT_FREQ = 2.0
MAX_FREQ = 3600.0

# A task event's type to the state it puts the task in.
TASK_STATES = {
    "task-sent": states.PENDING,
    "task-received": "RECEIVED",
    "task-started": states.STARTED,
    "task-succeeded": states.SUCCESS,
    "task-failed": states.FAILURE,
    "task-retried": states.RETRY,
    "task-revoked": states.REVOKED,
    "task-rejected": states.REJECTED,
}
# How far in its life each state is: a state never gives way to one less far.
_PROGRESS = {states.PENDING: 0, "RECEIVED": 1, states.STARTED: 2, states.RETRY: 3}
_ENDED = frozenset({states.SUCCESS, states.FAILURE, states.REVOKED, states.REJECTED})
# The text fields a task event may carry that the task keeps (the last one seen wins).
_TEXT_FIELDS = (
    "name",
    "args",
    "kwargs",
    "eta",
    "expires",
    "root_id",
    "parent_id",
    "result",
    "exception",
    "traceback",
    "queue",
)


@dataclass
class WorkerState:
    """One worker, from its events."""

    hostname: str
    freq: float = DEFAULT_FREQ
    last_heartbeat: float | None = None
    online: bool = True
    active: int = 0
    processed: int = 0
    loadavg: list[float] = field(default_factory=list)
    pid: int | None = None
    software: str = ""

    def alive(self, now: float | None = None) -> bool:
        """Whether the worker is online and was heard of within two heartbeat intervals."""
        if not self.online or self.last_heartbeat is None:
            return False
        return (now if now is not None else time.time()) < self.last_heartbeat + self.freq * HEARTBEAT_EXPIRE_WINDOW


@dataclass
class TaskState:
    """One task, from its events: its state, what they told, and their history."""

    uuid: str
    state: str = states.PENDING
    worker: str | None = None
    name: str | None = None
    args: str | None = None
    kwargs: str | None = None
    retries: int | None = None
    eta: str | None = None
    expires: str | None = None
    root_id: str | None = None
    parent_id: str | None = None
    result: str | None = None
    exception: str | None = None
    traceback: str | None = None
    runtime: float | None = None
    queue: str | None = None
    #: When each state was reached (POSIX time), by state.
    timestamps: dict[str, float] = field(default_factory=dict)
    #: ``(type, timestamp)`` of every event of the task, in the order they came.
    history: list[tuple[str, float]] = field(default_factory=list)
    _at: float = 0.0  # the time of the event that set the state

    def apply(self, event: Mapping[str, object]) -> None:
        kind = str(event["type"])
        when = _number(event.get("timestamp"), time.time())
        self.history.append((kind, when))
        if len(self.history) > MAX_HISTORY:
            del self.history[0]
        for name in _TEXT_FIELDS:
            value = event.get(name)
            if isinstance(value, str):
                setattr(self, name, value)
        retries, runtime = event.get("retries"), event.get("runtime")
        if isinstance(retries, int) and not isinstance(retries, bool):
            self.retries = retries
        if runtime is not None:
            self.runtime = _number(runtime, self.runtime or 0.0)
        if kind != "task-sent" and isinstance(event.get("hostname"), str):
            self.worker = cast(str, event["hostname"])
        new = TASK_STATES.get(kind)
        if new is None:
            return
        self.timestamps.setdefault(new, when)
        if self._moves_to(new, when):
            self.state, self._at = new, when

    def _moves_to(self, new: str, when: float) -> bool:
        current = self.state
        if new in _ENDED:
            return current not in _ENDED or when >= self._at
        if current in _ENDED:
            return False  # an older step of a task that ended, come late
        if current == states.RETRY and new in ("RECEIVED", states.STARTED):
            return when >= self._at  # a new attempt
        return _PROGRESS[new] > _PROGRESS[current] or (new == current and when >= self._at)

    @property
    def ready(self) -> bool:
        return self.state in _ENDED


#: Most events kept in one task's history.
MAX_HISTORY = 50


class State:
    """The workers and tasks of a cluster, as its events tell."""

    def __init__(self, max_workers: int = 5_000, max_tasks: int = 10_000) -> None:
        self.max_workers = max_workers
        self.max_tasks = max_tasks
        self.workers: OrderedDict[str, WorkerState] = OrderedDict()
        self.tasks: OrderedDict[str, TaskState] = OrderedDict()
        self.event_count = 0
        self.task_count = 0  # tasks ever seen, those forgotten included

    def event(self, event: Mapping[str, object]) -> None:
        """Take one event in. One that is not an event (no text ``type``) is ignored."""
        kind = event.get("type")
        if not isinstance(kind, str):
            return
        self.event_count += 1
        group = kind.split("-", 1)[0]
        if group == "worker":
            self._worker_event(kind, event)
        elif group == "task":
            self._task_event(event)

    def _worker_event(self, kind: str, event: Mapping[str, object]) -> None:
        hostname = event.get("hostname")
        if not isinstance(hostname, str):
            return
        worker = self._worker(hostname)
        freq = _number(event.get("freq"), worker.freq)
        worker.freq = freq if 0 < freq <= MAX_FREQ else worker.freq
        if kind == "worker-offline":
            worker.online = False
            return
        worker.online = True
        worker.last_heartbeat = max(worker.last_heartbeat or 0.0, _number(event.get("timestamp"), time.time()))
        if kind == "worker-heartbeat":
            worker.active = int(_number(event.get("active"), worker.active))
            worker.processed = int(_number(event.get("processed"), worker.processed))
            loadavg = event.get("loadavg")
            if isinstance(loadavg, list):
                worker.loadavg = [_number(value, 0.0) for value in loadavg]
        if isinstance(event.get("pid"), int):
            worker.pid = cast(int, event["pid"])
        if isinstance(event.get("sw_ident"), str):
            worker.software = f"{event['sw_ident']} {event.get('sw_ver', '')}".strip()

    def _worker(self, hostname: str) -> WorkerState:
        worker = self.workers.get(hostname)
        if worker is None:
            worker = self.workers[hostname] = WorkerState(hostname)
            while len(self.workers) > self.max_workers:
                self.workers.popitem(last=False)
        else:
            self.workers.move_to_end(hostname)
        return worker

    def _task_event(self, event: Mapping[str, object]) -> None:
        uuid = event.get("uuid")
        if not isinstance(uuid, str):
            return
        task = self.tasks.get(uuid)
        if task is None:
            task = self.tasks[uuid] = TaskState(uuid)
            self.task_count += 1
            while len(self.tasks) > self.max_tasks:
                self.tasks.popitem(last=False)
        else:
            self.tasks.move_to_end(uuid)
        task.apply(event)
        hostname = event.get("hostname")
        if isinstance(hostname, str) and event.get("type") != "task-sent":
            self._worker(hostname)

    def alive_workers(self, now: float | None = None) -> list[WorkerState]:
        return [worker for worker in self.workers.values() if worker.alive(now)]

    def tasks_by_state(self, state: str) -> Iterator[TaskState]:
        return (task for task in self.tasks.values() if task.state == state)

    def tasks_by_name(self, name: str) -> Iterator[TaskState]:
        return (task for task in self.tasks.values() if task.name == name)


def _number(value: object, default: float) -> float:
    """``value`` as a finite number, else ``default``: an event's fields are checked, not trusted."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    number = float(value)
    return number if number == number and abs(number) != float("inf") else default


__all__ = ["HEARTBEAT_EXPIRE_WINDOW", "State", "TaskState", "WorkerState"]
