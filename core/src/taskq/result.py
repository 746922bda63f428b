"""Results: :class:`AsyncResult` for a sent task, :class:`EagerResult` for one run here,
:class:`ResultSet` and :class:`GroupResult` for many.

``get`` waits for the outcome (pushed by backends that can, polled with backoff by the
others) and re-raises the task's exception, with its own type when that type can be
imported here. Applications on an event loop ``await`` a result (or its ``get_async``)
instead of blocking.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar, cast

from taskq import states
from taskq.drivers.backend import Meta, check_meta, meta_to_exception
from taskq.errors import TimeoutError

if TYPE_CHECKING:
    from taskq.app import App
    from taskq.drivers.backend import ResultBackend

R = TypeVar("R", covariant=True)

logger = logging.getLogger(__name__)

# Polling when a backend cannot push, for ResultSet.join: first and longest sleep, seconds.
JOIN_POLL_START = 0.005
JOIN_POLL_MAX = 0.5


def _exception(app: App, value: object) -> BaseException:
    """The stored exception ``value`` rebuilt (see :func:`meta_to_exception`), with the app's allow-list."""
    return meta_to_exception(value, cast("list[str]", app.conf["result_exception_modules"]))


def _child_id(entry: object) -> str | None:
    """The task id in a stored child entry (Celery's ``[[id, parent], None]`` or a plain id)."""
    while isinstance(entry, (list, tuple)) and entry:
        entry = entry[0]
    return entry if isinstance(entry, str) else None


class AsyncResult(Generic[R]):
    """The outcome of a sent task, read from the result backend."""

    def __init__(
        self,
        id: str,  # noqa: A002 - Celery's name
        *,
        app: App | None = None,
        task_name: str | None = None,
        backend: ResultBackend | None = None,
    ) -> None:
        if app is None:
            from taskq.app import current_app

            app = current_app()
        self.id = id
        self.app = app
        self.task_name = task_name
        self._backend = backend
        self._cache: Meta | None = None
        #: The result of the task that came before this one in a chain (or a chord's header).
        self.parent: AsyncResult[object] | ResultSet | None = None

    @property
    def backend(self) -> ResultBackend:
        if self._backend is None:
            self._backend = self.app.backend
        return self._backend

    def _meta(self) -> Meta:
        if self._cache is not None:
            return self._cache
        meta = check_meta(self.backend.get_task_meta(self.id))
        if meta.get("status") in states.READY_STATES:
            self._cache = meta
        return meta

    # ---- State --------------------------------------------------------------------

    @property
    def state(self) -> str:
        """PENDING, RECEIVED, STARTED, RETRY, SUCCESS, FAILURE or REVOKED."""
        return str(self._meta()["status"])

    status = state

    @property
    def result(self) -> object:
        """The return value, or the exception when the task failed (without raising)."""
        meta = self._meta()
        if meta["status"] in states.EXCEPTION_STATES and meta.get("result") is not None:
            return self._exception(meta["result"])
        return meta.get("result")

    info = result

    def _exception(self, value: object) -> BaseException:
        return _exception(self.app, value)

    @property
    def traceback(self) -> str | None:
        value = self._meta().get("traceback")
        return None if value is None else str(value)

    @property
    def children(self) -> list[AsyncResult[object]]:
        """Results of the tasks this task sent while it ran (known once it is ready)."""
        out: list[AsyncResult[object]] = []
        for entry in cast("list[object]", self._meta().get("children") or []):
            task_id = _child_id(entry)
            if task_id:
                out.append(AsyncResult(task_id, app=self.app))
        return out

    @property
    def name(self) -> str | None:
        """The task's name, when known here or stored (``result_extended``)."""
        return self.task_name or cast("str | None", self._meta().get("name"))

    @property
    def date_done(self) -> str | None:
        value = self._meta().get("date_done")
        return None if value is None else str(value)

    def ready(self) -> bool:
        return self.state in states.READY_STATES

    def successful(self) -> bool:
        return self.state == states.SUCCESS

    def failed(self) -> bool:
        return self.state == states.FAILURE

    # ---- Waiting ------------------------------------------------------------------

    def get(self, timeout: float | None = None, propagate: bool = True) -> R:
        """Wait for the task and return its value; re-raise its exception if it failed.

        Raises :class:`taskq.errors.TimeoutError` when ``timeout`` seconds pass first.
        """
        meta = self._cache or check_meta(self.backend.wait_for(self.id, timeout=timeout))
        self._cache = meta
        if meta["status"] in states.PROPAGATE_STATES:
            exc = self._exception(meta.get("result"))
            if propagate:
                raise exc
            return cast(R, exc)
        return cast(R, meta.get("result"))

    wait = get

    def forget(self) -> None:
        """Delete the stored result."""
        self._cache = None
        self.backend.forget(self.id)

    def revoke(self, *, terminate: bool = False) -> None:
        """Make workers skip this task; with ``terminate``, stop it if it is running (see
        :meth:`taskq.control.Control.revoke`)."""
        self.app.control.revoke(self.id, terminate=terminate)

    def then(
        self,
        callback: Callable[[R], object],
        on_error: Callable[[BaseException], object] | None = None,
        timeout: float | None = None,
    ) -> threading.Thread:
        """Call ``callback(value)`` (or ``on_error(exc)``) from a thread once the task is done."""

        def wait() -> None:
            try:
                value = self.get(timeout=timeout)
            except Exception as exc:
                if on_error is not None:
                    on_error(exc)
                else:
                    logger.exception("result %s failed and then() was given no on_error", self.id)
                return
            callback(value)

        thread = threading.Thread(target=wait, name=f"taskq-then-{self.id[:8]}", daemon=True)
        thread.start()
        return thread

    # ---- On an event loop -------------------------------------------------------------

    async def get_async(self, timeout: float | None = None, propagate: bool = True) -> R:
        """``get`` for asyncio code: waits without blocking the event loop."""
        if self._cache is not None:
            return self.get(propagate=propagate)
        import asyncio  # imported on use: it adds ~25 ms to every start-up

        return await asyncio.to_thread(self.get, timeout, propagate)

    def __await__(self) -> Generator[object, None, R]:
        return self.get_async().__await__()

    def __repr__(self) -> str:
        return f"<AsyncResult: {self.id}>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AsyncResult):
            return self.id == other.id
        return other == self.id

    def __hash__(self) -> int:
        return hash(self.id)


