"""What a compiled tree ensemble costs through a DuckDB deployment's trigger.

GradientBoostingClassifier, 300 trees of depth 5 (the issue-17 "gb300d5"), fitted on 5k rows x
8 features, deployed with ``runtime="sql"`` on a fresh DuckDB file: ``deploy`` (compile,
verification, macros, trigger), a one-row INSERT (median of ``--inserts``; DuckDB plans the
trigger body at every statement, so this is mostly planning), and a ``--rows`` bulk
``INSERT ... SELECT``. Every prediction is checked against scikit-learn's ``predict_proba``.

    python benchmarks/compiled_trigger_duckdb.py [--trees 300] [--depth 5] [--rows 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import numpy as np
import pandas as pd
from peak_memory import peak_rss_mb
from sklearn.ensemble import GradientBoostingClassifier

import indb

COLUMNS = [f"f{i}" for i in range(8)]
ONE_ROW = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", type=int, default=300)
    parser.add_argument("--depth", type=int, default=5)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--inserts", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    fit = pd.DataFrame(rng.normal(size=(5000, 8)), columns=COLUMNS)
    labels = (fit.f0 + fit.f1 * fit.f2 + rng.normal(size=5000) > 0).astype(int)
    model = GradientBoostingClassifier(n_estimators=args.trees, max_depth=args.depth, random_state=0)
    model.fit(fit, labels)
    names = ", ".join(COLUMNS)
    with tempfile.TemporaryDirectory() as folder, indb.connect(f"duckdb://{folder}/bench.duckdb") as db:
        db.register_model("gb", model, sample=fit)
        start = time.perf_counter()
        db.deploy("gb", table="requests", runtime="sql")
        deploy = time.perf_counter() - start
        one_row = []
        for _ in range(args.inserts):
            start = time.perf_counter()
            db.sql(f"INSERT INTO requests ({names}) VALUES ({', '.join(map(str, ONE_ROW))})")
            one_row.append(time.perf_counter() - start)
        source = pd.DataFrame(rng.normal(size=(args.rows, 8)), columns=COLUMNS)
        db.write_table("src", source)
        start = time.perf_counter()
        db.sql(f"INSERT INTO requests ({names}) SELECT {names} FROM src")
        bulk = time.perf_counter() - start
        got = db.sql(
            "SELECT p.probability_1 FROM requests JOIN requests_predictions AS p USING (id) ORDER BY id"
        ).probability_1.to_numpy()
    rows = pd.concat([pd.DataFrame([ONE_ROW] * args.inserts, columns=COLUMNS), source])
    difference = float(np.abs(got - model.predict_proba(rows)[:, 1]).max())
    result = {
        "deploy_s": round(deploy, 3),
        "one_row_insert_s": round(statistics.median(one_row), 3),
        "bulk_insert_s": round(bulk, 3),
        "rows": args.rows,
        "max_abs_difference_vs_sklearn": difference,
        "load_average": os.getloadavg()[0],
        "peak_rss_mb": peak_rss_mb(),
    }
    print(f"deploy {deploy:.2f} s, one-row insert {result['one_row_insert_s']:.2f} s, "
          f"{args.rows:,}-row insert {bulk:.2f} s, max |dp| vs sklearn {difference:.2g}")  # fmt: skip
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
