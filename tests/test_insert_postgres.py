"""db.insert on PostgreSQL: the rows are copied to the server and inserted by one INSERT ...
SELECT, which the deployment's statement trigger scores (nothing is skipped there). A real
throw-away server (tests/pg_server.py), real models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from indb.errors import NotFoundError, QueryError, ScoringError
from tests.test_insert_duckdb import FEATURES, FIT, MODELS, frame, one_served_each, scored

pytestmark = pytest.mark.parametrize("db", ["postgresql"], indirect=True)


@pytest.mark.parametrize(("kind", "runtime"), [("lr", "sql"), ("gb", "onnx")])
def test_insert_scores_as_the_trigger_does_and_as_sklearn(db, kind, runtime):
    model = MODELS[kind]()
    db.register_model("m", model, sample=FIT)
    db.deploy("m", table="fast", runtime=runtime)
    db.deploy("m", table="fired", runtime=runtime)
    rows = frame(500, seed=2)
    assert db.insert("fast", rows.iloc[:200]) == 200
    assert db.insert("fast", rows.iloc[200:300].to_dict("records")) == 100
    db.write_table("src", rows)
    assert db.insert("fast", "SELECT a, b, c FROM src WHERE a IS NOT NULL OFFSET 300") == 200
    db.sql("INSERT INTO fired (a, b, c) SELECT a, b, c FROM src")
    assert one_served_each(db, "fast") == one_served_each(db, "fired") == len(rows)
    fast, fired = scored(db, "fast"), scored(db, "fired")
    columns = ["prediction", "probability_0", "probability_1", "model_version"]
    pd.testing.assert_frame_equal(fast[columns], fired[columns])
    tolerance = 1e-9 if kind == "lr" else 1e-6
    np.testing.assert_allclose(fast[FEATURES].to_numpy(), rows[FEATURES].to_numpy())
    np.testing.assert_allclose(fast.probability_1, model.predict_proba(rows)[:, 1], atol=tolerance)


def test_bad_input_is_refused_and_a_failed_scoring_rolls_back(db):
    db.register_model("m", MODELS["lr"](), sample=FIT)
    db.deploy("m", table="fast", runtime="sql")
    db.add_humility_rule("fast", "no_huge_a", "outside_range", "a", low=-50, high=50, action="reject")
    db.insert("fast", frame(5))
    with pytest.raises(ScoringError, match="no_huge_a"):
        db.insert("fast", frame(5, offset=100.0))
    with pytest.raises(NotFoundError, match="did you mean 'fast'"):
        db.insert("fats", frame(5))
    with pytest.raises(ScoringError, match="did you mean 'b'"):
        db.insert("fast", frame(5).rename(columns={"b": "bb"}))
    with pytest.raises(ScoringError, match="fast.id is set by the database"):
        db.insert("fast", frame(5).assign(id=range(5)))
    with pytest.raises(QueryError):
        db.insert("fast", "SELECT 1 AS a; DROP TABLE fast")
    assert one_served_each(db, "fast") == 5
    assert db.humility_events("fast").empty
