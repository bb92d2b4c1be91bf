"""Training runs and retraining (issue 13.1-13.3) on both backends: a deployment whose request
table gets labels over time, a training set over its requests joined with ground truth, and
retrain() building a new training set version, fitting the stored recipe and registering v2."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

import indb
from indb.lifecycle import metrics

START = datetime(2024, 1, 1)
CUSTOMERS = 150
SPINE = (
    "SELECT r.customer_id, r.applied_at AS event_time, g.label "
    "FROM risk_requests AS r JOIN risk_requests_ground_truth AS g ON g.id = r.id"
)
FEATURES = ["income", "debt"]


def profile() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "customer_id": np.arange(CUSTOMERS, dtype=np.int64),
            "ts": [START] * CUSTOMERS,
            "income": rng.normal(50, 10, CUSTOMERS).round(2),
            "debt": rng.gamma(2.0, 5.0, CUSTOMERS).round(2),
        }
    )


def arrive(db, batch: int, rows: int, *, labels: bool = True) -> None:
    """``rows`` applications (one a minute after the last batch's) and, with ``labels``, their
    outcomes; inserted with plain SQL, scored by the deployment's trigger."""
    rng = np.random.default_rng(100 + batch)
    people = profile().set_index("customer_id")
    ids = rng.integers(0, CUSTOMERS, rows).astype(np.int64)
    first = START + timedelta(days=1, minutes=batch * 10_000)
    frame = pd.DataFrame(
        {"customer_id": ids, "applied_at": [first + timedelta(minutes=i) for i in range(rows)]}
    )
    score = people.loc[ids, "income"].to_numpy() - 2 * people.loc[ids, "debt"].to_numpy()
    frame["outcome"] = np.where(score + rng.normal(0, 8, rows) > 25, "good", "bad")
    db.write_table("incoming", frame, replace=True)
    db.sql(
        "INSERT INTO risk_requests (customer_id, applied_at) "
        "SELECT customer_id, applied_at FROM incoming ORDER BY applied_at"
    )
    if labels:
        db.sql(
            "INSERT INTO risk_requests_ground_truth (id, label, observed_at) "
            "SELECT r.id, i.outcome, i.applied_at FROM incoming AS i "
            "JOIN risk_requests AS r ON r.customer_id = i.customer_id AND r.applied_at = i.applied_at"
        )


@pytest.fixture
def loop(db):
    """v1 trained on the first 300 labeled requests, aliased production and deployed."""
    from sklearn.linear_model import LogisticRegression

    db.create_entity("customer", keys=["customer_id"])
    db.create_feature_set("profile", "customer", source=profile(), event_time="ts")
    empty = pd.DataFrame(
        {"customer_id": pd.Series([], dtype="int64"), "applied_at": pd.Series([], dtype="datetime64[us]")}
    )
    db.write_table("risk_requests", empty, replace=True)
    people = profile()
    first = LogisticRegression().fit(people[FEATURES], np.where(people.income > 50, "good", "bad"))
    db.register_model("risk", first, sample=people[FEATURES])
    db.set_alias("risk", "production", 1)
    db.deploy("risk", table="risk_requests", version="production", features_from="profile")
    arrive(db, 0, 300)
    ts = db.training_set(
        SPINE, [f"profile:{f}" for f in FEATURES], label="label", materialize=True, name="risk_train"
    )
    rows = ts.df().sort_values("event_time")
    v1 = LogisticRegression().fit(rows[FEATURES], rows.label)
    db.register_model("risk", v1, sample=rows[FEATURES], training_set=ts)
    db.set_alias("risk", "production", 2)  # the deployment follows production
    db.loop_champion = v1
    return db


def _hand_split(db, version: int, share: float = 0.2):
    rows = db.get_training_set("risk_train", version).df()
    rows = rows[rows.label.notna()].sort_values("event_time", kind="stable").reset_index(drop=True)
    cut = len(rows) - math.ceil(len(rows) * share)
    return rows.iloc[:cut], rows.iloc[cut:]


def _sk_metrics(estimator, holdout) -> dict:
    proba = estimator.predict_proba(holdout[FEATURES])
    positive = list(estimator.classes_).index("good")
    return {
        "accuracy": skm.accuracy_score(holdout.label, estimator.predict(holdout[FEATURES])),
        "roc_auc": skm.roc_auc_score(holdout.label == "good", proba[:, positive]),
        "log_loss": skm.log_loss(holdout.label, proba, labels=estimator.classes_),
        "f1": skm.f1_score(holdout.label, estimator.predict(holdout[FEATURES]), pos_label="good"),
    }


def test_retrain_builds_a_new_training_set_and_registers_v3_with_lineage_and_metrics(loop):
    from sklearn.linear_model import LogisticRegression

    db = loop
    policy = db.create_retraining(
        "risk", training_set="risk_train", holdout="20%", metric="auc", deployment="risk_requests"
    )
    assert policy.metric == "roc_auc" and policy.job is None
    arrive(db, 1, 300)
    run = db.retrain("risk")
    assert run.status == "succeeded", run.error
    assert (run.version, run.parent_version) == (3, 2)
    assert (run.training_set, run.training_set_version) == ("risk_train", 2)

    # the new training set version has the new labels
    sets = db.sql("SELECT version, row_count FROM indb.training_sets ORDER BY version")
    assert sets.row_count.tolist() == [300, 600]
    lineage = db.sql(
        "SELECT training_set, training_set_version FROM indb.model_lineage WHERE model_version = 3"
    )
    assert lineage.values.tolist() == [["risk_train", 2]]
    v3 = db.get_model("risk", 3)
    assert v3.tags["parent_version"] == 2 and v3.tags["training_run"] == run.id
    assert v3.recipe["training_set"] == {"name": "risk_train", "version": 2}

    # candidate and champion on the same holdout, as scikit-learn computes them by hand
    fit, holdout = _hand_split(db, 2)
    candidate = LogisticRegression().fit(fit[FEATURES], fit.label)
    for got, estimator in ((run.metrics, candidate), (run.champion_metrics, db.loop_champion)):
        expected = _sk_metrics(estimator, holdout)
        assert got == pytest.approx(expected, abs=1e-5)

    stored = db.training_run(run.id)
    assert stored["status"] == "succeeded" and stored["rows"] == 600
    assert stored["holdout"]["rows"] == len(holdout) == 120 and stored["holdout"]["fit_rows"] == 480
    assert stored["holdout"]["start"] == str(holdout.event_time.iloc[0])
    assert stored["metrics"] == pytest.approx(run.metrics)
    assert stored["triggered_by"] == f"user:{db.backend.user}"
    assert stored["fit_seconds"] >= 0 and stored["finished_at"] >= stored["started_at"]
    assert stored["notes"]["promotion"] == "manual"
    # the deployment stays on the champion (promotion is manual)
    assert db.deployment("risk_requests").version == 2


def test_a_holdout_in_days_keeps_the_latest_span(loop):
    from sklearn.linear_model import LogisticRegression

    db = loop
    db.create_retraining("risk", training_set="risk_train", holdout="3 days", metric="log_loss")
    arrive(db, 1, 200)  # about 7 days after the first batch
    run = db.retrain("risk")
    assert run.status == "succeeded", run.error
    holdout = db.training_run(run.id)["holdout"]
    assert (holdout["definition"], holdout["rows"], holdout["fit_rows"]) == ("3 days", 200, 300)
    assert holdout["start"] == str(START + timedelta(days=1, minutes=10_000))
    rows = db.get_training_set("risk_train", 2).df().sort_values("event_time")
    fit, held = rows.iloc[:300], rows.iloc[300:]
    expected = _sk_metrics(LogisticRegression().fit(fit[FEATURES], fit.label), held)
    assert run.metrics == pytest.approx(expected, abs=1e-5)
    # a span longer than the data leaves nothing to fit on: a failed run that says so
    db.drop_retraining("risk")
    db.create_retraining("risk", training_set="risk_train", holdout="30 days", metric="auc")
    run = db.retrain("risk")
    assert run.status == "failed" and "leaves 0 rows to fit" in run.error


def test_leaderboard_ranks_every_version_on_the_same_holdout(loop):
    db = loop
    db.create_retraining("risk", training_set="risk_train", holdout="20%", metric="accuracy")
    arrive(db, 1, 300)
    run = db.retrain("risk")
    board = db.leaderboard("risk")
    assert set(board.metric) == set(metrics.CLASSIFICATION)
    assert sorted(set(board.version)) == [1, 2, 3] and set(board.run_id) == {run.id}
    for metric, rows in board.groupby("metric"):
        values = rows.sort_values("rank")
        ascending = metric in metrics.LOWER_IS_BETTER
        ordered = values.value.tolist()
        assert ordered == sorted(ordered, reverse=not ascending), metric
        assert values["rank"].iloc[0] == 1
    auc = db.leaderboard("risk", metric="auc")
    assert set(auc.metric) == {"roc_auc"} and len(auc) == 3
    by_version = auc.set_index("version")
    assert by_version.loc[2, "stage"] == "production" and bool(by_version.loc[2, "deployed"])
    assert not bool(by_version.loc[3, "deployed"]) and by_version.loc[3, "role"] == "candidate"
    assert by_version.loc[3, "value"] == pytest.approx(run.metrics["roc_auc"])
    # the view itself, in SQL
    sql = db.sql("SELECT count(*) AS n FROM indb.leaderboard WHERE model = 'risk'")
    assert sql.n[0] == 12


def test_too_few_new_labels_skip_the_run(loop):
    db = loop
    db.create_retraining("risk", training_set="risk_train", metric="f1", min_new_labels=50)
    arrive(db, 1, 20)
    arrive(db, 2, 100, labels=False)  # requests without outcomes are not labels
    run = db.retrain("risk")
    assert run.status == "skipped" and run.version is None
    assert "20 new labeled rows" in run.notes["skipped"] and "needs 50" in run.notes["skipped"]
    stored = db.training_run(run.id)
    assert stored["status"] == "skipped" and stored["version"] is None
    assert db.sql("SELECT max(version) AS v FROM indb.training_sets").v[0] == 1
    assert [v.version for v in db.model_versions("risk")] == [1, 2]
    arrive(db, 3, 40)
    run = db.retrain("risk")
    assert run.status == "succeeded" and run.training_set_version == 2
    # the next run counts from the training set that run used
    arrive(db, 4, 30)
    assert db.retrain("risk").status == "skipped"


def test_a_failing_fit_is_recorded_and_leaves_the_deployment_untouched(loop):
    from sklearn.linear_model import LogisticRegression

    db = loop
    db.create_retraining("risk", training_set="risk_train", metric="auc", deployment="risk_requests")
    arrive(db, 1, 100)
    bad = LogisticRegression(C=-1.0)  # scikit-learn refuses it when fitting
    run = db.retrain("risk", recipe=bad)
    assert run.status == "failed" and run.version is None
    assert "fitting LogisticRegression on" in run.error and "C" in run.error
    stored = db.training_run(run.id)
    assert stored["status"] == "failed" and stored["error"] == run.error
    assert stored["training_set_version"] == 2 and stored["finished_at"] is not None
    assert [v.version for v in db.model_versions("risk")] == [1, 2]
    assert db.deployment("risk_requests").version == 2
    assert db.sql("SELECT count(*) AS n FROM indb.training_run_metrics").n[0] == 0
    # scoring goes on with the champion
    ((last,),) = db.backend.rows("SELECT max(id) FROM risk_requests")
    arrive(db, 2, 5, labels=False)
    scored = db.sql("SELECT model_version FROM risk_requests_predictions WHERE id > $last", {"last": last})
    assert scored.model_version.tolist() == [2] * 5

    # more rows than the cap: failed before the rows are read
    run = db.retrain("risk", max_rows=100)
    assert run.status == "failed" and "has 400 rows, over the cap of 100" in run.error
    assert db.training_run(run.id)["rows"] == 400
    with pytest.raises(indb.IndbError, match="max_rows must be"):
        db.retrain("risk", max_rows=0)

    # one class only in the rows before the holdout: the fit fails the same way
    db.drop_retraining("risk")
    db.training_set(
        SPINE.replace("g.id = r.id", "g.id = r.id WHERE g.label = 'good'"),
        ["profile:income", "profile:debt"],
        label="label",
        materialize=True,
        name="only_good",
    )
    db.create_retraining("risk", training_set="only_good", metric="auc")
    run = db.retrain("risk")
    assert run.status == "failed" and "class" in run.error
    assert db.deployment("risk_requests").version == 2


def test_same_training_set_recipe_and_seed_give_the_same_onnx(loop):
    from sklearn.ensemble import RandomForestClassifier

    db = loop
    db.create_retraining("risk", training_set="risk_train", metric="auc")
    forest = RandomForestClassifier(n_estimators=8, max_depth=4)
    first = db.retrain("risk", recipe=forest, seed=11)
    second = db.retrain("risk", recipe=forest, seed=11)
    other = db.retrain("risk", recipe=forest, seed=12)
    assert {first.status, second.status, other.status} == {"succeeded"}
    one, two, three = (db.training_run(r.id) for r in (first, second, other))
    assert one["content_hash"] == two["content_hash"]  # the same rows, in a new set version
    assert one["training_set_version"] != two["training_set_version"]
    sha = [db.get_model("risk", r.version).sha256 for r in (first, second, other)]
    assert sha[0] == sha[1] != sha[2]
    assert one["recipe"]["seed"] == 11
    assert one["recipe"]["estimator"]["params"]["random_state"] == 11


def test_training_order_does_not_depend_on_the_order_rows_arrive_in():
    """Rows tied on event time are ordered by their values, so a refit of an order-sensitive
    recipe gives the same model whatever order the database returned the training set in."""
    from decimal import Decimal

    from sklearn.linear_model import SGDClassifier

    from indb.lifecycle import training

    rng = np.random.default_rng(3)
    n = 400
    frame = pd.DataFrame(
        {
            "event_time": [START + timedelta(days=int(d)) for d in rng.integers(0, 4, n)],
            "income": rng.normal(50, 10, n).round(1),
            "segment": rng.choice(["a", "b", None], n),
            "score": [Decimal(int(v)) for v in rng.integers(0, 30, n)],
            "label": rng.integers(0, 2, n).astype(float),
        }
    )
    frame.loc[::7, "label"] = np.nan  # unlabeled rows are dropped, wherever they come
    first = training.ordered(frame, "event_time", "label")
    assert first.event_time.is_monotonic_increasing and first.label.notna().all()
    assert len(first) == frame.label.notna().sum()
    coefs = set()
    for seed in range(4):
        shuffled = frame.sample(frac=1, random_state=seed)
        again = training.ordered(shuffled, "event_time", "label")
        pd.testing.assert_frame_equal(again, first)
        sgd = SGDClassifier(random_state=0, shuffle=False, max_iter=5, tol=None)
        coefs.add(tuple(sgd.fit(again[["income"]], again.label).coef_.ravel()))
    assert len(coefs) == 1
    # the same fit on the rows as they arrived is order-sensitive: the test would catch a regression
    sgd = SGDClassifier(random_state=0, shuffle=False, max_iter=5, tol=None)
    labeled = frame[frame.label.notna()].sample(frac=1, random_state=9)
    assert tuple(sgd.fit(labeled[["income"]], labeled.label).coef_.ravel()) not in coefs


def test_promote_approval_and_auto(loop):
    db = loop
    db.create_retraining("risk", training_set="risk_train", metric="auc", promote="approval")
    run = db.retrain("risk")
    assert run.notes["promotion"] == "requested"
    assert db.training_run(run.id)["notes"]["promotion"] == "requested"
    db.drop_retraining("risk")
    db.create_retraining(
        "risk", training_set="risk_train", metric="auc", promote="auto", deployment="risk_requests"
    )
    run = db.retrain("risk")
    assert run.status == "succeeded" and run.notes["promotion"] == "auto"
    # a version that beats the champion on the holdout shadows it, else a note saying why (a
    # deployment that looks its features up, as this one does, is not one it shadows yet); one
    # that does not beat it is not shadowed at all
    if run.notes["beats_champion"]:
        assert run.notes.get("challenger") or run.notes["challenger_error"]
    else:
        assert run.notes["challenger"] is None and "challenger_error" not in run.notes
    assert db.deployment("risk_requests").version == 2


def test_retrain_job_on_a_schedule(loop):
    """On PostgreSQL the job runs inside the server (CALL indb.run_job, PL/Python), no client."""
    db = loop
    try:
        policy = db.create_retraining("risk", training_set="risk_train", metric="auc", schedule="@daily")
    except indb.IndbError as e:
        if db.backend.supports_procedures and "retrain" in str(e):
            pytest.skip(f"this PostgreSQL runs no Python job actions yet (server helper): {e}")
        raise
    assert policy.job == "retrain_risk" and db.job("retrain_risk").arguments["model"] == "risk"
    arrive(db, 1, 50)
    job_run = db.run_job("retrain_risk")
    assert job_run.status == "succeeded", job_run.error
    result = job_run.result
    assert result["status"] == "succeeded" and result["version"] == 3 and result["skipped"] is None
    stored = db.training_run(result["training_run"])
    assert stored["job_run_id"] == job_run.id and stored["triggered_by"] == "job:retrain_risk"
    assert result["metrics"] == pytest.approx(stored["metrics"])
    # a failed fit: the job run fails with the fit's error, the training run is recorded failed
    db.drop_retraining("risk")
    db.training_set(
        SPINE.replace("g.id = r.id", "g.id = r.id WHERE g.label = 'good'"),
        ["profile:income", "profile:debt"],
        label="label",
        materialize=True,
        name="only_good",
    )
    db.create_retraining("risk", training_set="only_good", metric="auc", schedule="@daily")
    job_run = db.run_job("retrain_risk")
    assert job_run.status == "failed" and job_run.result["status"] == "failed"
    stored = db.training_run(job_run.result["training_run"])
    assert stored["status"] == "failed" and stored["error"] == job_run.result["error"] == job_run.error
    assert db.jobs().set_index("name").loc["retrain_risk"].last_status == "failed"
    assert "class" in stored["error"] and db.deployment("risk_requests").version == 2
    db.drop_retraining("risk")
    assert db.jobs().empty
    db.create_monitor(
        "risk", "risk_requests", reference="SELECT customer_id FROM risk_requests", features=["customer_id"]
    )
    policy = db.create_retraining(
        "risk", training_set="risk_train", metric="auc", on_alert={"monitor": "risk", "metric": "psi"}
    )
    assert db.job(policy.job).on_alert == {"monitor": "risk", "metric": "psi"}
    if not db.backend.supports_procedures:  # the scheduler runs it after a matching alert
        from indb.jobs.scheduler import Scheduler

        db.sql(
            "INSERT INTO indb.alerts (monitor, run_id, window_start, window_end, feature, metric, value) "
            "VALUES ('risk', 0, $t, $t, 'customer_id', 'psi', 0.9)",
            {"t": START},
        )
        ((alert,),) = db.backend.rows("SELECT max(id) FROM indb.alerts")
        (job_run,) = Scheduler(db.backend).tick()
        assert job_run.reason == "alert" and job_run.result["status"] == "succeeded"
        assert db.training_run(job_run.result["training_run"])["triggered_by"] == f"alert:{alert}"
    with pytest.raises(indb.IndbError, match="monitor 'nope' does not exist"):
        db.create_retraining("risk", training_set="risk_train", metric="auc", on_alert={"monitor": "nope"})


def test_cli_retrain_and_leaderboard(loop, capsys):
    from indb import cli

    db = loop
    db.create_retraining("risk", training_set="risk_train", metric="auc")
    arrive(db, 1, 50)
    assert cli.main(["retrain", "--db", db.url, "risk", "--json"]) == 0
    run = json.loads(capsys.readouterr().out)
    assert run["status"] == "succeeded" and run["version"] == 3
    assert cli.main(["models", "leaderboard", "--db", db.url, "risk", "--metric", "auc", "--json"]) == 0
    board = json.loads(capsys.readouterr().out)
    assert [r["version"] for r in board] == sorted(
        [r["version"] for r in board], key=lambda v: next(r["rank"] for r in board if r["version"] == v)
    )
    assert {r["metric"] for r in board} == {"roc_auc"} and len(board) == 3
    assert cli.main(["models", "leaderboard", "--db", db.url, "risk", "--metric", "aucc"]) == 1
    assert "did you mean 'roc_auc'" in capsys.readouterr().err


def _counts(db) -> tuple:
    return tuple(
        int(db.sql(f"SELECT count(*) AS n FROM indb.{t}").n[0])
        for t in ("retraining_policies", "training_runs", "jobs", "training_sets", "model_versions")
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metric": "aucc"}, "did you mean 'roc_auc'"),
        ({"metric": "rmse"}, "unknown classification metric 'rmse'"),
        ({"metric": "auc", "holdout": "120%"}, "holdout must be"),
        ({"metric": "auc", "holdout": "last week"}, "holdout must be"),
        ({"metric": "auc", "promote": "sometimes"}, "promote must be one of"),
        ({"metric": "auc", "promote": "auto"}, "give deployment="),
        ({"metric": "auc", "training_set": "risk_trian"}, "did you mean 'risk_train'"),
        ({"metric": "auc", "min_new_labels": -1}, "min_new_labels must be"),
        ({"metric": "auc", "deployment": "nope"}, "nope"),
        ({"metric": "auc", "schedule": "every tuesday"}, "every tuesday"),
    ],
)
def test_bad_policies_are_refused_and_nothing_is_stored(loop, kwargs, message):
    db = loop
    before = _counts(db)
    with pytest.raises(indb.IndbError, match=message.replace("(", r"\(").replace(")", r"\)")):
        db.create_retraining("risk", **{"training_set": "risk_train", **kwargs})
    assert _counts(db) == before


