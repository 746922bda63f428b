"""Running an operation again, after a doubling pause, when its store fails it for a moment.

For drivers whose client library does not retry by itself (pymemcache, pymongo, SQLAlchemy)::

    RETRYING = RetryPolicy(CONNECTION_ERRORS, attempts=5, first_delay=0.2, max_delay=2.0)

    value = RETRYING.run(lambda: client.get(key), on_retry=log_it, give_up=unavailable)

Only run again what is safe to run twice: a read, a write of a whole value, a transaction
the database rolled back.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Run an operation up to ``attempts`` times while it raises one of ``errors``.

    The pauses between runs start at ``first_delay`` seconds and double, up to ``max_delay``.
    """

    errors: tuple[type[BaseException], ...]
    attempts: int
    first_delay: float
    max_delay: float = math.inf

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"a RetryPolicy runs its operation at least once; attempts={self.attempts}")

    def run(
        self,
        operation: Callable[[], T],
        *,
        on_retry: Callable[[BaseException, float], object] | None = None,
        give_up: Callable[[BaseException], BaseException] | None = None,
    ) -> T:
        """``operation()``, run again after each of ``errors`` until the attempts are spent.

        Args:
            on_retry: called with the error and the pause before each new run (to log it).
            give_up: turns the last error into the one raised (chained to it); without
                it the last error is raised as it is.
        """
        delay = self.first_delay
        for attempt in range(1, self.attempts + 1):
            try:
                return operation()
            except self.errors as exc:
                if attempt == self.attempts:
                    if give_up is None:
                        raise
                    raise give_up(exc) from exc
                if on_retry is not None:
                    on_retry(exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, self.max_delay)
        raise AssertionError("unreachable")  # pragma: no cover


__all__ = ["RetryPolicy"]
