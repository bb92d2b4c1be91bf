"""What ``db.retrain`` costs over a plain scikit-learn script doing the same fit on the same rows.

One DuckDB file: a feature set of ``--customers`` customers, a spine of ``--rows`` labeled
requests, a materialized training set over them, a champion (GradientBoostingClassifier) and a
retraining policy (holdout 20%). Per round, in one process:
  indb      ``db.retrain(model, seed=0)``: rebuild the training set (a new version, cutoff now),
            rebuild the recipe, fit on the rows before the holdout, convert to ONNX with its
            parity check, register v(n+1) with lineage, score candidate, champion and every other
            version on the holdout with onnxruntime, record the run and its metrics
  of which  the training-set rebuild, registering (ONNX conversion, parity check, catalog
            rows, functions) and scoring versions on the holdout, each timed around its function
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
import indb.registry
from indb.feature_store import training as training_sets
from indb.lifecycle import metrics
from indb.lifecycle import training as lifecycle_training

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


def run_versions(db) -> list:
    return db.sql("SELECT version FROM indb.leaderboard WHERE model = 'bench' AND metric = 'roc_auc'")[
        "version"
    ].tolist()


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

    # time the phases of a run: wrap the functions retrain() calls (looked up at call time)
    phases: dict[str, list[float]] = {"build": [], "register": [], "score": []}
    targets = {
        "build": (training_sets, "rebuild"),
        "register": (indb.registry, "register"),
        "score": (lifecycle_training, "evaluate"),
    }
    originals = {phase: getattr(owner, name) for phase, (owner, name) in targets.items()}

    def timed(phase):
        def wrapper(*a, **k):
            started = time.perf_counter()
            try:
                return originals[phase](*a, **k)
            finally:
                phases[phase].append(time.perf_counter() - started)

        return wrapper

    db.retrain("bench", seed=0)  # warm-up: imports, scikit-learn's estimator list, sessions
    for phase, (owner, name) in targets.items():
        setattr(owner, name, timed(phase))
    timings: dict[str, list[float]] = {"indb": [], "sklearn": [], "fit": [], "sklearn_fit": []}
    deadline = time.perf_counter() + args.budget
    per_round: dict[str, list[float]] = {phase: [] for phase in phases}
    for _ in range(args.rounds):
        marks = {phase: len(values) for phase, values in phases.items()}
        started = time.perf_counter()
        run = db.retrain("bench", seed=0)
        timings["indb"].append(time.perf_counter() - started)
        assert run.status == "succeeded", run.error
        for phase, values in phases.items():
            per_round[phase].append(sum(values[marks[phase] :]))
        timings["fit"].append(db.training_run(run.id)["fit_seconds"])
        total, fit = _plain_script(db, "bench", champion)
        timings["sklearn"].append(total)
        timings["sklearn_fit"].append(fit)
        if time.perf_counter() > deadline:
            break
    for phase, (owner, name) in targets.items():
        setattr(owner, name, originals[phase])
    medians = {way: statistics.median(values) for way, values in timings.items()}
    medians.update({phase: statistics.median(values) for phase, values in per_round.items()})
    without = medians["indb"] - medians["build"]
    ratios = {
        "with_build": medians["indb"] / medians["sklearn"],
        "without_build": without / medians["sklearn"],
    }
    rounds = len(timings["indb"])
    print(
        f"indb {indb.__version__}, {args.rows:,} rows, load average {os.getloadavg()[0]:.2f}, {rounds} rounds"
    )
    print(f"{'median seconds':<40} {'s':>8}")
    for label, value in (
        ("indb retrain (all)", medians["indb"]),
        ("  of which training-set build", medians["build"]),
        ("  of which the fit itself", medians["fit"]),
        ("  of which registering (ONNX, checks)", medians["register"]),
        ("  of which scoring versions on holdout", medians["score"]),
        ("  indb without the build", without),
        ("plain sklearn script", medians["sklearn"]),
        ("  of which the fit itself", medians["sklearn_fit"]),
    ):
        print(f"{label:<40} {value:>8.3f}")
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
        "versions_scored_last_round": len(run_versions(db)),
        "ratio": {k: round(v, 3) for k, v in ratios.items()},
    }
    print("RESULT " + json.dumps(result))
    db.close()


if __name__ == "__main__":
    main()
