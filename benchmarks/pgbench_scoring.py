"""pgbench against deployed tables (issue 11): tps and latency p50/p99 of one-row INSERTs.

Tables, each with the same columns (income, debt, age, tenure) and the same DDL:
  plain               no deployment (the request table's DDL, no trigger)
  bulk_onnx/bulk_sql  deployed in bulk mode with runtime onnx / sql (compiled)
  row_onnx/row_sql    deployed in row mode
The model is StandardScaler + LogisticRegression (tests.switch_stress.models, version 1).
Each pgbench run: ``-n -T <seconds> -c <clients> -j <min(clients, 2)>`` with a one-statement
script ``INSERT INTO <table> (...) VALUES (random values)``, once on kept connections and
once with ``-C`` (a new connection per transaction, no pooling). p50/p99 come from pgbench's
per-transaction log (``-l``; with -C those latencies do not cover all of the time spent
connecting, so tps is the figure to compare there).

Starts a throwaway cluster (tests/pg_server.py) unless ``--dsn`` names a server.

    python benchmarks/pgbench_scoring.py [--seconds 5] [--clients 1,4,8] [--dsn postgresql://...]
        [--pgbench /usr/lib/postgresql/15/bin/pgbench] [--tables plain,bulk_onnx,...]
        [--new-connection both|no|yes]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import indb  # noqa: E402
from tests.conftest import NUMERIC, loan_frame  # noqa: E402
from tests.switch_stress import models  # noqa: E402

TABLES = ("plain", "bulk_onnx", "bulk_sql", "row_onnx", "row_sql")
SCRIPT = (
    "INSERT INTO {table} (income, debt, age, tenure) VALUES "
    "(random() * 100000, random() * 20000, 18 + (random() * 60)::int, random() * 10);\n"
)


def setup(url: str, tables) -> None:
    train = loan_frame(1_000, seed=3)
    with indb.connect(url) as db:
        if db.sql("SELECT 1 FROM indb.model_versions WHERE model = 'bench_m'").empty:
            db.register_model("bench_m", models(train)[1], sample=train[NUMERIC])
        for table in tables:
            if not db.sql("SELECT 1 FROM indb.deployments WHERE table_name = $t", {"t": table}).empty:
                db.undeploy(table, drop_tables=True)
            db.sql(f"DROP TABLE IF EXISTS {table}")
            if table == "plain":  # the DDL of a deployed request table, no trigger
                db.sql("CREATE SEQUENCE IF NOT EXISTS plain_id_seq")
                db.sql(
                    "CREATE TABLE plain (id BIGINT PRIMARY KEY DEFAULT nextval('plain_id_seq'), "
                    "income FLOAT8 NOT NULL, debt FLOAT8 NOT NULL, age BIGINT NOT NULL, "
                    "tenure FLOAT8 NOT NULL, created_at TIMESTAMP NOT NULL DEFAULT current_timestamp)"
                )
                continue
            mode, runtime = table.split("_")
            db.deploy("bench_m", table=table, runtime=runtime, mode=mode)


def pgbench(binary: str, url: str, table: str, clients: int, seconds: int, connect: bool) -> dict:
    parts = urlsplit(url)
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder, "insert.sql")
        script.write_text(SCRIPT.format(table=table))
        os.chmod(folder, 0o777)
        command = [
            binary,
            "-n",
            "-h",
            parts.hostname,
            "-p",
            str(parts.port),
            "-U",
            parts.username or "postgres",
            "-T",
            str(seconds),
            "-c",
            str(clients),
            "-j",
            str(min(clients, 2)),
            "-f",
            str(script),
            "-l",
            "--log-prefix",
            str(Path(folder, "log")),
        ]
        if connect:
            command.append("-C")
        command.append(parts.path.lstrip("/"))
        done = subprocess.run(command, capture_output=True, text=True, cwd=folder, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"pgbench failed: {done.stderr.strip()[-2000:]}")
        tps = next(
            float(line.split("=")[1].split()[0])
            for line in done.stdout.splitlines()
            if line.startswith("tps =")
        )
        latencies = []
        for log in glob.glob(str(Path(folder, "log*"))):
            with open(log) as f:
                latencies += [int(line.split()[2]) for line in f if line.strip()]
        failed = sum(1 for line in done.stdout.splitlines() if "failed" in line and "0 (0.000%)" not in line)
    lat = np.array(latencies) / 1000
    return {
        "table": table,
        "clients": clients,
        "new_connection": connect,
        "tps": round(tps, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2),
        "transactions": len(latencies),
        "failed_lines": failed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--clients", default="1,4,8")
    parser.add_argument("--tables", default=",".join(TABLES))
    parser.add_argument("--dsn", default=os.environ.get("INDB_BENCH_PG_DSN"))
    parser.add_argument("--pgbench", default="/usr/lib/postgresql/15/bin/pgbench")
    parser.add_argument("--new-connection", choices=("both", "no", "yes"), default="both", help="-C runs")
    args = parser.parse_args()
    tables = args.tables.split(",")
    stop = None
    url = args.dsn
    if url is None:
        from tests.pg_server import start_cluster

        url, stop = start_cluster(tempfile.mkdtemp(prefix="indb-pgbench-"))
    try:
        setup(url, tables)
        results = []
        print(f"{'table':10} {'clients':>7} {'-C':>3} {'tps':>9} {'p50 ms':>8} {'p99 ms':>8}")
        modes = {"both": (False, True), "no": (False,), "yes": (True,)}[args.new_connection]
        for connect in modes:
            for clients in [int(c) for c in args.clients.split(",")]:
                for table in tables:
                    r = pgbench(args.pgbench, url, table, clients, args.seconds, connect)
                    results.append(r)
                    print(
                        f"{table:10} {clients:7d} {'yes' if connect else 'no':>3} {r['tps']:9.1f} "
                        f"{r['p50_ms']:8.2f} {r['p99_ms']:8.2f}",
                        flush=True,
                    )
        print("RESULT " + json.dumps(results))
    finally:
        if stop is not None:
            stop()


if __name__ == "__main__":
    main()
