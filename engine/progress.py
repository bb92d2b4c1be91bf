"""A small progress bar for long CLI work, on stderr so output stays pipeable."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class Progress:
    """``with Progress(total, "inserting") as bar: bar.advance(n)``; redraws on a terminal,
    prints a line per quarter otherwise (CI logs)."""

    def __init__(self, total: int, label: str, unit: str = "rows", stream=None, width: int = 30):
        self.total, self.label, self.unit, self.width = max(total, 1), label, unit, width
        self.stream = stream or sys.stderr
        self.done = 0
        self.started = time.perf_counter()
        self._last_quarter = -1
        self.interactive = getattr(self.stream, "isatty", lambda: False)()

    def __enter__(self) -> Progress:
        sys.stdout.flush()  # keep earlier stdout lines before the bar in logs
        self._draw()
        return self

    def __exit__(self, *exc) -> None:
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()

    @contextmanager
    def step(self, note: str) -> Iterator[None]:
        """One step of work whose length is unknown (a conversion, a compile): on a terminal
        the elapsed time keeps moving while it runs; the bar advances by one when it ends."""
        self._draw(note)
        done = threading.Event()

        def tick() -> None:
            while not done.wait(0.5):
                self._draw(note)

        ticker = threading.Thread(target=tick, daemon=True) if self.interactive else None
        if ticker is not None:
            ticker.start()
        try:
            yield
        finally:
            done.set()
            if ticker is not None:
                ticker.join()
        self.advance(1, note)

    def advance(self, n: int = 1, note: str = "") -> None:
        self.done = min(self.total, self.done + n)
        self._draw(note)

    def _draw(self, note: str = "") -> None:
        fraction = self.done / self.total
        elapsed = time.perf_counter() - self.started
        filled = int(fraction * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        line = (
            f"{self.label} [{bar}] {fraction:4.0%} {self.done:,}/{self.total:,} {self.unit} "
            f"{elapsed:5.1f}s {note}"
        )
        if self.interactive:
            self.stream.write("\r" + line.ljust(100))
            self.stream.flush()
            return
        quarter = int(fraction * 4)
        if quarter != self._last_quarter:
            self._last_quarter = quarter
            self.stream.write(line.rstrip() + "\n")
            self.stream.flush()
