"""Issue 10 on PostgreSQL, tried as the roles that would try it: real low-privilege login roles
through psycopg against the test cluster, real models, real onnxruntime inside the server."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from urllib.parse import urlsplit

import pandas as pd
import psycopg
import pytest
from onnx import TensorProto, helper

import indb
from tests.conftest import NUMERIC
from tests.test_trust import _verify

pytestmark = pytest.mark.parametrize("db", ["postgresql"], indirect=True)
COLUMNS = ", ".join(NUMERIC)
TYPED = ", ".join(f"{c} double precision" for c in NUMERIC)
ROW = "(50000, 1000, 40, 3)"


def _as_user(url: str, user: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=f"{user}@{parts.hostname}:{parts.port}").geturl()


@contextmanager
def login_role(db, *roles: str):
    """A fresh login role, member of ``roles``: (name, url)."""
    name = f"u_{uuid.uuid4().hex[:10]}"
    db.sql(f'CREATE ROLE "{name}" LOGIN')
    for role in roles:
        db.sql(f'GRANT {role} TO "{name}"')
    try:
        yield name, _as_user(db.url, name)
    finally:
        db.sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{name}'")
        db.sql(f'DROP OWNED BY "{name}"')
        db.sql(f'DROP ROLE "{name}"')


def _is_superuser(db, role: str) -> bool:
    return bool(db.sql(f"SELECT rolsuper FROM pg_roles WHERE rolname = '{role}'").rolsuper[0])


# -- 10.1: the trigger functions cannot be turned against other tables ----------------------------
EVIL = """
CREATE FUNCTION pg_temp.evil() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN EXECUTE format('ALTER ROLE %I SUPERUSER', session_user); RETURN NULL; END $$;
"""


@pytest.mark.parametrize("mode", ["bulk", "row"])
def test_scoring_trigger_functions_refuse_a_table_that_is_not_deployed(db, logistic, loans, mode):
    """The 10.1 exploit: a temp table named like the deployment with the trigger function
    attached, and a pg_temp.<table>_predictions in front whose trigger runs as the function's
    owner. Refused twice: no EXECUTE for anyone, and (were EXECUTE granted by mistake) the
    function checks the table that fired it against the deployment row."""
    db.register_model("m", logistic, sample=loans[NUMERIC])
    db.deploy("m", table="requests", runtime="onnx", mode=mode)
    function = "score_inserted_rows" if mode == "bulk" else "score_inserted_row"
    when = (
        "AFTER INSERT ON pg_temp.requests REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT"
        if mode == "bulk"
        else "BEFORE INSERT ON pg_temp.requests FOR EACH ROW"
    )
    attach = f"CREATE TRIGGER steal {when} EXECUTE FUNCTION indb.{function}('requests')"
    with login_role(db, "indb_app") as (role, url), psycopg.connect(url, autocommit=True) as attacker:
        extra = ", model text, model_version int, runtime text, prediction text, probability_default "
        extra += "float8, probability_repaid float8, scored_at timestamp"
        attacker.execute(f"CREATE TEMP TABLE requests (id bigint, {TYPED}{extra if mode == 'row' else ''})")
        attacker.execute(
            "CREATE TEMP TABLE requests_predictions (id bigint, model text, model_version int, "
            "runtime text, prediction text, probability_default float8, probability_repaid float8)"
        )
        attacker.execute(EVIL)
        attacker.execute(
            "CREATE TRIGGER evil AFTER INSERT ON pg_temp.requests_predictions "
            "FOR EACH STATEMENT EXECUTE FUNCTION pg_temp.evil()"
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for function"):
            attacker.execute(attach)
        db.sql(f'GRANT EXECUTE ON FUNCTION indb.{function}() TO "{role}"')  # a DBA's mistake
        attacker.execute(attach)
        with pytest.raises(psycopg.Error, match="IntegrityError: indb's scoring trigger fired on pg_temp"):
            attacker.execute(f"INSERT INTO pg_temp.requests (id, {COLUMNS}) VALUES (1, 50000, 1000, 40, 3)")
        assert not _is_superuser(db, role)
    assert db.sql("SELECT count(*) AS n FROM requests").n[0] == 0


def test_compiled_trigger_function_refuses_a_table_that_is_not_deployed(db, logistic, loans):
    db.register_model("m", logistic, sample=loans[NUMERIC])
    db.deploy("m", table="requests", runtime="sql")
    with login_role(db, "indb_app") as (role, url), psycopg.connect(url, autocommit=True) as attacker:
        attacker.execute(f"CREATE TEMP TABLE requests (id bigint, {TYPED})")
        attach = (
            "CREATE TRIGGER steal AFTER INSERT ON pg_temp.requests REFERENCING NEW TABLE AS new_rows "
            "FOR EACH STATEMENT EXECUTE FUNCTION indb.score_requests()"
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            attacker.execute(attach)
        db.sql(f'GRANT EXECUTE ON FUNCTION indb.score_requests() TO "{role}"')
        attacker.execute(attach)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="IntegrityError: .* fired on pg_temp"):
            attacker.execute(f"INSERT INTO pg_temp.requests (id, {COLUMNS}) VALUES (1, 50000, 1000, 40, 3)")
    assert db.sql("SELECT count(*) AS n FROM requests_predictions").n[0] == 0


def test_no_indb_function_is_executable_by_public_nor_callable_to_score(db, logistic, loans):
    db.register_model("m", logistic, sample=loans[NUMERIC])
    db.deploy("m", table="requests", runtime="onnx")
    db.deploy("m", table="compiled", runtime="sql")
    db.add_humility_rule("requests", "young", "outside_range", "age", low=18, high=90)
    public = db.sql(
        "SELECT p.oid::regprocedure::text AS f FROM pg_proc AS p, aclexplode(coalesce(p.proacl, "
        "acldefault('f', p.proowner))) AS a WHERE p.pronamespace = 'indb'::regnamespace AND a.grantee = 0"
    )
    assert public.empty, f"executable by PUBLIC: {list(public.f)}"
    with login_role(db, "indb_app") as (_, url), psycopg.connect(url, autocommit=True) as app:
        for call in (
            "SELECT indb.score_unscored_rows('requests', 'SELECT * FROM requests')",
            "SELECT indb.load_runtime()",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute(call)
        app.execute(f"CREATE TEMP TABLE requests (id bigint, {TYPED})")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute(
                "CREATE TRIGGER steal AFTER INSERT ON pg_temp.requests REFERENCING NEW TABLE AS "
                "new_rows FOR EACH STATEMENT EXECUTE FUNCTION indb.humility_requests()"
            )


# -- 10.1: what each role may do ------------------------------------------------------------------
def test_app_inserts_with_returning_and_reads_its_predictions_reader_reads(db, logistic, loans):
    db.register_model("m", logistic, sample=loans[NUMERIC])
    db.deploy("m", table="requests", runtime="onnx")
    db.deploy("m", table="scored_rows", runtime="onnx", mode="row")
    db.deploy("m", table="compiled", runtime="sql")
    with login_role(db, "indb_app") as (_, app_url), login_role(db, "indb_reader") as (_, reader_url):
        with psycopg.connect(app_url, autocommit=True) as app:
            (row_id,) = app.execute(f"INSERT INTO requests ({COLUMNS}) VALUES {ROW} RETURNING id").fetchone()
            label, p = app.execute(
                f"INSERT INTO scored_rows ({COLUMNS}) VALUES {ROW} RETURNING prediction, probability_repaid"
            ).fetchone()
            app.execute(f"INSERT INTO compiled ({COLUMNS}) VALUES {ROW} RETURNING id")
            (stored,) = app.execute(
                "SELECT prediction FROM requests_predictions WHERE id = %s", [row_id]
            ).fetchone()
            (called,) = app.execute(f"SELECT indb.predict_m{ROW}").fetchone()
            assert stored == label == called
            app.execute("INSERT INTO requests_ground_truth (id, label) VALUES (%s, 'repaid')", [row_id])
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute("SELECT count(*) FROM indb.model_versions")
        with psycopg.connect(reader_url, autocommit=True) as reader:
            assert reader.execute("SELECT count(*) FROM requests_scored").fetchone()[0] == 1
            assert reader.execute("SELECT count(*) FROM compiled_predictions").fetchone()[0] == 1
            assert reader.execute(f"SELECT indb.predict_proba_m{ROW}").fetchone()[0][1] == pytest.approx(p)
            assert reader.execute("SELECT count(*) FROM indb.model_versions").fetchone()[0] == 1
            for statement in (
                f"INSERT INTO requests ({COLUMNS}) VALUES {ROW}",
                "UPDATE indb.deployments SET version = 2",
                "DELETE FROM indb.audit_log",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    reader.execute(statement)


def test_developers_set_staging_aliases_only_approvers_production(db, logistic, loans):
    db.register_model("m", logistic, sample=loans[NUMERIC])
    with login_role(db, "indb_developer") as (_, dev_url), login_role(db, "indb_approver") as (_, ok_url):
        with psycopg.connect(dev_url, autocommit=True) as dev:
            dev.execute("INSERT INTO indb.model_aliases (model, alias, version) VALUES ('m', 'staging', 1)")
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
                dev.execute(
                    "INSERT INTO indb.model_aliases (model, alias, version) VALUES ('m', 'production', 1)"
                )
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                dev.execute("UPDATE indb.model_versions SET sha256 = 'x'")
        with psycopg.connect(ok_url, autocommit=True) as approver:
            approver.execute(
                "INSERT INTO indb.model_aliases (model, alias, version) VALUES ('m', 'production', 1)"
            )
    assert set(db.sql("SELECT alias FROM indb.model_aliases").alias) == {"staging", "production"}


def test_developers_cannot_write_sql_that_monitor_runs_execute(db, logistic, loans):
    """indb.run_monitor runs the SQL stored in indb.monitors / indb.monitor_statements and the
    commands of indb.alert_sinks as its caller (pg_cron's superuser too): a developer who could
    write them would run code as the superuser. Only indb_admin writes them."""
    db.register_model("m", logistic, sample=loans[NUMERIC])
    with login_role(db, "indb_developer") as (_, url), psycopg.connect(url, autocommit=True) as dev:
        for table in ("monitors", "monitor_statements", "alert_sinks"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                dev.execute(f"DELETE FROM indb.{table}")
        dev.execute("SELECT count(*) FROM indb.monitor_statements")  # reading stays allowed


def test_developer_registers_through_the_python_client(db, logistic, forest, loans):
    """A developer registers models and moves staging; their predict functions are built by
    the server from the catalog row; production stays with approvers."""
    db.register_model("m", logistic, sample=loans[NUMERIC])
    with login_role(db, "indb_developer") as (name, url), login_role(db, "indb_app") as (_, app_url):
        with indb.connect(url) as dev:
            mv = dev.register_model("m", forest, sample=loans[NUMERIC])
            assert mv.version == 2 and mv.created_by == name
            dev.set_alias("m", "staging", 2)
            with pytest.raises(indb.PermissionDeniedError, match="row-level security"):
                dev.set_alias("m", "production", 1)
        expected = forest.predict(pd.DataFrame([[50000, 1000, 40, 3]], columns=NUMERIC))[0]
        with psycopg.connect(app_url, autocommit=True) as app:
            assert app.execute(f"SELECT indb.predict_m{ROW}").fetchone()[0] == expected
            assert app.execute(f"SELECT indb.predict_m_v2{ROW}").fetchone()[0] == expected
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute("SELECT indb.install_model_functions('m', 1)")
    owner = db.sql(
        "SELECT DISTINCT r.rolname FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner "
        "WHERE p.proname LIKE 'predict%m%'"
    )
    assert list(owner.rolname) == ["postgres"]


def test_non_superusers_use_the_python_client_and_doctor(db, logistic, boosted_regressor, loans):
    """11.15: indb.connect as a reader or developer installs nothing and works read-only;
    `indb doctor` reports them instead of crashing; a role with no grant is told which."""
    db.register_model("m", logistic, sample=loans[NUMERIC])
    db.register_model("loss", boosted_regressor, sample=loans[NUMERIC])
    db.deploy("m", table="requests", runtime="onnx")
    for role in ("indb_reader", "indb_developer"):
        with login_role(db, role) as (name, url):
            with indb.connect(url) as user_db:
                assert set(user_db.models().name) == {"m", "loss"}
                assert len(user_db.deployments()) == 1
                assert user_db.sql(f"SELECT indb.predict_m{ROW} AS p").p[0] in ("repaid", "default")
            out = subprocess.run(
                [sys.executable, "-m", "indb.cli", "doctor", "--db", url],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert "Traceback" not in out.stderr, out.stderr
            assert f"user {name} in {role}" in out.stdout and "catalog readable" in out.stdout
    with login_role(db) as (name, url):
        with pytest.raises(indb.PermissionDeniedError, match=f'GRANT indb_reader TO "{name}"'):
            indb.connect(url)
        out = subprocess.run(
            [sys.executable, "-m", "indb.cli", "doctor", "--db", url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "Traceback" not in out.stderr and "catalog not readable" in out.stdout


def test_a_reader_is_told_when_the_catalog_needs_an_upgrade(db):
    db.sql("DELETE FROM indb.schema_migrations WHERE version = 6")  # as if 006 were new
    with login_role(db, "indb_reader") as (name, url):
        with pytest.raises(indb.DatabaseError, match=r"lacks migration\(s\) \[6\].*superuser"):
            indb.connect(url)


def test_a_catalog_upgraded_by_a_newer_indb_is_refused_for_every_role(db):
    db.sql("INSERT INTO indb.schema_migrations (version, name) VALUES (9999, 'from_the_future')")
    try:
        with pytest.raises(indb.DatabaseError, match=r"upgraded by a newer indb.*\[9999\]"):
            indb.connect(db.url)
        with login_role(db, "indb_developer") as (_, url):
            with pytest.raises(indb.DatabaseError, match=r"upgraded by a newer indb.*\[9999\]"):
                indb.connect(url)
    finally:
        db.sql("DELETE FROM indb.schema_migrations WHERE version = 9999")
    indb.connect(db.url).close()


def test_connect_with_a_classifier_and_a_regressor_in_the_catalog(db, logistic, boosted_regressor, loans):
    """10.8: pandas 3 gives a regressor's NULL classes as NaN once a classifier sits beside it."""
    db.register_model("m", logistic, sample=loans[NUMERIC])
    db.register_model("loss", boosted_regressor, sample=loans[NUMERIC])
    with indb.connect(db.url) as again:
        assert [v.classes for v in again.model_versions("loss")] == [None]
        assert again.get_model("m").classes == ("default", "repaid")


# -- 10.5: a swapped model fails loudly ------------------------------------------------------------
def test_swapping_bytes_and_sha256_together_fails_scoring(db, logistic, forest, loans):
    db.register_model("m", logistic, sample=loans[NUMERIC])
    db.register_model("other", forest, sample=loans[NUMERIC])
    db.deploy("m", table="requests", runtime="onnx")
    db.deploy("m", table="scored_rows", runtime="onnx", mode="row")
    db.sql(
        "UPDATE indb.model_versions AS v SET onnx = o.onnx, sha256 = o.sha256 "
        "FROM indb.model_versions AS o WHERE v.model = 'm' AND o.model = 'other'"
    )
    with psycopg.connect(db.url, autocommit=True) as client:  # a new backend: nothing cached
        for statement in (
            f"INSERT INTO requests ({COLUMNS}) VALUES {ROW}",
            f"INSERT INTO scored_rows ({COLUMNS}) VALUES {ROW}",
            f"SELECT indb.predict_m{ROW}",
            f"SELECT indb.predict_proba_m_v1{ROW}",
        ):
            with pytest.raises(psycopg.Error, match="IntegrityError: model 'm' version 1 is not the version"):
                client.execute(statement)
    assert db.sql("SELECT count(*) AS n FROM requests").n[0] == 0


def test_deployment_records_schema_and_content_hash(db, logistic, loans):
    mv = db.register_model("m", logistic, sample=loans[NUMERIC])
    db.deploy("m", table="requests")
    row = db.sql("SELECT schema_name, content_hash FROM indb.deployments").iloc[0]
    stored = db.sql("SELECT content_hash FROM indb.model_versions").content_hash[0]
    assert row.schema_name == "public" and row.content_hash == stored == mv.content_hash
    assert len(stored) == 64


def test_upgrade_fills_schemas_and_content_hashes_of_earlier_deployments(db, logistic, loans):
    """A catalog from before migration 006: versions and deployments without hashes or schema
    get them at the next superuser connect, computed as registration computes them."""
    mv = db.register_model("m", logistic, sample=loans[NUMERIC])
    db.deploy("m", table="requests", runtime="onnx")
    db.sql("UPDATE indb.model_versions SET content_hash = NULL")
    db.sql("UPDATE indb.deployments SET content_hash = NULL, schema_name = NULL")
    db.sql("COMMENT ON SCHEMA indb IS NULL")  # as before this version's privileges ran
    with psycopg.connect(db.url, autocommit=True) as client:
        with pytest.raises(psycopg.Error, match="records no schema"):
            client.execute(f"INSERT INTO requests ({COLUMNS}) VALUES {ROW}")
    indb.connect(db.url).close()
    row = db.sql("SELECT schema_name, content_hash FROM indb.deployments").iloc[0]
    assert row.schema_name == "public" and row.content_hash == mv.content_hash
    assert db.sql("SELECT content_hash FROM indb.model_versions").content_hash[0] == mv.content_hash
    with psycopg.connect(db.url, autocommit=True) as client:
        client.execute(f"INSERT INTO requests ({COLUMNS}) VALUES {ROW}")


# -- 10.6: the audit log ---------------------------------------------------------------------------
def test_audit_log_is_append_only_chained_and_logs_direct_catalog_changes(db, logistic, loans):
    db.register_model("m", logistic, sample=loans[NUMERIC])
    db.deploy("m", table="requests")
    with login_role(db, "indb_admin") as (admin, url), psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE indb.deployments SET runtime = 'onnx' WHERE table_name = 'requests'")
        conn.execute("INSERT INTO indb.audit_log (actor, action, object) VALUES ('postgres', 'forged', 'x')")
        for statement in ("UPDATE indb.audit_log SET actor = 'x'", "DELETE FROM indb.audit_log"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    log = db.sql("SELECT actor, action, object, details FROM indb.audit_log ORDER BY id")
    direct = log[(log.action == "catalog update deployments") & (log.actor == admin)]
    assert len(direct) == 1 and '"runtime": "onnx"' in direct.details.iloc[0]
    assert log[log.action == "forged"].actor.tolist() == [admin]  # the trigger names the real role
    for statement in (
        "UPDATE indb.audit_log SET actor = 'x'",
        "DELETE FROM indb.audit_log",
        "TRUNCATE indb.audit_log",
    ):
        with pytest.raises(indb.IndbError, match="append-only"):
            db.sql(statement)
    assert _verify(db.url).returncode == 0
    db.sql("ALTER TABLE indb.audit_log DISABLE TRIGGER indb_audit_append_only")
    db.sql("UPDATE indb.audit_log SET actor = 'someone else' WHERE action = 'deploy'")
    out = _verify(db.url)
    assert out.returncode == 2 and "was changed after it was logged" in out.stdout


def test_audit_chain_holds_under_concurrent_writers(db):
    """Ids are taken under the chain's lock, so concurrent writers extend one chain."""

    def write(n: int) -> None:
        with psycopg.connect(db.url, autocommit=True) as conn:
            for i in range(25):
                conn.execute(
                    "INSERT INTO indb.audit_log (actor, action, object) VALUES ('x', 'load', %s)",
                    [f"{n}-{i}"],
                )

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = audit_verify(db)
    assert result.ok and result.rows >= 100, str(result)


def test_ddl_on_indb_and_on_deployed_tables_is_logged(db, logistic, loans):
    db.register_model("m", logistic, sample=loans[NUMERIC])
    db.deploy("m", table="requests")
    db.sql("CREATE TABLE unrelated (x int)")
    with login_role(db, "indb_app") as (name, url), psycopg.connect(url, autocommit=True) as app:
        app.execute("CREATE TEMP TABLE scratch (x int)")  # DDL elsewhere: not logged, not refused
    db.sql("ALTER TABLE requests DISABLE TRIGGER requests_score")
    db.sql("DROP TRIGGER requests_score ON requests")
    db.sql("ALTER TABLE indb.models ADD COLUMN owner_team text")
    log = db.sql("SELECT action, object FROM indb.audit_log WHERE action LIKE 'ddl %' ORDER BY id")
    logged = set(zip(log.action, log.object, strict=True))
    assert ("ddl alter table", "public.requests") in logged
    assert ("ddl drop trigger", "requests_score on public.requests") in logged
    assert ("ddl alter table", "indb.models") in logged
    assert not any("unrelated" in o or "scratch" in o for o in log.object)
    assert audit_verify(db).ok
    db.sql("DROP SCHEMA indb CASCADE")  # uninstalling takes the event triggers with it
    db.sql("CREATE TABLE after_uninstall (x int)")


def audit_verify(db):
    from indb import audit

    return audit.verify(db.backend)


# -- 10.7: onnxruntime honours statement_timeout and cancel ---------------------------------------
def long_model() -> bytes:
    """y = x + n by n iterations of an ONNX Loop, n = max(x): it runs as long as asked."""
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond"], ["cond_out"]),
            helper.make_node("Add", ["v_in", "one"], ["v_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_in", TensorProto.DOUBLE, None),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_out", TensorProto.DOUBLE, None),
        ],
        [helper.make_tensor("one", TensorProto.DOUBLE, [], [1.0])],
    )
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMax", ["x"], ["m"], keepdims=0),
            helper.make_node("Cast", ["m"], ["n"], to=TensorProto.INT64),
            helper.make_node("Loop", ["n", "true", "x"], ["y"], body=body),
        ],
        "long",
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [None, 1])],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, [None, 1])],
        [helper.make_tensor("true", TensorProto.BOOL, [], [True])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


@pytest.fixture
def slow(db):
    db.register_model("slow", long_model(), sample=pd.DataFrame({"x": [1.0, 2.0, 3.0]}))
    db.deploy("slow", table="slow_requests", runtime="onnx")
    return db


def _timed(conn, sql: str, error) -> float:
    start = time.monotonic()
    with pytest.raises(error):
        conn.execute(sql)
    return time.monotonic() - start


def test_inference_stops_at_statement_timeout(slow):
    assert slow.sql("SELECT indb.predict_slow(10) AS y").y[0] == 20.0
    with psycopg.connect(slow.url, autocommit=True) as conn:
        conn.execute("SET statement_timeout = '1s'")
        took = _timed(conn, "SELECT indb.predict_slow(1e9)", psycopg.errors.QueryCanceled)
        assert took < 10, f"ran {took:.1f} s past a 1 s statement_timeout"
        took = _timed(conn, "INSERT INTO slow_requests (x) VALUES (1e9)", psycopg.errors.QueryCanceled)
        assert took < 10
        assert conn.execute("SELECT indb.predict_slow(10)").fetchone()[0] == 20.0


def test_inference_stops_on_cancel_and_at_max_inference_ms(slow):
    with psycopg.connect(slow.url, autocommit=True) as conn:
        pid = conn.info.backend_pid
        cancel = threading.Timer(
            0.8,
            lambda: psycopg.connect(slow.url, autocommit=True).execute("SELECT pg_cancel_backend(%s)", [pid]),
        )
        cancel.start()
        took = _timed(conn, "SELECT indb.predict_slow(1e9)", psycopg.errors.QueryCanceled)
        cancel.join()
        assert took < 10, f"ran {took:.1f} s after pg_cancel_backend"
        conn.execute("SET indb.max_inference_ms = 200")
        start = time.monotonic()
        with pytest.raises(psycopg.Error, match=r"ScoringError: model 'slow' version 1 ran longer than indb"):
            conn.execute("INSERT INTO slow_requests (x) VALUES (1e9)")
        assert time.monotonic() - start < 10
        assert conn.execute("SELECT count(*) FROM slow_requests").fetchone()[0] == 0


# -- 10.8: what an INSERT-only client sees of a model ---------------------------------------------
def test_errors_seen_by_the_application_carry_no_compiled_sql(db, loans):
    """A float overflow inside a compiled trigger: the client sees the error, not the SQL."""
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit(loans[NUMERIC], 10 * loans.income + 3 * loans.debt)
    db.register_model("lin", model, sample=loans[NUMERIC])
    db.deploy("lin", table="requests", runtime="sql")
    intercept = repr(float(model.intercept_))[:10]
    with login_role(db) as (name, url), psycopg.connect(url, autocommit=True) as app:
        db.sql(f'GRANT INSERT ON requests TO "{name}"')  # an INSERT-only client
        db.sql(f'GRANT USAGE ON SEQUENCE requests_id_seq TO "{name}"')
        with pytest.raises(psycopg.errors.NumericValueOutOfRange) as caught:
            app.execute(f"INSERT INTO requests ({COLUMNS}) VALUES (1e308, 1e308, 40, 3)")
    diag = caught.value.diag
    parts = (str(caught.value), diag.message_detail, diag.message_hint, diag.context, diag.internal_query)
    seen = " ".join(str(x or "") for x in parts)
    assert "overflow" in seen
    assert intercept not in seen and "INSERT INTO" not in seen and "SELECT" not in seen, seen
