"""Results: reading a task's state and outcome from the backend, waiting, forgetting."""

from __future__ import annotations

import builtins
import uuid

import pytest

import taskq.errors
from taskq import App, AsyncResult, states
from taskq.errors import ResultNotEnabledError


def stored(app: App, result: object, state: str, traceback: str | None = None) -> AsyncResult[object]:
    task_id = str(uuid.uuid4())
    app.backend.store_result(task_id, result, state, traceback)
    return AsyncResult(task_id, app=app)


def test_unknown_task_is_pending_and_not_ready(app: App) -> None:
    result = AsyncResult(str(uuid.uuid4()), app=app)
    assert result.state == states.PENDING
    assert not result.ready()
    assert result.result is None


def test_success_reads_as_ready_and_successful(app: App) -> None:
    result = stored(app, {"answer": 42}, states.SUCCESS)
    assert result.state == result.status == states.SUCCESS
    assert result.ready()
    assert result.successful()
    assert not result.failed()
    assert result.result == {"answer": 42}
    assert result.get(timeout=1) == {"answer": 42}
    assert result.date_done is not None


def test_failure_gives_the_exception_as_result_and_the_traceback(app: App) -> None:
    result = stored(app, KeyError("missing"), states.FAILURE, "Traceback ...\nKeyError: 'missing'")
    assert result.failed()
    assert result.ready()
    assert not result.successful()
    assert isinstance(result.result, KeyError)
    assert result.traceback == "Traceback ...\nKeyError: 'missing'"
    with pytest.raises(KeyError, match="missing"):
        result.get(timeout=1)


def test_get_without_propagate_returns_the_exception(app: App) -> None:
    result = stored(app, ValueError("x"), states.FAILURE)
    assert isinstance(result.get(timeout=1, propagate=False), ValueError)


def test_retry_state_is_not_ready(app: App) -> None:
    result = stored(app, ValueError("again"), states.RETRY)
    assert result.state == states.RETRY
    assert not result.ready()
    assert isinstance(result.result, ValueError)


def test_forget_deletes_the_stored_result(app: App) -> None:
    result = stored(app, 1, states.SUCCESS)
    assert result.successful()
    result.forget()
    assert result.state == states.PENDING


def test_get_that_times_out_raises_taskq_timeout_error(app: App) -> None:
    result = AsyncResult(str(uuid.uuid4()), app=app)
    with pytest.raises(taskq.errors.TimeoutError, match=r"still PENDING after 0\.05s") as info:
        result.get(timeout=0.05)
    assert isinstance(info.value, builtins.TimeoutError)
    assert isinstance(info.value, taskq.errors.TaskqError)


def test_results_compare_by_task_id(app: App) -> None:
    assert AsyncResult("a", app=app) == AsyncResult("a", app=app)
    assert AsyncResult("a", app=app) == "a"
    assert len({AsyncResult("a", app=app), AsyncResult("a", app=app)}) == 1


def test_reading_a_result_with_results_disabled_says_how_to_enable_them(memory_url: str) -> None:
    app = App("tests", broker=memory_url, read_config=False, result_backend="disabled")
    assert not app.has_backend
    result = app.send_task("proj.add", (1, 2))
    with pytest.raises(ResultNotEnabledError, match=r"Set result_backend in taskq\.toml"):
        result.get(timeout=1)


def test_the_broker_store_holds_results_when_no_backend_is_set(memory_url: str) -> None:
    app = App("tests", broker=memory_url, read_config=False)
    assert app.backend_url == memory_url
