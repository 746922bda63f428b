"""taskq.beat.schedules: parsing, next-run times, DST rules, solar events, to_schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import pytest

from taskq.beat.schedules import (
    SOLAR_RETRY,
    CronField,
    Crontab,
    Interval,
    Schedule,
    Solar,
    crontab,
    every,
    solar,
    to_schedule,
)
from taskq.errors import ConfigError

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
TOKYO = ZoneInfo("Asia/Tokyo")
LONDON_LAT_LON = (51.5074, -0.1278)
SYDNEY_LAT_LON = (-33.8688, 151.2093)
TROMSO_LAT_LON = (69.6492, 18.9553)
# How far a solar time may be from the reference, in seconds.
SOLAR_TOLERANCE = 120.0


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def next_run(schedule: Schedule, last_run_at: datetime, tz: tzinfo = UTC) -> datetime:
    """The instant the schedule is next due after ``last_run_at``, in UTC."""
    last = last_run_at.astimezone(UTC)  # add seconds on UTC: aware wall-clock arithmetic ignores DST
    return last + timedelta(seconds=schedule.remaining(last, last, tz))


def runs_between(schedule: Schedule, start: datetime, end: datetime, tz: tzinfo) -> list[str]:
    """Every run from ``start`` to ``end``, as beat would make them, in ``tz``'s wall clock."""
    times: list[str] = []
    last = start
    while (due := next_run(schedule, last, tz)) <= end:
        times.append(due.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z"))
        last = due
    return times


# ---- Crontab fields -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("*", tuple(range(60))),
        ("*/15", (0, 15, 30, 45)),
        ("5", (5,)),
        ("1-5", (1, 2, 3, 4, 5)),
        ("1-10/2", (1, 3, 5, 7, 9)),
        ("0,30", (0, 30)),
        ("5/15", (5, 20, 35, 50)),
        ("0-10/5,30,45-47", (0, 5, 10, 30, 45, 46, 47)),
        (" 7 ", (7,)),
        ("58-2", (0, 1, 2, 58, 59)),
    ],
)
def test_minute_text_parses_to_the_minutes_it_matches(text: str, expected: tuple[int, ...]) -> None:
    assert crontab(minute=text).minute == expected


def test_fields_accept_an_int_or_an_iterable_of_ints() -> None:
    schedule = crontab(minute=5, hour=range(0, 24, 6), day_of_month={1, 15}, month_of_year=[3])
    assert schedule.minute == (5,)
    assert schedule.hour == (0, 6, 12, 18)
    assert schedule.day_of_month == (1, 15)
    assert schedule.month_of_year == (3,)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mon-fri", (1, 2, 3, 4, 5)),
        ("MON-Fri", (1, 2, 3, 4, 5)),
        ("sun", (0,)),
        ("sat,sun", (0, 6)),
        ("7", (0,)),
        ("5-7", (0, 5, 6)),
        ("fri-mon", (0, 1, 5, 6)),
        ("*/2", (0, 2, 4, 6)),
        # Celery reads a name by its first three letters: its beat_schedule entries use these
        ("thursday", (4,)),
        ("tuesday,sunday,fri", (0, 2, 5)),
        ("Monday-Wednesday", (1, 2, 3)),
    ],
)
def test_day_of_week_takes_names_and_counts_sunday_as_0_or_7(text: str, expected: tuple[int, ...]) -> None:
    assert crontab(day_of_week=text).day_of_week == expected


def test_month_of_year_takes_names_in_any_case() -> None:
    assert crontab(month_of_year="JAN-mar,jul,Dec").month_of_year == (1, 2, 3, 7, 12)
    assert crontab(month_of_year="april").month_of_year == (4,)
    assert crontab(month_of_year="september,October").month_of_year == (9, 10)


