"""Stages and promotion requests (issue 14.1) on both backends: PostgreSQL as real login roles
(the server's functions check session_user), DuckDB through the API with declared users."""

from __future__ import annotations

import json
from contextlib import ExitStack, contextmanager

import psycopg
import pytest

import indb
from indb.errors import DatabaseError, DeploymentError, PermissionDeniedError
from tests.conftest import NUMERIC
from tests.test_lifecycle_training import loop  # noqa: F401  (the loop fixture)
from tests.test_trust_postgres import login_role

pg_only = pytest.mark.parametrize("db", ["postgresql"], indirect=True)


class Person:
    """Someone acting on the database: their own login (PostgreSQL) or a declared name (DuckDB)."""

    def __init__(self, db, name: str | None):
        self.db, self.name = db, name

    def request(self, version: int, stage: str, reason: str = "holdout looks good") -> int:
        return self.db.request_promotion("m", version, stage, reason, as_user=self.name)

    def approve(self, request: int, comment: str | None = None) -> str:
        return self.db.approve(request, comment, as_user=self.name)

    def reject(self, request: int, comment: str | None = None) -> str:
        return self.db.reject(request, comment, as_user=self.name)


@contextmanager
def people(db, **purposes: str):
    """One Person per keyword (name=purpose: developer, approver, reader)."""
    if not db.backend.enforces_roles:
        yield {name: Person(db, name) for name in purposes}
        return
    with ExitStack() as stack:
        found = {}
        for name, purpose in purposes.items():
            _, url = stack.enter_context(login_role(db, db.backend.role_names[purpose]))
            found[name] = Person(stack.enter_context(indb.connect(url)), None)
        yield found


def _register(db, logistic, loans, versions: int = 1, roc_auc: float = 0.9):
    for _ in range(versions):
        db.register_model("m", logistic, sample=loans[NUMERIC], metrics={"roc_auc": roc_auc})


def _stage(db, version: int) -> str:
    stages = db.stages("m")
    return stages.set_index("version").stage[version]


def test_two_distinct_approvers_change_the_stage_and_archive_the_old_production(db, logistic, loans):
    _register(db, logistic, loans, versions=2)
    assert set(db.stages("m").stage) == {"none"}
    db.set_policy("m", approvals=2)
    with people(db, dev="developer", ann="approver", bob="approver") as p:
        first = p["dev"].request(1, "production")
        assert p["ann"].approve(first, "checked the holdout") == "open"
        with pytest.raises(DatabaseError, match="already decided"):
            p["ann"].approve(first)
        assert _stage(db, 1) == "none"
        assert p["bob"].approve(first) == "done"
        assert _stage(db, 1) == "production"
        with pytest.raises(DatabaseError, match="not open"):
            p["ann"].approve(first)
        second = p["dev"].request(2, "production")
        p["bob"].approve(second)
        assert p["ann"].approve(second) == "done"
    assert [_stage(db, 1), _stage(db, 2)] == ["archived", "production"]
    requests = db.stage_requests("m")
    assert list(requests.status) == ["done", "done"]
    actions = list(db.sql("SELECT action FROM indb.audit_log ORDER BY id").action)
    assert actions.count("request promotion") == 2
    assert actions.count("approve stage request") == 4
    assert actions.count("change stage") == 2
    assert "set stage policy" in actions


def test_the_requester_cannot_approve_their_own_request(db, logistic, loans):
    _register(db, logistic, loans)
    db.set_policy("m", approvals=1)
    with people(db, ann="approver", bob="approver") as p:
        request = p["ann"].request(1, "staging")
        with pytest.raises(PermissionDeniedError, match="may not decide"):
            p["ann"].approve(request)
        with pytest.raises(PermissionDeniedError, match="may not decide"):
            p["ann"].reject(request)
        assert _stage(db, 1) == "none"
        assert p["bob"].approve(request) == "done"
    assert _stage(db, 1) == "staging"


