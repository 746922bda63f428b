"""Signatures: a task call packed as data, to send later or attach as a callback.

A :class:`Signature` is a ``dict`` with Celery's keys (``task``, ``args``, ``kwargs``,
``options``, ``subtask_type``, ``immutable``, ``chord_size``), so it travels inside
protocol 2 messages (``link``, ``link_error``) and Celery reads it. The composite
primitives (chain, group, chord, map, starmap, chunks) build on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from taskq.app import App
    from taskq.result import AsyncResult


class Signature(dict[str, object]):
    """One task call: name, arguments and sending options."""

    def __init__(
        self,
        task: str,
        args: Sequence[object] | None = None,
        kwargs: Mapping[str, object] | None = None,
        options: Mapping[str, object] | None = None,
        *,
        immutable: bool | None = None,
        subtask_type: str | None = None,
        app: App | None = None,
    ) -> None:
        opts = dict(options or {})
        is_immutable = bool(opts.pop("immutable", False)) if immutable is None else immutable
        super().__init__(
            task=task,
            args=list(args or ()),
            kwargs=dict(kwargs or {}),
            options=opts,
            subtask_type=subtask_type,
            immutable=is_immutable,
            chord_size=None,
        )
        self._app = app

    @classmethod
    def from_dict(cls, data: Mapping[str, object], app: App | None = None) -> Signature:
        """Rebuild a signature that travelled in a message."""
        if isinstance(data, Signature):
            return data
        return cls(
            str(data["task"]),
            cast("Sequence[object]", data.get("args") or ()),
            cast("Mapping[str, object]", data.get("kwargs") or {}),
            cast("Mapping[str, object]", data.get("options") or {}),
            immutable=bool(data.get("immutable", False)),
            subtask_type=cast("str | None", data.get("subtask_type")),
            app=app,
        )

    @property
    def task(self) -> str:
        return str(self["task"])

    @property
    def args(self) -> list[object]:
        return cast("list[object]", self["args"])

    @property
    def kwargs(self) -> dict[str, object]:
        return cast("dict[str, object]", self["kwargs"])

    @property
    def options(self) -> dict[str, object]:
        return cast("dict[str, object]", self["options"])

    @property
    def immutable(self) -> bool:
        return bool(self["immutable"])

    @property
    def app(self) -> App:
        if self._app is None:
            from taskq.app import current_app

            self._app = current_app()
        return self._app

    def clone(
        self, args: Sequence[object] = (), kwargs: Mapping[str, object] | None = None, **options: object
    ) -> Signature:
        """A copy with ``args`` prepended (unless immutable) and kwargs/options merged."""
        new_args = self.args if self.immutable else [*args, *self.args]
        return Signature(
            self.task,
            new_args,
            {**self.kwargs, **(kwargs or {})},
            {**self.options, **options},
            immutable=self.immutable,
            subtask_type=cast("str | None", self["subtask_type"]),
            app=self._app,
        )

    def set(self, **options: object) -> Signature:
        """Merge sending options in place; returns the signature."""
        self.options.update(options)
        return self

    def link(self, callback: Signature) -> Signature:
        """Run ``callback`` with this task's result when it succeeds."""
        links = cast("list[object]", self.options.setdefault("link", []))
        links.append(callback)
        return callback

    def link_error(self, errback: Signature) -> Signature:
        """Run ``errback`` with the failed task's id when it fails."""
        links = cast("list[object]", self.options.setdefault("link_error", []))
        links.append(errback)
        return errback

    def apply_async(
        self,
        args: Sequence[object] = (),
        kwargs: Mapping[str, object] | None = None,
        **options: object,
    ) -> AsyncResult[object]:
        """Send the call (``args`` prepended unless immutable)."""
        sig = self.clone(args, kwargs, **options) if (args or kwargs or options) else self
        return sig.app.send_task(sig.task, sig.args, sig.kwargs, **cast("dict[str, Any]", sig.options))

    def delay(self, *args: object, **kwargs: object) -> AsyncResult[object]:
        return self.apply_async(args, kwargs)

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.task}({', '.join(parts)}){'!' if self.immutable else ''}"


def signature(
    task: str | Mapping[str, object],
    args: Sequence[object] | None = None,
    kwargs: Mapping[str, object] | None = None,
    **options: object,
) -> Signature:
    """A signature by task name, or rebuilt from a dict."""
    if isinstance(task, Mapping):
        return Signature.from_dict(task)
    return Signature(task, args, kwargs, options)


__all__ = ["Signature", "signature"]
