"""``retain``: delete (or archive) a deployment's rows, or job runs, older than ``days``.

Arguments: ``days`` (>= 0); ``deployment`` with optional ``tables`` (any of ``requests``,
``predictions``, ``ground_truth``; default all three), or ``job_runs: true``; ``batch_size``
(10000) and ``archive`` (false). Statements: sql/jobs_actions.sql.

What goes, for a deployment (by its tables' own times, ``created_at``, ``scored_at`` and
``observed_at``, which hold the session's local time as their defaults write it: the run's
time is converted to it; job runs are in UTC):

1. The cutoff starts at ``now - days``. Monitors on the deployment re-run from their
   ``last_window``, so the cutoff moves back to the oldest ``last_window``, then to the start
   of the monitor window it falls in (no reported window is left half-deleted). A monitor
   windowed by a request column (``time_column``) moves it back to the earliest ``scored_at``
   and ``created_at`` of the rows in its windows from ``last_window`` on. A monitor that never
   ran reads every row: then nothing is deleted, and the result says which monitor kept them.
2. Predictions scored before the cutoff go; labels observed before it go unless their row's
   prediction is kept; then requests created before it with no prediction and no label left.
   A request table without a ``created_at`` time column keeps its rows (the result says so).

The sweep goes through request ids in ranges of ``batch_size`` (ids from the smallest to the
largest id of a row older than the cutoff); each range is one transaction holding its three
statements, so a concurrent insert waits for at most one batch (call it outside a
transaction: inside one, every batch would join it). A failing batch changes nothing and
stops the sweep; the batches before it stay done. With ``archive`` the rows are first copied
to ``<table>_archive`` in the same schema (created like the table when missing; an archive
whose columns no longer match its table fails the first batch).

For ``job_runs``: finished runs (``finished_at`` before ``now - days``) go, except each job's
last run, its last successful run (``indb.job_status`` reads both) and the run doing the
sweep; archive table ``indb.job_runs_archive``.

Result: ``cutoff``, ``requested_cutoff``, ``batches``, ``rows`` (all tables), ``deleted``
(rows per table; ``archived`` too when archiving), ``longest_batch_seconds``, ``monitors``
(name -> last_window) and ``note`` when something was kept on purpose. Row-mode deployments
(predictions in the request table) are refused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd

from indb import deployments, identifiers
from indb.errors import IndbError, InvalidNameError
from indb.feature_store import times
from indb.identifiers import Quoted
from indb.jobs.actions import Action, _checks, register
from indb.sql import statement

TABLES = ("predictions", "ground_truth", "requests")  # the order a batch deletes in
_TIME = {"requests": "created_at", "predictions": "scored_at", "ground_truth": "observed_at"}
_EPOCH = datetime(1970, 1, 1)


@dataclass
class Sweep:
    """What one retain run deletes: the tables by kind, their slots and the cutoff."""

    cutoff: datetime
    kinds: tuple[str, ...]
    slots: dict[str, Quoted]
    ranges: list[str]  # statements giving (min id, max id) of rows older than the cutoff
    params: dict = field(default_factory=dict)
    result: dict = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # kind -> table (archives are named after it)


def run(backend, arguments: dict, context) -> dict:
    days = _checks.number("retain", "days", arguments["days"], minimum=0)
    batch_size = _checks.whole("retain", "batch_size", arguments["batch_size"], minimum=1)
    archive = _checks.flag("retain", "archive", arguments["archive"])
    job_runs = arguments.get("job_runs")
    if job_runs is not None:
        _checks.flag("retain", "job_runs", job_runs)
    deployment = arguments.get("deployment")
    if (deployment is None) == (not job_runs):
        raise IndbError("action 'retain' needs either a deployment or job_runs: true (not both)")
    if job_runs:
        if arguments.get("tables") is not None:
            raise IndbError("action 'retain': tables applies to a deployment, not to job_runs")
        requested = context.now - timedelta(days=days)  # job_runs' times are UTC
        sweep = _job_runs(backend, requested, context.run_id)
    else:
        ((now,),) = backend.rows(
            statement("jobs_actions", "local_time", backend.dialect), {"now": context.now}
        )
        requested = _timestamp(now) - timedelta(days=days)
        sweep = _deployment(backend, deployment, arguments.get("tables"), requested)
    sweep.result |= {"requested_cutoff": requested.isoformat(sep=" "), "archive": archive}
    if sweep.kinds:
        _sweep(backend, sweep, batch_size, archive)
    return sweep.result


# -- what to delete -------------------------------------------------------------------------------
def _tables(value) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not value or not all(isinstance(v, str) for v in value):
        raise IndbError(f"action 'retain': tables must be a list of {', '.join(TABLES)}; got {value!r}")
    unknown = [v for v in value if v not in TABLES]
    if unknown:
        raise IndbError(f"action 'retain': no table kind {unknown[0]!r} (use any of {', '.join(TABLES)})")
    return tuple(k for k in TABLES if k in value)


def _deployment(backend, name, tables, requested: datetime) -> Sweep:
    chosen = _tables(tables)
    if not isinstance(name, str):
        raise IndbError(f"action 'retain': deployment must be a table name, got {name!r}")
    target = deployments.get(backend, name)
    if target.mode != "bulk":
        raise IndbError(
            f"action 'retain': deployment {target.table!r} keeps its predictions in its request table "
            f"({target.mode} mode); retain sweeps bulk-mode deployments only"
        )
    q = backend.quote
    names = {"requests": target.table, "predictions": target.predictions_table}
    names["ground_truth"] = target.ground_truth_table
    slots = {"table": q(names["requests"]), "predictions": q(names["predictions"])}
    slots["ground_truth"] = q(names["ground_truth"])
    request_columns = backend.table_columns(target.table) or {}
    kinds = chosen or TABLES
    note = []
    if "requests" in kinds and times.kind(request_columns.get("created_at")) is None:
        if chosen is not None:
            raise IndbError(
                f"action 'retain': request table {target.table!r} has no created_at time column, "
                "so its rows have no age; leave requests out of tables"
            )
        kinds = tuple(k for k in kinds if k != "requests")
        note.append(f"requests kept: {target.table!r} has no created_at time column")
    result: dict = {"deployment": target.table, "tables": list(kinds), "rows": 0}
    cutoff, monitors, never, holder = _monitor_cutoff(backend, target, request_columns, requested)
    result["monitors"] = monitors
    result["cutoff"] = cutoff.isoformat(sep=" ")
    if holder is not None and not never:
        note.append(f"monitor {holder!r} still reads rows from {result['cutoff']} on")
    if never:
        note.append(
            f"monitor {never[0]!r} has never run: it reads every row of {target.table!r}, so nothing "
            "was deleted (run it, then retain again)"
        )
        kinds = ()
    if note:
        result["note"] = "; ".join(note)
    ranges = [backend.render("jobs_actions", "id_range", table=q(names[k]), time=q(_TIME[k])) for k in kinds]
    return Sweep(cutoff, kinds, slots, ranges, {}, result, names)


def _monitor_cutoff(backend, target, request_columns, requested):
    """(cutoff, monitor -> last_window, monitors that never ran, the monitor that moved the
    cutoff back or None): see the module's 1."""
    found = backend.rows(
        statement("jobs_actions", "deployment_monitors", backend.dialect),
        {"deployment": target.table, "schema": backend.current_schema()},
    )
    cutoff, windows, never, shown, holder = requested, [], [], {}, None
    for name, last_window, time_column, seconds in found:
        last = _timestamp(last_window)
        shown[name] = None if last is None else last.isoformat(sep=" ")
        if last is None:
            never.append(name)
            continue
        if time_column is None:
            windows.append(int(seconds))
            needed = last
        else:
            needed = _time_column_floor(backend, target, request_columns, time_column, last)
        if needed is not None and needed < cutoff:
            cutoff, holder = needed, name
    while windows:  # into the start of the window it falls in, for every window length
        floored = min(_bucket(cutoff, seconds) for seconds in windows)
        if floored == cutoff:
            break
        cutoff = floored
    return cutoff, shown, never, holder


