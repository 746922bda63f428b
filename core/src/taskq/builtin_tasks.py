"""The tasks every app has, under Celery's names, so that the workflows that send them run
on a taskq worker whoever sent them: ``celery.map`` and ``celery.starmap`` (``task.map``,
``task.starmap`` and each part of ``task.chunks``), and ``celery.accumulate`` (the body
that collects a group which replaced a task).

Each runs the task it is given in the worker's own thread, once per item, as plain calls,
and returns the list of their results, as Celery's do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, cast

from taskq.errors import NotRegisteredError

if TYPE_CHECKING:
    from taskq.app import App
    from taskq.task import Task

MAP = "celery.map"
STARMAP = "celery.starmap"
ACCUMULATE = "celery.accumulate"


def register(app: App) -> None:
    """Register the built-in tasks with ``app`` (its constructor does)."""

    def xmap(task: Mapping[str, object], it: Iterable[object]) -> list[object]:
        run = _task(app, task)
        return [run(item) for item in it]

    def xstarmap(task: Mapping[str, object], it: Iterable[Iterable[object]]) -> list[object]:
        run = _task(app, task)
        return [run(*item) for item in it]

    def accumulate(*args: object, index: int | None = None) -> object:
        """The arguments it is given (or the one at ``index``): a chord's body that just
        returns its header's results, as the result of a group that replaced a task."""
        return args[index] if index is not None else list(args)

    app.task(name=MAP)(xmap)
    app.task(name=STARMAP)(xstarmap)
    app.task(name=ACCUMULATE)(accumulate)


def _task(app: App, data: Mapping[str, object]) -> Task[..., object]:
    if not isinstance(data, Mapping) or not isinstance(data.get("task"), str):
        raise TypeError(f"a map needs a signature of the task to map, not {data!r}")
    name = cast(str, data["task"])
    task = app.tasks.get(name)
    if task is None:
        raise NotRegisteredError(f"task {name!r} (mapped by {MAP} or {STARMAP}) is not registered on this worker")
    return task


__all__ = ["ACCUMULATE", "MAP", "STARMAP", "register"]
