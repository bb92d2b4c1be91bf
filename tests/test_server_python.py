"""indb's Python job actions run inside PostgreSQL (issue 12 point 4: no client at any point).

After the set-up (indb's client makes the feature store), every job is scheduled and run from a
plain psycopg connection, as psql and pg_cron do; ``CALL indb.run_job`` is the code path pg_cron
takes (the pg_cron-by-itself test is tests/test_jobs_postgres.py's). Each action's effect is
compared with what indb's client produces from the same state (a twin feature set, or a second
rebuild with the same cutoff), and with a brute-force count.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pandas as pd
import psycopg
import psycopg.sql
import pytest

from indb.backends import server_python
from indb.backends.plpy import bind
from indb.feature_store import refresh
from tests.test_feature_store import START, customer_rows
from tests.test_trust_postgres import login_role

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
PG = pytest.mark.parametrize("db", ["postgresql"], indirect=True)

COMMENT = psycopg.sql.SQL("COMMENT ON FUNCTION indb.server_package() IS {}")
HISTORY = "SELECT customer_id, ts, income, debt, segment FROM {} ORDER BY 1, 2, 3, 4, 5"


@pytest.fixture
def store(db):
    """Raw rows (the first 200 of 300 loaded into two identical feature sets), a spine."""
    rows = customer_rows(300)
    db.create_entity("customer", keys=["customer_id"])
    db.write_table("raw", rows, replace=True)
    for name in ("server", "client"):
        db.create_feature_set(
            name, "customer", source="SELECT * FROM raw WHERE ts < '2024-01-12'", event_time="ts"
        )
    return db, rows


def _run(conn, name: str, action: str, arguments: dict) -> tuple:
    conn.execute("SELECT indb.schedule(%s, '@daily', %s, %s)", (name, action, json.dumps(arguments)))
    conn.execute("CALL indb.run_job(%s)", (name,))
    return conn.execute(
        "SELECT status, rows_affected, result, error FROM indb.job_runs "
        "WHERE job = %s ORDER BY id DESC LIMIT 1",
        (name,),
    ).fetchone()


def _table(conn, query: str) -> list[tuple]:
    return conn.execute(query).fetchall()


@PG
def test_feature_store_actions_do_what_the_client_does(store):
    db, rows = store
    new = "SELECT * FROM raw WHERE ts >= '2024-01-12'"
    expected_new = int((rows.ts >= pd.Timestamp("2024-01-12")).sum())
    with psycopg.connect(db.url, autocommit=True) as conn:
        status, count, result, error = _run(
            conn, "ingest_new", "ingest", {"feature_set": "server", "query": new}
        )
        assert (status, error) == ("succeeded", None)
        assert count == expected_new and result == {
            "feature_set": "server",
            "version": 1,
            "rows": expected_new,
        }
        assert db.ingest("client", new) == expected_new  # the client's path, on the twin
        server, client = (_table(conn, HISTORY.format(f"fs_{n}")) for n in ("server", "client"))
        assert server == client and len(server) == len(rows)

        # materialize_latest: the latest-values table emptied behind indb's back, rebuilt
        conn.execute("DELETE FROM fs_server_v1_latest")
        status, count, _, error = _run(conn, "latest", "materialize_latest", {"feature_set": "server"})
        assert (status, error, count) == ("succeeded", None, rows.customer_id.nunique())
        db.materialize_online("client")
        latest = "SELECT customer_id, ts, income, debt, segment FROM fs_{}_latest ORDER BY 1"
        server, client = (_table(conn, latest.format(n)) for n in ("server", "client"))
        assert server == client
        newest = rows.sort_values("ts").groupby("customer_id").tail(1)  # brute force
        assert {(int(r.customer_id), r.ts.to_pydatetime()) for r in newest.itertuples()} == {
            (k, t) for k, t, *_ in server
        }

        # refresh_feature_set: only source rows not stored yet; nothing new -> 0
        conn.execute(
            "INSERT INTO raw (customer_id, ts, income, debt, segment) "
            "VALUES (7, '2024-01-02 03:00', 1, 2, 'a')"
        )
        status, count, _, error = _run(conn, "refresh", "refresh_feature_set", {"feature_set": "server"})
        assert (status, error, count) == ("succeeded", None, 1)
        conn.execute("CALL indb.run_job('refresh')")
        assert _table(conn, "SELECT rows_affected FROM indb.job_runs WHERE job = 'refresh' ORDER BY id") == [
            (1,),
            (0,),
        ]
        refresh.refresh(db.backend, "client")
        server, client = (_table(conn, HISTORY.format(f"fs_{n}")) for n in ("server", "client"))
        assert server == client and len(server) == len(rows) + 1


@PG
def test_rebuild_training_set_matches_the_clients_rebuild(store):
    db, rows = store
    spine = pd.DataFrame(
        {
            "customer_id": rows.customer_id.iloc[:60],
            "event_time": [START + timedelta(hours=5 * i) for i in range(60)],
            "label": [i % 2 for i in range(60)],
        }
    )
    db.write_table("spine", spine, replace=True)
    db.training_set(
        "spine", ["server:income", "server:debt"], label="label", materialize=True, name="loans_ts"
    )
    cutoff = START + timedelta(hours=100)
    with psycopg.connect(db.url, autocommit=True) as conn:
        status, count, result, error = _run(
            conn,
            "rebuild",
            "rebuild_training_set",
            {"training_set": "loans_ts", "cutoff": cutoff.isoformat()},
        )
        assert (status, error) == ("succeeded", None)
        assert count == int((spine.event_time <= cutoff).sum()) == result["rows"]
        assert result["version"] == 2 and result["table"] == "ts_loans_ts_v2"
        assert result["cutoff"] == cutoff.isoformat(sep=" ")
        client = db.rebuild_training_set("loans_ts", cutoff=cutoff)
        assert client.version == 3
        catalog = _table(
            conn,
            "SELECT row_count, content_hash, cutoff, definition::jsonb - 'cutoff' FROM indb.training_sets "
            "WHERE name = 'loans_ts' AND version IN (2, 3) ORDER BY version",
        )
        assert catalog[0] == catalog[1]  # same rows (content hash), cutoff and definition
        by_row = "SELECT * FROM {} ORDER BY customer_id, event_time"
        assert _table(conn, by_row.format("ts_loans_ts_v2")) == _table(conn, by_row.format("ts_loans_ts_v3"))


@PG
def test_a_failing_action_is_recorded_failed_with_its_error_and_changes_nothing(store):
    db, rows = store
    with psycopg.connect(db.url, autocommit=True) as conn:
        before = _table(conn, HISTORY.format("fs_server"))
        status, _, _, error = _run(
            conn, "typo", "ingest", {"feature_set": "servr", "query": "SELECT * FROM raw"}
        )
        assert status == "failed" and "feature set 'servr' does not exist; did you mean 'server'?" in error
        # a NULL key in the second half of the rows: the whole ingest is refused, nothing loaded
        query = (
            "SELECT CASE WHEN ts > '2024-01-15' THEN NULL ELSE customer_id END AS customer_id, "
            "ts, income, debt, segment FROM raw"
        )
        status, _, _, error = _run(conn, "nulls", "ingest", {"feature_set": "server", "query": query})
        assert (
            status == "failed" and "have a NULL key or event time" in error and "nothing was loaded" in error
        )
        status, _, _, error = _run(
            conn, "writes", "ingest", {"feature_set": "server", "query": "DELETE FROM raw"}
        )
        assert status == "failed" and "must be a SELECT" in error
        assert _table(conn, HISTORY.format("fs_server")) == before
        assert _table(conn, "SELECT count(*) FROM raw") == [(len(rows),)]
        # the next run of a job works: failures do not stick to the session
        assert _run(conn, "fine", "materialize_latest", {"feature_set": "server"})[0] == "succeeded"


@PG
def test_schedule_checks_python_actions_with_their_registry(store):
    db, _ = store
    with psycopg.connect(db.url, autocommit=True) as conn:
        for action, arguments, message in [
            ("ingest", {"feature_set": "server"}, "action 'ingest' needs the argument 'query'"),
            ("ingest", {"feature_set": "server", "sql": "SELECT 1"}, "action 'ingest' has no argument 'sql'"),
            ("train_everything", {}, "unknown job action 'train_everything': use one of"),
        ]:
            with pytest.raises(psycopg.Error, match=message):
                conn.execute("SELECT indb.schedule('bad', '@daily', %s, %s)", (action, json.dumps(arguments)))
        assert _table(conn, "SELECT count(*) FROM indb.jobs") == [(0,)]
        conn.execute(  # defaults filled in from the registry
            "SELECT indb.schedule('rebuild', '@daily', 'rebuild_training_set', '{\"training_set\": \"x\"}')"
        )
        assert _table(conn, "SELECT arguments::jsonb FROM indb.jobs") == [
            ({"training_set": "x", "cutoff": None},)
        ]


@PG
def test_actions_run_with_the_job_owners_rights(store):
    """An admin's ingest job reads its source with the admin's rights, whoever runs it (here the
    superuser, as pg_cron does); a developer who is not the owner may not run it by hand."""
    db, _ = store
    with (
        login_role(db, "indb_admin") as (admin, admin_url),
        login_role(db, "indb_developer") as (_, developer_url),
        psycopg.connect(db.url, autocommit=True) as conn,
    ):
        with psycopg.connect(admin_url, autocommit=True) as own:
            own.execute(
                "SELECT indb.schedule('copy_raw', '@daily', 'ingest', %s)",
                (json.dumps({"feature_set": "server", "query": "SELECT * FROM raw"}),),
            )
        conn.execute("CALL indb.run_job('copy_raw')")
        ((status, error),) = _table(conn, "SELECT status, error FROM indb.job_runs WHERE job = 'copy_raw'")
        assert status == "failed" and "permission denied for table raw" in error
        assert _table(conn, "SELECT owner FROM indb.jobs WHERE name = 'copy_raw'") == [(admin,)]
        assert _table(conn, "SELECT current_user, current_setting('search_path')") == [
            ("postgres", '"$user", public')
        ]  # the caller's role and path are back after the run
        with psycopg.connect(developer_url, autocommit=True) as dev:
            with pytest.raises(psycopg.Error, match="runs its action ingest as"):
                dev.execute("CALL indb.run_job('copy_raw')")
            with pytest.raises(psycopg.Error, match="permission denied for function run_python_action"):
                dev.execute("SELECT indb.run_python_action(1)")
        with psycopg.connect(admin_url, autocommit=True) as own:
            with pytest.raises(psycopg.Error, match="not a running run of a Python action in this session"):
                own.execute("SELECT indb.run_python_action(1)")  # only inside indb.run_job
        conn.execute("DELETE FROM indb.job_runs WHERE job = 'copy_raw'")  # before the role goes
        conn.execute("SELECT indb.unschedule('copy_raw')")


@PG
def test_public_may_call_none_of_it(db):
    with psycopg.connect(db.url, autocommit=True) as conn:
        names = (
            "server_package",
            "load_server_python",
            "run_python_action",
            "job_python_run",
            "check_python_action",
        )
        found = conn.execute(
            "SELECT p.proname, has_function_privilege('public', p.oid, 'EXECUTE') FROM pg_proc AS p "
            "WHERE p.pronamespace = 'indb'::regnamespace AND p.proname = ANY(%s) ORDER BY 1",
            (list(names),),
        ).fetchall()
        assert found == [(n, False) for n in sorted(names)]


@PG
def test_a_catalog_the_shipped_code_was_not_built_for_is_refused_clearly(store):
    """A catalog upgraded without the server's code (here: a migration row the shipped indb does
    not know) -> the job fails saying both migrations and what to do; doctor says so too."""
    db, _ = store
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute(
            "SELECT indb.schedule('latest', '@daily', 'materialize_latest', '{\"feature_set\": \"server\"}')"
        )
        conn.execute("INSERT INTO indb.schema_migrations (version, name) VALUES (999, 'from_the_future')")
    try:
        with psycopg.connect(db.url, autocommit=True) as fresh:  # a new session imports afresh
            fresh.execute("CALL indb.run_job('latest')")
            ((status, error),) = _table(fresh, "SELECT status, error FROM indb.job_runs WHERE job = 'latest'")
        assert status == "failed"
        assert "built for migration" in error and "(migration 999)" in error
        assert "connect once as a superuser with the indb that upgraded the catalog" in error
        check = {c.name: c for c in db.backend.health()}["server indb"]
        assert not check.ok and "migration 999" in check.detail and "upgraded the catalog" in check.fix
    finally:
        with psycopg.connect(db.url, autocommit=True) as conn:
            conn.execute("DELETE FROM indb.schema_migrations WHERE version = 999")
    check = {c.name: c for c in db.backend.health()}["server indb"]
    assert check.ok, check


@PG
def test_a_session_keeps_the_indb_it_imported_and_says_so_when_it_changed(db):
    """The package changes (a newer client shipped its code): a session that imported the old one
    refuses to mix them; a new session (pg_cron opens one per run) imports the new one."""
    with psycopg.connect(db.url, autocommit=True) as conn:
        (label,) = conn.execute("SELECT indb.load_server_python()").fetchone()
        assert server_python._fingerprint(server_python._statements(db.backend, True)) in label
        comment = conn.execute(
            "SELECT obj_description('indb.server_package()'::regprocedure, 'pg_proc')"
        ).fetchone()[0]
        with psycopg.connect(db.url, autocommit=True) as other:
            other.execute(COMMENT.format(psycopg.sql.Literal(comment + "0")))
        try:
            with pytest.raises(psycopg.Error, match="this session imported indb already"):
                conn.execute("SELECT indb.load_server_python()")
            with psycopg.connect(db.url, autocommit=True) as fresh:
                assert fresh.execute("SELECT indb.load_server_python()").fetchone()[0].startswith("indb ")
        finally:
            with psycopg.connect(db.url, autocommit=True) as other:
                other.execute(COMMENT.format(psycopg.sql.Literal(comment)))


def test_bind_turns_indb_parameters_into_plpy_ones():
    """No server needed: $name / $1 / %(name)s become $1..$n with one slot per name; None is NULL."""
    assert bind("SELECT $a, $b, $a, '$c', $d", {"a": 1, "b": "x", "d": None}) == (
        "SELECT $1, $2, $1, '$c', NULL",
        ["bigint", "unknown"],
        [1, "x"],
    )
    text, types, values = bind("SELECT %(t)s, $x", {"t": START, "x": [1, 2]})
    assert (text, types, values) == ("SELECT $1, $2", ["timestamp", "bigint[]"], [START.isoformat(), [1, 2]])


PLPY_ROUND_TRIP = """
import pandas as pd
from datetime import date, datetime
from indb.backends.plpy import PlpyBackend

