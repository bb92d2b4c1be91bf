"""Collaboration (issue 14.6) on both backends: owners, comments, descriptions and tags on
models, feature sets, monitors and jobs, and search over them. PostgreSQL as real login roles
(the server's functions record session_user); DuckDB through the API with declared users."""

from __future__ import annotations

import json
import uuid
from contextlib import ExitStack, contextmanager

import numpy as np
import pandas as pd
import psycopg
import pytest

import indb
from indb import cli
from indb.errors import DatabaseError, NotFoundError, PermissionDeniedError
from tests.conftest import NUMERIC
from tests.test_feature_store import customer_rows
from tests.test_monitoring_drift import DAY1, deployed, load
from tests.test_trust_postgres import login_role

pg_only = pytest.mark.parametrize("db", ["postgresql"], indirect=True)


def _model(db, logistic, loans, name: str = "loans") -> None:
    db.register_model(name, logistic, sample=loans[NUMERIC], description="repayment", tags={"team": "credit"})


def _every_kind(db) -> None:
    """A model (m, deployed on requests), a feature set, a monitor and a job."""
    deployed(db)
    rng = np.random.default_rng(3)
    load(db, pd.DataFrame({"x": rng.normal(0, 1, 50), "y": rng.exponential(1, 50), "c": ["a"] * 50}), DAY1)
    db.create_monitor("drift", "requests", reference="SELECT x, y, c, prediction FROM requests_scored")
    db.create_entity("customer", keys=["customer_id"])
    db.create_feature_set("finance", "customer", source=customer_rows(rows=40), event_time="ts")
    db.schedule("nightly", "0 3 * * *", "sql", statement="SELECT 1", comment="keeps the lights on")


@pytest.fixture
def team(db):
    """An owner name: on PostgreSQL a role (owners are roles there), made for the test."""
    name = f"risk_{uuid.uuid4().hex[:8]}"
    if not db.backend.enforces_roles:
        yield name
        return
    db.sql(f'CREATE ROLE "{name}" NOLOGIN')
    try:
        yield name
    finally:
        db.sql(f'DROP ROLE "{name}"')


def _actions(db) -> list[str]:
    return list(db.sql("SELECT action FROM indb.audit_log ORDER BY id").action)


def test_every_kind_is_described_tagged_owned_commented_and_found(db, team):
    _every_kind(db)
    kinds = db.sql("SELECT object_kind, object_name FROM indb.catalog_objects ORDER BY 1, 2")
    assert kinds.values.tolist() == [
        ["feature_set", "finance"],
        ["job", "nightly"],
        ["model", "m"],
        ["monitor", "drift"],
    ]
    assert db.catalog_object("job", "nightly")["description"] == "keeps the lights on"
    described = {
        ("model", "m"): "scores loan requests",
        ("feature_set", "finance"): "yearly income and debt",
        ("monitor", "drift"): "watches the request mix",
        ("job", "nightly"): "rebuilds everything at three",
    }
    for (kind, name), text in described.items():
        found = db.describe(kind, name, description=text, tags={"team": "risk", "tier": kind})
        assert found["description"] == text and found["tags"] == {"team": "risk", "tier": kind}
        assert db.add_owner(kind, name, team) is True
        assert db.add_owner(kind, name, team) is False  # already an owner: nothing changes
        db.comment(kind, name, f"reviewed the {kind} for the quarterly audit")
    db.comment("feature_set", "finance", "v1 misses March", version=1)
    with pytest.raises(ValueError, match="job 'nightly' has no versions"):
        db.comment("job", "nightly", "which one?", version=1)
    with pytest.raises(ValueError, match="tags must be a dict"):
        db.describe("monitor", "drift", tags=["team", "risk"])
    db.describe("feature-set", "finance", tags={"tier": None, "pii": "no"})
    assert db.catalog_object("feature_set", "finance")["tags"] == {"team": "risk", "pii": "no"}

    rows = db.sql(
        "SELECT * FROM indb.catalog_objects WHERE owners = $team ORDER BY object_kind", {"team": team}
    )
    assert list(rows.object_kind) == ["feature_set", "job", "model", "monitor"]
    assert list(db.sql("SELECT comment FROM indb.jobs").comment) == ["rebuilds everything at three"]
    found = db.search("QUARTERLY")
    assert len(found) == 4 and set(found.matched) == {"comments"}
    assert db.search("march").object_name.tolist() == ["finance"]  # a version's comment too
    found = db.search("risk")
    assert set(found.matched) == {"tags, owners"}
    assert db.search("request mix").object_name.tolist() == ["drift"]
    assert db.search("fin")[["object_kind", "object_name", "matched"]].values.tolist() == [
        ["feature_set", "finance", "name"]
    ]
    comments = db.comments("monitor", "drift")
    assert list(comments.body) == ["reviewed the monitor for the quarterly audit"]
    assert comments.author[0] == db.backend.user
    actions = _actions(db)
    assert actions.count("add owner") == 4 and actions.count("comment") == 5
    assert actions.count("describe") == 4 and "update_model" in actions  # models keep their own verb


