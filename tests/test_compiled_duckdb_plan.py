"""Compiled SQL on DuckDB computes each sub-expression once per row.

DuckDB's optimizer computes a repeated sub-expression once, but not inside a CASE: compiled SQL
wrapped in its NULL/NaN guard as ``CASE WHEN bad THEN error() ELSE model END`` evaluated a
logistic regression's dot product and exp() once per use (12 times for its probability array).
The guard is therefore ``COALESCE(CASE WHEN bad THEN error() END, model)`` on DuckDB."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import indb

FEATURES = ["a", "b", "c"]


@pytest.fixture
def compiled():
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.standard_normal((500, 3)), columns=FEATURES)
    db = indb.connect("duckdb:///:memory:")
    db.register_model("m", LogisticRegression().fit(x, (x.a > 0).astype(int)), sample=x)
    db.deploy("m", table="requests", runtime="sql")
    yield db
    db.close()


def _plan(db, sql: str) -> str:
    return db.backend.rows("EXPLAIN " + sql)[0][1]


def test_the_probabilities_compute_each_exp_once(compiled):
    plan = _plan(compiled, "SELECT predict_proba_m(a, b, c) FROM (SELECT 1.0 AS a, 2.0 AS b, 3.0 AS c)")
    assert plan.count("exp(") == 2  # one logistic function per class score


def test_the_guard_still_refuses_null_and_nan(compiled):
    with pytest.raises(indb.ScoringError, match="input of this model is NULL, NaN or infinite"):
        compiled.sql("SELECT predict_proba_m(1.0, NULL, 3.0)")
    with pytest.raises(indb.ScoringError, match="input of this model is NULL, NaN or infinite"):
        compiled.sql("SELECT predict_m(1.0, 'nan'::DOUBLE, 3.0)")
    compiled.sql("CREATE TABLE src (a DOUBLE, b DOUBLE, c DOUBLE)")
    compiled.sql("INSERT INTO src VALUES (1, 2, 3), (4, 'inf', 6)")
    with pytest.raises(indb.ScoringError, match="input of this model is NULL, NaN or infinite"):
        compiled.sql("INSERT INTO requests (a, b, c) SELECT a, b, c FROM src")
    counts = compiled.sql(
        "SELECT (SELECT count(*) FROM requests) r, (SELECT count(*) FROM requests_predictions) p"
    )
    assert counts.iloc[0].tolist() == [0, 0]  # the whole insert rolled back
