"""Deployments: request tables scored on insert, version switches, ground truth, the view."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import indb
from tests.conftest import NUMERIC, loan_frame
from tests.parity import assert_matches_sklearn

COLUMNS = ", ".join(NUMERIC)


def _insert_from(db, frame: pd.DataFrame, table: str = "requests") -> None:
    db.write_table("incoming", frame[NUMERIC], replace=True)
    db.sql(f"INSERT INTO {table} ({COLUMNS}) SELECT {COLUMNS} FROM incoming")


def test_deploy_creates_request_predictions_ground_truth_and_view(db, logistic, loans):
    db.register_model("m", logistic, sample=loans[NUMERIC])
    deployment = db.deploy("m", table="requests")
    # A logistic regression compiles and verifies, so auto picks compiled SQL.
    assert (deployment.model, deployment.version, deployment.runtime) == ("m", 1, "sql")
    assert "verified on" in deployment.reason
    assert list(db.sql("SELECT * FROM requests").columns) == ["id", *NUMERIC, "created_at"]
    predictions = db.sql("SELECT * FROM requests_predictions").columns
    assert list(predictions) == [
        "id",
        "model",
        "model_version",
        "runtime",
        "prediction",
        "scored_at",
        "role",  # 'champion' | 'challenger' (indb.lifecycle.challengers)
        "served",  # the prediction the application sees
        "probability_default",
        "probability_repaid",
    ]
    assert list(db.sql("SELECT * FROM requests_ground_truth").columns) == ["id", "label", "observed_at"]
    catalog = db.deployments()
    assert catalog[["table_name", "model", "version", "runtime"]].values.tolist() == [
        ["requests", "m", 1, "sql"]
    ]


def test_ground_truth_joins_in_the_view_latest_label_wins(db, logistic, loans, fresh_loans):
    db.register_model("m", logistic, sample=loans[NUMERIC])
    db.deploy("m", table="requests")
    _insert_from(db, fresh_loans.head(3))
    db.sql(
        "INSERT INTO requests_ground_truth (id, label, observed_at) VALUES "
        "(1, 'default', TIMESTAMP '2026-01-01 10:00'), (1, 'repaid', TIMESTAMP '2026-01-02 10:00'),"
        "(2, 'repaid', TIMESTAMP '2026-01-01 09:00')"
    )
    view = db.sql("SELECT id, prediction, label FROM requests_scored ORDER BY id")
    assert view.label.tolist()[:2] == ["repaid", "repaid"] and pd.isna(view.label[2])
    assert view.prediction.notna().all()


def test_version_switch_mid_stream(db, logistic, forest, loans):
    sample = loans[NUMERIC]
    from sklearn.ensemble import RandomForestClassifier

    second = RandomForestClassifier(n_estimators=20, random_state=1).fit(sample, loans.label)
    db.register_model("m", logistic, sample=sample)
    db.register_model("m", second, sample=sample)
    db.deploy("m", table="requests", version=1)
    first_half, second_half = loan_frame(300, seed=5), loan_frame(300, seed=6)
    _insert_from(db, first_half)
    switched = db.deploy("m", table="requests", version=2)
    assert switched.version == 2
    _insert_from(db, second_half)
    scored = db.sql("SELECT * FROM requests_scored ORDER BY id")
    assert scored.model_version.tolist() == [1] * 300 + [2] * 300
    for version, model, part in ((1, logistic, first_half), (2, second, second_half)):
        rows = scored[scored.model_version == version]
        probabilities = rows[["probability_default", "probability_repaid"]].to_numpy()
        assert_matches_sklearn(model, part[NUMERIC], rows.prediction, probabilities)
    history = db.sql("SELECT action, details FROM indb.audit_log WHERE action = 'deploy' ORDER BY id")
    assert len(history) == 2 and '"previous": {"model": "m", "version": 1}' in history.details[1]


def test_hundred_thousand_row_insert_select_is_fully_scored(db, forest, loans):
    db.register_model("m", forest, sample=loans[NUMERIC])
    db.deploy("m", table="requests")
    _insert_from(db, loan_frame(100_000, seed=9))
    counts = db.sql(
        "SELECT (SELECT count(*) FROM requests) AS requests,"
        " (SELECT count(DISTINCT id) FROM requests_predictions WHERE prediction IS NOT NULL) AS scored,"
        " (SELECT count(*) FROM requests_predictions) AS predictions"
    ).iloc[0]
    assert counts.requests == counts.scored == counts.predictions == 100_000


def test_adopting_an_existing_table_scores_rows_already_there(db, logistic, loans, fresh_loans):
    db.register_model("m", logistic, sample=loans[NUMERIC])
    db.sql(
        "CREATE TABLE applicants "
        "(name VARCHAR, income DOUBLE PRECISION, debt FLOAT, age INTEGER, tenure REAL)"
    )
    db.write_table("incoming", fresh_loans[NUMERIC].head(10).assign(name="x"), replace=True)
    db.sql(f"INSERT INTO applicants (name, {COLUMNS}) SELECT name, {COLUMNS} FROM incoming")
    db.deploy("m", table="applicants")
    db.sql(f"INSERT INTO applicants (name, {COLUMNS}) VALUES ('late', 70000, 100, 30, 3.0)")
    scored = db.sql("SELECT * FROM applicants_scored ORDER BY id")
    assert len(scored) == 11 and scored.id.is_unique and scored.prediction.notna().all()
    assert_matches_sklearn(logistic, scored[NUMERIC], scored.prediction)


def test_dry_run_shows_statements_and_changes_nothing(db, logistic, loans):
    db.register_model("m", logistic, sample=loans[NUMERIC])
    plan = db.deploy("m", table="requests", dry_run=True)
    text = "\n".join(plan.statements)
    assert 'CREATE TABLE "requests"' in text and "AFTER INSERT ON" in text
    assert (
        db.sql("SELECT count(*) AS n FROM information_schema.tables WHERE table_name LIKE 'requests%'").n[0]
        == 0
    )
    assert db.deployments().empty


def test_undeploy_stops_scoring(db, logistic, loans, fresh_loans):
    db.register_model("m", logistic, sample=loans[NUMERIC])
    db.deploy("m", table="requests")
    _insert_from(db, fresh_loans.head(5))
    db.undeploy("requests")
    _insert_from(db, fresh_loans.head(5))
    assert db.sql("SELECT count(*) AS n FROM requests_predictions").n[0] == 5
    with pytest.raises(indb.NotFoundError, match="requests"):
        db.deployment("requests")


def test_class_labels_become_plain_probability_columns(db, loans):
    from sklearn.tree import DecisionTreeClassifier

    labels = np.where(loans.debt > 15_000, "High Risk!", np.where(loans.debt > 5_000, "mid", "low"))
    model = DecisionTreeClassifier(max_depth=4, random_state=0).fit(loans[NUMERIC], labels)
    db.register_model("m", model, sample=loans[NUMERIC])
    db.deploy("m", table="requests")
    _insert_from(db, loans.head(50))
    columns = set(db.sql("SELECT * FROM requests_predictions").columns)
    assert {"probability_high_risk", "probability_low", "probability_mid"} <= columns
    predictions = db.sql("SELECT prediction FROM requests_predictions ORDER BY id").prediction
    assert_matches_sklearn(model, loans.head(50)[NUMERIC], predictions)


def test_regression_deployment_has_no_probability_columns(db, boosted_regressor, loans, fresh_loans):
    db.register_model("m", boosted_regressor, sample=loans[NUMERIC])
    db.deploy("m", table="requests")
    _insert_from(db, fresh_loans)
    scored = db.sql("SELECT * FROM requests_scored ORDER BY id")
    assert not [c for c in scored.columns if c.startswith("probability_")]
    np.testing.assert_allclose(
        scored.prediction.to_numpy(), boosted_regressor.predict(fresh_loans[NUMERIC]), atol=1e-5
    )


def test_row_mode_is_refused_on_duckdb(tmp_path, logistic, loans):
    with indb.connect(f"duckdb://{tmp_path}/x.duckdb") as duck:
        duck.register_model("m", logistic, sample=loans[NUMERIC])
        with pytest.raises(indb.DeploymentError, match="mode 'row' is not available on duckdb"):
            duck.deploy("m", table="requests", mode="row")


@pytest.mark.parametrize("mode", ["bulk", "row"])
def test_a_column_added_to_a_deployed_table_shows_in_the_view_after_a_deploy(db, logistic, loans, mode):
    """PostgreSQL's CREATE OR REPLACE VIEW adds columns only at the end: the scored view (and
    in row mode the predictions view) is made anew when the table's columns changed."""
    if mode not in db.backend.scoring_modes:
        pytest.skip(f"{db.backend.name} scores in {db.backend.scoring_modes} only")
    db.register_model("m", logistic, sample=loans[NUMERIC])
    db.register_model("m", logistic, sample=loans[NUMERIC])
    db.deploy("m", table="requests", version=1, mode=mode)
    _insert_from(db, loans.head(3))
    db.sql("ALTER TABLE requests ADD COLUMN channel VARCHAR")
    db.deploy("m", table="requests", version=2, mode=mode)
    db.sql(f"INSERT INTO requests ({COLUMNS}, channel) VALUES (50000, 1000, 40, 3, 'web')")
    scored = db.sql("SELECT * FROM requests_scored ORDER BY id")
    assert list(scored.columns[: len(NUMERIC) + 3]) == ["id", *NUMERIC, "created_at", "channel"]
    assert scored.channel.tolist()[-1] == "web" and scored.model_version.tolist() == [1, 1, 1, 2]
    assert db.sql("SELECT count(*) AS n FROM requests_predictions").n[0] == 4
