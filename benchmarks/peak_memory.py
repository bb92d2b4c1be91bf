"""Peak memory of a benchmark process, for the RESULT lines every benchmark prints."""

from __future__ import annotations

import contextlib
from pathlib import Path


def peak_rss_mb() -> float | None:
    """This process image's peak resident memory in MB (VmHWM). Not getrusage's ru_maxrss: on
    Linux a child keeps its forking parent's peak across exec, so a worker would report the
    benchmark's own memory. PostgreSQL's memory is the server's: see ``backend_peak_rss_mb``."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


def backend_peak_rss_mb(conn) -> float | None:
    """Peak resident memory of the PostgreSQL backend serving ``conn`` (VmHWM of its process;
    the benchmark's server runs on this machine)."""
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None
