"""The ``retain`` job action over N prediction rows on DuckDB, with inserts going on meanwhile.

A deployment (a linear model compiled to SQL) whose request table holds ``--rows`` requests
created over the last 100 days, one prediction each and a label for one in ten; ``retain``
with ``days=10`` deletes the 90% older rows in batches of ``--batch-size`` request ids. While
it runs, a second connection (another thread) inserts one request at a time into the request
table (each insert scores its row through the trigger) and times every insert.

Printed: rows deleted per second, batches and the longest batch, and the longest insert wait
against the longest batch (a wait longer than one batch would mean retain blocked inserts),
then a JSON line. Before retain, the same inserts are timed alone for a baseline.

    python benchmarks/jobs_retain.py [--rows 1000000] [--batch-size 10000]
    python benchmarks/jobs_retain.py --rows 10000000
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import indb  # noqa: E402
from indb.jobs import actions  # noqa: E402
from indb.jobs.actions import Context  # noqa: E402

NOW = datetime.now().replace(microsecond=0)


def build(url: str, rows: int) -> None:
    from sklearn.linear_model import LinearRegression

    db = indb.connect(url)
    sample = pd.DataFrame({"x": np.linspace(0, 1, 50)})
    db.register_model("m", LinearRegression().fit(sample, 2 * sample.x + 1), sample=sample)
    start = NOW - timedelta(days=100)
    step = 100 * 86_400 / rows
    db.sql("CREATE SEQUENCE requests_id_seq")
    db.sql(
        "CREATE TABLE requests (id BIGINT DEFAULT nextval('requests_id_seq'), x DOUBLE, "
        "created_at TIMESTAMP DEFAULT current_timestamp)"
    )
    db.sql(
        "INSERT INTO requests (x, created_at) SELECT random(), "
        "CAST($start AS TIMESTAMP) + to_microseconds(CAST(i * $step * 1e6 AS BIGINT)) FROM range($rows) t(i)",
        {"start": start, "step": step, "rows": rows},
    )
    db.sql(
        "CREATE TABLE requests_predictions (id BIGINT NOT NULL, model VARCHAR NOT NULL, "
        "model_version INTEGER NOT NULL, runtime VARCHAR NOT NULL, prediction DOUBLE, "
        "scored_at TIMESTAMP NOT NULL DEFAULT current_timestamp)"
    )
    db.sql("INSERT INTO requests_predictions SELECT id, 'm', 1, 'sql', 2 * x + 1, created_at FROM requests")
    db.deploy("m", table="requests", runtime="sql")
    db.sql(
        "INSERT INTO requests_ground_truth (id, label, observed_at) "
        "SELECT id, 2 * x + 1, created_at + INTERVAL 1 HOUR FROM requests WHERE id % 10 = 0"
    )
    db.sql("CHECKPOINT")
    db.close()


def insert_loop(url: str, stop: threading.Event, waits: list[float], limit: float | None = None) -> None:
    """One request per statement until ``stop`` (or ``limit`` seconds): each insert's time."""
    db = indb.connect(url)
    began = time.perf_counter()
    try:
        while not stop.is_set() and (limit is None or time.perf_counter() - began < limit):
            started = time.perf_counter()
            db.sql("INSERT INTO requests (x) VALUES (0.5)")
            waits.append(time.perf_counter() - started)
            time.sleep(0.001)
    finally:
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"duckdb://{tmp}/retain.duckdb"
        began = time.perf_counter()
        build(url, args.rows)
        print(f"built {args.rows:,} requests and predictions in {time.perf_counter() - began:.1f} s")

        alone: list[float] = []
        insert_loop(url, threading.Event(), alone, limit=2.0)

        db = indb.connect(url)
        ((old,),) = db.sql(
            "SELECT count(*) FROM requests_predictions WHERE scored_at < CAST($c AS TIMESTAMP)",
            {"c": NOW - timedelta(days=10)},
        ).itertuples(index=False)
        stop, waits = threading.Event(), []
        inserter = threading.Thread(target=insert_loop, args=(url, stop, waits))
        inserter.start()
        time.sleep(0.2)
        action = actions.get("retain")
        context = Context(job="retain", run_id=0, owner=db.backend.user, scheduled_for=None, now=NOW)
        arguments = action.check({"deployment": "requests", "days": 10, "batch_size": args.batch_size})
        started = time.perf_counter()
        result = action.run(db.backend, arguments, context)
        seconds = time.perf_counter() - started
        time.sleep(0.2)
        stop.set()
        inserter.join()
        ((left,),) = db.sql("SELECT count(*) FROM requests_predictions").itertuples(index=False)
        db.close()

    deleted = result["deleted"]
    assert deleted["predictions"] == old, (deleted, old)
    figures = {
        "rows": args.rows,
        "batch_size": args.batch_size,
        "deleted": deleted,
        "seconds": round(seconds, 3),
        "prediction_rows_per_second": round(deleted["predictions"] / seconds),
        "all_rows_per_second": round(result["rows"] / seconds),
        "batches": result["batches"],
        "mean_batch_seconds": round(seconds / result["batches"], 4),
        "longest_batch_seconds": result["longest_batch_seconds"],
        "inserts_during": len(waits),
        "insert_median_seconds": round(statistics.median(waits), 5),
        "insert_longest_seconds": round(max(waits), 5),
        "insert_alone_median_seconds": round(statistics.median(alone), 5),
        "insert_alone_longest_seconds": round(max(alone), 5),
        "predictions_left": int(left),
    }
    figures["longest_wait_over_longest_batch"] = round(
        figures["insert_longest_seconds"] / max(result["longest_batch_seconds"], 1e-9), 3
    )
    print(
        f"retain: {result['rows']:,} rows ({deleted['predictions']:,} predictions) in {seconds:.2f} s = "
        f"{figures['prediction_rows_per_second']:,} predictions/s, {result['batches']} batches, "
        f"longest batch {result['longest_batch_seconds'] * 1000:.1f} ms"
    )
    print(
        f"inserts meanwhile: {len(waits)}, median {figures['insert_median_seconds'] * 1000:.2f} ms, "
        f"longest {figures['insert_longest_seconds'] * 1000:.1f} ms "
        f"({figures['longest_wait_over_longest_batch']:.2f}x the longest batch); alone: median "
        f"{figures['insert_alone_median_seconds'] * 1000:.2f} ms, longest "
        f"{figures['insert_alone_longest_seconds'] * 1000:.1f} ms"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
