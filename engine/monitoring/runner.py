"""Running a monitor: every window since the last run through the monitor's stored statements.

A run recomputes the last window it computed before (it may have been partial) and every
later window with rows, plus any earlier window whose labels arrived since the previous run;
their old results are replaced. Rows whose metric crosses its threshold open alerts.
Where the database has procedures (PostgreSQL) the run is ``CALL indb.run_monitor(name)``,
the same code pg_cron runs; elsewhere this module runs the same stored statements.

Between reading a window and dropping it, a monitor's statements are independent: each reads
the window's table and the stored reference and inserts its own result rows. Where the
backend has workers (DuckDB: cursors of the same instance) they run at once, each in a
transaction of its own that is rolled back once its rows are read back; the run's own
transaction then writes all of them, so a run is still all or nothing, and a failed
statement's error names it. The default is one worker per DuckDB thread
(:meth:`Backend.statement_workers`); ``workers=1`` runs them one after another.
"""

from __future__ import annotations

import re
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
import pyarrow as pa

from indb.backends.base import Backend
from indb.monitoring import monitors, sinks
from indb.sql import statement

EARLIEST = datetime(1, 1, 1)
# Windows with fewer rows run their statements one after another on the run's connection:
# there planning (tens of ms a statement) outweighs the rows, and statements run at once
# contended for the cores (30 windows of 1,000 rows: 8-15% slower, 30-40% more CPU, 2 cores).
CONCURRENT_ROWS = 100_000
_PARAMETER = re.compile(r"\$[1-4]\b")  # statements without parameters (DROP) take no values


@dataclass(frozen=True)
class RunSummary:
    monitor: str
    run_id: int
    windows: int
    results: int
    crossed: int
    alerts: pd.DataFrame

    def __str__(self) -> str:
        return (
            f"monitor {self.monitor}: run {self.run_id}, {self.windows} window(s), {self.results} "
            f"results, {self.crossed} over threshold, {len(self.alerts)} alert(s) opened or updated"
        )


def run(
    backend: Backend, name: str, *, since: datetime | None = None, workers: int | None = None
) -> RunSummary:
    monitor = monitors.get(backend, name)
    monitors.install(backend)
    with backend.transaction():
        if backend.supports_procedures:
            ((run_id,),) = backend.rows(
                statement("monitoring", "call_run_procedure", backend.dialect), {"name": name, "since": since}
            )
        else:
            run_id = _run_here(backend, monitor, since, workers)
    ((windows, results, crossed),) = backend.rows(
        statement("monitoring", "run_summary", backend.dialect), {"run_id": run_id}
    )
    alerts = backend.query(statement("monitoring", "alerts_of_run", backend.dialect), {"run_id": run_id})
    sinks.deliver(backend, name)
    return RunSummary(name, int(run_id), int(windows), int(results), int(crossed or 0), alerts)


def _bucket(moment: datetime, seconds: int) -> datetime:
    offset = (moment - datetime(1970, 1, 1)).total_seconds()
    return datetime(1970, 1, 1) + timedelta(seconds=(offset // seconds) * seconds)


def _run_here(backend: Backend, monitor: dict, since: datetime | None, workers: int | None = None) -> int:
    name, seconds = monitor["name"], int(monitor["window_seconds"])
    if monitor["windows_sql"] is None:
        raise monitors.MonitorError(
            f"monitor {name!r} was created by an older indb; drop it and create it again"
        )
    start = since or _timestamp(monitor["last_window"]) or EARLIEST
    last_run = _timestamp(monitor["last_run_at"])
    if since is None and last_run is not None:
        ((relabeled,),) = backend.rows(monitor["relabeled_sql"], [seconds, last_run])
        if relabeled is not None and relabeled < start:
            start = relabeled
    if start > EARLIEST:
        start = _bucket(start, seconds)
    ((run_id,),) = backend.rows(statement("monitoring", "next_run_id", backend.dialect))
    backend.execute(
        statement("monitoring", "delete_results", backend.dialect), {"monitor": name, "since": start}
    )
    windows = [w for (w,) in backend.rows(monitor["windows_sql"], [seconds, start])]
    steps = backend.rows(statement("monitoring", "statements", backend.dialect), {"monitor": name})
    width = timedelta(seconds=seconds)
    count = min(backend.statement_workers(workers), len(steps) - 3) if _independent(steps) else 1
    for window in windows:
        values = [name, run_id, window, window + width]
        if count > 1:
            _run_concurrently(backend, steps, values, count)
        else:
            _run_in_turn(backend, [(purpose, text) for _, purpose, text in steps], values)
    backend.execute(statement("monitoring", "update_alerts", backend.dialect), {"run_id": run_id})
    backend.execute(statement("monitoring", "open_alerts", backend.dialect), {"run_id": run_id})
    backend.execute(statement("monitoring", "finish_run", backend.dialect), {"monitor": name})
    return int(run_id)


def _independent(steps: list[tuple]) -> bool:
    """Statements between reading the window and dropping it (monitors.window_statements)."""
    purposes = [purpose for _, purpose, _ in steps]
    window = ["drop window", "read window"]
    return len(purposes) > 4 and purposes[:2] == window and purposes[-1] == "drop window"


def _run_in_turn(backend: Backend, tasks: list[tuple], values: list) -> None:
    """``(purpose, statement)`` pairs one after another on the run's connection."""
    for purpose, text in tasks:
        try:
            backend.execute(text, values if _PARAMETER.search(text) else None)
        except Exception as e:
            raise _failed(backend, purpose, values, e) from e


def _run_concurrently(backend: Backend, steps: list[tuple], values: list, count: int) -> None:
    """One window's statements on ``count`` workers (see the module's docstring)."""
    collect = statement("monitoring", "statement_results", backend.dialect)
    tasks = [(purpose, text) for _, purpose, text in steps[2:-1]]
    with backend.workers(count, steps[1][2], values) as pool:
        if pool.rows < CONCURRENT_ROWS:
            _run_in_turn(backend, tasks, values)
            return
        tables = _gather(backend, pool, tasks, values, collect, count)
    rows = pa.concat_tables([t for t in tables if t is not None])
    if rows.num_rows:
        with backend.staged(rows) as staged:
            backend.execute(backend.render("monitoring", "insert_collected_results", rows=staged))


def _gather(backend: Backend, pool, tasks: list[tuple], values: list, collect: str, count: int) -> list:
    """Every task on the pool; the rows each worker collected (None: written by the run's
    connection). The first failure interrupts the others and is raised, naming its task."""
    with ThreadPoolExecutor(count) as threads:
        futures = {
            threads.submit(
                pool.run, text, values if _PARAMETER.search(text) else None, collect, {"run_id": values[1]}
            ): purpose
            for purpose, text in tasks
        }
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in futures if f in done and f.exception() is not None), None)
        if failed is not None:
            for future in futures:
                future.cancel()
            pool.interrupt()
            wait(futures)
            raise _failed(backend, futures[failed], values, failed.exception()) from failed.exception()
        return [f.result() for f in futures]


def _failed(backend: Backend, purpose: str, values: list, error: Exception) -> Exception:
    """The error of one statement, naming it (``drift income``, ``accuracy``) and its window."""
    return monitors.MonitorError(
        f"monitor {values[0]!r}, window starting {values[2]}: {purpose} failed: {backend.translate(error)}"
    )


def _timestamp(value) -> datetime | None:
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).to_pydatetime()
