"""Cluster-wide metrics from the cluster's events: :class:`ClusterMetrics`.

Fed Celery-format events (``taskq metrics`` reads them with an
transport's event reader; the dashboard feeds its own), it counts tasks by
name and state, observes runtimes and queue waits, and knows which workers are online and
what each holds; at scrape time it adds every queue's depth, read from the app's
transport. :meth:`ClusterMetrics.render` gives the exposition to serve.

Events are untrusted: one that is not a mapping, has an unknown ``type``, or a field of the
wrong type or size (a negative runtime, a 10 MB task name) is skipped and counted in
``taskq_events_skipped_total`` by reason; :meth:`ClusterMetrics.event` never raises.

Memory is bounded: at most :data:`TASKS_MAX` tasks in flight are remembered (the oldest
are forgotten first, counted), and task and worker names are capped (see
:mod:`taskq_prometheus._metrics`).
"""

from __future__ import annotations

import datetime
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from taskq_prometheus._metrics import (
    NAMES_MAX,
    OTHER,
    TEXT_MAX,
    UNKNOWN,
    Names,
    TaskMetrics,
    is_label,
    seconds,
    timestamp,
)

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from taskq import App
    from taskq.drivers.transport import Transport

logger = logging.getLogger(__name__)

#: Most tasks in flight remembered (received or started, not ended); the oldest go first.
TASKS_MAX = 100_000
#: Most runs in flight remembered per task id (a retried task's runs may overlap); the oldest go first.
RUNS_MAX = 4
#: A worker is online while its last worker event is younger than its ``freq`` times this.
HEARTBEAT_EXPIRE_WINDOW = 2.0
#: Heartbeat interval assumed of a worker that does not say (``freq``), and the longest believed, in s.
DEFAULT_FREQ = 2.0
MAX_FREQ = 3600.0

#: Why an event was skipped: the ``reason`` label of ``taskq_events_skipped_total``.
NOT_A_MAPPING = "not_a_mapping"
UNKNOWN_TYPE = "unknown_type"
BAD_FIELD = "bad_field"


class _Task:
    """What is remembered of a task in flight, to label its later events (which carry no name)."""

    __slots__ = ("eta", "name", "received", "started", "worker")

    def __init__(self, name: str, worker: str, received: float | None, eta: float | None) -> None:
        self.name = name
        self.worker = worker
        self.received = received
        self.eta = eta
        self.started: float | None = None


class _Worker:
    __slots__ = ("freq", "last_seen")

    def __init__(self, last_seen: float, freq: float) -> None:
        self.last_seen = last_seen
        self.freq = freq


