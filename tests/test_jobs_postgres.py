"""Jobs entirely inside PostgreSQL (issue 12, point 4): a DBA schedules, runs and watches jobs
from a plain SQL connection; pg_cron runs them. After indb is installed, every test talks to
the server through psycopg only, as psql would.

pg_cron lives in one database (cron.database_name = the test database, not the per-test copies),
so these tests share that database: each uses its own job names and cleans up its jobs."""

from __future__ import annotations

import threading
import time
import uuid

import psycopg
import pytest

import indb
from tests.pg_fixtures import require_pg_extension
from tests.test_monitoring_drift import DAY1, DAY2, deployed, load
from tests.test_trust_postgres import login_role

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def cron_db(pg_dsn):
    """indb installed in the cron database, with a deployment ('requests') and a monitor
    ('drift') whose second day drifts (so running it opens alerts)."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        require_pg_extension(conn, "pg_cron")
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
    db = indb.connect(pg_dsn)
    if db.sql("SELECT count(*) AS n FROM indb.deployments WHERE table_name = 'requests'").n[0] == 0:
        import numpy as np
        import pandas as pd

        deployed(db)
        rng = np.random.default_rng(7)
        for day, offset in ((DAY1, 0.0), (DAY2, 1.5)):
            frame = pd.DataFrame(
                {
                    "x": rng.normal(offset, 1, 200),
                    "y": rng.exponential(1, 200),
                    "c": rng.choice(list("abc"), 200),
                }
            )
            load(db, frame, day)
        db.create_monitor("drift", "requests", reference=(DAY1, DAY1 + " 23:59:59"), window="1 day")
    yield db
    db.close()


@pytest.fixture
def sql(cron_db, pg_dsn):
    """A plain autocommit psycopg connection (the DBA's psql); removes the jobs it made."""
    conn = psycopg.connect(pg_dsn, autocommit=True)
    conn.execute("CREATE TABLE IF NOT EXISTS public.job_target (x int, at timestamptz DEFAULT now())")
    yield conn
    for (name,) in conn.execute("SELECT name FROM indb.jobs WHERE name LIKE 't\\_%'").fetchall():
        conn.execute("SELECT indb.unschedule(%s)", (name,))
    conn.close()


def _name() -> str:
    return f"t_{uuid.uuid4().hex[:8]}"


def _runs(conn, job: str) -> list[tuple]:
    return conn.execute(
        "SELECT status, attempt, reason, runner, error, rows_affected FROM indb.job_runs "
        "WHERE job = %s ORDER BY id",
        (job,),
    ).fetchall()


def _cron(conn, job: str) -> tuple | None:
    return conn.execute(
        "SELECT schedule, command, active, username FROM cron.job WHERE jobname = %s", ("indb." + job,)
    ).fetchone()


def test_a_job_scheduled_from_sql_runs_by_itself_on_pg_cron(sql):
    """The one slow test: pg_cron 1.4 starts jobs on the minute."""
    name = _name()
    statement = f"INSERT INTO public.job_target (x) VALUES ({len(name)})"
    sql.execute(
        "SELECT indb.schedule(%s, '* * * * *', 'sql', jsonb_build_object('statement', %s::text))",
        (name, statement),
    )
    assert _cron(sql, name) == ("* * * * *", f"CALL indb.run_job('{name}', 'pg_cron')", True, "postgres")
    deadline = time.monotonic() + 75
    while time.monotonic() < deadline:
        runs = [r for r in _runs(sql, name) if r[0] != "running"]
        if runs:
            break
        time.sleep(1)
    assert runs and runs[0][:4] == ("succeeded", 1, "schedule", "pg_cron"), runs
    ((scheduled_for,),) = sql.execute(
        "SELECT scheduled_for FROM indb.job_runs WHERE job = %s ORDER BY id LIMIT 1", (name,)
    ).fetchall()
    assert scheduled_for is not None and scheduled_for.second == 0
    assert sql.execute("SELECT count(*) FROM public.job_target WHERE x = %s", (len(name),)).fetchone()[0] >= 1


def test_run_by_hand_shows_running_while_it_runs_then_succeeded(sql, pg_dsn):
    name = _name()
    sql.execute(
        "SELECT indb.schedule(%s, '@daily', 'sql', %s)",
        (name, '{"statement": "SELECT pg_sleep(1.5)"}'),
    )
    done = []
    worker = threading.Thread(target=lambda: done.append(_call(pg_dsn, name)))
    worker.start()
    seen = None
    for _ in range(100):
        seen = _runs(sql, name)
        if seen:
            break
        time.sleep(0.02)
    assert seen and seen[0][0] == "running"  # committed before the action ran
    worker.join()
    assert _runs(sql, name) == [("succeeded", 1, "manual", "manual", None, 1)]
    assert done and done[0] is not None


def _call(dsn: str, name: str, setup: str | None = None):
    with psycopg.connect(dsn, autocommit=True) as conn:
        if setup:
            conn.execute(setup)
        return conn.execute("CALL indb.run_job(%s)", (name,)).fetchone()[0]


def test_a_failing_job_is_recorded_with_its_error_and_the_next_run_works(sql):
    name = _name()
    sql.execute("CREATE TABLE IF NOT EXISTS public.job_switch (on_ int)")
    sql.execute("TRUNCATE public.job_switch")
    statement = "INSERT INTO job_target (x) SELECT 1 / count(*) FROM job_switch"  # the default search_path
    sql.execute(
        "SELECT indb.schedule(%s, '0 3 * * *', 'sql', jsonb_build_object('statement', %s::text))",
        (name, statement),
    )
    sql.execute("CALL indb.run_job(%s)", (name,))
    sql.execute("INSERT INTO public.job_switch VALUES (1)")
    sql.execute("CALL indb.run_job(%s)", (name,))
    runs = _runs(sql, name)
    assert runs[0][0] == "failed" and runs[0][4] == "division by zero"
    assert runs[1] == ("succeeded", 1, "manual", "manual", None, 1)
    status = sql.execute(
        "SELECT last_status, consecutive_failures, runs FROM indb.job_status WHERE name = %s", (name,)
    ).fetchone()
    assert status == ("succeeded", 0, 2)


def test_retries_then_an_alert_after_n_failures_in_a_row(sql):
    name = _name()
    options = '{"retries": 1, "retry_delay": 0.2, "alert_after_failures": 3}'
    sql.execute(
        "SELECT indb.schedule(%s, '0 3 * * *', 'sql', '{\"statement\": \"SELECT 1/0\"}', %s)", (name, options)
    )
    started = time.monotonic()
    sql.execute("CALL indb.run_job(%s)", (name,))
    assert time.monotonic() - started >= 0.2  # retry_delay between the attempts
    assert [r[:3] for r in _runs(sql, name)] == [("failed", 1, "manual"), ("failed", 2, "retry")]
    alerts = "SELECT kind, metric, value, threshold, status, seen_count FROM indb.alerts WHERE monitor = %s"
    assert sql.execute(alerts, (name,)).fetchall() == []  # 2 failures < 3
    sql.execute("CALL indb.run_job(%s)", (name,))  # opened at the 3rd failure, updated at the 4th
    assert sql.execute(alerts, (name,)).fetchall() == [("job", "consecutive_failures", 4.0, 3.0, "open", 2)]
    sql.execute("CALL indb.run_job(%s)", (name,))  # the open alert is updated, not a second one
    assert sql.execute(alerts, (name,)).fetchall() == [("job", "consecutive_failures", 6.0, 3.0, "open", 4)]


def test_retries_back_off(sql):
    """retry_delay after the first failure, twice that after the second: 0.3 + 0.6 s."""
    name = _name()
    options = '{"retries": 2, "retry_delay": 0.3}'
    sql.execute(
        "SELECT indb.schedule(%s, '0 3 * * *', 'sql', '{\"statement\": \"SELECT 1/0\"}', %s)", (name, options)
    )
    sql.execute("CALL indb.run_job(%s)", (name,))
    runs = sql.execute(
        "SELECT attempt, started_at, finished_at FROM indb.job_runs WHERE job = %s ORDER BY id", (name,)
    ).fetchall()
    assert [r[0] for r in runs] == [1, 2, 3]
    waits = [(later[1] - earlier[2]).total_seconds() for earlier, later in zip(runs, runs[1:], strict=False)]
    assert waits[0] >= 0.3 and waits[1] >= 0.6, waits


def test_a_second_concurrent_run_is_skipped(sql, pg_dsn):
    name = _name()
    sql.execute(
        "SELECT indb.schedule(%s, '0 3 * * *', 'sql', '{\"statement\": \"SELECT pg_sleep(1.5)\"}')", (name,)
    )
    worker = threading.Thread(target=_call, args=(pg_dsn, name))
    worker.start()
    for _ in range(100):
        if _runs(sql, name):
            break
        time.sleep(0.02)
    sql.execute("CALL indb.run_job(%s)", (name,))
    worker.join()
    runs = _runs(sql, name)
    assert sorted(r[0] for r in runs) == ["skipped", "succeeded"]
    assert [r for r in runs if r[0] == "skipped"][0][4] == "another run of this job was still running"
    sql.execute("CALL indb.run_job(%s)", (name,))  # the lock was released
    assert _runs(sql, name)[-1][0] == "succeeded"


def test_a_call_inside_a_transaction_block_is_refused_and_leaves_no_lock_or_running_row(sql, pg_dsn):
    name = _name()
    sql.execute("SELECT indb.schedule(%s, '0 3 * * *', 'sql', '{\"statement\": \"SELECT 1\"}')", (name,))
    with psycopg.connect(pg_dsn) as conn:  # not autocommit: run_job cannot commit
        with pytest.raises(psycopg.Error, match="invalid transaction termination"):
            conn.execute("CALL indb.run_job(%s)", (name,))
        conn.rollback()
        conn.autocommit = True
        assert _runs(sql, name) == []
        sql.execute("CALL indb.run_job(%s)", (name,))  # another session is not skipped
        conn.execute("CALL indb.run_job(%s)", (name,))  # nor this one, which had the lock
        assert [r[0] for r in _runs(sql, name)] == ["succeeded", "succeeded"]
        held = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 1768189541"
        assert sql.execute(held).fetchone() == (0,)


def test_a_timeout_is_recorded_timed_out(sql, pg_dsn):
    """By the tick's watchdog (what pg_cron runs every minute, called here at once), and by a
    statement_timeout the DBA sets before a CALL by hand."""
    name = _name()
    sql.execute(
        "SELECT indb.schedule(%s, '0 3 * * *', 'sql', '{\"statement\": \"SELECT pg_sleep(30)\"}', "
        "'{\"timeout\": 0.5}')",
        (name,),
    )
    assert sql.execute("SELECT active FROM cron.job WHERE jobname = 'indb.tick'").fetchone() == (True,)
    worker = threading.Thread(target=_call, args=(pg_dsn, name))
    started = time.monotonic()
    worker.start()
    time.sleep(1.0)
    sql.execute("CALL indb.run_due_jobs()")
    worker.join(timeout=20)
    assert not worker.is_alive() and time.monotonic() - started < 10
    ((status, error),) = sql.execute(
        "SELECT status, error FROM indb.job_runs WHERE job = %s", (name,)
    ).fetchall()
    assert status == "timed_out" and "canceling statement" in error
    _call(pg_dsn, name, setup="SET statement_timeout = '300ms'")
    assert _runs(sql, name)[-1][0] == "timed_out" and "statement timeout" in _runs(sql, name)[-1][4]
    sql.execute("SELECT indb.unschedule(%s)", (name,))  # the last job that needed the tick
    assert sql.execute("SELECT count(*) FROM cron.job WHERE jobname = 'indb.tick'").fetchone() == (0,)


@pytest.mark.parametrize(
    ("name", "schedule", "action", "arguments", "options", "message"),
    [
        (
            "t_x'); DROP TABLE public.job_target; --",
            "@daily",
            "sql",
            {"statement": "SELECT 1"},
            {},
            "not a plain identifier",
        ),
        ("T_upper", "@daily", "sql", {"statement": "SELECT 1"}, {}, "not a plain identifier"),
        (
            "t_bad_cron",
            "61 * * * *",
            "sql",
            {"statement": "SELECT 1"},
            {},
            "'61 \\* \\* \\* \\*' is not a valid cron",
        ),
        ("t_bad_fields", "* * *", "sql", {"statement": "SELECT 1"}, {}, "not a 5-field cron expression"),
        ("t_bad_interval", "90 minutes", "sql", {"statement": "SELECT 1"}, {}, "interval pg_cron cannot run"),
        ("t_bad_action", "@daily", "train_everything", {}, {}, "unknown job action 'train_everything'"),
        (  # a Python action: checked by indb's registry in the server's PL/Python
            "t_py_action",
            "@daily",
            "ingest",
            {"feature_set": "f", "sql": "SELECT 1"},
            {},
            "action 'ingest' has no argument 'sql'",
        ),
        ("t_bad_arg", "@daily", "sql", {"stmt": "SELECT 1"}, {}, "has no argument 'stmt'"),
        (
            "t_two",
            "@daily",
            "sql",
            {"statement": "SELECT ';'; DROP TABLE public.job_target"},
            {},
            "holds 2 statements",
        ),
        ("t_no_arg", "@daily", "run_monitor", {}, {}, "needs the argument 'monitor'"),
        ("t_no_monitor", "@daily", "run_monitor", {"monitor": "nope"}, {}, 'monitor "nope" does not exist'),
        (
            "t_bad_days",
            "@daily",
            "retain",
            {"days": -1, "job_runs": True},
            {},
            "days must be a number, 0 or more",
        ),
        (
            "t_bad_zone",
            "@daily",
            "sql",
            {"statement": "SELECT 1"},
            {"timezone": "Europe/Paris"},
            "runs schedules in",
        ),
        ("t_bad_option", "@daily", "sql", {"statement": "SELECT 1"}, {"retry": 2}, "unknown option 'retry'"),
        (
            "t_bad_retries",
            "@daily",
            "sql",
            {"statement": "SELECT 1"},
            {"retries": 1.5},
            "retries must be a whole",
        ),
        ("t_nothing", None, "sql", {"statement": "SELECT 1"}, {}, "needs a schedule or an on_alert"),
    ],
)
def test_bad_input_is_refused_clearly_and_nothing_is_created(
    sql, name, schedule, action, arguments, options, message
):
    from psycopg.types.json import Jsonb

    counts = "SELECT (SELECT count(*) FROM indb.jobs), (SELECT count(*) FROM cron.job)"
    before = sql.execute(counts).fetchone()
    with pytest.raises(psycopg.Error, match=message):
        sql.execute(
            "SELECT indb.schedule(%s, %s, %s, %s, %s)",
            (name, schedule, action, Jsonb(arguments), Jsonb(options)),
        )
    assert sql.execute(counts).fetchone() == before
    assert sql.execute("SELECT to_regclass('public.job_target')").fetchone()[0] is not None


def test_an_existing_name_is_refused_and_interval_maps_to_cron(sql):
    name = _name()
    sql.execute("SELECT indb.schedule(%s, '15 minutes', 'run_monitor', '{\"monitor\": \"drift\"}')", (name,))
    assert _cron(sql, name)[0] == "*/15 * * * *"
    ((next_run, now),) = sql.execute(
        "SELECT next_run, timezone('UTC', now()) FROM indb.jobs WHERE name = %s", (name,)
    ).fetchall()  # croniter in the server's Python
    assert next_run > now and next_run.minute % 15 == 0 and next_run.second == 0
    assert (next_run - now).total_seconds() <= 15 * 60
    with pytest.raises(psycopg.Error, match="already exists"):
        sql.execute("SELECT indb.schedule(%s, '@hourly', 'run_monitor', '{\"monitor\": \"drift\"}')", (name,))
    assert _cron(sql, name)[0] == "*/15 * * * *"
    for schedule, cron in (
        ("2 hours", "0 */2 * * *"),
        ("1 day", "0 0 * * *"),
        ("120 minutes", "0 */2 * * *"),
    ):
        assert sql.execute("SELECT indb.job_cron_expression(%s)", (schedule,)).fetchone()[0] == cron
    for text, count in (
        ("SELECT 1;", 1),
        ("SELECT ';' -- ;\n", 1),
        ("DO $x$ BEGIN PERFORM 1; PERFORM 2; END $x$", 1),
        ("SELECT $$;$$; SELECT 2", 2),
        ("SELECT \"a;b\", 'it'';' /* ; */ FROM t;", 1),
    ):
        assert sql.execute("SELECT indb.job_statements(%s)", (text,)).fetchone()[0] == count, text


def test_null_arguments_and_options_count_as_not_given(sql):
    """As a client that sends every option (and an action's optional arguments) sends them."""
    name = _name()
    options = {
        "timezone": "UTC",
        "on_alert": None,
        "retries": 0,
        "retry_delay": 60,
        "timeout": None,
        "alert_after_failures": 3,
        "catch_up": "latest",
        "comment": None,
        "enabled": True,
    }
    arguments = {
        "days": 30,
        "deployment": None,
        "tables": None,
        "job_runs": True,
        "batch_size": 100,
        "archive": False,
    }
    from psycopg.types.json import Jsonb

    sql.execute(
        "SELECT indb.schedule(%s, '@daily', 'retain', %s, %s)", (name, Jsonb(arguments), Jsonb(options))
    )
    row = sql.execute(
        "SELECT timeout_seconds, on_alert, retry_delay_seconds, arguments::jsonb "
        "FROM indb.jobs WHERE name = %s",
        (name,),
    ).fetchone()
    assert row[:3] == (None, None, 60.0)
    assert row[3] == {"days": 30, "job_runs": True, "batch_size": 100, "archive": False}


def test_enable_and_unschedule_change_the_cron_entry(sql):
    name = _name()
    sql.execute("SELECT indb.schedule(%s, '@hourly', 'run_monitor', '{\"monitor\": \"drift\"}')", (name,))
    assert sql.execute("SELECT indb.enable_job(%s, false)", (name,)).fetchone() == (False,)
    assert _cron(sql, name)[2] is False
    assert sql.execute("SELECT enabled FROM indb.jobs WHERE name = %s", (name,)).fetchone() == (False,)
    sql.execute("SELECT indb.enable_job(%s)", (name,))
    assert _cron(sql, name)[2] is True
    assert sql.execute("SELECT indb.unschedule(%s)", (name,)).fetchone() == (True,)
    assert _cron(sql, name) is None
    with pytest.raises(psycopg.Error, match="does not exist"):
        sql.execute("SELECT indb.unschedule(%s)", (name,))


def test_who_may_schedule_and_run(cron_db, sql):
    """Only admins define jobs; a developer runs a defined job by hand, but not a sql job,
    whose statement runs as its owner."""
    defined_job, sql_job = _name(), _name()
    with (
        login_role(cron_db, "indb_developer") as (_, developer_url),
        login_role(cron_db, "indb_admin") as (admin, admin_url),
    ):
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(  # a job a developer may run: it deletes only what the admin defined
                "SELECT indb.schedule(%s, '@daily', 'retain', '{\"days\": 3650, \"job_runs\": true}')",
                (defined_job,),
            )
            conn.execute(
                "SELECT indb.schedule(%s, '@daily', 'sql', "
                '\'{"statement": "INSERT INTO public.job_target (x) VALUES (7)"}\')',
                (sql_job,),
            )
            conn.execute("CALL indb.run_job(%s)", (sql_job,))  # its owner may (and may not insert)
        assert sql.execute("SELECT owner FROM indb.jobs WHERE name = %s", (sql_job,)).fetchone() == (admin,)
        sql.execute("CALL indb.run_job(%s)", (sql_job,))  # as pg_cron runs it: still as its owner
        sql.execute(f'GRANT INSERT ON public.job_target TO "{admin}"')
        sql.execute("CALL indb.run_job(%s)", (sql_job,))
        runs = _runs(sql, sql_job)
        assert [r[0] for r in runs] == ["failed", "failed", "succeeded"]
        assert all("permission denied for table job_target" in r[4] for r in runs[:2])
        with psycopg.connect(developer_url, autocommit=True) as conn:
            for call, args in (
                ("SELECT indb.schedule(%s, '@daily', 'sql', '{\"statement\": \"SELECT 1\"}')", (_name(),)),
                ("SELECT indb.unschedule(%s)", (defined_job,)),
                ("SELECT indb.enable_job(%s, false)", (defined_job,)),
                (
                    'UPDATE indb.jobs SET arguments = \'{"statement": "SELECT 2"}\' WHERE name = %s',
                    (sql_job,),
                ),
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(call, args)
            with pytest.raises(psycopg.Error, match="runs its statement as"):
                conn.execute("CALL indb.run_job(%s)", (sql_job,))
            conn.execute("CALL indb.run_job(%s)", (defined_job,))
            with pytest.raises(psycopg.Error, match="not a running run of this session"):  # steps check it
                conn.execute("SELECT indb.job_run_end(1, 'succeeded', NULL, NULL, NULL)")
        assert _runs(sql, defined_job)[-1][0] == "succeeded"
        assert len(_runs(sql, sql_job)) == 3
        sql.execute(f'REVOKE INSERT ON public.job_target FROM "{admin}"')
        sql.execute("SELECT indb.unschedule(%s)", (defined_job,))
        sql.execute("SELECT indb.unschedule(%s)", (sql_job,))


def test_public_may_call_nothing(sql):
    public = sql.execute(
        "SELECT p.proname FROM pg_proc AS p WHERE p.pronamespace = 'indb'::regnamespace "
        "AND (p.proname IN ('schedule', 'unschedule', 'enable_job', 'run_job', 'run_job_for', "
        "'run_due_jobs') "
        "OR p.proname LIKE 'job\\_%%' OR p.proname = 'queue_alert_jobs') "
        "AND has_function_privilege('public', p.oid, 'EXECUTE')"
    ).fetchall()
    assert public == []


RESULTS = (
    "SELECT feature, metric, value FROM indb.monitor_results "
    "WHERE monitor = 'drift' AND window_start = %s ORDER BY 1, 2"
)


def test_retain_deletes_in_batches_and_keeps_monitor_windows(cron_db, sql):
    """Brute force: the rows retain deletes are exactly those older than now - days and than
    the monitor's last window; the monitor's result for its last window is unchanged."""
    sql.execute("CALL indb.run_monitor('drift')")
    sql.execute(
        "UPDATE public.requests AS r SET created_at = p.scored_at "
        "FROM public.requests_predictions AS p WHERE p.id = r.id"
    )
    ((last_window,),) = sql.execute("SELECT last_window FROM indb.monitors WHERE name = 'drift'").fetchall()
    assert str(last_window).startswith(DAY2)
    older = {
        t: sql.execute(
            f"SELECT count(*) FILTER (WHERE {c} < %s), count(*) FROM public.{t}", (last_window,)
        ).fetchone()
        for t, c in (("requests", "created_at"), ("requests_predictions", "scored_at"))
    }
    assert older["requests"][0] > 0 and older["requests"][0] < older["requests"][1]
    before = sql.execute(
        RESULTS,
        (last_window,),
    ).fetchall()
    name = _name()
    sql.execute(
        "SELECT indb.schedule(%s, '@daily', 'retain', "
        '\'{"days": 1, "deployment": "requests", "batch_size": 37}\')',
        (name,),
    )
    sql.execute("CALL indb.run_job(%s)", (name,))
    ((status, rows, result),) = sql.execute(
        "SELECT status, rows_affected, result::jsonb FROM indb.job_runs WHERE job = %s", (name,)
    ).fetchall()
    assert status == "succeeded"
    assert rows == older["requests"][0] + older["requests_predictions"][0]
    assert result["batches"] >= rows // 37
    assert result["cutoff"] == str(last_window)  # moved back from now - 1 day by the monitor
    assert result["deleted"] == {
        "predictions": older["requests_predictions"][0],
        "ground_truth": 0,
        "requests": older["requests"][0],
    }
    assert "monitor 'drift' still reads rows" in result["note"]
    for table, column in (("requests", "created_at"), ("requests_predictions", "scored_at")):
        left = sql.execute(
            f"SELECT count(*) FILTER (WHERE {column} < %s), count(*) FROM public.{table}", (last_window,)
        )
        assert left.fetchone() == (0, older[table][1] - older[table][0])
    sql.execute("CALL indb.run_monitor('drift')")
    after = sql.execute(
        RESULTS,
        (last_window,),
    ).fetchall()
    assert after == before and after


def test_retain_job_runs(sql):
    name, old = _name(), _name()
    sql.execute(
        "INSERT INTO indb.job_runs (job, started_at, finished_at, status, runner) VALUES "
        "(%s, now() - interval '40 days', now() - interval '40 days', 'succeeded', 'manual'), "
        "(%s, now() - interval '2 days', now() - interval '2 days', 'succeeded', 'manual')",
        (old, old),
    )
    ((cron_id,),) = sql.execute(
        "SELECT cron.schedule(%s, '@yearly', 'SELECT 1')", ("indb." + old,)
    ).fetchall()
    sql.execute(
        "INSERT INTO cron.job_run_details (jobid, command, status, start_time, end_time) VALUES "
        "(%s, 'SELECT 1', 'succeeded', now() - interval '40 days', now() - interval '40 days')",
        (cron_id,),
    )
    ((recent,),) = sql.execute(
        "INSERT INTO cron.job_run_details (jobid, command, status, start_time, end_time) VALUES "
        "(%s, 'SELECT 1', 'succeeded', now() - interval '2 days', now() - interval '2 days') RETURNING runid",
        (cron_id,),
    ).fetchall()
    sql.execute("SELECT indb.schedule(%s, '@daily', 'retain', '{\"days\": 30, \"job_runs\": true}')", (name,))
    sql.execute("CALL indb.run_job(%s)", (name,))
    assert sql.execute(
        "SELECT count(*) FROM indb.job_runs WHERE started_at < now() - interval '30 days'"
    ).fetchone() == (0,)
    assert sql.execute("SELECT count(*) FROM indb.job_runs WHERE job = %s", (old,)).fetchone() == (1,)
    details = "SELECT runid FROM cron.job_run_details WHERE jobid = %s"
    assert sql.execute(details, (cron_id,)).fetchall() == [(recent,)]
    sql.execute("SELECT cron.unschedule(%s)", (cron_id,))
    assert _runs(sql, name)[0][0] == "succeeded"


def test_a_job_on_alert_runs_after_the_monitor_opens_one(sql):
    name = _name()
    sql.execute("DELETE FROM indb.alerts WHERE monitor = 'drift'")
    sql.execute(
        "SELECT indb.schedule(%s, NULL, 'sql', "
        '\'{"statement": "INSERT INTO public.job_target (x) VALUES (-1)"}\', '
        '\'{"on_alert": {"monitor": "drift"}}\')',
        (name,),
    )
    sql.execute("CALL indb.run_monitor('drift', '2000-01-01')")
    ((next_run, last_seen),) = sql.execute(
        "SELECT next_run, last_alert_id FROM indb.jobs WHERE name = %s", (name,)
    ).fetchall()
    assert next_run is not None  # queued by run_monitor's hook
    sql.execute("CALL indb.run_due_jobs()")
    assert [r[:4] for r in _runs(sql, name)] == [("succeeded", 1, "alert", "pg_cron")]
    ((newest,),) = sql.execute("SELECT max(id) FROM indb.alerts WHERE monitor = 'drift'").fetchall()
    assert sql.execute(
        "SELECT last_alert_id, next_run FROM indb.jobs WHERE name = %s", (name,)
    ).fetchone() == (newest, None)
    sql.execute("CALL indb.run_due_jobs()")  # nothing new: no second run
    assert len(_runs(sql, name)) == 1


def test_doctor_checks_each_jobs_cron_entry(cron_db, sql):
    name = _name()
    sql.execute("SELECT indb.schedule(%s, '@daily', 'run_monitor', '{\"monitor\": \"drift\"}')", (name,))
    checks = {c.name: c for c in cron_db.backend.health()}
    assert checks["pg_cron database"].ok and checks[f"job {name}"].ok
    sql.execute(
        "SELECT cron.alter_job(jobid, active => false) FROM cron.job WHERE jobname = %s", ("indb." + name,)
    )
    check = {c.name: c for c in cron_db.backend.health()}[f"job {name}"]
    assert not check.ok and check.fix == f"SELECT indb.enable_job('{name}', true);"
    sql.execute("SELECT cron.unschedule(%s)", ("indb." + name,))
    check = {c.name: c for c in cron_db.backend.health()}[f"job {name}"]
    assert not check.ok and "no pg_cron entry" in check.detail
    assert check.fix == f"SELECT indb.enable_job('{name}'); (creates its pg_cron entry)"
    sql.execute("SELECT indb.enable_job(%s)", (name,))
    assert {c.name: c for c in cron_db.backend.health()}[f"job {name}"].ok
    assert _cron(sql, name)[:3] == ("@daily", f"CALL indb.run_job('{name}', 'pg_cron')", True)


def test_retain_keeps_everything_a_monitor_that_never_ran_reads_and_archives(cron_db, sql):
    """The same rules as the Python action: a monitor that never ran keeps every row; archive
    moves the rows to <table>_archive."""
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame({"x": np.zeros(30), "y": np.ones(30), "c": ["a"] * 30})
    load(cron_db, frame, "2023-12-30")
    sql.execute(
        "UPDATE public.requests AS r SET created_at = p.scored_at "
        "FROM public.requests_predictions AS p WHERE p.id = r.id AND p.scored_at < %s",
        (DAY2,),
    )
    sql.execute("CALL indb.run_monitor('drift')")  # its last window: DAY2, the cutoff
    counts = (
        "SELECT (SELECT count(*) FROM public.requests_predictions WHERE scored_at < %(day)s), "
        "(SELECT count(*) FROM public.requests WHERE created_at < %(day)s)"
    )
    older = sql.execute(counts, {"day": DAY2}).fetchone()
    assert older[0] >= 30 and older[1] >= 30
    cron_db.create_monitor("fresh", "requests", reference=(DAY2, DAY2 + " 23:59:59"), window="1 day")
    name = _name()
    arguments = '{"days": 0, "deployment": "requests", "archive": true}'
    sql.execute("SELECT indb.schedule(%s, '@daily', 'retain', %s)", (name, arguments))
    last = "SELECT result::jsonb FROM indb.job_runs WHERE job = %s ORDER BY id DESC LIMIT 1"
    sql.execute("CALL indb.run_job(%s)", (name,))
    ((result,),) = sql.execute(last, (name,)).fetchall()
    assert result["rows"] == 0 and "monitor 'fresh' has never run" in result["note"]
    assert sql.execute(counts, {"day": DAY2}).fetchone() == older
    cron_db.drop_monitor("fresh")
    sql.execute("CALL indb.run_job(%s)", (name,))
    ((result,),) = sql.execute(last, (name,)).fetchall()
    moved = {"predictions": older[0], "ground_truth": 0, "requests": older[1]}
    assert result["deleted"] == result["archived"] == moved and result["cutoff"].startswith(DAY2)
    assert sql.execute(counts, {"day": DAY2}).fetchone() == (0, 0)
    archived = "SELECT count(*) FROM public.requests_predictions_archive WHERE scored_at < %s"
    assert sql.execute(archived, (DAY2,)).fetchone() == (older[0],)
    assert sql.execute("SELECT count(*) FROM public.requests_archive").fetchone() == (older[1],)


def test_grants_go_to_the_role_names_chosen_at_install(pg_dsn, cron_db, monkeypatch):
    """Under names a DBA chose (issue 10), schedule is the chosen admin's, run_job the chosen
    developer's, and nothing is the default roles'."""
    from tests.test_role_names import _names, fresh_database

    prefix = f"t{uuid.uuid4().hex[:6]}_"
    names = _names(prefix)
    with fresh_database(pg_dsn, list(names.values())) as url:
        monkeypatch.setenv("INDB_ROLE_PREFIX", prefix)
        indb.connect(url).close()
        monkeypatch.delenv("INDB_ROLE_PREFIX")
        with psycopg.connect(url, autocommit=True) as conn:
            may = "SELECT has_function_privilege(%s, %s, 'EXECUTE')"
            schedule = "indb.schedule(text, text, text, jsonb, jsonb)"
            run = "indb.run_job(text, text, bigint)"
            assert conn.execute(may, (names["admin"], schedule)).fetchone() == (True,)
            assert conn.execute(may, (names["developer"], schedule)).fetchone() == (False,)
            assert conn.execute(may, (names["developer"], run)).fetchone() == (True,)
            assert conn.execute(may, ("indb_admin", schedule)).fetchone() == (False,)
            assert conn.execute(may, ("indb_developer", run)).fetchone() == (False,)


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_without_pg_cron_a_job_is_created_and_runs_when_called(db, pg_dsn):
    """A database that is not cron.database_name: the job exists, warns, runs by hand; a bad
    cron expression is still refused (croniter); doctor says the jobs run only when called."""
    with psycopg.connect(db.url, autocommit=True) as conn:
        assert conn.execute("SELECT to_regnamespace('cron')").fetchone() == (None,)
        warnings = []
        conn.add_notice_handler(lambda notice: warnings.append(notice.message_primary))
        conn.execute("SELECT indb.schedule('nightly', '0 2 * * *', 'sql', '{\"statement\": \"SELECT 1\"}')")
        assert any("pg_cron is not installed" in w and "indb.enable_job" in w for w in warnings)
        row = conn.execute("SELECT cron_job_id, next_run IS NOT NULL FROM indb.jobs WHERE name = 'nightly'")
        assert row.fetchone() == (None, True)
        conn.execute("CALL indb.run_job('nightly')")
        assert _runs(conn, "nightly") == [("succeeded", 1, "manual", "manual", None, 1)]
        with pytest.raises(psycopg.Error, match="'61 \\* \\* \\* \\*' is not a valid cron expression"):
            conn.execute("SELECT indb.schedule('bad', '61 * * * *', 'sql', '{\"statement\": \"SELECT 1\"}')")
    check = {c.name: c for c in db.backend.health()}["jobs"]
    assert not check.ok and "run only when called" in check.detail
