"""One-row scoring in the PL/Python runtime (issue 17, third pass): a model's one-row runs fill
one kept input array in place (Model.feed_one) and hand back Python values (Model.run_one).
Consecutive rows on one connection, two models alternating in one backend, a refused row between
good ones and the SQL functions must all give what onnxruntime gives on the same rows."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import psycopg
import pytest

import indb
from tests.conftest import NUMERIC
from tests.parity import assert_matches_sklearn

pytestmark = pytest.mark.parametrize("db", ["postgresql"], indirect=True)
COLUMNS = ", ".join(NUMERIC)
# both models are fitted on the string labels, so their tables have the same probability columns
INSERT = (
    "INSERT INTO {} ({}) VALUES (%s, %s, %s, %s) "
    "RETURNING prediction, probability_default, probability_repaid"
)


@pytest.fixture(scope="module")
def string_forest(loans):
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=10, max_depth=6, random_state=0).fit(
        loans[NUMERIC], loans.label
    )


def _onnx(db, name, frame):
    """onnxruntime in this process on the stored bytes: labels and probabilities per row."""
    version = db.get_model(name)
    session = ort.InferenceSession(version.onnx, providers=["CPUExecutionProvider"])
    kinds = {"double": np.float64, "float": np.float32, "int64": np.int64}
    feeds = {
        spec.onnx_name: frame[[spec.name]].to_numpy().astype(kinds[spec.onnx_type])
        for spec in version.signature.inputs
    }
    labels, probabilities = session.run(None, feeds)[:2]
    return labels.tolist(), np.asarray(probabilities, dtype=np.float64)


def _values(record):
    return [float(record.income), float(record.debt), int(record.age), float(record.tenure)]


def test_consecutive_rows_and_two_models_in_one_backend_match_onnxruntime(
    db, logistic, string_forest, loans, fresh_loans
):
    db.register_model("lr", logistic, sample=loans[NUMERIC])
    db.register_model("rf", string_forest, sample=loans[NUMERIC])
    db.deploy("lr", table="lr_requests", mode="row", runtime="onnx")
    db.deploy("rf", table="rf_requests", mode="row", runtime="onnx")
    rows = fresh_loans[NUMERIC].head(40)
    got = {"lr": [], "rf": []}
    functions = {"lr": [], "rf": []}
    with psycopg.connect(db.url, autocommit=True) as app:
        for record in rows.itertuples(index=False):
            for name in ("lr", "rf"):  # the two models alternate in one backend
                got[name].append(
                    app.execute(INSERT.format(f"{name}_requests", COLUMNS), _values(record)).fetchone()
                )
                functions[name].append(
                    app.execute(
                        f"SELECT indb.predict_{name}(%s, %s, %s, %s), "
                        f"indb.predict_proba_{name}(%s, %s, %s, %s)",
                        _values(record) * 2,
                    ).fetchone()
                )
    for name, model in (("lr", logistic), ("rf", string_forest)):
        labels, probabilities = _onnx(db, name, rows)
        assert [g[0] for g in got[name]] == labels
        # exactly onnxruntime's values (float32 probabilities widened to float8 alike)
        np.testing.assert_array_equal(np.array([g[1:] for g in got[name]]), probabilities)
        assert [f[0] for f in functions[name]] == labels
        np.testing.assert_array_equal(np.array([f[1] for f in functions[name]]), probabilities)
        assert_matches_sklearn(model, rows, [g[0] for g in got[name]], [g[1:] for g in got[name]])


def test_a_refused_row_between_good_ones_changes_nothing(db, logistic, loans, fresh_loans):
    db.register_model("lr", logistic, sample=loans[NUMERIC])
    db.deploy("lr", table="lr_requests", mode="row", runtime="onnx")
    rows = fresh_loans[NUMERIC].head(6)
    got = []
    with psycopg.connect(db.url, autocommit=True) as app:
        for i, record in enumerate(rows.itertuples(index=False)):
            if i == 3:
                with pytest.raises(psycopg.Error, match="NaN or infinite"):
                    app.execute(INSERT.format("lr_requests", COLUMNS), [float("nan"), 1.0, 30, 2.0])
                with pytest.raises(psycopg.Error, match="is NULL"):
                    app.execute(INSERT.format("lr_requests", COLUMNS), [None, 1.0, 30, 2.0])
            got.append(app.execute(INSERT.format("lr_requests", COLUMNS), _values(record)).fetchone())
    labels, probabilities = _onnx(db, "lr", rows)
    assert [g[0] for g in got] == labels
    np.testing.assert_array_equal(np.array([g[1:] for g in got]), probabilities)
    assert db.sql("SELECT count(*) AS n FROM lr_requests").n[0] == len(rows)
    with pytest.raises(indb.IndbError):
        db.sql("SELECT indb.predict_lr(NULL, 1.0, 30, 2.0)")
