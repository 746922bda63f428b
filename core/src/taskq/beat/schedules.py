"""Periodic schedules: when an entry of ``beat_schedule`` is next due.

A :class:`Schedule` answers one question, :meth:`Schedule.remaining`: how many seconds
from *now* until the next run, given when the entry last ran (for a new entry, when
beat first saw it). Beat asks on every tick, sends the task once when the answer is
``<= 0``, records that moment as the new last run and asks again. So a schedule that
missed several runs (beat was down) is due once, not once per missed run.

Three kinds ship here, each with a lower-case factory:

* :class:`Interval` (:func:`every`): a fixed period after the last run, rounded down to
  the period's unit on the wall clock with ``relative=True`` (as Celery).
* :class:`Crontab` (:func:`crontab`): cron's five fields read on a wall clock, with
  explicit rules for daylight-saving changes.
* :class:`Solar` (:func:`solar`): dawn, sunrise, solar noon, sunset or dusk at a place,
  from NOAA's solar position equations.

:func:`to_schedule` turns what a user wrote, in Python or in ``taskq.toml``, into one
of them. :meth:`Schedule.describe` gives stable text that beat stores to notice that an
entry's schedule changed between runs; equality and hashing follow it. Every bad input
raises :class:`~taskq.errors.ConfigError` naming the field, the value and the fix.

The module stays whole past 500 lines because the three kinds share the contract,
the error wording and :func:`to_schedule`: a reader learns them in one place.
"""

from __future__ import annotations

import abc
import bisect
import calendar
import difflib
import itertools
import math
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import TypeAlias

from taskq.errors import ConfigError

__all__ = [
    "CronField",
    "Crontab",
    "Interval",
    "Schedule",
    "Solar",
    "crontab",
    "every",
    "solar",
    "to_schedule",
]

# How long a Solar schedule waits before looking again when its event does not happen
# within SOLAR_SEARCH_DAYS (polar day or night all year round), in seconds.
SOLAR_RETRY = 86400.0
# How far ahead a Solar schedule looks for its event, in days.
SOLAR_SEARCH_DAYS = 366
# Refinements of a solar event's time; each recomputes the sun's position at the
# previous estimate. Three bring it well under a second of the equations' own answer.
SOLAR_ITERATIONS = 3

#: What a crontab field may be: a number, numbers, or cron text such as ``"*/15"``.
CronField: TypeAlias = int | str | Iterable[int]

_MINUTE = timedelta(minutes=1)
_DAY = timedelta(days=1)


def _require_aware(**moments: datetime) -> None:
    for name, moment in moments.items():
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"{name} must be a timezone-aware datetime, got {moment!r}")


def _format_number(value: float) -> str:
    """Shortest exact text for a number: ``30`` for 30.0, ``0.5``, ``-0.1278``."""
    return str(int(value)) if value.is_integer() else repr(value)


def _zone_name(zone: tzinfo) -> str:
    if isinstance(zone, zoneinfo.ZoneInfo):
        return zone.key
    return str(zone)


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Schedule(abc.ABC):
    """When a periodic entry is next due: the contract between beat and a schedule.

    Subclasses implement :meth:`remaining` and :meth:`describe`. Equality and hashing
    come from :meth:`describe`, so two schedules are equal exactly when their text is,
    and a subclass of its own needs only those two methods. Schedules are values: they
    hold no state between calls, and beat may call them from any thread.
    """

    __slots__ = ()

    @abc.abstractmethod
    def remaining(self, last_run_at: datetime, now: datetime, tz: tzinfo) -> float:
        """Seconds from ``now`` until the next run is due; ``<= 0`` means due now.

        ``last_run_at`` is the last run, or for a new entry the moment beat first saw
        it; both datetimes are timezone-aware. ``tz`` is the app's time zone: a
        schedule that reads the wall clock uses its own zone when it was given one,
        else ``tz``.
        """

    @abc.abstractmethod
    def describe(self) -> str:
        """Stable, human-readable text such as ``every 30s``; equal schedules give equal text."""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schedule):
            return NotImplemented
        return self.describe() == other.describe()

    def __hash__(self) -> int:
        return hash(self.describe())

    def __str__(self) -> str:
        return self.describe()


# ---- Interval -----------------------------------------------------------------