def test_bad_retrain_calls(loop):
    db = loop
    with pytest.raises(indb.IndbError, match="retraining policy of model 'risk' does not exist"):
        db.retrain("risk")
    with pytest.raises(indb.IndbError, match="model 'rsik' does not exist; did you mean 'risk'"):
        db.create_retraining("rsik", training_set="risk_train", metric="auc")
    db.create_retraining("risk", training_set="risk_train", metric="auc")
    with pytest.raises(indb.IndbError, match="has a retraining policy already"):
        db.create_retraining("risk", training_set="risk_train", metric="auc")
    before = _counts(db)
    with pytest.raises(indb.IndbError, match="seed must be a whole number"):
        db.retrain("risk", seed="7")
    with pytest.raises(indb.IndbError, match="recipe must be"):
        db.retrain("risk", recipe="LogisticRegression")
    with pytest.raises(indb.IndbError, match="not an allowed estimator"):
        db.retrain("risk", recipe={"estimator": {"estimator": "os.system", "params": {}}})
    assert _counts(db) == before
    with pytest.raises(indb.IndbError, match="did you mean 'roc_auc'"):
        db.leaderboard("risk", metric="aucc")
    with pytest.raises(indb.IndbError, match="model 'nope' does not exist"):
        db.leaderboard("nope")
    assert db.leaderboard("risk").empty  # no run yet