def test_a_dropped_monitor_or_job_takes_its_owners_and_comments_along(db, team):
    """A new monitor or job of the same name starts with no owners and no comments; the other
    objects keep theirs. On PostgreSQL the server's row trigger does it, whoever drops."""
    _every_kind(db)
    for kind, name in [("monitor", "drift"), ("job", "nightly"), ("model", "m")]:
        db.add_owner(kind, name, team)
        db.comment(kind, name, f"about the {kind}")
    db.drop_monitor("drift")
    db.unschedule("nightly")
    left = db.sql("SELECT object_kind, object_name FROM indb.owners UNION ALL "
                  "SELECT object_kind, object_name FROM indb.comments")  # fmt: skip
    assert set(map(tuple, left.values.tolist())) == {("model", "m")}
    db.create_monitor("drift", "requests", reference="SELECT x, y, c, prediction FROM requests_scored")
    db.schedule("nightly", "0 4 * * *", "sql", statement="SELECT 2")
    assert db.owners("monitor", "drift").empty and db.comments("job", "nightly").empty
    assert db.owners("model", "m").owner.tolist() == [team]


@pg_only
def test_postgres_the_forgetting_trigger_function_runs_only_on_indbs_tables(db):
    db.sql("CREATE TABLE mine (name text)")
    db.sql("INSERT INTO mine VALUES ('drift')")
    db.sql("CREATE TRIGGER sneaky AFTER DELETE ON mine FOR EACH ROW "
           "EXECUTE FUNCTION indb.forget_collaboration()")  # fmt: skip
    with pytest.raises(PermissionDeniedError, match="runs only as indb.s row trigger") as refused:
        db.sql("DELETE FROM mine")
    assert "GRANT" not in str(refused.value)  # indb's own refusal, not a missing privilege
    assert db.sql("SELECT count(*) AS n FROM mine").n.tolist() == [1]


def test_search_text_is_a_bound_value_and_every_character_is_plain(db, logistic, loans):
    _model(db, logistic, loans)
    db.comment("model", "loans", "holds 100% of last year's applications")
    assert db.search("100%").object_name.tolist() == ["loans"]
    assert db.search("%").object_name.tolist() == ["loans"]
    assert db.search("_").empty  # no underscore anywhere: _ is not a wildcard
    assert db.search("'S APPL").object_name.tolist() == ["loans"]
    for hostile in ("%' OR 1=1 --", "'); DELETE FROM indb.comments; --", "\\", "%%"):
        assert db.search(hostile).empty
    assert len(db.comments("model", "loans")) == 1
    with pytest.raises(ValueError, match="search text must be non-empty"):
        db.search("  ")


def test_unknown_objects_and_bad_input_are_named_and_change_nothing(db, logistic, loans):
    _model(db, logistic, loans)
    before = len(_actions(db))
    with pytest.raises(NotFoundError, match="model 'loan' does not exist; did you mean 'loans'"):
        db.comment("model", "loan", "typo")
    with pytest.raises(NotFoundError, match="monitor 'loans' does not exist"):
        db.add_owner("monitor", "loans", "alice")
    with pytest.raises(ValueError, match="unknown object kind 'table': one of model, feature_set"):
        db.owners("table", "loans")
    with pytest.raises(NotFoundError, match="version of model 'loans' 7 does not exist"):
        db.comment("model", "loans", "no such version", version=7)
    with pytest.raises(ValueError, match="a comment must be non-empty text"):
        db.comment("model", "loans", "   ")
    with pytest.raises(ValueError, match="owner ' alice'"):
        db.add_owner("model", "loans", " alice")
    with pytest.raises(NotFoundError, match="owner of model 'loans' 'alice' does not exist"):
        db.remove_owner("model", "loans", "alice")
    with pytest.raises(ValueError, match="describe needs description= and/or tags="):
        db.describe("model", "loans")
    assert len(_actions(db)) == before
    assert db.sql("SELECT count(*) AS n FROM indb.comments").n[0] == 0
    assert db.sql("SELECT count(*) AS n FROM indb.owners").n[0] == 0


