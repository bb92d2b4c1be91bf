"""Point-in-time joins: indb on DuckDB and PostgreSQL against Feast's DuckDB offline store.

Three generated datasets (2 DOUBLE features per row, one BIGINT entity key; every entity's
rows have distinct times, so "latest row at or before t" means the same everywhere):

  shallow  10k entities x 100 rows (1M feature rows),   100k spine rows
  deep     100 entities x 10k rows (1M feature rows),   100k spine rows
  big      100k entities x 100 rows (10M feature rows), 1M spine rows

Each measurement runs in its own subprocess: it loads what it needs untimed, times the join
to a DataFrame (indb: ``db.training_set(spine, ["bench:f1", "bench:f2"]).frame``; Feast:
``store.get_historical_features(entity_df=spine, features=[...]).to_df()``), and reports its
peak memory (the child's VmHWM: its ``ru_maxrss`` would include the forking parent's). DuckDB and
Feast take the spine as a DataFrame; PostgreSQL as a table (the data has to be in the server).
Results are compared row by row (by a ``row_id`` spine column) between engines.

The floor (engine ``asof``) is a hand-written DuckDB ASOF LEFT JOIN on the same tables with the
same output (a DataFrame of the spine's columns and the features, in spine order); it
registers the spine in its timed part as indb does. indb's feature store is imported before
the timer, as the floor's duckdb is (the import's seconds are reported on their own). Engines
take turns run by run (duckdb, asof, duckdb, asof, ...), so a change in load hits both.

Engine ``fixed`` times indb's fixed cost alone: a first ``training_set(..., dry_run=True)`` in a
fresh process (catalog reads, spine registered and described, join built; no join run).

Also: online lookup of one entity in-process on DuckDB (``db.online_features``, p50/p99 over
2,000 random entities; also with ``as_dict=True``) against its floor, the bare query on the
view it reads, alternating call by call; and rebuilding the latest-values table of 1M feature rows
(``db.materialize_online``), on the shallow dataset.

    python benchmarks/pit_join.py [--datasets shallow,deep,big] [--engines duckdb,postgres,feast]
                                  [--feast-python PATH] [--runs 3]

Feast is optional (``pip install -e ".[bench]"``); without it its column says "not installed".
``--feast-python`` runs the Feast cases with another interpreter (e.g. a venv holding Feast).
Targets (issue 5): DuckDB shallow and deep <= 0.5 s, >= 5x faster than Feast on shallow and
>= 50x on deep, big <= 5 s, peak memory about the same for shallow and deep; PostgreSQL
<= 2 s per 100k spine rows at any depth; online p99 <= 1 ms; materializing 1M rows <= 1 s.
Issue 17: indb DuckDB <= 1.2x the ASOF floor on every dataset; online p99 <= 1 ms and within
1.2x of the view query.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from peak_memory import peak_rss_mb  # benchmarks/ is on sys.path

ROOT = Path(__file__).resolve().parent.parent
DATASETS = {
    "shallow": (10_000, 100, 100_000),
    "deep": (100, 10_000, 100_000),
    "big": (100_000, 100, 1_000_000),
}
START = datetime(2024, 1, 1)
STEP = 600  # seconds between an entity's rows
FEATURES = ["bench:f1", "bench:f2"]


# -- data ----------------------------------------------------------------------------------------
def generate(name: str, folder: Path) -> dict:
    """Feature rows and spine as parquet files; every entity's times are distinct."""
    entities, depth, spine_rows = DATASETS[name]
    rng = np.random.default_rng(42)
    entity = np.repeat(np.arange(entities, dtype=np.int64), depth)
    step = np.tile(np.arange(depth, dtype=np.int64), entities)
    offset = rng.integers(0, STEP, entities)[entity]
    seconds = step * STEP + offset
    features = pd.DataFrame(
        {
            "entity_id": entity,
            "ts": pd.Timestamp(START) + pd.to_timedelta(seconds, unit="s"),
            "f1": rng.normal(0, 1, len(entity)),
            "f2": rng.uniform(0, 100, len(entity)),
        }
    )
    span = depth * STEP
    spine = pd.DataFrame(
        {
            "row_id": np.arange(spine_rows, dtype=np.int64),
            "entity_id": rng.integers(0, entities, spine_rows).astype(np.int64),
            "event_timestamp": pd.Timestamp(START)
            + pd.to_timedelta(rng.integers(-STEP, span + STEP, spine_rows), unit="s"),
        }
    )
    paths = {"features": folder / f"{name}_features.parquet", "spine": folder / f"{name}_spine.parquet"}
    features.to_parquet(paths["features"], index=False)
    spine.to_parquet(paths["spine"], index=False)
    return {k: str(v) for k, v in paths.items()}