def test_hours_can_wrap_past_midnight() -> None:
    assert crontab(hour="22-2").hour == (0, 1, 2, 22, 23)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"minute": "75"}, r"crontab minute '75' is out of range 0-59; use a number from 0 to 59"),
        ({"minute": 60}, r"crontab minute '60' is out of range 0-59"),
        ({"minute": -1}, r"crontab minute '-1' is out of range 0-59"),
        ({"minute": "1-75"}, r"crontab minute '75' \(in '1-75'\) is out of range 0-59"),
        ({"hour": "24"}, r"crontab hour '24' is out of range 0-23"),
        ({"day_of_month": "0"}, r"crontab day_of_month '0' is out of range 1-31"),
        ({"month_of_year": "13"}, r"crontab month_of_year '13' is out of range 1-12"),
        ({"day_of_week": "8"}, r"crontab day_of_week '8' is out of range 0-6 \(7 also means Sunday\)"),
        ({"hour": "*/0"}, r"crontab hour '\*/0' has a step of 0; a step is 1 or more"),
        ({"minute": "abc"}, r"crontab minute 'abc' is not understood; write '\*', a number"),
        ({"minute": "1-"}, r"crontab minute '1-' is not understood"),
        ({"minute": "*/x"}, r"crontab minute '\*/x' is not understood"),
        ({"minute": "1,,2"}, r"crontab minute '1,,2' is not understood"),
        ({"minute": ""}, r"crontab minute is empty"),
        ({"day_of_week": "fry"}, r"crontab day_of_week 'fry' is not understood.*day names sun\.\.sat"),
        ({"month_of_year": "jxn"}, r"crontab month_of_year 'jxn' is not understood.*month names jan\.\.dec"),
        ({"day_of_week": "th"}, r"crontab day_of_week 'th' is not understood"),
        ({"minute": []}, r"crontab minute is an empty list; give at least one number, or '\*' for all"),
        ({"minute": [0, "30"]}, r"crontab minute holds '30', which is not a whole number"),
        ({"minute": 1.5}, r"crontab minute 1.5 is not understood"),
        ({"minute": True}, r"crontab minute True is not understood"),
        ({"minute": None}, r"crontab minute None is not understood"),
    ],
)
def test_a_bad_crontab_field_is_a_config_error_naming_field_and_value(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        crontab(**fields)  # type: ignore[arg-type]  # the keys are crontab's field names


@pytest.mark.parametrize(("day", "month"), [(31, 2), ("30-31", "feb"), (31, "apr,jun,sep,nov")])
def test_a_crontab_that_can_never_run_is_refused(day: CronField, month: CronField) -> None:
    with pytest.raises(ConfigError, match=r"never falls in month_of_year .* would never run"):
        crontab(day_of_month=day, month_of_year=month)


def test_a_crontab_on_a_day_only_some_of_its_months_have_is_accepted() -> None:
    assert crontab(day_of_month=31, month_of_year="1,2").month_of_year == (1, 2)
    assert crontab(day_of_month=29, month_of_year=2).day_of_month == (29,)


def test_an_unknown_time_zone_is_a_config_error_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"time zone 'Europe/Pariss' is not known \(did you mean 'Europe/Paris'\?\)"):
        crontab(tz="Europe/Pariss")


# ---- Crontab.from_string ----------------------------------------------------------


def test_from_string_reads_the_five_fields_in_cron_order() -> None:
    schedule = Crontab.from_string("1 2 3 4 5")
    assert (schedule.minute, schedule.hour, schedule.day_of_month) == ((1,), (2,), (3,))
    assert (schedule.month_of_year, schedule.day_of_week) == ((4,), (5,))


def test_from_string_passes_the_time_zone_on() -> None:
    assert Crontab.from_string("*/5 * * * *", tz="Europe/Paris").tz == PARIS


