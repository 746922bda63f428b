"""One worker's own metrics, from its hooks, served on ``prometheus_port``: no events needed.

Where each hook fires decides where it is counted (see :mod:`taskq.worker.endings`):

* ``taskq_task_received``, ``taskq_task_revoked`` and ``taskq_task_rejected`` fire in the
  worker's main process, and are counted there.
* ``taskq_task_prerun`` and ``taskq_task_postrun`` fire where the task runs: the main
  process on the solo, thread and event-loop pools, a child process on prefork. A child
  cannot count into the main process's registry, so it sends a small record of each start
  and end through a pipe the main process made before the pool started (one atomic
  ``write`` per record, under ``PIPE_BUF``); a thread of the main process reads them and
  counts them there. Every count lives in the main process, whatever the pool.
* ``taskq_task_failure`` and ``taskq_task_revoked(terminated=True)`` also fire in the main
  process when the pool ended a task from outside (hard time limit, a lost child,
  ``revoke(terminate=True)``): no postrun follows them, so they are counted as the task's
  end. A failure raised by the task itself is followed by its postrun, which counts it.

Tasks reserved are those received and not yet started, revoked or rejected, as the hooks
tell (a task whose ETA is far enough for the consumer to hand it back to the broker is not
held, so not counted); tasks active are read from the consumer at scrape time, as
``inspect active`` and the heartbeat give them. Broker errors and reconnects are the
consumer's own counters (as ``inspect stats`` reports them), read at each scrape.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Generic, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from taskq.drivers.bootstep import Step
from taskq.errors import ConfigError
from taskq_prometheus._http import MetricsServer
from taskq_prometheus._metrics import TaskMetrics, seconds

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from taskq.drivers import Request, Worker

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Most tasks remembered between received and started (for their queue wait); oldest go first.
WAITING_MAX = 100_000
#: Longest task id or name sent through the pipe, in bytes (a record stays under PIPE_BUF).
PIPE_TEXT_MAX = 1000

# A pipe record: kind (b"S" started, b"E" ended), state code, id length, name length,
# a time (started: POSIX time; ended: runtime in seconds), then the id and the name.
_RECORD = struct.Struct("<ccHHd")
_STATE_CODES = {"SUCCESS": b"s", "FAILURE": b"f", "RETRY": b"r", "IGNORED": b"i", "REJECTED": b"j"}
_CODE_STATES = {b"s": "succeeded", b"f": "failed", b"r": "retried", b"i": "ignored", b"j": None}


def parse_port(value: object) -> int | None:
    """``prometheus_port`` as a port number, None when unset.

    Raises:
        ConfigError: not a port from 1 to 65535 (0, which would pick a random port nobody
            could find, included).
    """
    if value is None or value == "":
        return None
    port: int | None = None
    if type(value) is int:
        port = value
    elif isinstance(value, str) and value.strip().isdigit():
        port = int(value.strip())
    if port is None or not 1 <= port <= 65535:
        raise ConfigError(
            f"prometheus_port = {value!r} is not a port number: give one from 1 to 65535 that no other "
            f"process uses (TASKQ_PROMETHEUS_PORT=9808), or leave it unset to serve no metrics"
        )
    return port


class WorkerMetrics:
    """One worker's metrics registry and what feeds it; lives in the worker's main process."""

    def __init__(self, worker: Worker, registry: CollectorRegistry | None = None) -> None:
        self.worker = worker
        self.hostname = worker.hostname
        self.main_pid = os.getpid()
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.metrics = TaskMetrics(self.registry)
        self.dead_lettered = Counter(
            "taskq_messages_dead_lettered",
            "Messages this worker set aside on the dead-letter queue, by reason.",
            ["reason"],
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.registry.register(_InFlightCollector(self))
        self._lock = threading.Lock()
        # Received and not yet started, by task id: (POSIX time received, ETA or None).
        self._waiting: _ByTask[tuple[float, float | None]] = _ByTask(WAITING_MAX)
        # Started and not yet ended, by task id: (task name label, POSIX time started).
        self._running: _ByTask[tuple[str, float]] = _ByTask(WAITING_MAX)
        # In the process running tasks: when each started, by the monotonic clock.
        self._run_clock: dict[str, float] = {}
        self._current = threading.local()
        self._horizon: float | None = None
        self._read_fd, self._write_fd = os.pipe()
        self._reader: threading.Thread | None = None

    # ---- Where the task runs (main process or a prefork child) -----------------------------

    def started(self, request: Request) -> None:
        """``taskq_task_prerun``: the task starts in this process (or thread)."""
        self._current.task_id = request.id
        self._run_clock[request.id] = time.monotonic()
        now = time.time()
        if os.getpid() == self.main_pid:
            self.record_start(request.id, request.name, now)
        else:
            self._send(b"S", b"-", request.id, request.name, now)

    def ended(self, request: Request, state: str) -> None:
        """``taskq_task_postrun``: the task ended here with ``state``."""
        self._current.task_id = None
        began = self._run_clock.pop(request.id, None)
        runtime = time.monotonic() - began if began is not None else -1.0
        code = _STATE_CODES.get(state, b"?")
        if os.getpid() == self.main_pid:
            self.record_end(request.id, request.name, code, runtime)
        else:
            self._send(b"E", code, request.id, request.name, runtime)

    def is_running_here(self, request: Request) -> bool:
        """Whether ``request``'s task runs in this thread now (its own failure, not the pool's)."""
        return getattr(self._current, "task_id", None) == request.id

    def _send(self, kind: bytes, code: bytes, task_id: str, name: str, value: float) -> None:
        ident = task_id.encode("utf-8", "replace")[:PIPE_TEXT_MAX]
        label = name.encode("utf-8", "replace")[:PIPE_TEXT_MAX]
        record = _RECORD.pack(kind, code, len(ident), len(label), value) + ident + label
        try:
            os.write(self._write_fd, record)  # under PIPE_BUF: one write, never interleaved
        except OSError:
            logger.debug("could not send a metrics record to the worker's main process", exc_info=True)

    # ---- The main process ---------------------------------------------------------------

    def received(self, request: Request) -> None:
        """``taskq_task_received`` (main process)."""
        now = time.time()
        eta = request.eta
        with self._lock:
            self.metrics.count(self.metrics.label(request.name), "received")
            if eta is not None and eta - now > self._handed_back_after():
                return  # the consumer gives it back to the broker until nearly due: not held here
            self._waiting.add(request.id, (now, eta))

    def _handed_back_after(self) -> float:
        """Seconds of ETA past which the consumer hands a task back to the broker (as it decides:
        ``worker_eta_horizon``, on a transport with delayed delivery); infinity if it never does."""
        horizon = self._horizon
        if horizon is None:
            horizon = math.inf
            consumer = self.worker.consumer
            if consumer is not None and consumer.transport.capabilities.delayed_delivery:
                horizon = float(self.worker.app.conf["worker_eta_horizon"])  # type: ignore[arg-type]  # a float setting
            self._horizon = horizon
        return horizon

    def record_start(self, task_id: str, name: str, when: float) -> None:
        with self._lock:
            label = self.metrics.label(name)
            self.metrics.count(label, "started")
            self._running.add(task_id, (label, when))
            since = self._waiting.take(task_id)
            if since is not None:
                received, eta = since
                wait = seconds(when - (received if eta is None else max(received, eta)))
                if wait is not None:
                    self.metrics.observe_wait(label, wait)

    def record_end(self, task_id: str, name: str, code: bytes, runtime: float) -> None:
        with self._lock:
            self._running.take(task_id)
            label = self.metrics.label(name)
            state = _CODE_STATES.get(code)
            if state is not None:  # a rejected task is counted when it is dead-lettered
                self.metrics.count(label, state)
            if runtime >= 0.0:
                self.metrics.observe_runtime(label, runtime)

    def stopped(self, request: Request, state: str) -> None:
        """The pool ended ``request`` from outside (time limit, lost child, terminate): its end."""
        with self._lock:
            running = self._running.take(request.id)
            label = running[0] if running is not None else self.metrics.label(request.name)
            self.metrics.count(label, state)
            if running is not None:
                runtime = seconds(time.time() - running[1])
                if runtime is not None:
                    self.metrics.observe_runtime(label, runtime)

    def revoked(self, request: Request, terminated: bool) -> None:
        """``taskq_task_revoked`` (main process)."""
        if terminated:
            self.stopped(request, "revoked")
            return
        with self._lock:
            self._waiting.take(request.id)
            self.metrics.count(self.metrics.label(request.name), "revoked")

    def rejected(self, request: Request | None, reason: str) -> None:
        """``taskq_task_rejected`` (main process): a message dead-lettered."""
        with self._lock:
            self.dead_lettered.labels(reason_kind(reason)).inc()
            if request is not None:
                self._waiting.take(request.id)
                self.metrics.count(self.metrics.label(request.name), "rejected")

    def in_flight(self) -> tuple[int, int]:
        """``(reserved, active)``: tasks received and not yet started (from the hooks: an inline
        pool's batch is held outside the consumer's queue), and those running as the consumer
        holds them now (which includes a task whose start a child has not reported yet)."""
        consumer = self.worker.consumer
        active = len(getattr(consumer, "active", ())) if consumer is not None else 0
        with self._lock:
            return len(self._waiting), active

    def start_reading(self) -> None:
        """Count, in this (main) process, what the pool's children send; from a thread."""
        self._reader = threading.Thread(target=self._read, name="taskq-prometheus-pipe", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            self._read_records()
        finally:
            # Closed here, by its only reader, once every writer is gone (see close).
            with contextlib.suppress(OSError):
                os.close(self._read_fd)

    def _read_records(self) -> None:
        buffer = bytearray()
        header = _RECORD.size
        while True:
            try:
                chunk = os.read(self._read_fd, 65536)
            except OSError:
                return
            if not chunk:
                return  # end of file: the main process and every child closed their write end
            buffer += chunk
            while len(buffer) >= header:
                kind, code, id_length, name_length, value = _RECORD.unpack_from(buffer)
                end = header + id_length + name_length
                if len(buffer) < end:
                    break
                task_id = bytes(buffer[header : header + id_length]).decode("utf-8", "replace")
                name = bytes(buffer[header + id_length : end]).decode("utf-8", "replace")
                del buffer[:end]
                try:
                    if kind == b"S":
                        self.record_start(task_id, name, value)
                    else:
                        self.record_end(task_id, name, code, value)
                except Exception:
                    logger.exception("could not count a task's metrics record")

    def render(self) -> tuple[bytes, str]:
        """This worker's metrics in Prometheus' text format: ``(body, content type)``."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def close(self) -> None:
        """Stop counting broker losses and close this process's write end of the pipe; the
        reading thread closes the read end when the children's ends close too (the pool stops
        after this), since closing a descriptor another thread reads could hand its number
        to a file opened meanwhile."""
        with contextlib.suppress(OSError):
            os.close(self._write_fd)
        if self._reader is None:
            with contextlib.suppress(OSError):
                os.close(self._read_fd)


class _ByTask(Generic[T]):
    """Values by task id, oldest first, bounded to ``limit`` values (the oldest ids go first).

    An id may hold several: a retried task keeps its id, and on prefork its next run can
    start in one child before the run that retried it has reported its end from another.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[str, list[T]] = OrderedDict()
        self._size = 0

    def add(self, task_id: str, value: T) -> None:
        values = self._items.get(task_id)
        if values is None:
            self._items[task_id] = [value]
        else:
            values.append(value)
        self._size += 1
        while self._size > self.limit:
            _, dropped = self._items.popitem(last=False)
            self._size -= len(dropped)

    def take(self, task_id: str) -> T | None:
        """The oldest value of ``task_id``, removed; None if it has none."""
        values = self._items.get(task_id)
        if not values:
            return None
        value = values.pop(0)
        if not values:
            del self._items[task_id]
        self._size -= 1
        return value

    def __len__(self) -> int:
        return self._size


