"""Feast's historical-retrieval cases (issue 11.13) on both backends, each against a
brute-force reference: times of mixed types and time zones (tz-naive means UTC, whatever the
session's TimeZone), nanosecond pandas spines, Feast's inputs (ttl 0, STRUCT columns left out,
mixed naive/aware spines, dict columns), NULL created times, and both created-time rules."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from indb.feature_store import FeatureStoreError

START = datetime(2024, 3, 9, 12)  # naive: means UTC
KEYS = 6


def utc(value):
    """A time as aware UTC: naive values are UTC."""
    if value is None or (not isinstance(value, datetime) and pd.isna(value)):
        return None
    value = pd.Timestamp(value).to_pydatetime()
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def reference(rows, spine, *, ttl=None, created_filter=True):
    """Per spine (key, time): the value of the latest row by (event, created, order) with
    event <= time (and created <= time when ``created_filter``), within ttl of the time; a NULL
    created time counts as created at the event time."""
    out = []
    for key, t in spine:
        t = utc(t)
        best = None
        if t is not None:
            for order, (k, event, created, value) in enumerate(rows):
                event = utc(event)
                created = utc(created) or event
                if k != key or event > t or (created_filter and created > t):
                    continue
                candidate = (event, created, order, value)
                if best is None or candidate[:3] > best[:3]:
                    best = candidate
        if best is not None and ttl is not None and best[0] < t - ttl:
            best = None
        out.append(None if best is None else best[3])
    return out


def same(got, expected) -> list:
    missing = lambda v: v is None or (isinstance(v, float) and math.isnan(v))  # noqa: E731
    return [
        (i, g, e)
        for i, (g, e) in enumerate(zip(got, expected, strict=True))
        if not ((missing(g) and missing(e)) or (not missing(g) and not missing(e) and g == e))
    ]


def feature_rows(seed: int, n: int = 120, *, created: bool = True):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        event = START + timedelta(minutes=int(rng.integers(0, 48 * 60)))
        made = event + timedelta(minutes=int(rng.integers(0, 16 * 60))) if created else None
        rows.append((int(rng.integers(0, KEYS)), event, made, float(i)))
    return rows


def spine_rows(seed: int, n: int = 150):
    rng = np.random.default_rng(seed + 100)
    return [
        (int(rng.integers(0, KEYS + 1)), START + timedelta(minutes=int(rng.integers(-60, 60 * 60))))
        for _ in range(n)
    ]


def set_timezone(db, zone: str) -> None:
    db.sql(f"SET TimeZone = '{zone}'")


@pytest.fixture
def customers(db):
    db.create_entity("customer", keys=["cid"])
    set_timezone(db, "America/Los_Angeles")  # naive times must not depend on it
    return db


# -- (a) a created time of another time type than the event time ------------------------------
@pytest.mark.parametrize("aware", ["event", "created"])
def test_created_time_of_another_time_type_is_cast(customers, aware):
    rows = feature_rows(1)
    frame = pd.DataFrame(rows, columns=["cid", "ts", "created", "value"])
    column = "ts" if aware == "event" else "created"
    frame[column] = pd.to_datetime(frame[column]).dt.tz_localize("UTC").dt.tz_convert("Europe/Paris")
    fs = customers.create_feature_set(
        "spend", "customer", source=frame, event_time="ts", created_time="created"
    )
    assert fs.created_time == "created"
    spine = spine_rows(1)
    got = customers.training_set(pd.DataFrame(spine, columns=["cid", "event_time"]), ["spend:value"])
    wrong = same(got.frame.value.tolist(), reference(rows, spine))
    assert not wrong, f"{len(wrong)} rows differ, e.g. {wrong[:3]}"


# -- (c) naive feature times against an aware spine (and the reverse) -------------------------
@pytest.mark.parametrize("spine_zone", ["Asia/Tokyo", None], ids=["aware_spine", "naive_spine"])
@pytest.mark.parametrize("feature_zone", [None, "America/New_York"], ids=["naive_rows", "aware_rows"])
def test_naive_times_are_utc_whatever_the_session_timezone(customers, spine_zone, feature_zone):
    rows = feature_rows(2, created=False)
    frame = pd.DataFrame([(k, e, v) for k, e, _, v in rows], columns=["cid", "ts", "value"])
    if feature_zone:
        frame["ts"] = frame.ts.dt.tz_localize("UTC").dt.tz_convert(feature_zone)
    customers.create_feature_set("spend", "customer", source=frame, event_time="ts", ttl=timedelta(hours=6))
    spine = spine_rows(2)
    spine_frame = pd.DataFrame(spine, columns=["cid", "event_time"])
    if spine_zone:
        spine_frame["event_time"] = spine_frame.event_time.dt.tz_localize("UTC").dt.tz_convert(spine_zone)
    expected = reference(rows, spine, ttl=timedelta(hours=6))
    for zone in ("America/Los_Angeles", "UTC", "Asia/Kolkata"):
        set_timezone(customers, zone)
        got = customers.training_set(spine_frame, ["spend:value"]).frame
        wrong = same(got.value.tolist(), expected)
        assert not wrong, f"TimeZone {zone}: {len(wrong)} rows differ, e.g. {wrong[:3]}"
    # a cut-off given naive is UTC too
    cutoff = START + timedelta(hours=20)
    cut = customers.training_set(spine_frame, ["spend:value"], cutoff=cutoff).frame
    assert len(cut) == sum(t <= cutoff for _, t in spine)


# -- (d) pandas datetime64[ns] -------------------------------------------------------------------
def test_nanosecond_pandas_times_are_accepted(customers):
    rows = feature_rows(3)
    frame = pd.DataFrame(rows, columns=["cid", "ts", "created", "value"])
    frame["ts"] = frame.ts.astype("datetime64[ns]")
    frame["created"] = frame.created.astype("datetime64[ns]")
    customers.create_feature_set("spend", "customer", source=frame, event_time="ts", created_time="created")
    customers.ingest("spend", frame.iloc[:10])  # the same rows again, later: they win ties
    spine = spine_rows(3)
    spine_frame = pd.DataFrame(spine, columns=["cid", "event_time"])
    spine_frame["event_time"] = spine_frame.event_time.astype("datetime64[ns]")
    got = customers.training_set(spine_frame, ["spend:value"]).frame
    wrong = same(got.value.tolist(), reference(rows + rows[:10], spine))
    assert not wrong, f"{len(wrong)} rows differ, e.g. {wrong[:3]}"


# -- (e) Feast's inputs --------------------------------------------------------------------------
def test_ttl_zero_means_no_ttl(customers):
    rows = feature_rows(4, created=False)
    frame = pd.DataFrame([(k, e, v) for k, e, _, v in rows], columns=["cid", "ts", "value"])
    fs = customers.create_feature_set("spend", "customer", source=frame, event_time="ts", ttl=timedelta(0))
    assert fs.ttl_seconds is None
    spine = spine_rows(4)
    frame_spine = pd.DataFrame(spine, columns=["cid", "event_time"])
    got = customers.training_set(frame_spine, ["spend:value"], ttl=0).frame
    assert not same(got.value.tolist(), reference(rows, spine))
    with pytest.raises(FeatureStoreError, match="ttl must be"):
        customers.training_set(frame_spine, ["spend:value"], ttl=timedelta(seconds=-1))


def test_struct_and_list_columns_left_out_by_features(customers):
    rows = feature_rows(5, created=False)
    frame = pd.DataFrame([(k, e, v) for k, e, _, v in rows], columns=["cid", "ts", "value"])
    frame["details"] = [{"a": i, "b": "x"} for i in range(len(frame))]
    frame["tags"] = [[i, i + 1] for i in range(len(frame))]
    customers.create_feature_set("spend", "customer", source=frame, event_time="ts", features=["value"])
    customers.ingest("spend", frame[["cid", "ts", "value"]])
    spine = spine_rows(5)
    got = customers.training_set(pd.DataFrame(spine, columns=["cid", "event_time"]), ["spend:value"]).frame
    assert not same(got.value.tolist(), reference(rows + rows, spine))


def test_struct_and_list_features_are_refused_with_the_supported_types(customers):
    frame = pd.DataFrame({"cid": [1], "ts": [START], "details": [{"a": 1}], "value": [1.0]})
    with pytest.raises(
        FeatureStoreError, match=r"'details'.*numbers, booleans, strings or times.*STRUCT or LIST"
    ):
        customers.create_feature_set("spend", "customer", source=frame, event_time="ts")
    assert customers.sql("SELECT count(*) AS n FROM indb.feature_sets").n[0] == 0


def test_spine_mixing_naive_and_aware_times(customers):
    rows = feature_rows(6, created=False)
    frame = pd.DataFrame([(k, e, v) for k, e, _, v in rows], columns=["cid", "ts", "value"])
    customers.create_feature_set("spend", "customer", source=frame, event_time="ts")
    spine = spine_rows(6)
    mixed = [
        (k, t if i % 2 else t.replace(tzinfo=UTC).astimezone(timezone(timedelta(hours=-5))))
        for i, (k, t) in enumerate(spine)
    ]
    spine_frame = pd.DataFrame(mixed, columns=["cid", "event_time"])
    assert spine_frame.event_time.dtype == object
    got = customers.training_set(spine_frame, ["spend:value"]).frame
    assert not same(got.value.tolist(), reference(rows, spine))


def test_dict_columns_in_a_spine_pass_through(customers):
    rows = feature_rows(7, created=False)
    frame = pd.DataFrame([(k, e, v) for k, e, _, v in rows], columns=["cid", "ts", "value"])
    customers.create_feature_set("spend", "customer", source=frame, event_time="ts")
    spine = spine_rows(7, 20)
    spine_frame = pd.DataFrame(spine, columns=["cid", "event_time"])
    spine_frame["context"] = [{"page": i} for i in range(len(spine))]
    got = customers.training_set(spine_frame, ["spend:value"]).frame
    assert list(got.columns) == ["cid", "event_time", "context", "value"]
    assert not same(got.value.tolist(), reference(rows, spine))
    assert len(got.context) == len(spine) and "page" in str(got.context.iloc[3])


def test_null_created_time_counts_as_created_at_the_event_time(customers):
    rows = feature_rows(8)
    rows = [(k, e, None if i % 3 == 0 else c, v) for i, (k, e, c, v) in enumerate(rows)]
    frame = pd.DataFrame(rows, columns=["cid", "ts", "created", "value"])
    customers.create_feature_set("spend", "customer", source=frame, event_time="ts", created_time="created")
    spine = spine_rows(8)
    for rule in (True, False):
        got = customers.training_set(
            pd.DataFrame(spine, columns=["cid", "event_time"]), ["spend:value"], filter_by_created_time=rule
        ).frame
        wrong = same(got.value.tolist(), reference(rows, spine, created_filter=rule))
        assert not wrong, f"filter={rule}: {len(wrong)} rows differ, e.g. {wrong[:3]}"


# -- (f) both created-time rules -----------------------------------------------------------------
@pytest.mark.parametrize("ttl", [None, timedelta(hours=5)], ids=["no_ttl", "ttl"])
def test_both_created_time_rules_match_the_reference(customers, ttl):
    rows = feature_rows(9, 200)
    # a backfill: the same event times re-stated, created much later
    rows += [(k, e, c + timedelta(days=3), v + 1000) for k, e, c, v in rows[:40]]
    frame = pd.DataFrame(rows, columns=["cid", "ts", "created", "value"])
    customers.create_feature_set("spend", "customer", source=frame, event_time="ts", created_time="created")
    spine = spine_rows(9, 300)
    spine_frame = pd.DataFrame(spine, columns=["cid", "event_time"])
    known = customers.training_set(spine_frame, ["spend:value"], ttl=ttl).frame
    latest = customers.training_set(spine_frame, ["spend:value"], ttl=ttl, filter_by_created_time=False)
    expected_known = reference(rows, spine, ttl=ttl)
    expected_latest = reference(rows, spine, ttl=ttl, created_filter=False)
    assert expected_known != expected_latest  # the rules differ on this data
    assert not same(known.value.tolist(), expected_known)
    assert not same(latest.frame.value.tolist(), expected_latest)
    stored = customers.training_set(
        spine_frame, ["spend:value"], filter_by_created_time=False, materialize=True, name="feastlike"
    )
    assert not same(stored.frame.value.tolist(), reference(rows, spine, created_filter=False))
    rebuilt = customers.rebuild_training_set("feastlike")
    assert not same(rebuilt.frame.value.tolist(), reference(rows, spine, created_filter=False))


# -- (e) entity-less feature sets (Feast's entity-less feature views) ---------------------------
def test_entity_without_keys_joins_by_time_alone(db):
    db.create_entity("world", keys=[])
    rng = np.random.default_rng(10)
    rows = [
        (0, START + timedelta(minutes=int(m)), None, float(i))
        for i, m in enumerate(rng.integers(0, 48 * 60, 80))
    ]
    frame = pd.DataFrame([(e, v) for _, e, _, v in rows], columns=["ts", "rate"])
    fs = db.create_feature_set("rates", "world", source=frame, event_time="ts", ttl=timedelta(hours=3))
    assert fs.keys == ()
    db.ingest("rates", frame.iloc[:5])  # ties: the later batch wins
    rows = rows + rows[:5]
    spine = spine_rows(10)
    spine_frame = pd.DataFrame(spine, columns=["cid", "event_time"])
    got = db.training_set(spine_frame, ["rates:rate"]).frame
    expected = reference(rows, [(0, t) for _, t in spine], ttl=timedelta(hours=3))
    wrong = same(got.rate.tolist(), expected)
    assert not wrong, f"{len(wrong)} rows differ, e.g. {wrong[:3]}"
    latest = max(rows, key=lambda r: (r[1], rows.index(r)))
    online = db.online_features(["rates:rate"], {})
    assert online.rate.tolist() == [latest[3]]
    many = db.online_features(["rates:rate"], pd.DataFrame({"anything": [1, 2]}))
    assert many.rate.tolist() == [latest[3], latest[3]]
    assert db.materialize_online("rates") == 1


def test_scoring_from_an_entity_without_keys(db):
    from sklearn.linear_model import LinearRegression

    db.create_entity("world", keys=[])
    db.create_feature_set("rates", "world", columns={"ts": "TIMESTAMP", "rate": "DOUBLE"}, event_time="ts")
    sample = pd.DataFrame({"rate": np.arange(20.0), "x": np.arange(20.0) % 7})
    model = LinearRegression().fit(sample, 3 * sample.rate - sample.x)
    db.register_model("m", model, sample=sample)
    db.deploy("m", table="req", features_from="rates", runtime="sql")
    with pytest.raises(Exception, match=r"no stored features \(feature table fs_rates_v1_latest\)"):
        db.sql("INSERT INTO req (x) VALUES (1.0)")
    db.ingest("rates", pd.DataFrame({"ts": [START, START + timedelta(hours=1)], "rate": [2.0, 5.0]}))
    db.sql("INSERT INTO req (x) VALUES (1.0), (4.0)")
    got = db.sql("SELECT rate, prediction FROM req_predictions ORDER BY id")
    assert got.rate.tolist() == [5.0, 5.0]
    assert got.prediction.tolist() == pytest.approx([14.0, 11.0], abs=1e-6)
