"""Which rows a window holds: by the request table's own time (time_column), and the feature
values a features_from deployment scored with (recorded in its predictions)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import indb
from tests.test_feature_store import customer_rows
from tests.test_monitoring_drift import _model

RTOL = 1e-9


def _events(seed: int, day: str, shift: float, n: int = 150) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(shift, 1, n),
            "y": rng.exponential(1, n),
            "c": rng.choice(list("abc"), n),
            "event_time": pd.Timestamp(day) + pd.to_timedelta(rng.integers(0, 86_400, n), unit="s"),
        }
    )


def test_windows_by_an_event_time_column(db):
    """Replayed data: every row is scored now, but belongs to the day of its event_time."""
    model, sample = _model()
    db.register_model("m", model, sample=sample)
    days = {"2024-05-01": 0.0, "2024-05-02": 0.0, "2024-05-03": 1.5}
    frames = {day: _events(n, day, shift) for n, (day, shift) in enumerate(days.items())}
    db.write_table("requests", pd.concat(frames.values()).iloc[:0], replace=True)
    db.deploy("m", table="requests")
    for frame in frames.values():
        db.write_table("incoming", frame, replace=True)
        db.sql("INSERT INTO requests (x, y, c, event_time) SELECT x, y, c, event_time FROM incoming")

    with pytest.raises(indb.IndbError, match="time_column 'c' is VARCHAR"):
        db.create_monitor("bad", "requests", reference=("2024-05-01", "2024-05-02"), time_column="c")
    with pytest.raises(indb.IndbError, match="event_tim"):
        db.create_monitor("bad", "requests", reference=("2024-05-01", "2024-05-02"), time_column="event_tim")

    monitor = db.create_monitor(
        "replay", "requests", reference=("2024-05-01", "2024-05-02"), window="1 day", time_column="event_time"
    )
    assert monitor.n_reference == 150 and monitor.time_column == "event_time"
    summary = db.run_monitor("replay")
    assert summary.windows == 3
    results = db.monitor_results("replay")
    reference = frames["2024-05-01"].x
    for day, frame in frames.items():
        got = results[(results.feature == "x") & (results.window_start == pd.Timestamp(day))]
        got = got.set_index("metric").value
        expected = stats.ks_2samp(reference, frame.x)
        assert got["ks_d"] == pytest.approx(expected.statistic, rel=RTOL, abs=1e-12)
        assert got["ks_pvalue"] == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-12)
    drifted = results[results.drifted.fillna(False).astype(bool) & (results.feature == "x")]
    assert pd.Timestamp("2024-05-03") in set(drifted.window_start)
    assert pd.Timestamp("2024-05-01") not in set(drifted.window_start)  # the reference itself
    assert db.monitors().set_index("name").time_column["replay"] == "event_time"

    # Late rows of an earlier day (a backfill) make that day's window computed again.
    late = _events(9, "2024-05-01", 0.0, n=50)
    db.write_table("incoming", late, replace=True)
    db.sql("INSERT INTO requests (x, y, c, event_time) SELECT x, y, c, event_time FROM incoming")
    assert db.run_monitor("replay").windows == 3
    results = db.monitor_results("replay")
    first = results[(results.feature == "x") & (results.metric == "ks_d")].set_index("window_start")
    assert first.n_current[pd.Timestamp("2024-05-01")] == 200
    expected = stats.ks_2samp(reference, pd.concat([frames["2024-05-01"].x, late.x]))
    assert first.value[pd.Timestamp("2024-05-01")] == pytest.approx(expected.statistic, rel=RTOL)

    # By scored_at (the default) the same rows all fall into today's window.
    now = pd.Timestamp.now().floor("D")
    db.create_monitor("scored", "requests", reference=(now - timedelta(days=1), now + timedelta(days=2)))
    assert db.run_monitor("scored").windows == 1


def test_monitor_on_a_features_from_deployment_sees_the_stored_features(db):
    """11.9: the request table holds only the entity key; income and debt come from the
    feature store at scoring time and are recorded in <table>_predictions."""
    from sklearn.linear_model import LogisticRegression

    db.create_entity("customer", keys=["customer_id"])
    rows = customer_rows()
    db.create_feature_set("finance", "customer", source=rows, event_time="ts")
    model = LogisticRegression(max_iter=500).fit(rows[["income", "debt"]], rows.income > 50_000)
    db.register_model("risk", model, sample=rows[["income", "debt"]])
    db.deploy("risk", table="risk_requests", features_from="finance")
    customers = np.random.default_rng(3).integers(0, 50, 300)
    db.sql("INSERT INTO risk_requests (customer_id) VALUES " + ", ".join(f"({int(c)})" for c in customers))
    now = pd.Timestamp.now().floor("D")
    db.create_monitor(
        "risk", "risk_requests", reference=(now - timedelta(days=1), now + timedelta(days=2)), window="1 day"
    )
    summary = db.run_monitor("risk")
    assert summary.windows == 1
    results = db.monitor_results("risk").set_index(["feature", "metric"]).value
    latest = rows.sort_values("ts").groupby("customer_id").tail(1).set_index("customer_id")
    scored = latest.loc[customers]
    assert results["income", "ks_d"] == 0.0 and results["debt", "wasserstein"] == 0.0
    recorded = db.sql("SELECT income FROM risk_requests_predictions ORDER BY id").income
    np.testing.assert_allclose(recorded.to_numpy(), scored.income.to_numpy())
    counts = db.monitor_results("risk")
    assert set(counts[counts.feature == "income"].n_current) == {300}


def test_a_time_zone_aware_time_column_is_taken_in_utc(db):
    model, _ = _model()
    db.register_model("m", model, sample=_events(0, "2024-05-01", 0.0)[["x", "y", "c"]])
    db.sql(
        "CREATE TABLE requests (x DOUBLE PRECISION, y DOUBLE PRECISION, c VARCHAR, event_time TIMESTAMPTZ)"
    )
    db.deploy("m", table="requests")
    rng = np.random.default_rng(5)
    values = ", ".join(
        f"({rng.normal():.6f}, {rng.exponential():.6f}, 'a', TIMESTAMPTZ '{when}')"
        for when in ["2024-05-01 12:00:00+00"] * 10 + ["2024-05-01 23:30:00-02"] * 10  # 05-02 01:30 UTC
    )
    db.sql(f"INSERT INTO requests (x, y, c, event_time) VALUES {values}")
    monitor = db.create_monitor(
        "utc", "requests", reference=("2024-05-01", "2024-05-02"), window="1 day", time_column="event_time"
    )
    assert monitor.n_reference == 10
    assert db.run_monitor("utc").windows == 2
    results = db.monitor_results("utc")
    counts = (
        results[(results.feature == "x") & (results.metric == "ks_d")].set_index("window_start").n_current
    )
    assert counts.to_dict() == {pd.Timestamp("2024-05-01"): 10, pd.Timestamp("2024-05-02"): 10}


@pytest.mark.parametrize("sql_type", ["TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S"])
def test_a_time_column_of_another_precision_windows_like_a_timestamp(tmp_path, sql_type):
    """pandas writes nanosecond timestamps (TIMESTAMP_NS in DuckDB): they window as TIMESTAMP."""
    db = indb.connect(f"duckdb://{tmp_path}/test.duckdb")
    model, _ = _model()
    db.register_model("m", model, sample=_events(0, "2024-05-01", 0.0)[["x", "y", "c"]])
    db.sql(f"CREATE TABLE requests (x DOUBLE, y DOUBLE, c VARCHAR, event_time {sql_type})")
    db.deploy("m", table="requests")
    for n, day in enumerate(["2024-05-01", "2024-05-02", "2024-05-03"]):
        db.write_table("incoming", _events(n, day, 0.5 * n, n=40 + n), replace=True)
        db.sql("INSERT INTO requests (x, y, c, event_time) SELECT x, y, c, event_time FROM incoming")
    monitor = db.create_monitor(
        "p", "requests", reference=("2024-05-01", "2024-05-02"), window="1 day", time_column="event_time"
    )
    assert monitor.n_reference == 40
    assert db.run_monitor("p").windows == 3
    results = db.monitor_results("p")
    counts = (
        results[(results.feature == "x") & (results.metric == "ks_d")].set_index("window_start").n_current
    )
    assert counts.to_dict() == {pd.Timestamp(f"2024-05-0{d}"): 40 + d - 1 for d in (1, 2, 3)}
