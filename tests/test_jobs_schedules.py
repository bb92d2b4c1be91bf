"""Job schedules: cron, names and intervals, next-run times, time zones, invalid input."""

from datetime import datetime

import pytest

from indb.jobs.schedules import ScheduleError, parse


def test_every_15_minutes():
    s = parse("*/15 * * * *")
    assert s.next_run(datetime(2025, 1, 31, 12, 0)) == datetime(2025, 1, 31, 12, 15)
    assert s.next_run(datetime(2025, 1, 31, 12, 14, 59)) == datetime(2025, 1, 31, 12, 15)
    assert s.next_run(datetime(2025, 12, 31, 23, 59)) == datetime(2026, 1, 1, 0, 0)


def test_month_ends():
    s = parse("0 0 31 * *")  # months with 31 days only
    assert s.next_run(datetime(2025, 1, 31, 1)) == datetime(2025, 3, 31)
    assert s.next_run(datetime(2025, 3, 31, 1)) == datetime(2025, 5, 31)
    monthly = parse("@monthly")
    assert monthly.next_run(datetime(2025, 1, 31, 23, 59)) == datetime(2025, 2, 1)


def test_leap_day():
    s = parse("30 6 29 2 *")
    assert s.next_run(datetime(2025, 3, 1)) == datetime(2028, 2, 29, 6, 30)
    assert s.next_run(datetime(2028, 2, 29, 6, 30)) == datetime(2032, 2, 29, 6, 30)
    assert parse("1 day").next_run(datetime(2024, 2, 28, 12)) == datetime(2024, 2, 29)


@pytest.mark.parametrize(
    "name, after, expected",
    [
        ("@hourly", datetime(2025, 5, 5, 10, 30), datetime(2025, 5, 5, 11)),
        ("@daily", datetime(2025, 5, 5, 10, 30), datetime(2025, 5, 6)),
        ("@weekly", datetime(2025, 5, 5, 10, 30), datetime(2025, 5, 11)),  # a Sunday
        ("@yearly", datetime(2025, 5, 5), datetime(2026, 1, 1)),
        ("@DAILY", datetime(2025, 5, 5), datetime(2025, 5, 6)),
    ],
)
def test_names(name, after, expected):
    assert parse(name).next_run(after) == expected


def test_intervals_anchored_at_the_epoch():
    assert parse("15 minutes").next_run(datetime(2025, 1, 1, 10, 7)) == datetime(2025, 1, 1, 10, 15)
    every15 = parse("*/15 * * * *")
    moment = datetime(2025, 3, 3, 3, 3)
    for _ in range(10):
        assert parse("15 minutes").next_run(moment) == every15.next_run(moment)
        moment = every15.next_run(moment)
    seven = parse("7 minutes")
    assert seven.next_run(datetime(1970, 1, 1)) == datetime(1970, 1, 1, 0, 7)
    got = seven.next_run(datetime(2025, 1, 1))
    assert int((got - datetime(1970, 1, 1)).total_seconds()) % 420 == 0
    assert got - datetime(2025, 1, 1) <= __import__("datetime").timedelta(minutes=7)
    assert parse("1 hour").next_run(datetime(2025, 1, 1, 10, 0)) == datetime(2025, 1, 1, 11, 0)
    assert parse("2  Hours").text == "2 Hours"
    assert parse("3 days").next_run(datetime(1970, 1, 1)) == datetime(1970, 1, 4)


def test_occurrences_between():
    s = parse("0 * * * *")
    got = s.occurrences(datetime(2025, 1, 1, 1), datetime(2025, 1, 1, 4, 30))
    assert got == [datetime(2025, 1, 1, h) for h in (1, 2, 3, 4)]
    assert s.occurrences(datetime(2025, 1, 1, 1), datetime(2025, 1, 2, 1), limit=3) == [
        datetime(2025, 1, 1, 23),
        datetime(2025, 1, 2, 0),
        datetime(2025, 1, 2, 1),
    ]


def test_non_utc_zone():
    paris = parse("0 9 * * *", "Europe/Paris")
    assert paris.next_run(datetime(2025, 1, 15, 12)) == datetime(2025, 1, 16, 8)  # CET = UTC+1
    assert paris.next_run(datetime(2025, 7, 15, 12)) == datetime(2025, 7, 16, 7)  # CEST = UTC+2
    # an interval of a day is anchored at local midnight
    tokyo = parse("1 day", "Asia/Tokyo")
    assert tokyo.next_run(datetime(2025, 1, 1, 12)) == datetime(2025, 1, 1, 15)
    assert str(paris) == "0 9 * * * (Europe/Paris)"


@pytest.mark.parametrize(
    "text, words",
    [
        ("60 * * * *", "minute field '60'"),
        ("0 25 * * *", "hour field '25'"),
        ("* * * 13 *", "month field '13'"),
        ("* * * *", "has 4 field(s)"),
        ("0 0 * * * *", "has 6 field(s)"),
        ("0 0 31 2 *", "never due"),
        ("@fortnightly", "unknown schedule name '@fortnightly'"),
        ("15 weeks", "minutes, hours or days"),
        ("0 minutes", "at least 1"),
        ("", "a schedule is a cron expression"),
        ("every day", "has 2 field(s)"),
    ],
)
def test_invalid_schedules(text, words):
    with pytest.raises(ScheduleError, match=None) as caught:
        parse(text)
    assert words in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_invalid_zone_suggests():
    with pytest.raises(ScheduleError, match="unknown time zone 'Europe/Pari'; did you mean 'Europe/Paris'"):
        parse("@daily", "Europe/Pari")


def test_occurrences_count_back_from_the_end():
    minute = parse("* * * * *")
    import time

    started = time.perf_counter()
    got = minute.occurrences(datetime(2020, 1, 1), datetime(2025, 1, 1), limit=5)
    assert time.perf_counter() - started < 2  # five years of minutes are not walked
    assert got == [datetime(2024, 12, 31, 23, m) for m in (56, 57, 58, 59)] + [datetime(2025, 1, 1)]
    seven = parse("7 minutes")
    assert seven.occurrences(datetime(2025, 1, 1), datetime(2025, 1, 1, 0, 30)) == [
        seven.next_run(datetime(2025, 1, 1)) + __import__("datetime").timedelta(minutes=7 * k)
        for k in range(4)
    ]
    assert seven.previous(datetime(1970, 1, 1, 0, 14)) == datetime(1970, 1, 1, 0, 7)


def test_across_a_dst_change_times_only_move_forward():
    for text in ("1 hour", "30 * * * *", "1 day", "0 2 * * *"):
        s = parse(text, "Europe/Paris")
        moment = datetime(2025, 3, 29)
        for _ in range(60):  # across 2025-03-30 (spring forward) ...
            following = s.next_run(moment)
            assert following > moment
            moment = following
        moment = datetime(2025, 10, 25)
        for _ in range(60):  # ... and 2025-10-26 (fall back)
            following = s.next_run(moment)
            assert following > moment
            moment = following
    hourly, cron = parse("1 hour", "Europe/Paris"), parse("0 * * * *", "Europe/Paris")
    for start in (datetime(2025, 10, 25, 22), datetime(2025, 3, 29, 22)):
        a = b = start
        for _ in range(6):  # the hour a DST change repeats runs twice, as cron does
            a, b = hourly.next_run(a), cron.next_run(b)
            assert a == b
            assert hourly.previous(a + __import__("datetime").timedelta(minutes=1)) == a
