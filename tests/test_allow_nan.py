"""NaN and +-inf inputs are refused like NULL unless the model was registered with
allow_nan=True (issue 10.8), by the onnx runtime on both backends: DuckDB's Arrow UDF and
PostgreSQL's PL/Python runtime (bulk and row triggers, predict_<model>())."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

import indb
from indb.udfs.signature import Signature
from tests.conftest import NUMERIC

COLUMNS = ", ".join(NUMERIC)
NAN = "CAST('NaN' AS DOUBLE PRECISION)"
INF = "CAST('Infinity' AS DOUBLE PRECISION)"
NEG_INF = "CAST('-Infinity' AS DOUBLE PRECISION)"


def _modes(db) -> tuple[str, ...]:
    return db.backend.scoring_modes


def _count(db, table: str) -> int:
    return int(db.sql(f"SELECT count(*) AS n FROM {table}").n.iloc[0])


@pytest.mark.parametrize("mode", ["bulk", "row"])
def test_nan_and_infinity_are_refused_like_null(db, logistic, loans, mode):
    if mode not in _modes(db):
        pytest.skip(f"{db.backend.name} scores in {_modes(db)} only")
    mv = db.register_model("loans", logistic, sample=loans[NUMERIC])
    assert mv.signature.allow_nan is False
    db.deploy("loans", table="requests", runtime="onnx", mode=mode)
    for value in (NAN, INF, NEG_INF):
        with pytest.raises(indb.ScoringError, match=r"input column 'debt' is NaN or infinite in 1 row\(s\)"):
            db.sql(f"INSERT INTO requests ({COLUMNS}) VALUES (1, {value}, 3, 4)")
    many = "2" if mode == "bulk" else "1"  # a row trigger sees one row at a time
    with pytest.raises(indb.ScoringError, match=rf"'tenure' is NaN or infinite in {many} row\(s\)"):
        db.sql(f"INSERT INTO requests ({COLUMNS}) VALUES (1, 2, 3, {NAN}), (1, 2, 3, 4), (5, 6, 7, {INF})")
    assert _count(db, "requests") == 0
    db.sql(f"INSERT INTO requests ({COLUMNS}) VALUES (1, 2, 3, 4)")  # finite values still score
    assert (
        _count(db, "requests_predictions" if mode == "bulk" else "requests WHERE prediction IS NOT NULL") == 1
    )


def test_predict_function_refuses_nan(db, logistic, loans):
    db.register_model("loans", logistic, sample=loans[NUMERIC])
    db.deploy("loans", table="requests", runtime="onnx")  # DuckDB: the UDF is the onnx runtime
    with pytest.raises(indb.ScoringError, match=r"'income' is NaN or infinite in 1 row\(s\)"):
        db.sql(f"SELECT predict_loans({NAN}, 2.0, 3, 4.0) AS p")


def test_allow_nan_lets_an_imputer_see_nan(db, loans):
    sample = loans[NUMERIC].copy()
    sample.loc[sample.index[:50], "debt"] = np.nan
    model = make_pipeline(SimpleImputer(), LogisticRegression(max_iter=1000)).fit(sample, loans.label)
    mv = db.register_model("imputed", model, sample=sample, allow_nan=True)
    assert mv.signature.allow_nan is True
    assert db.get_model("imputed").signature.allow_nan is True
    modes = _modes(db)
    for mode in modes:
        db.deploy("imputed", table=f"requests_{mode}", runtime="onnx", mode=mode)
        db.sql(f"INSERT INTO requests_{mode} ({COLUMNS}) VALUES (60000, {NAN}, 30, 4), (60000, NULL, 30, 4)")
    scored = db.sql("SELECT prediction FROM requests_bulk_predictions")
    assert scored.prediction.notna().all() and len(scored) == 2
    expected = model.predict(sample.iloc[:1].assign(debt=np.nan, income=60000, age=30, tenure=4))[0]
    assert set(scored.prediction) == {expected}
    assert db.sql(f"SELECT predict_imputed(60000, {NAN}, 30, 4) AS p").p.iloc[0] == expected


def test_allow_nan_must_be_a_bool(db, logistic, loans):
    with pytest.raises(indb.ModelError, match="allow_nan"):
        db.register_model("loans", logistic, sample=loans[NUMERIC], allow_nan="yes")


def test_outputs_json_without_allow_nan_reads_as_false(logistic, loans):
    stored = (
        '{"task": "regression", "prediction_type": "DOUBLE", "prediction_output": "y", '
        '"probability_output": null}'
    )
    sig = Signature.from_catalog("[]", stored, None)
    assert sig.allow_nan is False
    assert Signature.from_catalog("[]", sig.outputs_json(), None) == sig
