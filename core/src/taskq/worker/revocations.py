"""Revoked task ids a worker honours, from the result backend and its state file.

A revoke (``result.revoke()``, ``app.control.revoke(id)``, ``taskq revoke ID``) is
written to the result backend's revocation log, so a worker that was offline when it was
sent still honours it: every worker reads the log from where it left off, and remembers
its place and the ids in its state file (``--statedb``) across restarts. A revoked task
is skipped when it arrives or comes due; with ``terminate=True`` a running one is stopped
by pools that can.

A revocation by stamp (``app.control.revoke_by_stamped_headers({"run": "r1"})``) is an
entry of the same log, its "id" :data:`STAMP_REVOCATION` followed by the stamps as JSON: a
task carrying one of those stamp values is skipped, and with ``terminate`` stopped.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from taskq.control import STAMP_REVOCATION, stamp_key, stamp_matches
from taskq.drivers.bootstep import Step
from taskq.errors import ConfigError, PoolFeatureError

if TYPE_CHECKING:
    from taskq.drivers.backend import ResultBackend
    from taskq.worker.consumer import Consumer
    from taskq.worker.worker import Worker

logger = logging.getLogger(__name__)

# How often a worker reads new revocations from the result backend, in seconds.
POLL_INTERVAL = 1.0
# Most revoked ids remembered; the oldest are forgotten first.
MAX_REMEMBERED = 50_000


class Revocations:
    """The set of revoked ids, the log cursor, and the state file that keeps both."""

    def __init__(self, state_path: Path | None = None) -> None:
        self.state_path = state_path
        self.cursor = 0
        self._ids: OrderedDict[str, bool] = OrderedDict()
        #: Revoked stamp values by stamp name (as :func:`taskq.control.stamp_key` gives them).
        self.stamps: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        if state_path is not None:
            self._load(state_path)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def stamped(self, stamps: Mapping[str, object]) -> tuple[str, object] | None:
        """The revoked ``(name, value)`` among a task's ``stamps``; None when none is."""
        return stamp_matches(self.stamps, stamps) if self.stamps else None

    def _add_stamps(self, entry: str) -> bool:
        """Add the stamps a revocation by stamp names; False when it cannot be read."""
        try:
            revoked = json.loads(entry[len(STAMP_REVOCATION) :])
            if not isinstance(revoked, dict):
                raise ValueError("not a mapping")
        except (ValueError, RecursionError) as exc:  # from a peer at mingle: anything may come
            logger.warning("ignoring an unreadable revocation by stamp %r: %s", entry[:200], exc)
            return False
        for name, values in revoked.items():
            keys = self.stamps.setdefault(str(name), set())
            keys.update(stamp_key(value) for value in (values if isinstance(values, list) else [values]))
        return True

    def add(self, task_id: str, terminate: bool = False) -> None:
        if task_id.startswith(STAMP_REVOCATION) and not self._add_stamps(task_id):
            return  # not kept either: it would reach peers at mingle and the state file
        with self._lock:
            self._ids[task_id] = terminate
            self._ids.move_to_end(task_id)
            while len(self._ids) > MAX_REMEMBERED:
                self._ids.popitem(last=False)

    def ids(self) -> list[str]:
        """The revoked task ids remembered (revocations by stamp left out)."""
        with self._lock:
            return [key for key in self._ids if not key.startswith(STAMP_REVOCATION)]

    def snapshot(self) -> dict[str, float]:
        """What a peer learns at mingle: ``{id: when}``, the shape Celery's workers send and read."""
        now = time.time()
        with self._lock:
            return dict.fromkeys(self._ids, now)

    def merge(self, revoked: object) -> int:
        """Add what a peer sent at mingle (ids as a list or the keys of a mapping, from the
        broker: anything else is ignored); return how many were new."""
        if isinstance(revoked, dict):
            revoked = list(revoked)
        if not isinstance(revoked, list):
            return 0
        new = [one for one in revoked[:MAX_REMEMBERED] if isinstance(one, str) and one and one not in self._ids]
        for one in new:
            self.add(one)
        return len(new)

    def sync(self, backend: ResultBackend) -> list[tuple[str, bool]]:
        """Read new revocations from ``backend``; return them."""
        new: list[tuple[str, bool]] = []
        batch = backend.revoke_batch
        while True:
            previous = self.cursor
            found, cursor = backend.revocations_since(previous)
            for task_id, terminate in found:
                self.add(task_id, terminate)
            new.extend(found)
            self.cursor = cursor
            # Read again only when the backend stopped at a full page: more may follow.
            if batch is None or cursor - previous < batch:
                break
        if new:
            self.save()
        return new

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            logger.warning("ignoring the unreadable worker state file %s: %s", path, exc)
            return
        self.cursor = int(data.get("cursor", 0))
        for task_id in data.get("revoked", []):
            self._ids[str(task_id)] = False
            if str(task_id).startswith(STAMP_REVOCATION):
                self._add_stamps(str(task_id))
        logger.info("loaded %d revoked task id(s) from %s", len(self._ids), path)

    def save(self) -> None:
        """Write the state file atomically (when one is configured)."""
        if self.state_path is None:
            return
        with self._lock:
            data = {"cursor": self.cursor, "revoked": list(self._ids)}
        tmp = self.state_path.with_name(self.state_path.name + f".{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(data), encoding="utf-8")
            os.replace(tmp, self.state_path)
        except OSError as exc:
            logger.error("could not write the worker state file %s: %s", self.state_path, exc)


def terminate_running(consumer: Consumer, task_id: str) -> None:
    """Stop the task ``task_id`` if it runs here (``revoke(terminate=True)``), or for a
    revocation by stamp every task running here that carries one; in the loop's thread."""
    if task_id.startswith(STAMP_REVOCATION):
        probe = Revocations()
        probe._add_stamps(task_id)
        for request in list(consumer.active.values()):
            if request.message.stamps and probe.stamped(request.message.stamps):
                terminate_running(consumer, request.id)
        return
    if task_id not in consumer.active:
        return  # not running here: the revocation list covers it
    try:
        stopped = consumer.pool.terminate_job(task_id)
    except PoolFeatureError as exc:
        logger.warning("cannot terminate task %s: %s; it runs to the end", task_id, exc)
        return
    if stopped:
        logger.warning("terminating task %s (revoked with terminate=True)", task_id)


class RevocationStep(Step):
    """Keeps the consumer's revocations in step with the result backend."""

    name = "revocations"
    requires = ("consumer",)

    def __init__(self, worker: Worker) -> None:
        super().__init__(worker)
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        worker = self.worker
        consumer = worker.consumer
        assert consumer is not None
        revocations = consumer.revocations
        if not worker.app.has_backend:
            logger.info("no result backend: this worker honours only revocations in its state file")
            return
        backend = worker.app.new_backend()
        try:
            revocations.sync(backend)
        except ConfigError:
            raise  # refused credentials, say: retrying cannot help, the worker must not start
        except Exception:
            logger.exception("could not read revocations from the result backend; retrying")
        self._thread = threading.Thread(target=self._run, args=(backend,), name="taskq-revocations", daemon=True)
        self._thread.start()

    def _run(self, backend: ResultBackend) -> None:
        consumer = self.worker.consumer
        assert consumer is not None
        try:
            while not self._stopped.wait(POLL_INTERVAL):
                try:
                    new = consumer.revocations.sync(backend)
                except Exception:
                    logger.exception("could not read revocations; retrying in %.1fs", POLL_INTERVAL)
                    continue
                for task_id, terminate in new:
                    what = (
                        f"tasks stamped {task_id[len(STAMP_REVOCATION) :]}"
                        if task_id.startswith(STAMP_REVOCATION)
                        else f"task {task_id}"
                    )
                    logger.info("%s revoked%s", what, " (terminate)" if terminate else "")
                    if terminate:
                        consumer.call_soon(partial(terminate_running, consumer, task_id))
        finally:
            backend.close()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        consumer = self.worker.consumer
        if consumer is not None:
            consumer.revocations.save()


__all__ = ["RevocationStep", "Revocations", "terminate_running"]
