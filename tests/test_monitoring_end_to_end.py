"""End to end: a deployment's inputs shift halfway; the monitor flags exactly the shifted
columns; delayed labels arrive; accuracy drops in the later windows; alerts open."""

from __future__ import annotations

import numpy as np

from tests.conftest import NUMERIC, loan_frame
from tests.test_monitoring_accuracy import _label
from tests.test_monitoring_drift import load

COLUMNS = NUMERIC + ["purpose"]
DAYS = ["2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04"]


def test_shift_halfway_is_flagged_and_accuracy_drops(db, mixed_pipeline, loans):
    db.register_model("m", mixed_pipeline, sample=loans[COLUMNS])
    db.deploy("m", table="requests")
    truth = {}
    for day, date in enumerate(DAYS):
        frame = loan_frame(2000, seed=100 + day)
        if day >= 2:  # the world changes: higher declared incomes, more business loans
            frame["income"] += 25_000
            rng = np.random.default_rng(day)
            frame.loc[rng.random(len(frame)) < 0.5, "purpose"] = "business"
        load(db, frame[COLUMNS], date)
        truth[date] = frame.label.to_numpy()  # labels follow the old incomes: the model is now wrong
    db.create_monitor(
        "loans", "requests", reference=(DAYS[0], DAYS[1]), window="1 day", thresholds={"accuracy": 0.8}
    )
    ids = db.sql("SELECT id FROM requests ORDER BY id").id.to_numpy().reshape(4, 2000)
    for day in (0, 1):  # labels of the first two days arrive first
        _label(db, "requests", ids[day], truth[DAYS[day]], None)
    first = db.run_monitor("loans")
    assert first.windows == 4
    for day in (2, 3):  # then, later, those of the shifted days
        _label(db, "requests", ids[day], truth[DAYS[day]], None)
    db.run_monitor("loans")

    results = db.monitor_results("loans")
    drift = results[results.model_version.isna() & (results.feature != "prediction")]
    flagged = {
        str(w.date()): set(g[g.drifted.fillna(False).astype(bool)].feature)
        for w, g in drift.groupby("window_start")
    }
    assert flagged == {
        DAYS[0]: set(),
        DAYS[1]: set(),
        DAYS[2]: {"income", "purpose"},
        DAYS[3]: {"income", "purpose"},
    }
    accuracy = results[results.metric == "accuracy"].set_index("window_start").value
    before, after = accuracy.iloc[:2].min(), accuracy.iloc[2:].max()
    assert before > 0.8 and after < before - 0.05, accuracy.to_dict()
    alerts = db.alerts("loans")
    assert set(alerts.feature) == {"income", "purpose", "prediction"}
    # One alert per ongoing condition (column, metric, version): first crossed on day 3,
    # last seen on day 4, two windows; recomputing those windows in the second run (their
    # labels arrived) does not count them again.
    assert not alerts.duplicated(["feature", "metric", "model_version"]).any()
    assert {str(t.date()) for t in alerts.window_start} == {DAYS[2]}
    assert {str(t.date()) for t in alerts.last_window_start} == {DAYS[3]}
    assert set(alerts.seen_count) == {2}
    assert set(alerts.status) == {"open"}
    assert set(alerts[alerts.feature == "prediction"].metric) >= {"accuracy"}
    delay = results[results.metric == "label_delay_seconds"].value
    assert (delay > 0).all()
