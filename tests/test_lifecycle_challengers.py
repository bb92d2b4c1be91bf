"""Challengers (issue 13.4): shadow and split arms scored in the same insert as the champion."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pandas as pd
import pytest
from sqlglot import exp

from indb.errors import DeploymentError, NotFoundError
from indb.lifecycle.challengers import BUCKETS, bucket, bucket_tree
from tests.conftest import NUMERIC, loan_frame
from tests.parity import assert_matches_sklearn

COLUMNS = ", ".join(NUMERIC)
PROBABILITIES = ["probability_default", "probability_repaid"]


@pytest.fixture(scope="module")
def versions():
    """Four versions of one model that disagree on some rows (different regularisation)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    loans = loan_frame(2_000)
    return [
        make_pipeline(StandardScaler(), LogisticRegression(C=c)).fit(loans[NUMERIC], loans.label)
        for c in (1.0, 0.001, 0.01, 0.0003)
    ]


def _register(db, versions, count=2):
    sample = loan_frame(200)[NUMERIC]
    for model in versions[:count]:
        db.register_model("m", model, sample=sample)


def _insert(db, frame, table="requests"):
    db.write_table("incoming", frame[NUMERIC], replace=True)
    db.sql(f"INSERT INTO {table} ({COLUMNS}) SELECT {COLUMNS} FROM incoming ORDER BY income")


def _predictions(db, table="requests"):
    return db.sql(
        f"SELECT id, model_version, runtime, role, served, prediction, {', '.join(PROBABILITIES)} "
        f"FROM {table}_predictions ORDER BY id, role, model_version"
    )


def _requests(db, table="requests"):
    return db.sql(f"SELECT id, {COLUMNS} FROM {table} ORDER BY id")


