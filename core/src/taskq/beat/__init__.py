"""Beat: periodic tasks (``beat_schedule``), sent by ``taskq beat`` or ``taskq worker -B``.

The schedules (:func:`every`, :func:`crontab`, :func:`solar`) say when; a scheduler
remembers when each entry last ran and sends what is due; :class:`Beat` is the loop
around it. Scheduler plugins subclass :class:`taskq.drivers.Scheduler`.
"""

from taskq.beat.schedules import Crontab, Interval, Schedule, Solar, crontab, every, solar, to_schedule
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