def test_a_rejected_request_stays_rejected(db, logistic, loans):
    _register(db, logistic, loans)
    with people(db, dev="developer", ann="approver", bob="approver") as p:
        request = p["dev"].request(1, "production")
        assert p["ann"].reject(request, "no holdout report") == "rejected"
        with pytest.raises(DatabaseError, match="rejected, not open"):
            p["bob"].approve(request)
    assert _stage(db, 1) == "none"
    decisions = db.sql("SELECT decision, comment FROM indb.stage_approvals")
    assert list(decisions.decision) == ["reject"] and list(decisions.comment) == ["no holdout report"]


def test_a_failing_check_blocks_the_stage_change_and_records_nothing(db, logistic, loans):
    _register(db, logistic, loans, roc_auc=0.7)
    db.set_policy("m", approvals=1, require_checks=[{"min_metric": {"roc_auc": 0.8}}, "no_open_drift_alert"])
    with people(db, dev="developer", ann="approver") as p:
        request = p["dev"].request(1, "production")
        with pytest.raises(DatabaseError, match="min_metric failed: roc_auc .* 0.7.* at least 0.8"):
            p["ann"].approve(request)
    assert _stage(db, 1) == "none"
    assert list(db.stage_requests("m").status) == ["open"]
    assert len(db.sql("SELECT * FROM indb.stage_approvals")) == 0


def test_checks_that_pass_let_the_stage_change(db, logistic, loans):
    _register(db, logistic, loans, roc_auc=0.85)
    db.set_policy("m", approvals=1, require_checks=[{"min_metric": {"roc_auc": 0.8}}, "no_open_drift_alert"])
    with people(db, dev="developer", ann="approver") as p:
        assert p["ann"].approve(p["dev"].request(1, "staging")) == "done"
    assert _stage(db, 1) == "staging"


def test_policies_and_requests_refuse_bad_input_and_change_nothing(db, logistic, loans):
    _register(db, logistic, loans)
    with pytest.raises(ValueError, match="unknown check"):
        db.set_policy("m", require_checks=["parity_check"])
    with pytest.raises(ValueError, match="at least 1"):
        db.set_policy("m", approvals=0)
    with pytest.raises(LookupError, match=r"model 'n' does not exist \(known: 'm'\)"):
        db.set_policy("n", approvals=1)
    with people(db, dev="developer") as p:
        with pytest.raises(ValueError, match="unknown stage"):
            p["dev"].request(1, "prod")
        with pytest.raises(
            LookupError if not db.backend.enforces_roles else DatabaseError, match="version 9 does not exist"
        ):
            p["dev"].request(9, "staging")
    assert len(db.stage_requests("m")) == 0


@pg_only
def test_a_role_outside_the_approver_role_is_refused(db, logistic, loans):
    _register(db, logistic, loans)
    with people(db, dev="developer", other="developer", reader="reader") as p:
        request = p["dev"].request(1, "production")
        with pytest.raises(PermissionDeniedError, match="is not a member of indb_approver"):
            p["other"].approve(request)
        with pytest.raises(PermissionDeniedError):
            p["reader"].approve(request)
        with pytest.raises(PermissionDeniedError):
            p["reader"].request(1, "staging")
    assert _stage(db, 1) == "none"


@pg_only
def test_direct_changes_of_stages_fail_for_developers_and_approvers(db, logistic, loans):
    _register(db, logistic, loans)
    with people(db, dev="developer") as p:
        request = p["dev"].request(1, "production")
    for role in ("indb_developer", "indb_approver"):
        with login_role(db, role) as (_, url), psycopg.connect(url, autocommit=True) as conn:
            for statement in (
                "UPDATE indb.model_versions SET stage = 'production'",
                "UPDATE indb.stage_requests SET status = 'done'",
                "INSERT INTO indb.stage_approvals (request_id, approver, decision) "
                f"VALUES ({request}, 'x', 'approve')",
                "UPDATE indb.stage_policies SET approvals = 1",
                "SELECT indb.decide_stage_request(1, 'approve', NULL)",
                "SELECT indb.parity_failure('m', 1)",  # runs as its definer: only through the checks
                "UPDATE indb.promotion_requests SET status = 'approved'",
                "UPDATE indb.stage_requests SET deployment = 'elsewhere'",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement)
    assert _stage(db, 1) == "none"


