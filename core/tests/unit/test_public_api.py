"""The public API: what ``import taskq`` offers, pinned so a change is a decision."""

from __future__ import annotations

import importlib

import taskq

PUBLIC_API = [
    "App",
    "AsyncResult",
    "ConfigError",
    "Context",
    "DriverNotFoundError",
    "EagerResult",
    "GroupResult",
    "Ignore",
    "MaxRetriesExceededError",
    "Reject",
    "ResultSet",
    "Retry",
    "Signature",
    "Task",
    "TaskError",
    "TaskqError",
    "TimeoutError",
    "__version__",
    "chain",
    "chord",
    "current_app",
    "group",
    "hookimpl",
    "shared_task",
    "signature",
    "states",
]


def test_public_api_is_pinned() -> None:
    assert sorted(taskq.__all__) == PUBLIC_API


def test_every_public_name_imports() -> None:
    module = importlib.import_module("taskq")
    for name in taskq.__all__:
        assert getattr(module, name) is not None, name


def test_every_error_is_a_taskq_error() -> None:
    import taskq.errors as errors

    for name in errors.__all__:
        value = getattr(errors, name)
        if isinstance(value, type):
            assert issubclass(value, errors.TaskqError), name
