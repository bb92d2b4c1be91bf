"""Issue 11.17: feature-engineering pipelines without a final estimator, compiled to SQL views."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler, TargetEncoder

from indb.errors import IndbError, ModelError
from tests.conftest import NUMERIC, loan_frame


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    frame = loan_frame(300, seed=3)
    frame.loc[::7, "income"] = np.nan  # the imputer's work; NULL in SQL
    frame.insert(0, "customer_id", np.arange(len(frame), dtype=np.int64))
    frame.insert(1, "ts", pd.Timestamp("2026-01-01") + pd.to_timedelta(frame.customer_id, unit="h"))
    return frame


def _view(db, name: str, outputs) -> np.ndarray:
    return db.sql(f"SELECT * FROM {name} ORDER BY customer_id")[list(outputs)].to_numpy(dtype=float)


def test_imputer_and_scaler_become_a_view_equal_to_sklearn(db, rows):
    pipeline = make_pipeline(SimpleImputer(), StandardScaler()).fit(rows[NUMERIC])
    db.write_table("applications", rows)
    transform = db.register_transform("clean", pipeline, sample=rows[NUMERIC], source="applications")
    assert transform.outputs == tuple(NUMERIC)
    np.testing.assert_allclose(
        _view(db, "clean", NUMERIC), pipeline.transform(rows[NUMERIC]), rtol=1e-6, atol=1e-6
    )
    # The other columns pass through, so the view keeps keys, times and labels.
    assert {"customer_id", "ts", "purpose", "label"} <= set(db.sql("SELECT * FROM clean LIMIT 1").columns)
    assert db.transforms().name.tolist() == ["clean"]
    # transform_clean(...) for one row, from any client: plain SQL on both backends.
    (row,) = db.sql("SELECT transform_clean(NULL, 1000.0, 40, 2.5) AS v").v
    expected = pipeline.transform(pd.DataFrame([[np.nan, 1000.0, 40, 2.5]], columns=NUMERIC))[0]
    np.testing.assert_allclose(list(row), expected, rtol=1e-6, atol=1e-6)
    assert db.transform("clean").source == "applications"
    # Registering again replaces the view and function; dropping removes them.
    db.register_transform("clean", pipeline, sample=rows[NUMERIC], source="applications")
    assert len(db.sql("SELECT * FROM clean")) == len(rows)
    db.drop_transform("clean")
    assert db.transforms().empty
    with pytest.raises(IndbError):
        db.sql("SELECT * FROM clean")
    with pytest.raises(IndbError):
        db.sql("SELECT transform_clean(1.0, 2.0, 3, 4.0)")
    db.register_transform("clean", pipeline, sample=rows[NUMERIC], source="applications")
    # Rows inserted later with plain SQL are transformed too: it is a view.
    db.sql(
        "INSERT INTO applications (customer_id, ts, income, debt, age, tenure, purpose, label, loss) "
        "VALUES (1000, TIMESTAMP '2026-03-01 00:00:00', NULL, 1000, 40, 2.5, 'car', 'repaid', 0)"
    )
    new = db.sql("SELECT income, age FROM clean WHERE customer_id = 1000").iloc[0]
    expected = pipeline.transform(pd.DataFrame([[np.nan, 1000, 40, 2.5]], columns=NUMERIC))[0]
    assert new.income == pytest.approx(expected[0]) and new.age == pytest.approx(expected[2])


def test_encoders_one_hot_and_target(db, rows):
    columns = NUMERIC[1:] + ["purpose"]
    encode = ColumnTransformer(
        [("n", StandardScaler(), NUMERIC[1:]), ("s", OneHotEncoder(handle_unknown="ignore"), ["purpose"])]
    ).fit(rows[columns])
    target = ColumnTransformer([("t", TargetEncoder(), ["purpose"])])
    target.fit(rows[["purpose"]], (rows.label == "repaid").astype(int))
    db.write_table("applications", rows)
    encoded = db.register_transform("encoded", encode, sample=rows[columns], source="applications")
    assert encoded.outputs[-1] == "s__purpose_home"
    np.testing.assert_allclose(
        _view(db, "encoded", encoded.outputs), encode.transform(rows[columns]), atol=1e-9
    )
    # debt had no missing values in the sample: a NULL there is an error, not a silent number.
    db.sql(
        "INSERT INTO applications (customer_id, debt, age, tenure, purpose) VALUES (999, NULL, 1, 1, 'car')"
    )
    with pytest.raises(IndbError, match="NULL"):
        db.sql("SELECT * FROM encoded WHERE customer_id = 999")
    db.sql("DELETE FROM applications WHERE customer_id = 999")
    targeted = db.register_transform("targeted", target, sample=rows[["purpose"]], source="applications")
    np.testing.assert_allclose(
        _view(db, "targeted", targeted.outputs), target.transform(rows[["purpose"]]), rtol=1e-6
    )


def test_a_transform_view_is_a_feature_set_source(db, rows):
    pipeline = make_pipeline(SimpleImputer(), StandardScaler()).fit(rows[NUMERIC])
    db.write_table("applications", rows[["customer_id", "ts", *NUMERIC]])
    db.register_transform("clean", pipeline, sample=rows[NUMERIC], source="applications")
    db.create_entity("customer", keys=["customer_id"])
    db.create_feature_set("clean_finance", "customer", source="clean", event_time="ts")
    online = db.online_features(["clean_finance:income", "clean_finance:age"], {"customer_id": 1})
    expected = pipeline.transform(rows[NUMERIC].iloc[[1]])[0]
    assert online.income[0] == pytest.approx(expected[0]) and online.age[0] == pytest.approx(expected[2])


def test_pipelines_without_an_estimator_are_refused_by_register_model_with_the_way_out(db, rows):
    pipeline = make_pipeline(SimpleImputer(), StandardScaler()).fit(rows[NUMERIC])
    with pytest.raises(ModelError, match="register_transform"):
        db.register_model("clean", pipeline, sample=rows[NUMERIC])
    with pytest.raises(ModelError, match="register it with db.register_model"):
        from sklearn.linear_model import LinearRegression

        db.register_transform(
            "model", LinearRegression().fit(rows[NUMERIC[1:]], rows.loss), sample=rows[NUMERIC[1:]]
        )
    assert db.transforms().empty