@pytest.mark.parametrize(
    ("keyword", "fields"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
        ("@DAILY", "0 0 * * *"),
    ],
)
def test_from_string_knows_the_at_keywords(keyword: str, fields: str) -> None:
    assert Crontab.from_string(keyword) == Crontab.from_string(fields)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("* * * *", r"crontab '\* \* \* \*' has 4 fields; write five: minute hour day_of_month month_of_year"),
        ("* * * * * *", r"has 6 fields"),
        ("", r"has 0 fields"),
        ("@dayly", r"crontab keyword '@dayly' is not known \(did you mean '@daily'\?\); one of: @yearly"),
        ("0 3 * * funday", r"crontab day_of_week 'funday' is not understood"),
    ],
)
def test_from_string_errors_say_what_to_write(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Crontab.from_string(text)


def test_from_string_refuses_what_is_not_a_string() -> None:
    with pytest.raises(ConfigError, match=r"crontab 5 is not a string"):
        Crontab.from_string(5)  # type: ignore[arg-type]  # the point of the test


# ---- Crontab next run ---------------------------------------------------------------


def test_crontab_runs_at_the_next_matching_minute_strictly_after_the_last_run() -> None:
    every_five = Crontab.from_string("*/5 * * * *")
    assert next_run(every_five, utc(2024, 5, 1, 10, 0)) == utc(2024, 5, 1, 10, 5)
    assert next_run(every_five, utc(2024, 5, 1, 10, 4, 59, 999999)) == utc(2024, 5, 1, 10, 5)
    assert next_run(every_five, utc(2024, 5, 1, 10, 5, 0, 1)) == utc(2024, 5, 1, 10, 10)


def test_crontab_remaining_counts_from_now() -> None:
    daily = crontab(minute=0, hour=3)
    assert daily.remaining(utc(2024, 5, 1, 3), utc(2024, 5, 2, 2, 59), UTC) == 60.0


def test_crontab_crosses_a_month_end() -> None:
    assert next_run(crontab(minute=0, hour=0), utc(2024, 1, 31, 12)) == utc(2024, 2, 1)


def test_crontab_on_the_31st_skips_months_without_one() -> None:
    on_31st = crontab(minute=0, hour=0, day_of_month=31)
    assert next_run(on_31st, utc(2024, 1, 31, 0, 0)) == utc(2024, 3, 31)
    assert next_run(on_31st, utc(2024, 3, 31, 0, 0)) == utc(2024, 5, 31)


def test_crontab_crosses_a_year_end() -> None:
    assert next_run(Crontab.from_string("@yearly"), utc(2024, 12, 31, 23, 59, 30)) == utc(2025, 1, 1)
    last_minute = Crontab.from_string("59 23 31 12 *")
    assert next_run(last_minute, utc(2024, 12, 31, 23, 59)) == utc(2025, 12, 31, 23, 59)


def test_a_feb_29_crontab_waits_for_the_next_leap_year() -> None:
    # Also the speed check: answering must skip the years between, not walk their minutes.
    leap_day = Crontab.from_string("0 0 29 2 *")
    assert next_run(leap_day, utc(2024, 3, 1)) == utc(2028, 2, 29)
    assert next_run(leap_day, utc(2096, 2, 29)) == utc(2104, 2, 29)  # 2100 is not a leap year


def test_a_feb_29_on_a_monday_crontab_finds_the_right_year() -> None:
    assert next_run(Crontab.from_string("0 12 29 2 mon"), utc(2024, 3, 1)) == utc(2044, 2, 29, 12)


def test_day_of_month_and_day_of_week_must_both_match() -> None:
    friday_13th = Crontab.from_string("0 0 13 * fri")
    # Vixie cron would run on Friday 5 January 2024; Celery's rule waits for a Friday the 13th.
    assert next_run(friday_13th, utc(2024, 1, 1)) == utc(2024, 9, 13)
    assert next_run(friday_13th, utc(2024, 9, 13)) == utc(2024, 12, 13)


def test_crontab_reads_the_wall_clock_of_its_own_time_zone() -> None:
    nine_in_tokyo = crontab(minute=0, hour=9, tz="Asia/Tokyo")
    # 09:00 in Tokyo is 00:00 UTC; the app's zone (New York) is not consulted.
    assert next_run(nine_in_tokyo, utc(2024, 6, 1, 1), tz=NEW_YORK) == utc(2024, 6, 2, 0)


def test_crontab_without_a_time_zone_reads_the_apps() -> None:
    assert next_run(crontab(minute=0, hour=9), utc(2024, 6, 1, 1), tz=TOKYO) == utc(2024, 6, 2, 0)
    assert next_run(crontab(minute=0, hour=9), utc(2024, 6, 1, 1), tz=UTC) == utc(2024, 6, 1, 9)


def test_crontab_accepts_a_fixed_offset_tzinfo() -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    assert next_run(crontab(minute=0, hour=12, tz=india), utc(2024, 6, 1)) == utc(2024, 6, 1, 6, 30)


def test_missed_crontab_runs_are_due_once() -> None:
    every_five = Crontab.from_string("*/5 * * * *")
    now = utc(2024, 5, 1, 12, 0, 30)
    assert every_five.remaining(utc(2024, 5, 1, 9, 0), now, UTC) <= 0  # three hours missed
    assert every_five.remaining(now, now, UTC) == 270.0  # once run, next at 12:05


@pytest.mark.parametrize(
    ("schedule", "zone", "start", "end", "expected"),
    [
        pytest.param(
            crontab(minute=30, hour=2),
            PARIS,
            datetime(2024, 3, 30, 12, tzinfo=PARIS),
            datetime(2024, 4, 1, 12, tzinfo=PARIS),
            ["2024-03-31 03:00 CEST", "2024-04-01 02:30 CEST"],
            id="paris-02:30-skipped-runs-at-03:00",
        ),
        pytest.param(
            crontab(minute="*/20", hour="1-3"),
            PARIS,
            datetime(2024, 3, 31, 0, tzinfo=PARIS),
            datetime(2024, 3, 31, 4, tzinfo=PARIS),
            [
                "2024-03-31 01:00 CET",
                "2024-03-31 01:20 CET",
                "2024-03-31 01:40 CET",
                "2024-03-31 03:00 CEST",  # 02:00, 02:20, 02:40 and 03:00 all at once: one run
                "2024-03-31 03:20 CEST",
                "2024-03-31 03:40 CEST",
            ],
            id="paris-whole-gap-runs-once",
        ),
        pytest.param(
            crontab(minute=30, hour=2),
            NEW_YORK,
            datetime(2024, 3, 9, 12, tzinfo=NEW_YORK),
            datetime(2024, 3, 11, 12, tzinfo=NEW_YORK),
            ["2024-03-10 03:00 EDT", "2024-03-11 02:30 EDT"],
            id="new-york-02:30-skipped-runs-at-03:00",
        ),
    ],
)
def test_a_time_the_clocks_skip_runs_once_just_after_the_gap(
    schedule: Crontab, zone: ZoneInfo, start: datetime, end: datetime, expected: list[str]
) -> None:
    assert runs_between(schedule, start, end, zone) == expected


@pytest.mark.parametrize(
    ("schedule", "zone", "start", "end", "expected"),
    [
        pytest.param(
            crontab(minute=30, hour=2),
            PARIS,
            datetime(2024, 10, 26, 12, tzinfo=PARIS),
            datetime(2024, 10, 28, 12, tzinfo=PARIS),
            ["2024-10-27 02:30 CEST", "2024-10-28 02:30 CET"],
            id="paris-02:30-twice-runs-at-the-first",
        ),
        pytest.param(
            crontab(minute=30, hour=1),
            NEW_YORK,
            datetime(2024, 11, 2, 12, tzinfo=NEW_YORK),
            datetime(2024, 11, 4, 12, tzinfo=NEW_YORK),
            ["2024-11-03 01:30 EDT", "2024-11-04 01:30 EST"],
            id="new-york-01:30-twice-runs-at-the-first",
        ),
        pytest.param(
            crontab(minute="*/20", hour="0-2"),
            NEW_YORK,
            datetime(2024, 11, 3, 0, 10, tzinfo=NEW_YORK),
            datetime(2024, 11, 3, 2, 30, tzinfo=NEW_YORK),
            [
                "2024-11-03 00:20 EDT",
                "2024-11-03 00:40 EDT",
                "2024-11-03 01:00 EDT",
                "2024-11-03 01:20 EDT",
                "2024-11-03 01:40 EDT",
                "2024-11-03 02:00 EST",  # the repeated 01:00-01:59 EST is not run again
                "2024-11-03 02:20 EST",
            ],
            id="new-york-repeated-hour-runs-once",
        ),
    ],
)
def test_a_time_the_clocks_repeat_runs_once_at_its_first_occurrence(
    schedule: Crontab, zone: ZoneInfo, start: datetime, end: datetime, expected: list[str]
) -> None:
    assert runs_between(schedule, start, end, zone) == expected


def test_a_last_run_in_the_repeated_hour_does_not_bring_back_its_first_occurrence() -> None:
    # 01:10 EST, the second 01:10 of the night: 01:15..01:45 happened already (as EDT).
    second_pass = datetime(2024, 11, 3, 1, 10, fold=1, tzinfo=NEW_YORK)
    assert next_run(crontab(minute="*/15"), second_pass, tz=NEW_YORK) == datetime(2024, 11, 3, 7, 0, tzinfo=UTC)


def test_remaining_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        crontab().remaining(datetime(2024, 1, 1), utc(2024, 1, 1), UTC)


# ---- Interval -----------------------------------------------------------------------


def test_interval_is_due_run_every_after_the_last_run() -> None:
    last = utc(2024, 5, 1, 12)
    assert every(30).remaining(last, last + timedelta(seconds=10), UTC) == 20.0
    assert every(30).remaining(last, last + timedelta(seconds=45), UTC) == -15.0


def test_interval_takes_a_timedelta_or_float_seconds() -> None:
    last = utc(2024, 5, 1, 12)
    assert Interval(timedelta(minutes=2)).remaining(last, last, UTC) == 120.0
    assert Interval(0.5).remaining(last, last, UTC) == 0.5
    assert Interval(timedelta(minutes=2)).run_every == timedelta(seconds=120)


def test_relative_interval_rounds_the_next_run_down_to_its_unit_as_celery_does() -> None:
    five_minutes = every(300, relative=True)
    assert next_run(five_minutes, utc(2024, 5, 1, 12, 3, 10)) == utc(2024, 5, 1, 12, 8)
    assert five_minutes.remaining(utc(2024, 5, 1, 12, 3, 10), utc(2024, 5, 1, 12, 4), UTC) == 240.0
    assert next_run(every(7200, relative=True), utc(2024, 5, 1, 12, 37)) == utc(2024, 5, 1, 14)
    assert next_run(every(12.5, relative=True), utc(2024, 5, 1, 12, 0, 0, 300_000)) == utc(2024, 5, 1, 12, 0, 12)


def test_a_daily_relative_interval_runs_at_midnight_on_the_app_s_clock() -> None:
    paris = ZoneInfo("Europe/Paris")
    daily = every(timedelta(days=1), relative=True)
    last = datetime(2024, 5, 1, 15, 30, tzinfo=paris)
    now = datetime(2024, 5, 1, 16, tzinfo=paris)
    due = datetime(2024, 5, 2, tzinfo=paris)  # 22:00 UTC the day before
    assert daily.remaining(last.astimezone(UTC), now.astimezone(UTC), paris) == (due - now).total_seconds()


def test_an_interval_counts_real_seconds_across_a_daylight_saving_change() -> None:
    """Both datetimes on one zone's clock: Python subtracts them as wall times (an hour off
    when the clocks went back between them)."""
    paris = ZoneInfo("Europe/Paris")
    before = datetime(2024, 10, 27, 2, 30, tzinfo=paris)  # CEST, the first 02:30
    after = datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=paris)  # CET, an hour later
    assert every(7200).remaining(before, after, paris) == 3600.0