# -- metrics: hand-checkable cases --------------------------------------------------------------
def test_classification_metrics_by_hand():
    y = ["a", "b", "b", "a"]
    pred = ["a", "b", "a", "a"]
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])
    got = metrics.compute("classification", y, pred, proba, ("a", "b"))
    assert got["accuracy"] == 0.75
    # positive class b: precision 1/1, recall 1/2
    assert got["f1"] == pytest.approx(2 / 3)
    # b-scores 0.8 and 0.4 against a-scores 0.1 and 0.3: every pair ordered right
    assert got["roc_auc"] == 1.0
    assert got["log_loss"] == pytest.approx(
        -(math.log(0.9) + math.log(0.8) + math.log(0.4) + math.log(0.7)) / 4
    )
    one_class = metrics.compute("classification", ["a", "a"], ["a", "b"], proba[:2], ("a", "b"))
    assert one_class["roc_auc"] is None and one_class["accuracy"] == 0.5


def test_regression_metrics_by_hand():
    got = metrics.compute("regression", [1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 3.0, 2.0])
    assert got["mae"] == pytest.approx((1 + 0 + 0 + 2) / 4)
    assert got["rmse"] == pytest.approx(math.sqrt((1 + 0 + 0 + 4) / 4))
    assert got["r2"] == pytest.approx(1 - 5 / 5)  # residuals 5, total variance 5
    assert metrics.compute("regression", [1.0], [2.0])["r2"] is None