def reason_kind(reason: str) -> str:
    """A dead-letter reason's kind, a label of few values (the reason itself is free text)."""
    if reason.startswith("cannot decode"):
        return "undecodable"
    if reason.startswith("unknown task"):
        return "unknown_task"
    if "without being acknowledged" in reason:
        return "poison"
    if reason.startswith(_REFUSALS) or "signature" in reason:
        return "refused"
    if "acks_on_failure_or_timeout is off" in reason:
        return "failed_kept"
    return "rejected"


# How taskq-security's refusals start (a plugin's refusal of a message before it is decoded).
_REFUSALS = ("unsigned message", "unknown signer", "expired certificate", "certificate not yet valid", "replayed")


class _InFlightCollector(Collector):
    """This worker's in-flight tasks and its being up, read at scrape time."""

    def __init__(self, metrics: WorkerMetrics) -> None:
        self.metrics = metrics

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        hostname = self.metrics.hostname
        reserved, active = self.metrics.in_flight()
        yield GaugeMetricFamily("taskq_workers_online", "Workers whose heartbeat is current (this one).", value=1)
        up = GaugeMetricFamily("taskq_worker_up", "1 for each worker whose heartbeat is current.", labels=["worker"])
        up.add_metric([hostname], 1)
        yield up
        held = GaugeMetricFamily(
            "taskq_worker_tasks_reserved",
            "Tasks a worker received and has not started (prefetched, or waiting for an ETA).",
            labels=["worker"],
        )
        held.add_metric([hostname], reserved)
        yield held
        running = GaugeMetricFamily("taskq_worker_tasks_active", "Tasks a worker is running.", labels=["worker"])
        running.add_metric([hostname], active)
        yield running
        consumer = self.metrics.worker.consumer
        errors = consumer.broker_errors if consumer is not None else 0
        back = consumer.reconnects if consumer is not None else 0
        yield CounterMetricFamily(
            "taskq_broker_connection_errors", "Times this worker found its broker gone (each retry).", value=errors
        )
        yield CounterMetricFamily(
            "taskq_broker_reconnects", "Times this worker's broker answered again after it lost it.", value=back
        )


class PrometheusStep(Step):
    """Serves the worker's own metrics on ``prometheus_port`` while it runs."""

    name = "prometheus"
    requires = ("consumer",)

    def __init__(self, worker: Worker) -> None:
        super().__init__(worker)
        self.server: MetricsServer | None = None

    def start(self) -> None:
        from taskq_prometheus import plugin

        metrics = plugin.worker_metrics(self.worker)
        if metrics is None:
            return
        port = parse_port(self.worker.app.conf["prometheus_port"])
        address = str(self.worker.app.conf["prometheus_address"])
        assert port is not None, "worker_metrics made metrics without a port"
        metrics.start_reading()
        self.server = MetricsServer(metrics.render, address, port, setting="prometheus_port")
        logger.info("serving this worker's metrics at http://%s:%d/metrics", address, self.server.port)

    def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None


__all__ = ["PrometheusStep", "WorkerMetrics", "parse_port", "reason_kind"]
