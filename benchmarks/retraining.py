"""What ``db.retrain`` costs over a plain scikit-learn script doing the same fit on the same rows.

One DuckDB file: a feature set of ``--customers`` customers, a spine of ``--rows`` labeled
requests, a materialized training set over them, a champion (GradientBoostingClassifier) and a
retraining policy (holdout 20%). Per round, in one process:
  indb      ``db.retrain(model, seed=0)``: rebuild the training set (a new version, cutoff now),
            rebuild the recipe, fit on the rows before the holdout, convert to ONNX with its
            parity check, register v(n+1) with lineage, score candidate, champion and every other
            version on the holdout with onnxruntime, record the run and its metrics
  build     of which: the training-set rebuild (timed around feature_store.training.rebuild)
  sklearn   a plain script: read the latest training set's rows into pandas, sort by time, the
            same 80/20 split, fit the same estimator, metrics of candidate and champion (the
            fitted estimator in memory) on the holdout
Prints the medians and two ratios, indb / sklearn with the build and without it (target: <= 1.2
without), and one ``RESULT {json}`` line. Bounded by ``--budget`` seconds.

    python benchmarks/retraining.py [--rows 50000] [--rounds 5] [--budget 120]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

import indb
from indb.feature_store import training as training_sets
from indb.lifecycle import metrics

FEATURES = ["income", "debt", "age", "tenure"]


def _data(rows: int, customers: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    start = datetime(2025, 1, 1)
    profile = pd.DataFrame(
        {
            "customer_id": np.arange(customers, dtype=np.int64),
            "ts": [start] * customers,
            "income": rng.normal(50, 12, customers).round(2),
            "debt": rng.gamma(2.0, 6.0, customers).round(2),
            "age": rng.integers(18, 80, customers).astype(np.float64),
            "tenure": rng.exponential(5, customers).round(1),
        }
    )
    ids = rng.integers(0, customers, rows).astype(np.int64)
    people = profile.set_index("customer_id").loc[ids]
    score = people.income.to_numpy() - 2 * people.debt.to_numpy() + 0.1 * people.tenure.to_numpy()
    spine = pd.DataFrame(
        {
            "customer_id": ids,
            "event_time": [start + timedelta(days=1, seconds=int(i)) for i in range(rows)],
            "label": np.where(score + rng.normal(0, 8, rows) > 25, "good", "bad"),
        }
    )
    return profile, spine


def _estimator():
    from sklearn.ensemble import GradientBoostingClassifier

    return GradientBoostingClassifier(n_estimators=60, max_depth=3, random_state=0)


def _plain_script(db, model: str, champion) -> tuple[float, float]:
    """What a data scientist's script does for the same result: (seconds, of which the fit)."""
    started = time.perf_counter()
    ts = db.get_training_set(model + "_train")
    rows = ts.df()
    rows = rows[rows.label.notna()].sort_values("event_time", kind="stable")
    cut = len(rows) - math.ceil(len(rows) * 0.2)
    fit, holdout = rows.iloc[:cut], rows.iloc[cut:]
    fitting = time.perf_counter()
    estimator = _estimator().fit(fit[FEATURES], fit.label)
    fit_seconds = time.perf_counter() - fitting
    for fitted in (estimator, champion):
        metrics.compute(
            "classification",
            holdout.label.to_numpy(),
            fitted.predict(holdout[FEATURES]),
            fitted.predict_proba(holdout[FEATURES]),
            tuple(fitted.classes_),
        )
    return time.perf_counter() - started, fit_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--budget", type=float, default=120.0, help="seconds")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="indb-retrain-bench-")
    db = indb.connect(os.path.join(folder, "retrain.duckdb"))
    profile, spine = _data(args.rows, args.customers)
    db.create_entity("customer", keys=["customer_id"])
    db.create_feature_set("profile", "customer", source=profile, event_time="ts", statistics=False)
    db.write_table("spine", spine, replace=True)
    ts = db.training_set(
        "spine", [f"profile:{f}" for f in FEATURES], label="label", materialize=True, name="bench_train"
    )
    rows = ts.df()
    champion = _estimator().fit(rows[FEATURES], rows.label)
    db.register_model("bench", champion, sample=rows[FEATURES], training_set=ts)
    db.create_retraining("bench", training_set="bench_train", holdout="20%", metric="auc")

    builds: list[float] = []
    original = training_sets.rebuild

    def timed_rebuild(*a, **k):
        started = time.perf_counter()
        try:
            return original(*a, **k)
        finally:
            builds.append(time.perf_counter() - started)

    db.retrain("bench", seed=0)  # warm-up: imports, scikit-learn's estimator list, sessions
    training_sets.rebuild = timed_rebuild
    timings: dict[str, list[float]] = {"indb": [], "sklearn": [], "fit": [], "sklearn_fit": []}
    deadline = time.perf_counter() + args.budget
    for _ in range(args.rounds):
        started = time.perf_counter()
        run = db.retrain("bench", seed=0)
        timings["indb"].append(time.perf_counter() - started)
        assert run.status == "succeeded", run.error
        timings["fit"].append(db.training_run(run.id)["fit_seconds"])
        total, fit = _plain_script(db, "bench", champion)
        timings["sklearn"].append(total)
        timings["sklearn_fit"].append(fit)
        if time.perf_counter() > deadline:
            break
    training_sets.rebuild = original
    medians = {way: statistics.median(values) for way, values in timings.items()}
    medians["build"] = statistics.median(builds)
    without = medians["indb"] - medians["build"]
    ratios = {
        "with_build": medians["indb"] / medians["sklearn"],
        "without_build": without / medians["sklearn"],
    }
    rounds = len(timings["indb"])
    print(
        f"indb {indb.__version__}, {args.rows:,} rows, load average {os.getloadavg()[0]:.2f}, {rounds} rounds"
    )
    print(f"{'median seconds':<34} {'s':>8}")
    for label, value in (
        ("indb retrain (all)", medians["indb"]),
        ("  of which training-set build", medians["build"]),
        ("  of which the fit itself", medians["fit"]),
        ("  indb without the build", without),
        ("plain sklearn script", medians["sklearn"]),
        ("  of which the fit itself", medians["sklearn_fit"]),
    ):
        print(f"{label:<34} {value:>8.3f}")
    print(
        f"indb / sklearn: {ratios['with_build']:.2f}x with the build, "
        f"{ratios['without_build']:.2f}x without (target <= 1.2x)"
    )
    result = {
        "benchmark": "retraining_overhead",
        "rows": args.rows,
        "rounds": rounds,
        "seconds": {way: round(s, 4) for way, s in medians.items()},
        "indb_without_build": round(without, 4),
        "ratio": {k: round(v, 3) for k, v in ratios.items()},
    }
    print("RESULT " + json.dumps(result))
    db.close()


if __name__ == "__main__":
    main()
