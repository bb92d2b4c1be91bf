"""The time a scheduler and the runner see: the system's, or one a test or the demo drives."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class Clock:
    """Naive UTC ``now()`` (like the catalog's times) and ``sleep()`` that a stop can cut short."""

    def now(self) -> datetime:
        return datetime.now(UTC).replace(tzinfo=None)

    def sleep(self, seconds: float, wake: threading.Event | None = None) -> None:
        """Wait ``seconds``, or until ``wake`` is set."""
        (wake or threading.Event()).wait(max(0.0, seconds))


class ManualClock(Clock):
    """A clock that only moves when told: ``sleep`` and ``advance`` move it at once, so tests
    and the demo run months of schedule in milliseconds."""

    def __init__(self, start: datetime):
        self._now = start
        self._lock = threading.Lock()
        self.slept: list[float] = []

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float = 0, **delta) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds, **delta)
            return self._now

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = moment

    def sleep(self, seconds: float, wake: threading.Event | None = None) -> None:
        self.slept.append(seconds)
        self.advance(max(0.0, seconds))


SYSTEM = Clock()