@pg_only
def test_as_user_is_refused_where_the_server_knows_who_is_connected(db, logistic, loans):
    _register(db, logistic, loans)
    with pytest.raises(ValueError, match="single-user"):
        db.request_promotion("m", 1, "staging", as_user="someone")


def _open_alert(db, table: str = "requests") -> None:
    db.sql(
        "INSERT INTO indb.monitors (name, deployment, schema_name, reference, window_size, window_seconds, "
        "mode, task, n_reference, created_by) VALUES ('drift', $1, 'public', '{}', '1 day', 86400, "
        "'binned', 'classification', 1, 'test')",
        [table],
    )
    db.sql(
        "INSERT INTO indb.alerts (id, monitor, run_id, window_start, window_end, feature, metric, value) "
        "VALUES (1, 'drift', 1, TIMESTAMP '2026-01-01', TIMESTAMP '2026-01-02', 'income', 'psi', 0.4)"
    )


def test_an_open_drift_alert_on_the_versions_deployment_blocks_it(db, logistic, loans):
    _register(db, logistic, loans)
    db.deploy("m", table="requests")
    _open_alert(db)
    db.set_policy("m", approvals=1, require_checks=["no_open_drift_alert"])
    with people(db, dev="developer", ann="approver") as p:
        request = p["dev"].request(1, "production")
        with pytest.raises(DatabaseError, match="no_open_drift_alert failed: m version 1 has open alerts"):
            p["ann"].approve(request)
        db.sql("UPDATE indb.alerts SET status = 'closed'")
        assert p["ann"].approve(request) == "done"
    assert _stage(db, 1) == "production"


@pg_only
def test_policies_are_the_admins_and_name_the_approver_role(db, logistic, loans):
    _register(db, logistic, loans)
    with login_role(db, "indb_developer") as (_, url), indb.connect(url) as developer:
        with pytest.raises(PermissionDeniedError):
            developer.set_policy("m", approvals=1)
    with login_role(db, "indb_admin") as (_, url), indb.connect(url) as admin:
        admin.set_policy("m", approvals=1, approver_role="risk_officers")
    db.sql("CREATE ROLE risk_officers NOLOGIN")
    try:
        with people(db, dev="developer", ann="approver") as p:
            request = p["dev"].request(1, "production")
            with pytest.raises(PermissionDeniedError, match="not a member of risk_officers"):
                p["ann"].approve(request)
            with login_role(db, "risk_officers", "indb_reader") as (_, url), indb.connect(url) as officer:
                assert officer.approve(request) == "done"
    finally:
        db.sql("DROP OWNED BY risk_officers")
        db.sql("DROP ROLE risk_officers")


def test_a_deployment_marked_production_takes_only_production_versions(db, logistic, loans):
    _register(db, logistic, loans, versions=2)
    db.deploy("m", table="requests", version=1)
    with pytest.raises(DatabaseError if db.backend.enforces_roles else DeploymentError, match="stage none"):
        db.require_stage("requests", "production")  # its version 1 is not in production yet
    with people(db, dev="developer", ann="approver") as p:
        assert p["ann"].approve(p["dev"].request(1, "production")) == "done"
        db.require_stage("requests", "production")
        with pytest.raises(DeploymentError, match="takes only versions in stage production: m version 2"):
            db.deploy("m", table="requests", version=2)
        assert db.deployment("requests").version == 1
        assert p["ann"].approve(p["dev"].request(2, "production")) == "done"
    db.deploy("m", table="requests", version=2)
    assert db.deployment("requests").version == 2
    assert "require stage" in set(db.sql("SELECT action FROM indb.audit_log").action)


@pg_only
def test_the_server_keeps_a_production_deployment_on_production_versions(db, logistic, loans):
    _register(db, logistic, loans, versions=2)
    db.deploy("m", table="requests", version=1)
    with people(db, dev="developer", ann="approver") as p:
        p["ann"].approve(p["dev"].request(1, "production"))
    db.require_stage("requests")
    with pytest.raises(DatabaseError, match="takes only versions in stage production"):
        db.sql("UPDATE indb.deployments SET version = 2 WHERE table_name = 'requests'")