def setup_duckdb(name: str, paths: dict, folder: Path) -> str:
    import indb
    from indb.identifiers import literal

    path = folder / f"{name}.duckdb"
    if path.exists():
        path.unlink()
    with indb.connect(f"duckdb://{path}") as db:
        db.create_entity("item", keys=["entity_id"])
        source = f"SELECT * FROM read_parquet({literal(paths['features'], 'duckdb')})"
        db.create_feature_set("bench", "item", source=source, event_time="ts", statistics=False)
    return str(path)


def setup_postgres(name: str, paths: dict, dsn: str) -> str:
    import psycopg

    import indb
    from tests.conftest import pg_database

    database = f"bench_{name}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{database}"')
    url = pg_database(dsn, database)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE raw_features (entity_id bigint, ts timestamp, f1 float8, f2 float8)")
        conn.execute("CREATE TABLE spine (row_id bigint, entity_id bigint, event_timestamp timestamp)")
        for table, key in (("raw_features", "features"), ("spine", "spine")):
            frame = pd.read_parquet(paths[key])
            with conn.cursor().copy(f"COPY {table} FROM STDIN WITH (FORMAT csv)") as copy:
                for start in range(0, len(frame), 200_000):
                    copy.write(frame.iloc[start : start + 200_000].to_csv(index=False, header=False))
        conn.execute("ANALYZE spine")
    with indb.connect(url) as db:
        db.create_entity("item", keys=["entity_id"])
        db.create_feature_set("bench", "item", source="raw_features", event_time="ts", statistics=False)
        db.sql("ANALYZE fs_bench_v1")
    return url


# -- cases (each in a child process) --------------------------------------------------------------
def _import_feature_store() -> float:
    """Import indb's feature store untimed, as the floor imports duckdb untimed (a once per
    process cost: reported on its own, not in the join's seconds)."""
    started = time.perf_counter()
    import indb.feature_store.training  # noqa: F401

    return time.perf_counter() - started


def case_duckdb(args) -> dict:
    import indb

    spine = pd.read_parquet(args.spine)
    with indb.connect(f"duckdb://{args.target}") as db:
        imported = _import_feature_store()
        started = time.perf_counter()
        frame = db.training_set(spine, FEATURES, event_time="event_timestamp").frame
        seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "import_seconds": imported,
        "rows": len(frame),
        "columns": list(frame.columns),
        "frame": frame[["row_id", "f1", "f2"]],
    }


def case_fixed(args) -> dict:
    """indb's fixed cost alone: a first ``training_set(..., dry_run=True)`` in a fresh process
    (catalog reads, the spine registered and described, the join built), no join run."""
    import indb

    spine = pd.read_parquet(args.spine)
    with indb.connect(f"duckdb://{args.target}") as db:
        imported = _import_feature_store()
        started = time.perf_counter()
        db.training_set(spine, FEATURES, event_time="event_timestamp", dry_run=True)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "import_seconds": imported, "rows": 0}


