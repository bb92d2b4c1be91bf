"""What db.insert pays to drop a DuckDB table's triggers and make them again, by statement size.

db.insert on DuckDB drops the table's triggers in its own transaction, inserts in parallel, runs
the triggers' statements and makes the triggers again before it commits
(``DuckDBBackend.insert_rows``). Making a trigger parses its statement: cheap for a linear model,
not for a big compiled forest. For LogisticRegression, GradientBoosting 100 trees x depth 3 and
300 trees x depth 5 (the issue-17 "gb300d5"), all deployed with ``runtime="sql"`` on 8
features, in one process:

  remake    DROP + CREATE of every trigger of the table, in a transaction rolled back after
  drop      ``db.insert(table, query)`` of ``--rows`` rows (forests: ``--forest-rows``) with the
            triggers dropped
  skip      the same with them skipped (``drop_triggers_up_to = 0``: the path for big statements)

Each figure is the median of ``--runs``; every insert is checked for one prediction per row.

    python benchmarks/duckdb_trigger_remake.py [--rows 1000000,245760] [--forest-rows 245760] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

import numpy as np
import pandas as pd
from peak_memory import peak_rss_mb
from scoring_duckdb import median_seconds
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

import indb

COLUMNS = [f"f{i}" for i in range(8)]
MODELS = {
    "lr": lambda: LogisticRegression(max_iter=1000),
    "gb100d3": lambda: GradientBoostingClassifier(n_estimators=100, random_state=0),
    "gb300d5": lambda: GradientBoostingClassifier(n_estimators=300, max_depth=5, random_state=0),
}


def remake(db, table: str) -> None:
    """The drop and the making again that db.insert does, rolled back."""
    backend = db.backend
    plan = backend._insert_plan(table)
    owner = backend.quote(plan[0].schema, table)
    with backend.transaction():
        for trigger in plan:
            backend.execute(backend.drop_trigger_sql(trigger.name, owner))
        for trigger in plan:
            backend.execute(
                backend.render(
                    "triggers",
                    "create_statement_trigger",
                    trigger=backend.quote(trigger.name),
                    table=owner,
                    body=indb.identifiers.Quoted(trigger.statement),
                )
            )
        backend.con.rollback()
        backend.con.begin()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000000,245760")
    parser.add_argument("--forest-rows", default="245760")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    rng = np.random.default_rng(0)
    fit = pd.DataFrame(rng.normal(size=(5000, 8)), columns=COLUMNS)
    labels = (fit.f0 + fit.f1 * fit.f2 + rng.normal(size=5000) > 0).astype(int)
    sizes = [int(n) for n in args.rows.split(",")]
    forest_sizes = [int(n) for n in args.forest_rows.split(",")]
    result = {"load_average_at_start": load, "runs": args.runs, "models": {}}
    with tempfile.TemporaryDirectory() as folder, indb.connect(f"duckdb://{folder}/bench.duckdb") as db:
        db.sql(
            f"CREATE TABLE src AS SELECT {', '.join(f'random() AS {c}' for c in COLUMNS)} "
            f"FROM range({max(sizes + forest_sizes)})"
        )
        for name, make in MODELS.items():
            db.register_model(name, make().fit(fit, labels), sample=fit)
            db.deploy(name, table=name, runtime="sql")
            ((characters,),) = db.backend.rows(
                "SELECT sum(length(statement)) FROM indb.insert_statements WHERE table_name = $t", {"t": name}
            )
            figures = {"statement_chars": int(characters)}
            figures["remake_s"] = round(
                median_seconds(lambda n=name: remake(db, n), lambda: None, max(args.runs, 5)), 4
            )

            def truncate(n=name):
                db.sql(f"DELETE FROM {n}_predictions")
                db.sql(f"DELETE FROM {n}")

            for rows in sizes if name == "lr" else forest_sizes:
                query = f"SELECT {', '.join(COLUMNS)} FROM src LIMIT {rows}"
                for path, limit in (("drop", 10**12), ("skip", 0)):
                    db.backend.drop_triggers_up_to = limit
                    seconds = round(
                        median_seconds(lambda n=name, q=query: db.insert(n, q), truncate, args.runs), 4
                    )
                    ((count, served),) = db.backend.rows(
                        f"SELECT (SELECT count(*) FROM {name}), count(DISTINCT id) FROM {name}_predictions"
                    )
                    assert count == served == rows, (count, served, rows)
                    figures[f"{path}_{rows}_s"] = seconds
            db.backend.drop_triggers_up_to = type(db.backend).drop_triggers_up_to
            result["models"][name] = figures
            print(name, figures, flush=True)
    result["peak_rss_mb"] = peak_rss_mb()
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