def test_missed_interval_runs_are_due_once() -> None:
    now = utc(2024, 5, 1, 12)
    assert every(60).remaining(now - timedelta(hours=5), now, UTC) <= 0
    assert every(60).remaining(now, now, UTC) == 60.0


@pytest.mark.parametrize("value", [0, -1, 0.0, timedelta(0), timedelta(seconds=-5), float("nan"), float("inf")])
def test_interval_must_be_more_than_zero(value: float | timedelta) -> None:
    with pytest.raises(ConfigError, match=r"must be more than 0 seconds; give e\.g\. 30"):
        Interval(value)


@pytest.mark.parametrize("value", ["30", None, True, [30]])
def test_interval_must_be_seconds_or_a_timedelta(value: object) -> None:
    with pytest.raises(ConfigError, match=r"is not understood; give a number of seconds \(30, 0\.5\) or a"):
        Interval(value)  # type: ignore[arg-type]  # the point of the test


# ---- Solar ----------------------------------------------------------------------------

# Reference times (UTC) computed with PyEphem 4.2.1, whose libastro uses VSOP87 and not
# NOAA's equations: Observer(pressure=0), horizon -0:34 with the sun's upper limb for
# sunrise and sunset, the sun's centre at -6/-12/-18 degrees for twilight, next_transit
# for solar noon. They agree to the minute with timeanddate.com's published tables, e.g.
# London sunrise 04:43 BST and sunset 21:21 BST on 20 June 2024, Sydney sunrise
# 05:41 AEDT on 21 December 2024.
SOLAR_REFERENCES = [
    ("london", "sunrise", utc(2024, 6, 20, 3, 43, 2)),
    ("london", "sunset", utc(2024, 6, 20, 20, 21, 24)),
    ("london", "solar_noon", utc(2024, 6, 20, 12, 2, 13)),
    ("london", "dawn_civil", utc(2024, 6, 20, 2, 55, 13)),
    ("london", "dusk_nautical", utc(2024, 6, 20, 22, 23, 52)),
    ("london", "sunrise", utc(2024, 12, 21, 8, 3, 57)),
    ("london", "sunset", utc(2024, 12, 21, 15, 53, 39)),
    ("london", "solar_noon", utc(2024, 12, 21, 11, 58, 48)),
    ("london", "dawn_astronomical", utc(2024, 12, 21, 5, 59, 37)),
    ("london", "sunrise", utc(2024, 3, 15, 6, 13, 40)),
    ("london", "sunset", utc(2024, 3, 15, 18, 5, 50)),
    ("sydney", "sunrise", utc(2024, 6, 19, 20, 59, 51)),
    ("sydney", "sunset", utc(2024, 6, 20, 6, 53, 40)),
    ("sydney", "solar_noon", utc(2024, 6, 20, 1, 56, 46)),
    ("sydney", "dawn_civil", utc(2024, 6, 19, 20, 32, 6)),
    ("sydney", "dusk_nautical", utc(2024, 6, 20, 7, 52, 40)),
    ("sydney", "sunrise", utc(2024, 12, 20, 18, 40, 50)),
    ("sydney", "sunset", utc(2024, 12, 21, 9, 5, 39)),
    ("sydney", "dawn_astronomical", utc(2024, 12, 20, 16, 56, 27)),
    ("sydney", "sunrise", utc(2024, 3, 14, 19, 54, 28)),
    ("sydney", "sunset", utc(2024, 3, 15, 8, 13, 3)),
]
PLACES = {"london": LONDON_LAT_LON, "sydney": SYDNEY_LAT_LON}


