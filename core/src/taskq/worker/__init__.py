"""The worker: bootsteps, the consumer loop, task tracing and requests."""

from __future__ import annotations

from taskq.drivers.bootstep import Step
from taskq.worker.bootsteps import Blueprint
from taskq.worker.worker import Worker

__all__ = ["Blueprint", "Step", "Worker"]
