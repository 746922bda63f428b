"""What the dashboard asks the workers through remote control: their stats, tasks and queues.

A :class:`Cluster` polls ``app.control.inspect()`` every :attr:`Cluster.interval` seconds
from a thread of its own (``stats``, ``active``, ``reserved``, ``active_queues``) and the
queues' depth from the broker (where the transport can tell: :meth:`Transport.depth`), and
merges it with what the worker events tell. Replies are checked like events: a reply that
is not what it should be is left out, never trusted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from taskq_dashboard.checks import MAX_NAME, number, shown, text

if TYPE_CHECKING:
    from taskq import App
    from taskq.drivers.transport import Transport
    from taskq_dashboard.ingest import Ingest

logger = logging.getLogger(__name__)

#: Seconds between two rounds of questions to the workers.
INSPECT_INTERVAL = 5.0
#: Seconds one question waits for the workers' replies.
INSPECT_TIMEOUT = 1.0
#: Most tasks shown per worker as active or reserved.
MAX_TASKS_SHOWN = 100
_QUESTIONS = ("stats", "active", "reserved", "active_queues")


class Cluster:
    """The workers and queues as remote control and the worker events tell them."""

    def __init__(self, app: App, ingest: Ingest, interval: float = INSPECT_INTERVAL) -> None:
        self.app = app
        self.ingest = ingest
        self.interval = interval
        self.answers: dict[str, dict[str, object]] = {}  # by hostname: the last replies
        self.depths: dict[str, int | None] = {}
        self.inspected_at: float | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._transport: Transport | None = None

    # ---- Polling ------------------------------------------------------------------

    def poll(self) -> None:
        """Ask every question once, in parallel, and the broker for the queues' depths."""
        inspect = self.app.control.inspect(timeout=INSPECT_TIMEOUT)
        with ThreadPoolExecutor(len(_QUESTIONS), thread_name_prefix="taskq-dashboard-inspect") as pool:
            futures = {name: pool.submit(getattr(inspect, name)) for name in _QUESTIONS}
        answers: dict[str, dict[str, object]] = {}
        for name, future in futures.items():
            try:
                replies = future.result()
            except Exception as exc:
                logger.debug("inspect %s failed: %s", name, exc)
                continue
            for hostname, reply in (replies or {}).items():
                if isinstance(hostname, str) and len(hostname) <= MAX_NAME:
                    answers.setdefault(hostname, {})[name] = reply
        queues = set(self._queue_names(answers))
        queues.add(str(self.app.conf["task_default_queue"]))
        depths = {queue: self._depth(queue) for queue in sorted(queues)}
        with self._lock:
            self.answers = answers
            self.depths = depths
            self.inspected_at = time.time()

    def _depth(self, queue: str) -> int | None:
        try:
            if self._transport is None:
                self._transport = self.app.new_transport()
            return int(self._transport.depth(queue))
        except NotImplementedError:
            return None
        except Exception as exc:
            logger.debug("depth of %s failed: %s", queue, exc)
            if self._transport is not None:
                self._transport.close()
                self._transport = None
            return None

    @staticmethod
    def _queue_names(answers: Mapping[str, Mapping[str, object]]) -> list[str]:
        names = []
        for reply in answers.values():
            queues = reply.get("active_queues")
            if isinstance(queues, list):
                for queue in queues:
                    name = queue.get("name") if isinstance(queue, Mapping) else None
                    if isinstance(name, str) and 0 < len(name) <= MAX_NAME:
                        names.append(name)
        return names

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception as exc:
                logger.warning("asking the workers failed: %s", exc)
            self._wake.wait(self.interval)
            self._wake.clear()
        if self._transport is not None:
            self._transport.close()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="taskq-dashboard-inspect", daemon=True)
        thread.start()
        return thread

    def refresh(self) -> None:
        """Ask again now (after an action changed something)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    # ---- Views --------------------------------------------------------------------

    def workers(self) -> list[dict[str, object]]:
        """Every worker heard of, by events or replies, sorted by name."""
        now = time.time()
        with self.ingest.lock:
            states: dict[str, dict[str, object]] = {
                name: {
                    "hostname": name,
                    "online": worker.alive(now),
                    "last_heartbeat": worker.last_heartbeat,
                    "active": worker.active,
                    "processed": worker.processed,
                    "loadavg": list(worker.loadavg),
                    "pid": worker.pid,
                    "software": worker.software,
                    "freq": worker.freq,
                }
                for name, worker in self.ingest.workers.workers.items()
            }
        with self._lock:
            answers = dict(self.answers)
        found = []
        for name in sorted(set(states) | set(answers)):
            worker: dict[str, object] = states.get(name) or {"hostname": name, "online": True, "last_heartbeat": None}
            reply = answers.get(name, {})
            worker["answered"] = bool(reply)
            # a worker that answered the last round is alive, heartbeat heard or not (yet)
            worker["online"] = bool(worker.get("online")) or bool(reply)
            worker.update(_stats(reply.get("stats")))
            worker["active_tasks"] = _requests(reply.get("active"))
            worker["reserved_tasks"] = _requests(reply.get("reserved"))
            worker["queues"] = self._queue_names({name: reply})
            found.append(worker)
        return found

    def queues(self) -> list[dict[str, object]]:
        """Each queue known (consumed by a worker, or the default), its depth and its consumers."""
        with self._lock:
            answers = dict(self.answers)
            depths = dict(self.depths)
        consumers: dict[str, list[str]] = {name: [] for name in depths}
        for hostname, reply in answers.items():
            for name in self._queue_names({hostname: reply}):
                consumers.setdefault(name, []).append(hostname)
        return [
            {"name": name, "depth": depths.get(name), "consumers": sorted(set(workers))}
            for name, workers in sorted(consumers.items())
        ]


def _stats(raw: object) -> dict[str, object]:
    """The fields of a ``stats`` reply the pages show, checked."""
    if not isinstance(raw, Mapping):
        return {}
    found: dict[str, object] = {}
    pool = raw.get("pool")
    if isinstance(pool, Mapping):
        found["pool"] = text(pool.get("implementation"), MAX_NAME)
        concurrency = number(pool.get("max-concurrency"))
        found["concurrency"] = int(concurrency) if concurrency is not None else None
    totals = raw.get("total")
    if isinstance(totals, Mapping):
        found["totals"] = {
            str(name)[:MAX_NAME]: int(value)
            for name, value in list(totals.items())[:1000]
            if number(value) is not None and not isinstance(value, float)
        }
    uptime = number(raw.get("uptime"))
    found["uptime"] = uptime
    prefetch = number(raw.get("prefetch_count"))
    found["prefetch_count"] = int(prefetch) if prefetch is not None else None
    broker = raw.get("broker")
    if isinstance(broker, Mapping):
        found["broker"] = text(broker.get("url"), MAX_NAME)
    return found


def _requests(raw: object) -> list[dict[str, object]]:
    """The tasks of an ``active`` or ``reserved`` reply, checked."""
    if not isinstance(raw, list):
        return []
    found: list[dict[str, object]] = []
    for item in raw[:MAX_TASKS_SHOWN]:
        if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
            continue
        found.append(
            {
                "id": text(item.get("id"), MAX_NAME),
                "name": text(item.get("name"), MAX_NAME),
                "args": shown(item.get("args")),
                "kwargs": shown(item.get("kwargs")),
                "time_start": number(item.get("time_start")),
            }
        )
    return found