@pytest.mark.parametrize(
    ("place", "event", "expected"),
    SOLAR_REFERENCES,
    ids=[f"{place}-{event}-{when:%Y-%m-%d}" for place, event, when in SOLAR_REFERENCES],
)
def test_solar_event_matches_the_reference_within_two_minutes(place: str, event: str, expected: datetime) -> None:
    schedule = solar(event, *PLACES[place])
    due = next_run(schedule, expected - timedelta(hours=3))
    assert abs((due - expected).total_seconds()) <= SOLAR_TOLERANCE


def test_solar_next_run_is_the_following_days_event_once_todays_has_passed() -> None:
    sunrise = solar("sunrise", *LONDON_LAT_LON)
    due = next_run(sunrise, utc(2024, 6, 20, 3, 50))
    assert abs((due - utc(2024, 6, 21, 3, 43, 14)).total_seconds()) <= SOLAR_TOLERANCE


def test_solar_remaining_counts_from_now() -> None:
    sunset = solar("sunset", *LONDON_LAT_LON)
    last = utc(2024, 6, 20, 12)
    assert sunset.remaining(last, last, UTC) - sunset.remaining(last, last + timedelta(hours=1), UTC) == 3600.0


def test_solar_skips_the_polar_night() -> None:
    # Tromsø has no sunrise from late November; PyEphem (as above) gives 2025-01-15 10:24:29.
    due = next_run(solar("sunrise", *TROMSO_LAT_LON), utc(2024, 12, 1))
    assert abs((due - utc(2025, 1, 15, 10, 24, 29)).total_seconds()) <= SOLAR_TOLERANCE


