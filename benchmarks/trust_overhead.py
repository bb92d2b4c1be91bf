"""What issue 10's checks cost on PostgreSQL: this tree against a baseline git revision, in one
server, interleaved, so machine load falls on both alike.

The baseline's indb (``git archive <rev>``, laid out as the installed package) installs its
runtime into database ``base``, this tree's into ``head`` (a subprocess each). Both get the
same LogisticRegression, deployed four ways: onnx bulk, onnx row mode, sql bulk, sql row mode.
Then ``--rounds`` rounds, alternating which database goes first, each measuring on both:

  bulk      INSERT .. SELECT of ``--rows`` rows into the onnx bulk table (seconds)
  row       ``--requests`` one-row ``INSERT .. RETURNING prediction`` into the onnx row table (p50 ms)
  sql bulk  the same bulk insert into the compiled table (seconds)
  sql row   one-row inserts into the compiled row-mode table (p50 ms)
  function  ``SELECT sum((indb.predict_proba_lrpy(..))[2])`` over ``--function-rows`` rows, the
            PL/Python model function (seconds)

Figures are medians over rounds; the last column is head / base.

    python benchmarks/trust_overhead.py [--baseline b7c0182] [--rows 50000] [--requests 1000]
        [--function-rows 20000] [--rounds 5] [--dsn postgresql://...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FEATURES = [f"f{i}" for i in range(8)]
SETUP = """
import sys, numpy as np, pandas as pd, indb
from sklearn.linear_model import LogisticRegression
rng = np.random.default_rng(0)
X = pd.DataFrame(rng.normal(size=(20000, 8)), columns=[f"f{i}" for i in range(8)])
y = (X.f0 + X.f1 * 0.5 + rng.normal(0, 0.5, 20000) > 0).astype(int)
db = indb.connect(sys.argv[1])
model = LogisticRegression().fit(X, y)
db.register_model("lr", model, sample=X)
db.register_model("lrpy", model, sample=X)  # never compiled: its functions stay PL/Python
db.deploy("lr", table="bulk_onnx", runtime="onnx")
db.deploy("lr", table="row_onnx", runtime="onnx", mode="row")
db.deploy("lr", table="bulk_sql", runtime="sql")
db.deploy("lr", table="row_sql", runtime="sql", mode="row")
db.sql("CREATE TABLE src AS SELECT * FROM (SELECT " + ", ".join(f"random() AS f{i}" for i in range(8))
       + " FROM generate_series(1, 200000)) AS s")
db.close()
"""


def baseline_tree(rev: str, into: Path) -> Path:
    """``git archive rev`` laid out as the package (pyproject's package-dir), on PYTHONPATH."""
    src = into / "src"
    src.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True)
    package = into / "pkg" / "indb"
    shutil.copytree(src / "engine", package)
    for sub in ("udfs", "feature_store", "sql"):
        shutil.copytree(src / sub, package / sub)
    return into / "pkg"


def with_db(dsn: str, name: str) -> str:
    return urlsplit(dsn)._replace(path=f"/{name}").geturl()


def bulk(conn, table: str, rows: int) -> float:
    conn.execute(f"TRUNCATE {table}, {table}_predictions" if "bulk" in table else f"TRUNCATE {table}")
    start = time.perf_counter()
    conn.execute(f"INSERT INTO {table} ({', '.join(FEATURES)}) SELECT * FROM src LIMIT {rows}")
    return time.perf_counter() - start


def one_rows(conn, table: str, requests: int) -> float:
    rng = np.random.default_rng(1)
    sql = f"INSERT INTO {table} ({', '.join(FEATURES)}) VALUES ({', '.join(['%s'] * 8)}) RETURNING prediction"
    for _ in range(50):
        conn.execute(sql, list(rng.normal(size=8))).fetchone()
    times = []
    for _ in range(requests):
        values = list(rng.normal(size=8))
        start = time.perf_counter()
        conn.execute(sql, values).fetchone()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def function(conn, rows: int) -> float:
    start = time.perf_counter()
    call = f"indb.predict_proba_lrpy({', '.join(FEATURES)})"
    conn.execute(f"SELECT sum(({call})[2]) FROM (SELECT * FROM src LIMIT {rows}) AS s").fetchone()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="b7c0182", help="git revision to compare with")
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=1_000)
    parser.add_argument("--function-rows", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dsn", default=os.environ.get("INDB_BENCH_PG_DSN"))
    args = parser.parse_args()
    stop = None
    if args.dsn is None:
        from tests.pg_server import start_cluster

        args.dsn, stop = start_cluster(tempfile.mkdtemp(prefix="indb-trust-"))
    work = Path(tempfile.mkdtemp(prefix="indb-baseline-"))
    try:
        trees = {"base": baseline_tree(args.baseline, work), "head": None}
        with psycopg.connect(args.dsn, autocommit=True) as admin:
            for name, tree in trees.items():
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                admin.execute(f"CREATE DATABASE {name}")
                env = dict(os.environ, PYTHONPATH=str(tree)) if tree else dict(os.environ)
                subprocess.run([sys.executable, "-c", SETUP, with_db(args.dsn, name)], env=env, check=True)
        load = os.getloadavg()
        conns = {name: psycopg.connect(with_db(args.dsn, name), autocommit=True) for name in trees}
        measures = {
            "bulk onnx, s": lambda c: bulk(c, "bulk_onnx", args.rows),
            "row onnx p50, ms": lambda c: one_rows(c, "row_onnx", args.requests),
            "bulk sql, s": lambda c: bulk(c, "bulk_sql", args.rows),
            "row sql p50, ms": lambda c: one_rows(c, "row_sql", args.requests),
            "PL/Python predict_proba, s": lambda c: function(c, args.function_rows),
        }
        results = {m: {n: [] for n in trees} for m in measures}
        for number in range(args.rounds):
            order = list(trees) if number % 2 == 0 else list(reversed(trees))
            for measure, run in measures.items():
                for name in order:
                    results[measure][name].append(run(conns[name]))
        print(
            f"baseline {args.baseline} vs this tree; {args.rounds} rounds; rows {args.rows}, requests "
            f"{args.requests}, function rows {args.function_rows}; load average at start {load}, "
            f"at end {os.getloadavg()}"
        )
        print(f"{'':28} {'base':>10} {'head':>10} {'head/base':>10}")
        for measure, by_name in results.items():
            base, head = statistics.median(by_name["base"]), statistics.median(by_name["head"])
            print(f"{measure:28} {base:10.4f} {head:10.4f} {head / base:10.3f}")
        for conn in conns.values():
            conn.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if stop is not None:
            stop()


if __name__ == "__main__":
    main()
