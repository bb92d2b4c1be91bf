"""How long each ``indb ui`` page takes on a big catalog.

DuckDB file in a temporary folder: one real deployment (``requests``, model ``loans``, compiled
SQL) scoring ``--rows`` inserted requests (default 10,000,000, spread over 30 days in id order
by rewriting ``scored_at``), with labels for a tenth of them (no challenger: its rows would
double the table); incomes shift after two thirds; a real monitor (reference: the first 3
days) run over the 30 daily windows; then the catalog
grows with SQL generators (``range()``), not Python loops: ``--models`` models (default 100, as
catalog copies of the real version, each with 3 versions and a deployment row), ``--monitors``
monitors (default 50, copies of the real one with its results and alerts), 50 jobs with 100
runs each. Then indb ui runs on uvicorn on 127.0.0.1 and each page is fetched ``--loads`` times
(default 20) over HTTP after one warm-up load; p50 and p95 per page.

    python benchmarks/ui.py [--rows 10000000] [--models 100] [--monitors 50] [--loads 20]

Prints a table and ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import indb  # noqa: E402
from tests.conftest import NUMERIC, loan_frame  # noqa: E402

PAGES = {
    "overview": "/",
    "model": "/models/loans",
    "deployment": "/deployments/requests",
    "monitors": "/monitors",
    "monitor": "/monitors/loans_drift",
    "monitor (copy)": "/monitors/drift_025",
    "jobs": "/jobs",
    "job": "/jobs/job_007",
    "search": "/search?q=loans",
}

GROW = [
    # models: copies of the real version (same ONNX bytes), 3 versions each, a deployment row
    """INSERT INTO indb.models (name, description, created_by)
       SELECT 'model_' || lpad(CAST(i AS VARCHAR), 3, '0'), 'generated', 'bench' FROM range($models) t(i)""",
    """INSERT INTO indb.model_versions (model, version, onnx, sha256, size_bytes, task, signature, inputs,
           outputs, classes, recipe, metrics, tags, conversion, description, created_by, stage)
       SELECT 'model_' || lpad(CAST(i AS VARCHAR), 3, '0'), CAST(v AS INTEGER), onnx, sha256, size_bytes,
              task, signature, inputs, outputs, classes, recipe, metrics, tags, conversion, description,
              'bench', 'none'
       FROM indb.model_versions, range($models) t(i), range(1, 4) u(v)
       WHERE model = 'loans' AND version = 1""",
    """INSERT INTO indb.deployments (table_name, model, version, runtime)
       SELECT 'table_' || lpad(CAST(i AS VARCHAR), 3, '0'), 'model_' || lpad(CAST(i AS VARCHAR), 3, '0'),
              3, 'sql'
       FROM range($models) t(i)""",
    # monitors: copies of the real one with its reference, thresholds, results and alerts
    """INSERT INTO indb.monitors SELECT x.* REPLACE ('drift_' || lpad(CAST(i AS VARCHAR), 3, '0') AS name)
       FROM indb.monitors AS x, range($monitors) t(i) WHERE name = 'loans_drift'""",
    """INSERT INTO indb.monitor_features
       SELECT x.* REPLACE ('drift_' || lpad(CAST(i AS VARCHAR), 3, '0') AS monitor)
       FROM indb.monitor_features AS x, range($monitors) t(i) WHERE monitor = 'loans_drift'""",
    """INSERT INTO indb.monitor_bins
       SELECT x.* REPLACE ('drift_' || lpad(CAST(i AS VARCHAR), 3, '0') AS monitor)
       FROM indb.monitor_bins AS x, range($monitors) t(i) WHERE monitor = 'loans_drift'""",
    """INSERT INTO indb.monitor_thresholds
       SELECT x.* REPLACE ('drift_' || lpad(CAST(i AS VARCHAR), 3, '0') AS monitor)
       FROM indb.monitor_thresholds AS x, range($monitors) t(i) WHERE monitor = 'loans_drift'""",
    """INSERT INTO indb.monitor_results
       SELECT x.* REPLACE ('drift_' || lpad(CAST(i AS VARCHAR), 3, '0') AS monitor)
       FROM indb.monitor_results AS x, range($monitors) t(i) WHERE monitor = 'loans_drift'""",
    """INSERT INTO indb.alerts SELECT x.* REPLACE (nextval('indb.alert_id') AS id,
           'drift_' || lpad(CAST(i AS VARCHAR), 3, '0') AS monitor)
       FROM indb.alerts AS x, range($monitors) t(i) WHERE monitor = 'loans_drift'""",
    # jobs: 50, each with 100 runs (every tenth failed)
    """INSERT INTO indb.jobs (name, schedule, action, arguments, owner)
       SELECT 'job_' || lpad(CAST(i AS VARCHAR), 3, '0'), '@hourly', 'run_monitor',
              CAST('{"monitor": "loans_drift"}' AS JSON), 'bench' FROM range(50) t(i)""",
    """INSERT INTO indb.job_runs (id, job, scheduled_for, started_at, finished_at, status, runner, error)
       SELECT nextval('indb.job_run_id'), 'job_' || lpad(CAST(i AS VARCHAR), 3, '0'),
              TIMESTAMP '2024-01-01' + r * INTERVAL 1 HOUR, TIMESTAMP '2024-01-01' + r * INTERVAL 1 HOUR,
              TIMESTAMP '2024-01-01' + r * INTERVAL 1 HOUR + INTERVAL 2 SECOND,
              CASE WHEN r % 10 = 9 THEN 'failed' ELSE 'succeeded' END, 'scheduler',
              CASE WHEN r % 10 = 9 THEN 'generated failure' END
       FROM range(50) t(i), range(100) u(r)""",
]


def insert(db, start: int, stop: int, rows: int) -> None:
    """Requests ``start``..``stop`` from a generator; the deployment's trigger scores them
    (compiled SQL). Incomes shift for the last third."""
    db.sql(
        "INSERT INTO requests (income, debt, age, tenure) "
        "SELECT 55000 + 15000 * (random() + random() + random() - 1.5) * 1.4"
        "       + CASE WHEN i >= $shift THEN 20000 ELSE 0 END, "
        "       12000 * random(), 18 + CAST(62 * random() AS BIGINT), 10 * random() "
        "FROM range($start, $stop) t(i)",
        {"start": start, "stop": stop, "shift": rows * 2 // 3},
    )


def spread(db, after: int, count: int) -> None:
    """The predictions of ids after ``after`` spread evenly over 30 days from 2024-01-01."""
    db.sql(
        "UPDATE requests_predictions SET scored_at = TIMESTAMP '2024-01-01' "
        "+ CAST(floor((id - $after - 1) * $seconds / $count) AS BIGINT) * INTERVAL 1 SECOND "
        "WHERE id > $after",
        {"seconds": 30 * 86400, "after": after, "count": count},
    )


def build(path: str, rows: int, models: int, monitors: int) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    timings = {}
    started = time.perf_counter()
    train = loan_frame(2_000)
    db = indb.connect(f"duckdb://{path}")
    fitted = make_pipeline(StandardScaler(), LogisticRegression()).fit(train[NUMERIC], train.label)
    db.register_model("loans", fitted, sample=train[NUMERIC].head(200))
    db.deploy("loans", table="requests")
    # Requests arrive in time order (ids grow with scored_at, as they do when a deployment
    # scores inserts), a tenth get labels; the monitor's reference is the first 3 days and it
    # runs over all 30 daily windows.
    mark = time.perf_counter()
    insert(db, 0, rows, rows)
    spread(db, 0, rows)
    timings["insert_scored_s"] = time.perf_counter() - mark
    db.sql(
        "INSERT INTO requests_ground_truth (id, label, observed_at) "
        "SELECT id, CASE WHEN random() < 0.6 THEN 'repaid' ELSE 'default' END, scored_at "
        "FROM requests_predictions WHERE id % 10 = 0"
    )
    mark = time.perf_counter()
    db.create_monitor("loans_drift", "requests", reference=("2024-01-01", "2024-01-04"), window="1 day")
    db.run_monitor("loans_drift")
    timings["monitor_run_s"] = time.perf_counter() - mark
    mark = time.perf_counter()
    for text in GROW:
        names = [n for n in ("models", "monitors") if f"${n}" in text]
        db.sql(text, {n: {"models": models, "monitors": monitors}[n] for n in names} or None)
    timings["grow_catalog_s"] = time.perf_counter() - mark
    db.sql("CHECKPOINT")
    timings["build_s"] = time.perf_counter() - started
    counts = db.sql(
        "SELECT (SELECT count(*) FROM requests_predictions) AS predictions, "
        "(SELECT count(*) FROM indb.models) AS models, (SELECT count(*) FROM indb.monitors) AS monitors, "
        "(SELECT count(*) FROM indb.monitor_results) AS monitor_results, "
        "(SELECT count(*) FROM indb.job_runs) AS job_runs"
    ).iloc[0]
    db.close()
    return {**timings, **{k: int(v) for k, v in counts.items()}}


def serve(url: str):
    import uvicorn

    from indb.ui import create_app

    app = create_app(url)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return server, f"http://127.0.0.1:{port}"


def fetch(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url) as response:
        body = response.read()
        assert response.status == 200 and b"<h1>" in body, url
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--monitors", type=int, default=50)
    parser.add_argument("--loads", type=int, default=20)
    parser.add_argument(
        "--keep", metavar="FILE", help="build the catalog in FILE and keep it (reused if there)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = args.keep or f"{folder}/ui.duckdb"
        if args.keep and Path(path).exists():
            built = {"reused": path}
        else:
            built = build(path, args.rows, args.models - 1, args.monitors - 1)
        print("catalog:", json.dumps(built))
        server, base = serve(f"duckdb://{path}")
        results = {}
        try:
            print(f"{'page':<16} {'p50 ms':>8} {'p95 ms':>8}")
            for name, path_ in PAGES.items():
                fetch(base + path_)  # warm-up: connection caches, first template compile
                times = [fetch(base + path_) for _ in range(args.loads)]
                p50 = statistics.median(times) * 1000
                p95 = float(np.percentile(times, 95)) * 1000
                results[name] = {"p50_ms": round(p50, 1), "p95_ms": round(p95, 1)}
                print(f"{name:<16} {p50:>8.1f} {p95:>8.1f}")
        finally:
            server.should_exit = True
            time.sleep(0.5)
    print("RESULT " + json.dumps({"catalog": built, "loads": args.loads, "pages": results}))


if __name__ == "__main__":
    main()
