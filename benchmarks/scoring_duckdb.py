"""Scoring speed on DuckDB: indb's trigger and SQL function against onnxruntime and pandas.

For each model (LogisticRegression; GradientBoostingClassifier, 100 trees of default
depth), fitted on 20k rows and registered with indb, over a source table ``src`` of
``--rows`` random rows x 8 DOUBLE features, in one process:

  (a) onnx      raw onnxruntime ``session.run`` on in-memory numpy columns ([n, 1] each,
                in the model's input dtype, prepared untimed): the floor
  (b) plain     ``INSERT INTO plain (f0..f7) SELECT f0..f7 FROM src``; ``plain`` has the
                deployed request table's exact DDL (id sequence, created_at default), no trigger
  (c) deployed  the same insert into a deployed table: its trigger scores every row into
                ``<table>_predictions`` (checked afterwards: exactly one prediction per row)
  (f) db.insert ``db.insert(<table>, "SELECT f0..f7 FROM src")`` into the deployed table: the
                rows inserted with the triggers dropped in db.insert's transaction (made again
                before it commits), then the trigger's own statement over them (checked:
                exactly one prediction per row); (g) the same from a DataFrame of src held in
                Python (made untimed)
  (d) function  ``CREATE TEMP TABLE .. AS SELECT predict_proba_<model>(f0..f7) FROM src``
  (e) pandas    without indb: ``.df()`` of src, sklearn ``predict_proba``, register the
                result and ``INSERT INTO .. SELECT`` it into a DuckDB table

Every run starts from an empty target (TRUNCATE / DROP outside the timing); each figure
is the median of ``--runs`` runs. Targets: c/(a+b), f/(a+b) and g/(a+b) <= 1.5; e/c and e/d >= 2 for the
linear model, >= 1 for the tree model. Prints a table per model, PASS/MISS per target,
and one ``RESULT {json}`` line.

    python benchmarks/scoring_duckdb.py [--rows 1000000] [--runs 3] [--models lr,gb]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import time
import tracemalloc

import duckdb
import numpy as np
import onnxruntime as ort
import pandas as pd
import pyarrow as pa
import sklearn
from peak_memory import peak_rss_mb
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

import indb

RUNTIME = {"name": "onnx"}  # --runtime: which indb runtime the deployments use

FEATURES = [f"f{i}" for i in range(8)]
COLUMNS = ", ".join(FEATURES)
FIT_ROWS = 20_000
MODELS = {
    "lr": lambda: LogisticRegression(max_iter=1000),
    "gb": lambda: GradientBoostingClassifier(n_estimators=100, random_state=0),
}
PANDAS_TARGET = {"lr": 2.0, "gb": 1.0}  # e/c and e/d at least this
OVERHEAD_TARGET = 1.5  # c/(a+b) at most this
NUMPY_DTYPES = {"double": np.float64, "float": np.float32, "int64": np.int64}
LABELS = {
    "onnx": "(a) onnxruntime on numpy (floor)",
    "plain": "(b) INSERT .. SELECT, no trigger",
    "deployed": "(c) INSERT .. SELECT, deployed",
    "insert": "(f) db.insert(query), deployed",
    "insert_frame": "(g) db.insert(DataFrame), deployed",
    "function": "(d) predict_proba_*() -> TEMP TABLE",
    "pandas": "(e) .df() + sklearn + write back",
}


def median_seconds(run, reset, runs: int) -> float:
    times = []
    for _ in range(runs):
        reset()
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _reset_peak() -> float | None:
    """Reset this process's peak resident memory (Linux: 5 > /proc/self/clear_refs) and return
    the resident memory now, in MB; None where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        for line in open("/proc/self/status").read().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def fetch(con, sql: str) -> list[tuple]:
    """Run and drain: DuckDB 2.0 refuses some calls while a result is still open."""
    return con.execute(sql).fetchall()


