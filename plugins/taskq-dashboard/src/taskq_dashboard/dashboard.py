"""The dashboard as one object: its history, event thread, remote control poller, and what the API reads.

:class:`Dashboard` wires a :class:`~taskq_dashboard.store.Store`, an
:class:`~taskq_dashboard.ingest.Ingest` thread and a :class:`~taskq_dashboard.cluster.Cluster`
poller to an app; :func:`serve` runs it behind uvicorn until interrupted.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING

from taskq_dashboard.actions import BadRequestError, NotFoundError
from taskq_dashboard.auth import Auth, check_exposure
from taskq_dashboard.checks import MAX_NAME, clean_record, shown
from taskq_dashboard.cluster import INSPECT_INTERVAL, Cluster
from taskq_dashboard.ingest import Ingest
from taskq_dashboard.store import BUCKET, Store

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable

    from starlette.requests import Request

    from taskq import App

logger = logging.getLogger(__name__)

#: Minutes of rates the charts show unless asked otherwise, and the most they may ask for.
RATES_MINUTES = 30
MAX_RATES_MINUTES = 7 * 24 * 60
#: Most characters of a workflow tree sent to a page (a bigger tree is cut and says so).
MAX_WORKFLOW_CHARS = 2_000_000


class Dashboard:
    """Everything behind the pages of one app's dashboard."""

    def __init__(
        self,
        app: App,
        db_path: str,
        *,
        max_tasks: int = 100_000,
        auth: Auth | None = None,
        inspect_interval: float = INSPECT_INTERVAL,
    ) -> None:
        self.app = app
        self.auth = auth or Auth()
        self.store = Store(db_path, max_tasks)
        self.ingest = Ingest(self.store)
        self.cluster = Cluster(app, self.ingest, inspect_interval)
        self.started_at = time.time()
        self.records_malformed = 0  # result store records that did not check out
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start reading events and asking the workers."""
        self._threads = [self.ingest.start(self.app), self.cluster.start()]

    def listen(self, listener: Callable[[dict[str, object]], None]) -> None:
        """Have ``listener`` called with every event that checks out, in the event thread
        (for plugins: taskq-prometheus keeps its metrics this way). It must be quick."""
        self.ingest.listen(listener)

    def stop(self) -> None:
        """Stop both threads; the event thread writes what it holds first."""
        self.ingest.stop()
        self.cluster.stop()
        for thread in self._threads:
            thread.join(10.0)
        logger.info("dashboard stopped; history kept in %s", self.store.path)

    # ---- What the API reads ---------------------------------------------------------

    def signature(self) -> object:
        """Something that changes whenever a page may show something new."""
        return (self.store.version, self.cluster.inspected_at, len(self.ingest.workers.workers))

    def overview(self) -> dict[str, object]:
        """Counts for the top of every page, and what the live stream sends."""
        workers = self.cluster.workers()
        counters = self.store.counters()
        by_state = self.store.count_by_state()
        return {
            "workers": len(workers),
            "workers_online": sum(1 for worker in workers if worker.get("online")),
            "tasks": sum(by_state.values()),
            "by_state": by_state,
            "max_tasks": self.store.max_tasks,
            "events": counters.get("events", 0),
            "malformed_events": counters.get("malformed", 0),
            "malformed_records": self.records_malformed,
            "version": self.store.version,
            "inspected_at": self.cluster.inspected_at,
            "now": time.time(),
        }

    def list_tasks(self, request: Request) -> dict[str, object]:
        query = request.query_params
        offset = _integer(query.get("offset"), 0, "offset")
        limit = _integer(query.get("limit"), 50, "limit")
        tasks, total = self.store.tasks(
            name=_name(query.get("name")),
            state=_name(query.get("state")),
            task_id=_name(query.get("id")),
            search=query.get("search") or None,
            worker=_name(query.get("worker")),
            offset=offset,
            limit=limit,
        )
        return {"tasks": tasks, "total": total, "offset": offset, "limit": limit}

    def task(self, request: Request) -> dict[str, object]:
        task_id = str(request.path_params["task_id"])
        found = self.store.task(task_id)
        record = self._record(task_id)
        if found is None:
            if record is None or record.get("status") == "PENDING":
                raise NotFoundError(f"no task {task_id} in the history or the result store")
            found = {"uuid": task_id, "state": record.get("status"), "events": [], "children": []}
        found["record"] = record
        return found

    def _record(self, task_id: str) -> dict[str, object] | None:
        """The result store's record of ``task_id``, checked; None without a store or a record."""
        if not self.app.has_backend:
            return None
        try:
            raw = self.app.backend.get_task_meta(task_id)
        except NotImplementedError:
            return None
        except Exception as exc:
            # a record that cannot be decoded (or a store that is away) is counted and shown as such
            logger.debug("result record of %s unreadable: %s", task_id, exc)
            self.records_malformed += 1
            return {"status": "UNREADABLE", "error": shown(f"{type(exc).__name__}: {exc}", 500)}
        record = clean_record(raw)
        if record is None:
            self.records_malformed += 1
            return {"status": "UNREADABLE", "error": "the result store's record is malformed"}
        return record

    def workflow(self, request: Request) -> dict[str, object]:
        """The workflow tree ``task_id`` belongs to (core's :func:`taskq.graph.workflow_tree`)."""
        from taskq.graph import workflow_tree

        task_id = str(request.path_params["task_id"])
        if not self.app.has_backend:
            return {"tree": None, "error": "no result backend: workflows are recorded there"}
        found = self.store.task(task_id)
        root = found.get("root_id") if found else None
        # the shape is recorded under the id apply_async returned: this task's, else its root's
        starts = [task_id] + ([root] if isinstance(root, str) and root and root != task_id else [])
        tree: dict[str, object] | None = None
        start = task_id
        for start in starts:
            try:
                tree = workflow_tree(start, self.app)
            except Exception as exc:
                logger.debug("workflow of %s unreadable: %s", start, exc)
                return {"tree": None, "error": shown(f"{type(exc).__name__}: {exc}", 500)}
            if tree.get("kind") != "task" or tree.get("children"):
                break
        if tree is None:
            return {"tree": None, "error": "no workflow recorded"}
        text = json.dumps(tree, default=shown)
        if len(text) > MAX_WORKFLOW_CHARS:
            return {"tree": None, "root": start, "error": "the workflow is too big to show"}
        return {"tree": json.loads(text), "root": start}

    def rates(self, request: Request) -> dict[str, object]:
        minutes = _integer(request.query_params.get("minutes"), RATES_MINUTES, "minutes")
        minutes = max(1, min(minutes, MAX_RATES_MINUTES))
        now = time.time()
        return {
            "bucket": BUCKET,
            "since": now - minutes * 60,
            "now": now,
            "points": self.store.rates(now - minutes * 60),
        }