class ClusterMetrics:
    """A cluster's metrics, kept from its events; see the module docstring.

    ``queues``: the queues whose depth is read at each scrape (default: the queues a worker
    of ``app`` consumes by default: ``task_queues``, else ``task_default_queue``).
    ``registry``: where the metrics go (default: a registry of its own).
    """

    def __init__(
        self,
        app: App,
        *,
        queues: Sequence[str] | None = None,
        registry: CollectorRegistry | None = None,
        names_max: int = NAMES_MAX,
        tasks_max: int = TASKS_MAX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.queues = list(queues) if queues is not None else None
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        # First: a scrape reads the queues' depth before the counters of its failures are written out.
        self.registry.register(_ScrapeCollector(self))
        self._clock = clock
        self._lock = threading.Lock()
        # Runs in flight by task id, oldest first: a retried task keeps its id, and its next
        # run may be received (even started) before the end of the run that retried it.
        self._tasks: OrderedDict[str, list[_Task]] = OrderedDict()
        self._tasks_max = tasks_max
        self._workers: dict[str, _Worker] = {}
        self._worker_names = Names(names_max)
        self.metrics = TaskMetrics(self.registry, names_max=names_max)
        self._events = Counter(
            "taskq_events",
            "Events taken in, by type (task-*, worker-*).",
            ["type"],
            registry=self.registry,
        )
        self._skipped = Counter(
            "taskq_events_skipped",
            "Events skipped as malformed, by reason (not_a_mapping, unknown_type, bad_field).",
            ["reason"],
            registry=self.registry,
        )
        self._forgotten = Counter(
            "taskq_tasks_forgotten",
            f"Tasks in flight forgotten because more than {tasks_max} were (their end goes unlabelled).",
            registry=self.registry,
        )
        self.reconnects = Counter(
            "taskq_broker_reconnects",
            "Times this exporter connected to the broker again after losing it (events or queue depth).",
            registry=self.registry,
        )
        self.connection_errors = Counter(
            "taskq_broker_connection_errors",
            "Times this exporter lost the broker or could not reach it (events or queue depth).",
            registry=self.registry,
        )
        self._handlers: dict[str, Callable[[Mapping[str, object]], bool]] = {
            "task-sent": self._on_sent,
            "task-received": self._on_received,
            "task-started": self._on_started,
            "task-succeeded": self._on_succeeded,
            "task-failed": self._on_failed,
            "task-retried": self._on_retried,
            "task-rejected": self._on_rejected,
            "task-revoked": self._on_revoked,
            "worker-online": self._on_worker,
            "worker-heartbeat": self._on_worker,
            "worker-offline": self._on_worker_offline,
        }
        self._event_counts = {kind: self._events.labels(kind) for kind in self._handlers}
        self._skip_counts = {
            reason: self._skipped.labels(reason) for reason in (NOT_A_MAPPING, UNKNOWN_TYPE, BAD_FIELD)
        }
        self._transport: Transport | None = None
        self._transport_lock = threading.Lock()
        self._depth_failing = False

    # ---- Taking events in -------------------------------------------------------------

    def event(self, event: Mapping[str, object]) -> None:
        """Take one Celery-format event in; thread-safe; never raises (a malformed one is counted)."""
        try:
            kind = event.get("type")
        except Exception:  # not a mapping, or one whose get raises: hostile either way
            self._skip_counts[NOT_A_MAPPING].inc()
            return
        handler = self._handlers.get(kind) if type(kind) is str else None
        if handler is None:
            self._skip_counts[UNKNOWN_TYPE].inc()
            return
        try:
            with self._lock:
                taken = handler(event)
        except Exception:  # a mapping whose fields raise when read
            logger.debug("skipped an event whose fields cannot be read", exc_info=True)
            taken = False
        if taken:
            self._event_counts[kind].inc()  # type: ignore[index]  # kind is a str key of _handlers
        else:
            self._skip_counts[BAD_FIELD].inc()

    def _task(self, event: Mapping[str, object]) -> tuple[str, list[_Task] | None] | None:
        """The event's task id and its runs in flight; None when the id is malformed."""
        uuid = event.get("uuid")
        if type(uuid) is not str or not 0 < len(uuid) <= TEXT_MAX:
            return None
        return uuid, self._tasks.get(uuid)

    def _remember(self, uuid: str, runs: list[_Task] | None, task: _Task) -> None:
        if runs is not None:
            runs.append(task)
            if len(runs) > RUNS_MAX:
                del runs[0]
                self._forgotten.inc()
            return
        tasks = self._tasks
        tasks[uuid] = [task]
        if len(tasks) > self._tasks_max:
            _, forgotten = tasks.popitem(last=False)
            self._forgotten.inc(len(forgotten))

    def _on_sent(self, event: Mapping[str, object]) -> bool:
        name = event.get("name")
        if self._task(event) is None or not is_label(name):
            return False
        self.metrics.count(self.metrics.label(name), "sent")  # type: ignore[arg-type]  # checked by is_label
        return True

    def _on_received(self, event: Mapping[str, object]) -> bool:
        found = self._task(event)
        name, hostname = event.get("name"), event.get("hostname")
        if found is None or not is_label(name) or not is_label(hostname):
            return False
        received = timestamp(event.get("timestamp"))
        eta = _eta(event.get("eta"))
        label = self.metrics.label(name)  # type: ignore[arg-type]  # checked by is_label
        worker = self._worker_names.label(hostname)  # type: ignore[arg-type]  # checked by is_label
        self._remember(found[0], found[1], _Task(label, worker, received, eta))
        self.metrics.count(label, "received")
        return True

    def _on_started(self, event: Mapping[str, object]) -> bool:
        found = self._task(event)
        if found is None:
            return False
        uuid, runs = found
        started = timestamp(event.get("timestamp"))
        task = next((run for run in runs if run.started is None), None) if runs else None
        if task is None:
            hostname = event.get("hostname")
            worker = self._worker_names.label(hostname) if is_label(hostname) else UNKNOWN  # type: ignore[arg-type]
            name = runs[-1].name if runs else UNKNOWN
            task = _Task(name, worker, None, None)
            self._remember(uuid, runs, task)
        task.started = started if started is not None else 0.0
        self.metrics.count(task.name, "started")
        if started is not None and task.received is not None:
            since = task.received if task.eta is None else max(task.received, task.eta)
            wait = seconds(started - since)
            if wait is not None:
                self.metrics.observe_wait(task.name, wait)
        return True

    def _ended(self, event: Mapping[str, object], state: str, *, runtime: bool) -> bool:
        found = self._task(event)
        if found is None:
            return False
        reported: float | None = None
        if runtime and "runtime" in event:
            reported = seconds(event.get("runtime"))
            if reported is None:
                return False  # a runtime that is negative, huge or not a number
        uuid, runs = found
        task: _Task | None = None
        if runs:
            # The run that ended: the oldest started one (a revoked task: the oldest not started).
            wanted = state != "revoked"
            task = next((run for run in runs if (run.started is not None) is wanted), runs[0])
            runs.remove(task)
            if not runs:
                del self._tasks[uuid]
        name = task.name if task is not None else UNKNOWN
        self.metrics.count(name, state)
        if runtime:
            if reported is None and task is not None and task.started:
                ended = timestamp(event.get("timestamp"))
                reported = seconds(ended - task.started) if ended is not None else None
            if reported is not None:
                self.metrics.observe_runtime(name, reported)
        return True

    def _on_succeeded(self, event: Mapping[str, object]) -> bool:
        return self._ended(event, "succeeded", runtime=True)

    def _on_failed(self, event: Mapping[str, object]) -> bool:
        return self._ended(event, "failed", runtime=True)

    def _on_retried(self, event: Mapping[str, object]) -> bool:
        return self._ended(event, "retried", runtime=True)

    def _on_rejected(self, event: Mapping[str, object]) -> bool:
        return self._ended(event, "rejected", runtime=False)

    def _on_revoked(self, event: Mapping[str, object]) -> bool:
        return self._ended(event, "revoked", runtime=False)

    def _on_worker(self, event: Mapping[str, object]) -> bool:
        hostname = event.get("hostname")
        if not is_label(hostname):
            return False
        freq = event.get("freq", DEFAULT_FREQ)
        if type(freq) not in (int, float) or not 0 < freq <= MAX_FREQ:  # type: ignore[operator]  # a number here
            freq = DEFAULT_FREQ
        label = self._worker_names.label(hostname)  # type: ignore[arg-type]  # checked by is_label
        self._workers[label] = _Worker(self._clock(), float(freq))  # type: ignore[arg-type]  # a number here
        return True

    def _on_worker_offline(self, event: Mapping[str, object]) -> bool:
        hostname = event.get("hostname")
        if not is_label(hostname):
            return False
        label = self._worker_names.label(hostname)  # type: ignore[arg-type]  # checked by is_label
        self._workers.pop(label, None)
        if label != OTHER:
            # What it held went back to the broker: forget it (rare, so a scan is fine).
            for uuid, runs in list(self._tasks.items()):
                kept = [run for run in runs if run.worker != label]
                if not kept:
                    del self._tasks[uuid]
                elif len(kept) < len(runs):
                    self._tasks[uuid] = kept
        return True

    # ---- Scraping -----------------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """The metrics in Prometheus' text format: ``(body, content type)``."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def online_workers(self) -> list[str]:
        """The workers heard from recently enough (by their heartbeat interval)."""
        now = self._clock()
        with self._lock:
            return [
                name
                for name, worker in self._workers.items()
                if now < worker.last_seen + worker.freq * HEARTBEAT_EXPIRE_WINDOW
            ]

    def in_flight(self) -> dict[str, tuple[int, int]]:
        """``{worker: (reserved, active)}``: tasks received and not started, started and not ended."""
        online = set(self.online_workers())
        counts = {name: [0, 0] for name in online}
        with self._lock:
            for runs in self._tasks.values():
                for task in runs:
                    pair = counts.get(task.worker)
                    if pair is not None:
                        pair[0 if task.started is None else 1] += 1
        return {name: (pair[0], pair[1]) for name, pair in counts.items()}

    def queue_names(self) -> list[str]:
        """The queues whose depth is read at each scrape."""
        if self.queues is None:
            self.queues = self.app.routing.worker_queues()
        return self.queues

    def depths(self) -> dict[str, int]:
        """Each queue's depth, from the app's transport; empty when the broker cannot be reached."""
        with self._transport_lock:
            try:
                if self._transport is None:
                    self._transport = self.app.new_transport()
                found = {queue: int(self._transport.depth(queue)) for queue in self.queue_names()}
            except Exception as exc:
                self.connection_errors.inc()
                if not self._depth_failing:
                    logger.warning(
                        "could not read the queues' depth (%s: %s); retrying at each scrape", type(exc).__name__, exc
                    )
                self._depth_failing = True
                self._close_transport()
                return {}
            if self._depth_failing:
                logger.warning("reading the queues' depth again")
                self.reconnects.inc()
                self._depth_failing = False
            return found

    def _close_transport(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            try:
                transport.close()
            except Exception:
                logger.debug("closing the transport failed", exc_info=True)

    def close(self) -> None:
        """Let go of the transport used for queue depth."""
        with self._transport_lock:
            self._close_transport()


class _ScrapeCollector(Collector):
    """The gauges read at scrape time: queue depth, workers online, tasks in flight per worker."""

    def __init__(self, metrics: ClusterMetrics) -> None:
        self.metrics = metrics

    def describe(self) -> Iterator[Metric]:
        return iter(())  # the names are known only at scrape time; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        metrics = self.metrics
        depth = GaugeMetricFamily(
            "taskq_queue_depth", "Messages in the queue (due or not, claimed or not), read at scrape.", labels=["queue"]
        )
        for queue, count in metrics.depths().items():
            depth.add_metric([queue], count)
        yield depth
        online = metrics.online_workers()
        yield GaugeMetricFamily("taskq_workers_online", "Workers whose heartbeat is current.", value=len(online))
        up = GaugeMetricFamily("taskq_worker_up", "1 for each worker whose heartbeat is current.", labels=["worker"])
        reserved = GaugeMetricFamily(
            "taskq_worker_tasks_reserved",
            "Tasks a worker received and has not started (prefetched, or waiting for an ETA).",
            labels=["worker"],
        )
        active = GaugeMetricFamily("taskq_worker_tasks_active", "Tasks a worker is running.", labels=["worker"])
        for worker, (held, running) in sorted(metrics.in_flight().items()):
            up.add_metric([worker], 1)
            reserved.add_metric([worker], held)
            active.add_metric([worker], running)
        yield up
        yield reserved
        yield active


def _eta(value: object) -> float | None:
    """The POSIX time of a task-received event's ``eta`` (ISO 8601), or None if absent or unreadable."""
    if type(value) is not str or len(value) > 64:
        return None
    try:
        when = datetime.datetime.fromisoformat(value)
        if when.tzinfo is None:  # naive means UTC, as in the message protocol
            when = when.replace(tzinfo=datetime.UTC)
        seconds = when.timestamp()
    except (ValueError, OverflowError, OSError):
        return None
    return seconds if math.isfinite(seconds) else None


__all__ = ["HEARTBEAT_EXPIRE_WINDOW", "TASKS_MAX", "ClusterMetrics"]