def test_the_cli_requests_approves_and_lists(tmp_path, logistic, loans, capsys):
    from indb.cli import main

    url = f"duckdb://{tmp_path}/cli.duckdb"
    with indb.connect(url) as db:
        _register(db, logistic, loans)
        db.set_policy("m", approvals=1)
    assert (
        main(["stages", "request", "m", "1", "production", "--reason", "ok", "--as-user", "dev", "--db", url])
        == 0
    )
    assert "stage request 1: m version 1 to production, open" in capsys.readouterr().out
    assert main(["stages", "approve", "1", "--as-user", "dev", "--db", url]) == 1
    assert "may not decide" in capsys.readouterr().err
    assert main(["stages", "approve", "1", "--comment", "fine", "--as-user", "ann", "--db", url]) == 0
    assert "stage request 1: done" in capsys.readouterr().out
    assert main(["stages", "list", "m", "--json", "--db", url]) == 0
    assert '"stage": "production"' in capsys.readouterr().out


# -- one approval flow: stage requests that carry a deployment (issue 14.1 with 13.5) --------
def _production(db, p, version: int) -> None:
    assert p["ann"].approve(p["dev"].request(version, "production")) == "done"


def test_a_request_for_a_deployment_switches_it_when_approved(db, logistic, loans):
    """The retraining/evaluation path (promotion.request) opens a promotion request decided by
    a stage request to production; its last approval changes the stage and, for a role that
    may deploy (DuckDB: always), switches the deployment in the same transaction."""
    from indb.lifecycle import promotion

    _register(db, logistic, loans, versions=2)
    db.deploy("m", table="requests", version=1)
    db.set_policy("m", approvals=2)
    with people(db, dev="developer", ann="approver", bob="approver") as p:
        first = p["dev"].request(1, "production")
        p["ann"].approve(first)
        p["bob"].approve(first)
        db.require_stage("requests")
        promoted = promotion.request(
            db.backend, "requests", 2, reason="approval: better", evidence={"auc": 0.9}
        )
        assert promotion.request(db.backend, "requests", 2, reason="again") == promoted  # no duplicate
        requests = db.promotion_requests()
        stage_request = int(requests.stage_request[0])
        opened = db.stage_requests("m").set_index("id").loc[stage_request]
        assert (opened.deployment, opened.to_stage, opened.status) == ("requests", "production", "open")
        assert p["ann"].approve(stage_request, "holdout is convincing") == "open"
        assert db.deployment("requests").version == 1
        last = p["bob"].approve(stage_request)
    if db.backend.enforces_roles:  # approvers do not own request tables: the switch waits
        assert last == "approved" and db.deployment("requests").version == 1
        assert db.promotion_requests().status[0] == "approved"
        db.promote("requests", 2, reason="approved")  # the owner's switch completes it
    else:
        assert last == "done"
    assert db.deployment("requests").version == 2
    assert [_stage(db, 1), _stage(db, 2)] == ["archived", "production"]
    assert db.stage_requests("m").set_index("id").status[stage_request] == "done"
    requests = db.promotion_requests()
    assert requests.status[0] == "done" and requests.decided_by[0]
    assert db.deployment_history("requests").version.iloc[-1] == 2


def test_a_rejected_deployment_request_rejects_its_promotion_request(db, logistic, loans):
    from indb.lifecycle import promotion

    _register(db, logistic, loans, versions=2)
    db.deploy("m", table="requests", version=1)
    promotion.request(db.backend, "requests", 2, reason="approval: better")
    stage_request = int(db.promotion_requests().stage_request[0])
    with people(db, ann="approver") as p:
        assert p["ann"].reject(stage_request, "not now") == "rejected"
    assert db.promotion_requests().status[0] == "rejected"
    assert db.deployment("requests").version == 1 and _stage(db, 2) == "none"


