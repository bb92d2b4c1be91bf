"""When a job is due: a 5-field cron expression, ``@hourly``-style names, or an interval.

Cron expressions are parsed by croniter (a maintained parser, not ours). An interval
(``'15 minutes'``, ``'2 hours'``, ``'1 day'``) is anchored at the epoch in the job's time zone, so
``'15 minutes'`` is due when ``*/15 * * * *`` is and ``'7 minutes'`` at every 7th minute since
1970-01-01 00:00 there. Times going in and out are naive UTC, like the catalog's; the time zone
(``zoneinfo``, UTC by default) only decides which wall-clock times a schedule names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

from indb.errors import IndbError

# The names pg_cron and croniter both know, as the expressions they stand for.
NAMED = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_INTERVAL = re.compile(r"^(\d+)\s*(minute|minutes|min|mins|hour|hours|day|days)$", re.IGNORECASE)
_UNIT_SECONDS = {"min": 60, "minute": 60, "hour": 3600, "day": 86400}
_EPOCH = datetime(1970, 1, 1)
# Enumerating the runs missed over years of a once-a-minute job would never end.
MAX_OCCURRENCES = 1000


class ScheduleError(IndbError, ValueError):
    """A schedule or time zone that cannot be parsed; the message says what was wrong."""


def timezone(name: str | None) -> ZoneInfo:
    """The zone ``name`` names (default UTC), or an error suggesting a near miss."""
    import difflib
    import zoneinfo

    name = name or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        known = sorted(zoneinfo.available_timezones())
        close = difflib.get_close_matches(str(name), known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else " (use an IANA name such as 'Europe/Paris')"
        raise ScheduleError(f"unknown time zone {name!r}{hint}") from None


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: ``cron`` (5 fields) or ``interval_seconds``, in ``zone``."""

    text: str
    zone: str
    cron: str | None = None
    interval_seconds: int | None = None

    def next_run(self, after: datetime) -> datetime:
        """The first due time strictly after ``after`` (naive UTC in and out)."""
        tz = timezone(self.zone)
        local = after.replace(tzinfo=UTC).astimezone(tz)
        if self.cron is not None:
            found = croniter(self.cron, local).get_next(datetime)
            return found.astimezone(UTC).replace(tzinfo=None)
        step = self.interval_seconds
        wall = local.replace(tzinfo=None)
        count = int((wall - _EPOCH).total_seconds() // step)  # its own slot may repeat later
        while True:
            wall_time = _EPOCH + timedelta(seconds=count * step)
            for fold in (0, 1):  # a wall-clock time a DST change repeats: both, in order
                found = wall_time.replace(tzinfo=tz, fold=fold).astimezone(UTC).replace(tzinfo=None)
                if found > after:
                    return found
            count += 1

    def previous(self, before: datetime) -> datetime:
        """The last due time strictly before ``before`` (naive UTC in and out)."""
        tz = timezone(self.zone)
        local = before.replace(tzinfo=UTC).astimezone(tz)
        if self.cron is not None:
            found = croniter(self.cron, local).get_prev(datetime)
            return found.astimezone(UTC).replace(tzinfo=None)
        step = self.interval_seconds
        wall = local.replace(tzinfo=None)
        count = -int(-(wall - _EPOCH).total_seconds() // step)  # ceil
        while True:
            wall_time = _EPOCH + timedelta(seconds=count * step)
            for fold in (1, 0):
                found = wall_time.replace(tzinfo=tz, fold=fold).astimezone(UTC).replace(tzinfo=None)
                if found < before:
                    return found
            count -= 1

    def occurrences(self, start: datetime, until: datetime, limit: int = MAX_OCCURRENCES) -> list[datetime]:
        """Due times from ``start`` (included when due) up to ``until`` (included), oldest
        first: the latest ``limit`` of them when there are more (counted back from ``until``,
        so a scheduler down for a year does not walk every minute of it)."""
        found: list[datetime] = []
        cursor = until + timedelta(microseconds=1)
        while len(found) < limit:
            moment = self.previous(cursor)
            if moment < start:
                break
            found.append(moment)
            cursor = moment
        return found[::-1]

    def __str__(self) -> str:
        return self.text if self.zone == "UTC" else f"{self.text} ({self.zone})"


def parse(text: str, zone: str | None = "UTC") -> Schedule:
    """A :class:`Schedule` from cron (``*/15 * * * *``), a name (``@daily``) or an interval
    (``'15 minutes'``); anything else is a :class:`ScheduleError` naming what was wrong."""
    zone = zone or "UTC"
    timezone(zone)
    if not isinstance(text, str) or not text.strip():
        raise ScheduleError(
            "a schedule is a cron expression ('*/15 * * * *'), @hourly/@daily/"
            "@weekly/@monthly/@yearly, or an interval ('15 minutes'); got "
            f"{text!r}"
        )
    cleaned = " ".join(text.split())
    if cleaned.startswith("@"):
        expression = NAMED.get(cleaned.lower())
        if expression is None:
            raise ScheduleError(f"unknown schedule name {cleaned!r}: use one of {', '.join(sorted(NAMED))}")
        return Schedule(cleaned, zone, cron=expression)
    interval = _INTERVAL.match(cleaned)
    if interval:
        count, unit = int(interval[1]), interval[2].lower().rstrip("s")
        if count <= 0:
            raise ScheduleError(f"schedule {text!r}: an interval must be at least 1 {unit}")
        return Schedule(cleaned, zone, interval_seconds=count * _UNIT_SECONDS[unit])
    if cleaned[0].isdigit() and len(cleaned.split()) == 2:
        raise ScheduleError(
            f"schedule {text!r}: an interval's unit is minutes, hours or days (e.g. '15 minutes')"
        )
    fields = cleaned.split(" ")
    if len(fields) != 5:
        raise ScheduleError(
            f"schedule {text!r} has {len(fields)} field(s): a cron expression has 5 (minute hour "
            "day-of-month month day-of-week), e.g. '*/15 * * * *'"
        )
    try:
        croniter(cleaned, datetime(2000, 1, 1))
    except (ValueError, KeyError, TypeError) as e:
        raise ScheduleError(f"invalid cron expression {text!r}: {_bad_field(fields) or e}") from None
    schedule = Schedule(cleaned, zone, cron=cleaned)
    try:
        schedule.next_run(datetime(2000, 1, 1))
    except CroniterBadDateError:
        raise ScheduleError(f"cron expression {text!r} is never due (no such date)") from None
    return schedule


_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")


def _bad_field(fields: list[str]) -> str | None:
    """Which field croniter refuses, tried one at a time with the others '*'."""
    for i, name in enumerate(_FIELDS):
        alone = ["*"] * 5
        alone[i] = fields[i]
        try:
            croniter(" ".join(alone), datetime(2000, 1, 1))
        except (ValueError, KeyError, TypeError):
            return f"the {name} field {fields[i]!r} is out of range or not cron syntax"
    return None
