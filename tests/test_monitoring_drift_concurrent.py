"""A monitor run's statements run at once on DuckDB cursors (runner._run_concurrently): the
same results as one after another, still all or nothing, and an error names its statement.
PostgreSQL runs them one after another inside ``indb.run_monitor``; it reports one worker."""

from __future__ import annotations

import math

import pandas as pd
import pytest

import indb
from indb.monitoring import runner
from indb.monitoring.thresholds import MonitorError

from .test_monitoring_drift import DAY1, DAY2, deployed, load, samples

COLUMNS = ["run_id", "window_start", "model_version", "feature", "metric", "category"]


@pytest.fixture
def duck(tmp_path, monkeypatch):
    """DuckDB, with windows of any size run at once (the tests' windows are small)."""
    monkeypatch.setattr(runner, "CONCURRENT_ROWS", 0)
    database = indb.connect(f"duckdb://{tmp_path}/concurrent.duckdb")
    yield database
    database.close()


def _monitored(db, mode: str = "exact", name: str = "drift"):
    deployed(db)
    ref, cur = samples(3_000, 2_500, seed=7, ties=False)
    load(db, ref, DAY1)
    load(db, cur, DAY2)
    db.create_monitor(name, "requests", reference=(DAY1, DAY2), features=["x", "y", "c"], mode=mode)


def _rows(db, name: str = "drift") -> pd.DataFrame:
    frame = db.monitor_results(name).drop(columns=["computed_at"], errors="ignore")
    keys = [c for c in ("window_start", "model_version", "feature", "metric", "category") if c in frame]
    return frame.sort_values(keys, na_position="first").reset_index(drop=True)


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    for column in a.columns:
        if column in ("run_id",):
            continue
        for x, y in zip(a[column], b[column], strict=True):
            if isinstance(x, float) and isinstance(y, float) and not (math.isnan(x) and math.isnan(y)):
                # Wasserstein's cell sums are parallel sums: their last bits follow the order
                # DuckDB's threads add them in, one after another as well as at once.
                assert x == pytest.approx(y, rel=1e-12, abs=1e-300), (column, x, y)
            else:
                assert (pd.isna(x) and pd.isna(y)) or x == y, (column, x, y)


@pytest.mark.parametrize("small", [False, True], ids=["at-once", "small-window"])
@pytest.mark.parametrize("mode", ["exact", "binned"])
def test_concurrent_run_equals_serial_run(duck, mode, small, monkeypatch):
    if small:  # windows under CONCURRENT_ROWS: on the run's connection, through the shared copy
        monkeypatch.setattr(runner, "CONCURRENT_ROWS", 10**9)
    _monitored(duck, mode)
    runner.run(duck.backend, "drift", workers=1)
    serial = _rows(duck)
    windows = serial.window_start.nunique()
    assert windows > 1 and len(serial) > 20  # several windows, each through every statement
    for workers in (2, 5):
        summary = runner.run(duck.backend, "drift", since=pd.Timestamp(DAY1).to_pydatetime(), workers=workers)
        assert summary.windows == windows
        _same(serial, _rows(duck))
    assert duck.backend.rows(
        "SELECT count(*) FROM duckdb_databases() WHERE database_name LIKE 'indb_run_%'"
    ) == [(0,)]