def _positive_seconds(value: object) -> float:
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ConfigError(
            f"interval {value!r} is not understood; give a number of seconds (30, 0.5) or a datetime.timedelta"
        )
    if not (math.isfinite(seconds) and seconds > 0):
        raise ConfigError(f"interval {value!r} must be more than 0 seconds; give e.g. 30 for every 30 seconds")
    return seconds


class Interval(Schedule):
    """Due ``run_every`` after the last run.

    With ``relative=True``, as Celery's ``schedule(relative=True)``: the next run is the
    last one plus the period on the app's wall clock, rounded down to the period's unit
    (a daily schedule runs at local midnight, an hourly one on the hour, one of 5 minutes
    on the minute). ``run_every`` is seconds (int or float) or a
    :class:`~datetime.timedelta`, and must be more than zero.
    """

    __slots__ = ("relative", "seconds")

    def __init__(self, run_every: float | int | timedelta, *, relative: bool = False) -> None:
        #: The period, in seconds.
        self.seconds = _positive_seconds(run_every)
        self.relative = bool(relative)

    @property
    def run_every(self) -> timedelta:
        return timedelta(seconds=self.seconds)

    def remaining(self, last_run_at: datetime, now: datetime, tz: tzinfo) -> float:
        _require_aware(last_run_at=last_run_at, now=now)
        if self.relative:
            # As Celery: the next run, on the app's wall clock, rounded down to the period's
            # resolution (a day, an hour, a minute, a second)
            due = _round_down(last_run_at.astimezone(tz) + self.run_every, self.seconds)
            return due.timestamp() - now.timestamp()
        # timestamps, not now - last_run_at: two datetimes that share a tzinfo subtract as
        # wall-clock times, an hour off across a daylight-saving change
        return self.seconds - (now.timestamp() - last_run_at.timestamp())

    def describe(self) -> str:
        text = f"every {_format_number(self.seconds)}s"
        return f"{text} (relative)" if self.relative else text

    def __repr__(self) -> str:
        relative = ", relative=True" if self.relative else ""
        return f"Interval({_format_number(self.seconds)}{relative})"


def _round_down(moment: datetime, period: float) -> datetime:
    """``moment`` without the parts finer than ``period``'s unit: a period of a day or more
    keeps the date, of an hour or more the hour, of a minute or more the minute."""
    if period >= 86400:
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period >= 3600:
        return moment.replace(minute=0, second=0, microsecond=0)
    if period >= 60:
        return moment.replace(second=0, microsecond=0)
    return moment.replace(microsecond=0)


# ---- Crontab ------------------------------------------------------------------

