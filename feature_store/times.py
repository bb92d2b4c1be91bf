"""Times in the feature store: a tz-naive time means UTC, on every backend and whatever the
session's ``TimeZone``.

Engines convert between ``TIMESTAMP`` and ``TIMESTAMP WITH TIME ZONE`` through the session's
time zone, so the same rows would join differently for a user in Los Angeles and one in
Paris. Every conversion the feature store makes (a spine time to a feature set's time type, a
created time to the event time's type, ingested rows to the stored types) goes through
:func:`convert`, which reads naive times as UTC with ``AT TIME ZONE 'UTC'`` (the same meaning
in DuckDB and PostgreSQL). Feast treats naive times as UTC too.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlglot import exp

NAIVE = "naive"
AWARE = "aware"
DATE = "date"

_KINDS = {
    "TIMESTAMP": NAIVE,
    "TIMESTAMP WITHOUT TIME ZONE": NAIVE,
    "DATETIME": NAIVE,
    "TIMESTAMP_S": NAIVE,
    "TIMESTAMP_MS": NAIVE,
    "TIMESTAMP_US": NAIVE,
    "TIMESTAMP_NS": NAIVE,  # pandas datetime64[ns]
    "TIMESTAMP WITH TIME ZONE": AWARE,
    "TIMESTAMPTZ": AWARE,
    "DATE": DATE,
}
# What each kind is stored as (microseconds, as both engines keep timestamps).
STORED = {NAIVE: "TIMESTAMP", AWARE: "TIMESTAMP WITH TIME ZONE", DATE: "DATE"}


def kind(sql_type: str | None) -> str | None:
    """``naive``, ``aware``, ``date``, or None for a type that is not a time."""
    return None if sql_type is None else _KINDS.get(sql_type.strip().upper())


def stored(sql_type: str) -> str:
    """The type a time column of ``sql_type`` is stored as (nanoseconds become microseconds)."""
    return STORED[kind(sql_type)]


def _utc() -> exp.Literal:
    return exp.Literal.string("UTC")


def convert(value: exp.Expression, source: str, target: str) -> exp.Expression:
    """``value`` (of type ``source``) as type ``target``, naive times read as UTC."""
    have, want = kind(source), kind(target)
    if have is None or want is None:
        raise ValueError(f"not a time type: {source if have is None else target}")
    if source.strip().upper() == stored(target).upper() == target.strip().upper():
        return value
    if have == want or want == DATE and have == NAIVE:
        return exp.cast(value, exp.DataType.build(STORED[want]))
    if have == DATE or have == NAIVE and source.strip().upper() != "TIMESTAMP":
        value, have = exp.cast(value, exp.DataType.build("TIMESTAMP")), NAIVE  # a date: midnight
    if have == NAIVE and want == NAIVE:
        return value
    # naive -> aware and aware -> naive: AT TIME ZONE 'UTC' either way
    moved = exp.AtTimeZone(this=value, zone=_utc())
    return exp.cast(moved, exp.DataType.build("DATE")) if want == DATE else moved


def python_value(value: datetime, sql_type: str) -> datetime:
    """A Python datetime bound against a column of ``sql_type``: naive for naive columns (UTC
    wall time), aware for aware ones (a naive value read as UTC)."""
    if kind(sql_type) == AWARE:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value
    if value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value
