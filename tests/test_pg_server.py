"""The PostgreSQL test server itself: version, PL/Python with onnxruntime, pg_cron, clean stop.

Every test works inside a transaction it rolls back, so the shared session cluster (or the
server in INDB_TEST_PG_DSN) is left as it was.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import onnx
import psycopg
import pytest
from onnx import TensorProto, helper
from psycopg.conninfo import make_conninfo

from tests.pg_server import DSN_ENV, MIN_MAJOR, find_pg_bin, require_pg_extension, start_cluster

# The pg_dsn fixture; harmless once tests/conftest.py loads the plugin for every test.
pytest_plugins = ["tests.pg_fixtures"]


def _tiny_model() -> bytes:
    """y = x @ W + b for a [None, 2] float input: small enough to check by hand."""
    weights = helper.make_tensor("W", TensorProto.FLOAT, [2, 1], [2.0, -1.0])
    bias = helper.make_tensor("b", TensorProto.FLOAT, [1], [0.5])
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["y"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
        initializer=[weights, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def test_server_is_recent_enough(pg_dsn):
    with psycopg.connect(pg_dsn) as conn:
        version_num = int(conn.execute("SHOW server_version_num").fetchone()[0])
        is_superuser = conn.execute("SHOW is_superuser").fetchone()[0]
    assert version_num >= MIN_MAJOR * 10_000
    assert is_superuser == "on"


def test_plpython_runs_onnxruntime_in_the_server(pg_dsn):
    with psycopg.connect(pg_dsn) as conn:
        require_pg_extension(conn, "plpython3u")
        with conn.transaction(force_rollback=True):
            conn.execute("CREATE EXTENSION IF NOT EXISTS plpython3u")
            conn.execute(
                """
                CREATE FUNCTION pg_temp.ort_version() RETURNS text LANGUAGE plpython3u AS $$
                import numpy, onnxruntime
                return f"{onnxruntime.__version__} numpy {numpy.__version__}"
                $$
                """
            )
            conn.execute(
                """
                CREATE FUNCTION pg_temp.ort_score(model bytea, a float8, b float8)
                RETURNS float8 LANGUAGE plpython3u AS $$
                import numpy, onnxruntime
                session = onnxruntime.InferenceSession(
                    bytes(model), providers=["CPUExecutionProvider"])
                x = numpy.array([[a, b]], dtype=numpy.float32)
                return float(session.run(None, {"x": x})[0][0, 0])
                $$
                """
            )
            version = conn.execute("SELECT pg_temp.ort_version()").fetchone()[0]
            score = conn.execute(
                "SELECT pg_temp.ort_score(%s, %s, %s)", (_tiny_model(), 3.0, 1.0)
            ).fetchone()[0]
    assert version.split()[0].count(".") >= 1, version
    assert np.isclose(score, 2.0 * 3.0 - 1.0 + 0.5)


def test_pg_cron_works_in_the_cron_database(pg_dsn):
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        require_pg_extension(conn, "pg_cron")
        cron_db = conn.execute("SELECT current_setting('cron.database_name', true)").fetchone()[0]
        if not cron_db:
            pytest.skip("pg_cron is installed but not in shared_preload_libraries of this server")
        # The launcher is a background worker; give it a moment after the server start.
        deadline = time.monotonic() + 10
        while True:
            launcher = conn.execute(
                "SELECT datname FROM pg_stat_activity WHERE backend_type = 'pg_cron launcher'"
            ).fetchone()
            if launcher is not None or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert launcher == (cron_db,)

    cron_dsn = make_conninfo(pg_dsn, dbname=cron_db)
    with psycopg.connect(cron_dsn) as conn, conn.transaction(force_rollback=True):
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
        job_id = conn.execute("SELECT cron.schedule('indb-test-job', '*/5 * * * *', 'SELECT 1')").fetchone()[
            0
        ]
        row = conn.execute(
            "SELECT jobname, schedule, command, database FROM cron.job WHERE jobid = %s",
            (job_id,),
        ).fetchone()
    assert row == ("indb-test-job", "*/5 * * * *", "SELECT 1", cron_db)


@pytest.mark.skipif(bool(os.environ.get(DSN_ENV)), reason=f"{DSN_ENV} is set: no local cluster")
def test_stop_removes_the_cluster_and_its_processes(tmp_path):
    if find_pg_bin() is None:
        pytest.skip("no PostgreSQL binaries")
    dsn, stop = start_cluster(tmp_path)
    with psycopg.connect(dsn) as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    data_dir = stop.data_dir
    postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    assert pid != postmaster
    stop()
    stop()  # idempotent
    assert not stop.base.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn, connect_timeout=2)
    try:
        stat = Path(f"/proc/{postmaster}/stat").read_text()
    except FileNotFoundError:
        return
    assert stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X"), "postmaster still running"