def test_metric_names():
    assert metrics.metric_name("AUC") == "roc_auc"
    assert metrics.metric_name("rmse", "regression") == "rmse"
    with pytest.raises(metrics.MetricError, match="did you mean 'log_loss'"):
        metrics.metric_name("log_los", "classification")
    assert metrics.better("log_loss", 0.2, 0.3, 0.05) and not metrics.better("log_loss", 0.2, 0.3, 0.2)
    assert metrics.better("roc_auc", 0.9, 0.8) and not metrics.better("roc_auc", None, 0.8)


def test_multiclass_metrics_by_hand():
    y = ["a", "b", "c", "c"]
    pred = ["a", "b", "b", "c"]
    proba = np.array([[0.8, 0.1, 0.1], [0.1, 0.7, 0.2], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]])
    got = metrics.compute("classification", y, pred, proba, ("a", "b", "c"))
    assert got["accuracy"] == 0.75
    # per class F1: a 1, b 2/3 (precision 1/2, recall 1), c 2/3 (precision 1, recall 1/2)
    assert got["f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    assert got["log_loss"] == pytest.approx(
        -(math.log(0.8) + math.log(0.7) + math.log(0.3) + math.log(0.8)) / 4
    )
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"))
    # a class without a holdout row: AUC undefined, the rest still computed
    missing = metrics.compute("classification", ["a", "b"], ["a", "b"], proba[:2], ("a", "b", "c"))
    assert missing["roc_auc"] is None and missing["accuracy"] == 1.0


