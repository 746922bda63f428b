"""Autoscale (``--autoscale=MAX,MIN``): grow the pool under backlog, shrink it when idle.

The decision runs in the consumer's loop (never in another thread), so the pool is only
ever resized from the thread that feeds it.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from taskq.drivers.bootstep import Step
from taskq.errors import ConfigError, PoolFeatureError

if TYPE_CHECKING:
    from taskq.worker.consumer import Consumer
    from taskq.worker.worker import Worker

logger = logging.getLogger(__name__)

# Seconds the pool must have had idle slots before one is given up.
IDLE_BEFORE_SHRINK = 30.0
# Seconds between two looks at the backlog.
TICK_INTERVAL = 1.0


def parse_autoscale(text: str) -> tuple[int, int]:
    """``"10,3"`` -> ``(10, 3)``: the most and the fewest tasks at once."""
    try:
        parts = [int(p) for p in text.split(",")]
    except ValueError:
        raise ConfigError(f"--autoscale={text!r}: write it as MAX,MIN, for example --autoscale=10,3") from None
    if len(parts) == 1:
        parts.append(1)
    maximum, minimum = parts[0], parts[1]
    if len(parts) != 2 or minimum < 1 or maximum < minimum:
        raise ConfigError(f"--autoscale={text!r}: need MAX >= MIN >= 1, for example --autoscale=10,3")
    return maximum, minimum


class Autoscaler:
    """Looks at the backlog once a tick and resizes the pool between its bounds."""

    def __init__(self, consumer: Consumer, maximum: int, minimum: int, idle: float = IDLE_BEFORE_SHRINK) -> None:
        self.consumer = consumer
        self.maximum = maximum
        self.minimum = minimum
        self.idle = idle
        self._idle_since: float | None = None

    def __call__(self) -> None:
        pool = self.consumer.pool
        backlog = len(self.consumer.reserved)
        now = time.monotonic()
        if backlog and pool.free_slots == 0 and pool.concurrency < self.maximum:
            step = min(backlog, self.maximum - pool.concurrency)
            pool.grow(step)
            self._idle_since = None
            logger.info("autoscale: grew the pool by %d to %d", step, pool.concurrency)
            return
        if pool.free_slots > 0 and not backlog and pool.concurrency > self.minimum:
            if self._idle_since is None:
                self._idle_since = now
            elif now - self._idle_since >= self.idle:
                pool.shrink(1)
                self._idle_since = now
                logger.info("autoscale: shrank the pool to %d", pool.concurrency)
        else:
            self._idle_since = None


def set_autoscale(consumer: Consumer, maximum: int, minimum: int) -> None:
    """Set the autoscaler's bounds, attaching one when the worker had none (the
    ``autoscale`` control command), and bring the pool within them now, as Celery's
    does; in the loop's thread."""
    scaler = getattr(consumer, "autoscaler", None)
    if scaler is None:
        scaler = consumer.autoscaler = Autoscaler(consumer, maximum, minimum)
        consumer.call_every(TICK_INTERVAL, scaler)
    scaler.maximum, scaler.minimum = maximum, minimum
    pool = consumer.pool
    if pool.concurrency > maximum:
        pool.shrink(pool.concurrency - maximum)
        logger.info("autoscale: shrank the pool to its new maximum, %d", pool.concurrency)
    elif pool.concurrency < minimum:
        pool.grow(minimum - pool.concurrency)
        logger.info("autoscale: grew the pool to its new minimum, %d", pool.concurrency)


class AutoscaleStep(Step):
    """Attaches the autoscaler to the consumer when ``--autoscale`` was given."""

    name = "autoscale"
    requires = ("consumer",)

    def __init__(self, worker: Worker) -> None:
        super().__init__(worker)

    def start(self) -> None:
        worker = self.worker
        if worker.autoscale is None:
            return
        if not worker.pool.capabilities.resize:
            raise PoolFeatureError(
                f"--autoscale needs a pool that can grow and shrink; the {worker.pool_name} pool cannot. "
                f"Use --pool=prefork or --pool=thread, or drop --autoscale"
            )
        consumer = worker.consumer
        assert consumer is not None
        maximum, minimum = worker.autoscale
        set_autoscale(consumer, maximum, minimum)


__all__ = ["AutoscaleStep", "Autoscaler", "parse_autoscale", "set_autoscale"]
