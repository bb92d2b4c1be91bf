"""Issue 10: indb's PostgreSQL roles under names a DBA chooses at install (``roles=``,
``INDB_ROLE_*``), recorded in ``indb.roles`` and used by every grant, hint and later connect.

Each install under chosen names gets a database of its own (CREATE DATABASE, not the test
template, whose catalog was installed under the default names), and roles with a fresh
prefix: roles belong to the whole cluster, which the other tests share."""

from __future__ import annotations

import subprocess
import sys
import uuid
from contextlib import contextmanager

import psycopg
import pytest

import indb
from indb.backends import open_backend
from indb.backends.postgres_roles import PURPOSES
from tests.conftest import NUMERIC, pg_database
from tests.test_trust_postgres import COLUMNS, ROW, login_role


@contextmanager
def fresh_database(pg_dsn: str, roles: list[str] = ()):
    """An empty database (no catalog) and, afterwards, the cluster's roles in ``roles`` dropped."""
    name = f"indb_roles_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield pg_database(pg_dsn, name)
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            for role in roles:
                admin.execute(f'DROP ROLE IF EXISTS "{role}"')


def _names(prefix: str) -> dict[str, str]:
    """INDB_ROLE_PREFIX gives every purpose its name; roles= overrides the app's."""
    return {p: prefix + p for p in PURPOSES} | {"app": prefix + "loan_app"}


@pytest.fixture(scope="module")
def custom(pg_dsn, pg_template, logistic, loans):
    """indb installed under chosen names, a model deployed in bulk and row mode: (db, names).
    After pg_template, so that the default roles exist in the cluster (and must stay unused)."""
    prefix = f"t{uuid.uuid4().hex[:6]}_"
    names = _names(prefix)
    with fresh_database(pg_dsn, list(names.values())) as url, pytest.MonkeyPatch.context() as env:
        env.setenv("INDB_ROLE_PREFIX", prefix)
        db = indb.connect(url, roles={"app": names["app"]})
        env.delenv("INDB_ROLE_PREFIX")
        db.register_model("m", logistic, sample=loans[NUMERIC])
        db.deploy("m", table="requests", runtime="onnx")
        db.deploy("m", table="scored_rows", runtime="onnx", mode="row")
        try:
            yield db, names
        finally:
            db.close()


def test_install_records_and_creates_the_chosen_roles(custom):
    db, names = custom
    recorded = db.sql("SELECT purpose, role_name, created FROM indb.roles")
    assert dict(zip(recorded.purpose, recorded.role_name, strict=True)) == names
    assert recorded.created.all()
    logged = db.sql("SELECT actor, details FROM indb.audit_log WHERE action = 'record roles'")
    assert len(logged) == 1 and f'"app": "{names["app"]}"' in logged.details[0]
    roles = db.sql(
        "SELECT rolname, rolcanlogin, rolsuper FROM pg_roles WHERE rolname = ANY(%(n)s)",
        {"n": list(names.values())},
    )
    assert set(roles.rolname) == set(names.values())
    assert not roles.rolcanlogin.any() and not roles.rolsuper.any()
    member = db.sql(
        "SELECT pg_has_role(%(admin)s, %(reader)s, 'MEMBER') AS chain",
        {"admin": names["admin"], "reader": names["reader"]},
    )
    assert bool(member.chain[0])  # admin > approver > developer > reader
    comment = db.sql("SELECT obj_description('indb'::regnamespace, 'pg_namespace') AS c").c[0]
    assert f"app={names['app']}" in comment and "indb privileges " in comment


