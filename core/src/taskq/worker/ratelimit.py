"""Per-task-type rate limits: ``"10/s"``, ``"100/m"``, ``"5/h"``, as token buckets, one per task name."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from taskq.errors import ConfigError

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate(rate: str | float | int | None) -> float | None:
    """Tasks per second for a rate limit; ``None`` or 0 means no limit."""
    if rate is None:
        return None
    try:
        if isinstance(rate, (int, float)):
            value = float(rate)
        else:
            count, _, unit = rate.strip().partition("/")
            value = float(count) / _UNITS[unit.strip() or "s"]
        # a negative or endless rate would let every task through while claiming a limit
        if not 0 <= value < math.inf:
            raise ValueError(value)
    except (KeyError, ValueError, OverflowError):
        raise ConfigError(
            f"rate limit {rate!r:.80} is not understood; write it as N/s, N/m or N/h (for example '10/m')"
        ) from None
    return value or None


class TokenBucket:
    """Allows ``rate`` takes per second on average, and bursts of up to ``capacity``."""

    def __init__(self, rate: float, capacity: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._tokens = capacity
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def take(self) -> float:
        """Take a token; return 0, or the seconds to wait before one is available (nothing taken)."""
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate


class RateLimits:
    """One token bucket per task name, made the first time the task is rate limited."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[str | float | None, TokenBucket | None]] = {}

    def wait(self, name: str, rate_limit: str | float | None) -> float:
        """Seconds the task ``name`` must wait before it may start (0: now, its token taken).

        A new ``rate_limit`` for the task (``taskq control rate_limit``) gets a new bucket."""
        known = self._buckets.get(name)
        if known is None or known[0] != rate_limit:
            rate = parse_rate(rate_limit)
            known = self._buckets[name] = (rate_limit, TokenBucket(rate) if rate else None)
        bucket = known[1]
        return bucket.take() if bucket is not None else 0.0


__all__ = ["RateLimits", "TokenBucket", "parse_rate"]