_DAY_NAMES = {name: number for number, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_MONTH_NAMES = {name.lower(): number for number, name in enumerate(calendar.month_abbr) if name}
# The most days each month can have (February in a leap year), to reject impossible dates.
_LONGEST_MONTH = {month: calendar.monthrange(2000, month)[1] for month in range(1, 13)}

_KEYWORDS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_CRON_SYNTAX = (
    "write '*', a number ('5'), a range ('1-5'), a step ('*/15', '1-10/2') or a comma-separated list of those ('0,30')"
)


@dataclass(frozen=True)
class _Field:
    """One crontab field: its name, its range, and the names it accepts for numbers."""

    name: str
    low: int
    high: int
    names: Mapping[str, int]
    # What the error for text it cannot read adds about those names.
    names_hint: str = ""
    # Highest number accepted in the text, when above ``high``: 7 for Sunday.
    alias_high: int | None = None

    @property
    def range_text(self) -> str:
        text = f"{self.low}-{self.high}"
        return f"{text} (7 also means Sunday)" if self.alias_high else text

    @property
    def syntax_hint(self) -> str:
        return f"{_CRON_SYNTAX}; {self.names_hint}" if self.names_hint else _CRON_SYNTAX


_MINUTE_FIELD = _Field("minute", 0, 59, {})
_HOUR_FIELD = _Field("hour", 0, 23, {})
_DAY_OF_MONTH_FIELD = _Field("day_of_month", 1, 31, {})
_MONTH_FIELD = _Field(
    "month_of_year", 1, 12, _MONTH_NAMES, "month names jan..dec work too, or words they begin ('jan,jul', 'april')"
)
_DAY_OF_WEEK_FIELD = _Field(
    "day_of_week",
    0,
    6,
    _DAY_NAMES,
    "day names sun..sat work too, or words they begin ('mon-fri', 'thursday')",
    alias_high=7,
)


def _parse_field(value: object, field: _Field) -> tuple[int, ...]:
    """The sorted numbers a crontab field matches; ``ConfigError`` naming the field if bad."""
    if isinstance(value, bool):
        raise ConfigError(f"crontab {field.name} {value!r} is not understood; {field.syntax_hint}")
    if isinstance(value, int):
        numbers = {_check_number(value, str(value), field)}
    elif isinstance(value, str):
        numbers = _parse_text(value, field)
    elif isinstance(value, Iterable):
        numbers = set()
        for item in value:
            if isinstance(item, bool) or not isinstance(item, int):
                raise ConfigError(
                    f"crontab {field.name} holds {item!r}, which is not a whole number; "
                    f"give numbers such as [0, 30], or a string: {field.syntax_hint}"
                )
            numbers.add(_check_number(item, str(item), field))
        if not numbers:
            raise ConfigError(f"crontab {field.name} is an empty list; give at least one number, or '*' for all")
    else:
        raise ConfigError(f"crontab {field.name} {value!r} is not understood; {field.syntax_hint}")
    if field.alias_high is not None:
        numbers = {number % (field.high + 1) for number in numbers}
    return tuple(sorted(numbers))


def _check_number(number: int, token: str, field: _Field, within: str = "") -> int:
    top = field.alias_high if field.alias_high is not None else field.high
    if not field.low <= number <= top:
        where = f" (in {within!r})" if within and within != token else ""
        raise ConfigError(
            f"crontab {field.name} {token!r}{where} is out of range {field.range_text}; "
            f"use a number from {field.low} to {field.high}"
        )
    return number


def _parse_text(text: str, field: _Field) -> set[int]:
    cleaned = text.strip().lower()
    if not cleaned:
        raise ConfigError(f"crontab {field.name} is empty; {field.syntax_hint}")
    numbers: set[int] = set()
    for part in cleaned.split(","):
        numbers.update(_parse_part(part.strip(), text, field))
    return numbers


def _parse_part(part: str, text: str, field: _Field) -> list[int]:
    """Numbers of one comma-separated part: ``*``, ``5``, ``1-5``, ``*/15``, ``1-10/2``, ``5/15``."""
    span, slash, step_text = part.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit():
            raise ConfigError(f"crontab {field.name} {text!r} is not understood; {field.syntax_hint}")
        step = int(step_text)
        if step == 0:
            raise ConfigError(f"crontab {field.name} {text!r} has a step of 0; a step is 1 or more, as in '*/15'")
    if span == "*":
        start, stop = field.low, field.high
    elif "-" in span:
        first, _, last = span.partition("-")
        start, stop = _parse_number(first, text, field), _parse_number(last, text, field)
    else:
        start = _parse_number(span, text, field)
        # "5/15" is cron shorthand for "5-<highest>/15".
        stop = field.high if slash else start
    if start <= stop:
        return list(range(start, stop + 1, step))
    # A range that wraps around, as in "fri-mon" or hours "22-2".
    wrapped = list(range(start, field.high + 1)) + list(range(field.low, stop + 1))
    return wrapped[::step]


def _parse_number(token: str, text: str, field: _Field) -> int:
    if token.isdigit():
        return _check_number(int(token), token, field, within=text)
    if len(token) >= 3 and token.isalpha() and token[:3] in field.names:
        # Celery reads a name by its first three letters: "thursday", "thurs", "april"
        return field.names[token[:3]]
    raise ConfigError(f"crontab {field.name} {text!r} is not understood; {field.syntax_hint}")


def _format_field(numbers: tuple[int, ...], field: _Field) -> str:
    """Canonical text for a field's numbers, so equal crontabs describe themselves equally."""
    if len(numbers) == field.high - field.low + 1:
        return "*"
    steps = {later - earlier for earlier, later in itertools.pairwise(numbers)}
    if len(numbers) >= 3 and len(steps) == 1:
        (step,) = steps
        if step > 1 and numbers[0] == field.low and numbers[-1] + step > field.high:
            return f"*/{step}"
        if step > 1:
            return f"{numbers[0]}-{numbers[-1]}/{step}"
    parts: list[str] = []
    run_start = previous = numbers[0]
    for number in [*numbers[1:], None]:
        if number is not None and number == previous + 1:
            previous = number
            continue
        if previous - run_start >= 2:
            parts.append(f"{run_start}-{previous}")
        else:
            parts.extend(str(n) for n in range(run_start, previous + 1))
        if number is not None:
            run_start = previous = number
    return ",".join(parts)


def _to_zone(tz: str | tzinfo | None) -> tzinfo | None:
    if tz is None or isinstance(tz, tzinfo):
        return tz
    if isinstance(tz, str):
        try:
            return zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            hint = _suggest(tz, zoneinfo.available_timezones())
            raise ConfigError(
                f"crontab time zone {tz!r} is not known{hint}; give an IANA name such as 'Europe/Paris' or 'UTC'"
            ) from exc
    raise ConfigError(f"crontab time zone {tz!r} is not understood; give an IANA name such as 'Europe/Paris' or 'UTC'")


def _next_above(numbers: tuple[int, ...], current: int) -> int | None:
    """The smallest of ``numbers`` (sorted) above ``current``, or ``None``."""
    index = bisect.bisect_right(numbers, current)
    return numbers[index] if index < len(numbers) else None


def _wall_to_instant(wall: datetime, zone: tzinfo) -> datetime:
    """The instant a naive wall-clock time names in ``zone``, by beat's DST rules.

    A time that happens twice (clocks go back) names its first occurrence. A time that
    does not exist (clocks go forward over it) names the first instant after the gap.
    """
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # In a gap, fold=1 reads the time with the offset from after the change, which puts
    # it before the change; fold=0 puts it after. Search between them for the change.
    before = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    low, high = 0, int((first - before).total_seconds())
    if high <= 0:  # a tzinfo that ignores fold: the best answer it lets us give
        return first
    while low < high:
        middle = (low + high) // 2
        if (before + timedelta(seconds=middle)).astimezone(zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle + 1
    return before + timedelta(seconds=low)


class Crontab(Schedule):
    """Due at each minute whose wall-clock time matches all five cron fields.

    Each field is an int, an iterable of ints, or cron text: ``*``, ``*/15``, ``5``,
    ``1-5``, ``1-10/2``, ``5/15`` (from 5 to the highest), ``0,30``, ranges that wrap
    (``fri-mon``, hours ``22-2``), and names for days (``sun``..``sat``) and months
    (``jan``..``dec``) in any case, read as Celery reads them, by their first three letters
    (``thursday``, ``april``). ``day_of_week`` counts from Sunday = 0 (7 is Sunday
    too). Unlike Vixie cron, and like Celery, a day must match *both* ``day_of_month``
    and ``day_of_week`` when both are restricted.

    The wall clock is ``tz`` when given (an IANA name or a tzinfo), else the app's.
    The next run is the first matching minute strictly after the last run. Several
    missed runs are due once. On daylight-saving changes, a time skipped by the clocks
    going forward runs once, at the first instant after the gap, and a time that
    happens twice when they go back runs once, at its first occurrence.

    A crontab that can never match (``day_of_month=31, month_of_year=2``) is an error
    at construction. Attributes hold the matched numbers as sorted tuples.
    """

    __slots__ = ("day_of_month", "day_of_week", "hour", "minute", "month_of_year", "tz")

    def __init__(
        self,
        minute: CronField = "*",
        hour: CronField = "*",
        day_of_week: CronField = "*",
        day_of_month: CronField = "*",
        month_of_year: CronField = "*",
        *,
        tz: str | tzinfo | None = None,
    ) -> None:
        self.minute = _parse_field(minute, _MINUTE_FIELD)
        self.hour = _parse_field(hour, _HOUR_FIELD)
        self.day_of_week = _parse_field(day_of_week, _DAY_OF_WEEK_FIELD)
        self.day_of_month = _parse_field(day_of_month, _DAY_OF_MONTH_FIELD)
        self.month_of_year = _parse_field(month_of_year, _MONTH_FIELD)
        self.tz = _to_zone(tz)
        if not any(day <= _LONGEST_MONTH[month] for month in self.month_of_year for day in self.day_of_month):
            raise ConfigError(
                f"crontab day_of_month {self._text(_DAY_OF_MONTH_FIELD)!r} never falls in month_of_year "
                f"{self._text(_MONTH_FIELD)!r}, so {self.describe()} would never run; pick days that exist "
                f"in those months (day_of_month='28-31' runs on the last days of every month that has them)"
            )

    @classmethod
    def from_string(cls, text: str, tz: str | tzinfo | None = None) -> Crontab:
        """Parse ``"minute hour day_of_month month_of_year day_of_week"`` or a keyword like ``@daily``."""
        if not isinstance(text, str):
            raise ConfigError(f"crontab {text!r} is not a string; write five fields, as in '*/5 * * * *'")
        fields_text = text.strip()
        if fields_text.startswith("@"):
            keyword = fields_text.lower()
            if keyword not in _KEYWORDS:
                raise ConfigError(
                    f"crontab keyword {fields_text!r} is not known{_suggest(keyword, _KEYWORDS)}; "
                    f"one of: {', '.join(_KEYWORDS)}"
                )
            fields_text = _KEYWORDS[keyword]
        fields = fields_text.split()
        if len(fields) != 5:
            raise ConfigError(
                f"crontab {text!r} has {len(fields)} field{'s' if len(fields) != 1 else ''}; write five: "
                f"minute hour day_of_month month_of_year day_of_week, as in '*/5 * * * *', "
                f"or a keyword: {', '.join(_KEYWORDS)}"
            )
        minute, hour, day_of_month, month_of_year, day_of_week = fields
        return cls(minute, hour, day_of_week, day_of_month, month_of_year, tz=tz)

    def _text(self, field: _Field) -> str:
        return _format_field(getattr(self, field.name), field)

    def remaining(self, last_run_at: datetime, now: datetime, tz: tzinfo) -> float:
        _require_aware(last_run_at=last_run_at, now=now)
        zone = self.tz if self.tz is not None else tz
        last_wall = last_run_at.astimezone(zone).replace(tzinfo=None)
        candidate = last_wall.replace(second=0, microsecond=0) + _MINUTE
        while True:
            wall = self._next_match(candidate)
            due = _wall_to_instant(wall, zone)
            # A wall time read back across a repeated hour can name an instant before
            # the last run (its first occurrence): that run already happened.
            if due > last_run_at:
                return (due - now).total_seconds()
            candidate = wall + _MINUTE

    def _next_match(self, start: datetime) -> datetime:
        """The first naive wall-clock minute at or after ``start`` matching every field.

        Skips whole months, days and hours that cannot match, so a yearly crontab
        takes a handful of steps, not a year of minutes. Ends because construction
        checked that some day of some month matches, and every date falls on every
        weekday in some year.
        """
        moment = start
        while True:
            if moment.month not in self.month_of_year:
                month = _next_above(self.month_of_year, moment.month)
                year = moment.year if month is not None else moment.year + 1
                moment = datetime(year, month or self.month_of_year[0], 1)
                continue
            if moment.day not in self.day_of_month:
                day = _next_above(self.day_of_month, moment.day)
                if day is not None and day <= calendar.monthrange(moment.year, moment.month)[1]:
                    moment = datetime(moment.year, moment.month, day)
                else:
                    moment = datetime(moment.year, moment.month, 1) + timedelta(days=32)
                    moment = moment.replace(day=1)
                continue
            if (moment.weekday() + 1) % 7 not in self.day_of_week:  # Python: Monday = 0; cron: Sunday = 0
                moment = datetime(moment.year, moment.month, moment.day) + _DAY
                continue
            if moment.hour not in self.hour:
                hour = _next_above(self.hour, moment.hour)
                if hour is None:
                    moment = datetime(moment.year, moment.month, moment.day) + _DAY
                else:
                    moment = moment.replace(hour=hour, minute=0)
                continue
            if moment.minute not in self.minute:
                minute = _next_above(self.minute, moment.minute)
                if minute is None:
                    moment = moment.replace(minute=0) + timedelta(hours=1)
                else:
                    moment = moment.replace(minute=minute)
                continue
            return moment

    def describe(self) -> str:
        fields = (_MINUTE_FIELD, _HOUR_FIELD, _DAY_OF_MONTH_FIELD, _MONTH_FIELD, _DAY_OF_WEEK_FIELD)
        text = f"crontab({' '.join(self._text(field) for field in fields)})"
        return f"{text} {_zone_name(self.tz)}" if self.tz is not None else text

    def __repr__(self) -> str:
        fields = (_MINUTE_FIELD, _HOUR_FIELD, _DAY_OF_WEEK_FIELD, _DAY_OF_MONTH_FIELD, _MONTH_FIELD)
        arguments = [f"{field.name}={self._text(field)!r}" for field in fields]
        if self.tz is not None:
            arguments.append(f"tz={_zone_name(self.tz)!r}")
        return f"Crontab({', '.join(arguments)})"


# ---- Solar --------------------------------------------------------------------

# The sun's elevation in degrees at each event, and which side of solar noon it falls
# on (-1 morning, +1 evening, 0 the transit itself). Sunrise and sunset allow for
# refraction and the sun's radius, as NOAA does.
_SOLAR_EVENTS: dict[str, tuple[float, int]] = {
    "dawn_astronomical": (-18.0, -1),
    "dawn_nautical": (-12.0, -1),
    "dawn_civil": (-6.0, -1),
    "sunrise": (-0.833, -1),
    "solar_noon": (0.0, 0),
    "sunset": (-0.833, 1),
    "dusk_civil": (-6.0, 1),
    "dusk_nautical": (-12.0, 1),
    "dusk_astronomical": (-18.0, 1),
}
_UNIX_EPOCH_JULIAN_DAY = 2440587.5
_J2000_JULIAN_DAY = 2451545.0


def _sun_declination_and_equation_of_time(moment: datetime) -> tuple[float, float]:
    """The sun's declination (degrees) and the equation of time (minutes) at ``moment``.

    NOAA's solar position equations (after Meeus, *Astronomical Algorithms*), accurate
    to about a minute of time for dates between 1800 and 2100.
    """
    julian_day = moment.timestamp() / 86400.0 + _UNIX_EPOCH_JULIAN_DAY
    century = (julian_day - _J2000_JULIAN_DAY) / 36525.0
    mean_longitude = (280.46646 + century * (36000.76983 + century * 0.0003032)) % 360.0
    mean_anomaly = math.radians(357.52911 + century * (35999.05029 - 0.0001537 * century))
    eccentricity = 0.016708634 - century * (0.000042037 + 0.0000001267 * century)
    center = (
        math.sin(mean_anomaly) * (1.914602 - century * (0.004817 + 0.000014 * century))
        + math.sin(2 * mean_anomaly) * (0.019993 - 0.000101 * century)
        + math.sin(3 * mean_anomaly) * 0.000289
    )
    node = math.radians(125.04 - 1934.136 * century)
    apparent_longitude = math.radians(mean_longitude + center - 0.00569 - 0.00478 * math.sin(node))
    mean_obliquity = (
        23.0 + (26.0 + (21.448 - century * (46.815 + century * (0.00059 - century * 0.001813))) / 60.0) / 60.0
    )
    obliquity = math.radians(mean_obliquity + 0.00256 * math.cos(node))
    declination = math.degrees(math.asin(math.sin(obliquity) * math.sin(apparent_longitude)))
    y = math.tan(obliquity / 2) ** 2
    longitude = math.radians(mean_longitude)
    equation_of_time = 4.0 * math.degrees(
        y * math.sin(2 * longitude)
        - 2 * eccentricity * math.sin(mean_anomaly)
        + 4 * eccentricity * y * math.sin(mean_anomaly) * math.cos(2 * longitude)
        - 0.5 * y * y * math.sin(4 * longitude)
        - 1.25 * eccentricity * eccentricity * math.sin(2 * mean_anomaly)
    )
    return declination, equation_of_time


def _check_coordinate(value: object, name: str, limit: int) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"solar {name} {value!r} is not a number; give degrees, as in lat=51.5074, lon=-0.1278")
    if not -limit <= value <= limit:
        raise ConfigError(
            f"solar {name} {value!r} is out of range -{limit} to {limit}; give degrees, north and east positive"
        )
    return float(value)


class Solar(Schedule):
    """Due at each occurrence of a solar event at a place, strictly after the last run.

    Events: ``dawn_astronomical``, ``dawn_nautical``, ``dawn_civil`` (the sun 18, 12
    and 6 degrees below the horizon in the morning), ``sunrise``, ``solar_noon``,
    ``sunset``, and ``dusk_civil``, ``dusk_nautical``, ``dusk_astronomical`` in the
    evening. Times come from NOAA's solar position equations, within a minute or two
    of published tables. ``lat`` is degrees north (-90 to 90), ``lon`` degrees east
    (-180 to 180). Days on which the event does not happen (polar day or night) are
    skipped; when it does not happen within a year, :meth:`remaining` answers one day,
    to look again then. The event is astronomical, so the app's time zone plays no part.
    """

    __slots__ = ("event", "lat", "lon")

    def __init__(self, event: str, lat: float, lon: float) -> None:
        if not isinstance(event, str) or event not in _SOLAR_EVENTS:
            hint = _suggest(event, _SOLAR_EVENTS) if isinstance(event, str) else ""
            raise ConfigError(f"unknown solar event {event!r}{hint}; one of: {', '.join(_SOLAR_EVENTS)}")
        self.event = event
        self.lat = _check_coordinate(lat, "lat", 90)
        self.lon = _check_coordinate(lon, "lon", 180)

    def remaining(self, last_run_at: datetime, now: datetime, tz: tzinfo) -> float:
        _require_aware(last_run_at=last_run_at, now=now)
        # An event belongs to the UTC day of its solar noon, which lies up to 12 hours
        # from that day; start two days back so no event after last_run_at is missed.
        first_day = last_run_at.astimezone(UTC).date() - 2 * _DAY
        for offset in range(SOLAR_SEARCH_DAYS + 3):
            due = self.occurrence(first_day + offset * _DAY)
            if due is not None and due > last_run_at:
                return (due - now).total_seconds()
        return SOLAR_RETRY

    def occurrence(self, day: date) -> datetime | None:
        """When the event happens around solar noon of UTC ``day``; ``None`` if it does not."""
        elevation, side = _SOLAR_EVENTS[self.event]
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
        minutes = 720.0 - 4.0 * self.lon  # mean solar noon, minutes after midnight UTC
        latitude = math.radians(self.lat)
        for _ in range(SOLAR_ITERATIONS):
            declination, equation_of_time = _sun_declination_and_equation_of_time(midnight + timedelta(minutes=minutes))
            minutes = 720.0 - 4.0 * self.lon - equation_of_time
            if side == 0:
                continue
            sun_declination = math.radians(declination)
            cos_hour_angle = (math.sin(math.radians(elevation)) - math.sin(latitude) * math.sin(sun_declination)) / (
                math.cos(latitude) * math.cos(sun_declination)
            )
            if not -1.0 <= cos_hour_angle <= 1.0:
                return None  # the sun stays above (or below) that elevation all day
            minutes += side * 4.0 * math.degrees(math.acos(cos_hour_angle))
        return midnight + timedelta(minutes=minutes)

    def describe(self) -> str:
        return f"solar({self.event}, {_format_number(self.lat)}, {_format_number(self.lon)})"

    def __repr__(self) -> str:
        return f"Solar({self.event!r}, {_format_number(self.lat)}, {_format_number(self.lon)})"


# ---- Factories and to_schedule ------------------------------------------------


def every(run_every: float | int | timedelta, *, relative: bool = False) -> Interval:
    """An :class:`Interval`: due ``run_every`` (seconds or timedelta) after the last run."""
    return Interval(run_every, relative=relative)


def crontab(
    minute: CronField = "*",
    hour: CronField = "*",
    day_of_week: CronField = "*",
    day_of_month: CronField = "*",
    month_of_year: CronField = "*",
    *,
    tz: str | tzinfo | None = None,
) -> Crontab:
    """A :class:`Crontab` from its fields, as in ``crontab(minute=0, hour=3, day_of_week="mon-fri")``."""
    return Crontab(minute, hour, day_of_week, day_of_month, month_of_year, tz=tz)


def solar(event: str, lat: float, lon: float) -> Solar:
    """A :class:`Solar` schedule, as in ``solar("sunset", 51.5074, -0.1278)``."""
    return Solar(event, lat, lon)


_TABLE_KINDS: dict[str, frozenset[str]] = {
    "every": frozenset({"every", "relative"}),
    "crontab": frozenset({"crontab", "tz"}),
    "solar": frozenset({"solar", "lat", "lon"}),
}
_UNDERSTOOD = "give seconds (30), a crontab string ('*/5 * * * *'), or a table with every/crontab/solar"


def to_schedule(value: object) -> Schedule:
    """The schedule a ``beat_schedule`` entry's ``schedule`` stands for.

    Accepts a :class:`Schedule` (returned as is); seconds (int or float) or a timedelta,
    for an :class:`Interval`; a crontab string of five fields or a keyword such as
    ``"@daily"``; or a mapping, as a TOML table gives, with exactly one of ``every``
    (seconds, plus optional ``relative``), ``crontab`` (a string, plus optional ``tz``)
    or ``solar`` (an event name, plus ``lat`` and ``lon``).

    Raises:
        ConfigError: the value is none of these, or one of its parts is wrong.
    """
    if isinstance(value, Schedule):
        return value
    if isinstance(value, timedelta) or (isinstance(value, int | float) and not isinstance(value, bool)):
        return Interval(value)
    if isinstance(value, str):
        if not value.strip().startswith("@") and len(value.split()) != 5:
            raise ConfigError(f"schedule {value!r} is not understood: {_UNDERSTOOD}")
        return Crontab.from_string(value)
    if isinstance(value, Mapping):
        return _schedule_from_table(value)
    if type(value).__module__ == "celery.schedules":
        return _from_celery(value)
    raise ConfigError(f"schedule {value!r} is not understood: {_UNDERSTOOD}")


def _from_celery(value: object) -> Schedule:
    """The schedule a Celery ``schedule``, ``crontab`` or ``solar`` object stands for.

    So that a ``beat_schedule`` written for Celery (``from celery.schedules import
    crontab``) works unchanged; read from the attributes Celery 5 keeps, without importing
    Celery. A crontab reads the app's time zone, as Celery's does.
    """
    kind = type(value).__name__
    attrs = vars(value)
    try:
        if kind == "schedule":
            return Interval(attrs["run_every"], relative=bool(attrs.get("relative", False)))
        if kind == "crontab":
            fields = ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")
            return Crontab(**{name: attrs[f"_orig_{name}"] for name in fields})
        if kind == "solar":
            return Solar(attrs["event"], attrs["lat"], attrs["lon"])
    except KeyError as exc:
        raise ConfigError(
            f"Celery schedule {value!r} lacks {exc.args[0]!r}; write it with taskq.beat's every(), crontab() or solar()"
        ) from None
    raise ConfigError(f"Celery schedule {value!r} is not one taskq knows: {_UNDERSTOOD}")


def _schedule_from_table(table: Mapping[object, object]) -> Schedule:
    keys = {str(key) for key in table}
    kinds = [kind for kind in _TABLE_KINDS if kind in keys]
    if len(kinds) != 1:
        found = f"it has {' and '.join(kinds)}" if kinds else f"it has {', '.join(sorted(keys)) or 'no keys'}"
        raise ConfigError(
            f"schedule table {dict(table)!r} needs exactly one of the keys every, crontab or solar ({found}); "
            "write e.g. {every = 30}, {crontab = '0 3 * * *', tz = 'Europe/Paris'} "
            "or {solar = 'sunset', lat = 51.5074, lon = -0.1278}"
        )
    (kind,) = kinds
    allowed = _TABLE_KINDS[kind]
    unknown = sorted(keys - allowed)
    if unknown:
        raise ConfigError(
            f"schedule table key {unknown[0]!r} does not go with {kind!r}{_suggest(unknown[0], allowed)}; "
            f"with {kind!r} a table takes: {', '.join(sorted(allowed))}"
        )
    if kind == "every":
        relative = table.get("relative", False)
        if not isinstance(relative, bool):
            raise ConfigError(f"schedule table relative {relative!r} is not true or false; write relative = true")
        return Interval(_positive_seconds(table["every"]), relative=relative)
    if kind == "crontab":
        text, tz = table["crontab"], table.get("tz")
        if not isinstance(text, str):
            raise ConfigError(f"schedule table crontab {text!r} is not a string; write crontab = '*/5 * * * *'")
        if tz is not None and not isinstance(tz, str | tzinfo):
            raise ConfigError(f"schedule table tz {tz!r} is not a time zone name; write tz = 'Europe/Paris'")
        return Crontab.from_string(text, tz=tz)
    missing = [key for key in ("lat", "lon") if key not in keys]
    if missing:
        raise ConfigError(
            f"schedule table for solar {table['solar']!r} lacks {' and '.join(missing)}; "
            "write {solar = 'sunset', lat = 51.5074, lon = -0.1278}"
        )
    event = table["solar"]
    if not isinstance(event, str):
        raise ConfigError(f"unknown solar event {event!r}; one of: {', '.join(_SOLAR_EVENTS)}")
    return Solar(event, _check_coordinate(table["lat"], "lat", 90), _check_coordinate(table["lon"], "lon", 180))