def make_data(rows: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(42)
    x = rng.standard_normal((max(rows, FIT_ROWS), len(FEATURES)))
    logit = x @ np.linspace(-1, 1, len(FEATURES)) + np.sin(2 * x[:, 0]) * x[:, 1]
    y = (logit + 0.5 * rng.standard_normal(len(x)) > 0).astype(np.int64)
    return x, y


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "loadavg_1m_at_start": round(os.getloadavg()[0], 2),  # a busy machine skews every figure
        "platform": platform.platform(),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "onnxruntime": ort.__version__,
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "pyarrow": pa.__version__,
        "indb": indb.__version__,
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
    }


def bench_model(db, name: str, model, x: np.ndarray, runs: int) -> dict:
    con = db.backend.con
    rows = len(x)
    run = lambda sql: lambda: fetch(con, sql)  # noqa: E731

    # (a) the floor: onnxruntime alone, inputs already in the model's shape and dtype
    mv = db.get_model(name)
    session = ort.InferenceSession(mv.onnx, providers=["CPUExecutionProvider"])
    feeds = {
        spec.onnx_name: np.ascontiguousarray(x[:, [j]], dtype=NUMPY_DTYPES[spec.onnx_type])
        for j, spec in enumerate(mv.signature.inputs)
    }
    session.run(None, {k: v[:1000] for k, v in feeds.items()})  # warm-up, untimed
    onnx = median_seconds(lambda: session.run(None, feeds), lambda: None, runs)

    # (b) the same table DDL deploy would create, minus the trigger
    plain = f"plain_{name}"
    for text in db.deploy(name, table=plain, dry_run=True, runtime=RUNTIME["name"]).statements:
        if re.match(rf'CREATE (SEQUENCE|TABLE) .*"{plain}(_id_seq)?"(\s|$)', text):
            fetch(con, text)
    insert = f"INSERT INTO {{}} ({COLUMNS}) SELECT {COLUMNS} FROM src"
    plain_s = median_seconds(run(insert.format(plain)), run(f"TRUNCATE {plain}"), runs)

    # (c) the deployed table: the insert fires the scoring trigger
    deployment = db.deploy(name, table=f"requests_{name}", runtime=RUNTIME["name"])
    requests, predictions = deployment.table, deployment.predictions_table
    start_mb = _reset_peak()
    deployed = median_seconds(
        lambda: db.sql(insert.format(requests)),
        lambda: (fetch(con, f"TRUNCATE {requests}"), fetch(con, f"TRUNCATE {predictions}")),
        runs,
    )
    # what the scored inserts added to the process's resident memory (DuckDB's buffers included:
    # it runs in this process), against one Python copy of the rows
    deployed_peak = None if start_mb is None else round(peak_rss_mb() - start_mb, 1)
    # ... and what Python itself held at most during one more (untimed) scored insert: numpy
    # and Python objects (tracemalloc) plus pyarrow's memory pool
    fetch(con, f"TRUNCATE {requests}")
    fetch(con, f"TRUNCATE {predictions}")
    arrow_before = pa.total_allocated_bytes()
    tracemalloc.start()
    db.sql(insert.format(requests))
    python_peak = tracemalloc.get_traced_memory()[1] + max(0, pa.total_allocated_bytes() - arrow_before)
    tracemalloc.stop()
    (counts,) = fetch(
        con,
        f"SELECT count(*), count(DISTINCT p.id), count(r.id) "
        f"FROM {predictions} AS p LEFT JOIN {requests} AS r USING (id)",
    )
    ((requests_count,),) = fetch(con, f"SELECT count(*) FROM {requests}")
    one_each = requests_count == rows and all(c == rows for c in counts)
    if not one_each:
        raise SystemExit(f"{name}: {requests_count} requests but predictions (rows, ids, joined) = {counts}")

    # (f) db.insert from a query: the rows never reach Python; (g) from a DataFrame of them
    select = f"SELECT {COLUMNS} FROM src"
    truncate = lambda: (fetch(con, f"TRUNCATE {requests}"), fetch(con, f"TRUNCATE {predictions}"))  # noqa: E731
    inserted = median_seconds(lambda: db.insert(requests, select), truncate, runs)
    source_frame = con.sql(select).df()
    inserted_frame = median_seconds(lambda: db.insert(requests, source_frame), truncate, runs)
    insert_peaks = {}
    for what, data in (("query", select), ("frame", source_frame)):
        truncate()
        arrow_before = pa.total_allocated_bytes()
        tracemalloc.start()
        db.insert(requests, data)
        peak = tracemalloc.get_traced_memory()[1] + max(0, pa.total_allocated_bytes() - arrow_before)
        tracemalloc.stop()
        insert_peaks[what] = round(peak / 2**20, 2)
        (counts,) = fetch(
            con,
            f"SELECT count(*), count(DISTINCT p.id), count(r.id) "
            f"FROM {predictions} AS p LEFT JOIN {requests} AS r USING (id)",
        )
        ((requests_count,),) = fetch(con, f"SELECT count(*) FROM {requests}")
        if requests_count != rows or any(c != rows for c in counts):
            raise SystemExit(f"{name} db.insert: {requests_count} requests but predictions = {counts}")
    source_frame = None  # one Python copy of the rows at a time

    # (d) the SQL function over the source, materialized into a temp table
    function = median_seconds(
        lambda: db.sql(
            f"CREATE TEMP TABLE proba_{name} AS "
            f"SELECT predict_proba_{name}({COLUMNS}) AS probabilities FROM src"
        ),
        run(f"DROP TABLE IF EXISTS proba_{name}"),
        runs,
    )

    # (e) without indb: to pandas, sklearn, and back
    classes = list(model.classes_)
    written = f"pandas_{name}"
    fetch(
        con,
        f"CREATE TABLE {written} (prediction BIGINT"
        + "".join(f", probability_{c} DOUBLE" for c in classes)
        + ")",
    )

    def with_pandas():
        frame = con.sql(f"SELECT {COLUMNS} FROM src").df()
        proba = model.predict_proba(frame)
        out = pd.DataFrame({"prediction": model.classes_[proba.argmax(axis=1)]})
        for i, c in enumerate(classes):
            out[f"probability_{c}"] = proba[:, i]
        con.register("scored_frame", out)
        fetch(con, f"INSERT INTO {written} SELECT * FROM scored_frame")
        con.unregister("scored_frame")

    pandas_s = median_seconds(with_pandas, run(f"TRUNCATE {written}"), runs)
    return {
        "onnx": onnx,
        "plain": plain_s,
        "deployed": deployed,
        "insert": inserted,
        "insert_frame": inserted_frame,
        "function": function,
        "pandas": pandas_s,
        "predictions_one_per_row": one_each,
        "deployed_peak_above_start_mb": deployed_peak,
        "deployed_python_peak_mb": round(python_peak / 2**20, 2),
        "insert_python_peak_mb": insert_peaks,
    }


