"""Drift benchmark: indb's monitor (exact and binned) against Evidently's DataDriftPreset.

    python benchmarks/drift.py                 # 1M vs 1M rows x (10 numeric + 1 categorical),
                                               # then 10M vs 10M rows of one column, binned
    python benchmarks/drift.py --rows 200000 --big-rows 0     # smaller, skip the 10M part
    python benchmarks/drift.py --big-rows 0 --postgres         # also on PostgreSQL (a throwaway
                                               # cluster, tests/pg_server.py; or --dsn URL)

The rows sit in a deployment on DuckDB (the monitor reads its scored view); loading them is not
timed. Timed: creating the monitor (reference statistics, once) and one run over the current
window. With ``--postgres`` the same rows and monitors run on PostgreSQL too, in a database the
script creates and drops (on a throwaway cluster unless ``--dsn`` names a server), and the JSON
line holds PostgreSQL's times over DuckDB's from the same invocation. Evidently (``pip install
-e ".[bench]"``) gets the same two DataFrames; without it the script says "not installed".
Evidently 0.7 does not import against pandas 3, so ``--evidently-python PATH`` runs its part
with another interpreter (a venv with evidently and pandas < 3; this file then runs there
without indb). Drift decisions are compared statistic by statistic with Evidently's defaults at
this size: normalized Wasserstein >= 0.1 for numeric columns, Jensen-Shannon >= 0.1 for the
categorical one. Prints a JSON line at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pandas as pd
from peak_memory import backend_peak_rss_mb, peak_rss_mb

REPO = Path(__file__).resolve().parents[1]
NUMERIC = [f"x{i}" for i in range(10)]
SHIFTS = {"x0": 0.5, "x1": 0.2, "x2": 0.05, "x3": 0.12}  # in standard deviations


def frames(rows: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    categories = np.array(["a", "b", "c", "d", "e"])

    def make(shifted: bool) -> pd.DataFrame:
        data = {}
        for i, column in enumerate(NUMERIC):
            base = rng.normal(0, 1, rows) if i % 2 == 0 else rng.exponential(1.0, rows)
            data[column] = base + (SHIFTS.get(column, 0.0) if shifted else 0.0)
        p = [0.3, 0.25, 0.2, 0.15, 0.1] if not shifted else [0.15, 0.25, 0.2, 0.15, 0.25]
        data["cat"] = categories[rng.choice(5, rows, p=p)]
        return pd.DataFrame(data)

    return make(False), make(True)


def deploy(db, columns: list[str], sample: pd.DataFrame) -> None:
    from sklearn.linear_model import LinearRegression

    numeric = [c for c in columns if c != "cat"]
    model = LinearRegression().fit(sample[numeric], sample[numeric].sum(axis=1))
    db.register_model("bench", model, sample=sample[numeric].head(200))
    # The request table also holds a column the model does not read; the monitor watches it too.
    definitions = ", ".join(f"{c} VARCHAR" if c == "cat" else f"{c} DOUBLE PRECISION" for c in columns)
    db.sql(f"CREATE TABLE requests ({definitions})")
    db.deploy("bench", table="requests", runtime="sql")


def load(db, frame: pd.DataFrame, day: str) -> None:
    db.write_table("incoming", frame, replace=True)
    columns = ", ".join(frame.columns)
    ((top,),) = db.sql("SELECT coalesce(max(id), 0) FROM requests").itertuples(index=False)
    db.sql(f"INSERT INTO requests ({columns}) SELECT {columns} FROM incoming")
    db.sql(
        "UPDATE requests_predictions SET scored_at = CAST($day AS TIMESTAMP) WHERE id > $top",
        {"day": day, "top": int(top)},
    )
    db.sql("DROP TABLE incoming")


RUNS = {"n": 1}  # --runs: runs of each monitor over the same window (their median is reported)


def indb_drift(db, name: str, features: list[str], mode: str) -> dict:
    start = time.perf_counter()
    db.create_monitor(name, "requests", reference=("2024-01-01", "2024-01-02"), features=features, mode=mode)
    created = time.perf_counter() - start
    times = []
    for _ in range(RUNS["n"]):  # each run replaces the window's results
        start = time.perf_counter()
        db.run_monitor(name, since=datetime(2024, 1, 2))  # the current window only
        times.append(time.perf_counter() - start)
    ran = statistics.median(times)
    results = db.monitor_results(name)
    results = results[results.window_start == pd.Timestamp("2024-01-02")]
    values = {(r.feature, r.metric): r.value for r in results.itertuples()}
    return {"create_s": created, "run_s": ran, "runs_s": [round(t, 3) for t in times], "values": values}


def evidently_drift(reference: pd.DataFrame, current: pd.DataFrame) -> dict | None:
    try:
        from evidently import Report
        from evidently.presets import DataDriftPreset
    except ModuleNotFoundError:
        return None
    except ImportError as e:  # installed but broken, e.g. against this pandas
        return {"error": f"{type(e).__name__}: {e}"}
    start = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
    elapsed = time.perf_counter() - start
    decisions, scores = {}, {}
    for metric in snapshot.dict()["metrics"]:
        name = metric.get("metric_name", "")
        column = (metric.get("config") or {}).get("column")
        if name.startswith("ValueDrift") and column:
            value = metric["value"]
            threshold = (metric.get("config") or {}).get("threshold")
            scores[column] = value
            decisions[column] = value >= threshold if threshold is not None else None
    return {"seconds": elapsed, "scores": scores, "decisions": decisions}


def evidently_elsewhere(python: str, rows: int) -> dict:
    """Evidently's part in another interpreter, over the same generated frames."""
    done = subprocess.run(
        [python, __file__, "--evidently-child", str(rows)], capture_output=True, text=True, timeout=3600
    )
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def indb_modes(db, reference: pd.DataFrame, current: pd.DataFrame, label: str) -> dict:
    """The deployment, both days' rows, then exact and binned monitors: create and one run each."""
    deploy(db, NUMERIC + ["cat"], reference)
    load(db, reference, "2024-01-01")
    load(db, current, "2024-01-02")
    out: dict = {}
    for mode in ("exact", "binned"):
        result = indb_drift(db, f"wide_{mode}", NUMERIC + ["cat"], mode)
        out[mode] = {
            "create_s": round(result["create_s"], 3),
            "run_s": round(result["run_s"], 3),
            "runs_s": result["runs_s"],
        }
        out[f"{mode}_values"] = result["values"]
        created, ran = result["create_s"], result["run_s"]
        print(f"indb {label:<10} {mode:<7} create (reference, once) {created:7.2f} s   run {ran:6.2f} s")
    return out