@pg_only
def test_an_owner_completes_a_switch_left_pending_by_approvers(db, logistic, loans):
    """evaluate_challengers (a job of the deployment's owner) switches an approved request
    first: stages.switch_approved."""
    from indb.governance import stages

    _register(db, logistic, loans, versions=2)
    db.deploy("m", table="requests", version=1)
    db.set_policy("m", approvals=1)
    with people(db, dev="developer", ann="approver") as p:
        request = p["dev"].db.request_promotion("m", 2, "production", "better", deployment="requests")
        assert p["ann"].approve(request) == "approved"
    assert stages.switch_approved(db.backend, "requests") == [2]
    assert db.deployment("requests").version == 2
    assert db.stage_requests("m").status.tolist() == ["done"]
    assert stages.switch_approved(db.backend, "requests") == []


def test_a_request_for_a_deployment_refuses_bad_input(db, logistic, loans):
    _register(db, logistic, loans)
    db.deploy("m", table="requests", version=1)
    with people(db, dev="developer") as p:
        with pytest.raises(ValueError, match="to production, not staging"):
            p["dev"].db.request_promotion("m", 1, "staging", deployment="requests", as_user=p["dev"].name)
        with pytest.raises(LookupError if not db.backend.enforces_roles else DatabaseError, match="nowhere"):
            p["dev"].db.request_promotion("m", 1, "production", deployment="nowhere", as_user=p["dev"].name)
    assert len(db.stage_requests("m")) == 0


def test_promote_and_rollback_on_a_production_deployment_take_only_production_versions(
    db, logistic, loans, fresh_loans
):
    _register(db, logistic, loans, versions=2)
    db.deploy("m", table="requests", version=1)
    with people(db, dev="developer", ann="approver") as p:
        _production(db, p, 1)
        db.require_stage("requests")
        history = len(db.deployment_history("requests"))
        with pytest.raises(
            DeploymentError, match="takes only versions in stage production: m version 2 is in stage none"
        ):
            db.promote("requests", 2)
        assert db.deployment("requests").version == 1
        assert len(db.deployment_history("requests")) == history
        db.sql("INSERT INTO requests (income, debt, age, tenure) VALUES (50000, 1000, 40, 3)")
        _production(db, p, 2)
    db.promote("requests", 2)
    assert db.deployment("requests").version == 2
    # version 1 was archived when 2 reached production: rolling back to it is refused
    with pytest.raises(DeploymentError, match="m version 1 is in stage archived"):
        db.rollback("requests")
    assert db.deployment("requests").version == 2
    db.sql("INSERT INTO requests (income, debt, age, tenure) VALUES (60000, 2000, 30, 5)")
    scored = db.sql("SELECT model_version FROM requests_predictions ORDER BY id")
    assert list(scored.model_version) == [1, 2]


@pg_only
def test_refused_switches_under_concurrent_inserts_change_nothing(db, logistic, loans):
    """Writers insert while a promote to a version outside production is refused again and
    again, then one to a production version goes through: no writer fails, every row is
    scored once, by version 1 before the switch and by 2 after it."""
    import threading
    import time

    _register(db, logistic, loans, versions=2)
    db.deploy("m", table="requests", version=1)
    with people(db, dev="developer", ann="approver") as p:
        _production(db, p, 1)
        db.require_stage("requests")
        stop, errors = threading.Event(), []

        def write():
            try:
                with psycopg.connect(db.url, autocommit=True) as conn:
                    while not stop.is_set():
                        conn.execute(
                            "INSERT INTO requests (income, debt, age, tenure) "
                            "SELECT 40000 + g, 1000, 35, 2 FROM generate_series(1, 5) AS g"
                        )
            except Exception as e:  # reported below
                errors.append(e)

        writers = [threading.Thread(target=write) for _ in range(3)]
        for w in writers:
            w.start()
        try:
            refused = 0
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                with pytest.raises(DeploymentError, match="stage production"):
                    db.promote("requests", 2)
                with pytest.raises(DatabaseError, match="stage production"):
                    db.sql("UPDATE indb.deployments SET version = 2 WHERE table_name = 'requests'")
                refused += 1
            assert db.sql("SELECT count(*) AS n FROM requests_predictions WHERE model_version = 2").n[0] == 0
            _production(db, p, 2)
            db.promote("requests", 2)
            switched = db.sql("SELECT max(id) AS id FROM requests").id[0]
            time.sleep(0.5)
        finally:
            stop.set()
            for w in writers:
                w.join()
    assert errors == [] and refused > 0
    counts = db.sql(
        "SELECT r.id, count(p.id) AS n, max(p.model_version) AS v FROM requests AS r "
        "LEFT JOIN requests_predictions AS p ON p.id = r.id GROUP BY r.id"
    )
    assert len(counts) > 0 and set(counts.n) == {1}
    assert set(counts[counts.id > switched].v) == {2}
    assert db.deployment("requests").version == 2


