"""What both ways of running share: the task metrics, their buckets, and the label guards.

:class:`TaskMetrics` owns the counters and histograms that carry a task name
(``taskq_tasks_total``, ``taskq_task_runtime_seconds``, ``taskq_task_queue_wait_seconds``)
in one :class:`~prometheus_client.CollectorRegistry`, caches their labelled children (a
``labels()`` call costs more than the increment) and bounds the names it labels:
:data:`NAMES_MAX` distinct names, the rest under :data:`OTHER`.
"""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Counter, Histogram

#: Distinct task names (and worker names) labelled one by one; later ones share OTHER.
NAMES_MAX = 1000
#: The label of names past NAMES_MAX.
OTHER = "other"
#: The label of a task whose name is not known (its task-received event was missed).
UNKNOWN = "unknown"
#: Longest task name, worker name or task id accepted, in characters; longer is malformed.
TEXT_MAX = 255
#: Longest runtime or wait believed, in seconds (a year); longer is malformed.
SECONDS_MAX = 365 * 24 * 3600.0

#: Histogram buckets of runtimes and queue waits, in seconds: 5 ms to an hour.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

#: The task states counted in ``taskq_tasks_total`` (Celery's event names, without ``task-``).
STATES = ("sent", "received", "started", "succeeded", "failed", "retried", "rejected", "revoked", "ignored")


def is_label(value: object) -> bool:
    """Whether ``value`` may be a label value: text, 1 to TEXT_MAX printable characters.

    Printable rules out control characters and lone surrogates, which would break the
    exposition (it is UTF-8).
    """
    return type(value) is str and 0 < len(value) <= TEXT_MAX and value.isprintable()


def seconds(value: object) -> float | None:
    """``value`` as a duration in seconds when it is a plausible one (a finite number from 0
    to SECONDS_MAX, not a bool), else None."""
    kind = type(value)
    if kind is float or kind is int:
        number = float(value)  # type: ignore[arg-type]  # an int or a float, checked above
        if 0.0 <= number <= SECONDS_MAX:
            return number
    return None


def timestamp(value: object) -> float | None:
    """``value`` as a POSIX time when it is a finite, non-negative number (not a bool), else None."""
    kind = type(value)
    if kind is float or kind is int:
        number = float(value)  # type: ignore[arg-type]  # an int or a float, checked above
        if math.isfinite(number) and number >= 0.0:
            return number
    return None


class Names:
    """A bounded set of label values: the first ``limit`` distinct ones stay, later ones are OTHER."""

    def __init__(self, limit: int = NAMES_MAX) -> None:
        self.limit = limit
        self.known: set[str] = {OTHER, UNKNOWN}
        #: Values turned into OTHER because the set was full.
        self.overflowed = 0

    def label(self, value: str) -> str:
        """The label for ``value`` (already checked with :func:`is_label`)."""
        if value in self.known:
            return value
        if len(self.known) - 2 < self.limit:
            self.known.add(value)
            return value
        self.overflowed += 1
        return OTHER


class TaskMetrics:
    """The per-task-name counters and histograms, in ``registry``. Not locked: callers
    serialize their calls (the metrics themselves are thread-safe for scrapes)."""

    def __init__(self, registry: CollectorRegistry, *, names_max: int = NAMES_MAX) -> None:
        self.names = Names(names_max)
        self.tasks = Counter(
            "taskq_tasks",
            "Tasks seen in each state, by task name (names past the cap are 'other').",
            ["name", "state"],
            registry=registry,
        )
        self.runtime = Histogram(
            "taskq_task_runtime_seconds",
            "Seconds a task ran, from its start to its end, by task name.",
            ["name"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.queue_wait = Histogram(
            "taskq_task_queue_wait_seconds",
            "Seconds a task waited on its worker, from when it was received (or its ETA, if later) "
            "to its start, by task name.",
            ["name"],
            buckets=BUCKETS,
            registry=registry,
        )
        self._counts: dict[tuple[str, str], Counter] = {}
        self._runtimes: dict[str, Histogram] = {}
        self._waits: dict[str, Histogram] = {}

    def label(self, name: str) -> str:
        """The label of task ``name`` (checked with :func:`is_label`), capped."""
        return self.names.label(name)

    def count(self, name: str, state: str) -> None:
        """One more task ``name`` (a label) in ``state``."""
        key = (name, state)
        child = self._counts.get(key)
        if child is None:
            child = self._counts[key] = self.tasks.labels(name, state)
        child.inc()

    def observe_runtime(self, name: str, value: float) -> None:
        child = self._runtimes.get(name)
        if child is None:
            child = self._runtimes[name] = self.runtime.labels(name)
        child.observe(value)

    def observe_wait(self, name: str, value: float) -> None:
        child = self._waits.get(name)
        if child is None:
            child = self._waits[name] = self.queue_wait.labels(name)
        child.observe(value)


__all__ = [
    "BUCKETS",
    "NAMES_MAX",
    "OTHER",
    "STATES",
    "TEXT_MAX",
    "UNKNOWN",
    "Names",
    "TaskMetrics",
    "is_label",
    "seconds",
    "timestamp",
]
