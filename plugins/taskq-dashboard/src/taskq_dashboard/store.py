"""The dashboard's history: tasks and their events in a local SQLite file that survives a restart.

One thread writes (the event thread, in batches: :meth:`Store.write`); any thread reads,
each on a connection of its own (WAL lets them read while the writer writes). The file
keeps the most recent :attr:`Store.max_tasks` tasks, by the order they were first seen;
each task keeps its state, its fields (checked by :mod:`taskq_dashboard.checks`), and up to
:data:`~taskq_dashboard.checks.MAX_TASK_EVENTS` events as its state history. Task rates and
runtimes are counted per :data:`BUCKET` seconds for the charts.

A task's state follows core's rules (:class:`taskq.events.state.TaskState`): it only moves
forward, and an event that comes late never overwrites a newer one.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from taskq.events.state import TaskState
from taskq_dashboard.checks import MAX_TASK_EVENTS

#: Seconds one point of the rate and runtime charts covers.
BUCKET = 10
#: Seconds of rates kept (a week).
RATES_KEPT = 7 * 24 * 3600
#: Writes between two deletions of the rates older than RATES_KEPT.
RATES_EXPIRY_EVERY = 1_000
#: Tasks whose state the writer keeps in memory, so that a busy task needs no read back.
CACHE_SIZE = 20_000
#: Most ids looked up in one query (SQLite's limit on parameters is 32,766).
LOOKUP_CHUNK = 500
#: Most tasks one page of a listing returns.
MAX_PAGE = 500

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    seq INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT,
    state TEXT NOT NULL,
    state_at REAL NOT NULL,
    worker TEXT,
    args TEXT,
    kwargs TEXT,
    retries INTEGER,
    eta TEXT,
    expires TEXT,
    root_id TEXT,
    parent_id TEXT,
    result TEXT,
    exception TEXT,
    traceback TEXT,
    runtime REAL,
    queue TEXT,
    first_seen REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_state ON tasks (state, seq);
CREATE INDEX IF NOT EXISTS tasks_name ON tasks (name, seq);
CREATE INDEX IF NOT EXISTS tasks_parent ON tasks (parent_id);
CREATE INDEX IF NOT EXISTS tasks_root ON tasks (root_id);
CREATE TABLE IF NOT EXISTS task_events (
    task_seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    timestamp REAL NOT NULL,
    hostname TEXT
);
CREATE INDEX IF NOT EXISTS task_events_task ON task_events (task_seq);
CREATE TABLE IF NOT EXISTS rates (
    bucket INTEGER PRIMARY KEY,
    received INTEGER NOT NULL DEFAULT 0,
    succeeded INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    retried INTEGER NOT NULL DEFAULT 0,
    revoked INTEGER NOT NULL DEFAULT 0,
    runtime_sum REAL NOT NULL DEFAULT 0,
    runtime_count INTEGER NOT NULL DEFAULT 0,
    runtime_max REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

# The columns a task row holds besides seq and uuid, as TaskState's attributes.
_FIELDS = (
    "name",
    "state",
    "worker",
    "args",
    "kwargs",
    "retries",
    "eta",
    "expires",
    "root_id",
    "parent_id",
    "result",
    "exception",
    "traceback",
    "runtime",
    "queue",
)
_COLUMNS = ("seq", "uuid", *_FIELDS, "state_at", "first_seen", "updated")
_LOAD_TASKS = (
    f"SELECT {', '.join(_COLUMNS)}, (SELECT COUNT(*) FROM task_events e WHERE e.task_seq = t.seq) "  # noqa: S608
    "AS events FROM tasks t WHERE uuid IN"
)
_INSERT_TASK = f"INSERT OR REPLACE INTO tasks ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"  # noqa: S608 - our column names
# The rate counted for each event type.
_RATE_OF = {
    "task-received": "received",
    "task-succeeded": "succeeded",
    "task-failed": "failed",
    "task-retried": "retried",
    "task-revoked": "revoked",
}
_RATE_NAMES = ("received", "succeeded", "failed", "retried", "revoked")
# A timestamp further than this from now (seconds) is not believed for the charts.
_CLOCK_SKEW = 24 * 3600


class _Cached:
    """A task as the writer keeps it: its row number, state, and how many events it has."""

    __slots__ = ("events", "first_seen", "seq", "task")

    def __init__(self, seq: int, task: TaskState, events: int, first_seen: float) -> None:
        self.seq = seq
        self.task = task
        self.events = events
        self.first_seen = first_seen


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class Store:
    """The bounded task history in the SQLite file at ``path`` (created when missing)."""

    def __init__(self, path: str | Path, max_tasks: int = 100_000) -> None:
        if max_tasks < 1:
            raise ValueError(f"max_tasks must be at least 1, not {max_tasks}")
        self.path = str(path)
        self.max_tasks = max_tasks
        self._local = threading.local()
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        writer = self._connection()
        with writer:
            writer.executescript(SCHEMA)
        row = writer.execute("SELECT MAX(seq), MIN(seq) FROM tasks").fetchone()
        self._next_seq = (row[0] or 0) + 1
        self._first_seq = row[1] or 1
        #: Bumped after every write; the live view sends an update when it moved.
        self.version = 0
        self._trim()

    # ---- Connections --------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use)."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=30.0, check_same_thread=True)
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode=WAL")
            # a crash may lose the last batch, never corrupt the file: the history is a cache
            connection.execute("PRAGMA synchronous=NORMAL")
            self._local.connection = connection
        return connection

    def close(self) -> None:
        """Close this thread's connection."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    # ---- Writing (one thread) -------------------------------------------------------

    def write(self, events: Sequence[Mapping[str, object]], counters: Mapping[str, int] | None = None) -> None:
        """Apply checked task ``events`` (in the order they came) and add ``counters``, in one transaction."""
        if not events and not counters:
            return
        now = time.time()
        known = self._load({str(event["uuid"]) for event in events})
        changed: dict[str, _Cached] = {}
        event_rows: list[tuple[int, str, float, object]] = []
        rates: dict[int, dict[str, float]] = defaultdict(lambda: dict.fromkeys(_RATE_NAMES, 0.0))
        runtimes: dict[int, list[float]] = defaultdict(list)
        for event in events:
            uuid = str(event["uuid"])
            kind = str(event["type"])
            when = float(event["timestamp"])  # type: ignore[arg-type]  # checked by clean_event
            believed = when if abs(when - now) < _CLOCK_SKEW else now
            entry = known.get(uuid)
            if entry is None:
                entry = known[uuid] = _Cached(self._next_seq, TaskState(uuid), 0, believed)
                self._next_seq += 1
            entry.task.apply(event)
            entry.task.history.clear()  # kept in task_events instead
            changed[uuid] = entry
            if entry.events < MAX_TASK_EVENTS:
                entry.events += 1
                event_rows.append((entry.seq, kind, when, event.get("hostname")))
            rate = _RATE_OF.get(kind)
            if rate is not None:
                bucket = int(believed // BUCKET * BUCKET)
                rates[bucket][rate] += 1
                runtime = event.get("runtime")
                if kind == "task-succeeded" and isinstance(runtime, float) and runtime >= 0:
                    runtimes[bucket].append(runtime)
        connection = self._connection()
        with connection:
            rows = [self._row(entry, now) for entry in changed.values()]
            connection.executemany(
                _INSERT_TASK,
                rows,
            )
            connection.executemany(
                "INSERT INTO task_events (task_seq, type, timestamp, hostname) VALUES (?, ?, ?, ?)", event_rows
            )
            for bucket, counts in rates.items():
                times = runtimes.get(bucket, [])
                connection.execute(
                    "INSERT INTO rates (bucket, received, succeeded, failed, retried, revoked, runtime_sum, "
                    "runtime_count, runtime_max) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (bucket) DO UPDATE SET "
                    "received = received + excluded.received, succeeded = succeeded + excluded.succeeded, "
                    "failed = failed + excluded.failed, retried = retried + excluded.retried, "
                    "revoked = revoked + excluded.revoked, runtime_sum = runtime_sum + excluded.runtime_sum, "
                    "runtime_count = runtime_count + excluded.runtime_count, "
                    "runtime_max = MAX(runtime_max, excluded.runtime_max)",
                    (
                        bucket,
                        *(int(counts[name]) for name in _RATE_NAMES),
                        sum(times),
                        len(times),
                        max(times, default=0),
                    ),
                )
            for name, value in (counters or {}).items():
                connection.execute(
                    "INSERT INTO counters (name, value) VALUES (?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                    (name, value),
                )
            self._trim(connection)
            if self.version % RATES_EXPIRY_EVERY == 0:
                connection.execute("DELETE FROM rates WHERE bucket < ?", (now - RATES_KEPT,))
        for uuid, entry in changed.items():
            self._cache[uuid] = entry
            self._cache.move_to_end(uuid)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        self.version += 1

    @staticmethod
    def _row(entry: _Cached, now: float) -> tuple[object, ...]:
        task = entry.task
        return (
            entry.seq,
            task.uuid,
            *(getattr(task, name) for name in _FIELDS),
            task._at,
            entry.first_seen,
            now,
        )

    def _load(self, uuids: Iterable[str]) -> dict[str, _Cached]:
        """The writer's view of the tasks ``uuids`` that are kept: from its cache, else the file."""
        found: dict[str, _Cached] = {}
        missing = []
        for uuid in uuids:
            entry = self._cache.get(uuid)
            if entry is not None:
                found[uuid] = entry
            else:
                missing.append(uuid)
        connection = self._connection()
        for start in range(0, len(missing), LOOKUP_CHUNK):
            chunk = missing[start : start + LOOKUP_CHUNK]
            marks = ", ".join("?" * len(chunk))
            query = f"{_LOAD_TASKS} ({marks})"
            for row in connection.execute(query, chunk):
                task = TaskState(row["uuid"], _at=row["state_at"])
                for name in _FIELDS:
                    setattr(task, name, row[name])
                found[row["uuid"]] = _Cached(row["seq"], task, row["events"], row["first_seen"])
        return found

    def _trim(self, connection: sqlite3.Connection | None = None) -> None:
        """Forget the oldest tasks beyond :attr:`max_tasks`, and rates older than :data:`RATES_KEPT`."""
        cutoff = self._next_seq - 1 - self.max_tasks
        if cutoff < self._first_seq:
            return
        own = connection is None
        connection = connection or self._connection()
        connection.execute("DELETE FROM tasks WHERE seq <= ?", (cutoff,))
        connection.execute("DELETE FROM task_events WHERE task_seq <= ?", (cutoff,))
        if own:
            connection.commit()
        self._first_seq = cutoff + 1
        for uuid in [uuid for uuid, entry in self._cache.items() if entry.seq <= cutoff]:
            del self._cache[uuid]

    # ---- Reading (any thread) ------------------------------------------------------

    def tasks(
        self,
        *,
        name: str | None = None,
        state: str | None = None,
        task_id: str | None = None,
        search: str | None = None,
        worker: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[dict[str, object]], int]:
        """One page of the tasks matching every filter given, the most recently first seen
        first, and how many match in all.

        ``name`` matches exactly, or by prefix when it ends with ``*``; ``task_id`` by
        prefix; ``state`` and ``worker`` exactly (all four through indexes); ``search``
        anywhere in the arguments' text (a scan).
        """
        where: list[str] = []
        params: list[object] = []
        if name and name.endswith("*"):
            where.append("name >= ? AND name < ?")
            params += [name[:-1], name[:-1] + "\U0010ffff"]
        elif name:
            where.append("name = ?")  # through the index in order: no sort
            params.append(name)
        if task_id:
            where.append("uuid >= ? AND uuid < ?")
            params += [task_id, task_id + "\U0010ffff"]
        if state:
            where.append("state = ?")
            params.append(state)
        if worker:
            where.append("worker = ?")
            params.append(worker)
        if search:
            pattern = f"%{_escape_like(search)}%"
            where.append("(args LIKE ? ESCAPE '\\' OR kwargs LIKE ? ESCAPE '\\')")
            params += [pattern, pattern]
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        limit = max(1, min(limit, MAX_PAGE))
        offset = max(0, offset)
        connection = self._connection()
        total = connection.execute(f"SELECT COUNT(*) FROM tasks {clause}", params).fetchone()[0]  # noqa: S608 - fixed clauses, values bound
        rows = connection.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM tasks {clause} ORDER BY seq DESC LIMIT ? OFFSET ?",  # noqa: S608
            [*params, limit, offset],
        ).fetchall()
        return [_task_dict(row, brief=True) for row in rows], int(total)

    def task(self, uuid: str) -> dict[str, object] | None:
        """One task with its state history (its events, oldest first; task-sent first of all) and
        the tasks it sent."""
        connection = self._connection()
        row = connection.execute(f"SELECT {', '.join(_COLUMNS)} FROM tasks WHERE uuid = ?", (uuid,)).fetchone()  # noqa: S608
        if row is None:
            return None
        found = _task_dict(row, brief=False)
        found["events"] = [
            {"type": event["type"], "timestamp": event["timestamp"], "hostname": event["hostname"]}
            for event in connection.execute(
                # sent comes first whatever its time says: a client stamps task-sent after publishing,
                # and a quick worker may have received, run and finished the task by then
                "SELECT type, timestamp, hostname FROM task_events WHERE task_seq = ? "
                "ORDER BY type = 'task-sent' DESC, timestamp, rowid",
                (row["seq"],),
            )
        ]
        found["children"] = [
            {"uuid": child["uuid"], "name": child["name"], "state": child["state"]}
            for child in connection.execute(
                "SELECT uuid, name, state FROM tasks WHERE parent_id = ? ORDER BY seq LIMIT 1000", (uuid,)
            )
        ]
        return found

    def count_by_state(self) -> dict[str, int]:
        """How many tasks of the history are in each state."""
        rows = self._connection().execute("SELECT state, COUNT(*) FROM tasks GROUP BY state")
        return {str(state): int(count) for state, count in rows}

    def task_names(self, limit: int = 1000) -> list[str]:
        """The task names in the history, sorted."""
        rows = self._connection().execute(
            "SELECT DISTINCT name FROM tasks WHERE name IS NOT NULL ORDER BY name LIMIT ?", (limit,)
        )
        return [str(row[0]) for row in rows]

    def rates(self, since: float) -> list[dict[str, float]]:
        """The counts per :data:`BUCKET` seconds from ``since`` on: tasks received, succeeded,
        failed, retried, revoked, and the mean and longest runtime of those that succeeded."""
        rows = self._connection().execute("SELECT * FROM rates WHERE bucket >= ? ORDER BY bucket", (int(since),))
        points = []
        for row in rows:
            count = row["runtime_count"]
            point = {"time": float(row["bucket"]), **{name: float(row[name]) for name in _RATE_NAMES}}
            point["runtime_mean"] = row["runtime_sum"] / count if count else 0.0
            point["runtime_max"] = float(row["runtime_max"])
            points.append(point)
        return points

    def counters(self) -> dict[str, int]:
        """The counters kept with the history (events taken, malformed events skipped...)."""
        return {str(name): int(value) for name, value in self._connection().execute("SELECT name, value FROM counters")}


def _task_dict(row: sqlite3.Row, *, brief: bool) -> dict[str, object]:
    found = {name: row[name] for name in ("uuid", *_FIELDS, "first_seen", "updated")}
    found["state_at"] = row["state_at"]
    if brief:
        del found["traceback"]
    return found


__all__ = ["BUCKET", "Store"]
