"""A scheduled monitor run against a long history: does its cost follow the new window, or
the whole table?

A deployed request table gets ``--history`` rows of past traffic, one scored row a second up
to now (predictions' ``scored_at``; half of the rows labelled a day later, never in the
future). PostgreSQL: written directly with the deployment's triggers off, then vacuumed and
analyzed as autovacuum would. DuckDB: scored by ``db.insert``, then dated. A drift + accuracy
monitor (window 1 hour, exact mode, reference the first 10k rows) runs once over the last two
hours. Then each of ``--runs`` rounds inserts ``--new`` rows through the trigger (scored now)
and times the run (the steady state of a schedule: one new window, recomputed).

Prints the median run time for each history size and the ratio largest / smallest history:
about 1 when a run's cost follows the window, about the history ratio when it scans the table.

    python benchmarks/monitor_history.py [--backend postgresql|duckdb]
        [--history 250000,1000000] [--new 1000] [--runs 5] [--dsn postgresql://...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # tests.pg_server lives in the repo, not in the installed package
    sys.path.insert(0, str(REPO))

import indb  # noqa: E402

DSN_ENV = "INDB_BENCH_PG_DSN"
FEATURES = ["f0", "f1", "f2", "f3"]


def _model():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    x = pd.DataFrame(rng.normal(size=(5000, len(FEATURES))), columns=FEATURES)
    y = (x.to_numpy() @ np.array([1.0, -0.5, 0.25, 0.0]) + rng.normal(scale=0.5, size=5000)) > 0
    return LogisticRegression().fit(x, y), x


def _history(db, table: str, rows: int) -> None:
    """``rows`` request rows, one a second up to now, scored and half labelled (a day later)."""
    columns = ", ".join(FEATURES)
    values = ", ".join(f"random() * 2 - 1 AS {c}" for c in FEATURES)
    dated = f"localtimestamp - ({rows} - id) * interval '1 second'"
    if db.backend.name == "duckdb":
        db.insert(table, f"SELECT {values} FROM range({rows})")
        db.sql(f"UPDATE {table}_predictions SET scored_at = {dated}")
    else:
        db.sql(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        db.sql(f"INSERT INTO {table} ({columns}) SELECT {values} FROM generate_series(1, {rows})")
        db.sql(
            f"INSERT INTO {table}_predictions (id, model, model_version, runtime, prediction, scored_at) "
            f"SELECT id, 'm', 1, 'sql', (f0 > 0)::int, {dated} FROM {table}"
        )
    db.sql(
        f"INSERT INTO {table}_ground_truth (id, label, observed_at) "
        f"SELECT id, prediction, least(scored_at + interval '1 day', localtimestamp) "
        f"FROM {table}_predictions WHERE id % 2 = 0"
    )
    if db.backend.name == "duckdb":
        db.sql("CHECKPOINT")
        return
    db.sql(f"ALTER TABLE {table} ENABLE TRIGGER USER")
    for name in (table, f"{table}_predictions", f"{table}_ground_truth"):  # as autovacuum would
        db.sql(f"VACUUM ANALYZE {name}")


def measure(url: str, rows: int, new: int, runs: int) -> dict:
    model, sample = _model()
    table = f"hist_{rows}"
    with indb.connect(url) as db:
        db.register_model("m", model, sample=sample)
        if db.backend.name == "postgresql":  # a --dsn server may have them from a run before
            db.sql(f"DROP TABLE IF EXISTS {table}, {table}_predictions, {table}_ground_truth CASCADE")
        db.deploy("m", table=table, runtime="sql")
        _history(db, table, rows)
        name, columns = f"drift_{rows}", ", ".join(FEATURES)
        db.create_monitor(
            name,
            table,
            reference=f"SELECT {columns}, prediction FROM {table}_scored WHERE id <= 10000",
            window="1 hour",
        )
        db.run_monitor(name, since=datetime.now() - timedelta(hours=2))
        values = ", ".join(f"random() * 2 - 1 AS {c}" for c in FEATURES)
        times = []
        for _ in range(runs):
            db.sql(f"INSERT INTO {table} ({columns}) SELECT {values} FROM generate_series(1, {new})")
            started = time.perf_counter()
            summary = db.run_monitor(name)
            times.append(time.perf_counter() - started)
            assert summary.windows >= 1, summary
        size = None
        if db.backend.name == "postgresql":
            size = db.sql(f"SELECT pg_total_relation_size('{table}_predictions') AS b").b[0] / 2**20
    return {"history": rows, "run_s": statistics.median(times), "runs_s": times, "predictions_mb": size}


def _report(results: list[dict], sizes: list[int]) -> None:
    for r in results:
        runs = ", ".join(f"{t:.3f}" for t in r["runs_s"])
        size = f" ({r['predictions_mb']:.0f} MB of predictions)" if r["predictions_mb"] else ""
        print(f"history {r['history']:>9,} rows{size}: run median {r['run_s']:.3f} s  [{runs}]")
    ratio = results[-1]["run_s"] / results[0]["run_s"]
    print(f"largest / smallest history: {sizes[-1] / sizes[0]:.1f}x rows, {ratio:.2f}x run time")
    print("RESULT " + json.dumps({"results": results, "ratio": ratio}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", default="250000,1000000")
    parser.add_argument("--new", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backend", choices=["postgresql", "duckdb"], default="postgresql")
    parser.add_argument("--dsn", default=os.environ.get(DSN_ENV))
    arguments = parser.parse_args()
    sizes = [int(s) for s in arguments.history.split(",")]
    stop = None
    if arguments.backend == "duckdb":
        folder = Path(tempfile.mkdtemp(prefix="indb_bench_"))
        results = [
            measure(f"duckdb://{folder}/history_{rows}.duckdb", rows, arguments.new, arguments.runs)
            for rows in sizes
        ]
        _report(results, sizes)
        return
    if arguments.dsn:
        dsn = arguments.dsn
    else:
        from tests.pg_server import start_cluster

        dsn, stop = start_cluster(Path(tempfile.mkdtemp(prefix="indb_bench_")))
        print(f"PostgreSQL: throwaway cluster at {dsn} (tests/pg_server.py)")
    try:
        results = [measure(dsn, rows, arguments.new, arguments.runs) for rows in sizes]
    finally:
        if stop is not None:
            stop()
    _report(results, sizes)


if __name__ == "__main__":
    main()
