"""A beat_schedule written for Celery, with celery.schedules objects, works on taskq's beat."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from celery.schedules import crontab as celery_crontab
from celery.schedules import schedule as celery_schedule

from taskq.beat import Crontab, Interval, crontab, every, to_schedule


def test_celery_schedule_and_crontab_objects_become_taskq_schedules() -> None:
    assert to_schedule(celery_schedule(timedelta(seconds=30))) == every(30)
    assert to_schedule(celery_schedule(timedelta(minutes=5), relative=True)) == every(300, relative=True)
    converted = to_schedule(celery_crontab(minute="*/15", hour="9-17", day_of_week="mon-fri"))
    assert isinstance(converted, Crontab)
    assert converted == crontab(minute="*/15", hour="9-17", day_of_week="mon-fri")
    assert isinstance(to_schedule(celery_schedule(10.0)), Interval)


def test_a_converted_crontab_is_due_when_celerys_would_be() -> None:
    theirs = celery_crontab(minute=0, hour="3", day_of_month="1-7", day_of_week="mon")
    ours = to_schedule(theirs)
    last = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # a Sunday: next first Monday 03:00 is 2026-03-02
    now = datetime(2026, 3, 1, 12, 0, 1, tzinfo=UTC)
    assert ours.remaining(last, now, UTC) == (datetime(2026, 3, 2, 3, 0, tzinfo=UTC) - now).total_seconds()
