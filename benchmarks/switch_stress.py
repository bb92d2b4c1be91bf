"""Version switches under 8 writers for 30 s (issue 11): the full run of
tests/test_switch_concurrency.py's cases.

For each case (bulk/row mode x onnx/sql runtime, bulk with and without humility rules):
``--writers`` psycopg threads insert ``--batch`` rows per statement as fast as they can while
another connection switches the deployment between two versions every ``--every`` seconds,
for ``--seconds`` seconds; then every row is checked (tests/switch_stress.py says how).
Prints one summary line per case and ``RESULT {json}``; exits 1 when a case has failures
or problems (a switch of 1 s or more, a deadlock, an unscored/duplicate/orphan row, a row
scored by a version not deployed when it committed).

Starts a throwaway cluster (tests/pg_server.py) unless ``--dsn`` names a server (a fresh
database per case is created there).

    python benchmarks/switch_stress.py [--writers 8] [--seconds 30] [--every 2] [--batch 20]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import switch_stress  # noqa: E402

CASES = [
    ("bulk", "onnx", False),
    ("bulk", "onnx", True),
    ("bulk", "sql", False),
    ("bulk", "sql", True),
    ("row", "onnx", False),
    ("row", "sql", False),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--every", type=float, default=2.0)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--cases", default="all", help="e.g. bulk-onnx-0,row-sql-0")
    parser.add_argument("--dsn")
    args = parser.parse_args()
    stop = None
    url = args.dsn
    if url is None:
        from tests.pg_server import start_cluster

        url, stop = start_cluster(tempfile.mkdtemp(prefix="indb-switch-"))
    cases = CASES
    if args.cases != "all":
        wanted = set(args.cases.split(","))
        cases = [c for c in CASES if f"{c[0]}-{c[1]}-{int(c[2])}" in wanted]
    results, bad = [], False
    try:
        for mode, runtime, humility in cases:
            name = f"indb_switch_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(url, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
            case_url = urlsplit(url)._replace(path=f"/{name}").geturl()
            try:
                report = switch_stress.run(
                    case_url,
                    mode=mode,
                    runtime=runtime,
                    humility=humility,
                    writers=args.writers,
                    seconds=args.seconds,
                    switch_every=args.every,
                    batch=args.batch,
                )
            finally:
                with psycopg.connect(url, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            print(report.summary(), flush=True)
            for line in report.failures[:5] + report.problems[:5]:
                print("   ", line)
            bad = bad or bool(report.failures or report.problems)
            results.append(
                {
                    "mode": mode,
                    "runtime": runtime,
                    "humility": humility,
                    "writers": args.writers,
                    "seconds": round(report.seconds, 1),
                    "rows": report.rows,
                    "switches": len(report.switches),
                    "max_switch_ms": round(report.max_switch * 1000),
                    "failures": len(report.failures),
                    "problems": len(report.problems),
                }
            )
        print("RESULT " + json.dumps(results))
    finally:
        if stop is not None:
            stop()
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
