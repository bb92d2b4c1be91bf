"""Who may deploy on PostgreSQL (README, Security): a deploy, an undeploy and a humility rule
create or drop triggers and functions that run as indb's owner, so only a superuser or that
owner may. Any other role, the admin role included, is refused before anything runs, in words
that say who may; a managed server's non-superuser owner installs indb and deploys."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import psycopg
import pytest

import indb
from tests.conftest import NUMERIC, pg_database
from tests.switch_stress import models
from tests.test_trust_postgres import _as_user, login_role

pytestmark = pytest.mark.parametrize("db", ["postgresql"], indirect=True)
COLUMNS = ", ".join(NUMERIC)
ROW = "(50000, 1000, 40, 3)"
REFUSED = r"permission denied to {}: .* indb's owner \({}\), so only a superuser or that owner may"


def _state(db) -> tuple:
    """What a refused verb must leave as it was: deployments, rules, triggers, tables, functions."""
    return tuple(
        db.sql(query).values.tolist()
        for query in (
            "SELECT table_name, version FROM indb.deployments ORDER BY 1",
            "SELECT deployment, name FROM indb.humility_rules ORDER BY 1, 2",
            "SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1, 2",
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace ORDER BY 1",
            "SELECT count(*) FROM pg_proc WHERE pronamespace = 'indb'::regnamespace",
        )
    )


def test_the_admin_role_is_refused_deploying_with_who_may(db, loans):
    for model in models(loans).values():
        db.register_model("m", model, sample=loans[NUMERIC])
    db.deploy("m", table="theirs", version=1, runtime="onnx")
    with login_role(db, "indb_admin") as (name, url):
        db.sql(f'GRANT CREATE ON SCHEMA public TO "{name}"')
        with indb.connect(url) as admin:
            admin.sql("CREATE TABLE mine (income float8, debt float8, age bigint, tenure float8)")
            before = _state(db)
            assert admin.deploy("m", table="mine", version=1, dry_run=True).statements  # reading is theirs
            for verb, call in (
                ("deploy to 'mine'", lambda: admin.deploy("m", table="mine", version=1, runtime="sql")),
                ("deploy to 'theirs'", lambda: admin.deploy("m", table="theirs", version=2, runtime="onnx")),
                ("deploy to 'theirs'", lambda: admin.promote("theirs", 2)),
                ("undeploy 'theirs'", lambda: admin.undeploy("theirs")),
                (
                    "add a humility rule to 'theirs'",
                    lambda: admin.add_humility_rule("theirs", "r", "outside_range", "income", low=0, high=1),
                ),
            ):
                with pytest.raises(indb.PermissionDeniedError, match=REFUSED.format(verb, "postgres")):
                    call()
                assert _state(db) == before
            db.add_humility_rule("theirs", "r", "outside_range", "income", low=0, high=1)
            removing = REFUSED.format("remove a humility rule of 'theirs'", "postgres")
            with pytest.raises(indb.PermissionDeniedError, match=removing):
                admin.remove_humility_rule("theirs", "r")
    db.sql(f"INSERT INTO theirs ({COLUMNS}) VALUES {ROW}")  # still deployed, by version 1
    assert db.sql("SELECT model_version FROM theirs_scored").model_version.tolist() == [1]


def test_a_developer_without_create_on_the_schema_is_told_the_grant(db):
    """Feature sets are a developer's: their tables go into the first schema of search_path,
    which PostgreSQL 15 no longer lets everyone create in. The error gives the GRANT."""
    from tests.test_deploy_triggers import customer_rows

    db.create_entity("customer", keys=["customer_id"])
    with login_role(db, "indb_developer") as (name, url), indb.connect(url) as developer:
        grant = f'GRANT USAGE, CREATE ON SCHEMA "public" TO "{name}"'
        with pytest.raises(
            indb.PermissionDeniedError, match=rf"schema public\. .* {re.escape(grant)}; or set search_path"
        ):
            developer.create_feature_set("finance", "customer", source=customer_rows(), event_time="ts")
        assert db.sql("SELECT count(*) AS n FROM indb.feature_sets").n[0] == 0
        db.sql(grant)
        developer.create_feature_set("finance", "customer", source=customer_rows(), event_time="ts")
    assert db.sql("SELECT count(*) AS n FROM indb.feature_sets").n[0] == 1


@contextmanager
def managed_database(pg_dsn: str) -> Iterator[tuple[str, str, str]]:
    """A database owned by a non-superuser role (a managed server's), with a schema app it
    and a second role create in: (url as the owner, the owner, url as the other role)."""
    name, owner, other = (f"{p}_{uuid.uuid4().hex[:8]}" for p in ("managed", "owner", "other"))
    with psycopg.connect(pg_dsn, autocommit=True) as su:
        su.execute(f'CREATE ROLE "{owner}" LOGIN')
        su.execute(f'CREATE ROLE "{other}" LOGIN')
        su.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
    url = pg_database(pg_dsn, name)
    try:
        with psycopg.connect(_as_user(url, owner), autocommit=True) as conn:
            conn.execute("CREATE SCHEMA app")
            conn.execute(f'GRANT USAGE, CREATE ON SCHEMA app TO "{other}"')
        yield _as_user(url, owner), owner, _as_user(url, other)
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as su:
            su.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            su.execute(f'DROP ROLE "{owner}"')
            su.execute(f'DROP ROLE "{other}"')


def test_a_non_superuser_owner_installs_deploys_and_switches(db, pg_dsn, loans):
    """A managed server: no superuser, the database's owner installs indb (no roles, no
    PL/Python: the compiled runtime) and deploys; another role with CREATE is refused."""
    with managed_database(pg_dsn) as (url, owner, other_url):
        with indb.connect(url) as mine:
            assert not mine.backend.superuser
            for model in models(loans).values():
                mine.register_model("m", model, sample=loans[NUMERIC])
            mine.sql("SET search_path = app")
            mine.deploy("m", table="requests", version=1, runtime="sql")
            mine.sql(f"INSERT INTO requests ({COLUMNS}) VALUES {ROW}")
            mine.deploy("m", table="requests", version=2, runtime="sql")
            mine.sql(f"INSERT INTO requests ({COLUMNS}) VALUES {ROW}")
            scored = mine.sql("SELECT model_version FROM requests_scored ORDER BY id")
            assert scored.model_version.tolist() == [1, 2]
            other = urlsplit(other_url).username
            mine.sql(f'GRANT USAGE ON SCHEMA indb TO "{other}"')
            mine.sql(f'GRANT SELECT ON ALL TABLES IN SCHEMA indb TO "{other}"')
        with indb.connect(other_url) as theirs:
            theirs.sql("SET search_path = app")
            theirs.sql("CREATE TABLE own (income float8, debt float8, age bigint, tenure float8)")
            with pytest.raises(indb.PermissionDeniedError, match=REFUSED.format("deploy to 'own'", owner)):
                theirs.deploy("m", table="own", version=1, runtime="sql")
