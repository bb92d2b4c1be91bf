"""Does DuckDB run a statement trigger's body in parallel? A reproduction without indb.

Plain DuckDB, one process: a 1M-row table ``src`` of 8 DOUBLE columns, and an
``INSERT INTO t SELECT * FROM src`` into

  plain    a table without triggers
  noop     a table whose AFTER INSERT ... FOR EACH STATEMENT trigger copies the ids of the
           transition table into ``out`` (what any trigger that writes one row per row costs)
  trigger  a table whose trigger runs ``body``: INSERT INTO out SELECT id, <arithmetic over the
           8 columns> FROM new_rows

and ``body`` alone as a statement over the same rows stored in a table (``standalone``).
For each, wall and CPU seconds (CPU of every thread of the process) and their ratio: a ratio
near 1 means one thread did the work. Run once with ``--threads 1`` to see the standalone body
lose its parallelism and match the trigger.

    python benchmarks/duckdb_trigger_threads.py [--rows 1000000] [--runs 5] [--threads N] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import duckdb
from peak_memory import peak_rss_mb

COLUMNS = [f"f{i}" for i in range(8)]
# An arithmetic-heavy projection (a logistic function of a dot product, computed a few times):
# cheap per row, parallel in any plain query.
DOT = " + ".join(f"{c} * {i + 1}.5" for i, c in enumerate(COLUMNS))
WORK = " + ".join(f"1.0 / (1.0 + exp(-({DOT}) * {k}))" for k in range(1, 5))


def setup(con: duckdb.DuckDBPyConnection, rows: int) -> None:
    columns = ", ".join(f"{c} DOUBLE" for c in COLUMNS)
    values = ", ".join(f"random() AS {c}" for c in COLUMNS)
    con.execute(f"CREATE TABLE src AS SELECT {values} FROM range({rows})")
    for name in ("plain", "noop", "trigger", "stored"):
        con.execute(f"CREATE SEQUENCE {name}_seq")
        con.execute(f"CREATE TABLE {name} (id BIGINT DEFAULT nextval('{name}_seq'), {columns})")
    con.execute("CREATE TABLE out (id BIGINT, score DOUBLE)")
    con.execute(
        "CREATE TRIGGER noop_t AFTER INSERT ON noop REFERENCING NEW TABLE AS new_rows "
        "FOR EACH STATEMENT INSERT INTO out SELECT id, 0 FROM new_rows"
    )
    con.execute(
        "CREATE TRIGGER trigger_t AFTER INSERT ON trigger REFERENCING NEW TABLE AS new_rows "
        f"FOR EACH STATEMENT INSERT INTO out SELECT id, {WORK} FROM new_rows"
    )
    con.execute("INSERT INTO stored SELECT nextval('stored_seq'), * FROM src")


def timed(con, sql: str, reset: list[str], runs: int) -> dict:
    walls, cpus = [], []
    for _ in range(runs):
        for text in reset:
            con.execute(text)
        cpu, wall = time.process_time(), time.perf_counter()
        con.execute(sql)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    return {"wall_s": round(wall, 4), "cpu_s": round(cpu, 4), "cpu/wall": round(cpu / wall, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="DuckDB threads (0: its default)")
    parser.add_argument("--profile", action="store_true", help="print EXPLAIN ANALYZE of the inserts")
    args = parser.parse_args()
    con = duckdb.connect()
    if args.threads:
        con.execute(f"SET threads = {args.threads}")
    ((threads,),) = con.execute("SELECT current_setting('threads')").fetchall()
    setup(con, args.rows)
    insert = "INSERT INTO {} SELECT nextval('{}_seq'), * FROM src"
    found = {}
    for name in ("plain", "noop", "trigger"):
        reset = [f"TRUNCATE {name}", "TRUNCATE out"]
        found[name] = timed(con, insert.format(name, name), reset, args.runs)
    found["standalone"] = timed(
        con, f"INSERT INTO out SELECT id, {WORK} FROM stored", ["TRUNCATE out"], args.runs
    )
    found["trigger - noop"] = round(found["trigger"]["wall_s"] - found["noop"]["wall_s"], 4)
    if args.profile:  # operator timings: which parts of the triggered insert take the time
        for name in ("plain", "trigger"):
            con.execute(f"TRUNCATE {name}")
            con.execute("TRUNCATE out")
            ((_, plan),) = con.execute("EXPLAIN ANALYZE " + insert.format(name, name)).fetchall()
            print(f"EXPLAIN ANALYZE, insert into {name}:\n{plan}")
    print(f"DuckDB {duckdb.__version__}, threads {threads}, {args.rows:,} rows, median of {args.runs}")
    for name, value in found.items():
        print(f"  {name:<15} {value}")
    result = {
        "duckdb": duckdb.__version__,
        "threads": threads,
        "cpus": os.cpu_count(),
        "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
        "rows": args.rows,
        "runs": args.runs,
        "figures": found,
        "peak_rss_mb": peak_rss_mb(),
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
