"""Results: :class:`AsyncResult` for a sent task and :class:`EagerResult` for one run here.

``get`` waits for the outcome (pushed by backends that can, polled with backoff by the
others) and re-raises the task's exception, with its own type when that type can be
imported here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar, cast

from taskq import states
from taskq.backends.base import Meta, meta_to_exception

if TYPE_CHECKING:
    from taskq.app import App
    from taskq.backends.base import ResultBackend

R = TypeVar("R", covariant=True)


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

    @property
    def backend(self) -> ResultBackend:
        if self._backend is None:
            self._backend = self.app.backend
        return self._backend

    def _meta(self) -> Meta:
        if self._cache is not None:
            return self._cache
        meta = self.backend.get_task_meta(self.id)
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
            return meta_to_exception(meta["result"])
        return meta.get("result")

    info = result

    @property
    def traceback(self) -> str | None:
        value = self._meta().get("traceback")
        return None if value is None else str(value)

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
        meta = self._cache or self.backend.wait_for(self.id, timeout=timeout)
        self._cache = meta
        if meta["status"] in states.PROPAGATE_STATES:
            exc = meta_to_exception(meta.get("result"))
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
        """Make workers skip this task; with ``terminate``, stop it if it is running."""
        self.backend.revoke([self.id], terminate=terminate)

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


__all__ = ["AsyncResult", "EagerResult"]
