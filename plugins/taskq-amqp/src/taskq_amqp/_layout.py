"""How taskq-amqp lays out its queues on the broker: delay queues and dead-letter queues."""

from __future__ import annotations

import math

# Significant bits kept when rounding a delay: < 1/64 relative error, few delay queues.
DELAY_PRECISION_BITS = 7
# Longest per-queue TTL RabbitMQ takes, in milliseconds (about 49 days).
MAX_TTL_MS = 2**32 - 1

HEADER_DEAD_REASON = "x-taskq-dead-reason"
HEADER_DEAD_QUEUE = "x-taskq-dead-queue"
HEADER_DEAD_AT = "x-taskq-dead-at"


def delay_bucket(delay: float, *, early_ok: bool = False) -> int:
    """Milliseconds of the delay queue for ``delay`` seconds (0: no delay needed)."""
    ms = math.floor(delay * 1000) if early_ok else math.ceil(delay * 1000)
    if ms <= 0:
        return 0
    shift = max(0, ms.bit_length() - DELAY_PRECISION_BITS)
    if not early_ok:
        ms += (1 << shift) - 1
    ms = (ms >> shift) << shift
    return min(ms, MAX_TTL_MS)


def delay_queue_name(queue: str, ms: int) -> str:
    return f"{queue}.delay.{ms}"


def dead_queue_name(queue: str) -> str:
    return f"{queue}.dead"


__all__ = [
    "HEADER_DEAD_AT",
    "HEADER_DEAD_QUEUE",
    "HEADER_DEAD_REASON",
    "MAX_TTL_MS",
    "dead_queue_name",
    "delay_bucket",
    "delay_queue_name",
]