# -- the parity check --------------------------------------------------------------------------
def test_parity_passes_on_the_stored_sample_and_fails_on_a_tampered_one(db, logistic, loans):
    import json

    _register(db, logistic, loans, versions=2)
    db.set_policy("m", approvals=1, require_checks=["parity"])
    with people(db, dev="developer", ann="approver") as p:
        assert p["ann"].approve(p["dev"].request(1, "staging")) == "done"
        # as the admin: the outputs recorded with version 2's sample no longer match its model
        ((text,),) = db.backend.rows(
            "SELECT CAST(sample AS VARCHAR) FROM indb.model_versions WHERE version = 2"
        )
        sample = json.loads(text)
        column = sample["columns"].index("indb_expected_p1")
        for row in sample["data"][:5]:
            row[column] = 1.0 - row[column]
        db.sql(
            "UPDATE indb.model_versions SET sample = CAST($1 AS JSON) WHERE model = 'm' AND version = 2",
            [json.dumps(sample)],
        )
        request = p["dev"].request(2, "staging")
        with pytest.raises(
            DatabaseError,
            match="check parity failed: onnxruntime on the .* stored sample rows of m version 2 disagrees",
        ):
            p["ann"].approve(request)
    assert _stage(db, 2) == "none" and _stage(db, 1) == "staging"
    assert db.stage_requests("m").set_index("id").status[request] == "open"


def test_parity_fails_when_the_stored_bytes_changed(db, logistic, loans):
    from sklearn.linear_model import LogisticRegression

    _register(db, logistic, loans)
    other = LogisticRegression(C=0.001).fit(loans[NUMERIC], loans.label)
    db.register_model("m", other, sample=loans[NUMERIC])
    db.set_policy("m", approvals=1, require_checks=["parity"])
    # as the admin: version 1's bytes swapped for version 2's (its sha256 left alone)
    db.sql(
        "UPDATE indb.model_versions SET onnx = (SELECT onnx FROM indb.model_versions WHERE version = 2) "
        "WHERE model = 'm' AND version = 1"
    )
    with people(db, dev="developer", ann="approver") as p:
        request = p["dev"].request(1, "production")
        with pytest.raises(DatabaseError, match="check parity failed: m version 1: .*sha256"):
            p["ann"].approve(request)
    assert _stage(db, 1) == "none"