def case_asof(args) -> dict:
    """The floor: a plain DuckDB ASOF LEFT JOIN on the same tables, without indb (no tie-break
    on ingestion order, no ttl handling), spine order restored the same way; the same output as
    indb's (a DataFrame of the spine's columns and the features), the spine registered in the
    timed part as indb registers it."""
    import duckdb

    spine = pd.read_parquet(args.spine)
    con = duckdb.connect(args.target, read_only=True)
    started = time.perf_counter()
    con.register("spine_frame", spine)
    frame = con.execute(
        "SELECT s.row_id, s.entity_id, s.event_timestamp, f.f1, f.f2 "
        "FROM (SELECT *, row_number() OVER () AS r FROM spine_frame) AS s "
        "ASOF LEFT JOIN fs_bench_v1 AS f ON s.entity_id = f.entity_id AND s.event_timestamp >= f.ts "
        "ORDER BY s.r"
    ).df()
    seconds = time.perf_counter() - started
    con.close()
    return {
        "seconds": seconds,
        "rows": len(frame),
        "columns": list(frame.columns),
        "frame": frame[["row_id", "f1", "f2"]],
    }


def case_postgres(args) -> dict:
    import indb

    with indb.connect(args.target) as db:
        imported = _import_feature_store()
        started = time.perf_counter()
        frame = db.training_set("spine", FEATURES, event_time="event_timestamp").frame
        seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "import_seconds": imported,
        "rows": len(frame),
        "frame": frame[["row_id", "f1", "f2"]],
    }


def case_feast(args) -> dict:
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64

    repo = Path(tempfile.mkdtemp(prefix="feast_bench_"))
    (repo / "data").mkdir()
    (repo / "feature_store.yaml").write_text(
        "project: bench\nregistry: data/registry.db\nprovider: local\n"
        "offline_store:\n  type: duckdb\nonline_store:\n  type: sqlite\n  path: data/online.db\n"
        "entity_key_serialization_version: 3\n"
    )
    try:
        store = FeatureStore(repo_path=str(repo))
        item = Entity(name="item", join_keys=["entity_id"], value_type=ValueType.INT64)
        source = FileSource(path=args.features, timestamp_field="ts")
        view = FeatureView(
            name="bench",
            entities=[item],
            ttl=timedelta(days=3650),
            schema=[Field(name="f1", dtype=Float64), Field(name="f2", dtype=Float64)],
            source=source,
        )
        store.apply([item, view])
        spine = pd.read_parquet(args.spine)
        started = time.perf_counter()
        frame = store.get_historical_features(entity_df=spine, features=FEATURES).to_df()
        seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(repo, ignore_errors=True)
    return {"seconds": seconds, "rows": len(frame), "frame": frame[["row_id", "f1", "f2"]]}