def _time_column_floor(backend, target, request_columns, time_column, last) -> datetime | None:
    """The earliest scored_at or created_at of the rows a monitor windowed by a request column
    reads from its last window on (None: no such rows)."""
    from indb.monitoring import monitors as monitoring

    q = backend.quote
    kind = request_columns.get(time_column, "TIMESTAMP")
    request_time = Quoted(
        f"r.{q('created_at')}" if "created_at" in request_columns else f"p.{q('scored_at')}"
    )
    text = backend.render(
        "jobs_actions",
        "time_column_floor",
        table=q(target.table),
        predictions=q(target.predictions_table),
        window_time=monitoring._window_time(backend, "r", time_column, kind),
        request_time=request_time,
    )
    moments = [_timestamp(v) for v in backend.rows(text, {"since": last})[0]]
    return min((m for m in moments if m is not None), default=None)


def _job_runs(backend, requested: datetime, run_id: int) -> Sweep:
    result = {"job_runs": True, "tables": ["job_runs"], "rows": 0, "cutoff": requested.isoformat(sep=" ")}
    ranges = [statement("jobs_actions", "job_runs_range", backend.dialect)]
    return Sweep(requested, ("job_runs",), {}, ranges, {"run_id": int(run_id)}, result)


# -- the sweep ----------------------------------------------------------------------------------
def _archive_names(backend, sweep: Sweep) -> dict[str, Quoted]:
    """The archive table per kind (created like its table when missing)."""
    if sweep.kinds == ("job_runs",):
        backend.execute(statement("jobs_actions", "create_job_runs_archive", backend.dialect))
        return {}
    archives = {}
    for kind in sweep.kinds:
        source = sweep.names[kind]
        archive = f"{source}_archive"
        if len(archive) > identifiers.MAX_NAME:
            raise InvalidNameError(
                f"action 'retain': archive table name {archive!r} is longer than {identifiers.MAX_NAME} "
                "characters; retain without archive, or archive by hand"
            )
        archives[kind] = backend.quote(archive)
        backend.execute(
            backend.render(
                "jobs_actions", "create_archive", archive=archives[kind], table=backend.quote(source)
            )
        )
    return archives


