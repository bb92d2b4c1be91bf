"""What every kind of monitor (drift, accuracy, fairness, importance) shares when it is made:
the error a bad monitor raises and the check of one threshold value."""

from __future__ import annotations

import math
import numbers

from indb.errors import IndbError


class MonitorError(IndbError, ValueError):
    """A monitor that cannot be created as asked (bad reference, window, feature, threshold)."""


def number(value, what: str) -> float | None:
    """A threshold's value as a float (None: no threshold), or a MonitorError naming it."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise MonitorError(f"threshold {what} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise MonitorError(f"threshold {what} must be a finite number, got {value!r} (it would never fire)")
    return float(value)
