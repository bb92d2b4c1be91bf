"""Feature store: catalog, versions, online lookup, statistics, lineage, scoring from stored
features, and bad input that leaves the database as it was."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import indb
from indb.feature_store import FeatureStoreError

START = datetime(2024, 1, 1)


def customer_rows(rows: int = 400, customers: int = 50, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "customer_id": rng.integers(0, customers, rows).astype(np.int64),
            "ts": [START + timedelta(hours=int(h)) for h in rng.integers(0, 500, rows)],
            "income": rng.normal(50_000, 10_000, rows).round(2),
            "debt": rng.gamma(2.0, 5_000, rows).round(2),
            "segment": rng.choice(["a", "b", "c"], rows),
        }
    )


@pytest.fixture
def store(db):
    db.create_entity("customer", keys=["customer_id"], description="a bank customer")
    db.create_feature_set(
        "finance", "customer", source=customer_rows(), event_time="ts", descriptions={"income": "yearly"}
    )
    return db


def brute_latest(frame: pd.DataFrame) -> pd.DataFrame:
    """Latest row per customer, ties broken by position (the last loaded wins)."""
    ordered = frame.assign(_order=range(len(frame))).sort_values(["customer_id", "ts", "_order"])
    return ordered.groupby("customer_id").tail(1).set_index("customer_id")


def _catalog_counts(db) -> tuple:
    return tuple(
        int(db.sql(f"SELECT count(*) AS n FROM indb.{t}").n[0])
        for t in ("entities", "feature_sets", "features", "training_sets", "feature_statistics")
    )


def test_catalog_is_queryable_in_sql(store):
    sets = store.sql("SELECT name, version, entity, event_time, table_name FROM indb.feature_sets")
    assert sets.values.tolist() == [["finance", 1, "customer", "ts", "fs_finance_v1"]]
    features = store.sql("SELECT name, data_type, description FROM indb.features ORDER BY position")
    assert features.name.tolist() == ["income", "debt", "segment"]
    assert features.data_type.tolist() == ["DOUBLE", "DOUBLE", "VARCHAR"]
    assert features.description.tolist()[0] == "yearly"
    assert store.sql("SELECT count(*) AS n FROM fs_finance").n[0] == 400
    assert store.feature_sets().name.tolist() == ["finance"]


def test_schema_change_makes_a_new_version_old_stays_readable(store):
    assert list(store.online_features(["finance:*"], {"customer_id": 1}).columns)[-1] == "segment"
    same = store.create_feature_set("finance", "customer", source=customer_rows(seed=1), event_time="ts")
    assert same.version == 1  # unchanged schema: same version
    wider = customer_rows(seed=2).assign(score=1.5)
    v2 = store.create_feature_set("finance", "customer", source=wider, event_time="ts")
    assert v2.version == 2 and v2.feature_names == ["income", "debt", "segment", "score"]
    assert store.sql("SELECT count(*) AS n FROM fs_finance_v1").n[0] == 400
    assert "score" in store.sql("SELECT * FROM fs_finance LIMIT 1").columns  # the view follows
    assert store.online_features(["finance:*"], {"customer_id": 1}).score[0] == 1.5
    assert store.online_features(["finance@1:*"], {"customer_id": 1}).columns[-1] == "segment"
    old = store.training_set(
        pd.DataFrame({"customer_id": [1], "event_time": [START + timedelta(days=30)]}), ["finance@1:*"]
    ).frame
    assert list(old.columns) == ["customer_id", "event_time", "income", "debt", "segment"]


def test_ingest_from_arrow_and_query_and_columns_schema(db):
    db.create_entity("customer", keys=["customer_id"])
    fs = db.create_feature_set(
        "finance",
        "customer",
        columns={"customer_id": "BIGINT", "ts": "TIMESTAMP", "income": "DOUBLE", "segment": "VARCHAR"},
        event_time="ts",
    )
    assert fs.version == 1 and db.sql("SELECT count(*) AS n FROM fs_finance_v1").n[0] == 0
    rows = customer_rows(100).drop(columns="debt")
    assert db.ingest("finance", pa.Table.from_pandas(rows, preserve_index=False)) == 100
    db.write_table("raw", rows, replace=True)
    assert db.ingest("finance", "SELECT customer_id, ts, income, segment FROM raw WHERE income > 0") == 100
    assert db.ingest("finance", "raw") == 100
    assert db.sql("SELECT count(*) AS n FROM fs_finance_v1").n[0] == 300


def test_online_lookup_matches_latest_rows(store):
    first = customer_rows()
    later = customer_rows(200, seed=3)
    store.ingest("finance", later)
    everything = pd.concat([first, later], ignore_index=True)
    expected = brute_latest(everything)
    # the SQL view analysts read
    view = store.sql("SELECT customer_id, income, segment FROM fs_finance_latest ORDER BY customer_id")
    assert view.customer_id.tolist() == sorted(expected.index)
    assert view.income.tolist() == expected.sort_index().income.tolist()
    # Python: one entity, several, unknown ones get NULLs, in the order given
    one = store.online_features(["finance:income", "finance:segment"], {"customer_id": 7})
    assert one.income[0] == expected.loc[7, "income"] and one.segment[0] == expected.loc[7, "segment"]
    many = store.online_features(
        ["finance:*"], [{"customer_id": 3}, {"customer_id": 999}, {"customer_id": 1}]
    )
    assert many.customer_id.tolist() == [3, 999, 1]
    assert many.income[0] == expected.loc[3, "income"] and pd.isna(many.income[1])
    # rows inserted with plain SQL keep it current too
    store.sql(
        "INSERT INTO fs_finance_v1 (customer_id, ts, income, debt, segment) "
        "VALUES (7, TIMESTAMP '2030-01-01', 1.0, 2.0, 'z'), (7, TIMESTAMP '2029-01-01', 9.0, 9.0, 'y')"
    )
    assert store.online_features(["finance:income"], {"customer_id": 7}).income[0] == 1.0
    # a rebuilt latest table equals the incrementally kept one
    before = store.sql("SELECT * FROM fs_finance_latest ORDER BY customer_id")
    assert store.materialize_online("finance") == len(before)
    after = store.sql("SELECT * FROM fs_finance_latest ORDER BY customer_id")
    pd.testing.assert_frame_equal(before, after)


def test_statistics_match_numpy(store):
    stats = store.sql(
        "SELECT feature, kind, count, nulls, distinct_count, min, max, mean, stddev, quantiles, histogram, "
        "top_values FROM indb.feature_statistics WHERE scope = 'feature_set' AND name = 'finance' "
        "AND version = 1 ORDER BY feature"
    ).set_index("feature")
    rows = customer_rows()
    income = stats.loc["income"]
    assert income.kind == "numeric" and income["count"] == 400 and income.nulls == 0
    assert income["min"] == rows.income.min() and income["max"] == rows.income.max()
    assert income["mean"] == pytest.approx(rows.income.mean())
    assert income["stddev"] == pytest.approx(rows.income.std())
    import json

    quantiles = json.loads(income.quantiles)
    assert quantiles["0.5"] == pytest.approx(rows.income.quantile(0.5))
    histogram = json.loads(income.histogram)
    assert sum(histogram["counts"]) == 400
    expected, _ = np.histogram(rows.income, bins=histogram["edges"])
    assert histogram["counts"] == expected.tolist()
    segment = stats.loc["segment"]
    assert segment.kind == "categorical" and segment.distinct_count == 3
    top = json.loads(segment.top_values)
    counts = rows.segment.value_counts()
    assert {t["value"]: t["count"] for t in top} == counts.to_dict()


def test_model_lineage_is_queryable(store):
    spine = customer_rows(300, seed=4)[["customer_id", "ts"]].rename(columns={"ts": "event_time"})
    spine["label"] = np.arange(len(spine)) % 2
    ts = store.training_set(
        spine, ["finance:income", "finance:debt"], label="label", materialize=True, name="loans"
    )
    frame = ts.df().dropna()
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(frame[["income", "debt"]], frame.label)
    mv = store.register_model("risk", model, sample=frame[["income", "debt"]], training_set=ts)
    lineage = store.sql(
        "SELECT model, model_version, training_set, training_set_version, feature_set, "
        "feature_set_version FROM indb.model_lineage"
    )
    assert lineage.values.tolist() == [["risk", 1, "loans", 1, "finance", 1]]
    assert mv.recipe["training_set"] == {"name": "loans", "version": 1}
    rebuilt = store.rebuild_training_set("loans", cutoff=START + timedelta(hours=250))
    assert rebuilt.version == 2 and 0 < rebuilt.row_count < ts.row_count


@pytest.mark.parametrize("runtime", ["sql", "onnx"])
def test_deploy_scores_from_stored_features(store, runtime):
    if runtime == "onnx" and not store.backend.runs_onnx:
        pytest.skip("no onnxruntime in this database")
    from sklearn.linear_model import LogisticRegression

    rows = customer_rows()
    rows["channel"] = np.arange(len(rows)) % 3 * 1.0
    model = LogisticRegression(max_iter=500).fit(rows[["income", "debt", "channel"]], rows.income > 50_000)
    store.register_model("risk", model, sample=rows[["income", "debt", "channel"]])
    deployment = store.deploy("risk", table="risk_requests", runtime=runtime, features_from="finance")
    assert deployment.runtime == runtime
    assert list(store.sql("SELECT * FROM risk_requests").columns) == [
        "id",
        "customer_id",
        "channel",
        "created_at",
    ]
    store.sql("INSERT INTO risk_requests (customer_id, channel) VALUES (3, 1.0), (5, 2.0), (3, 0.0)")
    got = store.sql(
        "SELECT id, prediction, probability_1, income, debt FROM risk_requests_predictions ORDER BY id"
    )
    latest = brute_latest(rows)
    for (customer, channel), (_, row) in zip([(3, 1.0), (5, 2.0), (3, 0.0)], got.iterrows(), strict=True):
        assert row.income == latest.loc[customer, "income"] and row.debt == latest.loc[customer, "debt"]
        x = pd.DataFrame([[row.income, row.debt, channel]], columns=["income", "debt", "channel"])
        assert row.probability_1 == pytest.approx(model.predict_proba(x)[0, 1], abs=1e-6)
    assert "income" in store.sql("SELECT * FROM risk_requests_scored").columns
    # an entity without stored features cannot be scored: the insert is refused whole
    with pytest.raises(indb.IndbError):
        store.sql("INSERT INTO risk_requests (customer_id, channel) VALUES (3, 1.0), (12345, 1.0)")
    assert store.sql("SELECT count(*) AS n FROM risk_requests").n[0] == 3


def test_dry_run_shows_the_sql(store):
    spine = pd.DataFrame({"customer_id": [1, 2], "event_time": [START, START]})
    ts = store.training_set(spine, ["finance:income"], dry_run=True)
    assert ("ASOF LEFT JOIN" in ts.sql) == store.backend.asof_join
    assert ("LEFT JOIN LATERAL" in ts.sql) != store.backend.asof_join
    with pytest.raises(FeatureStoreError, match="dry run"):
        ts.df()


HOSTILE = ['x"; DROP TABLE indb.models; --', "Robert'); DROP TABLE fs_finance_v1;--", "a b", "", "1abc"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused(store, name):
    before = _catalog_counts(store)
    spine = pd.DataFrame({"customer_id": [1], "event_time": [START]})
    with pytest.raises(indb.InvalidNameError):
        store.create_entity(name, keys=["customer_id"])
    with pytest.raises(indb.InvalidNameError):
        store.create_entity("other", keys=[name])
    with pytest.raises(indb.InvalidNameError):
        store.create_feature_set(name, "customer", source=customer_rows(), event_time="ts")
    with pytest.raises(indb.InvalidNameError):
        store.create_feature_set("f2", "customer", source=customer_rows(), event_time=name)
    with pytest.raises((indb.InvalidNameError, FeatureStoreError)):
        store.training_set(spine, [f"finance:{name}"])
    with pytest.raises(indb.InvalidNameError):
        store.training_set(spine, ["finance:income"], event_time=name)
    with pytest.raises(indb.InvalidNameError):
        store.training_set(spine, ["finance:income"], materialize=True, name=name)
    assert _catalog_counts(store) == before
    assert store.sql("SELECT count(*) AS n FROM fs_finance_v1").n[0] == 400


def test_unknown_names_suggest_the_near_miss(store):
    spine = pd.DataFrame({"customer_id": [1], "event_time": [START]})
    with pytest.raises(
        indb.NotFoundError, match="feature set 'finanse' does not exist; did you mean 'finance'"
    ):
        store.training_set(spine, ["finanse:income"])
    with pytest.raises(indb.NotFoundError, match="did you mean 'income'"):
        store.training_set(spine, ["finance:incme"])
    with pytest.raises(indb.NotFoundError, match="entity 'custmer'.*did you mean 'customer'"):
        store.create_feature_set("x", "custmer", source=customer_rows(), event_time="ts")
    with pytest.raises(indb.NotFoundError, match="version of feature set 'finance' 4"):
        store.training_set(spine, ["finance@4:income"])
    with pytest.raises(indb.NotFoundError, match="training set 'nope'"):
        store.rebuild_training_set("nope")


def test_bad_rows_are_refused_and_nothing_is_loaded(store):
    before = _catalog_counts(store)
    rows = customer_rows(10)
    with pytest.raises(FeatureStoreError, match=r"feature 'income' is VARCHAR; expected DOUBLE"):
        store.ingest("finance", rows.assign(income=rows.income.astype(str)))
    with pytest.raises(FeatureStoreError, match=r"no column 'debt'"):
        store.ingest("finance", rows.drop(columns="debt"))
    with pytest.raises(FeatureStoreError, match=r"columns \['extra'\] are not in feature set"):
        store.ingest("finance", rows.assign(extra=1))
    with pytest.raises(FeatureStoreError, match="NULL key or event time"):
        store.ingest("finance", rows.assign(ts=[None] * 9 + [START]))
    with pytest.raises(FeatureStoreError, match="must be a DataFrame"):
        store.ingest("finance", 42)
    with pytest.raises(indb.DatabaseError):
        store.ingest("finance", "SELECT * FROM no_such_table_here WHERE 1 = 1")
    with pytest.raises(FeatureStoreError, match="'ts' is VARCHAR; a time column"):
        store.create_feature_set("text_time", "customer", source=rows.assign(ts="yesterday"), event_time="ts")
    with pytest.raises(FeatureStoreError, match="ttl must be"):
        store.create_feature_set("t2", "customer", source=rows, event_time="ts", ttl="1 day")
    assert _catalog_counts(store) == before
    assert store.sql("SELECT count(*) AS n FROM fs_finance_v1").n[0] == 400
    assert store.sql("SELECT count(*) AS n FROM fs_finance_latest").n[0] == len(brute_latest(customer_rows()))


def test_bad_spines_are_refused(store):
    spine = pd.DataFrame({"customer_id": [1], "event_time": [START], "income": [1.0]})
    with pytest.raises(FeatureStoreError, match="output column 'income' appears twice.*AS <name>"):
        store.training_set(spine, ["finance:income"])
    with pytest.raises(FeatureStoreError, match="no key column 'customer_id'"):
        store.training_set(spine.drop(columns="customer_id"), ["finance:debt"])
    with pytest.raises(FeatureStoreError, match="no time column 'when'"):
        store.training_set(spine, ["finance:debt"], event_time="when")
    with pytest.raises(FeatureStoreError, match="features must be a list"):
        store.training_set(spine, "finance:debt")
    with pytest.raises(FeatureStoreError, match="is not 'set:feature'"):
        store.training_set(spine, ["finance.debt"])
    assert store.sql("SELECT count(*) AS n FROM indb.training_sets").n[0] == 0


def test_bad_features_from_is_refused(store, logistic, loans):
    from tests.conftest import NUMERIC

    store.register_model("loans", logistic, sample=loans[NUMERIC])
    misc = customer_rows(20).rename(columns={"income": "zzz"}).drop(columns=["debt", "segment"])
    store.create_feature_set("misc", "customer", source=misc, event_time="ts")
    with pytest.raises(indb.DeploymentError, match="'misc' has none of the model's inputs"):
        store.deploy("loans", table="req", features_from=["finance", "misc"])
    with pytest.raises(indb.DeploymentError, match="features_from must be"):
        store.deploy("loans", table="req", features_from=42)
    with pytest.raises(indb.DeploymentError, match="bulk mode only|not available on duckdb"):
        store.deploy("loans", table="req", features_from="finance", mode="row")
    with pytest.raises(indb.NotFoundError, match="feature set 'nope'"):
        store.deploy("loans", table="req", features_from="nope")
    assert store.deployments().empty and store.backend.table_columns("req") is None