def test_the_cli_sets_and_shows_a_policy(tmp_path, logistic, loans, capsys):
    from indb.cli import main

    url = f"duckdb://{tmp_path}/cli.duckdb"
    with indb.connect(url) as db:
        _register(db, logistic, loans)
    assert main(["stages", "policy", "show", "m", "--db", url]) == 0
    assert "m: 1 distinct approver(s) of indb's approver role" in capsys.readouterr().out
    argv = ["stages", "policy", "set", "m", "--approvals", "2", "--approver-role", "risk_officers"]
    checks = ["min_metric:roc_auc=0.8", "parity", "min_metric:f1=0.5", "no_open_drift_alert"]
    assert main([*argv, *[x for c in checks for x in ("--require-check", c)], "--db", url]) == 0
    out = capsys.readouterr().out
    assert "m: 2 distinct approver(s) of risk_officers" in out
    assert "check min_metric roc_auc >= 0.8" in out and "check min_metric f1 >= 0.5" in out
    assert "check parity" in out and "check no_open_drift_alert" in out
    assert main(["stages", "policy", "show", "m", "--json", "--db", url]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["require_checks"] == [
        "parity",
        "no_open_drift_alert",
        {"min_metric": {"roc_auc": 0.8, "f1": 0.5}},
    ]
    assert main([*argv, "--require-check", "min_metric:auc", "--db", url]) == 1
    assert "not METRIC=NUMBER" in capsys.readouterr().err
    assert main([*argv, "--require-check", "fast", "--db", url]) == 1
    assert "unknown check 'fast'" in capsys.readouterr().err
    with indb.connect(url) as db:  # the refused ones changed nothing
        assert db.stage_policy("m")["approver_role"] == "risk_officers"
        assert len(db.stage_policy("m")["require_checks"]) == 3


def test_a_retraining_with_promote_approval_is_decided_by_the_stage_policy(loop):  # noqa: F811
    """retrain -> stage request to production for the new version carrying the deployment ->
    two approvers -> the deployment serves it (PostgreSQL: once its owner switches)."""
    from tests.test_lifecycle_training import arrive

    db = loop
    db.set_policy("risk", approvals=2, require_checks=["parity"])
    db.create_retraining(
        "risk", training_set="risk_train", metric="auc", promote="approval", deployment="risk_requests"
    )
    arrive(db, 1, 300)
    run = db.retrain("risk")
    assert run.status == "succeeded" and run.notes["promotion"] == "requested", run.notes
    request, promotion_request = run.notes["stage_request"], run.notes["promotion_request"]
    opened = db.stage_requests("risk").set_index("id").loc[request]
    assert (opened.version, opened.deployment, opened.status) == (run.version, "risk_requests", "open")
    assert opened.reason.startswith(f"approval: retrained version {run.version}: roc_auc")
    assert db.promotion_requests().set_index("id").stage_request[promotion_request] == request
    assert db.deployment("risk_requests").version == 2
    with people(db, ann="approver", bob="approver") as p:
        assert p["ann"].approve(request) == "open"
        last = p["bob"].approve(request)
    if db.backend.enforces_roles:
        assert last == "approved" and db.deployment("risk_requests").version == 2
        db.promote("risk_requests", run.version)
    else:
        assert last == "done"
    assert db.deployment("risk_requests").version == run.version
    assert db.stages("risk").set_index("version").stage[run.version] == "production"
    assert db.promotion_requests().set_index("id").status[promotion_request] == "done"
    assert db.stage_requests("risk").set_index("id").status[request] == "done"


@pg_only
def test_an_approver_who_may_deploy_switches_in_the_same_transaction(db, logistic, loans):
    """The deployment's owner (here the superuser, a member of every role) approving: the stage
    and the deployment change together, the request is done."""
    _register(db, logistic, loans, versions=2)
    db.deploy("m", table="requests", version=1)
    db.set_policy("m", approvals=1)
    with people(db, dev="developer") as p:
        request = p["dev"].db.request_promotion("m", 2, "production", "better", deployment="requests")
    assert db.approve(request, "owner's approval") == "done"
    assert db.deployment("requests").version == 2 and _stage(db, 2) == "production"
    assert db.stage_requests("m").status.tolist() == ["done"]
    assert (
        db.deployment_history("requests")
        .reason.iloc[-1]
        .startswith(f"promote: stage request {request} approved")
    )


def test_the_cli_requests_a_production_switch_of_a_deployment(tmp_path, logistic, loans, capsys):
    from indb.cli import main

    url = f"duckdb://{tmp_path}/cli.duckdb"
    with indb.connect(url) as db:
        _register(db, logistic, loans, versions=2)
        db.deploy("m", table="requests", version=1)
        db.set_policy("m", approvals=1)
    argv = ["stages", "request", "m", "2", "production", "--deployment", "requests", "--as-user", "ci"]
    assert main([*argv, "--db", url]) == 0
    assert (
        "stage request 1: m version 2 to production (then switches requests), open" in capsys.readouterr().out
    )
    assert main(["stages", "approve", "1", "--as-user", "ann", "--db", url]) == 0
    assert "stage request 1: done" in capsys.readouterr().out
    with indb.connect(url) as db:
        assert db.deployment("requests").version == 2