b = PlpyBackend(plpy)
assert b.user == "postgres" and b.superuser, (b.user, b.superuser)
frame = pd.DataFrame({
    "n": [1, 2, 3],
    "f": [0.5, None, 2.5],
    "s": ["a", None, "it's"],
    "t": pd.to_datetime([datetime(2024, 1, 1), datetime(2024, 1, 2, 3, 4, 5), None]),
    "b": [True, False, True],
})
b.write_table("plpy_rt", frame, replace=True)
b.write_table("plpy_rt", frame.iloc[:1], replace=False)
got = b.query("SELECT * FROM plpy_rt ORDER BY n, f")
assert got.n.tolist() == [1, 1, 2, 3], got
assert got.t.tolist()[:2] == [datetime(2024, 1, 1)] * 2 and got.t.isna().tolist()[-1], got.t.tolist()
with b.staged(frame) as staged:
    assert b.rows(f"SELECT count(*), max(s) FROM {staged.text}") == [(3, "it's")]
row = b.rows(
    "SELECT $a + 1, $s, $t, $n IS NULL, $d, $j::jsonb ->> 'k', $a = ANY($l), $flag",
    {"a": 41, "s": "x", "t": datetime(2024, 5, 6, 7, 8, 9), "n": None, "d": date(2024, 5, 6),
     "j": '{"k": "v"}', "l": [40, 41], "flag": False},
)
assert row == [(42, "x", datetime(2024, 5, 6, 7, 8, 9), True, date(2024, 5, 6), "v", True, False)], row
assert b.query_columns("SELECT n, f, s, t, b FROM plpy_rt") == {
    "n": "BIGINT", "f": "DOUBLE", "s": "VARCHAR", "t": "TIMESTAMP", "b": "BOOLEAN"}
