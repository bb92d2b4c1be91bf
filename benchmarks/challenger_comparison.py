"""The challenger comparison's cost: ``db.challenger_comparison`` on one shadow arm against a
plain script doing the same with pandas + scipy + scikit-learn on the same rows.

DuckDB file in a temporary folder; ``--rows`` labeled requests (default 10000 and 100000),
each with a champion and a shadow challenger prediction (real challenger scoring when
``db.add_challenger`` exists, else the tests' stand-in rows); ``--resamples`` bootstrap
resamples (1000). Timed, median of ``--runs`` (3):

  indb    ``db.challenger_comparison("loans", windows=["all"])``: reading the labeled rows,
          accuracy (exact McNemar), ROC AUC, log loss and F1 (one paired bootstrap).
  script  the same rows read with one SQL query into pandas, ``scipy.stats.binomtest`` on the
          discordant pairs, and a loop over the same number of paired resamples computing
          ``roc_auc_score``, ``log_loss`` and ``f1_score`` (what one would write by hand).

Prints one line per size with the ratio script / indb, then ``RESULT {json}``.

    python benchmarks/challenger_comparison.py [--rows 10000 100000] [--resamples 1000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import indb  # noqa: E402
from tests.conftest import NUMERIC, loan_frame  # noqa: E402

PAIRS = (
    "SELECT c.prediction AS champion, c.probability_repaid AS p1, s.prediction AS challenger, "
    "s.probability_repaid AS p2, g.label FROM loans_predictions c JOIN loans_predictions s "
    "ON s.id = c.id AND s.role = 'challenger' JOIN loans_ground_truth g ON g.id = c.id "
    "WHERE c.role = 'champion' ORDER BY c.id"
)


def setup(path: str, rows: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from tests.test_lifecycle_promotion import REAL_CHALLENGERS, challenger_rows

    train = loan_frame(2_000, seed=3)
    models = {
        1: make_pipeline(StandardScaler(), LogisticRegression(C=0.001)).fit(train[NUMERIC], train.label),
        2: make_pipeline(StandardScaler(), LogisticRegression()).fit(train[NUMERIC], train.label),
    }
    db = indb.connect(f"duckdb:///{path}")
    for version in (1, 2):
        db.register_model("loan_model", models[version], sample=train[NUMERIC].head(100))
    db.deploy("loan_model", table="loans", version=1)
    if REAL_CHALLENGERS:
        db.add_challenger("loans", 2, mode="shadow")
    data = loan_frame(rows, seed=5)
    db.write_table("incoming", data[NUMERIC])
    db.sql(f"INSERT INTO loans ({', '.join(NUMERIC)}) SELECT {', '.join(NUMERIC)} FROM incoming")
    data = data.assign(id=db.sql("SELECT id FROM loans ORDER BY id")["id"].to_numpy())
    db.write_table("truth", data[["id", "label"]])
    db.sql("INSERT INTO loans_ground_truth (id, label) SELECT id, label FROM truth")
    if not REAL_CHALLENGERS:
        challenger_rows(db, (train, models), data, 2, "shadow")
    return db


def script(db, resamples: int) -> None:
    from scipy import stats
    from sklearn.metrics import f1_score, log_loss, roc_auc_score

    pairs = db.sql(PAIRS)
    right1, right2 = pairs.champion == pairs.label, pairs.challenger == pairs.label
    stats.binomtest(int((right2 & ~right1).sum()), int((right1 != right2).sum()))
    y = (pairs.label == "repaid").to_numpy()
    p1, p2 = pairs.p1.to_numpy(), pairs.p2.to_numpy()
    rng = np.random.default_rng(0)
    for _ in range(resamples):
        i = rng.integers(0, len(y), len(y))
        roc_auc_score(y[i], p2[i]) - roc_auc_score(y[i], p1[i])
        log_loss(y[i], p2[i]) - log_loss(y[i], p1[i])
        f1_score(y[i], p2[i] >= 0.5) - f1_score(y[i], p1[i] >= 0.5)


def median_time(run, runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--script-resamples", type=int, default=100, help="the script's loop, scaled up")
    args = parser.parse_args()
    report = {"resamples": args.resamples, "sizes": []}
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as folder:
            db = setup(f"{folder}/bench.duckdb", rows)
            ours = median_time(partial(db.challenger_comparison, "loans", windows=["all"],
                                       resamples=args.resamples), args.runs)  # fmt: skip
            # the hand-written loop is slow: time fewer resamples and scale to the same count
            theirs = median_time(partial(script, db, args.script_resamples), 1)
            theirs *= args.resamples / args.script_resamples
            db.close()
        print(
            f"{rows:>9,} labeled pairs, {args.resamples} resamples: indb {ours:.2f} s, "
            f"pandas+scipy+sklearn loop {theirs:.1f} s (scaled), ratio {theirs / ours:.0f}x",
            flush=True,
        )
        report["sizes"].append({"rows": rows, "indb_s": ours, "script_s": theirs, "ratio": theirs / ours})
    print("RESULT " + json.dumps(report))


if __name__ == "__main__":
    main()