def _integer(value: str | None, default: int, name: str) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise BadRequestError(f"{name} must be a whole number, not {value[:40]!r}") from None
    if number < 0:
        raise BadRequestError(f"{name} must not be negative")
    return number


def _name(value: str | None) -> str | None:
    if not value:
        return None
    if len(value) > MAX_NAME:
        raise BadRequestError(f"longer than {MAX_NAME} characters: {value[:40]!r}...")
    return value


def serve(
    dashboard: Dashboard,
    address: str = "127.0.0.1",
    port: int = 5555,
    *,
    log_level: str = "info",
) -> None:
    """Serve ``dashboard`` on ``address``:``port`` until interrupted (SIGINT, SIGTERM).

    Raises:
        ConfigError: ``address`` is not a loopback address and the dashboard has no authentication.
    """
    import uvicorn

    from taskq_dashboard.web import create_app, plugin_routes

    check_exposure(address, dashboard.auth)
    application = create_app(dashboard, plugin_routes(dashboard), manage=True)
    config = uvicorn.Config(
        application,
        host=address,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=2,
        lifespan="on",
    )
    logger.info("taskq dashboard on http://%s:%d/ (history: %s)", address, port, dashboard.store.path)
    # the app's lifespan starts the threads and, on SIGINT or SIGTERM, stops them (writing the last batch)
    uvicorn.Server(config).run()