def test_bucket_is_the_same_in_python_and_in_sql(db):
    """Python, DuckDB and PostgreSQL compute the same bucket for every id (so the same ids land
    in the same arm on both backends), including ids near the 2^31 - 1 modulus and negatives."""
    ids = [*range(-50, 3_000), 2_147_483_646, 2_147_483_647, 2_147_483_648, 9_000_000_000_000_000_000]
    db.write_table("ids", pd.DataFrame({"id": np.array(ids, dtype=np.int64)}), replace=True)
    dialect = "postgres" if db.backend.dialect == "postgres" else "duckdb"
    expression = bucket_tree(exp.column("id")).sql(dialect)
    got = db.sql(f"SELECT id, {expression} AS b FROM ids ORDER BY id")
    assert got.b.astype(int).tolist() == [bucket(i) for i in sorted(ids)]
    # spread: a plain id % 10000 would put consecutive ids in consecutive buckets
    shares = np.bincount([bucket(i) * 10 // BUCKETS for i in range(1, 20_001)], minlength=10) / 20_000
    assert np.all(np.abs(shares - 0.1) < 0.01)


@pytest.mark.parametrize("champion", ["sql", "onnx"])
@pytest.mark.parametrize("challenger", ["sql", "onnx"])
def test_shadow_scores_every_row_and_never_changes_what_the_application_sees(
    db, versions, champion, challenger
):
    _register(db, versions)
    db.deploy("m", table="plain", version=1, runtime=champion)  # the same champion, alone
    db.deploy("m", table="requests", version=1, runtime=champion)
    db.add_challenger("requests", 2, mode="shadow", runtime=challenger)
    frame = loan_frame(600, seed=3)
    _insert(db, frame)
    _insert(db, frame, "plain")
    rows = _predictions(db)
    served, shadow = rows[rows.served], rows[~rows.served]
    assert (served.role == "champion").all() and (served.model_version == 1).all()
    assert (shadow.role == "challenger").all() and (shadow.model_version == 2).all()
    assert (shadow.runtime == challenger).all() and len(shadow) == len(served) == 600
    # what the application reads: identical to the deployment without a challenger
    alone = _predictions(db, "plain")
    pd.testing.assert_frame_equal(
        served[["id", "prediction", *PROBABILITIES]].reset_index(drop=True),
        alone[["id", "prediction", *PROBABILITIES]].reset_index(drop=True),
    )
    scored = db.sql(
        f"SELECT id, model_version, prediction, {PROBABILITIES[1]} FROM requests_scored ORDER BY id"
    )
    assert len(scored) == 600 and (scored.model_version == 1).all()
    # the shadow rows are the challenger model's own predictions
    requests = _requests(db)
    assert shadow.id.tolist() == requests.id.tolist()
    assert_matches_sklearn(
        versions[1], requests[NUMERIC], shadow.prediction, shadow[PROBABILITIES].to_numpy()
    )
    assert (shadow.prediction.to_numpy() != served.prediction.to_numpy()).any()  # they differ
    listed = db.challengers("requests")
    assert listed[["version", "mode", "runtime"]].values.tolist() == [[2, "shadow", challenger]]


@pytest.mark.parametrize("runtime", ["sql", "onnx"])
def test_split_serves_a_deterministic_share_by_hash_of_id(db, versions, runtime):
    _register(db, versions)
    db.deploy("m", table="requests", version=1, runtime=runtime)
    db.add_challenger("requests", 2, mode="split", weight=0.25, runtime=runtime)
    frame = loan_frame(4_000, seed=4)
    _insert(db, frame)
    rows = _predictions(db)
    assert rows.served.all()  # no shadow rows: every row has exactly one prediction, served
    assert rows.id.is_unique and len(rows) == 4_000
    listed = db.challengers("requests")
    low, high = int(listed.bucket_low[0]), int(listed.bucket_high[0])
    assert (low, high) == (0, 2_500)
    expected_arm = np.array([low <= bucket(i) < high for i in rows.id])
    assert ((rows.role == "challenger").to_numpy() == expected_arm).all()
    assert ((rows.model_version == 2).to_numpy() == expected_arm).all()
    # within a binomial bound (4 standard deviations) of the weight
    share = expected_arm.mean()
    assert abs(share - 0.25) < 4 * math.sqrt(0.25 * 0.75 / 4_000)
    # each arm's rows are its model's predictions
    requests = _requests(db)
    for version, mask in ((2, expected_arm), (1, ~expected_arm)):
        part = rows[mask]
        assert_matches_sklearn(
            versions[version - 1],
            requests[mask][NUMERIC],
            part.prediction,
            part[PROBABILITIES].to_numpy(),
        )
    # the application sees the served arm
    scored = db.sql("SELECT id, model_version FROM requests_scored ORDER BY id")
    assert ((scored.model_version == 2).to_numpy() == expected_arm).all()


def test_split_arms_are_the_same_ids_on_every_backend(db, versions):
    """The ids 1..2000 go to the same arms as :func:`bucket` says, so DuckDB and PostgreSQL (this
    test runs on both) agree with each other."""
    _register(db, versions)
    db.deploy("m", table="requests", version=1)
    db.add_challenger("requests", 2, mode="split", weight=0.1)
    _insert(db, loan_frame(2_000, seed=8))
    served = db.sql("SELECT id FROM requests_predictions WHERE role = 'challenger' ORDER BY id")
    assert served.id.tolist() == [i for i in range(1, 2_001) if bucket(i) < 1_000]


def test_several_challengers_disjoint_ranges_one_served_row_per_id(db, versions):
    _register(db, versions, count=4)
    db.deploy("m", table="requests", version=1, runtime="sql")
    db.add_challenger("requests", 2, mode="shadow", runtime="onnx")
    db.add_challenger("requests", 3, mode="split", weight=0.2, runtime="sql")
    db.add_challenger("requests", 4, mode="split", weight=0.3, runtime="onnx")
    listed = db.challengers("requests")
    ranges = {int(r.version): (r.bucket_low, r.bucket_high) for r in listed.itertuples()}
    assert ranges[3] == (0, 2_000) and ranges[4] == (2_000, 5_000)
    assert pd.isna(ranges[2][0])
    _insert(db, loan_frame(3_000, seed=9))
    rows = _predictions(db)
    served = rows[rows.served]
    assert served.id.is_unique and len(served) == 3_000
    assert (rows[~rows.served].model_version == 2).all() and (~rows.served).sum() == 3_000
    b = np.array([bucket(i) for i in served.id])
    arm = np.where(b < 2_000, 3, np.where(b < 5_000, 4, 1))
    assert (served.model_version.to_numpy() == arm).all()
    # removing the first split challenger keeps the second one's ids where they were
    db.remove_challenger("requests", 3)
    assert db.challengers("requests").set_index("version").loc[4, "bucket_low"] == 2_000
    db.add_challenger("requests", 3, mode="split", weight=0.5)  # fills 0-2000, then 5000-...?
    after = db.challengers("requests").set_index("version")
    assert (after.loc[3, "bucket_low"], after.loc[3, "bucket_high"]) == (5_000, 10_000)


@pytest.mark.parametrize("runtime", ["sql", "onnx"])
def test_remove_challenger_stops_scoring_with_it(db, versions, runtime):
    _register(db, versions, count=3)
    db.deploy("m", table="requests", version=1, runtime=runtime)
    db.add_challenger("requests", 2, mode="shadow", runtime=runtime)
    db.add_challenger("requests", 3, mode="split", weight=0.5, runtime=runtime)
    _insert(db, loan_frame(200, seed=10))
    db.remove_challenger("requests", 2)
    db.remove_challenger("requests", 3)
    assert db.challengers("requests").empty
    _insert(db, loan_frame(200, seed=11))
    rows = _predictions(db)
    later = rows[rows.id > 200]
    assert len(later) == 200 and (later.model_version == 1).all() and later.served.all()
    earlier = rows[rows.id <= 200]
    assert set(earlier.model_version) == {1, 2, 3}


def test_bad_input_is_refused_and_changes_nothing(db, versions):
    _register(db, versions, count=3)
    db.deploy("m", table="requests", version=1)
    db.add_challenger("requests", 2, mode="split", weight=0.7)
    before = db.challengers("requests")
    history = len(db.sql("SELECT * FROM indb.deployment_history"))
    cases = [
        (dict(version=9), NotFoundError, "9"),
        (dict(version=3, weight=0.0), DeploymentError, "weight"),
        (dict(version=3, weight=1.5), DeploymentError, "weight"),
        (dict(version=3, weight="0.1"), DeploymentError, "weight"),
        (dict(version=3, mode="split", weight=0.4), DeploymentError, "at most 1"),
        (dict(version=3, mode="canary"), DeploymentError, "shadow, split"),
        (dict(version=1), DeploymentError, "champion"),
        (dict(version=2), DeploymentError, "already"),
        (dict(version=3, runtime="gpu"), DeploymentError, "runtime"),
    ]
    for kwargs, error, text in cases:
        kwargs = {"mode": "shadow", **kwargs}
        version = kwargs.pop("version")
        with pytest.raises(error, match=text):
            db.add_challenger("requests", version, **kwargs)
    with pytest.raises(NotFoundError):
        db.remove_challenger("requests", 3)
    with pytest.raises(NotFoundError):
        db.add_challenger("nowhere", 2)
    pd.testing.assert_frame_equal(db.challengers("requests"), before)
    assert len(db.sql("SELECT * FROM indb.deployment_history")) == history
    _insert(db, loan_frame(100, seed=12))
    rows = _predictions(db)
    assert rows.served.all() and set(rows.model_version) == {1, 2} and len(rows) == 100


def test_history_records_creation_and_switches_not_challengers(db, versions):
    _register(db, versions, count=3)
    db.deploy("m", table="requests", version=1)
    db.add_challenger("requests", 2)
    db.add_challenger("requests", 3, mode="split", weight=0.2)
    db.deploy("m", table="requests", version=2)  # promoting the shadow: it stops being one
    history = db.sql(
        "SELECT deployment, model, version, runtime, reason FROM indb.deployment_history ORDER BY id"
    )
    assert history[["version", "reason"]].values.tolist() == [[1, "deploy"], [2, "deploy"]]
    assert db.challengers("requests").version.tolist() == [3]
    _insert(db, loan_frame(300, seed=13))
    rows = _predictions(db)
    assert rows.served.all() and set(rows.model_version) == {2, 3}


def test_an_older_prediction_table_gets_role_and_served_on_the_next_deploy(db, versions):
    _register(db, versions)
    db.deploy("m", table="requests", version=1)
    _insert(db, loan_frame(50, seed=14))
    # tables as deployed before migration 015
    db.undeploy("requests")
    db.sql("DROP VIEW requests_scored")
    db.sql("ALTER TABLE requests_predictions DROP COLUMN served")
    db.sql("ALTER TABLE requests_predictions DROP COLUMN role")
    db.deploy("m", table="requests", version=1)
    db.add_challenger("requests", 2)
    _insert(db, loan_frame(50, seed=15))
    rows = _predictions(db)
    assert len(rows[rows.served]) == 100 and len(rows[~rows.served]) == 50
    assert len(db.sql("SELECT * FROM requests_scored")) == 100


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
@pytest.mark.parametrize("champion", ["sql", "onnx"])
@pytest.mark.parametrize("challenger", ["sql", "onnx"])
def test_row_mode_returning_shows_the_served_arm_and_shadows_go_beside(db, versions, champion, challenger):
    """Row mode (INSERT ... RETURNING): a row whose id a split challenger serves returns the
    challenger's prediction, any other the champion's, exactly as a deployment without
    challengers would; each shadow challenger's prediction goes to <table>_shadow_predictions
    and shows in <table>_predictions with served false."""
    import psycopg

    _register(db, versions, count=3)
    db.deploy("m", table="plain", version=1, runtime=champion, mode="row")
    db.deploy("m", table="requests", version=1, runtime=champion, mode="row")
    db.add_challenger("requests", 2, mode="shadow", runtime=challenger)
    db.add_challenger("requests", 3, mode="split", weight=0.3, runtime=challenger)
    frame = loan_frame(120, seed=18)[NUMERIC]
    returned = {"requests": [], "plain": []}
    query = (
        "INSERT INTO {} (income, debt, age, tenure) VALUES (%s, %s, %s, %s) "
        "RETURNING id, model_version, prediction, probability_default, probability_repaid"
    )
    with psycopg.connect(db.url, autocommit=True) as app:
        for row in frame.itertuples(index=False):
            values = [float(row.income), float(row.debt), int(row.age), float(row.tenure)]
            for table in returned:
                returned[table].append(app.execute(query.format(table), values).fetchone())
    got = pd.DataFrame(returned["requests"], columns=["id", "model_version", "prediction", *PROBABILITIES])
    alone = pd.DataFrame(returned["plain"], columns=got.columns)
    split = np.array([bucket(i) < 3_000 for i in got.id])
    assert 0 < split.sum() < len(split)
    assert (got.model_version.to_numpy() == np.where(split, 3, 1)).all()
    pd.testing.assert_frame_equal(got[~split].drop(columns="id"), alone[~split].drop(columns="id"))
    assert_matches_sklearn(
        versions[2], frame[split], got.prediction[split], got[PROBABILITIES][split].to_numpy()
    )
    rows = _predictions(db)
    served, shadow = rows[rows.served], rows[~rows.served]
    assert served.id.is_unique and len(served) == 120
    assert (served.role.to_numpy() == np.where(split, "challenger", "champion")).all()
    assert len(shadow) == 120 and (shadow.model_version == 2).all() and (shadow.runtime == challenger).all()
    assert_matches_sklearn(versions[1], frame, shadow.prediction, shadow[PROBABILITIES].to_numpy())
    scored = db.sql("SELECT id, model_version FROM requests_scored ORDER BY id")
    assert len(scored) == 120 and (scored.model_version.to_numpy() == np.where(split, 3, 1)).all()
    db.remove_challenger("requests", 2)
    db.remove_challenger("requests", 3)
    with psycopg.connect(db.url, autocommit=True) as app:
        (version,) = app.execute(
            "INSERT INTO requests (income, debt, age, tenure) VALUES (1, 1, 1, 1) RETURNING model_version"
        ).fetchone()
    assert version == 1 and len(_predictions(db)) == 241


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
@pytest.mark.parametrize("runtime", ["sql", "onnx"])
@pytest.mark.parametrize("mode", ["bulk", "row"])
def test_adding_and_removing_challengers_under_concurrent_writers(db, versions, runtime, mode):
    """Every row written while challengers come and go gets exactly one served prediction, and
    at most one shadow one; no writer fails."""
    import psycopg

    _register(db, versions, count=3)
    db.deploy("m", table="requests", version=1, runtime=runtime, mode=mode)
    frame = loan_frame(20, seed=16)[NUMERIC]
    values = ", ".join(
        "(" + ", ".join(repr(float(v)) if c != "age" else str(int(v)) for c, v in row.items()) + ")"
        for _, row in frame.iterrows()
    )
    insert = f"INSERT INTO requests ({COLUMNS}) VALUES {values}"
    stop, failures = threading.Event(), []

    def write():
        try:
            with psycopg.connect(db.url, autocommit=True) as con:
                while not stop.is_set():
                    con.execute(insert)
        except Exception as e:  # noqa: BLE001 (reported below)
            failures.append(repr(e))

    writers = [threading.Thread(target=write) for _ in range(4)]
    for w in writers:
        w.start()
    switches = 0
    deadline = time.monotonic() + 4
    try:
        while time.monotonic() < deadline:
            db.add_challenger("requests", 2, mode="shadow", runtime=runtime)
            db.add_challenger("requests", 3, mode="split", weight=0.5, runtime=runtime)
            db.remove_challenger("requests", 2)
            db.remove_challenger("requests", 3)
            switches += 4
    finally:
        stop.set()
        for w in writers:
            w.join()
    assert failures == []
    assert switches >= 8
    ((requests, served_ids, served, shadow, bad),) = db.backend.rows(
        "SELECT (SELECT count(*) FROM requests), "
        "(SELECT count(DISTINCT id) FROM requests_predictions WHERE served), "
        "(SELECT count(*) FROM requests_predictions WHERE served), "
        "(SELECT count(*) FROM requests_predictions WHERE NOT served), "
        "(SELECT count(*) FROM (SELECT id FROM requests_predictions WHERE NOT served "
        "GROUP BY id HAVING count(*) > 1) AS d)"
    )
    assert requests > 0 and served_ids == served == requests
    assert bad == 0 and shadow > 0
    # every statement (one transaction: xmin) of 20 rows was scored under one set of
    # challengers: all its rows have a shadow prediction or none do
    per_statement = db.sql(
        "SELECT r.xmin::text AS s, count(p.id) AS shadows FROM requests r "
        "LEFT JOIN requests_predictions p ON p.id = r.id AND NOT p.served GROUP BY 1"
    )
    if mode == "row":  # served predictions are in the rows themselves
        assert db.sql("SELECT count(*) AS n FROM requests WHERE prediction IS NULL").n[0] == 0
    assert set(per_statement.shadows) <= {0, 20}


def test_monitors_and_the_scored_view_read_served_predictions_only(db, versions):
    _register(db, versions, count=3)
    db.deploy("m", table="requests", version=1)
    db.add_challenger("requests", 2, mode="shadow")
    db.add_challenger("requests", 3, mode="split", weight=0.3)
    _insert(db, loan_frame(400, seed=17))
    db.sql("INSERT INTO requests_ground_truth (id, label) SELECT id, 'repaid' FROM requests")
    db.create_monitor("mon", "requests", reference=("2000-01-01", "2100-01-01"), features=["income"])
    db.run_monitor("mon")
    results = db.monitor_results("mon")
    assert set(results.model_version.dropna().astype(int)) == {1, 3}  # never the shadow's 2
    scored = db.sql("SELECT id, model_version FROM requests_scored ORDER BY id")
    assert scored.id.is_unique and len(scored) == 400 and set(scored.model_version) == {1, 3}


# -- trust (issue 10's model) on PostgreSQL ------------------------------------------------------
@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_only_roles_that_may_deploy_add_challengers_and_apps_insert_as_before(db, versions):
    import psycopg

    import indb
    from tests.test_trust_postgres import login_role

    _register(db, versions, count=3)
    db.deploy("m", table="requests", version=1, runtime="sql")
    db.add_challenger("requests", 2, runtime="onnx")
    with login_role(db, "indb_developer") as (_, dev_url), indb.connect(dev_url) as dev:
        with pytest.raises(Exception, match="permission denied"):
            dev.add_challenger("requests", 3, mode="split", weight=0.5)
        with pytest.raises(Exception, match="permission denied"):
            dev.remove_challenger("requests", 2)
    assert db.challengers("requests").version.tolist() == [2]
    with login_role(db, "indb_app") as (_, app_url), psycopg.connect(app_url, autocommit=True) as app:
        app.execute(f"INSERT INTO requests ({COLUMNS}) VALUES (50000, 1000, 40, 3)")
        for table in ("indb.challengers", "indb.deployment_history"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute(f"DELETE FROM {table}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("SELECT indb.score_challenger_rows()")
    rows = _predictions(db)
    assert rows[["role", "served", "model_version"]].values.tolist() == [
        ["challenger", False, 2],
        ["champion", True, 1],
    ]


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
@pytest.mark.parametrize("runtime", ["sql", "onnx"])
def test_a_challenger_whose_bytes_were_swapped_fails_the_insert(db, versions, runtime):
    """The challenger's content hash is the one its indb.challengers row recorded: swapping its
    bytes and sha256 together is caught, and the insert (champion included) rolls back."""
    import psycopg

    _register(db, versions, count=3)
    db.deploy("m", table="requests", version=1, runtime=runtime)
    db.add_challenger("requests", 2, runtime="onnx")
    db.sql(
        "UPDATE indb.model_versions AS v SET onnx = o.onnx, sha256 = o.sha256 "
        "FROM indb.model_versions AS o WHERE v.model = 'm' AND v.version = 2 AND o.version = 3"
    )
    with psycopg.connect(db.url, autocommit=True) as client:  # a new backend: nothing cached
        with pytest.raises(psycopg.Error, match="IntegrityError: model 'm' version 2"):
            client.execute(f"INSERT INTO requests ({COLUMNS}) VALUES (50000, 1000, 40, 3)")
    assert db.sql("SELECT count(*) AS n FROM requests").n[0] == 0


def test_the_cli_lists_adds_and_removes_challengers(tmp_path, versions):
    import subprocess
    import sys

    import indb

    url = f"duckdb://{tmp_path}/cli.duckdb"
    with indb.connect(url) as db:
        _register(db, versions, count=3)
        db.deploy("m", table="requests", version=1)

    def cli(*args):
        done = subprocess.run(
            [sys.executable, "-m", "indb.cli", "challengers", "requests", *args, "--db", url],
            capture_output=True,
            text=True,
            timeout=300,
        )
        return done

    shown = cli("--add", "3", "--mode", "split", "--weight", "0.2", "--dry-run")
    assert shown.returncode == 0, shown.stderr
    assert "CREATE OR REPLACE TRIGGER" in shown.stdout and "'challenger'" in shown.stdout
    assert cli("--add", "2").returncode == 0
    added = cli("--add", "3", "--mode", "split", "--weight", "0.2")
    assert added.returncode == 0, added.stderr
    assert "split" in added.stdout and "shadow" in added.stdout
    refused = cli("--add", "1")
    assert refused.returncode != 0 and "champion" in refused.stderr
    assert cli("--remove", "2").returncode == 0
    with indb.connect(url) as db:
        assert db.challengers("requests").version.tolist() == [3]


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
@pytest.mark.parametrize("runtime", ["sql", "onnx"])
def test_a_deployment_from_before_challengers_keeps_scoring_until_it_is_deployed_again(db, versions, runtime):
    """After the upgrade, an existing deployment's prediction table has no role or served until
    its next deploy: its inserts are scored as before (the PL/Python runtime is shared by all
    deployments, so it must not name the new columns for the champion's rows)."""
    _register(db, versions)
    db.deploy("m", table="requests", version=1, runtime=runtime)
    db.sql("DROP VIEW requests_scored")
    db.sql("ALTER TABLE requests_predictions DROP COLUMN served, DROP COLUMN role")
    if runtime == "sql":  # a compiled function from before names no role or served either
        db.deploy("m", table="plain", version=1, runtime=runtime)
    else:
        _insert(db, loan_frame(30, seed=19))
        assert db.sql("SELECT count(*) AS n FROM requests_predictions").n[0] == 30
    db.add_challenger("requests", 2)
    _insert(db, loan_frame(30, seed=20))
    rows = _predictions(db)
    assert rows.served.sum() == len(rows[rows.role == "champion"]) and (~rows.served).sum() == 30