def test_app_inserts_with_returning_reader_reads_under_chosen_names(custom):
    db, names = custom
    with login_role(db, names["app"]) as (_, app_url), login_role(db, names["reader"]) as (_, reader_url):
        with psycopg.connect(app_url, autocommit=True) as app:
            (row_id,) = app.execute(f"INSERT INTO requests ({COLUMNS}) VALUES {ROW} RETURNING id").fetchone()
            (stored,) = app.execute(
                "SELECT prediction FROM requests_predictions WHERE id = %s", [row_id]
            ).fetchone()
            (returned,) = app.execute(
                f"INSERT INTO scored_rows ({COLUMNS}) VALUES {ROW} RETURNING prediction"
            ).fetchone()
            (called,) = app.execute(f"SELECT indb.predict_m{ROW}").fetchone()  # event trigger's grant
            assert stored == returned == called and stored in ("repaid", "default")
            app.execute("INSERT INTO requests_ground_truth (id, label) VALUES (%s, 'repaid')", [row_id])
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute("SELECT count(*) FROM indb.model_versions")
        with psycopg.connect(reader_url, autocommit=True) as reader:
            assert reader.execute("SELECT count(*) FROM requests_predictions").fetchone()[0] == 1
            assert reader.execute("SELECT count(*) FROM requests_scored").fetchone()[0] == 1
            assert reader.execute("SELECT count(*) FROM indb.roles").fetchone()[0] == 5
            for statement in (
                f"INSERT INTO requests ({COLUMNS}) VALUES {ROW}",
                "INSERT INTO requests_ground_truth (id, label) VALUES (1, 'x')",
                "UPDATE indb.roles SET role_name = 'x'",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    reader.execute(statement)


def test_developer_and_approver_policies_follow_the_chosen_names(custom):
    db, names = custom
    policies = db.sql(
        "SELECT policyname, roles::text AS roles FROM pg_policies WHERE tablename = 'model_aliases'"
    )
    assert dict(zip(policies.policyname, policies.roles, strict=True)) == {
        "indb_read": "{public}",
        "indb_stage": "{" + names["developer"] + "}",
        "indb_approve": "{" + names["approver"] + "}",
    }
    with login_role(db, names["developer"]) as (_, dev_url), login_role(db, names["admin"]) as (_, admin_url):
        with psycopg.connect(dev_url, autocommit=True) as dev:
            dev.execute("INSERT INTO indb.model_aliases (model, alias, version) VALUES ('m', 'staging', 1)")
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
                dev.execute(
                    "INSERT INTO indb.model_aliases (model, alias, version) VALUES ('m', 'production', 1)"
                )
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(
                "INSERT INTO indb.model_aliases (model, alias, version) VALUES ('m', 'production', 1)"
            )
            with pytest.raises(psycopg.errors.InsufficientPrivilege):  # names are the superuser's
                admin.execute("UPDATE indb.roles SET role_name = 'x' WHERE purpose = 'app'")
    db.sql("DELETE FROM indb.model_aliases")


def test_the_default_roles_get_nothing_in_that_database(custom):
    """The cluster has indb_* roles (the other tests' databases): not one grant here names them."""
    db, _ = custom
    mentions = db.sql(
        """
        WITH defaults AS (SELECT oid FROM pg_roles WHERE rolname LIKE 'indb\\_%')
        SELECT 'relation ' || c.oid::regclass::text AS what FROM pg_class AS c, aclexplode(c.relacl) AS a
        WHERE a.grantee IN (SELECT oid FROM defaults)
        UNION ALL
        SELECT 'function ' || p.oid::regprocedure::text FROM pg_proc AS p, aclexplode(p.proacl) AS a
        WHERE a.grantee IN (SELECT oid FROM defaults)
        UNION ALL
        SELECT 'schema ' || n.nspname FROM pg_namespace AS n, aclexplode(n.nspacl) AS a
        WHERE a.grantee IN (SELECT oid FROM defaults)
        UNION ALL
        SELECT 'policy ' || polname FROM pg_policy WHERE polroles && ARRAY(SELECT oid FROM defaults)
        """
    )
    assert mentions.empty, list(mentions.what)
    granted = db.sql(
        "SELECT count(*) AS n FROM information_schema.role_table_grants WHERE table_name = 'requests' "
        "AND grantee = %(app)s AND privilege_type = 'INSERT'",
        {"app": custom[1]["app"]},
    )
    assert granted.n[0] == 0  # column privileges only (the request columns)
    columns = db.sql(
        "SELECT column_name FROM information_schema.column_privileges WHERE table_name = 'requests' "
        "AND grantee = %(app)s AND privilege_type = 'INSERT'",
        {"app": custom[1]["app"]},
    )
    assert set(columns.column_name) == set(NUMERIC)


def test_later_connects_and_hints_use_the_recorded_names(custom):
    db, names = custom
    with indb.connect(db.url) as again:  # no roles= and no INDB_ROLE_*: the recorded names
        assert again.backend.role_names == names
    backend = open_backend(db.url)  # SQL templates' slots, before any install step ran
    try:
        assert backend.role_slots()["app"].text == f'"{names["app"]}"'
    finally:
        backend.close()
    with login_role(db, names["reader"]) as (name, url):
        with indb.connect(url) as reader_db:
            assert reader_db.backend.role_names == names
            with pytest.raises(
                indb.PermissionDeniedError, match=f"GRANT {names['reader']} TO .*{names['app']}"
            ):
                reader_db.sql(f"INSERT INTO requests ({COLUMNS}) VALUES {ROW}")
        doctor = _doctor(url)
        assert f"user {name} in {names['reader']}" in doctor.stdout, doctor.stdout
        assert f"reader={names['reader']}" in doctor.stdout and "recorded at install" in doctor.stdout
    with login_role(db) as (name, url):  # no grant: told the names from the schema's comment
        with pytest.raises(indb.PermissionDeniedError, match=f'GRANT {names["reader"]} TO "{name}"'):
            indb.connect(url)
        doctor = _doctor(url)
        assert f"GRANT {names['reader']} TO" in doctor.stdout and "indb_reader" not in doctor.stdout


def _doctor(url: str, **env) -> subprocess.CompletedProcess:
    import os

    out = subprocess.run(
        [sys.executable, "-m", "indb.cli", "doctor", "--db", url],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ | env,
    )
    assert "Traceback" not in out.stderr, out.stderr
    return out


def test_a_connect_asking_for_other_names_is_refused(custom, monkeypatch):
    db, names = custom
    before = db.sql("SELECT count(*) AS n FROM pg_roles").n[0]
    with pytest.raises(indb.InvalidNameError, match=rf"app={names['app']} .*not app=other_app"):
        indb.connect(db.url, roles={"app": "other_app"})
    with indb.connect(db.url, roles={"app": names["app"]}):  # the installed names are fine
        pass
    monkeypatch.setenv("INDB_ROLE_PREFIX", "acme_")
    with pytest.raises(indb.InvalidNameError, match="recorded in indb.roles at install"):
        indb.connect(db.url)
    out = _doctor(db.url, INDB_ROLE_PREFIX="acme_")
    assert "roles" in out.stdout and "not reader=acme_reader" in out.stdout and out.returncode != 0
    monkeypatch.delenv("INDB_ROLE_PREFIX")
    with login_role(db, names["reader"]) as (_, url):  # a client configured wrongly too
        with pytest.raises(indb.InvalidNameError, match="not developer=x_dev"):
            indb.connect(url, roles={"developer": "x_dev"})
    assert db.sql("SELECT count(*) AS n FROM pg_roles").n[0] == before
    recorded = db.sql("SELECT purpose, role_name FROM indb.roles")
    assert dict(zip(recorded.purpose, recorded.role_name, strict=True)) == names


@pytest.mark.parametrize(
    "roles, match",
    [
        ({"app": "x; drop role postgres"}, "app role name 'x; drop role postgres' is not a plain identifier"),
        ({"app": 'a"b'}, "not a plain identifier"),
        ({"reader": "a'b"}, "not a plain identifier"),
        ({"reader": "r" * 64}, "at most 63 characters"),
        ({"reader": "Loan_Reader"}, "lowercase"),
        ({"reader": ""}, "not a plain identifier"),
        ({"app": 7}, "must be a string"),
        ({"reader": "public"}, "reserved by PostgreSQL"),
        ({"admin": "pg_monitor"}, "reserved by PostgreSQL"),
        ({"app": "shared", "reader": "shared"}, "named for both reader and app"),
        ({"app": "indb_reader"}, "named for both reader and app"),
        ({"apps": "x"}, "did you mean 'app'"),
        ("loan_app", "must map purposes"),
    ],
)
def test_hostile_or_mistaken_names_are_refused_before_connecting(pg_dsn, roles, match):
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        before = admin.execute("SELECT count(*) FROM pg_roles").fetchone()[0]
    with pytest.raises(indb.InvalidNameError, match=match):
        indb.connect(pg_dsn, roles=roles)
    with pytest.raises(indb.InvalidNameError, match=match):  # checked before any connection
        indb.connect("postgresql://nobody@127.0.0.1:1/none", roles=roles)
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        assert admin.execute("SELECT count(*) FROM pg_roles").fetchone()[0] == before


@pytest.mark.parametrize(
    "env, match",
    [
        ({"INDB_ROLE_APP": "x; drop"}, "app role name 'x; drop' is not a plain identifier"),
        ({"INDB_ROLE_PREFIX": "Acme-"}, "not a plain identifier"),
        ({"INDB_ROLE_APPS": "x"}, "INDB_ROLE_APPS names no role of indb.*did you mean 'APP'"),
    ],
)
def test_hostile_environment_names_are_refused(monkeypatch, env, match):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(indb.InvalidNameError, match=match):
        indb.connect("postgresql://nobody@127.0.0.1:1/none")


def test_a_superuser_or_bypassrls_role_is_refused_and_nothing_recorded(pg_dsn):
    bypass = f"t{uuid.uuid4().hex[:6]}_bypass"
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{bypass}" NOLOGIN BYPASSRLS')
        (superuser,) = admin.execute("SELECT current_user").fetchone()
    with fresh_database(pg_dsn, [bypass]) as url:
        with pytest.raises(
            indb.InvalidNameError, match=f"admin role name '{superuser}' is an existing superuser"
        ):
            indb.connect(url, roles={"admin": superuser})
        with pytest.raises(indb.InvalidNameError, match=f"'{bypass}' is an existing BYPASSRLS role"):
            indb.connect(url, roles={"developer": bypass})
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM indb.roles").fetchone()[0] == 0
            (comment,) = conn.execute(
                "SELECT obj_description('indb'::regnamespace, 'pg_namespace')"
            ).fetchone()
            assert comment is None or "indb privileges" not in comment


def test_an_existing_role_is_adopted_and_recorded_as_such(pg_dsn):
    prefix = f"t{uuid.uuid4().hex[:6]}_"
    names = {p: prefix + p for p in PURPOSES}
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{names["app"]}" NOLOGIN')
    with fresh_database(pg_dsn, list(names.values())) as url:
        with indb.connect(url, roles=names) as db:
            created = db.sql("SELECT purpose, created FROM indb.roles")
            assert dict(zip(created.purpose, created.created, strict=True)) == {
                p: p != "app" for p in PURPOSES
            }


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_a_catalog_from_before_configurable_names_keeps_the_defaults(db):
    """Privileges installed before migration 013 were granted to indb_*: the upgrade records those
    names and refuses others."""
    comment = db.sql("SELECT obj_description('indb'::regnamespace, 'pg_namespace') AS c").c[0]
    db.sql("DELETE FROM indb.roles")  # as after migration 013 on such a catalog
    with pytest.raises(indb.InvalidNameError, match="installed with the default names"):
        indb.connect(db.url, roles={"app": "loan_app"})
    with indb.connect(db.url) as again:
        assert again.backend.role_names["app"] == "indb_app"
    assert db.sql("SELECT count(*) AS n FROM indb.roles WHERE role_name LIKE 'indb\\_%'").n[0] == 5
    assert db.sql("SELECT obj_description('indb'::regnamespace, 'pg_namespace') AS c").c[0] == comment


def test_renaming_a_role_as_the_readme_says(pg_dsn, logistic, loans):
    """ALTER ROLE ... RENAME and the indb.roles row: the next connect re-runs the privileges
    (the names are in their fingerprint) and later deploys grant to the new name."""
    prefix = f"t{uuid.uuid4().hex[:6]}_"
    names = {p: prefix + p for p in PURPOSES}
    renamed = prefix + "service"
    with fresh_database(pg_dsn, [*names.values(), renamed]) as url:
        with indb.connect(url, roles=names) as db:
            db.register_model("m", logistic, sample=loans[NUMERIC])
            db.sql(f'ALTER ROLE "{names["app"]}" RENAME TO "{renamed}"')
            db.sql("UPDATE indb.roles SET role_name = %(n)s WHERE purpose = 'app'", {"n": renamed})
        with indb.connect(url) as db:
            assert db.backend.role_names["app"] == renamed
            comment = db.sql("SELECT obj_description('indb'::regnamespace, 'pg_namespace') AS c").c[0]
            assert f"app={renamed}" in comment
            db.deploy("m", table="requests", runtime="onnx")
            with login_role(db, renamed) as (_, app_url), psycopg.connect(app_url, autocommit=True) as app:
                (row_id,) = app.execute(
                    f"INSERT INTO requests ({COLUMNS}) VALUES {ROW} RETURNING id"
                ).fetchone()
                assert app.execute("SELECT count(*) FROM requests_predictions").fetchone()[0] == 1
                assert row_id == 1


def test_duckdb_refuses_roles_and_ignores_the_environment(tmp_path, monkeypatch):
    with pytest.raises(indb.IndbError, match="DuckDB database, which has no roles"):
        indb.connect(f"duckdb://{tmp_path}/x.duckdb", roles={"app": "loan_app"})
    monkeypatch.setenv("INDB_ROLE_APP", "loan_app")  # one environment may serve both backends
    with indb.connect(f"duckdb://{tmp_path}/x.duckdb") as db:
        assert db.sql("SELECT count(*) AS n FROM indb.roles").n[0] == 0