@contextlib.contextmanager
def postgres_database(dsn: str | None):
    """A database of its own on ``dsn``'s server, or on a throwaway cluster; dropped after."""
    import psycopg

    with contextlib.ExitStack() as stack:
        if dsn is None:
            if str(REPO) not in sys.path:  # tests.pg_server lives in the repo, not in the package
                sys.path.insert(0, str(REPO))
            from tests.pg_server import start_cluster

            dsn, stop = start_cluster(stack.enter_context(tempfile.TemporaryDirectory(prefix="indb-drift-")))
            stack.callback(stop)
        name = f"indb_drift_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))
        finally:
            with psycopg.connect(dsn, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def on_postgres(dsn: str | None, reference: pd.DataFrame, current: pd.DataFrame) -> dict:
    import indb

    with postgres_database(dsn) as url:
        db = indb.connect(url)
        found = indb_modes(db, reference, current, "postgres")
        found["backend_peak_rss_mb"] = backend_peak_rss_mb(db.backend.conn)  # the server process
        found["server"] = db.sql("SHOW server_version").iloc[0, 0]
        db.close()
    return found


def wide(
    rows: int, evidently_python: str | None = None, postgres: bool = False, dsn: str | None = None
) -> dict:
    import indb

    reference, current = frames(rows)
    out: dict = {"rows": rows}
    with tempfile.TemporaryDirectory() as folder:
        db = indb.connect(f"duckdb://{Path(folder) / 'bench.duckdb'}")
        out |= indb_modes(db, reference, current, "duckdb")
        db.close()
    if postgres:
        found = on_postgres(dsn, reference, current)
        for mode in ("exact", "binned"):
            pg = found.pop(f"{mode}_values")
            ours = out[f"{mode}_values"]
            found[f"{mode}_max_rel_diff_to_duckdb"] = max(
                abs(pg[k] - v) / max(abs(v), 1e-300) for k, v in ours.items() if k in pg and v == v and v
            )
            found[f"{mode}_run_over_duckdb"] = round(found[mode]["run_s"] / out[mode]["run_s"], 2)
            print(
                f"PostgreSQL / DuckDB, {mode} run: {found[f'{mode}_run_over_duckdb']}x "
                f"(largest relative difference of the values {found[f'{mode}_max_rel_diff_to_duckdb']:.2g})"
            )
        out["postgres"] = found
    exact = out.pop("exact_values")
    binned = out.pop("binned_values")
    ours = {c: exact[(c, "wasserstein")] >= 0.1 for c in NUMERIC} | {"cat": exact[("cat", "js")] >= 0.1}
    out["indb_drifted"] = sorted(c for c, d in ours.items() if d)
    out["binned_max_abs_diff"] = {
        m: max(abs(binned[(c, m)] - exact[(c, m)]) for c in NUMERIC)
        for m in ("ks_d", "wasserstein", "psi", "js")
    }
    out["binned_max_bound"] = {
        m: max(binned[(c, f"{m}_bound")] for c in NUMERIC) for m in ("ks_d", "wasserstein")
    }
    evidently = evidently_drift(reference, current) if evidently_python is None else None
    if evidently_python is not None:
        evidently = evidently_elsewhere(evidently_python, rows)
    if evidently is None:
        print("Evidently: not installed (pip install -e '.[bench]')")
        out["evidently"] = "not installed"
        return out
    if "error" in evidently:
        print(f"Evidently: installed but cannot run here: {evidently['error']}")
        out["evidently"] = evidently["error"]
        return out
    theirs = evidently["decisions"]
    out["evidently_s"] = round(evidently["seconds"], 2)
    out["evidently_drifted"] = sorted(c for c, d in theirs.items() if d)
    out["same_decisions"] = all(theirs.get(c) == ours[c] for c in ours)
    out["max_score_diff"] = max(
        abs(evidently["scores"][c] - (exact[(c, "wasserstein")] if c != "cat" else exact[(c, "js")]))
        for c in ours
    )
    for mode in ("exact", "binned"):
        out[f"speedup_{mode}"] = round(evidently["seconds"] / out[mode]["run_s"], 1)
    print(
        f"Evidently DataDriftPreset {evidently['seconds']:.2f} s; speed-up exact {out['speedup_exact']}x, "
        f"binned {out['speedup_binned']}x; same decisions: {out['same_decisions']} "
        f"(indb {out['indb_drifted']}, Evidently {out['evidently_drifted']}); max score difference "
        f"{out['max_score_diff']:.2g}"
    )
    return out


def tall(rows: int) -> dict:
    import indb

    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as folder:
        db = indb.connect(f"duckdb://{Path(folder) / 'tall.duckdb'}")
        sample = pd.DataFrame({"x0": rng.normal(0, 1, 1000)})
        deploy(db, ["x0"], sample)
        for day, shift in (("2024-01-01", 0.0), ("2024-01-02", 0.1)):
            db.sql(
                "INSERT INTO requests (x0) SELECT sqrt(-2 * ln(random())) * cos(2 * pi() * random()) + $s "
                "FROM range($n)",
                {"s": shift, "n": rows},
            )
            db.sql(
                "UPDATE requests_predictions SET scored_at = CAST($d AS TIMESTAMP) WHERE scored_at > $d",
                {"d": day},
            )
        result = indb_drift(db, "tall", ["x0"], "binned")
        db.close()
    print(
        f"indb binned, {rows:,} vs {rows:,} rows, one column: run {result['run_s']:.2f} s "
        f"(create {result['create_s']:.2f} s)"
    )
    return {"rows": rows, "create_s": round(result["create_s"], 3), "run_s": round(result["run_s"], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evidently-python", help="run Evidently with this interpreter")
    parser.add_argument("--evidently-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=1_000_000, help="reference and current rows (wide part)")
    parser.add_argument("--big-rows", type=int, default=10_000_000, help="rows per side, one column; 0 skips")
    parser.add_argument("--runs", type=int, default=1, help="runs of each monitor; the median is reported")
    parser.add_argument("--postgres", action="store_true", help="run the wide part on PostgreSQL too")
    parser.add_argument("--dsn", default=os.environ.get("INDB_BENCH_PG_DSN"), help="PostgreSQL server to use")
    args = parser.parse_args()
    if args.evidently_child:  # inside the other interpreter: Evidently only, one JSON line
        found = evidently_drift(*frames(args.evidently_child))
        decisions = {c: bool(d) for c, d in found["decisions"].items()}
        scores = {c: float(v) for c, v in found["scores"].items()}
        print(json.dumps({"seconds": found["seconds"], "decisions": decisions, "scores": scores}))
        return
    import indb

    RUNS["n"] = max(1, args.runs)
    report = {
        "benchmark": "drift",
        "indb": indb.__version__,
        "wide": wide(args.rows, args.evidently_python, args.postgres or bool(args.dsn), args.dsn),
    }
    if args.big_rows:
        report["tall"] = tall(args.big_rows)
    report["peak_rss_mb"] = peak_rss_mb()  # this process: DuckDB runs in it (Evidently's child not counted)
    print(json.dumps(report, default=str))


if __name__ == "__main__":
    main()
