"""The closed loop's overheads (issue 13): shadow scoring (this part; retraining is another).

Two deployments of the same champion side by side, one of them with one shadow challenger
(another version of the model, scored in the same insert): the time of the same bulk insert
into each (DuckDB ``--rows``, PostgreSQL ``--pg-rows``) and the p50 latency of one-row
``INSERT ... RETURNING prediction`` into row-mode deployments on PostgreSQL (``--one-row``
statements per run). Each figure is the
median of ``--repeats`` runs, alone and shadowed alternating; prints ratios (targets: bulk
<= 1.6x, one row <= 1.5x) and ``RESULT {json}``.

Starts a throwaway PostgreSQL cluster (tests/pg_server.py) unless ``--dsn`` names a server
(a fresh database is created there); ``--no-pg`` measures DuckDB only.

    python benchmarks/closed_loop.py [--rows 200000] [--pg-rows 50000] [--one-row 300]
        [--repeats 3] [--runtime auto|sql|onnx] [--model logistic|forest]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import indb  # noqa: E402
from tests.conftest import NUMERIC, loan_frame  # noqa: E402

COLUMNS = ", ".join(NUMERIC)


def models(kind: str):
    """Two versions of one model that disagree on some rows."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train = loan_frame(5_000)
    if kind == "forest":
        made = [RandomForestClassifier(n_estimators=20, max_depth=6, random_state=s) for s in (0, 1)]
    else:
        made = [make_pipeline(StandardScaler(), LogisticRegression(C=c)) for c in (1.0, 0.01)]
    return [m.fit(train[NUMERIC], train.label) for m in made], train[NUMERIC]


def setup(db, args) -> None:
    versions, sample = models(args.model)
    for model in versions:
        db.register_model("m", model, sample=sample)
    db.deploy("m", table="alone", version=1, runtime=args.runtime)
    db.deploy("m", table="shadowed", version=1, runtime=args.runtime)
    db.add_challenger("shadowed", 2, mode="shadow", runtime=args.runtime)
    if "row" in db.backend.scoring_modes:  # one-row inserts RETURNING their prediction
        db.deploy("m", table="alone_row", version=1, runtime=args.runtime, mode="row")
        db.deploy("m", table="shadowed_row", version=1, runtime=args.runtime, mode="row")
        db.add_challenger("shadowed_row", 2, mode="shadow", runtime=args.runtime)


def bulk(db, rows: int, repeats: int) -> dict:
    db.write_table("incoming", loan_frame(rows, seed=7)[NUMERIC], replace=True)
    times = {"alone": [], "shadowed": []}
    for _ in range(repeats):
        for table in times:
            started = time.perf_counter()
            db.sql(f"INSERT INTO {table} ({COLUMNS}) SELECT {COLUMNS} FROM incoming")
            times[table].append(time.perf_counter() - started)
    alone, shadowed = (statistics.median(times[t]) for t in ("alone", "shadowed"))
    return {"rows": rows, "alone_s": alone, "shadowed_s": shadowed, "ratio": shadowed / alone, "runs": times}


def one_row(url: str, statements: int, repeats: int) -> dict:
    import psycopg

    row = loan_frame(1, seed=9)[NUMERIC].iloc[0]
    values = [float(row.income), float(row.debt), int(row.age), float(row.tenure)]
    p50 = {"alone_row": [], "shadowed_row": []}
    with psycopg.connect(url, autocommit=True) as con:
        for table in p50:  # warm: the session's runtime and models loaded
            for _ in range(20):
                con.execute(
                    f"INSERT INTO {table} ({COLUMNS}) VALUES (%s, %s, %s, %s) RETURNING prediction", values
                )
        for _ in range(repeats):
            for table in p50:
                latencies = []
                query = f"INSERT INTO {table} ({COLUMNS}) VALUES (%s, %s, %s, %s) RETURNING prediction"
                for _ in range(statements):
                    started = time.perf_counter()
                    con.execute(query, values).fetchone()
                    latencies.append(time.perf_counter() - started)
                p50[table].append(statistics.median(latencies) * 1000)
    alone, shadowed = (statistics.median(p50[t]) for t in ("alone_row", "shadowed_row"))
    return {
        "statements": statements,
        "alone_p50_ms": alone,
        "shadowed_p50_ms": shadowed,
        "ratio": shadowed / alone,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="DuckDB bulk insert rows")
    parser.add_argument("--pg-rows", type=int, default=50_000, help="PostgreSQL bulk insert rows")
    parser.add_argument("--one-row", type=int, default=300, help="one-row inserts per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runtime", default="auto", choices=["auto", "sql", "onnx"])
    parser.add_argument("--model", default="logistic", choices=["logistic", "forest"])
    parser.add_argument("--dsn")
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    result = {"runtime": args.runtime, "model": args.model, "repeats": args.repeats}
    with tempfile.TemporaryDirectory() as tmp:
        with indb.connect(f"duckdb://{tmp}/bench.duckdb") as db:
            setup(db, args)
            result["duckdb_bulk"] = bulk(db, args.rows, args.repeats)
        if not args.no_pg:
            import psycopg

            stop, url = None, args.dsn
            if url is None:
                from tests.pg_server import start_cluster

                url, stop = start_cluster(tempfile.mkdtemp(prefix="indb-closed-loop-"))
            name = f"indb_bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(url, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
            bench_url = urlsplit(url)._replace(path=f"/{name}").geturl()
            try:
                with indb.connect(bench_url) as db:
                    setup(db, args)
                    result["postgres_bulk"] = bulk(db, args.pg_rows, args.repeats)
                    result["postgres_one_row"] = one_row(bench_url, args.one_row, args.repeats)
            finally:
                with psycopg.connect(url, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                if stop is not None:
                    stop()
    d = result["duckdb_bulk"]
    print(
        f"DuckDB {d['rows']:,} rows: alone {d['alone_s']:.3f} s, + one shadow {d['shadowed_s']:.3f} s "
        f"-> {d['ratio']:.2f}x (target <= 1.6x)"
    )
    if "postgres_bulk" in result:
        p, o = result["postgres_bulk"], result["postgres_one_row"]
        print(
            f"PostgreSQL {p['rows']:,} rows: alone {p['alone_s']:.3f} s, + one shadow "
            f"{p['shadowed_s']:.3f} s -> {p['ratio']:.2f}x (target <= 1.6x)"
        )
        print(
            f"PostgreSQL one-row INSERT ... RETURNING p50: alone {o['alone_p50_ms']:.3f} ms, + one "
            f"shadow {o['shadowed_p50_ms']:.3f} ms -> {o['ratio']:.2f}x (target <= 1.5x)"
        )
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
