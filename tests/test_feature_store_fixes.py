"""Feature store regressions (issues 10.2, 11.15, 11.16): user queries are one read-only
SELECT, types and names are checked, duplicate feature requests, materialized rows, and the
error for an entity without stored features. Both backends."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

import indb
from indb.errors import InvalidNameError, QueryError
from indb.feature_store import FeatureStoreError

START = datetime(2024, 1, 1)


def customer_rows(rows: int = 200, customers: int = 20, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "customer_id": rng.integers(0, customers, rows).astype(np.int64),
            "ts": [START + timedelta(hours=int(h)) for h in rng.integers(0, 300, rows)],
            "income": rng.normal(50_000, 10_000, rows).round(2),
            "debt": rng.gamma(2.0, 5_000, rows).round(2),
        }
    )


@pytest.fixture
def store(db):
    db.create_entity("customer", keys=["customer_id"])
    db.create_feature_set("finance", "customer", source=customer_rows(), event_time="ts")
    return db


def _spine(n: int = 30, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "customer_id": rng.integers(0, 25, n).astype(np.int64),
            "event_time": [START + timedelta(hours=int(h)) for h in rng.integers(0, 350, n)],
        }
    )


def _reference(rows: pd.DataFrame, spine: pd.DataFrame, column: str) -> list:
    out = []
    for row in spine.itertuples(index=False):
        seen = rows[(rows.customer_id == row.customer_id) & (rows.ts <= row.event_time)]
        out.append(
            None
            if seen.empty
            else seen.assign(_o=range(len(seen))).sort_values(["ts", "_o"])[column].iloc[-1]
        )
    return out


# -- 11.15 ---------------------------------------------------------------------------------------
def test_a_feature_named_and_starred_comes_out_once(store):
    spine = _spine()
    ts = store.training_set(spine, ["finance:income", "finance:*"])
    assert list(ts.frame.columns) == ["customer_id", "event_time", "income", "debt"]
    expected = _reference(customer_rows(), spine, "income")
    got = [None if pd.isna(v) else v for v in ts.frame.income]
    assert got == expected
    # an alias is another column and stays
    aliased = store.training_set(spine, ["finance:income AS inc", "finance:*"]).frame
    assert list(aliased.columns) == ["customer_id", "event_time", "inc", "income", "debt"]


def test_materialized_training_set_has_its_frame(store):
    spine = _spine()
    ts = store.training_set(spine, ["finance:*"], materialize=True, name="loans")
    assert ts.frame is not None
    assert len(ts.frame) == len(spine) and list(ts.frame.columns) == list(ts.columns)
    assert ts.frame.customer_id.tolist() == spine.customer_id.tolist()
    expected = _reference(customer_rows(), spine, "debt")
    assert [None if pd.isna(v) else v for v in ts.frame.debt] == expected


# -- 11.16 ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("runtime", ["sql", "onnx"])
def test_missing_entity_says_which_one(store, runtime):
    if runtime == "onnx" and not store.backend.runs_onnx:
        pytest.skip("no onnxruntime in this database")
    from sklearn.linear_model import LogisticRegression

    rows = customer_rows()
    model = LogisticRegression(max_iter=500).fit(rows[["income", "debt"]], rows.income > 50_000)
    store.register_model("risk", model, sample=rows[["income", "debt"]])
    store.deploy("risk", table="risk_requests", runtime=runtime, features_from="finance")
    store.sql("INSERT INTO risk_requests (customer_id) VALUES (3)")
    with pytest.raises(indb.ScoringError, match="no stored features for customer_id=99999"):
        store.sql("INSERT INTO risk_requests (customer_id) VALUES (3), (99999)")
    assert store.sql("SELECT count(*) AS n FROM risk_requests").n[0] == 1
    assert store.sql("SELECT count(*) AS n FROM risk_requests_predictions").n[0] == 1


# -- 10.2 ----------------------------------------------------------------------------------------
INJECTIONS = [
    "SELECT * FROM fs_finance_v1) AS x; DROP TABLE fs_finance_v1; SELECT * FROM (SELECT 1",
    "SELECT * FROM fs_finance_v1; DROP TABLE fs_finance_v1",
    "DELETE FROM fs_finance_v1",
]


@pytest.mark.parametrize("text", INJECTIONS)
def test_query_sources_cannot_append_statements(store, text):
    before = store.sql("SELECT count(*) AS n FROM fs_finance_v1").n[0]
    with pytest.raises(QueryError):
        store.ingest("finance", text)
    with pytest.raises(QueryError):
        store.training_set(text, ["finance:income"], event_time="ts")
    with pytest.raises(QueryError):
        store.create_feature_set("other", "customer", source=text, event_time="ts")
    assert store.sql("SELECT count(*) AS n FROM fs_finance_v1").n[0] == before
    assert store.sql("SELECT count(*) AS n FROM indb.feature_sets").n[0] == 1


def test_query_sources_still_work(store):
    spine = _spine()
    store.write_table("spine_rows", spine, replace=True)
    ts = store.training_set(
        "SELECT customer_id, event_time FROM spine_rows ORDER BY event_time", ["finance:income"]
    )
    ordered = spine.sort_values("event_time", kind="stable").reset_index(drop=True)
    assert ts.frame.customer_id.tolist() == ordered.customer_id.tolist()
    assert [None if pd.isna(v) else v for v in ts.frame.income] == _reference(
        customer_rows(), ordered, "income"
    )


@pytest.mark.parametrize(
    "bad", ["BIGINT DEFAULT CURRENT_USER UNIQUE", "BIGINT NOT NULL", "INTEGER PRIMARY KEY"]
)
def test_sql_type_takes_type_names_only(store, bad):
    from indb.identifiers import sql_type

    with pytest.raises(InvalidNameError):
        sql_type(bad)
    with pytest.raises(InvalidNameError):
        store.create_feature_set(
            "typed", "customer", columns={"customer_id": "BIGINT", "ts": "TIMESTAMP", "x": bad}
        )
    for good in ("BIGINT", "DOUBLE PRECISION", "DECIMAL(10, 2)", "TIMESTAMP WITH TIME ZONE", "VARCHAR(20)"):
        assert sql_type(good).text == good


def test_indb_feature_and_key_names_are_refused(db):
    with pytest.raises(FeatureStoreError, match="indb_"):
        db.create_entity("thing", keys=["indb_id"])
    db.create_entity("customer", keys=["customer_id"])
    rows = customer_rows().assign(indb_guarded=1.0)
    with pytest.raises(FeatureStoreError, match="indb_guarded"):
        db.create_feature_set("finance", "customer", source=rows, event_time="ts")
    with pytest.raises(FeatureStoreError, match="indb_"):
        db.create_feature_set(
            "typed", "customer", columns={"customer_id": "BIGINT", "ts": "TIMESTAMP", "INDB_let_1": "DOUBLE"}
        )
    assert db.sql("SELECT count(*) AS n FROM indb.feature_sets").n[0] == 0
    db.create_feature_set("finance", "customer", source=customer_rows(), event_time="ts")
    spine = _spine()
    with pytest.raises(FeatureStoreError, match="indb_"):
        db.training_set(spine, ["finance:income AS indb_let_1"])


def test_a_spine_that_carries_its_own_features_is_a_training_set(db):
    """features=[]: requests joined with their labels are the training set; the cutoff and the
    stored definition work as for any other (rebuild takes the rows up to the new cutoff)."""
    from datetime import datetime

    frame = pd.DataFrame(
        {
            "id": range(10),
            "event_time": pd.date_range("2024-01-01", periods=10, freq="D"),
            "x": [float(i) for i in range(10)],
            "label": ["a", "b"] * 5,
        }
    )
    db.write_table("labeled", frame)
    ts = db.training_set("SELECT * FROM labeled", [], label="label", materialize=True, name="spine_only")
    got = ts.df().sort_values("id").reset_index(drop=True)
    assert got[["id", "x", "label"]].to_dict("records") == frame[["id", "x", "label"]].to_dict("records")
    again = db.rebuild_training_set("spine_only", cutoff=datetime(2024, 1, 5))
    assert sorted(again.df().id) == [0, 1, 2, 3, 4]
    with pytest.raises(indb.IndbError, match="features must be a list"):
        db.training_set("SELECT * FROM labeled", "x", label="label")
