"""Scoring speed on PostgreSQL: indb's PL/Python triggers and SQL function against
onnxruntime, plain inserts, an HTTP microservice and pandas.

For each model (LogisticRegression; GradientBoostingClassifier, 100 trees of default
depth), fitted on 20k rows and registered with indb, in one process against one server:

(1) bulk, ``--rows`` rows x 8 float8 features from a source table ``src_bulk``:
  (a) onnx      raw onnxruntime ``session.run`` in this client process on numpy columns
                ([n, 1] each, in the model's input dtype, prepared untimed), one intra-op
                thread as in the server's runtime (the default thread count is shown too)
  (b) plain     ``INSERT INTO plain (f0..f7) SELECT f0..f7 FROM src_bulk``; ``plain`` has the
                deployed request table's exact DDL (id sequence, created_at default), no trigger
  (c) deployed  the same insert into a table deployed in bulk mode: the AFTER INSERT statement
                trigger scores every row into ``<table>_predictions`` (checked afterwards:
                exactly one prediction per inserted row)
  target: c / (a + b) <= 2.0

(2) one-row latency, ``--requests`` timed requests per path after a warm-up, each "insert one
row and get its prediction back", on connections of their own (psycopg, autocommit; psycopg
prepares a statement after 5 executions):
  (i)   row       ``INSERT INTO <row-mode table> (f0..f7) VALUES (...) RETURNING prediction``;
                  a BEFORE INSERT row trigger writes the prediction into the row
  (ii)  plain     the same insert ``RETURNING id`` into a table with the same DDL, no trigger
  (iii) service   an HTTP microservice on 127.0.0.1 (a subprocess: stdlib ThreadingHTTPServer +
                  the sklearn model, refitted from the same seed): parses the JSON request,
                  ``predict_proba`` on a numpy row, inserts the row and its prediction with its
                  own psycopg connection, returns JSON; the client uses http.client keep-alive
  The paths run interleaved in ``--runs`` rounds; p50/p99 are over every timed request.
  target: p50(service) / p50(row) >= 3

(3) ``CREATE TEMP TABLE .. AS SELECT indb.predict_proba_<model>(f0..f7) FROM (..LIMIT n)``
  (PL/Python called once per row) against fetching the same n rows with psycopg into pandas
  and ``predict_proba`` with sklearn (no write back). n is ``--function-rows``, reduced when
  a probe says one run would take longer than ``--function-budget`` seconds (said in the
  output; every figure is for the rows measured). No target: shown for information.
  (f) ``CREATE TEMP TABLE .. AS SELECT * FROM indb.predict_batch_<model>('src_fn')``: every row
  of src_fn (``--function-rows``, keyed by ``id``) scored in chunks, one onnxruntime run each,
  on a connection of its own; checked against sklearn on 10,000 rows joined back by key.
  target: (e) over the same rows / (f) >= 1.0

Every figure is the median of ``--runs`` runs (each from an empty target: TRUNCATE / DROP
outside the timing). Prints machine facts, a table per model with PASS/MISS per target, and
one ``RESULT {json}`` line.

Starts a throwaway PostgreSQL cluster (``tests/pg_server.py``) unless ``--dsn`` or
``INDB_BENCH_PG_DSN`` names a server (its database gets tables src_*, plain_*, bulk_*,
row_*, svc_* replaced).

    python benchmarks/scoring_postgres.py [--rows 100000] [--requests 2000]
        [--function-rows 1000000] [--runs 3] [--models lr,gb] [--dsn postgresql://...]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import psycopg
import sklearn
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

RUNTIME = {"name": "onnx"}  # --runtime: which indb runtime the deployments use

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # tests.pg_server lives in the repo, not in the installed package
    sys.path.insert(0, str(REPO))

from peak_memory import backend_peak_rss_mb, peak_rss_mb  # noqa: E402

import indb  # noqa: E402

FEATURES = [f"f{i}" for i in range(8)]
COLUMNS = ", ".join(FEATURES)
FIT_ROWS = 20_000
MODELS = {
    "lr": lambda: LogisticRegression(max_iter=1000),
    "gb": lambda: GradientBoostingClassifier(n_estimators=100, random_state=0),
}
BULK_TARGET = 2.0  # c/(a+b) at most this
LATENCY_TARGET = 3.0  # p50(service)/p50(row) at least this
BATCH_TARGET = 1.0  # (e)/(f): predict_batch at least as fast as fetch + pandas + sklearn
WARMUP_REQUESTS = 200
PROBE_ROWS = 20_000
NUMPY_DTYPES = {"double": np.float64, "float": np.float32, "int64": np.int64}
DSN_ENV = "INDB_BENCH_PG_DSN"
LABELS = {
    "onnx": "(a) onnxruntime, 1 thread (floor)",
    "onnx_default_threads": "    onnxruntime, default threads",
    "plain": "(b) INSERT .. SELECT, no trigger",
    "deployed": "(c) INSERT .. SELECT, deployed (bulk)",
}
LATENCY_LABELS = {
    "row": "(i)   row mode INSERT .. RETURNING prediction",
    "plain": "(ii)  plain INSERT .. RETURNING id",
    "service": "(iii) HTTP microservice (sklearn + INSERT)",
}


# -- helpers --------------------------------------------------------------------------------------
def median_seconds(run, reset, runs: int) -> float:
    times = []
    for _ in range(runs):
        reset()
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def make_data(rows: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(42)
    x = rng.standard_normal((max(rows, FIT_ROWS), len(FEATURES)))
    logit = x @ np.linspace(-1, 1, len(FEATURES)) + np.sin(2 * x[:, 0]) * x[:, 1]
    y = (logit + 0.5 * rng.standard_normal(len(x)) > 0).astype(np.int64)
    return x, y


def fitted(name: str):
    """The model, fitted on the first FIT_ROWS rows (deterministic: the service refits it)."""
    x, y = make_data(FIT_ROWS)
    frame = pd.DataFrame(x[:FIT_ROWS], columns=FEATURES)
    return MODELS[name]().fit(frame, y[:FIT_ROWS]), frame


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def ddl_for(db, name: str, table: str, mode: str) -> list[str]:
    """The request table's own statements from a dry-run deploy (sequence, table, and in row
    mode the prediction columns), without the trigger and the other deployment objects."""
    keep = rf'(CREATE SEQUENCE .*"{table}_id_seq"|CREATE TABLE "{table}"\s|ALTER TABLE "{table}"\s)'
    return [
        s
        for s in db.deploy(name, table=table, mode=mode, dry_run=True, runtime=RUNTIME["name"]).statements
        if re.match(keep, s)
    ]


def create_plain(conn, db, name: str, table: str, mode: str) -> None:
    conn.execute(f'DROP TABLE IF EXISTS "{table}"')
    conn.execute(f'DROP SEQUENCE IF EXISTS "{table}_id_seq"')
    for text in ddl_for(db, name, table, mode):
        conn.execute(text)


def drop_deployment(db, table: str) -> None:
    try:
        db.undeploy(table, drop_tables=True)
    except indb.NotFoundError:
        pass


def machine(conn) -> dict:
    facts = {
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "loadavg_at_start": [round(v, 2) for v in os.getloadavg()],  # a busy machine skews figures
        "platform": platform.platform(),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "psycopg": psycopg.__version__,
        "indb": indb.__version__,
    }
    facts["pg_server"] = conn.execute("SHOW server_version").fetchone()[0]
    try:
        conn.execute(
            "CREATE OR REPLACE FUNCTION pg_temp.indb_bench_versions() RETURNS text "
            "LANGUAGE plpython3u AS $py$\n"
            "import json, platform, numpy, onnxruntime\n"
            "return json.dumps({'python': platform.python_version(), "
            "'onnxruntime': onnxruntime.__version__, 'numpy': numpy.__version__})\n$py$"
        )
        server = json.loads(conn.execute("SELECT pg_temp.indb_bench_versions()").fetchone()[0])
    except psycopg.Error as e:
        server = {"error": str(e).strip().splitlines()[0]}
    facts["pg_plpython"] = server
    settings = conn.execute(
        "SELECT name, setting FROM pg_settings WHERE name IN ('shared_buffers', 'fsync', "
        "'synchronous_commit', 'max_parallel_workers_per_gather', 'jit') ORDER BY name"
    ).fetchall()
    facts["pg_settings"] = dict(settings)
    return facts


# -- (iii) the microservice, run as a subprocess: ``--serve MODEL --serve-dsn ... --serve-table``
def serve(name: str, dsn: str, table: str) -> None:
    import warnings
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    # The model was fitted on a DataFrame; the service predicts on a numpy row (faster than
    # building a one-row DataFrame per request) and silences sklearn's feature-name warning.
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    model, _ = fitted(name)
    classes = [c.item() if hasattr(c, "item") else c for c in model.classes_]
    conn = psycopg.connect(dsn, autocommit=True)
    probability_columns = [f"probability_{c}" for c in classes]
    insert = (
        f'INSERT INTO "{table}" ({COLUMNS}, model, model_version, runtime, prediction, '
        + ", ".join(probability_columns)
        + ") VALUES ("
        + ", ".join(["%s"] * (len(FEATURES) + 4 + len(classes)))
        + ") RETURNING id"
    )

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive
        disable_nagle_algorithm = True
        wbufsize = 1 << 16  # headers and body leave in one send()

        def do_POST(self):  # noqa: N802
            payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            features = [float(payload[c]) for c in FEATURES]
            proba = model.predict_proba(np.array([features]))[0]
            label = classes[int(proba.argmax())]
            probabilities = proba.tolist()
            row = conn.execute(insert, [*features, name, 1, "sklearn", label, *probabilities]).fetchone()
            body = json.dumps({"id": row[0], "prediction": label, "probabilities": probabilities}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # no line per request on stderr
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        conn.close()


class Service:
    """The microservice subprocess; stopped by ``close()`` (terminate, then kill, by its pid)."""

    def __init__(self, name: str, dsn: str, table: str):
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", name, "--serve-dsn", dsn, "--serve-table", table],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            ready, _, _ = select.select([self.process.stdout], [], [], 120)
            line = self.process.stdout.readline() if ready else ""
            if not line.startswith("PORT "):
                raise RuntimeError(f"the microservice did not start (said {line!r})")
            self.port = int(line.split()[1])
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process.stdout:
            self.process.stdout.close()


# -- (1) bulk -------------------------------------------------------------------------------------
def bench_bulk(db, name: str, x: np.ndarray, runs: int) -> dict:
    conn = db.backend.conn
    rows = len(x)
    run = lambda sql: lambda: conn.execute(sql)  # noqa: E731

    mv = db.get_model(name)
    feeds = {
        spec.onnx_name: np.ascontiguousarray(x[:, [j]], dtype=NUMPY_DTYPES[spec.onnx_type])
        for j, spec in enumerate(mv.signature.inputs)
    }
    onnx = {}
    for key, threads in (("onnx", 1), ("onnx_default_threads", 0)):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(mv.onnx, options, providers=["CPUExecutionProvider"])
        session.run(None, {k: v[:1000] for k, v in feeds.items()})  # warm-up, untimed
        onnx[key] = median_seconds(lambda s=session: s.run(None, feeds), lambda: None, runs)

    insert = f"INSERT INTO {{}} ({COLUMNS}) SELECT {COLUMNS} FROM src_bulk"
    plain = f"plain_{name}"
    create_plain(conn, db, name, plain, "bulk")
    conn.execute(insert.format(plain))  # warm-up, untimed
    plain_s = median_seconds(run(insert.format(plain)), run(f"TRUNCATE {plain}"), runs)

    requests = f"bulk_{name}"
    drop_deployment(db, requests)
    deployment = db.deploy(name, table=requests, runtime=RUNTIME["name"])
    predictions = deployment.predictions_table
    truncate = run(f"TRUNCATE {requests}, {predictions}")
    conn.execute(insert.format(requests))  # warm-up (loads the runtime and the session), untimed
    deployed = median_seconds(run(insert.format(requests)), truncate, runs)
    counts = conn.execute(
        f"SELECT (SELECT count(*) FROM {requests}), count(*), count(DISTINCT p.id), count(r.id) "
        f"FROM {predictions} AS p LEFT JOIN {requests} AS r USING (id)"
    ).fetchone()
    one_each = all(c == rows for c in counts)
    if not one_each:
        raise SystemExit(f"{name}: (requests, predictions, distinct ids, joined) = {counts}, not {rows} each")
    return {
        **onnx,
        "plain": plain_s,
        "deployed": deployed,
        "predictions_one_per_row": one_each,
        "backend_peak_rss_mb": backend_peak_rss_mb(conn),  # the server process that ran (c)
    }


# -- (2) one-row latency --------------------------------------------------------------------------
def bench_latency(db, dsn: str, name: str, x: np.ndarray, requests: int, runs: int, model) -> dict:
    conn = db.backend.conn
    row_table, plain_table, service_table = f"row_{name}", f"plainrow_{name}", f"svc_{name}"
    drop_deployment(db, row_table)
    db.deploy(name, table=row_table, mode="row", runtime=RUNTIME["name"])
    create_plain(conn, db, name, plain_table, "row")
    create_plain(conn, db, name, service_table, "row")
    values = ", ".join(["%s"] * len(FEATURES))
    row_sql = f"INSERT INTO {row_table} ({COLUMNS}) VALUES ({values}) RETURNING prediction"
    plain_sql = f"INSERT INTO {plain_table} ({COLUMNS}) VALUES ({values}) RETURNING id"
    inputs = [[float(v) for v in r] for r in x[: WARMUP_REQUESTS + requests]]
    bodies = [json.dumps(dict(zip(FEATURES, r, strict=True))).encode() for r in inputs]
    headers = {"Content-Type": "application/json"}

    client = psycopg.connect(dsn, autocommit=True)
    service = Service(name, dsn, service_table)
    web = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
    samples: dict[str, list[float]] = {k: [] for k in LATENCY_LABELS}
    answers: dict[str, dict[int, object]] = {"row": {}, "service": {}}
    try:

        def call_row(i):
            answers["row"][i] = client.execute(row_sql, inputs[i]).fetchone()[0]

        def call_plain(i):
            client.execute(plain_sql, inputs[i]).fetchone()

        def call_service(i):
            web.request("POST", "/predict", body=bodies[i], headers=headers)
            response = web.getresponse()
            data = response.read()
            if response.status != 200:
                raise RuntimeError(f"microservice answered {response.status}: {data[:200]!r}")
            answers["service"][i] = json.loads(data)["prediction"]

        paths = {"row": call_row, "plain": call_plain, "service": call_service}
        for call in paths.values():  # warm-up: runtime/session load, prepared statements
            for i in range(WARMUP_REQUESTS):
                call(i)
        # The service refits the model from the same seed: check it is the same model.
        check = model.predict_proba(pd.DataFrame([inputs[0]], columns=FEATURES))[0].tolist()
        web.request("POST", "/predict", body=bodies[0], headers=headers)
        served = json.loads(web.getresponse().read())["probabilities"]
        if not np.allclose(check, served, rtol=0, atol=1e-12):
            raise SystemExit(f"{name}: the microservice's model differs: {served} vs {check}")

        rounds = max(runs, 1)
        order = list(paths)
        for r in range(rounds):  # interleaved, so a change in machine load hits every path
            first = WARMUP_REQUESTS + requests * r // rounds
            last = WARMUP_REQUESTS + requests * (r + 1) // rounds
            for path in order[r % len(order) :] + order[: r % len(order)]:
                call = paths[path]
                timed = samples[path]
                for i in range(first, last):
                    start = time.perf_counter()
                    call(i)
                    timed.append(time.perf_counter() - start)
        row_backend_mb = backend_peak_rss_mb(client)
    finally:
        web.close()
        service.close()
        client.close()

    timed = range(WARMUP_REQUESTS, WARMUP_REQUESTS + requests)
    agree = sum(answers["row"][i] == answers["service"][i] for i in timed)
    unscored = conn.execute(f"SELECT count(*) FROM {row_table} WHERE prediction IS NULL").fetchone()[0]
    stored = conn.execute(f"SELECT count(*) FROM {service_table}").fetchone()[0]
    result = {
        path: {
            "p50_ms": percentile(v, 50) * 1e3,
            "p99_ms": percentile(v, 99) * 1e3,
            "mean_ms": statistics.fmean(v) * 1e3,
            "n": len(v),
        }
        for path, v in samples.items()
    }
    result["labels_agree_row_vs_service"] = f"{agree}/{requests}"
    result["row_mode_rows_without_prediction"] = unscored
    result["service_rows_stored"] = stored
    result["row_backend_peak_rss_mb"] = row_backend_mb
    return result


# -- (3) the SQL function --------------------------------------------------------------------------
def function_sql(name: str, rows: int) -> str:
    return (
        f"CREATE TEMP TABLE proba_{name} AS SELECT indb.predict_proba_{name}({COLUMNS}) AS p "
        f"FROM (SELECT {COLUMNS} FROM src_fn LIMIT {int(rows)}) AS s"
    )


def bench_function(db, dsn: str, name: str, model, wanted: int, budget: float, runs: int) -> dict:
    conn = db.backend.conn
    drop = lambda: conn.execute(f"DROP TABLE IF EXISTS proba_{name}")  # noqa: E731
    probe = min(PROBE_ROWS, wanted)
    drop()
    start = time.perf_counter()
    conn.execute(function_sql(name, probe))  # also the warm-up (runtime and session load)
    probe_s = time.perf_counter() - start
    per_row = probe_s / probe
    rows, note = wanted, None
    if per_row * wanted > budget:
        rows = int(budget / per_row)
        scale = 10 ** max(len(str(rows)) - 2, 0)
        rows = max(probe, rows // scale * scale)
        note = (
            f"function rows reduced from {wanted:,} to {rows:,}: a probe of {probe:,} rows took "
            f"{probe_s:.2f} s ({per_row * 1e6:.1f} us/row), over the {budget:g} s budget per run "
            "(--function-budget)"
        )
    ((count,),) = conn.execute(f"SELECT count(*) FROM (SELECT 1 FROM src_fn LIMIT {rows}) s").fetchall()
    if count != rows:
        raise SystemExit(f"src_fn has only {count} rows, {rows} wanted")
    drop()
    plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + function_sql(name, rows)).fetchall())
    workers = re.search(r"Workers Planned: (\d+)", plan)
    function = median_seconds(lambda: conn.execute(function_sql(name, rows)), drop, runs)
    function_backend_mb = backend_peak_rss_mb(conn)
    ((scored,),) = conn.execute(f"SELECT count(p) FROM proba_{name}").fetchall()
    if scored != rows:
        raise SystemExit(f"{name}: {scored} non-NULL probabilities for {rows} rows")

    fetcher = psycopg.connect(dsn, autocommit=True)
    try:

        def with_pandas(limit=rows):
            cursor = fetcher.execute(f"SELECT {COLUMNS} FROM src_fn LIMIT {int(limit)}")
            frame = pd.DataFrame.from_records(cursor.fetchall(), columns=FEATURES)
            return model.predict_proba(frame)

        with_pandas()  # warm-up
        pandas_s = median_seconds(with_pandas, lambda: None, runs)
        whole = pandas_s
        if rows != wanted:  # (f) scores the whole table: compared with pandas on the same rows
            whole = median_seconds(lambda: with_pandas(wanted), lambda: None, runs)
    finally:
        fetcher.close()
    batch = bench_batch(dsn, name, model, wanted, runs)
    batch["pandas"] = whole
    return {
        "rows": rows,
        "rows_wanted": wanted,
        "note": note,
        "parallel_workers_planned": int(workers[1]) if workers else 0,
        "function": function,
        "pandas": pandas_s,
        "backend_peak_rss_mb": function_backend_mb,
        "batch": batch,
    }


def bench_batch(dsn: str, name: str, model, rows: int, runs: int) -> dict:
    """(f) ``indb.predict_batch_<model>('src_fn')`` over the whole table into a TEMP TABLE, on a
    connection of its own (so its backend's peak memory is this path's alone), checked against
    scikit-learn on a sample of rows joined back by key."""
    batch_sql = f"CREATE TEMP TABLE batch_{name} AS SELECT * FROM indb.predict_batch_{name}('src_fn')"
    with psycopg.connect(dsn, autocommit=True) as conn:
        drop = lambda: conn.execute(f"DROP TABLE IF EXISTS batch_{name}")  # noqa: E731
        conn.execute(batch_sql)  # warm-up: runtime and session load
        ((scored, keys),) = conn.execute(f"SELECT count(*), count(DISTINCT key) FROM batch_{name}").fetchall()
        if scored != rows or keys != rows:
            raise SystemExit(f"{name}: predict_batch gave {scored} rows, {keys} keys for {rows} rows")
        sample = conn.execute(
            f"SELECT {', '.join('s.' + f for f in FEATURES)}, b.probabilities FROM batch_{name} AS b "
            "JOIN src_fn AS s ON s.id = b.key ORDER BY b.key LIMIT 10000"
        ).fetchall()
        expected = model.predict_proba(pd.DataFrame([r[:-1] for r in sample], columns=FEATURES))
        worst = float(np.abs(np.array([r[-1] for r in sample]) - expected).max())
        drop()
        seconds = median_seconds(lambda: conn.execute(batch_sql), drop, runs)
        peak = backend_peak_rss_mb(conn)
    return {"rows": rows, "seconds": seconds, "max_abs_diff_vs_sklearn": worst, "backend_peak_rss_mb": peak}


# -- report ---------------------------------------------------------------------------------------
def verdict(value: float, op: str, goal: float) -> dict:
    return {
        "ratio": round(value, 3),
        "target": f"{op} {goal}",
        "pass": value <= goal if op == "<=" else value >= goal,
    }


def report(name: str, rows: int, bulk: dict, latency: dict, function: dict) -> dict:
    found = {}
    print(f"-- (1) bulk: {rows:,} rows x {len(FEATURES)} float8, median seconds")
    for key, label in LABELS.items():
        print(f"  {label:<40} {bulk[key]:8.4f} s  {rows / bulk[key] / 1e6:7.2f} M rows/s")
    print(f"  predictions table: one row per inserted row: {bulk['predictions_one_per_row']}")
    found["c/(a+b)"] = verdict(bulk["deployed"] / (bulk["onnx"] + bulk["plain"]), "<=", BULK_TARGET)
    print(f"  c/b (trigger cost over the plain insert, no target): {bulk['deployed'] / bulk['plain']:.2f}")
    default_threads = bulk["deployed"] / (bulk["onnx_default_threads"] + bulk["plain"])
    print(f"  c/(a'+b) with default-thread onnxruntime as the floor (no target): {default_threads:.2f}")

    print(f"-- (2) one-row latency: {latency['row']['n']:,} requests per path, ms")
    print(f"  {'':<46} {'p50':>7} {'p99':>7} {'mean':>7}")
    for key, label in LATENCY_LABELS.items():
        t = latency[key]
        print(f"  {label:<46} {t['p50_ms']:7.3f} {t['p99_ms']:7.3f} {t['mean_ms']:7.3f}")
    print(
        f"  row-mode rows without a prediction: {latency['row_mode_rows_without_prediction']}; "
        f"labels agree (row mode vs service): {latency['labels_agree_row_vs_service']}"
    )
    found["p50 service/row"] = verdict(
        latency["service"]["p50_ms"] / latency["row"]["p50_ms"], ">=", LATENCY_TARGET
    )
    print(
        f"  p50 row/plain (trigger cost per row, no target): "
        f"{latency['row']['p50_ms'] / latency['plain']['p50_ms']:.2f}"
    )

    n = function["rows"]
    print(f"-- (3) SQL function over {n:,} rows, median seconds")
    if function["note"]:
        print(f"  NOTE: {function['note']}")
    workers = function["parallel_workers_planned"]
    print(
        f"  {'(d) predict_proba_' + name + '() -> TEMP TABLE':<40} {function['function']:8.3f} s  "
        f"{function['function'] / n * 1e6:7.2f} us/row  (parallel workers planned: {workers})"
    )
    print(
        f"  {'(e) psycopg -> pandas -> sklearn':<40} {function['pandas']:8.3f} s  "
        f"{function['pandas'] / n * 1e6:7.2f} us/row"
    )
    info = function["pandas"] / function["function"]
    print(f"  e/d     {info:7.2f}  (no target)")
    batch = function["batch"]
    print(
        f"  {'(f) predict_batch_' + name + '() -> TEMP TABLE':<40} {batch['seconds']:8.3f} s  "
        f"{batch['seconds'] / batch['rows'] * 1e6:7.2f} us/row  over {batch['rows']:,} rows; "
        f"max |p - sklearn| {batch['max_abs_diff_vs_sklearn']:.1e}; "
        f"backend peak {batch['backend_peak_rss_mb']} MB"
    )
    if batch["rows"] != n:
        print(f"  {'(e) over the same rows':<40} {batch['pandas']:8.3f} s")
    found["pandas/batch"] = verdict(batch["pandas"] / batch["seconds"], ">=", BATCH_TARGET)

    print("-- targets")
    for key, v in found.items():
        print(f"  {key:<16} {v['ratio']:7.2f}  (target {v['target']})  {'PASS' if v['pass'] else 'MISS'}")
    return found


def run(args, dsn: str) -> None:
    db = indb.connect(dsn)
    conn = db.backend.conn
    facts = machine(conn)
    print("machine: " + ", ".join(f"{k}={v}" for k, v in facts.items()))

    size = max(args.rows, args.function_rows, WARMUP_REQUESTS + args.requests)
    x, _ = make_data(size)
    db.write_table("src_bulk", pd.DataFrame(x[: args.rows], columns=FEATURES), replace=True)
    db.write_table("src_fn", pd.DataFrame(x[: args.function_rows], columns=FEATURES), replace=True)
    # src_fn gets a key for predict_batch (the rewrite numbers the rows; untimed)
    conn.execute("ALTER TABLE src_fn ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY")
    conn.execute("VACUUM ANALYZE src_bulk")
    conn.execute("VACUUM ANALYZE src_fn")
    print(
        f"src_bulk: {args.rows:,} rows; src_fn: {args.function_rows:,} rows; models fitted on "
        f"{FIT_ROWS:,} rows; runs per figure: {args.runs}; one-row requests per path: {args.requests:,} "
        f"(+{WARMUP_REQUESTS} warm-up)"
    )

    result = {
        "rows": args.rows,
        "requests": args.requests,
        "function_rows_wanted": args.function_rows,
        "runs": args.runs,
        "runtime": RUNTIME["name"],
        "machine": facts,
        "models": {},
    }
    for name in args.models:
        model, fit_frame = fitted(name)
        db.register_model(name, model, sample=fit_frame)
        print(f"\n== {name}: {type(model).__name__}, {getattr(model, 'n_estimators', 1)} estimator(s) ==")
        bulk = bench_bulk(db, name, x[: args.rows], args.runs)
        latency = bench_latency(db, dsn, name, x, args.requests, args.runs, model)
        function = bench_function(db, dsn, name, model, args.function_rows, args.function_budget, args.runs)
        found = report(name, args.rows, bulk, latency, function)
        result["models"][name] = {
            "bulk_seconds": {k: round(bulk[k], 4) for k in LABELS},
            "predictions_one_per_row": bulk["predictions_one_per_row"],
            # VmHWM of the server process: the bulk one keeps its peak across the function
            # runs that follow on the same connection, so the function's figure includes it
            "peak_rss_mb": {
                "bulk_backend": bulk["backend_peak_rss_mb"],
                "row_mode_backend": latency["row_backend_peak_rss_mb"],
                "function_backend": function["backend_peak_rss_mb"],
            },
            "latency_ms": {k: {m: round(v, 4) for m, v in latency[k].items()} for k in LATENCY_LABELS},
            "labels_agree_row_vs_service": latency["labels_agree_row_vs_service"],
            "function": {
                "rows": function["rows"],
                "note": function["note"],
                "parallel_workers_planned": function["parallel_workers_planned"],
                "seconds": round(function["function"], 4),
                "pandas_seconds": round(function["pandas"], 4),
                "e/d": round(function["pandas"] / function["function"], 3),
                "batch": {
                    k: round(v, 4) if isinstance(v, float) and k != "max_abs_diff_vs_sklearn" else v
                    for k, v in function["batch"].items()
                },
            },
            "ratios": found,
        }
    facts["loadavg_at_end"] = [round(v, 2) for v in os.getloadavg()]
    result["peak_rss_mb"] = peak_rss_mb()  # this client process (data, sklearn, onnxruntime)
    print(f"\nload average at end: {facts['loadavg_at_end']} (at start: {facts['loadavg_at_start']})")
    print(
        f"peak memory: this process {result['peak_rss_mb']} MB; server backends (MB): "
        + "; ".join(f"{n}: {m['peak_rss_mb']}" for n, m in result["models"].items())
    )
    db.close()
    print(f"indb runtime of the deployments: {RUNTIME['name']}")
    print("RESULT " + json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="bulk insert rows")
    parser.add_argument("--requests", type=int, default=2000, help="timed one-row requests per path")
    parser.add_argument("--function-rows", type=int, default=1_000_000, help="rows for the SQL function")
    parser.add_argument(
        "--function-budget", type=float, default=180.0, help="seconds one SQL-function run may take"
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--runtime", default="onnx", choices=["onnx", "sql", "auto"], help="indb runtime to deploy with"
    )
    parser.add_argument("--models", default="lr,gb")
    parser.add_argument("--dsn", default=os.environ.get(DSN_ENV), help=f"a server to use (env {DSN_ENV})")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--serve-dsn", help=argparse.SUPPRESS)
    parser.add_argument("--serve-table", help=argparse.SUPPRESS)
    args = parser.parse_args()
    RUNTIME["name"] = args.runtime
    if args.serve:
        serve(args.serve, args.serve_dsn, args.serve_table)
        return
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = set(args.models) - set(MODELS)
    if unknown:
        parser.error(f"unknown model(s) {sorted(unknown)}; choose from {', '.join(MODELS)}")
    if args.runs < 1 or args.rows < 1 or args.requests < 1 or args.function_rows < 1:
        parser.error("--rows, --requests, --function-rows and --runs must be positive")

    if args.dsn:
        run(args, args.dsn)
        return
    from tests.pg_server import start_cluster

    with tempfile.TemporaryDirectory(prefix="indb-bench-") as tmp:
        dsn, stop = start_cluster(tmp)
        print(f"PostgreSQL: throwaway cluster at {dsn} (tests/pg_server.py)")
        try:
            run(args, dsn)
        finally:
            stop()


if __name__ == "__main__":
    main()
