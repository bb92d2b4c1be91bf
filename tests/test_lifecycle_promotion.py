"""Challenger comparison, promotion and rollback (issue 13.5; rollback: issue 14.2).

Statistics are held to scipy (binomtest, chi2_contingency) and to brute-force references
(a loop over the same seeded resamples with scikit-learn's metrics). Until the challengers
branch scores challengers, ``challenger_rows`` stands in for it: it gives
``<table>_predictions`` the contract's ``role``/``served`` columns and writes the rows a
shadow or split challenger would have written, computed with scikit-learn.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pandas as pd
import psycopg
import pytest
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import indb
from indb import cli
from indb.errors import DeploymentError, IndbError, NotFoundError
from indb.lifecycle import significance
from indb.lifecycle.significance import Rows
from tests.conftest import NUMERIC, loan_frame

CLASSES = ("default", "repaid")


# -- statistics against scipy and brute force ------------------------------------------------
@pytest.mark.parametrize(
    ("won", "lost", "others"), [(0, 0, 10), (3, 12, 100), (40, 25, 500), (7, 7, 30), (0, 9, 4)]
)
def test_mcnemar_is_scipys_exact_binomial_test_on_the_discordant_pairs(won, lost, others):
    champion = np.array([False] * won + [True] * lost + [True] * others)
    challenger = np.array([True] * won + [False] * lost + [True] * others)
    found = significance.mcnemar_exact(champion, challenger, 0.95)
    assert found.value == pytest.approx((won - lost) / len(champion))
    if won + lost == 0:
        assert (found.p_value, found.low, found.high) == (1.0, 0.0, 0.0)
        return
    reference = stats.binomtest(won, won + lost, 0.5)
    assert found.p_value == pytest.approx(reference.pvalue, rel=1e-9, abs=1e-15)
    ci = reference.proportion_ci(0.95, method="exact")
    share = (won + lost) / len(champion)
    assert found.low == pytest.approx(share * (2 * ci.low - 1), abs=1e-9)
    assert found.high == pytest.approx(share * (2 * ci.high - 1), abs=1e-9)


@pytest.mark.parametrize(
    ("k", "n", "confidence"), [(0, 7, 0.95), (7, 7, 0.9), (13, 40, 0.99), (2, 20_000, 0.95)]
)
def test_clopper_pearson_is_scipys_exact_interval(k, n, confidence):
    ci = stats.binomtest(k, n).proportion_ci(confidence, method="exact")
    assert significance.clopper_pearson(k, n, confidence) == pytest.approx((ci.low, ci.high), abs=1e-10)


def test_two_proportions_is_the_chi_square_test_without_correction_and_a_wald_interval():
    rng = np.random.default_rng(4)
    a, b = rng.random(400) < 0.70, rng.random(250) < 0.78
    found = significance.two_proportions(a, b, 0.9)
    table = [[a.sum(), (~a).sum()], [b.sum(), (~b).sum()]]
    assert found.p_value == pytest.approx(stats.chi2_contingency(table, correction=False).pvalue, rel=1e-9)
    diff = b.mean() - a.mean()
    se = np.sqrt(a.mean() * (1 - a.mean()) / a.size + b.mean() * (1 - b.mean()) / b.size)
    z = stats.norm.ppf(0.95)
    assert (found.value, found.low, found.high) == pytest.approx(
        (diff, diff - z * se, diff + z * se), rel=1e-9
    )


def _classification(n, seed, *, ties=False):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.4
    p1 = np.clip(0.4 + 0.25 * (y - 0.4) + rng.normal(0, 0.2, n), 0.01, 0.99)
    p2 = np.clip(0.4 + 0.35 * (y - 0.4) + rng.normal(0, 0.2, n), 0.01, 0.99)
    if ties:
        p1, p2 = np.clip(np.round(p1, 1), 0.1, 0.9), np.clip(np.round(p2, 1), 0.1, 0.9)
    return y, p1, p2


def _rows(y, p):
    true_p = np.where(y, p, 1 - p)
    return Rows(correct=(p >= 0.5) == y, loss=-np.log(true_p), score=p, positive=y, predicted=p >= 0.5)


def _sk(metric, y, p, e=None):
    if metric == "roc_auc":
        return roc_auc_score(y, p)
    if metric == "log_loss":
        return log_loss(y, np.column_stack([1 - p, p]))
    if metric == "accuracy":
        return np.mean((p >= 0.5) == y)
    if metric == "f1":
        return f1_score(y, p >= 0.5)
    if metric == "r2":
        return r2_score(y, p)
    if metric == "mae":
        return mean_absolute_error(y, p)
    return np.sqrt(mean_squared_error(y, p))


@pytest.mark.parametrize("metric", ["roc_auc", "log_loss", "accuracy", "f1"])
@pytest.mark.parametrize("paired", [True, False])
def test_bootstrap_equals_a_loop_over_the_same_resamples_with_sklearn(metric, paired):
    y, p1, p2 = _classification(300, 1, ties=metric == "roc_auc")
    if paired:
        champion, challenger = _rows(y, p1), _rows(y, p2)
        y2 = y
    else:
        y2 = np.random.default_rng(9).random(200) < 0.4
        p2 = np.clip(0.4 + 0.35 * (y2 - 0.4) + np.random.default_rng(8).normal(0, 0.2, 200), 0.01, 0.99)
        champion, challenger = _rows(y, p1), _rows(y2, p2)
    found = significance.bootstrap(
        metric, champion, challenger, paired=paired, confidence=0.9, resamples=300, seed=5
    )
    assert found.value == pytest.approx(_sk(metric, y2, p2) - _sk(metric, y, p1), rel=1e-9)
    rng = np.random.default_rng(5)
    diffs = []
    for _ in range(300):
        i = rng.integers(0, len(y), len(y))
        j = i if paired else rng.integers(0, len(y2), len(y2))
        diffs.append(_sk(metric, y2[j], p2[j]) - _sk(metric, y[i], p1[i]))
    low, high = np.quantile(diffs, [0.05, 0.95])
    assert (found.low, found.high) == pytest.approx((low, high), rel=1e-7, abs=1e-12)
    far = min(np.mean(np.array(diffs) <= 0), np.mean(np.array(diffs) >= 0))
    assert found.p_value == pytest.approx(min(1.0, 2 * far))


@pytest.mark.parametrize("metric", ["mae", "rmse", "r2"])
def test_regression_bootstrap_matches_sklearn(metric):
    rng = np.random.default_rng(3)
    y = rng.normal(0, 1, 250)
    a, b = y + rng.normal(0, 0.6, 250), y + rng.normal(0, 0.4, 250)
    found = significance.bootstrap(
        metric,
        Rows(error=a - y, label=y),
        Rows(error=b - y, label=y),
        paired=True,
        confidence=0.95,
        resamples=200,
        seed=1,
    )
    assert found.value == pytest.approx(_sk(metric, y, b) - _sk(metric, y, a), rel=1e-9)
    rng = np.random.default_rng(1)
    diffs = []
    for _ in range(200):
        i = rng.integers(0, 250, 250)
        diffs.append(_sk(metric, y[i], b[i]) - _sk(metric, y[i], a[i]))
    assert (found.low, found.high) == pytest.approx(tuple(np.quantile(diffs, [0.025, 0.975])), rel=1e-7)
    assert significance.verdict(metric, found, 250, min_labels=100, confidence=0.95) == "better"
    assert significance.verdict(metric, found, 99, min_labels=100, confidence=0.95) == "too few labels"


def test_verdicts_follow_the_metrics_direction():
    up = significance.Difference(0.02, 0.01, 0.03, 0.01, "paired_bootstrap")
    across = significance.Difference(0.02, -0.01, 0.05, 0.3, "paired_bootstrap")
    assert significance.verdict("roc_auc", up, 500, min_labels=100, confidence=0.95) == "better"
    assert significance.verdict("log_loss", up, 500, min_labels=100, confidence=0.95) == "worse"
    assert significance.verdict("roc_auc", across, 500, min_labels=100, confidence=0.95) == "no difference"
    exact = significance.Difference(0.02, 0.001, 0.04, 0.049, "mcnemar_exact")
    assert significance.verdict("accuracy", exact, 500, min_labels=100, confidence=0.95) == "better"
    assert significance.verdict("accuracy", exact, 500, min_labels=100, confidence=0.99) == "no difference"
    assert significance.improvement("log_loss", up) == (-0.02, -0.03)


# -- a deployment with a champion and (stood-in) challenger rows ----------------------------
@pytest.fixture(scope="module")
def versions():
    """v1 learned from labels with 35% flipped (worse), v2 and v3 from the true labels."""
    train = loan_frame(1_500, seed=3)
    noisy = train.label.where(np.random.default_rng(0).random(len(train)) > 0.35, "default")

    def fit(labels, c):
        return make_pipeline(StandardScaler(), LogisticRegression(C=c)).fit(train[NUMERIC], labels)

    return train, {1: fit(noisy, 0.001), 2: fit(train.label, 1.0), 3: fit(train.label, 0.5)}


# Challenger scoring from the challengers branch (issue 13.4), once it is merged; until then
# challenger_rows stands in for it.
REAL_CHALLENGERS = hasattr(indb.Database, "add_challenger")


def deployed(
    db,
    versions,
    rows=600,
    seed=11,
    table="loans",
    labeled=None,
    challenger=None,
    name="loan_model",
    label="label",
):
    """Versions 1-3 registered, 1 deployed to ``table`` (with ``challenger``: (version, mode,
    weight)), ``rows`` requests inserted and (the first ``labeled`` of) their labels."""
    train, models = versions
    for number in sorted(models):
        db.register_model(name, models[number], sample=train[NUMERIC].head(100))
    db.deploy(name, table=table, version=1)
    if challenger and REAL_CHALLENGERS:
        version, mode, weight = challenger
        db.add_challenger(table, version, mode=mode, weight=weight)
    data = loan_frame(rows, seed=seed)
    db.write_table("incoming", data[NUMERIC])
    db.sql(f"INSERT INTO {table} ({', '.join(NUMERIC)}) SELECT {', '.join(NUMERIC)} FROM incoming")
    ids = db.sql(f"SELECT id FROM {table} ORDER BY id")["id"].to_numpy()
    data = data.assign(id=ids)
    truth = data if labeled is None else data.head(labeled)
    db.write_table("truth", truth[["id", label]].rename(columns={label: "label"}))
    db.sql(f"INSERT INTO {table}_ground_truth (id, label) SELECT id, label FROM truth")
    if challenger and not REAL_CHALLENGERS:
        version, mode, weight = challenger
        challenger_rows(db, versions, data, version, mode, table=table, share=weight, name=name)
    return data


def challenger_rows(db, versions, data, version, mode, *, table="loans", share=1.0, name="loan_model"):
    """Until the challengers branch is merged, stands in for its scoring (PLAN2.md's contract):
    role/served columns, a shadow row per request (served false) or, for split, the
    challenger's row in place of the champion's for a deterministic share of ids (served true)."""
    _, models = versions
    predictions = f"{table}_predictions"
    db.sql(f"ALTER TABLE {predictions} ADD COLUMN IF NOT EXISTS role VARCHAR DEFAULT 'champion'")
    db.sql(f"ALTER TABLE {predictions} ADD COLUMN IF NOT EXISTS served BOOLEAN DEFAULT true")
    if db.backend.keyed_ids:  # one prediction per id no longer: the challengers helper re-keys
        db.sql(f"ALTER TABLE {predictions} DROP CONSTRAINT IF EXISTS {predictions}_pkey")
    part = data[(data.id % 100) < share * 100] if mode == "split" else data
    model = models[version]
    rows = pd.DataFrame({"id": part.id.to_numpy(), "prediction": model.predict(part[NUMERIC])})
    if hasattr(model, "predict_proba"):
        proba = model.predict_proba(part[NUMERIC])
        rows = rows.assign(probability_default=proba[:, 0], probability_repaid=proba[:, 1])
    db.write_table("challenger_stage", rows, replace=True)
    outputs = [c for c in rows.columns if c != "id"]
    served = "true" if mode == "split" else "false"
    # scored in the same statement as the champion's row: the same scored_at
    db.sql(
        f"INSERT INTO {predictions} (id, model, model_version, runtime, {', '.join(outputs)}, scored_at, "
        f"role, served) SELECT s.id, '{name}', {version}, 'onnx', {', '.join('s.' + c for c in outputs)}, "
        f"p.scored_at, 'challenger', {served} "
        f"FROM challenger_stage s JOIN {predictions} p ON p.id = s.id AND p.role = 'champion'"
    )
    if mode == "split":
        db.sql(
            f"DELETE FROM {predictions} WHERE role = 'champion' AND id IN (SELECT id FROM challenger_stage)"
        )


def _row(frame, **where):
    for key, value in where.items():
        frame = frame[frame[key] == value]
    assert len(frame) == 1, where
    return frame.iloc[0]


def test_shadow_comparison_matches_scipy_and_sklearn_on_the_same_rows(db, versions):
    deployed(db, versions, challenger=(2, "shadow", 1.0))
    found = db.challenger_comparison("loans", windows=["all"], resamples=200, seed=3)
    pairs = db.sql(
        "SELECT c.id, c.prediction AS champion, c.probability_repaid AS p1, s.prediction AS challenger, "
        "s.probability_repaid AS p2, g.label FROM loans_predictions c JOIN loans_predictions s "
        "ON s.id = c.id AND s.role = 'challenger' JOIN loans_ground_truth g ON g.id = c.id "
        "WHERE c.role = 'champion' ORDER BY c.id"
    )
    assert len(pairs) == 600
    right1, right2 = pairs.champion == pairs.label, pairs.challenger == pairs.label
    won, lost = int((right2 & ~right1).sum()), int((right1 & ~right2).sum())
    accuracy = _row(found, role="challenger", metric="accuracy")
    assert accuracy["mode"] == "shadow" and accuracy["labeled_rows"] == 600
    assert accuracy["value"] == pytest.approx(right2.mean())
    assert accuracy["champion_value"] == pytest.approx(right1.mean())
    assert accuracy["p_value"] == pytest.approx(stats.binomtest(won, won + lost).pvalue, rel=1e-9)
    assert accuracy["method"] == "mcnemar_exact"
    assert accuracy["verdict"] == "better"  # v2 learned the true labels
    y = (pairs.label == "repaid").to_numpy()
    auc = _row(found, role="challenger", metric="roc_auc")
    assert auc["value"] == pytest.approx(roc_auc_score(y, pairs.p2), rel=1e-6)
    assert auc["champion_value"] == pytest.approx(roc_auc_score(y, pairs.p1), rel=1e-6)
    assert auc["ci_low"] < auc["difference"] < auc["ci_high"]
    loss = _row(found, role="challenger", metric="log_loss")
    assert loss["value"] == pytest.approx(log_loss(y, np.column_stack([1 - pairs.p2, pairs.p2])), rel=1e-5)
    champion = _row(found, role="champion", metric="accuracy")
    assert champion["labeled_rows"] == 600 and champion["version"] == 1


def test_split_arms_are_compared_unpaired(db, versions):
    deployed(db, versions, rows=800, challenger=(2, "split", 0.3))
    found = db.challenger_comparison("loans", windows=["all"], resamples=200)
    rows = db.sql(
        "SELECT p.role, p.prediction = g.label AS correct FROM loans_predictions p "
        "JOIN loans_ground_truth g ON g.id = p.id"
    )
    a = rows[rows.role == "champion"].correct.to_numpy(bool)
    b = rows[rows.role == "challenger"].correct.to_numpy(bool)
    assert a.size + b.size == 800 and 0 < b.size < 400
    accuracy = _row(found, role="challenger", metric="accuracy")
    assert accuracy["mode"] == "split" and accuracy["method"] == "two_proportion_z"
    assert accuracy["labeled_rows"] == b.size
    table = [[a.sum(), (~a).sum()], [b.sum(), (~b).sum()]]
    assert accuracy["p_value"] == pytest.approx(
        stats.chi2_contingency(table, correction=False).pvalue, rel=1e-9
    )
    assert _row(found, role="challenger", metric="roc_auc")["method"] == "bootstrap"


@pytest.fixture(scope="module")
def regressors():
    """Expected loss: v1 a linear fit of a shrunk target (biased: worse), v2 boosted trees."""
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.linear_model import LinearRegression

    train = loan_frame(1_500, seed=3)
    noisy = 0.3 * train.loss + np.random.default_rng(1).normal(0, 1, len(train))
    boosted = GradientBoostingRegressor(n_estimators=40, max_depth=3, random_state=0)
    return train, {
        1: LinearRegression().fit(train[NUMERIC], noisy),
        2: boosted.fit(train[NUMERIC], train.loss),
    }


def test_regression_arms_compare_mae_rmse_r2_like_sklearn(db, regressors):
    deployed(db, regressors, name="loss_model", label="loss", challenger=(2, "shadow", 1.0))
    found = db.challenger_comparison("loans", windows=["all"], resamples=200)
    pairs = db.sql(
        "SELECT c.prediction AS champion, s.prediction AS challenger, g.label FROM loans_predictions c "
        "JOIN loans_predictions s ON s.id = c.id AND s.role = 'challenger' "
        "JOIN loans_ground_truth g ON g.id = c.id WHERE c.role = 'champion' ORDER BY c.id"
    )
    assert len(pairs) == 600 and set(found.metric) == {"mae", "rmse", "r2"}
    for metric, score in (
        ("mae", mean_absolute_error),
        ("rmse", lambda y, p: np.sqrt(mean_squared_error(y, p))),
        ("r2", r2_score),
    ):
        row = _row(found, role="challenger", metric=metric)
        assert row["value"] == pytest.approx(score(pairs.label, pairs.challenger), rel=1e-9)
        assert row["champion_value"] == pytest.approx(score(pairs.label, pairs.champion), rel=1e-9)
        assert row["method"] == "paired_bootstrap" and row["verdict"] == "better"


def test_too_few_labels_gets_that_verdict_and_auto_does_not_promote(db, versions):
    deployed(db, versions, labeled=40, challenger=(2, "shadow", 1.0))
    evaluation = db.evaluate_challengers("loans", promote="auto", min_labels=100, resamples=200)
    rows = evaluation.comparison.frame()
    assert set(rows[rows.role == "challenger"].verdict) == {"too few labels"}
    assert evaluation.decision == "no challenger better"
    assert db.deployment("loans").version == 1


def test_auto_promotes_only_when_better_by_min_improvement(db, versions):
    deployed(db, versions, challenger=(2, "shadow", 1.0))
    strict = db.evaluate_challengers(
        "loans", promote="auto", min_labels=50, min_improvement=0.5, resamples=200
    )
    assert strict.decision == "no challenger better" and db.deployment("loans").version == 1
    stored = db.sql("SELECT count(*) AS n FROM indb.challenger_comparisons").n[0]
    dry = db.evaluate_challengers("loans", promote="auto", min_labels=50, resamples=200, dry_run=True)
    assert dry.decision == "promoted" and dry.switch.dry_run and dry.summary()["dry_run"]
    assert db.deployment("loans").version == 1
    assert db.sql("SELECT count(*) AS n FROM indb.challenger_comparisons").n[0] == stored
    evaluation = db.evaluate_challengers(
        "loans", promote="auto", min_labels=50, min_improvement=0.01, resamples=200
    )
    assert evaluation.decision == "promoted" and evaluation.version == 2
    assert db.deployment("loans").version == 2
    history = db.deployment_history("loans")
    assert list(history.version) == [1, 2]
    assert history.reason.iloc[1].startswith("promote: auto: version 2 (shadow) accuracy")
    evidence = (
        json.loads(history.evidence.iloc[1])
        if isinstance(history.evidence.iloc[1], str)
        else history.evidence.iloc[1]
    )
    assert {r["metric"] for r in evidence} >= {"accuracy", "roc_auc", "log_loss"}
    assert all(r["evaluation_id"] == evaluation.evaluation_id for r in evidence)
    assert all(r["window_start"] is None for r in evidence)  # window 'all'; not "NaT"
    audit = db.sql("SELECT action, details FROM indb.audit_log ORDER BY id")
    promoted = json.loads(audit[audit.action == "promote"].details.iloc[-1])
    assert (promoted["from_version"], promoted["to_version"]) == (1, 2)
    assert "evaluate_challengers" in set(audit.action)
    # the view shows the latest evaluation only
    view = db.sql("SELECT DISTINCT evaluation_id FROM indb.challenger_comparison WHERE deployment = 'loans'")
    assert list(view.evaluation_id) == [evaluation.evaluation_id]
    # new inserts are scored by version 2
    db.sql(f"INSERT INTO loans ({', '.join(NUMERIC)}) SELECT {', '.join(NUMERIC)} FROM incoming LIMIT 5")
    latest = db.sql(
        "SELECT model_version FROM loans_predictions WHERE role = 'champion' ORDER BY id DESC LIMIT 5"
    )
    assert set(latest.model_version) == {2}


def test_approval_records_a_request_that_promote_completes(db, versions):
    deployed(db, versions, challenger=(2, "shadow", 1.0))
    first = db.evaluate_challengers("loans", promote="approval", min_labels=50, resamples=200)
    again = db.evaluate_challengers("loans", promote="approval", min_labels=50, resamples=200)
    assert first.decision == "requested" and again.request_id == first.request_id
    assert db.deployment("loans").version == 1
    requests = db.promotion_requests()
    assert len(requests) == 1 and requests.status[0] == "open" and requests.version[0] == 2
    assert requests.reason[0].startswith("approval: version 2")
    db.promote("loans", 2, reason="approved by the risk team")
    requests = db.promotion_requests()
    assert requests.status[0] == "done" and requests.decided_by[0]
    assert db.deployment("loans").version == 2
    assert db.deployment_history("loans").reason.iloc[-1] == "promote: approved by the risk team"


def test_manual_only_reports(db, versions):
    deployed(db, versions, challenger=(2, "shadow", 1.0))
    evaluation = db.evaluate_challengers("loans", min_labels=50, resamples=200)  # no policy: manual
    assert evaluation.policy.promote == "manual" and evaluation.decision == "reported"
    assert evaluation.version == 2 and evaluation.switch is None and evaluation.request_id is None
    assert db.deployment("loans").version == 1 and db.promotion_requests().empty
    stored = db.sql("SELECT count(*) AS n FROM indb.challenger_comparisons")
    assert stored.n[0] == len(evaluation.comparison.rows) > 0


def test_promote_and_rollback_switch_atomically_with_history_and_audit(db, versions):
    deployed(db, versions)
    db.promote("loans", 2)
    db.promote("loans", 3, reason="newer")
    assert db.deployment("loans").version == 3
    back = db.rollback("loans")
    assert (back.from_version, back.to_version) == (3, 2) and db.deployment("loans").version == 2
    db.rollback("loans", to=1)
    assert db.deployment("loans").version == 1
    history = db.deployment_history("loans")
    assert list(history.version) == [1, 2, 3, 2, 1]
    assert history.reason.iloc[-1] == "rollback: back from version 2"
    audit = db.sql(
        "SELECT action, details FROM indb.audit_log WHERE action IN ('promote', 'rollback') ORDER BY id"
    )
    assert list(audit.action) == ["promote", "promote", "rollback", "rollback"]
    assert json.loads(audit.details.iloc[-1])["to_version"] == 1
    db.sql(f"INSERT INTO loans ({', '.join(NUMERIC)}) SELECT {', '.join(NUMERIC)} FROM incoming LIMIT 3")
    assert set(
        db.sql("SELECT model_version FROM loans_predictions ORDER BY id DESC LIMIT 3").model_version
    ) == {1}


def test_bad_input_is_a_clear_error_and_changes_nothing(db, versions):
    deployed(db, versions)

    def state():
        return (
            db.deployment("loans").version,
            len(db.deployment_history("loans")),
            len(db.sql("SELECT id FROM indb.audit_log")),
        )

    before = state()
    with pytest.raises(DeploymentError, match="no earlier champion"):
        db.rollback("loans")
    with pytest.raises(NotFoundError, match="loans"):
        db.promote("loanz", 2)
    with pytest.raises(NotFoundError):
        db.promote("loans", 9)
    with pytest.raises(DeploymentError, match="already the champion"):
        db.promote("loans", 1)
    with pytest.raises(DeploymentError, match="give the version"):
        db.promote("loans", None)
    with pytest.raises(IndbError, match="promote must be one of"):
        db.evaluate_challengers("loans", promote="sometimes")
    with pytest.raises(IndbError, match="window"):
        db.evaluate_challengers("loans", windows=["last tuesday"])
    with pytest.raises(IndbError, match="min_labels must be a number"):
        db.evaluate_challengers("loans", min_labels="many")
    with pytest.raises(IndbError, match="min_improvement must be a number >= 0"):
        db.evaluate_challengers("loans", min_improvement=-0.1)
    with pytest.raises(IndbError, match="confidence"):
        db.evaluate_challengers("loans", confidence=1.5)
    with pytest.raises(IndbError, match="not compared"):
        db.evaluate_challengers("loans", metric="precision")
    assert state() == before
    db.promote("loans", 2)
    with pytest.raises(DeploymentError, match="never the champion"):
        db.rollback("loans", to=3)
    assert db.deployment("loans").version == 2


def test_dry_runs_show_the_switch_and_change_nothing(db, versions):
    deployed(db, versions)
    history = len(db.deployment_history("loans"))  # the deploy's row, once deploy writes one
    plan = db.promote("loans", 2, dry_run=True)
    assert plan.dry_run and plan.statements and "deployment_history" in plan.statements[-1]
    assert db.deployment("loans").version == 1 and len(db.deployment_history("loans")) == history
    db.promote("loans", 2)
    before = (len(db.deployment_history("loans")), len(db.sql("SELECT id FROM indb.audit_log")))
    plan = db.rollback("loans", dry_run=True)
    assert (plan.from_version, plan.to_version) == (2, 1) and plan.statements
    assert db.deployment("loans").version == 2
    assert (len(db.deployment_history("loans")), len(db.sql("SELECT id FROM indb.audit_log"))) == before


def test_cli_promote_rollback_compare(db, versions, capsys):
    deployed(db, versions, challenger=(2, "shadow", 1.0))
    url = db.url
    assert cli.main(["deployments", "compare", "loans", "--db", url, "--resamples", "200"]) == 0
    assert "mcnemar_exact" in capsys.readouterr().out
    assert cli.main(["deployments", "evaluate", "loans", "--db", url, "--resamples", "200", "--dry-run"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["dry_run"] and summary["decision"] == "reported" and summary["version"] == 2
    assert cli.main(["deployments", "promote", "loans", "2", "--db", url, "--dry-run"]) == 0
    assert db.deployment("loans").version == 1
    assert cli.main(["deployments", "promote", "loans", "2", "--db", url, "--reason", "looks good"]) == 0
    assert "version 1 -> 2" in capsys.readouterr().out
    assert db.deployment("loans").version == 2
    assert cli.main(["deployments", "rollback", "loans", "--db", url, "--dry-run"]) == 0
    assert db.deployment("loans").version == 2
    assert cli.main(["deployments", "rollback", "loans", "--to", "1", "--db", url]) == 0
    assert db.deployment("loans").version == 1
    assert cli.main(["deployments", "rollback", "loans", "--to", "3", "--db", url]) == 1
    assert "never the champion" in capsys.readouterr().err
    assert cli.main(["deployments", "--db", url]) == 0  # the listing still works


def test_evaluate_challengers_job_action(db, versions):
    """On PostgreSQL the job runs inside the server (indb.run_job, PL/Python: the server branch)."""
    import importlib.util

    if db.backend.supports_procedures and importlib.util.find_spec("indb.backends.plpy") is None:
        pytest.skip("known gap: Python actions run inside PostgreSQL once the server branch is merged")
    deployed(db, versions, challenger=(2, "shadow", 1.0))
    db.schedule("compare_loans", "1 hour", "evaluate_challengers", deployment="loans", resamples=200)
    run = db.run_job("compare_loans")
    assert run.status == "succeeded", run
    result = run.result if isinstance(run.result, dict) else json.loads(run.result)
    assert result["decision"] == "reported" and result["version"] == 2
    with pytest.raises(IndbError, match="has no argument"):
        db.schedule("bad", "1 hour", "evaluate_challengers", deployment="loans", table="x")


# -- promote / rollback while applications insert (PostgreSQL) -------------------------------
@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_promote_and_rollback_under_concurrent_inserts(db):
    """Writers insert for 4 s while promote and rollback alternate every 0.4 s: no failure,
    every row served exactly once, by the version deployed when its statement committed (with
    real challengers: a shadow version 3 scores every row besides, throughout)."""
    from tests import switch_stress

    report = switch_stress.Report("bulk", "onnx", False, 4, 4.0)
    train = loan_frame(1_000, seed=3)
    models = switch_stress.models(train)
    url, table = db.url, "stress"
    for number in (1, 2, 3):
        db.register_model("stress_m", models[min(number, 2)], sample=train[NUMERIC])
    db.deploy("stress_m", table=table, version=1)
    if REAL_CHALLENGERS:
        db.add_challenger(table, 3, mode="shadow")
    values = loan_frame(5_000, seed=7)[NUMERIC].to_numpy().tolist()
    lock, stop = threading.Lock(), threading.Event()
    statements, epochs = [], [(0.0, 0.0, 1)]
    sql = (
        f"INSERT INTO {table} ({', '.join(NUMERIC)}) VALUES "
        + ", ".join(["(%s, %s, %s, %s)"] * 10)
        + " RETURNING id"
    )

    def write(number):
        rng = np.random.default_rng(number)
        try:
            with psycopg.connect(url, autocommit=True) as app:
                while not stop.is_set():
                    params = [v for i in rng.integers(0, len(values), 10) for v in values[i]]
                    began = time.monotonic()
                    ids = [r[0] for r in app.execute(sql, params).fetchall()]
                    with lock:
                        statements.append((began, time.monotonic(), ids, None))
        except Exception as e:
            with lock:
                report.failures.append(f"writer {number}: {e}")

    def switch():
        try:
            with indb.connect(url) as admin:
                version = 1
                while not stop.is_set():
                    time.sleep(0.4)
                    began = time.monotonic()
                    if version == 1:
                        admin.promote(table, 2, reason="stress")
                    else:
                        admin.rollback(table)
                    version = 3 - version
                    with lock:
                        epochs.append((began, time.monotonic(), version))
                        report.switches.append(time.monotonic() - began)
        except Exception as e:
            with lock:
                report.failures.append(f"switch: {e}")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)] + [
        threading.Thread(target=switch)
    ]
    for thread in threads:
        thread.start()
    time.sleep(4)
    stop.set()
    for thread in threads:
        thread.join(60)
    assert not any(t.is_alive() for t in threads)
    if REAL_CHALLENGERS:  # the row-by-row check reads the served rows; shadow rows on their own
        db.sql(f"CREATE VIEW served AS SELECT * FROM {table}")
        db.sql(f"CREATE VIEW served_predictions AS SELECT * FROM {table}_predictions WHERE served")
        shadow = db.sql(
            f"SELECT count(*) AS n, count(DISTINCT id) AS ids, min(model_version) AS low, "
            f"max(model_version) AS high FROM {table}_predictions WHERE NOT served"
        )
        assert shadow.n[0] == shadow.ids[0] == len(db.sql(f"SELECT id FROM {table}"))
        assert (shadow.low[0], shadow.high[0]) == (3, 3)
    checked = "served" if REAL_CHALLENGERS else table
    switch_stress._check_rows(url, checked, "bulk", models, statements, epochs, report)
    report.statements = len(statements)
    report.insert_latencies = [f - b for b, f, *_ in statements]
    print(report.summary())
    assert report.failures == [] and report.problems == []
    assert len(report.switches) >= 5 and report.rows > 0
    history = db.deployment_history(table)
    assert list(history.version) == [
        1,
        *[2, 1] * (len(report.switches) // 2),
        *([2] if len(report.switches) % 2 else []),
    ]


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_roles_compare_read_only_and_cannot_switch(db, versions):
    """A developer reads the comparison and evaluates in dry run; a promote or rollback by a
    role that may not deploy is refused with the privilege named, and changes nothing."""
    from tests.test_trust_postgres import login_role

    deployed(db, versions, challenger=(2, "shadow", 1.0))
    db.evaluate_challengers("loans", resamples=200, min_labels=50)
    for role in ("indb_reader", "indb_developer"):
        with login_role(db, role) as (_, url), indb.connect(url) as user:
            stored = user.sql(
                "SELECT count(*) AS n FROM indb.challenger_comparison WHERE deployment = 'loans'"
            )
            assert stored.n[0] > 0
            found = user.challenger_comparison("loans", windows=["all"], resamples=100)
            assert set(found.role) == {"champion", "challenger"}
    db.promote("loans", 2)
    for role in ("indb_developer", "indb_admin"):  # deploying needs the request table's owner
        with login_role(db, role) as (_, url), indb.connect(url) as user:
            history = user.deployment_history("loans")
            with pytest.raises(indb.PermissionDeniedError, match="permission denied"):
                user.rollback("loans")
            assert user.deployment("loans").version == 2
            assert len(user.deployment_history("loans")) == len(history) == 2


def test_several_metrics_share_one_set_of_resamples():
    y, p1, p2 = _classification(400, 2)
    champion, challenger = _rows(y, p1), _rows(y, p2)
    together = significance.bootstrap_many(
        ["roc_auc", "log_loss", "f1"],
        champion,
        challenger,
        paired=True,
        confidence=0.95,
        resamples=150,
        seed=4,
    )
    for metric, found in together.items():
        alone = significance.bootstrap(
            metric, champion, challenger, paired=True, confidence=0.95, resamples=150, seed=4
        )
        assert found == alone


def test_promote_and_rollback_keep_a_deployments_stored_features(db):
    """A deployment scored from a feature set (features_from) is switched alike: the new
    champion reads the same stored features."""
    from sklearn.linear_model import LogisticRegression

    from tests.test_feature_store_fixes import customer_rows

    db.create_entity("customer", keys=["customer_id"])
    db.create_feature_set("finance", "customer", source=customer_rows(), event_time="ts")
    rows = customer_rows()
    for c in (1.0, 0.0001):
        model = LogisticRegression(C=c, max_iter=500).fit(rows[["income", "debt"]], rows.income > 50_000)
        db.register_model("risk", model, sample=rows[["income", "debt"]])
    db.deploy("risk", table="risk_requests", version=1, features_from="finance")
    db.promote("risk_requests", 2)
    db.sql("INSERT INTO risk_requests (customer_id) VALUES (3), (5)")
    db.rollback("risk_requests")
    db.sql("INSERT INTO risk_requests (customer_id) VALUES (7)")
    got = db.sql("SELECT model_version, income FROM risk_requests_predictions ORDER BY id")
    assert list(got.model_version) == [2, 2, 1] and got.income.notna().all()


def test_the_models_retraining_policy_decides(db, versions):
    """indb.retraining_policies (the training branch, migration 014) gives promote, metric,
    min_labels; arguments override it."""
    from indb.lifecycle import comparison

    if not comparison.has_catalog_table(db.backend, "retraining_policies"):
        pytest.skip("known gap: indb.retraining_policies arrives with the training branch")
    deployed(db, versions, challenger=(2, "shadow", 1.0))
    db.sql(
        "INSERT INTO indb.retraining_policies (model, training_set, holdout, metric, promote, min_labels, "
        "min_improvement, deployment, created_by) "
        "VALUES ('loan_model', 'loans_ts', '20%', 'log_loss', 'approval', 50, 0.05, 'loans', 'test')"
    )
    evaluation = db.evaluate_challengers("loans", resamples=200)
    policy = evaluation.policy
    assert (policy.source, policy.promote, policy.metric) == (
        "indb.retraining_policies",
        "approval",
        "log_loss",
    )
    assert evaluation.decision == "requested" and evaluation.candidates[0]["metric"] == "log_loss"
    assert evaluation.candidates[0]["improvement_low"] >= 0.05
    assert db.deployment("loans").version == 1
    auto = db.evaluate_challengers("loans", promote="auto", resamples=200)
    assert auto.policy.source == "indb.retraining_policies + arguments" and auto.decision == "promoted"
    assert db.deployment("loans").version == 2 and set(db.promotion_requests().status) == {"done"}