def test_call_indb_retrain_fits_inside_the_server(loop):
    """PostgreSQL: CALL indb.retrain('risk') from plain SQL, as a developer, no client code."""
    db = loop
    if not db.backend.supports_procedures:
        pytest.skip("CALL indb.retrain is PostgreSQL's (DuckDB: db.retrain or the retrain job)")
    import uuid

    import psycopg

    db.create_retraining("risk", training_set="risk_train", metric="auc")
    arrive(db, 1, 50)
    role = f"dev_{uuid.uuid4().hex[:8]}"
    db.sql(f'CREATE ROLE "{role}" LOGIN IN ROLE indb_developer')
    # the caller's own rights apply: the feature data and a schema for the new training set
    # table are the DBA's to grant, as for any other user of those tables
    db.sql(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"')
    db.sql(f'GRANT CREATE ON SCHEMA public TO "{role}"')
    parts = urlsplit(db.url)
    as_developer = parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}").geturl()
    with psycopg.connect(as_developer, autocommit=True) as developer:
        ((run_id,),) = developer.execute("CALL indb.retrain('risk')").fetchall()
        with pytest.raises(psycopg.Error, match="retraining policy of model 'no_such_model' does not exist"):
            developer.execute("CALL indb.retrain('no_such_model')")
    stored = db.training_run(run_id)
    assert stored["status"] == "succeeded" and stored["version"] == 3, stored["error"]
    assert stored["triggered_by"] == f"sql:{role}"
    assert db.get_model("risk", 3).tags["parent_version"] == 2
    with psycopg.connect(db.url, autocommit=True) as admin:
        ((public,),) = admin.execute(
            "SELECT has_function_privilege('public', 'indb.retrain(text, bigint)', 'EXECUTE')"
        ).fetchall()
    assert public is False