def test_a_comment_on_one_version_and_the_model_tags_follow_its_default_version(db, logistic, loans):
    _model(db, logistic, loans)
    db.register_model("loans", logistic, sample=loans[NUMERIC], tags={"team": "collections"})
    first = db.comment("model", "loans", "v1 underestimates young applicants", version=1)
    second = db.comment("model", "loans", "v2 fixes it")
    comments = db.comments("model", "loans")
    assert comments.id.tolist() == [first, second]
    assert [None if pd.isna(v) else int(v) for v in comments.version] == [1, None]
    assert db.catalog_object("model", "loans")["tags"] == {"team": "collections"}
    db.set_alias("loans", "production", 1)
    assert db.catalog_object("model", "loans")["tags"] == {"team": "credit"}
    assert db.catalog_object("model", "loans")["description"] == "repayment"
    assert "loans@1" in list(db.sql("SELECT object FROM indb.audit_log WHERE action = 'comment'").object)


@contextmanager
def people(db, **purposes: str):
    """One (database, name) per keyword (name=purpose): a login role member of indb's role of
    that purpose on PostgreSQL, a declared user on DuckDB."""
    if not db.backend.enforces_roles:
        yield {name: (db, name) for name in purposes}
        return
    with ExitStack() as stack:
        found = {}
        for name, purpose in purposes.items():
            role, url = stack.enter_context(login_role(db, db.backend.role_names[purpose]))
            found[name] = (stack.enter_context(indb.connect(url)), role)
        yield found


def _as(person, verb: str, *args, **kwargs):
    database, name = person
    declared = {} if database.backend.enforces_roles else {"as_user": name}
    return getattr(database, verb)(*args, **kwargs, **declared)


def test_owners_are_changed_by_the_creator_first_then_only_by_owners(db, logistic, loans):
    _model(db, logistic, loans)
    with people(db, ann="developer", bob="developer") as p:
        ann, bob = p["ann"][1], p["bob"][1]
        db.sql("UPDATE indb.models SET created_by = $ann", {"ann": ann})  # ann registered it
        with pytest.raises(PermissionDeniedError, match="may not change the owners of model '?loans"):
            _as(p["bob"], "add_owner", "model", "loans", bob)
        assert _as(p["ann"], "add_owner", "model", "loans", ann) is True
        with pytest.raises(PermissionDeniedError, match=f"owners: {ann}"):
            _as(p["bob"], "add_owner", "model", "loans", bob)
        _as(p["ann"], "add_owner", "model", "loans", bob)
        _as(p["bob"], "remove_owner", "model", "loans", ann)  # an owner now: may remove ann
        with pytest.raises(PermissionDeniedError):
            _as(p["ann"], "add_owner", "model", "loans", ann)  # no longer an owner nor first
        owners = db.owners("model", "loans")
        assert owners.owner.tolist() == [bob] and owners.added_by.tolist() == [ann]
    actors = db.sql("SELECT actor, action FROM indb.audit_log WHERE action LIKE '%owner' ORDER BY id")
    if db.backend.enforces_roles:
        assert actors.values.tolist() == [[ann, "add owner"], [ann, "add owner"], [bob, "remove owner"]]
    else:
        details = db.sql("SELECT details FROM indb.audit_log WHERE action LIKE '%owner' ORDER BY id").details
        assert [json.loads(d)["as_user"] for d in details] == [ann, ann, bob]


# -- PostgreSQL: the server enforces it, as the roles that would try -----------------------------
@pg_only
def test_postgres_comments_record_session_user_and_readers_only_read(db, logistic, loans):
    _model(db, logistic, loans)
    with people(db, dev="developer", boss="approver", eve="reader") as p:
        (dev_db, dev), (boss_db, boss), (eve_db, eve) = p["dev"], p["boss"], p["eve"]
        dev_db.comment("model", "loans", "calibration looks off above 0.9")
        boss_db.comment("model", "loans", "agreed", version=1)
        with pytest.raises(
            PermissionDeniedError, match=f"'{eve}': permission denied for function add_comment"
        ):
            eve_db.comment("model", "loans", "readers only read")
        with pytest.raises(ValueError, match="as_user is for single-user databases"):
            dev_db.comment("model", "loans", "as someone else", as_user=boss)
        assert eve_db.comments("model", "loans").author.tolist() == [dev, boss]
        assert eve_db.search("calibration").object_name.tolist() == ["loans"]
        with pytest.raises(PermissionDeniedError):
            eve_db.describe("model", "loans", description="renamed by a reader")
    audit = db.sql("SELECT actor FROM indb.audit_log WHERE action = 'comment' ORDER BY id")
    assert audit.actor.tolist() == [dev, boss]