assert b.table_columns("plpy_rt") == {
    "n": "BIGINT", "f": "DOUBLE", "s": "VARCHAR", "t": "TIMESTAMP", "b": "BOOLEAN"}
try:
    with b.transaction():
        b.execute("INSERT INTO plpy_rt (n) VALUES (99)")
        raise RuntimeError("undo")
except RuntimeError:
    pass
assert b.rows("SELECT count(*) FROM plpy_rt WHERE n = 99") == [(0,)]
b.lock_catalog()
"""


@PG
def test_the_plpy_backend_inside_the_server(db):
    """PlpyBackend's statements, parameters (typed as psycopg types them), results (times as
    datetimes), frames in and out, and subtransactions, run in the server's PL/Python."""
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute("SELECT indb.load_server_python()")  # puts indb on this session's path
        body = psycopg.sql.Literal(PLPY_ROUND_TRIP)
        conn.execute(psycopg.sql.SQL("DO LANGUAGE plpython3u {}").format(body))
        assert conn.execute("SELECT count(*) FROM plpy_rt").fetchone() == (4,)


@PG
def test_without_pl_python_schedule_says_what_to_install(db):
    """A database where indb could not install PL/Python gets a stand-in check (installed the
    same way): scheduling a Python action names what to install; SQL actions still work."""
    from indb.sql import statement

    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute("DROP FUNCTION indb.check_python_action(text, jsonb)")
        conn.execute(statement("server_python", "create_check_action_missing", "postgres"))
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="CREATE EXTENSION plpython3u"):
            conn.execute("SELECT indb.schedule('x', '@daily', 'ingest', '{\"feature_set\": \"f\"}')")
        conn.execute("SELECT indb.schedule('y', '@daily', 'sql', '{\"statement\": \"SELECT 1\"}')")
        assert conn.execute("SELECT name FROM indb.jobs").fetchall() == [("y",)]


@PG
def test_a_missing_dependency_in_the_servers_python_is_named_with_the_fix(db):
    """sqlglot made unimportable in one session (as on a server where it was never installed):
    loading indb there names the module and the pip command, and leaves no half-imported indb."""
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute("DO LANGUAGE plpython3u $$ import sys; sys.modules['sqlglot'] = None $$")
        with pytest.raises(psycopg.Error, match="has no module 'sqlglot'") as caught:
            conn.execute("SELECT indb.load_server_python()")
        assert "pip install --break-system-packages pandas pyarrow sqlglot" in str(caught.value)
        conn.execute(
            "DO LANGUAGE plpython3u $$\nimport sys\n"
            "assert not [m for m in sys.modules if m == 'indb' or m.startswith('indb.')]\n"
            "del sys.modules['sqlglot']\n$$"
        )
        assert conn.execute("SELECT indb.load_server_python()").fetchone()[0].startswith("indb ")
