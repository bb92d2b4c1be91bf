"""Online lookup and the catalog reads behind every feature store call (issue 17): one entity's
frame has the dtypes pandas gives ``{column: [value]}``; a feature set version is read in one
catalog statement (newest or pinned, features in order, errors naming the near miss)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest

import indb
from indb.feature_store import FeatureStoreError, sets

START = datetime(2024, 1, 1)


@pytest.fixture
def typed(db):
    db.create_entity("account", keys=["account_id"])
    rows = pd.DataFrame(
        {
            "account_id": [1, 1, 2, 3],
            "ts": [START, START + timedelta(hours=1), START, START],
            "amount": [1.5, 2.5, None, 4.0],
            "count": [1, 2, 3, 4],
            "label": ["a", "b", None, "d"],
            "flag": [True, False, True, None],
            "seen": [START, START + timedelta(days=1), START, None],
        }
    )
    db.create_feature_set("acct", "account", source=rows, event_time="ts", statistics=False)
    return db


def _expected(db, features: list[str], key: int) -> pd.DataFrame:
    """What the frame was before issue 17: ``pd.DataFrame({column: [value]})``."""
    columns = [f.split(":")[1] for f in features]
    found = db.backend.rows(
        "SELECT " + ", ".join(f'"{c}"' for c in columns) + ' FROM "fs_acct_latest" WHERE account_id = $k',
        {"k": key},
    )
    values = found[0] if found else (None,) * len(columns)
    return pd.DataFrame({"account_id": [key], **{c: [v] for c, v in zip(columns, values, strict=True)}})


@pytest.mark.parametrize("key", [1, 2, 3, 99])  # latest row, NULL features, NULL time, no entity
def test_one_entity_frame_has_the_dtypes_of_a_dict_of_lists(typed, key):
    features = ["acct:amount", "acct:count", "acct:label", "acct:flag", "acct:seen"]
    got = typed.online_features(features, {"account_id": key})
    pd.testing.assert_frame_equal(got, _expected(typed, features, key))
    # the column labels are not shared between calls: renaming one frame's leaves the next alone
    got.columns.name = "renamed"
    assert typed.online_features(features, {"account_id": key}).columns.name is None


def test_one_entity_keeps_the_callers_values_and_order(typed):
    got = typed.online_features(["acct:count AS n", "acct:amount"], {"account_id": 1})
    assert list(got.columns) == ["account_id", "n", "amount"]
    assert got.iloc[0].tolist() == [1, 2, 2.5]


def test_a_version_is_read_with_its_features_in_order(typed):
    fs = sets.get(typed.backend, "acct")
    assert (fs.version, fs.keys, fs.event_time, fs.table) == (1, ("account_id",), "ts", "fs_acct_v1")
    assert fs.feature_names == ["amount", "count", "label", "flag", "seen"]
    assert fs.time_type == "TIMESTAMP" and fs.key_types == ("BIGINT",)
    # a second version (a column more): the newest by default, the first when pinned
    more = typed.sql("SELECT * FROM fs_acct_v1").drop(columns="_indb_seq").assign(extra=2.0)
    typed.create_feature_set("acct", "account", source=more, event_time="ts", statistics=False)
    assert sets.get(typed.backend, "acct").feature_names[-2:] == ["seen", "extra"]
    assert sets.get(typed.backend, "acct", 1).feature_names == ["amount", "count", "label", "flag", "seen"]
    with pytest.raises(indb.NotFoundError, match="version of feature set 'acct' 3"):
        sets.get(typed.backend, "acct", 3)
    with pytest.raises(indb.NotFoundError, match="feature set 'acc' does not exist; did you mean 'acct'"):
        sets.get(typed.backend, "acc")


def test_time_ties_state_sees_rows_added_with_plain_sql(typed):
    fs = sets.get(typed.backend, "acct")
    # checked at ingestion where the join can use it (ASOF backends): none tie
    assert sets.time_ties_possible(typed.backend, fs) is not typed.backend.asof_join
    typed.sql(
        "INSERT INTO fs_acct_v1 (account_id, ts, amount, count, label, flag, seen) "
        "VALUES (1, TIMESTAMP '2030-01-01', 1.0, 1, 'x', true, NULL)"
    )
    assert sets.time_ties_possible(typed.backend, fs) is True  # not checked yet: may tie


def test_as_dict_gives_the_frames_values_without_a_frame(typed):
    features = ["acct:amount", "acct:label", "acct:seen"]
    one = typed.online_features(features, {"account_id": 1}, as_dict=True)
    assert one == {"account_id": 1, "amount": 2.5, "label": "b", "seen": START + timedelta(days=1)}
    missing = typed.online_features(features, {"account_id": 99}, as_dict=True)
    assert missing == {"account_id": 99, "amount": None, "label": None, "seen": None}
    many = typed.online_features(features, [{"account_id": 3}, {"account_id": 1}], as_dict=True)
    assert [m["account_id"] for m in many] == [3, 1] and many[1]["amount"] == 2.5
    assert many[0]["label"] == "d"
    with pytest.raises(FeatureStoreError, match="as_dict must be True or False"):
        typed.online_features(features, {"account_id": 1}, as_dict="yes")


def test_a_version_with_fewer_columns_replaces_the_views(typed):
    """PostgreSQL cannot drop a column from a view it replaces: the views are made again."""
    fewer = typed.sql("SELECT account_id, ts, amount FROM fs_acct_v1")
    typed.create_feature_set("acct", "account", source=fewer, event_time="ts", statistics=False)
    assert list(typed.sql("SELECT * FROM fs_acct").columns) == ["account_id", "ts", "amount"]
    assert list(typed.sql("SELECT * FROM fs_acct_latest").columns)[:3] == ["account_id", "ts", "amount"]
    assert typed.online_features(["acct:amount"], {"account_id": 1}).amount.tolist() == [2.5]
