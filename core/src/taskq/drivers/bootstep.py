"""The bootstep contract: a part of the worker that starts and stops with it.

A plugin adds steps to the worker through ``taskq_register_bootsteps``; each names the
steps it ``requires`` and starts after them (and stops before them). Core's own steps
are ``pool``, ``consumer``, ``leases``, ``revocations``, ``health``, ``autoscale`` and
``beat``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from taskq.worker.worker import Worker


class Step:
    """One part of the worker that starts and stops with it."""

    #: Unique name other steps use in ``requires``.
    name: ClassVar[str] = ""
    #: Names of the steps that must start before this one.
    requires: ClassVar[tuple[str, ...]] = ()

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def start(self) -> None:
        """Start; called in the worker's main thread, in blueprint order."""

    def stop(self) -> None:
        """Stop; called in reverse order. Must not raise."""


__all__ = ["Step"]
