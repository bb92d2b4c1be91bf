"""What ``deploy(..., explain=True)`` costs an insert (issue 15.1), against shap on the same rows.

For each model, the same ``INSERT INTO t (f0..f7) SELECT f0..f7 FROM src`` into a table
deployed without explanations and into one deployed with ``explain=True`` (so the second also
writes 8 rows per request into ``<table>_explanations``), median of ``--runs`` runs, each into
emptied tables. Models (scikit-learn, 8 numeric inputs, trained on 20,000 rows):

  lr    StandardScaler + LogisticRegression: runtime auto -> compiled SQL, contributions in SQL
  gb    GradientBoostingClassifier, 100 trees of depth 3: onnxruntime, TreeSHAP next to it
        (DuckDB: an Arrow function in this process; PostgreSQL: PL/Python in the server)

The reference is the shap package on the same rows, in this process: ``LinearExplainer``
(interventional, the same background) and ``TreeExplainer`` (path-dependent), timed on the
model's inputs already in memory (no database, no writing).

DuckDB: a file in a temporary folder, ``--duckdb-rows`` rows; PostgreSQL: a throwaway cluster
(tests/pg_server.py) or ``--dsn``, ``--pg-rows`` rows.

    python benchmarks/explain.py [--duckdb-rows 1000000] [--pg-rows 100000] [--runs 3]
        [--gb-duckdb-rows N] [--gb-pg-rows N] [--models lr,gb] [--backends duckdb,postgresql] [--dsn URL]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FEATURES = [f"f{i}" for i in range(8)]
COLUMNS = ", ".join(FEATURES)


def training(rows: int = 20_000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=FEATURES)
    score = x.f0 - 0.5 * x.f1 + 0.3 * x.f2 * x.f3 + 0.2 * np.sin(x.f4) + rng.normal(0, 0.5, rows)
    return x, (score > 0).astype(np.int64).to_numpy()


def models(which: list[str]):
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = training()
    found = {}
    if "lr" in which:
        found["lr"] = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    if "gb" in which:
        found["gb"] = GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=0).fit(x, y)
    return x, found


def source(rows: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=FEATURES)


def timed_inserts(db, name: str, rows: int, runs: int) -> dict[str, float]:
    """Median seconds of the insert into the plain and the explained table."""
    tables = {"plain": f"t_{name}_plain", "explain": f"t_{name}_explain"}
    seconds: dict[str, list[float]] = {k: [] for k in tables}
    for _ in range(runs):
        for kind, table in tables.items():
            for suffix in ("", "_predictions", "_contributions"):
                if db.backend.table_columns(table + suffix) is not None:
                    db.sql(f"DELETE FROM {table}{suffix}")
            started = time.perf_counter()
            db.sql(f"INSERT INTO {table} ({COLUMNS}) SELECT {COLUMNS} FROM src_{name}")
            seconds[kind].append(time.perf_counter() - started)
        (count,) = db.sql(f"SELECT count(*) AS n FROM {tables['explain']}_explanations").n
        assert count == rows * len(FEATURES), (count, rows)
    return {k: statistics.median(v) for k, v in seconds.items()}


def shap_seconds(model, background: pd.DataFrame, rows: pd.DataFrame, runs: int) -> float:
    import shap

    found = []
    for _ in range(runs):
        started = time.perf_counter()
        if hasattr(model, "estimators_"):  # gradient boosting: TreeExplainer, path-dependent
            shap.TreeExplainer(model).shap_values(rows)
        else:
            scaler, linear = model[0], model[-1]
            explainer = shap.LinearExplainer(linear, scaler.transform(background))
            explainer.shap_values(scaler.transform(rows))
        found.append(time.perf_counter() - started)
    return statistics.median(found)


def run_backend(url: str, sizes: dict[str, int], runs: int) -> dict:
    import indb

    x, fitted = models(list(sizes))
    db = indb.connect(url)
    result = {}
    try:
        for name, model in fitted.items():
            rows = sizes[name]
            frame = source(rows)
            db.write_table(f"src_{name}", frame, replace=True)
            db.register_model(name, model, sample=x.head(200))
            plain = db.deploy(name, table=f"t_{name}_plain")
            explained = db.deploy(name, table=f"t_{name}_explain", explain=True)
            assert plain.runtime == explained.runtime
            seconds = timed_inserts(db, name, rows, runs)
            reference = shap_seconds(model, x.head(200), frame, runs)
            result[name] = {
                "runtime": plain.runtime,
                "rows": rows,
                "insert_s": round(seconds["plain"], 3),
                "insert_explain_s": round(seconds["explain"], 3),
                "ratio": round(seconds["explain"] / seconds["plain"], 2),
                "shap_s": round(reference, 3),
                "explain_cost_vs_shap": round((seconds["explain"] - seconds["plain"]) / reference, 2),
            }
    finally:
        db.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duckdb-rows", type=int, default=1_000_000)
    parser.add_argument("--pg-rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--models", default="lr,gb")
    parser.add_argument("--gb-duckdb-rows", type=int, help="rows for gb on DuckDB (default: --duckdb-rows)")
    parser.add_argument("--gb-pg-rows", type=int, help="rows for gb on PostgreSQL (default: --pg-rows)")
    parser.add_argument("--backends", default="duckdb,postgresql")
    parser.add_argument("--dsn", help="a PostgreSQL superuser DSN (default: a throwaway cluster)")
    args = parser.parse_args()
    which = args.models.split(",")
    backends = args.backends.split(",")
    duck = {m: args.duckdb_rows for m in which}
    pg = {m: args.pg_rows for m in which}
    if "gb" in which:
        duck["gb"] = args.gb_duckdb_rows or args.duckdb_rows
        pg["gb"] = args.gb_pg_rows or args.pg_rows
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        if "duckdb" in backends:
            figures["duckdb"] = run_backend(f"duckdb://{tmp}/explain.duckdb", duck, args.runs)
        if "postgresql" in backends:
            if args.dsn:
                figures["postgresql"] = run_backend(args.dsn, pg, args.runs)
            else:
                from tests.pg_server import start_cluster

                dsn, stop = start_cluster(f"{tmp}/pg")
                try:
                    figures["postgresql"] = run_backend(dsn, pg, args.runs)
                finally:
                    stop()
    for backend, found in figures.items():
        for name, f in found.items():
            print(
                f"{backend:<10} {name:<3} ({f['runtime']:<4}) {f['rows']:>9,} rows: "
                f"insert {f['insert_s']:7.3f} s, "
                f"with explain=True {f['insert_explain_s']:7.3f} s ({f['ratio']:.2f}x); "
                f"shap on the same rows {f['shap_s']:7.3f} s"
            )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