def _sweep(backend, sweep: Sweep, batch_size: int, archive: bool) -> None:
    bounds = [backend.rows(text, {"cutoff": sweep.cutoff})[0] for text in sweep.ranges]
    lows = [int(low) for low, _ in bounds if low is not None]
    highs = [int(high) for _, high in bounds if high is not None]
    counts = {kind: 0 for kind in sweep.kinds}
    moved = dict(counts)
    batches, longest = 0, 0.0
    if lows:
        archives = {}
        if archive:
            with backend.transaction():
                archives = _archive_names(backend, sweep)
        low, last = min(lows), max(highs)
        while low <= last:
            params = {**sweep.params, "cutoff": sweep.cutoff, "low": low, "high": low + batch_size}
            started = time.perf_counter()
            with backend.transaction():
                for kind in sweep.kinds:
                    slots = {**sweep.slots, "archive": archives.get(kind, Quoted(""))}
                    if archive:
                        moved[kind] += _count(backend, f"archive_{kind}", slots, params)
                    counts[kind] += _count(backend, f"delete_{kind}", slots, params)
            longest = max(longest, time.perf_counter() - started)
            batches += 1
            low += batch_size
    sweep.result |= {
        "batches": batches,
        "rows": sum(counts.values()),
        "deleted": counts,
        "longest_batch_seconds": round(longest, 6),
    }
    if archive:
        sweep.result["archived"] = moved


def _count(backend, name: str, slots: dict[str, Quoted], params: dict) -> int:
    ((changed,),) = backend.rows(backend.render("jobs_actions", name, **slots), params)
    return int(changed)


def _bucket(moment: datetime, seconds: int) -> datetime:
    offset = (moment - _EPOCH).total_seconds()
    return _EPOCH + timedelta(seconds=(offset // seconds) * seconds)


def _timestamp(value) -> datetime | None:
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).to_pydatetime().replace(tzinfo=None)


ACTION = register(
    Action(
        "retain",
        run,
        required=("days",),
        optional={
            "deployment": None,
            "tables": None,
            "job_runs": None,
            "batch_size": 10_000,
            "archive": False,
        },
        description="delete or archive rows older than N days, in batches, keeping what monitors need",
    )
)