@pg_only
@pytest.mark.parametrize("purpose", ["developer", "approver"])
def test_postgres_no_one_but_admins_writes_owners_or_comments_directly(db, logistic, loans, purpose):
    _model(db, logistic, loans)
    with login_role(db, db.backend.role_names[purpose]) as (name, url):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT indb.add_comment('model', 'loans', 'through SQL')")
            for forged in (
                "INSERT INTO indb.comments (object_kind, object_name, author, body) "
                "VALUES ('model', 'loans', 'the_ceo', 'ship it')",
                "UPDATE indb.comments SET author = 'the_ceo'",
                "DELETE FROM indb.comments",
                f"INSERT INTO indb.owners (object_kind, object_name, owner, added_by) "
                f"VALUES ('model', 'loans', '{name}', '{name}')",
                "DELETE FROM indb.owners",
                "SELECT indb.change_owner('model', 'loans', 'x', true)",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(forged)
            with pytest.raises(
                psycopg.errors.NoDataFound, match="model loan does not exist; did you mean loans"
            ):
                conn.execute("SELECT indb.add_comment('model', 'loan', 'typo')")
    comments = db.sql("SELECT author, body FROM indb.comments")
    assert comments.values.tolist() == [[name, "through SQL"]]


@pg_only
def test_postgres_admins_and_members_of_an_owning_role_change_owners(db, logistic, loans):
    _model(db, logistic, loans)
    db.sql("CREATE ROLE credit_team NOLOGIN")
    db.schedule("nightly", "0 3 * * *", "sql", statement="SELECT 1")
    try:
        with people(db, admin="admin", dev="developer", eve="reader") as p:
            (admin_db, admin), (dev_db, dev), (eve_db, _) = p["admin"], p["dev"], p["eve"]
            with pytest.raises(DatabaseError, match="owner nobody_here is not a role of this server"):
                admin_db.add_owner("model", "loans", "nobody_here")
            admin_db.add_owner("model", "loans", "credit_team")
            with pytest.raises(PermissionDeniedError, match="owners: credit_team"):
                dev_db.add_owner("model", "loans", dev)
            db.sql(f'GRANT credit_team TO "{dev}"')  # dev joins the owning team
            dev_db.add_owner("model", "loans", dev)
            with pytest.raises(PermissionDeniedError):
                eve_db.remove_owner("model", "loans", dev)
            dev_db.remove_owner("model", "loans", "credit_team")
            assert eve_db.owners("model", "loans").owner.tolist() == [dev]
            # developers describe jobs and monitors (a column grant), not their schedules
            assert dev_db.describe("job", "nightly", tags={"team": "credit"})["tags"] == {"team": "credit"}
            with pytest.raises(PermissionDeniedError):
                dev_db.sql("UPDATE indb.jobs SET schedule = '* * * * *'")
            assert admin_db.owners("model", "loans").added_by.tolist() == [dev]
            assert (
                admin in db.sql("SELECT actor FROM indb.audit_log WHERE action = 'add owner'").actor.tolist()
            )
    finally:
        db.sql("DROP OWNED BY credit_team")
        db.sql("DROP ROLE credit_team")


# -- the CLI ---------------------------------------------------------------------------------
def test_the_cli_adds_owners_and_comments_and_searches(db, logistic, loans, team, capsys):
    _model(db, logistic, loans)
    url = db.url

    def run(*argv: str) -> str:
        code = cli.main(["--db", url, *argv])
        out, err = capsys.readouterr()
        assert code == 0, err
        return out

    assert f"owners: {team}" in run("owner", "add", "model", "loans", team)
    assert "comment 1 on model loans" in run("comment", "model", "loans", "approved by credit risk")
    assert "approved by credit risk" in run("comment", "model", "loans")
    assert '"monitoring": "weekly"' in run("describe", "model", "loans", "--tag", "monitoring=weekly")
    found = json.loads(run("search", "CREDIT", "--json"))
    assert [(f["object_name"], f["matched"]) for f in found] == [("loans", "tags, comments")]
    assert "loans" in run("search", team.upper())
    assert json.loads(run("owner", "list", "model", "loans", "--json"))[0]["owner"] == team
    assert "removed; owners: none" in run("owner", "remove", "model", "loans", team)
    assert cli.main(["--db", url, "comment", "model", "loan", "typo"]) == 1
    assert "did you mean 'loans'" in capsys.readouterr().err
