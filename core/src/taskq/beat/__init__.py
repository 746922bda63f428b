"""Beat: periodic tasks (``beat_schedule``), sent by ``taskq beat`` or ``taskq worker -B``.

The schedules (:func:`every`, :func:`crontab`, :func:`solar`) say when; a scheduler
remembers when each entry last ran and sends what is due; :class:`Beat` is the loop
around it. Scheduler plugins subclass :class:`taskq.drivers.Scheduler`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskq.beat.schedules import Crontab, Interval, Schedule, Solar, crontab, every, solar, to_schedule

if TYPE_CHECKING:
    from taskq.beat.service import Beat

__all__ = [
    "Beat",
    "Crontab",
    "Interval",
    "Schedule",
    "Solar",
    "crontab",
    "every",
    "solar",
    "to_schedule",
]


def __getattr__(name: str) -> object:
    # Beat is imported on first use: schedules are what most importers want, and the
    # service needs the scheduler contract, which itself needs the schedules.
    if name == "Beat":
        from taskq.beat.service import Beat

        return Beat
    raise AttributeError(f"module 'taskq.beat' has no attribute {name!r}")
