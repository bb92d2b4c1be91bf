"""The closed loop end to end on both backends (issue 13, "What must be shown"): v1 deployed; a
concept shift (from some day on the label depends on x2 instead of x1, so v1 is right about half
the time); the monitor's accuracy alert; a retrain that is first skipped (too few new labels)
and then builds a training set version with the new labels and registers v2 with lineage; v2
shadows the champion while the application keeps seeing v1; the comparison on the arriving
labels finds v2 better and auto-promotes it; a rollback restores v1."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tests.parity import assert_matches_sklearn

TABLE = "loop_requests"
FEATURES = ["x1", "x2"]
START = datetime(2025, 3, 1)
SPINE = (
    f"SELECT r.ref AS id, r.applied_at AS event_time, r.x1, r.x2, g.label "
    f"FROM {TABLE} AS r JOIN {TABLE}_ground_truth AS g ON g.id = r.id"
)


def applications(rows: int, day: int, *, shifted: bool, first_ref: int, seed: int) -> pd.DataFrame:
    """``rows`` applications on ``day`` (one every ``86400 / rows`` seconds). Before the shift
    the outcome follows x1, after it x2: the features keep their distribution, the concept
    changes (v1 is then right about half the time)."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(0, 1, rows), rng.normal(0, 1, rows)
    driver = x2 if shifted else x1
    step = 86_400 // rows
    return pd.DataFrame(
        {
            "ref": np.arange(first_ref, first_ref + rows, dtype=np.int64),
            "applied_at": [START + timedelta(days=day, seconds=i * step) for i in range(rows)],
            "x1": x1.round(4),
            "x2": x2.round(4),
            "label": np.where(driver + rng.normal(0, 0.3, rows) > 0, "repaid", "default"),
        }
    )


def arrive(db, frame: pd.DataFrame) -> None:
    """Applications inserted with plain SQL (the deployment's trigger scores them)."""
    db.write_table("incoming", frame, replace=True)
    db.sql(
        f"INSERT INTO {TABLE} (ref, applied_at, x1, x2) "
        "SELECT ref, applied_at, x1, x2 FROM incoming ORDER BY ref"
    )


def label(db, frame: pd.DataFrame) -> None:
    """The outcomes of ``frame``'s applications, recorded against the server's request ids."""
    db.write_table("outcomes", frame[["ref", "applied_at", "label"]], replace=True)
    db.sql(
        f"INSERT INTO {TABLE}_ground_truth (id, label, observed_at) "
        f"SELECT r.id, o.label, o.applied_at FROM outcomes AS o JOIN {TABLE} AS r ON r.ref = o.ref"
    )


def served(db, refs) -> pd.DataFrame:
    """The predictions of the requests ``refs``, every role, by ref."""
    db.write_table("wanted", pd.DataFrame({"ref": np.asarray(refs, dtype=np.int64)}), replace=True)
    return db.sql(
        f"SELECT r.ref, p.model_version, p.role, p.served, p.prediction FROM {TABLE}_predictions AS p "
        f"JOIN {TABLE} AS r ON r.id = p.id JOIN wanted AS w ON w.ref = r.ref ORDER BY r.ref, p.role"
    )


