"""Running one job where the database has no procedures (DuckDB): the run is recorded as it goes.

A run inserts its ``job_runs`` row as ``running`` first (visible while it runs), takes the job's
lock (a second run of the same job meanwhile is recorded ``skipped``), runs the action under
the job's timeout (the connection is interrupted: ``timed_out``), records ``succeeded`` with the
action's result JSON or ``failed`` with the error, retries ``retries`` times with backoff
(``retry_delay`` seconds, then twice that, ...; reason ``retry``), and after
``alert_after_failures`` failures in a row opens one ``indb.alerts`` row of kind ``job`` that
later failures update while it is open.

Where the database has procedures (PostgreSQL) a run is ``CALL indb.run_job(name)`` inside the
server, which does the same; :func:`run` only calls it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from dataclasses import dataclass
from datetime import datetime

from indb.backends.base import Backend
from indb.jobs import actions
from indb.jobs.api import Job, get
from indb.jobs.clock import SYSTEM, Clock
from indb.sql import statement

HOST = socket.gethostname()
log = logging.getLogger("indb.jobs")
RUNNERS = ("scheduler", "manual")

# One lock per (database, job) in this process: a DuckDB file has one writing process, so
# runs that could overlap are threads of this one.
_locks: dict[tuple[str, str], threading.Lock] = {}
_running: dict[tuple[str, str], _Watch] = {}
_guard = threading.Lock()


@dataclass(frozen=True)
class Run:
    """One attempt of a job, as recorded in ``indb.job_runs``."""

    id: int
    job: str
    status: str
    attempt: int = 1
    reason: str = "manual"
    error: str | None = None
    result: dict | None = None
    rows_affected: int | None = None
    scheduled_for: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


def _scope(backend: Backend) -> str:
    return str(getattr(backend, "scope", None) or backend.url)


def _interrupt(backend: Backend) -> None:
    """Stop the statements running on this connection and its workers (DuckDB:
    ``connection.interrupt()`` on each; a monitor run's statements run on cursors of their own)."""
    backend.interrupt()


class _Watch:
    """Interrupts an attempt once, for a reason (its timeout, or the scheduler stopping), and
    never after the attempt has finished."""

    def __init__(self, backend: Backend):
        self.backend = backend
        self.reason: str | None = None
        self.done = False
        self._lock = threading.Lock()

    def fire(self, reason: str) -> bool:
        with self._lock:
            if self.done or self.reason is not None:
                return False
            self.reason = reason
            _interrupt(self.backend)
            return True

    def finish(self) -> None:
        with self._lock:
            self.done = True


def interrupt(backend: Backend, reason: str) -> list[str]:
    """Interrupt every run under way on ``backend``'s database; the jobs interrupted."""
    scope = _scope(backend)
    with _guard:
        watched = [(job, w) for (s, job), w in _running.items() if s == scope]
    return [job for job, watch in watched if watch.fire(reason)]


def run(
    backend: Backend,
    name: str,
    *,
    runner: str = "manual",
    reason: str = "manual",
    scheduled_for: datetime | None = None,
    clock: Clock = SYSTEM,
    stop: threading.Event | None = None,
    job: Job | None = None,
) -> Run:
    """Run a job now (with its retries) and return its last attempt; ``job``: its row, when
    the caller has just read it."""
    if backend.supports_procedures:
        ((run_id,),) = backend.rows(statement("jobs", "server_run_job", backend.dialect), {"name": name})
        return get_run(backend, run_id)
    job = job if job is not None and job.name == name else get(backend, name)
    key = (_scope(backend), name)
    with _guard:
        lock = _locks.setdefault(key, threading.Lock())
    if not lock.acquire(blocking=False):
        with _guard:
            under_way = _running.get(key)
        text = f"another run of job {name!r} was under way" + (
            f" (run {under_way.run_id})" if under_way is not None and hasattr(under_way, "run_id") else ""
        )
        return skip(backend, job, scheduled_for, reason, text, runner=runner, clock=clock)
    try:
        attempt, why = 1, reason
        while True:
            result = _attempt(backend, job, attempt, why, runner, scheduled_for, clock)
            stopping = stop is not None and stop.is_set()
            if result.ok or attempt > job.retries or stopping:
                break
            clock.sleep(backoff(job.retry_delay, attempt), stop)
            attempt, why = attempt + 1, "retry"
        if not result.ok:
            _raise_alert(backend, job, result, clock)
        return result
    finally:
        lock.release()


def backoff(retry_delay: float, attempt: int) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1, 2, ...): retry_delay, twice that, ...
    (PostgreSQL's indb.run_job waits the same)."""
    return retry_delay * 2 ** (attempt - 1)


def fail_orphans(backend: Backend, clock: Clock = SYSTEM) -> list[int]:
    """Record as failed the runs another process left 'running' (``kill -9``, a crash): called by
    a scheduler once it holds the database, which no other writing process can then hold. The
    server's own watchdog does this on PostgreSQL."""
    if backend.supports_procedures:
        return []
    rows = backend.rows(
        statement("jobs", "orphan_runs", backend.dialect),
        {"now": clock.now(), "pid": os.getpid(), "host": HOST},
    )
    for (run_id,) in rows:
        log.warning("job run %d: its process ended before it finished; recorded failed", run_id)
    return [int(run_id) for (run_id,) in rows]


def skip(
    backend: Backend,
    job: Job,
    scheduled_for: datetime | None,
    reason: str,
    error: str,
    *,
    runner: str = "scheduler",
    clock: Clock = SYSTEM,
) -> Run:
    ((run_id,),) = backend.rows(
        statement("jobs", "skipped_run", backend.dialect),
        {
            "job": job.name,
            "scheduled_for": scheduled_for,
            "now": clock.now(),
            "reason": reason,
            "error": error,
            "runner": runner,
            "host": HOST,
            "pid": os.getpid(),
        },
    )
    log.info("job %s: run %d skipped: %s", job.name, run_id, error)
    return Run(int(run_id), job.name, "skipped", 1, reason, error, scheduled_for=scheduled_for)


def _attempt(
    backend: Backend,
    job: Job,
    attempt: int,
    reason: str,
    runner: str,
    scheduled_for: datetime | None,
    clock: Clock,
) -> Run:
    started = clock.now()
    ((run_id,),) = backend.rows(
        statement("jobs", "start_run", backend.dialect),
        {
            "job": job.name,
            "scheduled_for": scheduled_for,
            "now": started,
            "status": "running",
            "attempt": attempt,
            "reason": reason,
            "runner": runner,
            "host": HOST,
            "pid": os.getpid(),
        },
    )
    run_id = int(run_id)
    log.info("job %s: run %d started (attempt %d, %s)", job.name, run_id, attempt, reason)
    watch = _Watch(backend)
    watch.run_id = run_id
    key = (_scope(backend), job.name)
    with _guard:
        _running[key] = watch
    timer = None
    if job.timeout:
        timer = threading.Timer(job.timeout, watch.fire, args=(f"timed out after {job.timeout:g} s",))
        timer.daemon = True
        timer.start()
    status, result, error = "succeeded", None, None
    try:
        action = actions.get(job.action)
        context = actions.Context(job.name, run_id, job.owner, scheduled_for, started)
        result = action.run(backend, action.check(dict(job.arguments)), context) or {}
        if not isinstance(result, dict):
            raise TypeError(f"action {job.action!r} returned {type(result).__name__}, not a dict")
    except Exception as e:
        error = _describe(backend, e)
    finally:
        watch.finish()
        if timer is not None:
            timer.cancel()
        with _guard:
            _running.pop(key, None)
    if watch.reason is not None and (error is not None or watch.reason.startswith("timed out")):
        status = "timed_out" if watch.reason.startswith("timed out") else "failed"
        # Python code between statements cannot be interrupted: it ran on past its timeout.
        error = f"{watch.reason}: " + (error or "the action ran on to its end (not between statements)")
    elif error is not None:
        status = "failed"
    elif isinstance(result.get("error"), str):  # the action failed, keeping what it recorded
        status, error = "failed", result["error"]
    rows = result.get("rows") if result else None
    backend.execute(
        statement("jobs", "finish_run", backend.dialect),
        {
            "id": run_id,
            "status": status,
            "now": clock.now(),
            "rows": None if rows is None else int(rows),
            "result": None if result is None else json.dumps(result, default=str),
            "error": error,
        },
    )
    log.info("job %s: run %d %s%s", job.name, run_id, status, f": {error}" if error else "")
    return Run(
        run_id,
        job.name,
        status,
        attempt,
        reason,
        error,
        result,
        None if rows is None else int(rows),
        scheduled_for,
    )


def _describe(backend: Backend, error: Exception) -> str:
    translated = backend.translate(error)
    text = str(translated).strip() or type(translated).__name__
    return f"{type(translated).__name__}: {text}"


def _raise_alert(backend: Backend, job: Job, last: Run, clock: Clock) -> int | None:
    """After ``alert_after_failures`` failed attempts in a row: open the job's alert, or
    update the one still open; the alert's id (None below the threshold)."""
    found = backend.rows(statement("jobs", "consecutive_failures", backend.dialect), {"name": job.name})
    failures = int(found[0][0]) if found else 0
    if failures < job.alert_after_failures:
        return None
    now = clock.now()
    params = {
        "job": job.name,
        "run_id": last.id,
        "now": now,
        "failures": float(failures),
        "threshold": float(job.alert_after_failures),
    }
    with backend.transaction():
        open_alert = backend.rows(statement("jobs", "open_job_alert", backend.dialect), {"job": job.name})
        if open_alert:
            backend.execute(
                statement("jobs", "update_job_alert", backend.dialect),
                {"run_id": last.id, "now": now, "failures": float(failures), "id": open_alert[0][0]},
            )
            return int(open_alert[0][0])
        ((alert_id,),) = backend.rows(statement("jobs", "insert_job_alert", backend.dialect), params)
        return int(alert_id)


def get_run(backend: Backend, run_id: int) -> Run:
    row = backend.rows(statement("jobs", "get_run", backend.dialect), {"id": run_id})[0]
    result = json.loads(row[9]) if isinstance(row[9], str) else row[9]
    return Run(int(row[0]), row[1], row[5], int(row[6]), row[7], row[10], result, row[8], row[2])
