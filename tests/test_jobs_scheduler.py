"""Jobs on DuckDB: runs recorded as they go, the scheduler against a clock the test drives
(due, missed and caught up, overlapping, on_alert), timeouts, failures and their alert,
SIGTERM in the middle of a run (a real process), and a second scheduler refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import indb
from indb.jobs import actions, api, runner
from indb.jobs.clock import ManualClock
from indb.jobs.scheduler import Scheduler, SchedulerError

ROOT = Path(__file__).resolve().parent.parent
_flaky: dict[str, int] = {}


def _noop(backend, arguments, context):
    return {"rows": arguments["n"], "scheduled_for": context.scheduled_for}


def _sleep(backend, arguments, context):
    time.sleep(arguments["seconds"])
    return {"slept": arguments["seconds"]}


def _query_forever(backend, arguments, context):
    backend.rows("SELECT count(*) FROM range(100000000000) t(i) WHERE i % 7 = 3")
    return {}


def _fail(backend, arguments, context):
    raise RuntimeError(arguments["message"])


def _flaky_action(backend, arguments, context):
    _flaky[context.job] = _flaky.get(context.job, 0) + 1
    if _flaky[context.job] <= arguments["failures"]:
        raise RuntimeError(f"failure {_flaky[context.job]}")
    return {"rows": 1}


def register_test_actions() -> None:
    """Actions for tests only (the built-in ones are tested in test_jobs_actions.py)."""
    actions.register(actions.Action("test_noop", _noop, optional={"n": 0}))
    actions.register(actions.Action("test_sleep", _sleep, required=("seconds",)))
    actions.register(actions.Action("test_query_forever", _query_forever))
    actions.register(actions.Action("test_fail", _fail, optional={"message": "it broke"}))
    actions.register(actions.Action("test_flaky", _flaky_action, required=("failures",)))


register_test_actions()

T0 = datetime(2025, 1, 1, 0, 0)


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "jobs.duckdb")


@pytest.fixture
def db(path):
    with indb.connect(path) as database:
        yield database


@pytest.fixture
def clock():
    return ManualClock(T0)


def add(db, clock, name, schedule, action, **options):
    arguments = options.pop("arguments", {})
    spec = api.JobSpec(name, schedule, action, arguments, **options)
    return db._call(api.schedule, spec, clock=clock)


def runs(db, name):
    return db.job_runs(name).sort_values("id").reset_index(drop=True)


# -- running one job ------------------------------------------------------------------------------


def test_a_run_is_recorded_with_its_result(db):
    job = db.schedule("count", "*/15 * * * *", "test_noop", n=7, comment="counts")
    assert job.owner and job.arguments == {"n": 7} and job.comment == "counts"
    assert job.next_run.minute % 15 == 0 and job.next_run > datetime.now(UTC).replace(tzinfo=None)
    run = db.run_job("count")
    assert run.status == "succeeded" and run.rows_affected == 7 and run.reason == "manual"
    row = runs(db, "count").iloc[0]
    assert row.status == "succeeded" and row.rows_affected == 7 and row.runner == "manual"
    assert row.host and row.pid == os.getpid() and row.finished_at >= row.started_at
    assert '"rows": 7' in row.result
    status = db.jobs().set_index("name").loc["count"]
    assert status.last_status == "succeeded" and status.runs == 1 and status.consecutive_failures == 0


def test_the_running_row_is_visible_while_it_runs(db, path):
    db.schedule("slow", "@daily", "test_sleep", seconds=1.0)
    worker = threading.Thread(target=lambda: indb.connect(path).run_job("slow"))
    worker.start()
    deadline = time.time() + 10
    seen = None
    while time.time() < deadline and seen is None:
        found = db.sql("SELECT status FROM indb.job_runs WHERE job = 'slow'")
        seen = found.status.iloc[0] if len(found) else None
        time.sleep(0.02)
    worker.join()
    assert seen == "running"
    assert runs(db, "slow").status.tolist() == ["succeeded"]


def test_timeout_interrupts_the_query(db):
    db.schedule("forever", "@daily", "test_query_forever", timeout=0.5)
    started = time.perf_counter()
    run = db.run_job("forever")
    assert time.perf_counter() - started < 10
    assert run.status == "timed_out" and "timed out after 0.5 s" in run.error
    assert db.sql("SELECT 42 AS x").x.iloc[0] == 42  # the connection still works
    assert runs(db, "forever").status.tolist() == ["timed_out"]


def test_a_python_action_past_its_timeout_is_recorded_timed_out(db):
    db.schedule("sleepy", "@daily", "test_sleep", seconds=0.6, timeout=0.1)
    run = db.run_job("sleepy")
    assert run.status == "timed_out" and run.result == {"slept": 0.6}
    assert run.error == "timed out after 0.1 s: the action ran on to its end (not between statements)"


def test_failures_are_recorded_and_raise_one_alert(db):
    db.schedule("broken", "@daily", "test_fail", message="the source is gone", alert_after_failures=2)
    first = db.run_job("broken")
    assert first.status == "failed" and first.error == "RuntimeError: the source is gone"
    assert db.sql("SELECT * FROM indb.alerts WHERE kind = 'job'").empty
    db.run_job("broken")
    alerts = db.sql("SELECT * FROM indb.alerts WHERE kind = 'job'")
    assert len(alerts) == 1
    alert = alerts.iloc[0]
    assert (alert.monitor, alert.feature, alert.metric, alert.status) == (
        "broken",
        "job",
        "consecutive_failures",
        "open",
    )
    assert alert.value == 2 and alert.threshold == 2 and alert.seen_count == 1
    third = db.run_job("broken")
    alerts = db.sql("SELECT * FROM indb.alerts WHERE kind = 'job'")
    assert len(alerts) == 1 and alerts.value.iloc[0] == 3 and alerts.seen_count.iloc[0] == 2
    assert alerts.run_id.iloc[0] == third.id
    assert db.jobs().set_index("name").loc["broken"].consecutive_failures == 3


def test_retries_then_success(db, clock):
    add(db, clock, "flaky", "@daily", "test_flaky", arguments={"failures": 2}, retries=3, retry_delay=5)
    run = runner.run(db.backend, "flaky", clock=clock)
    assert run.status == "succeeded" and run.attempt == 3 and run.reason == "retry"
    history = runs(db, "flaky")
    assert history.status.tolist() == ["failed", "failed", "succeeded"]
    assert history.reason.tolist() == ["manual", "retry", "retry"]
    assert clock.slept == [5, 10]  # backoff: retry_delay, then twice as long, ...
    assert db.sql("SELECT * FROM indb.alerts WHERE kind = 'job'").empty  # ended well


def test_bad_definitions_are_refused_and_nothing_is_stored(db):
    for call, words in (
        (lambda: db.schedule("j", "61 * * * *", "test_noop"), "minute field '61'"),
        (lambda: db.schedule("j", "@daily", "test_noop", timezone="Mars/Olympus"), "unknown time zone"),
        (lambda: db.schedule("j", "@daily", "no_such_action"), "unknown job action 'no_such_action'"),
        (lambda: db.schedule("j", "@daily", "test_noop", m=1), "has no argument 'm'"),
        (lambda: db.schedule("j", "@daily", "test_sleep"), "needs the argument 'seconds'"),
        (lambda: db.schedule("j", None, "test_noop"), "needs a schedule, an on_alert"),
        (lambda: db.schedule("j", "@daily", "test_noop", catch_up="some"), "catch_up must be one of"),
        (lambda: db.schedule("j", "@daily", "test_noop", retries=-1), "retries must be a number >= 0"),
        (lambda: db.schedule("j", "@daily", "test_noop", on_alert={"mon": "x"}), "on_alert is"),
        (lambda: db.schedule("Bad-Name", "@daily", "test_noop"), "job name 'Bad-Name'"),
    ):
        with pytest.raises(indb.IndbError) as caught:
            call()
        assert words in str(caught.value)
    assert db.jobs().empty
    db.schedule("j", "@daily", "test_noop")
    with pytest.raises(indb.IndbError, match="exists already"):
        db.schedule("j", "@hourly", "test_noop")
    assert db.job("j").schedule == "@daily"


def test_dry_run_shows_sql_and_parameters_apart(db):
    plan = db.schedule("j", "@daily", "test_noop", n=1, dry_run=True)
    text = str(plan)
    assert text.startswith("INSERT INTO indb.jobs") and "$name" in text
    assert '"name": "j"' in text and "'j'" not in text.split("-- parameters")[0]
    assert db.jobs().empty
    db.schedule("j", "@daily", "test_noop")
    assert "DELETE FROM indb.jobs" in str(db.unschedule("j", dry_run=True))
    assert "UPDATE indb.jobs SET enabled" in str(db.enable_job("j", False, dry_run=True))
    assert db.job("j").enabled


def test_unschedule_and_enable_are_audited(db):
    db.schedule("j", "@daily", "test_noop")
    db.enable_job("j", False)
    assert not db.job("j").enabled and db.job("j").next_run is None
    db.enable_job("j")
    assert db.job("j").next_run is not None
    db.run_job("j")
    db.unschedule("j")
    assert db.jobs().empty and len(db.job_runs("j")) == 1  # the history stays
    with pytest.raises(indb.NotFoundError, match="job 'k' does not exist"):
        db.job_runs("k")
    logged = db.sql("SELECT action FROM indb.audit_log WHERE object = 'j' ORDER BY id").action.tolist()
    assert logged == ["schedule_job", "disable_job", "enable_job", "unschedule_job"]
    with pytest.raises(indb.NotFoundError, match="job 'j' does not exist"):
        db.unschedule("j")


# -- the scheduler against a clock the test drives --------------------------------------------------


def test_due_jobs_run_once_at_their_time(db, clock):
    add(db, clock, "hourly", "0 * * * *", "test_noop")
    scheduler = Scheduler(db.backend, clock=clock)
    clock.set(datetime(2025, 1, 1, 0, 59))
    assert scheduler.tick() == []
    assert scheduler.seconds_to_next() == 30.0  # poll bounds the sleep
    assert Scheduler(db.backend, clock=clock, poll=3600).seconds_to_next() == 60.0  # else the next due
    clock.set(datetime(2025, 1, 1, 1, 0))
    done = scheduler.tick()
    assert [(r.status, r.reason, r.scheduled_for) for r in done] == [
        ("succeeded", "schedule", datetime(2025, 1, 1, 1))
    ]
    assert scheduler.tick() == []
    assert db.job("hourly").next_run == datetime(2025, 1, 1, 2)
    row = runs(db, "hourly").iloc[0]
    assert row.runner == "scheduler" and row.started_at == datetime(2025, 1, 1, 1)


@pytest.mark.parametrize(
    "policy, statuses, reasons",
    [
        ("latest", ["skipped"] * 4 + ["succeeded"], ["catch_up"] * 4 + ["schedule"]),
        ("all", ["succeeded"] * 5, ["catch_up"] * 4 + ["schedule"]),
        ("none", ["skipped"] * 5, ["catch_up"] * 5),
    ],
)
def test_missed_runs_follow_the_catch_up_policy(db, clock, policy, statuses, reasons):
    add(db, clock, "hourly", "0 * * * *", "test_noop", catch_up=policy)
    clock.set(datetime(2025, 1, 1, 5, 30))  # down from before 01:00 until 05:30
    Scheduler(db.backend, clock=clock).tick()
    history = runs(db, "hourly")
    assert history.status.tolist() == statuses
    assert history.reason.tolist() == reasons
    assert history.scheduled_for.tolist() == [datetime(2025, 1, 1, h) for h in range(1, 6)]
    assert db.job("hourly").next_run == datetime(2025, 1, 1, 6)
    if policy != "all":
        assert f"catch_up={policy}" in history.error.iloc[0]


def test_overlapping_run_is_skipped(db, clock, path):
    add(db, clock, "long", "* * * * *", "test_query_forever")
    other = indb.connect(path)
    worker = threading.Thread(target=lambda: other.run_job("long"))
    worker.start()
    try:
        deadline = time.time() + 10
        while time.time() < deadline and db.sql("SELECT 1 FROM indb.job_runs WHERE status = 'running'").empty:
            time.sleep(0.02)
        clock.set(datetime(2025, 1, 1, 0, 1))
        done = Scheduler(db.backend, clock=clock).tick()
        assert [r.status for r in done] == ["skipped"]
        assert "another run of job 'long' was under way" in done[0].error
    finally:
        assert runner.interrupt(other.backend, "test over") == ["long"]
        worker.join(10)
        other.close()
    assert sorted(runs(db, "long").status) == ["failed", "skipped"]


def test_on_alert_runs_once_per_new_matching_alert(db, clock):
    def alert(monitor, metric):
        db.sql(
            "INSERT INTO indb.alerts (monitor, run_id, window_start, window_end, feature, metric) "
            "VALUES ($m, 1, TIMESTAMP '2025-01-01', TIMESTAMP '2025-01-02', 'income', $x)",
            {"m": monitor, "x": metric},
        )

    alert("loans", "psi")  # before the job: not a reason to run
    add(db, clock, "react", None, "test_noop", on_alert={"monitor": "loans", "metric": "psi"})
    scheduler = Scheduler(db.backend, clock=clock)
    assert scheduler.tick() == []
    alert("loans", "ks")
    alert("cards", "psi")
    assert scheduler.tick() == []
    alert("loans", "psi")
    alert("loans", "psi")
    done = scheduler.tick()
    assert [(r.status, r.reason) for r in done] == [("succeeded", "alert")]
    assert scheduler.tick() == []
    ((newest,),) = db.backend.rows("SELECT max(id) FROM indb.alerts")
    assert db.job("react").last_alert_id == newest


# -- the scheduler thread, a second scheduler, SIGTERM ------------------------------------------------


def _make_due(db, name):
    """Due now, once (next_run between two of its times: nothing missed)."""
    moment = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=1)
    db.sql("UPDATE indb.jobs SET next_run = $t WHERE name = $n", {"n": name, "t": moment})


def test_start_scheduler_runs_due_jobs_and_stops_with_close(path):
    db = indb.connect(path)
    db.schedule("soon", "0 0 1 1 *", "test_noop", n=2)
    _make_due(db, "soon")
    try:
        scheduler = db.start_scheduler(poll=0.2)
        deadline = time.time() + 20
        while time.time() < deadline and db.job_runs("soon").empty:
            time.sleep(0.05)
        history = db.job_runs("soon")
        assert history.status.tolist() == ["succeeded"] and history.runner.iloc[0] == "scheduler"
        assert db.job("soon").next_run.year > datetime.now().year
    finally:
        db.close()
    assert not scheduler.thread.is_alive()
    with indb.connect(path) as again:  # the lock went with it
        again.start_scheduler(poll=0.2)


def test_close_interrupts_a_run_past_the_grace(path):
    db = indb.connect(path)
    db.schedule("forever", "0 0 1 1 *", "test_query_forever")
    _make_due(db, "forever")
    try:
        db.start_scheduler(poll=0.2, grace=0.3)
        deadline = time.time() + 20
        while time.time() < deadline and db.sql("SELECT 1 FROM indb.job_runs WHERE status = 'running'").empty:
            time.sleep(0.05)
    finally:
        started = time.perf_counter()
        db.close()
    assert time.perf_counter() - started < 10
    with indb.connect(path) as again:
        history = again.job_runs("forever")
        assert history.status.tolist() == ["failed"]
        assert history.error.iloc[0].startswith("the scheduler stopped: ")


def test_a_second_scheduler_is_refused(path):
    first, second = indb.connect(path), indb.connect(path)
    try:
        first.start_scheduler(poll=0.2)
        with pytest.raises(SchedulerError, match=r"another scheduler \(pid \d+\) already runs"):
            second.start_scheduler()
        with pytest.raises(SchedulerError, match="already runs"):
            Scheduler(second.backend).run_due()
        first.stop_scheduler()
        assert Scheduler(second.backend).run_due() == []
    finally:
        first.close()
        second.close()


def _scheduler_process(path: str, *extra: str) -> subprocess.Popen:
    code = (
        "import sys; from tests.test_jobs_scheduler import register_test_actions; register_test_actions(); "
        "from indb.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, "scheduler", "--db", path, "--poll", "0.2", *extra],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(process: subprocess.Popen, words: str, timeout: float = 60) -> list[str]:
    lines: list[str] = []
    found = threading.Event()

    def read():
        for line in process.stderr:
            lines.append(line)
            if words in line:
                found.set()

    threading.Thread(target=read, daemon=True).start()
    assert found.wait(timeout), "".join(lines)
    return lines


@pytest.mark.parametrize("grace, status", [(0.3, "failed"), (30, "succeeded")])
def test_sigterm_mid_run(path, grace, status):
    with indb.connect(path) as db:
        action = ("test_query_forever", {}) if status == "failed" else ("test_sleep", {"seconds": 1.5})
        db.schedule("work", "0 0 1 1 *", action[0], **action[1])
        _make_due(db, "work")
    process = _scheduler_process(path, "--grace", str(grace))
    try:
        lines = _wait_for(process, "job work: run 1 started")
        second = subprocess.run(
            [sys.executable, "-m", "indb.cli", "jobs", "run-due", "--db", path],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 1 and "lock" in second.stderr  # DuckDB's file lock
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, "".join(lines)
    finally:
        if process.poll() is None:
            process.kill()
    with indb.connect(path) as db:
        history = db.job_runs("work")
        assert history.status.tolist() == [status]
        if status == "failed":
            assert history.error.iloc[0].startswith("the scheduler stopped (SIGTERM)")
        assert db.sql("SELECT * FROM indb.job_runs WHERE status = 'running'").empty
        assert Scheduler(db.backend).run_due() == []  # the scheduler's lock was released


# -- PostgreSQL: the same Python API calls the server's functions (sql/postgres/jobs.sql) --------


def test_python_api_on_postgres_calls_the_server(pg_dsn):
    """Runs once the server side (indb.schedule, indb.run_job) is installed by the backend."""
    import psycopg

    from tests.pg_fixtures import require_pg_extension

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        require_pg_extension(conn, "pg_cron")
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
    with indb.connect(pg_dsn) as db:
        if (
            db.backend.rows("SELECT to_regprocedure('indb.schedule(text,text,text,jsonb,jsonb)')")[0][0]
            is None
        ):
            pytest.skip("indb.schedule is not installed on this branch (the pgjobs part of issue 12)")
        plan = db.schedule("pg_sql_job", "*/5 * * * *", "sql", statement="SELECT 1", dry_run=True)
        assert str(plan).startswith("SELECT indb.schedule(") and '"statement": \\"SELECT 1\\"' not in str(
            plan
        )
        job = db.schedule("pg_sql_job", "*/5 * * * *", "sql", statement="SELECT 1", retries=1, comment="c")
        assert (job.schedule, job.retries, job.comment, job.arguments) == (
            "*/5 * * * *",
            1,
            "c",
            {"statement": "SELECT 1"},
        )
        run = db.run_job("pg_sql_job")
        assert run.status == "succeeded" and run.job == "pg_sql_job"
        history = db.job_runs("pg_sql_job")
        assert history.status.tolist() == ["succeeded"] and history.runner.iloc[0] == "manual"
        assert db.jobs().set_index("name").loc["pg_sql_job"].last_status == "succeeded"
        db.enable_job("pg_sql_job", False)
        assert not db.job("pg_sql_job").enabled
        with pytest.raises(SchedulerError, match="pg_cron"):
            db.start_scheduler()
        db.unschedule("pg_sql_job")
        assert "pg_sql_job" not in db.jobs().name.tolist()
        with pytest.raises(indb.IndbError):
            db.schedule("pg_bad", "61 * * * *", "sql", statement="SELECT 1")
        # refused by the server (pg_cron cannot run every 90 minutes): the same JobError class
        with pytest.raises(indb.errors.JobError, match="90 minutes"):
            db.schedule("pg_bad", "90 minutes", "sql", statement="SELECT 1")
        # pg_cron names the entry indb.<job>: 58 characters is the longest job name
        with pytest.raises(indb.errors.InvalidNameError, match="58"):
            db.schedule("j" * 59, "@daily", "sql", statement="SELECT 1")
        assert db.jobs().empty


def test_an_in_memory_database_has_no_scheduler_thread():
    with indb.connect("duckdb:///:memory:") as db:
        with pytest.raises(SchedulerError, match="needs a database file"):
            db.start_scheduler()
        db.schedule("j", "@daily", "test_noop")
        assert db.run_job("j").ok  # runs by hand still work


def test_a_run_left_running_by_a_killed_scheduler_is_recorded_failed(path):
    """kill -9 mid-run leaves the run 'running'; the next scheduler on the file records it failed."""
    with indb.connect(path) as db:
        db.schedule("work", "0 0 1 1 *", "test_sleep", seconds=60)
        _make_due(db, "work")
    process = _scheduler_process(path)
    try:
        _wait_for(process, "job work: run 1 started")
        process.send_signal(signal.SIGKILL)
        process.wait(60)
    finally:
        if process.poll() is None:
            process.kill()
    with indb.connect(path) as db:
        (left,) = db.job_runs("work").itertuples()
        assert left.status == "running" and left.pid == process.pid
        Scheduler(db.backend).run_due()
        history = db.job_runs("work")
        killed = history[history.id == left.id].iloc[0]
        assert killed.status == "failed" and f"pid {process.pid} " in killed.error
        assert killed.finished_at is not None
        assert db.sql("SELECT * FROM indb.job_runs WHERE status = 'running'").empty