class EagerResult(AsyncResult[R]):
    """The outcome of a task run in this process (``apply`` or eager mode)."""

    def __init__(
        self,
        id: str,  # noqa: A002 - Celery's name
        value: object,
        state: str,
        traceback: str | None = None,
        *,
        app: App | None = None,
        task_name: str | None = None,
    ) -> None:
        super().__init__(id, app=app, task_name=task_name)
        self._value = value
        self._state = state
        self._traceback = traceback
        self._cache = {
            "status": state,
            "result": value,
            "traceback": traceback,
            "task_id": id,
        }

    def _meta(self) -> Meta:
        assert self._cache is not None
        return self._cache

    @property
    def result(self) -> object:
        return self._value

    info = result

    def get(self, timeout: float | None = None, propagate: bool = True) -> R:
        if self._state in states.PROPAGATE_STATES and propagate:
            assert isinstance(self._value, BaseException)
            raise self._value
        return cast(R, self._value)

    wait = get

    def forget(self) -> None:
        """Nothing is stored for an eager result."""

    def __repr__(self) -> str:
        return f"<EagerResult: {self.id}>"


class ResultSet:
    """Several results, waited on together."""

    def __init__(self, results: Iterable[AsyncResult[object]], *, app: App | None = None) -> None:
        self.results: list[AsyncResult[object]] = list(results)
        if app is None:
            from taskq.app import current_app

            app = self.results[0].app if self.results else current_app()
        self.app = app

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[AsyncResult[object]]:
        return iter(self.results)

    def __getitem__(self, index: int) -> AsyncResult[object]:
        return self.results[index]

    def add(self, result: AsyncResult[object]) -> None:
        if result not in self.results:
            self.results.append(result)

    def discard(self, result: AsyncResult[object]) -> None:
        if result in self.results:
            self.results.remove(result)

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.results]

    def _metas(self) -> dict[str, Meta]:
        return {i: check_meta(m) for i, m in self.app.backend.get_many(self.ids).items()} if self.results else {}

    def completed_count(self) -> int:
        """How many finished successfully."""
        return sum(1 for m in self._metas().values() if m["status"] == states.SUCCESS)

    def ready(self) -> bool:
        return all(m["status"] in states.READY_STATES for m in self._metas().values())

    def successful(self) -> bool:
        return all(m["status"] == states.SUCCESS for m in self._metas().values())

    def failed(self) -> bool:
        return any(m["status"] == states.FAILURE for m in self._metas().values())

    def waiting(self) -> bool:
        return not self.ready()

    def join(self, timeout: float | None = None, propagate: bool = True) -> list[object]:
        """The values, in order, once all are ready; re-raises the first failure."""
        return self.join_native(timeout=timeout, propagate=propagate)

    def join_native(self, timeout: float | None = None, propagate: bool = True) -> list[object]:
        """:meth:`join` reading every state in one round trip per look (``get_many``)."""
        backend = self.app.backend
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = JOIN_POLL_START
        ids = self.ids
        while True:
            metas = {i: check_meta(m) for i, m in backend.get_many(ids).items()} if ids else {}
            pending = [i for i in ids if metas[i]["status"] not in states.READY_STATES]
            if not pending:
                break
            if propagate:
                for task_id in ids:
                    if metas[task_id]["status"] in states.PROPAGATE_STATES:
                        raise _exception(self.app, metas[task_id].get("result"))
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"{len(pending)} of {len(ids)} results still not ready after {timeout}s")
            backend.wait_for_change(pending, interval if remaining is None else min(interval, remaining))
            interval = min(interval * 2, JOIN_POLL_MAX)
        values: list[object] = []
        for task_id in ids:
            meta = metas[task_id]
            if meta["status"] in states.PROPAGATE_STATES:
                exc = _exception(self.app, meta.get("result"))
                if propagate:
                    raise exc
                values.append(exc)
            else:
                values.append(meta.get("result"))
        return values

    get = join

    async def join_async(self, timeout: float | None = None, propagate: bool = True) -> list[object]:
        import asyncio  # imported on use: it adds ~25 ms to every start-up

        return await asyncio.to_thread(self.join, timeout, propagate)

    def __await__(self) -> Generator[object, None, list[object]]:
        return self.join_async().__await__()

    def revoke(self, *, terminate: bool = False) -> None:
        if self.results:
            self.app.control.revoke(self.ids, terminate=terminate)

    def forget(self) -> None:
        for result in self.results:
            result.forget()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.ids}>"


class GroupResult(ResultSet):
    """The results of a group, under the group's id; can be saved and restored."""

    def __init__(
        self,
        id: str,  # noqa: A002 - Celery's name
        results: Sequence[AsyncResult[object]] = (),
        *,
        app: App | None = None,
    ) -> None:
        super().__init__(results, app=app)
        self.id = id
        self.parent: AsyncResult[object] | ResultSet | None = None

    def save(self) -> None:
        """Store the group's member ids in the result backend, under the group id."""
        self.app.backend.save_group(self.id, self.ids)

    def delete(self) -> None:
        self.app.backend.delete_group(self.id)

    @classmethod
    def restore(cls, group_id: str, *, app: App | None = None) -> GroupResult | None:
        """The saved group ``group_id``, or None if nothing is stored."""
        if app is None:
            from taskq.app import current_app

            app = current_app()
        ids = app.backend.restore_group(group_id)
        if ids is None:
            return None
        return cls(group_id, [AsyncResult(i, app=app) for i in ids], app=app)

    def __repr__(self) -> str:
        return f"<GroupResult: {self.id} {self.ids}>"


__all__ = ["AsyncResult", "EagerResult", "GroupResult", "ResultSet"]