def ratios(name: str, t: dict) -> dict:
    need = PANDAS_TARGET[name]
    found = {
        "c/(a+b)": (t["deployed"] / (t["onnx"] + t["plain"]), "<=", OVERHEAD_TARGET),
        "f/(a+b)": (t["insert"] / (t["onnx"] + t["plain"]), "<=", OVERHEAD_TARGET),
        "g/(a+b)": (t["insert_frame"] / (t["onnx"] + t["plain"]), "<=", OVERHEAD_TARGET),
        "e/c": (t["pandas"] / t["deployed"], ">=", need),
        "e/d": (t["pandas"] / t["function"], ">=", need),
    }
    return {
        key: {
            "ratio": round(value, 3),
            "target": f"{op} {goal}",
            "pass": value <= goal if op == "<=" else value >= goal,
        }
        for key, (value, op, goal) in found.items()
    }


def report(name: str, rows: int, t: dict, r: dict, info: float) -> None:
    print(f"== {name}: {rows:,} rows x {len(FEATURES)} DOUBLE, median seconds ==")
    for key, label in LABELS.items():
        print(f"  {label:<38} {t[key]:8.3f} s  {rows / t[key] / 1e6:7.2f} M rows/s")
    print(f"  predictions table: one row per inserted row: {t['predictions_one_per_row']}")
    print(
        f"  (c) added to peak resident memory: {t['deployed_peak_above_start_mb']} MB (DuckDB's included); "
        f"held by Python at most: {t['deployed_python_peak_mb']} MB"
    )
    print(
        "  (f)/(g) held by Python at most during db.insert (query / DataFrame, the frame itself "
        f"not counted): {t['insert_python_peak_mb']['query']} / {t['insert_python_peak_mb']['frame']} MB"
    )
    for key, v in r.items():
        print(f"  {key:<8} {v['ratio']:7.2f}  (target {v['target']})  {'PASS' if v['pass'] else 'MISS'}")
    print(f"  (b+e)/c  {info:7.2f}  (no target: store the requests, then score them with pandas)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--runtime", default="onnx", choices=["onnx", "sql", "auto"], help="indb runtime to deploy with"
    )
    parser.add_argument("--models", default="lr,gb")
    args = parser.parse_args()
    RUNTIME["name"] = args.runtime
    print(f"indb runtime: {args.runtime}")
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = set(names) - set(MODELS)
    if unknown:
        parser.error(f"unknown model(s) {sorted(unknown)}; choose from {', '.join(MODELS)}")

    facts = machine()
    db = indb.connect("duckdb:///:memory:")
    con = db.backend.con
    ((facts["duckdb_threads"],),) = fetch(con, "SELECT current_setting('threads')")
    print("machine: " + ", ".join(f"{k}={v}" for k, v in facts.items()))

    x, y = make_data(args.rows)
    fit_frame = pd.DataFrame(x[:FIT_ROWS], columns=FEATURES)
    x = x[: args.rows]
    src = pd.DataFrame(x, columns=FEATURES)
    con.register("src_frame", src)
    fetch(con, "CREATE TABLE src AS SELECT * FROM src_frame")
    con.unregister("src_frame")
    del src
    print(f"src: {args.rows:,} rows; models fitted on {FIT_ROWS:,} rows; runs per figure: {args.runs}")
    print("(d) is materialized with CREATE TEMP TABLE ... AS SELECT predict_proba_<model>(...)")

    result = {"rows": args.rows, "runs": args.runs, "runtime": args.runtime, "machine": facts, "models": {}}
    for name in names:
        model = MODELS[name]().fit(fit_frame, y[:FIT_ROWS])
        db.register_model(name, model, sample=fit_frame)
        print(f"\n{name}: {type(model).__name__}, {getattr(model, 'n_estimators', 1)} estimator(s)")
        seconds = bench_model(db, name, model, x, args.runs)
        found = ratios(name, seconds)
        store_then_pandas = (seconds["plain"] + seconds["pandas"]) / seconds["deployed"]
        report(name, args.rows, seconds, found, store_then_pandas)
        result["models"][name] = {
            "seconds": {k: round(v, 4) for k, v in seconds.items() if k in LABELS},
            "predictions_one_per_row": seconds["predictions_one_per_row"],
            "deployed_peak_above_start_mb": seconds["deployed_peak_above_start_mb"],
            "deployed_python_peak_mb": seconds["deployed_python_peak_mb"],
            "insert_python_peak_mb": seconds["insert_python_peak_mb"],
            "one_python_copy_of_the_rows_mb": round(x.nbytes / 2**20, 1),
            "ratios": found,
            "(b+e)/c": round(store_then_pandas, 3),
        }
    # One Python copy of the rows (src's frame, dropped once stored) and sklearn's for (e).
    result["peak_rss_mb"] = peak_rss_mb()
    print(f"peak memory of this process (VmHWM): {result['peak_rss_mb']} MB")
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
