"""What the consumer's loop does between turns for the rest of the worker.

Two kinds of call, both made in the loop's own thread, so they may touch the pool and the
consumer without locks (and must be quick):

* periodic ones, each at most every so many seconds (the health step's beat, the
  autoscaler), asked for once with :meth:`Chores.every`;
* one-off ones handed over from other threads (stopping a task revoked with
  ``terminate``), with :meth:`Chores.soon`; whoever hands one over wakes the loop.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Periodic:
    due: float  # by the monotonic clock
    interval: float  # seconds
    call: Callable[[], None]


class Chores:
    """The loop's calls between turns; see the module docstring."""

    def __init__(self) -> None:
        self._periodic: list[_Periodic] = []
        self._soon: deque[Callable[[], None]] = deque()
        #: When the first periodic call is due, by the monotonic clock.
        self.next_due = math.inf

    def every(self, interval: float, call: Callable[[], None]) -> None:
        """Call ``call`` at most every ``interval`` seconds, first on the loop's next turn."""
        self._periodic.append(_Periodic(0.0, interval, call))
        self.next_due = 0.0

    def soon(self, call: Callable[[], None]) -> None:
        """Call ``call`` once, on the loop's next turn; safe from any thread."""
        self._soon.append(call)

    def run(self, now: float) -> None:
        """Make the calls handed over, then the periodic calls due at ``now`` (monotonic)."""
        while self._soon:
            self._soon.popleft()()
        if now < self.next_due:
            return
        next_due = math.inf
        for periodic in self._periodic:
            if now >= periodic.due:
                periodic.due = now + periodic.interval
                periodic.call()
            next_due = min(next_due, periodic.due)
        self.next_due = next_due

    def time_left(self, now: float, longest: float) -> float:
        """Seconds the loop may wait before the next periodic call, at most ``longest``."""
        return max(0.0, min(longest, self.next_due - now))


__all__ = ["Chores"]
