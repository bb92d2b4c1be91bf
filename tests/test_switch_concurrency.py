"""Version switches while real writers insert (issue 11.1, 11.3, 11.5): PostgreSQL only.

Each case runs psycopg writers for 4 s with a switch every 0.5 s (the full 8 writers x 30 s
run is benchmarks/switch_stress.py; figures in benchmarks/RESULTS.md). On the code before
the fix: humility rules deadlocked (11.1), 8 one-row writers held a switch over 1 s (FOR
SHARE starvation, 11.3), and runtime="sql" scored rows committed after a switch with the
old version (11.5).
"""

from __future__ import annotations

import pytest

from tests import switch_stress

pytestmark = pytest.mark.parametrize("db", ["postgresql"], indirect=True)


@pytest.mark.parametrize(
    ("mode", "runtime", "humility", "writers", "batch"),
    [
        ("bulk", "onnx", False, 8, 1),
        ("bulk", "onnx", True, 4, 20),
        ("bulk", "sql", False, 4, 20),
        ("bulk", "sql", True, 4, 20),
        ("row", "onnx", False, 4, 20),
        ("row", "sql", False, 4, 20),
    ],
)
def test_switches_complete_quickly_and_every_row_is_scored_by_the_version_deployed(
    db, mode, runtime, humility, writers, batch
):
    report = switch_stress.run(
        db.url,
        mode=mode,
        runtime=runtime,
        humility=humility,
        writers=writers,
        batch=batch,
        seconds=4,
        switch_every=0.5,
        min_switches=4,
    )
    print(report.summary())
    assert report.failures == []
    assert report.problems == []
    assert len(report.switches) >= 4
    assert report.rows > 0