def test_solar_skips_the_midnight_sun() -> None:
    # No sunset in Tromsø from late May; PyEphem (as above) gives 2024-07-25 22:22:43.
    due = next_run(solar("sunset", *TROMSO_LAT_LON), utc(2024, 6, 1))
    assert abs((due - utc(2024, 7, 25, 22, 22, 43)).total_seconds()) <= SOLAR_TOLERANCE


def test_solar_event_that_never_happens_within_a_year_asks_again_in_a_day() -> None:
    # At the pole the sun circles the sky instead of rising each day.
    now = utc(2024, 1, 1)
    assert solar("sunrise", 90.0, 0.0).remaining(now, now, UTC) == SOLAR_RETRY == 86400.0


def test_missed_solar_runs_are_due_once() -> None:
    sunset = solar("sunset", *LONDON_LAT_LON)
    now = utc(2024, 6, 25, 12)
    assert sunset.remaining(utc(2024, 6, 1), now, UTC) <= 0
    assert 0 < sunset.remaining(now, now, UTC) < 12 * 3600


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ("sunsett", 51.5, 0.0),
            r"unknown solar event 'sunsett' \(did you mean 'sunset'\?\); one of: dawn_astronomical",
        ),
        ((5, 51.5, 0.0), r"unknown solar event 5; one of:"),
        (("sunset", 91, 0.0), r"solar lat 91 is out of range -90 to 90"),
        (("sunset", 51.5, -180.5), r"solar lon -180.5 is out of range -180 to 180"),
        (("sunset", "51.5", 0.0), r"solar lat '51.5' is not a number"),
        (("sunset", 51.5, True), r"solar lon True is not a number"),
        (("sunset", float("nan"), 0.0), r"solar lat nan is not a number"),
    ],
)
def test_bad_solar_arguments_are_config_errors(arguments: tuple[object, object, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Solar(*arguments)  # type: ignore[arg-type]  # the point of the test


# ---- describe, equality, repr -------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "text"),
    [
        (every(30), "every 30s"),
        (every(0.5), "every 0.5s"),
        (every(timedelta(minutes=5), relative=True), "every 300s (relative)"),
        (crontab(), "crontab(* * * * *)"),
        (crontab(minute=0, hour=3, day_of_week="mon-fri", tz="Europe/Paris"), "crontab(0 3 * * 1-5) Europe/Paris"),
        (crontab(minute="0,30", hour="9-17", month_of_year="jan,feb"), "crontab(0,30 9-17 * 1,2 *)"),
        (crontab(minute="*/15", day_of_month="2-30/2"), "crontab(*/15 * 2-30/2 * *)"),
        (crontab(day_of_month="1-31/2"), "crontab(* * */2 * *)"),
        (crontab(hour="22-2", day_of_week="sat,sun"), "crontab(* 0-2,22,23 * * 0,6)"),
        (crontab(tz=UTC), "crontab(* * * * *) UTC"),
        (solar("sunset", 51.5074, -0.1278), "solar(sunset, 51.5074, -0.1278)"),
        (solar("solar_noon", 0, 0), "solar(solar_noon, 0, 0)"),
    ],
)
def test_describe_gives_stable_readable_text(schedule: Schedule, text: str) -> None:
    assert schedule.describe() == text
    assert str(schedule) == text


def test_equal_schedules_written_differently_are_equal_and_hash_alike() -> None:
    assert {Interval(30), Interval(30.0), Interval(timedelta(seconds=30))} == {every(30)}
    assert len({crontab(minute="*/15"), crontab(minute="0,15,30,45"), crontab(minute=range(0, 60, 15))}) == 1
    assert Crontab.from_string("0 0 * * 7") == crontab(minute=0, hour=0, day_of_week="sun")
    assert Crontab.from_string("0 3 * * *", tz="Europe/Paris") == crontab(minute=0, hour=3, tz=PARIS)
    assert hash(solar("sunset", 51.5, 0)) == hash(Solar("sunset", 51.5, 0.0))


def test_schedules_that_differ_are_unequal() -> None:
    assert every(30) != every(30, relative=True)
    assert every(30) != every(31)
    assert crontab(minute=0) != crontab(minute=0, tz="UTC")  # the app's zone against a fixed one
    assert crontab(minute=0, tz="Europe/Paris") != crontab(minute=0, tz="Europe/London")
    assert solar("sunset", 51.5, 0) != solar("sunrise", 51.5, 0)
    assert every(60) != crontab()
    assert every(30) != "every 30s"


def test_repr_shows_how_to_build_the_schedule_again() -> None:
    schedule = crontab(minute=0, hour=3, day_of_week="mon-fri", tz="Europe/Paris")
    text = repr(schedule)
    assert text == (
        "Crontab(minute='0', hour='3', day_of_week='1-5', day_of_month='*', month_of_year='*', tz='Europe/Paris')"
    )
    assert eval(text, {"Crontab": Crontab}) == schedule
    assert repr(every(300, relative=True)) == "Interval(300, relative=True)"
    assert repr(solar("sunset", 51.5074, -0.1278)) == "Solar('sunset', 51.5074, -0.1278)"


# ---- to_schedule ------------------------------------------------------------------------


def test_to_schedule_returns_a_schedule_as_is() -> None:
    schedule = crontab(minute=0)
    assert to_schedule(schedule) is schedule


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (30, every(30)),
        (2.5, every(2.5)),
        (timedelta(hours=1), every(3600)),
        ("*/5 * * * *", crontab(minute="*/5")),
        ("@daily", crontab(minute=0, hour=0)),
        ({"every": 30}, every(30)),
        ({"every": 300, "relative": True}, every(300, relative=True)),
        ({"crontab": "0 3 * * mon-fri"}, crontab(minute=0, hour=3, day_of_week="1-5")),
        ({"crontab": "0 3 * * *", "tz": "Europe/Paris"}, crontab(minute=0, hour=3, tz="Europe/Paris")),
        ({"crontab": "@hourly"}, crontab(minute=0)),
        ({"solar": "sunset", "lat": 51.5074, "lon": -0.1278}, solar("sunset", 51.5074, -0.1278)),
        ({"solar": "dawn_civil", "lat": -33, "lon": 151}, solar("dawn_civil", -33.0, 151.0)),
    ],
)
def test_to_schedule_understands_every_accepted_form(value: object, expected: Schedule) -> None:
    schedule = to_schedule(value)
    assert type(schedule) is type(expected)
    assert schedule == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("foo", r"schedule 'foo' is not understood: give seconds \(30\), a crontab string \('\*/5 \* \* \* \*'\), or"),
        ("30", r"schedule '30' is not understood"),
        (None, r"schedule None is not understood"),
        (True, r"schedule True is not understood"),
        ([30], r"schedule \[30\] is not understood"),
        ("75 * * * *", r"crontab minute '75' is out of range 0-59"),
        ("@fortnightly", r"crontab keyword '@fortnightly' is not known"),
        ({}, r"needs exactly one of the keys every, crontab or solar \(it has no keys\)"),
        ({"every": 30, "crontab": "* * * * *"}, r"needs exactly one .* \(it has every and crontab\)"),
        ({"evry": 30}, r"needs exactly one of the keys every, crontab or solar \(it has evry\)"),
        ({"every": 30, "relativ": True}, r"key 'relativ' does not go with 'every' \(did you mean 'relative'\?\)"),
        ({"crontab": "* * * * *", "lat": 1}, r"key 'lat' does not go with 'crontab'"),
        ({"every": 0}, r"interval 0 must be more than 0 seconds"),
        ({"every": "30"}, r"interval '30' is not understood"),
        ({"every": 30, "relative": "yes"}, r"relative 'yes' is not true or false"),
        ({"crontab": 5}, r"schedule table crontab 5 is not a string"),
        ({"crontab": "* * * *"}, r"crontab '\* \* \* \*' has 4 fields"),
        ({"crontab": "* * * * *", "tz": 5}, r"schedule table tz 5 is not a time zone name"),
        ({"crontab": "* * * * *", "tz": "Mars/Olympus"}, r"crontab time zone 'Mars/Olympus' is not known"),
        ({"solar": "sunset", "lat": 51.5}, r"schedule table for solar 'sunset' lacks lon"),
        ({"solar": "sunset"}, r"lacks lat and lon"),
        ({"solar": "sunsett", "lat": 1, "lon": 1}, r"unknown solar event 'sunsett' \(did you mean 'sunset'\?\)"),
        ({"solar": "sunset", "lat": 100, "lon": 1}, r"solar lat 100 is out of range -90 to 90"),
    ],
)
def test_to_schedule_errors_say_what_to_write(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        to_schedule(value)