def test_concurrent_run_failure_names_the_statement_and_writes_nothing(duck):
    _monitored(duck)
    runner.run(duck.backend, "drift", workers=2)
    before = _rows(duck)
    monitor = duck.sql("SELECT last_run_at, last_window FROM indb.monitors WHERE name = 'drift'")
    # One statement fails while the window is read: its column "y" as a failing expression.
    duck.sql(
        "UPDATE indb.monitor_statements SET statement = "
        "'INSERT INTO indb.monitor_results (run_id, monitor, window_start, window_end, feature, metric) "
        "SELECT $2, $1, $3, $4, ''y'', error(''broken column'') FROM \"temp\".\"indb_monitor_window\"' "
        "WHERE monitor = 'drift' AND purpose = 'drift y'"
    )
    for workers in (2, 1):
        with pytest.raises(MonitorError, match=r"drift y failed: .*broken column"):
            runner.run(duck.backend, "drift", since=pd.Timestamp(DAY1).to_pydatetime(), workers=workers)
        _same(before, _rows(duck))  # the run's delete of these windows was rolled back too
        assert duck.sql("SELECT last_run_at, last_window FROM indb.monitors WHERE name = 'drift'").equals(
            monitor
        )
    assert duck.backend.rows(
        "SELECT count(*) FROM duckdb_databases() WHERE database_name LIKE 'indb_run_%'"
    ) == [(0,)]
    assert duck.sql("SELECT count(*) AS n FROM requests").n[0] == 5_500  # the connection still works


def test_workers_follow_duckdb_threads_and_stay_out_of_a_callers_transaction(duck):
    backend = duck.backend
    ((threads,),) = backend.rows("SELECT current_setting('threads')")
    assert backend.statement_workers() == threads
    duck.sql("SET threads = 1")
    assert backend.statement_workers() == 1
    duck.sql("SET threads = 3")
    assert backend.statement_workers() == 3
    assert backend.statement_workers(5) == 5
    with backend.transaction(), backend.transaction():  # a run inside the caller's transaction
        assert backend.statement_workers() == 1
        assert backend.statement_workers(5) == 1


def test_concurrent_run_inside_a_callers_transaction_sees_its_rows(duck):
    """Inside a transaction the caller opened the statements run on its connection, which
    sees the rows it inserted and has not committed."""
    _monitored(duck)
    with duck.backend.transaction():
        duck.sql("INSERT INTO requests (x, y, c) VALUES (100.0, 1.0, 'zz')")
        duck.sql(
            "UPDATE requests_predictions SET scored_at = CAST($d AS TIMESTAMP) WHERE scored_at > $d",
            {"d": DAY2},
        )
        runner.run(duck.backend, "drift", since=pd.Timestamp(DAY2).to_pydatetime(), workers=4)
        new = duck.sql("SELECT category FROM indb.monitor_results WHERE metric = 'new_category'")
        assert "zz" in set(new.category)


def test_postgresql_runs_statements_in_its_procedure(db):
    """PostgreSQL reports one worker: its run is CALL indb.run_monitor, one statement after
    another in the server; ``workers`` changes nothing there."""
    if db.backend.statement_workers() > 1:
        pytest.skip("this backend runs statements at once (tested above)")
    _monitored(db)
    runner.run(db.backend, "drift", workers=4)
    assert len(_rows(db)) > 20


def test_a_jobs_timeout_interrupts_the_statements_running_at_once(duck):
    """A job's timeout interrupts the backend's connection; the run's statements run on cursors
    of their own, which the interrupt reaches too: the run stops, and writes nothing."""
    _monitored(duck)
    duck.sql(
        "UPDATE indb.monitor_statements SET statement = "
        "'INSERT INTO indb.monitor_results (run_id, monitor, window_start, window_end, feature, metric) "
        "SELECT $2, $1, $3, $4, ''y'', CAST(n AS VARCHAR) FROM "
        "(SELECT count(*) AS n FROM range(100000000000) t(i) WHERE i % 7 = 3)' "
        "WHERE monitor = 'drift' AND purpose = 'drift y'"
    )
    duck.schedule("watch", "@daily", "run_monitor", monitor="drift", timeout=0.5)
    run = duck.run_job("watch")
    assert run.status == "timed_out" and "timed out after 0.5 s" in run.error and "drift y" in run.error
    assert len(duck.monitor_results("drift")) == 0
    assert duck.backend.rows(
        "SELECT count(*) FROM duckdb_databases() WHERE database_name LIKE 'indb_run_%'"
    ) == [(0,)]
    assert duck.sql("SELECT 42 AS x").x.iloc[0] == 42  # the connection still works
