"""The concurrency pool contract: how the worker runs tasks.

A pool runs callables and reports each outcome through callbacks. The worker never
assumes more than this class promises, so the same worker drives an inline pool, threads,
processes or green threads. A pool says what it can do in :attr:`Pool.capabilities`; the
worker says at start-up what a chosen pool cannot honour (a hard time limit on threads,
say) instead of ignoring the setting.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True, slots=True)
class PoolCapabilities:
    """What a pool can honour."""

    soft_time_limit: bool = False
    hard_time_limit: bool = False
    max_tasks_per_child: bool = False
    runs_inline: bool = False  # apply() returns after the task ran, in the calling thread


class Pool(ABC):
    """Base class of every pool. ``concurrency`` tasks may run at once."""

    capabilities: ClassVar[PoolCapabilities] = PoolCapabilities()

    def __init__(self, concurrency: int = 1, **options: object) -> None:
        self.concurrency = max(1, concurrency)
        self.options = options

    def start(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Start workers (threads, processes); called once before the first ``apply``."""

    def stop(self, *, wait: bool = True) -> None:  # noqa: B027 - optional hook
        """Stop; with ``wait``, let running tasks finish first."""

    @abstractmethod
    def apply(
        self,
        target: Callable[..., object],
        args: tuple[object, ...],
        *,
        callback: Callable[[object], None],
        error_callback: Callable[[BaseException], None],
    ) -> None:
        """Run ``target(*args)``; report its return value or exception by callback.

        Callbacks run in the worker's consuming thread or the pool's; they must be quick.
        """

    @property
    def free_slots(self) -> int:
        """How many more tasks could start right now."""
        return self.concurrency


__all__ = ["Pool", "PoolCapabilities"]