def test_the_closed_loop_drift_retrain_shadow_promote_rollback(db):
    # -- v1: trained on history under the old concept, deployed -------------------------------
    history = applications(1_000, 0, shifted=False, first_ref=-1_000, seed=1)
    db.write_table("loop_history", history, replace=True)
    v1 = make_pipeline(StandardScaler(), LogisticRegression()).fit(history[FEATURES], history.label)
    db.register_model("loop", v1, sample=history[FEATURES])
    empty = history.iloc[:0][["ref", "applied_at", *FEATURES]]
    db.write_table(TABLE, empty, replace=True)
    db.deploy("loop", table=TABLE, version=1)
    db.create_monitor(
        "loop",
        TABLE,
        reference="SELECT x1, x2 FROM loop_history",
        features=FEATURES,
        window="1 day",
        time_column="applied_at",
        thresholds={"accuracy": 0.8},
    )

    # day 10: traffic as before, labeled; the training set retraining rebuilds starts from it
    before = applications(200, 10, shifted=False, first_ref=0, seed=2)
    arrive(db, before)
    label(db, before)
    db.training_set(SPINE, [], label="label", materialize=True, name="loop_labeled")
    db.create_retraining(
        "loop",
        training_set="loop_labeled",
        holdout="20%",
        metric="roc_auc",
        promote="auto",
        deployment=TABLE,
        min_new_labels=300,
        min_labels=200,
    )

    # -- day 11: the concept shifts; the first 100 outcomes arrive -----------------------------
    shifted = applications(1_000, 11, shifted=True, first_ref=1_000, seed=3)
    arrive(db, shifted)
    label(db, shifted.iloc[:100])
    db.run_monitor("loop")
    alerts = db.alerts("loop")
    accuracy_alerts = alerts[alerts.metric == "accuracy"]
    assert len(accuracy_alerts) == 1, alerts[["feature", "metric", "window_start", "value"]]
    alert = accuracy_alerts.iloc[0]
    assert pd.Timestamp(alert.window_start) == pd.Timestamp(START + timedelta(days=11))
    assert int(alert.model_version) == 1 and alert.value < 0.7
    # the inputs did not move (no drift alert on x1 or x2): only the outcomes tell
    assert alerts[["feature", "metric"]].values.tolist() == [["prediction", "accuracy"]]
    results = db.monitor_results("loop")
    day10 = results[
        (results.metric == "accuracy") & (results.window_start == pd.Timestamp(START + timedelta(days=10)))
    ]
    assert len(day10) == 1 and day10.value.iloc[0] > 0.85  # v1 was right before the shift

    # -- the alert's retrain: 100 new labels, the policy needs 300: skipped, nothing built -----
    skipped = db.retrain("loop", triggered_by=f"alert:{int(alert.id)}")
    assert skipped.status == "skipped" and skipped.version is None
    assert "100 new labeled rows" in skipped.notes["skipped"], skipped.notes
    assert db.training_run(skipped.id)["status"] == "skipped"
    assert db.sql("SELECT max(version) AS v FROM indb.training_sets WHERE name = 'loop_labeled'").v[0] == 1
    assert [v.version for v in db.model_versions("loop")] == [1]

    # -- the rest of day 11's outcomes arrive: the retrain builds v2 ---------------------------
    label(db, shifted.iloc[100:])
    run = db.retrain("loop", triggered_by=f"alert:{int(alert.id)}")
    assert run.status == "succeeded", run.error
    assert (run.version, run.parent_version) == (2, 1)
    assert (run.training_set, run.training_set_version) == ("loop_labeled", 2)
    stored = db.training_run(run.id)
    runs = db.backend.rows(
        "SELECT status, version, parent_version, training_set, training_set_version "
        "FROM indb.training_runs WHERE model = 'loop' ORDER BY id"
    )
    assert [tuple(r) for r in runs] == [
        ("skipped", None, 1, "loop_labeled", None),
        ("succeeded", 2, 1, "loop_labeled", 2),
    ]
    assert stored["triggered_by"] == f"alert:{int(alert.id)}"
    assert (stored["parent_version"], stored["training_set_version"], stored["rows"]) == (1, 2, 1_200)
    rows = db.sql(
        "SELECT version, row_count FROM indb.training_sets WHERE name = 'loop_labeled' ORDER BY version"
    )
    assert rows.values.tolist() == [[1, 200], [2, 1_200]]
    rebuilt = db.get_training_set("loop_labeled", 2).df()
    assert set(rebuilt.id) == set(before.ref) | set(shifted.ref)  # the new labels are in it
    # a spine-only training set: one lineage row, without feature set
    lineage = db.sql(
        "SELECT training_set, training_set_version, feature_set FROM indb.model_lineage "
        "WHERE model = 'loop' AND model_version = 2"
    )
    assert lineage.values.tolist() == [["loop_labeled", 2, None]]
    assert db.get_model("loop", 2).tags["parent_version"] == 1
    # on the holdout (the latest 20%: shifted rows) v2 is far better than v1
    assert run.metrics["roc_auc"] > 0.85 and run.champion_metrics["roc_auc"] < 0.65, (
        run.metrics,
        run.champion_metrics,
    )
    assert run.notes["beats_champion"] is True
    assert run.notes.get("challenger") == {"deployment": TABLE, "version": 2, "mode": "shadow"}

    # -- v2 shadows: every insert is scored by both, the application sees v1 ------------------
    listed = db.challengers(TABLE)
    assert listed[["version", "mode"]].values.tolist() == [[2, "shadow"]]
    assert db.deployment(TABLE).version == 1
    day12 = applications(600, 12, shifted=True, first_ref=2_000, seed=4)
    arrive(db, day12)
    predictions = served(db, day12.ref)
    champion = predictions[predictions.role == "champion"]
    shadow = predictions[predictions.role == "challenger"]
    assert len(champion) == len(shadow) == 600
    assert champion.served.all() and (champion.model_version == 1).all()
    assert (~shadow.served.astype(bool)).all() and (shadow.model_version == 2).all()
    assert_matches_sklearn(v1, day12[FEATURES], champion.prediction.tolist())
    scored = db.sql(
        f"SELECT s.model_version, count(*) AS n FROM {TABLE}_scored AS s "
        f"WHERE s.applied_at >= $day GROUP BY 1",
        {"day": START + timedelta(days=12)},
    )
    assert scored.values.tolist() == [[1, 600]]  # what the application reads
    truth = day12.label.to_numpy()
    assert (shadow.prediction.to_numpy() == truth).mean() > 0.85
    assert (champion.prediction.to_numpy() == truth).mean() < 0.65

    # 150 outcomes of the shadowed rows: v2 is ahead, but the policy wants 200 labeled rows
    label(db, day12.iloc[:150])
    waiting = db.evaluate_challengers(TABLE)
    assert waiting.decision == "no challenger better" and waiting.candidates == []
    verdicts = db.sql(
        "SELECT labeled_rows, verdict FROM indb.challenger_comparison WHERE deployment = $t "
        "AND window_name = 'all' AND metric = 'roc_auc' AND role = 'challenger'",
        {"t": TABLE},
    )
    assert verdicts.values.tolist() == [[150, "too few labels"]]
    assert db.deployment(TABLE).version == 1 and len(db.challengers(TABLE)) == 1  # still shadowing

    # -- the rest of day 12's outcomes: the comparison finds v2 better and promotes it ---------
    label(db, day12.iloc[150:])
    evaluation = db.evaluate_challengers(TABLE)
    assert (evaluation.policy.promote, evaluation.policy.metric) == ("auto", "roc_auc")
    assert evaluation.decision == "promoted" and evaluation.version == 2, evaluation.summary()
    comparison = db.sql(
        "SELECT version, role, labeled_rows, verdict FROM indb.challenger_comparison "
        "WHERE deployment = $t AND window_name = 'all' AND metric = 'roc_auc' AND role = 'challenger'",
        {"t": TABLE},
    )
    assert comparison.values.tolist() == [[2, "challenger", 600, "better"]]
    assert db.deployment(TABLE).version == 2
    history_rows = db.deployment_history(TABLE)
    assert int(history_rows.version.iloc[-1]) == 2
    assert history_rows.reason.iloc[-1].startswith("promote"), history_rows.reason.tolist()
    assert db.challengers(TABLE).empty  # the champion is no challenger of itself
    day13 = applications(50, 13, shifted=True, first_ref=3_000, seed=5)
    arrive(db, day13)
    after = served(db, day13.ref)
    assert after.values[:, 1:3].tolist() == [[2, "champion"]] * 50 and after.served.all()

    # -- rollback: v1 serves again --------------------------------------------------------------
    db.rollback(TABLE)
    assert db.deployment(TABLE).version == 1
    history_rows = db.deployment_history(TABLE)
    assert int(history_rows.version.iloc[-1]) == 1
    assert history_rows.reason.iloc[-1].startswith("rollback"), history_rows.reason.tolist()
    day14 = applications(50, 14, shifted=True, first_ref=4_000, seed=6)
    arrive(db, day14)
    again = served(db, day14.ref)
    assert again.values[:, 1:3].tolist() == [[1, "champion"]] * 50 and again.served.all()
    assert_matches_sklearn(v1, day14[FEATURES], again.prediction.tolist())
