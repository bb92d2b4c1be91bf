"""Predictions from SQL functions and from insert triggers equal scikit-learn's."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import NUMERIC
from tests.parity import TOLERANCE, assert_matches_sklearn

MODELS = {
    "logistic": NUMERIC,
    "forest": NUMERIC,
    "boosted_regressor": NUMERIC,
    "mixed_pipeline": NUMERIC + ["purpose"],
}


def _arguments(columns):
    return ", ".join(columns)


def _check(model, frame, predictions, probabilities):
    assert_matches_sklearn(model, frame, predictions, probabilities)


@pytest.mark.parametrize("fixture", MODELS)
def test_sql_function_matches_sklearn(db, request, fixture, loans, fresh_loans):
    model, columns = request.getfixturevalue(fixture), MODELS[fixture]
    db.register_model("m", model, sample=loans[columns])
    db.write_table("applicants", fresh_loans[columns], replace=True)
    proba = "" if "regressor" in fixture else f", predict_proba_m({_arguments(columns)}) AS proba"
    result = db.sql(f"SELECT predict_m({_arguments(columns)}) AS prediction{proba} FROM applicants")
    _check(model, fresh_loans[columns], result.prediction.to_numpy(), result.get("proba"))


@pytest.mark.parametrize("runtime", ["onnx", "sql"])
@pytest.mark.parametrize("fixture", MODELS)
def test_insert_trigger_matches_sklearn(db, request, fixture, runtime, loans, fresh_loans):
    model, columns = request.getfixturevalue(fixture), MODELS[fixture]
    mv = db.register_model("m", model, sample=loans[columns])
    deployment = db.deploy("m", table="requests", runtime=runtime)
    db.write_table("incoming", fresh_loans[columns], replace=True)
    db.sql(f"INSERT INTO requests ({_arguments(columns)}) SELECT {_arguments(columns)} FROM incoming")
    scored = db.sql("SELECT * FROM requests_scored ORDER BY id")
    assert len(scored) == len(fresh_loans)
    assert set(scored.model_version) == {mv.version} and set(scored.runtime) == {deployment.runtime}
    if runtime != "auto":
        assert deployment.runtime == runtime
    probabilities = None
    if mv.classes:
        columns_p = [f"probability_{str(c).lower()}" for c in mv.classes]
        probabilities = scored[columns_p].to_numpy()
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-9)
    _check(model, fresh_loans[columns], scored.prediction.to_numpy(), probabilities)


def test_one_row_and_multi_row_inserts_are_scored(db, mixed_pipeline, loans):
    columns = NUMERIC + ["purpose"]
    db.register_model("m", mixed_pipeline, sample=loans[columns])
    db.deploy("m", table="requests")
    db.sql(
        "INSERT INTO requests (income, debt, age, tenure, purpose) VALUES ($i, $d, $a, $t, $p)",
        {"i": 61000.0, "d": 1200.0, "a": 33, "t": 4.0, "p": "home"},
    )
    db.sql(
        "INSERT INTO requests (income, debt, age, tenure, purpose) VALUES "
        "(20000, 30000, 22, 0.5, 'business'), (90000, 100, 50, 20, 'car'), (45000, 9000, 41, 3, 'education')"
    )
    scored = db.sql("SELECT * FROM requests_scored ORDER BY id")
    assert scored.prediction.notna().all() and len(scored) == 4
    frame = scored[columns]
    assert_matches_sklearn(mixed_pipeline, frame, scored.prediction)


def test_pinned_versions_and_production_alias(db, logistic, forest, loans, fresh_loans):
    sample = loans[NUMERIC]
    v1 = db.register_model("m", logistic, sample=sample)
    v2 = db.register_model("m", forest, sample=sample)
    row = fresh_loans[NUMERIC].iloc[[0]]
    args = ", ".join(str(float(v)) for v in row.iloc[0])
    query = (
        f"SELECT predict_proba_m({args}) AS latest, predict_proba_m_v1({args}) AS one, "
        f"predict_proba_m_v2({args}) AS two"
    )
    result = db.sql(query).iloc[0]
    np.testing.assert_allclose(result.one, logistic.predict_proba(row)[0], atol=TOLERANCE)
    np.testing.assert_allclose(result.two, forest.predict_proba(row)[0], atol=TOLERANCE)
    np.testing.assert_allclose(result.latest, result.two)  # no alias: the latest version
    db.set_alias("m", "production", v1.version)
    np.testing.assert_allclose(db.sql(query).iloc[0].latest, result.one)  # production wins
    db.register_model("m", forest, sample=sample)  # a new version does not move production
    np.testing.assert_allclose(db.sql(query).iloc[0].latest, result.one)
    db.remove_alias("m", "production")
    assert db.get_model("m").version == 3 and v2.version == 2


def test_functions_are_documented_in_the_catalog(db, mixed_pipeline, loans):
    db.register_model("m", mixed_pipeline, sample=loans[NUMERIC + ["purpose"]])
    signature = db.sql("SELECT signature, classes FROM indb.model_versions").iloc[0]
    assert signature.signature.startswith(
        "predict_m(income DOUBLE, debt DOUBLE, age BIGINT, tenure DOUBLE, purpose VARCHAR) -> VARCHAR"
    )
    if db.backend.name == "duckdb":
        query = "SELECT function_name, comment FROM duckdb_functions() WHERE function_name LIKE 'predict%m%'"
    else:
        query = (
            "SELECT proname AS function_name, obj_description(oid, 'pg_proc') AS comment FROM pg_proc "
            "WHERE pronamespace = 'indb'::regnamespace AND proname LIKE 'predict%m%'"
        )
    comments = db.sql(query)
    assert set(comments.function_name) >= {"predict_m", "predict_proba_m", "predict_m_v1"}
    assert comments.comment.str.contains("income DOUBLE").all()


def test_model_that_handles_missing_values_accepts_null(db, loans):
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    frame = loans[NUMERIC].copy()
    frame.loc[::7, "tenure"] = np.nan  # the sample shows the model takes missing tenure
    model = make_pipeline(SimpleImputer(), LogisticRegression()).fit(frame, loans.label)
    db.register_model("m", model, sample=frame)
    db.deploy("m", table="requests")
    db.sql("INSERT INTO requests (income, debt, age, tenure) VALUES (50000, 2000, 40, NULL)")
    got = db.sql("SELECT probability_repaid FROM requests_predictions").probability_repaid[0]
    want = model.predict_proba(frame.iloc[:0].reindex([0]).assign(income=50000.0, debt=2000.0, age=40))
    assert got == pytest.approx(want[0][1], abs=TOLERANCE)
