"""What making id and created_at the server's costs a 1M-row insert (issue 10.5), no scoring.

PostgreSQL (a throwaway cluster from tests/pg_server.py, or ``--dsn``), ``INSERT INTO t
(f0..f7) SELECT * FROM src`` run by a non-owner login role into a request-shaped table (id
from a sequence, PRIMARY KEY; created_at default):

  plain   the role may INSERT every column (indb before 10.5)
  grant   the role may INSERT f0..f7 only: a column privilege (what indb does)
  trigger a BEFORE INSERT FOR EACH ROW plpgsql trigger overwriting id and created_at

DuckDB (in memory), the same insert into the same table with:

  plain         no CHECK (indb before 10.5)
  checks        CHECK (id <= currval(seq)), CHECK (created_at = CAST(now() AS TIMESTAMP)) (indb)
  tz_compare    CHECK (created_at = now()): TIMESTAMP against TIMESTAMPTZ, row by row

Median of ``--runs`` runs, each into an emptied table.

    python benchmarks/request_stamps.py [--rows 1000000] [--runs 3] [--dsn URL]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb

FEATURES = ", ".join(f"f{i}" for i in range(8))
RANDOM = ", ".join(f"random() AS f{i}" for i in range(8))


def postgres(dsn: str, rows: int, runs: int) -> dict[str, float]:
    import psycopg

    typed = ", ".join(f"f{i} float8" for i in range(8))
    variants = ("plain", "grant", "trigger")
    with psycopg.connect(dsn, autocommit=True) as owner:
        owner.execute("DROP ROLE IF EXISTS stamps_app")
        owner.execute("CREATE ROLE stamps_app LOGIN")
        owner.execute("DROP TABLE IF EXISTS src")
        owner.execute(f"CREATE TABLE src AS SELECT {RANDOM} FROM generate_series(1, %s)", [rows])
        owner.execute("GRANT SELECT ON src TO stamps_app")
        owner.execute(
            "CREATE OR REPLACE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "NEW.id := nextval('t_trigger_id_seq'); NEW.created_at := now(); RETURN NEW; END $$"
        )
        for name in variants:
            owner.execute(f"DROP TABLE IF EXISTS t_{name}")
            owner.execute(f"DROP SEQUENCE IF EXISTS t_{name}_id_seq")
            owner.execute(f"CREATE SEQUENCE t_{name}_id_seq")
            owner.execute(
                f"CREATE TABLE t_{name} (id bigint NOT NULL DEFAULT nextval('t_{name}_id_seq') "
                f"PRIMARY KEY, {typed}, created_at timestamp NOT NULL DEFAULT current_timestamp)"
            )
            owner.execute(f"GRANT USAGE ON SEQUENCE t_{name}_id_seq TO stamps_app")
        owner.execute("GRANT INSERT ON t_plain, t_trigger TO stamps_app")
        owner.execute(f"GRANT INSERT ({FEATURES}) ON t_grant TO stamps_app")
        owner.execute("CREATE TRIGGER stamp BEFORE INSERT ON t_trigger FOR EACH ROW EXECUTE FUNCTION stamp()")
        app_dsn = psycopg.conninfo.make_conninfo(dsn, user="stamps_app")
        seconds: dict[str, list[float]] = {name: [] for name in variants}
        with psycopg.connect(app_dsn, autocommit=True) as app:
            for _ in range(runs):
                for name in variants:
                    owner.execute(f"TRUNCATE t_{name}")
                    started = time.perf_counter()
                    app.execute(f"INSERT INTO t_{name} ({FEATURES}) SELECT {FEATURES} FROM src")
                    seconds[name].append(time.perf_counter() - started)
        for name in variants:
            owner.execute(f"DROP TABLE t_{name}")
            owner.execute(f"DROP SEQUENCE t_{name}_id_seq")
        owner.execute("DROP TABLE src")
        owner.execute("DROP FUNCTION stamp()")
        owner.execute("DROP ROLE stamps_app")
    return {name: statistics.median(values) for name, values in seconds.items()}


def duckdb_checks(rows: int, runs: int) -> dict[str, float]:
    con = duckdb.connect()
    con.execute(f"CREATE TABLE src AS SELECT {RANDOM} FROM range({int(rows)})")
    typed = ", ".join(f"f{i} DOUBLE" for i in range(8))
    checks = {
        "plain": ("", ""),
        "checks": ("CHECK (id <= currval('{s}'))", "CHECK (created_at = CAST(now() AS TIMESTAMP))"),
        "tz_compare": ("", "CHECK (created_at = now())"),
    }
    seconds: dict[str, list[float]] = {name: [] for name in checks}
    for _ in range(runs):
        for name, (on_id, on_created) in checks.items():
            sequence = f"t_{name}_id_seq"
            con.execute(f"DROP TABLE IF EXISTS t_{name}")
            con.execute(f"DROP SEQUENCE IF EXISTS {sequence}")
            con.execute(f"CREATE SEQUENCE {sequence}")
            con.execute(
                f"CREATE TABLE t_{name} (id BIGINT NOT NULL DEFAULT nextval('{sequence}') "
                f"{on_id.format(s=sequence)}, {typed}, "
                f"created_at TIMESTAMP NOT NULL DEFAULT current_timestamp {on_created})"
            )
            started = time.perf_counter()
            con.execute(f"INSERT INTO t_{name} ({FEATURES}) SELECT {FEATURES} FROM src")
            seconds[name].append(time.perf_counter() - started)
    con.close()
    return {name: statistics.median(values) for name, values in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dsn", help="a PostgreSQL superuser DSN (default: a throwaway cluster)")
    args = parser.parse_args()
    figures = {"duckdb": duckdb_checks(args.rows, args.runs)}
    if args.dsn:
        figures["postgresql"] = postgres(args.dsn, args.rows, args.runs)
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests.pg_server import start_cluster

        with tempfile.TemporaryDirectory() as tmp:
            dsn, stop = start_cluster(tmp)
            try:
                figures["postgresql"] = postgres(dsn, args.rows, args.runs)
            finally:
                stop()
    for backend, seconds in figures.items():
        base = seconds["plain"]
        for name, value in seconds.items():
            print(f"{backend:<10} {name:<10} {value:7.3f} s  {value / base:5.2f}x plain")


if __name__ == "__main__":
    main()
