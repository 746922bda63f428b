"""The worker as a blueprint of bootsteps that start in dependency order.

A step names the steps it ``requires``; the blueprint starts them so that every step
starts after what it requires and stops before it. Core's steps are the pool, the
consumer, the lease keeper, revocations, autoscale, health (the health file and the
heartbeat) and the embedded beat; plugins add theirs through ``taskq_register_bootsteps``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from taskq.drivers.bootstep import Step
from taskq.errors import PluginError

if TYPE_CHECKING:
    from taskq.worker.worker import Worker

logger = logging.getLogger(__name__)


class Blueprint:
    """Steps ordered by their requirements."""

    def __init__(self, steps: Iterable[type[Step]]) -> None:
        self.steps = self._order(list(steps))
        self.started: list[Step] = []

    @staticmethod
    def _order(steps: list[type[Step]]) -> list[type[Step]]:
        by_name: dict[str, type[Step]] = {}
        for step in steps:
            if not step.name:
                raise PluginError(f"bootstep {step.__qualname__} has no name")
            if step.name in by_name:
                raise PluginError(
                    f"two bootsteps are named {step.name!r}: {by_name[step.name].__module__} and "
                    f"{step.__module__}; rename one"
                )
            by_name[step.name] = step
        ordered: list[type[Step]] = []
        visiting: set[str] = set()
        done: set[str] = set()

        def visit(name: str, chain: tuple[str, ...]) -> None:
            if name in done:
                return
            if name in visiting:
                raise PluginError(f"bootsteps require each other in a cycle: {' -> '.join((*chain, name))}")
            step = by_name.get(name)
            if step is None:
                raise PluginError(
                    f"bootstep {chain[-1]!r} requires {name!r}, which no step provides; "
                    f"known steps: {', '.join(sorted(by_name))}"
                )
            visiting.add(name)
            for required in step.requires:
                visit(required, (*chain, name))
            visiting.discard(name)
            done.add(name)
            ordered.append(step)

        for step in steps:
            visit(step.name, ())
        return ordered

    def start(self, worker: Worker) -> None:
        for cls in self.steps:
            step = cls(worker)
            step.start()
            self.started.append(step)
            logger.debug("bootstep %s started", cls.name)

    def stop(self) -> None:
        while self.started:
            step = self.started.pop()
            try:
                step.stop()
            except Exception:
                logger.exception("bootstep %s failed to stop", step.name)


__all__ = ["Blueprint"]