def _percentiles(seconds: list[float]) -> tuple[float, float]:
    ordered = sorted(seconds)
    return ordered[len(ordered) // 2] * 1e3, ordered[int(len(ordered) * 0.99)] * 1e3


def case_online(args) -> dict:
    """``db.online_features`` (a DataFrame, and ``as_dict=True``) against its floor, the bare
    query on the view it reads (no indb code: the same connection's execute + fetchall),
    alternating entity by entity so all see the same load; 200 warm-up calls of each first."""
    import indb

    rng = np.random.default_rng(1)
    view = 'SELECT "f1", "f2" FROM "fs_bench_latest" WHERE "entity_id" = $entity_id'
    with indb.connect(f"duckdb://{args.target}") as db:
        con = db.backend.con
        entities = [int(e) for e in rng.integers(0, DATASETS[args.dataset][0], 2_200)]
        python, sql, plain = [], [], []
        dicts = "as_dict" in inspect.signature(db.online_features).parameters  # not in old code
        for n, entity in enumerate(entities):
            started = time.perf_counter()
            db.online_features(FEATURES, {"entity_id": entity})
            middle = time.perf_counter()
            con.execute(view, {"entity_id": entity}).fetchall()
            ended = time.perf_counter()
            if dicts:
                db.online_features(FEATURES, {"entity_id": entity}, as_dict=True)
            last = time.perf_counter()
            if n >= 200:  # warm-up
                python.append(middle - started)
                sql.append(ended - middle)
                plain.append(last - ended)
        materialize = []
        for _ in range(3):
            started = time.perf_counter()
            rows = db.materialize_online("bench")
            materialize.append(time.perf_counter() - started)
    p50, p99 = _percentiles(python)
    view_p50, view_p99 = _percentiles(sql)
    dict_p50, dict_p99 = _percentiles(plain) if dicts else (float("nan"), float("nan"))
    return {
        "p50_ms": p50,
        "p99_ms": p99,
        "view_p50_ms": view_p50,
        "view_p99_ms": view_p99,
        "p50_ratio": p50 / view_p50,
        "p99_ratio": p99 / view_p99,
        "dict_p50_ms": dict_p50,
        "dict_p99_ms": dict_p99,
        "dict_p50_ratio": dict_p50 / view_p50,
        "dict_p99_ratio": dict_p99 / view_p99,
        "materialize_seconds": statistics.median(materialize),
        "latest_rows": rows,
    }


CASES = {
    "duckdb": case_duckdb,
    "asof": case_asof,
    "fixed": case_fixed,
    "postgres": case_postgres,
    "feast": case_feast,
    "online": case_online,
}


def child(args) -> None:
    result = CASES[args.case](args)
    result["peak_mb"] = peak_rss_mb()
    frame = result.pop("frame", None)
    if frame is not None and args.output:
        frame.sort_values("row_id").to_parquet(args.output, index=False)
    print("CASE " + json.dumps(result), flush=True)


def run_case(python: str, case: str, dataset: str, target: str, paths: dict, output: str | None) -> dict:
    command = [python, __file__, "--child", case, "--dataset", dataset, "--target", target]
    command += ["--features", paths["features"], "--spine", paths["spine"]]
    if output:
        command += ["--output", output]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(paths["spine"]).parent,  # DuckDB spills (Feast's too) into the temporary folder
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    out, err = process.communicate()
    lines = [line for line in out.splitlines() if line.startswith("CASE ")]
    if process.returncode != 0 or not lines:
        if process.returncode < 0:
            return {"error": f"killed by signal {-process.returncode} (out of memory?)"}
        tail = [line for line in (err or out).strip().splitlines() if "Warning" not in line][-2:]
        return {"error": " | ".join(tail) or f"exit {process.returncode}"}
    return json.loads(lines[-1][5:])


def feast_available(python: str) -> bool:
    found = subprocess.run([python, "-c", "import feast, ibis"], capture_output=True)
    return found.returncode == 0


def compare(a: str, b: str) -> dict:
    x, y = pd.read_parquet(a), pd.read_parquet(b)
    if len(x) != len(y) or not (x.row_id.to_numpy() == y.row_id.to_numpy()).all():
        return {"rows_a": len(x), "rows_b": len(y), "same_rows": False}
    differ = 0
    for column in ("f1", "f2"):
        u, v = x[column].to_numpy(dtype=float), y[column].to_numpy(dtype=float)
        both_nan = np.isnan(u) & np.isnan(v)
        differ += int(np.sum(~both_nan & ~np.isclose(u, v, rtol=0, atol=1e-12)))
    return {"same_rows": True, "differing_values": differ, "null_rows": int(np.isnan(x.f1.to_numpy()).sum())}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", default="shallow,deep,big")
    parser.add_argument("--engines", default="duckdb,asof,postgres,feast")  # also: fixed
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--feast-python", default=sys.executable)
    parser.add_argument("--child")
    parser.add_argument("--dataset")
    parser.add_argument("--target")
    parser.add_argument("--features")
    parser.add_argument("--spine")
    parser.add_argument("--output")
    args = parser.parse_args()
    if args.child:
        args.case = args.child
        child(args)
        return

    import duckdb

    engines = args.engines.split(",")
    folder = Path(tempfile.mkdtemp(prefix="indb_pit_"))
    stop_pg = None
    has_feast = "feast" in engines and feast_available(args.feast_python)
    report: dict = {
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "cpus": os.cpu_count(),
        "load": os.getloadavg()[0],
        "runs": args.runs,
        "datasets": {},
    }
    try:
        if "postgres" in engines:
            sys.path.insert(0, str(ROOT))
            from tests.pg_server import start_cluster

            dsn, stop_pg = start_cluster(folder / "pg")
        for name in args.datasets.split(","):
            entities, depth, spine_rows = DATASETS[name]
            print(
                f"\n== {name}: {entities:,} entities x {depth:,} rows, {spine_rows:,} spine rows", flush=True
            )
            paths = generate(name, folder)
            targets = {"duckdb": setup_duckdb(name, paths, folder)}
            if "postgres" in engines and spine_rows <= 100_000:
                targets["postgres"] = setup_postgres(name, paths, dsn)
            results, outputs = {}, {}
            measured: dict[str, list] = {}
            for engine in engines:
                if engine == "feast" and not has_feast:
                    results[engine] = {"error": "not installed"}
                elif engine in ("asof", "fixed"):
                    targets[engine] = targets["duckdb"]
                elif engine not in targets and engine != "feast":
                    results[engine] = {"error": "skipped (1M spine rows: PostgreSQL runs 100k)"}
            # engines take turns run by run, so a change in the machine's load hits each alike
            for run in range(args.runs):
                for engine in engines:
                    if engine in results or (engine == "feast" and run > 0):
                        continue
                    python = args.feast_python if engine == "feast" else sys.executable
                    output = str(folder / f"{name}_{engine}.parquet") if run == 0 else None
                    found = run_case(python, engine, name, targets.get(engine, ""), paths, output)
                    if "error" in found and not measured.get(engine):
                        results[engine] = found
                    elif "error" not in found:
                        measured.setdefault(engine, []).append(found)
            for engine, good in measured.items():
                results[engine] = {
                    "seconds": statistics.median(m["seconds"] for m in good),
                    "all_seconds": [m["seconds"] for m in good],
                    "peak_mb": max(m["peak_mb"] for m in good),
                    "rows": good[0]["rows"],
                    "runs": len(good),
                }
                if "import_seconds" in good[0]:
                    results[engine]["import_seconds"] = statistics.median(m["import_seconds"] for m in good)
                if "columns" in good[0]:
                    results[engine]["columns"] = good[0]["columns"]
                outputs[engine] = str(folder / f"{name}_{engine}.parquet")
            for engine in engines:
                shown = results[engine]
                if "error" in shown:
                    print(f"  {engine:9s} {shown['error']}", flush=True)
                else:
                    each = ", ".join(f"{x:.3f}" for x in shown["all_seconds"])
                    print(
                        f"  {engine:9s} {shown['seconds']:8.3f} s  peak {shown['peak_mb']:7.0f} MB  "
                        f"{shown['rows']:,} rows  (runs: {each})",
                        flush=True,
                    )
            if "seconds" in results.get("duckdb", {}) and "seconds" in results.get("asof", {}):
                same = results["duckdb"]["columns"] == results["asof"]["columns"]
                ratio = results["duckdb"]["seconds"] / results["asof"]["seconds"]
                results["duckdb_over_asof"] = ratio
                print(f"  indb DuckDB / ASOF floor: {ratio:.2f}x (same output columns: {same})", flush=True)
            checks = {}
            for other in ("asof", "postgres", "feast"):
                if "duckdb" in outputs and other in outputs:
                    checks[f"duckdb_vs_{other}"] = compare(outputs["duckdb"], outputs[other])
                    print(f"  duckdb vs {other}: {checks[f'duckdb_vs_{other}']}", flush=True)
            if "feast" in outputs and "duckdb" in results:
                ratio = results["feast"]["seconds"] / results["duckdb"]["seconds"]
                print(f"  Feast / indb DuckDB: {ratio:.1f}x", flush=True)
            report["datasets"][name] = {"results": results, "checks": checks}
            if name == "shallow" and "duckdb" in engines:
                target = targets["duckdb"]
                runs = [
                    run_case(sys.executable, "online", name, target, paths, None) for _ in range(args.runs)
                ]
                good = [r for r in runs if "error" not in r]
                online = {k: statistics.median(r[k] for r in good) for k in good[0]} if good else runs[-1]
                online["runs"] = good
                report["online"] = online
                shown = {k: round(v, 4) for k, v in online.items() if k != "runs"}
                print(f"  online lookup + materialize (DuckDB, medians of {len(good)}): {shown}", flush=True)
            for path in paths.values():
                os.unlink(path)
    finally:
        if stop_pg is not None:
            stop_pg()
        shutil.rmtree(folder, ignore_errors=True)
    print("RESULT " + json.dumps(report))


if __name__ == "__main__":
    main()
