"""Argument checks shared by the actions: a clear IndbError naming the action and argument."""

from __future__ import annotations

import math
import numbers
from datetime import UTC, datetime

from indb.errors import IndbError


def text(action: str, key: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise IndbError(f"action {action!r}: {key} must be a non-empty string, got {value!r}")
    return value


def number(action: str, key: str, value: object, *, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise IndbError(f"action {action!r}: {key} must be a number, got {value!r}")
    if value < minimum:
        raise IndbError(f"action {action!r}: {key} must be at least {minimum:g}, got {value!r}")
    return float(value)


def whole(action: str, key: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise IndbError(f"action {action!r}: {key} must be a whole number, got {value!r}")
    if value < minimum:
        raise IndbError(f"action {action!r}: {key} must be at least {minimum}, got {value!r}")
    return int(value)


def flag(action: str, key: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise IndbError(f"action {action!r}: {key} must be true or false, got {value!r}")
    return value


def moment(action: str, key: str, value: object) -> datetime:
    """A naive UTC time: a datetime or an ISO text ('2024-05-01', '2024-05-01 12:00')."""
    if isinstance(value, datetime):
        found = value
    else:
        try:
            found = datetime.fromisoformat(text(action, key, value))
        except ValueError:
            raise IndbError(f"action {action!r}: {key} {value!r} is not an ISO date or time") from None
    if found.tzinfo is not None:
        found = found.astimezone(UTC).replace(tzinfo=None)
    return found
