"""Accuracy per window and model version equals scikit-learn's, over rows whose label arrived;
runs from SQL with no Python client (PostgreSQL) and from the CLI."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics

from indb import cli
from tests.conftest import NUMERIC, loan_frame
from tests.test_monitoring_drift import DAY1, DAY2, load

RTOL = 1e-9
COLUMNS = NUMERIC + ["purpose"]


def _label(db, table: str, ids, labels, observed: str | None) -> None:
    """Record labels observed at ``observed`` (None: now)."""
    db.write_table("truth", pd.DataFrame({"id": ids, "label": labels}), replace=True)
    db.sql(
        f"INSERT INTO {table}_ground_truth (id, label, observed_at) "
        "SELECT id, label, coalesce(CAST($at AS TIMESTAMP), current_timestamp) FROM truth",
        {"at": observed},
    )


def _window_results(db, name):
    frame = db.monitor_results(name)
    return frame[frame.window_start == pd.Timestamp(DAY2)]


def test_classification_metrics_per_version_equal_sklearn(db, mixed_pipeline, logistic, loans):
    db.register_model("m", mixed_pipeline, sample=loans[COLUMNS])
    db.deploy("m", table="requests")
    load(db, loan_frame(600, seed=11)[COLUMNS], DAY1)
    day2 = loan_frame(1200, seed=12)
    load(db, day2[COLUMNS].iloc[:600], DAY2)
    retrained = type(mixed_pipeline)(mixed_pipeline.steps).fit(
        loans[COLUMNS].iloc[:300], loans.label.iloc[:300]
    )
    db.register_model("m", retrained, sample=loans[COLUMNS])
    db.deploy("m", table="requests", version=2)
    load(db, day2[COLUMNS].iloc[600:], DAY2)
    scored = db.sql("SELECT id, model_version FROM requests_scored ORDER BY id")
    ids = scored.id.to_numpy()[600:]
    truth = day2.label.to_numpy()
    labeled = np.arange(len(ids)) % 10 < 7  # 70% of the labels have arrived
    _label(db, "requests", ids[labeled], truth[labeled], "2024-01-09")
    db.create_monitor(
        "quality", "requests", reference=(DAY1, DAY2), features=["income"], thresholds={"accuracy": 0.99}
    )
    summary = db.run_monitor("quality")
    got = _window_results(db, "quality")
    view = db.sql(
        "SELECT * FROM requests_scored WHERE label IS NOT NULL AND scored_at >= CAST($d AS TIMESTAMP) "
        "ORDER BY id",
        {"d": DAY2},
    )
    assert sorted(got.model_version.dropna().unique()) == [1, 2]
    for version, rows in view.groupby("model_version"):
        mine = got[got.model_version == version]
        value = dict(zip(mine.metric, mine.value, strict=False))
        y, pred = rows.label.to_numpy(), rows.prediction.to_numpy()
        positive = "repaid"
        p = rows.probability_repaid.to_numpy()
        proba = rows[["probability_default", "probability_repaid"]].to_numpy()
        expected = {
            "accuracy": metrics.accuracy_score(y, pred),
            "precision": metrics.precision_score(y, pred, pos_label=positive),
            "recall": metrics.recall_score(y, pred, pos_label=positive),
            "f1": metrics.f1_score(y, pred, pos_label=positive),
            "roc_auc": metrics.roc_auc_score(y == positive, p),
            "log_loss": metrics.log_loss(y, proba, labels=["default", "repaid"]),
        }
        for metric, target in expected.items():
            assert value[metric] == pytest.approx(target, rel=RTOL), metric
        all_rows = (
            db.sql(
                "SELECT model_version FROM requests_scored WHERE scored_at >= CAST($d AS TIMESTAMP)",
                {"d": DAY2},
            ).model_version
            == version
        ).sum()
        assert value["labeled_rows"] == len(rows) and value["rows"] == all_rows
        assert value["labeled_share"] == pytest.approx(len(rows) / all_rows)
        assert value["label_delay_seconds"] > 6 * 86400
        confusion = mine[mine.metric == "confusion"]
        counts = pd.crosstab(rows.label, rows.prediction)
        for item in confusion.itertuples():
            actual, predicted = item.category.split(" -> ")
            assert item.value == counts.loc[actual, predicted]
    assert summary.alerts.metric.eq("accuracy").sum() == 2  # both versions under 0.99


def test_regression_metrics_equal_sklearn(db, loans):
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit(loans[NUMERIC], loans.loss)
    db.register_model("r", model, sample=loans[NUMERIC])
    db.deploy("r", table="losses")
    load(db, loans[NUMERIC].iloc[:500], DAY1, table="losses")
    load(db, loans[NUMERIC].iloc[500:1500], DAY2, table="losses")
    _label(db, "losses", np.arange(501, 1301), loans.loss.to_numpy()[500:1300], "2024-01-03")
    db.create_monitor("err", "losses", reference=(DAY1, DAY2), features=["income"])
    db.run_monitor("err")
    value = dict(
        zip(
            *[_window_results(db, "err").query("feature == 'prediction'")[c] for c in ("metric", "value")],
            strict=True,
        )
    )
    rows = db.sql("SELECT label, prediction FROM losses_scored WHERE label IS NOT NULL ORDER BY id")
    y, pred = rows.label.to_numpy(), rows.prediction.to_numpy()
    for metric, target in {
        "mae": metrics.mean_absolute_error(y, pred),
        "rmse": np.sqrt(metrics.mean_squared_error(y, pred)),
        "r2": metrics.r2_score(y, pred),
        "mape": metrics.mean_absolute_percentage_error(y, pred),
    }.items():
        assert value[metric] == pytest.approx(target, rel=RTOL), metric
    assert value["labeled_share"] == pytest.approx(800 / 1000)


def test_runs_pick_up_new_windows_and_late_labels(db, mixed_pipeline, loans):
    db.register_model("m", mixed_pipeline, sample=loans[COLUMNS])
    db.deploy("m", table="requests")
    load(db, loan_frame(300, seed=1)[COLUMNS], DAY1)
    load(db, loan_frame(300, seed=2)[COLUMNS], DAY2)
    db.create_monitor("mon", "requests", reference=(DAY1, DAY2), features=["income"])
    first = db.run_monitor("mon")
    assert first.windows == 2
    load(db, loan_frame(300, seed=3)[COLUMNS], "2024-01-03")
    second = db.run_monitor("mon")
    assert second.windows == 2  # the last window again (it may have been partial) and the new one
    _label(db, "requests", [1, 2, 3], ["repaid", "repaid", "default"], None)
    third = db.run_monitor("mon")
    assert third.windows == 3  # labels arrived for day 1: it is recomputed
    results = db.monitor_results("mon")
    assert (
        results.groupby(["window_start", "feature", "metric", "model_version", "category"], dropna=False)
        .size()
        .max()
        == 1
    )
    labeled = results.query("metric == 'labeled_rows'")
    assert labeled.set_index("window_start").value[pd.Timestamp(DAY1)] == 3


def test_cli_runs_a_monitor_and_writes_a_report(db, mixed_pipeline, loans, tmp_path, capsys):
    db.register_model("m", mixed_pipeline, sample=loans[COLUMNS])
    db.deploy("m", table="requests")
    load(db, loan_frame(300, seed=1)[COLUMNS], DAY1)
    load(db, loan_frame(300, seed=2)[COLUMNS], DAY2)
    db.create_monitor("mon", "requests", reference=(DAY1, DAY2))
    url = db.url  # the CLI opens the same database (DuckDB: the same in-process instance)
    assert cli.main(["monitor", "run", "mon", "--db", url]) == 0
    assert "2 window(s)" in capsys.readouterr().out
    out = tmp_path / "report.html"
    assert cli.main(["monitor", "report", "mon", "--db", url, "--out", str(out)]) == 0
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html and "income" in html
    assert "<script src" not in html and "http" not in html.split("<body>")[1].replace(
        "http://www.w3.org", ""
    )


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_psql_runs_the_monitor_with_no_python_client(db, mixed_pipeline, loans):
    psql = shutil.which("psql")
    if psql is None:
        pytest.skip("psql not found: install the PostgreSQL client (bash .ci/install_postgres.sh)")
    db.register_model("m", mixed_pipeline, sample=loans[COLUMNS])
    db.deploy("m", table="requests")
    load(db, loan_frame(1500, seed=1)[COLUMNS], DAY1)  # effect sizes at 300 rows are mostly noise
    shifted = loan_frame(1500, seed=2)
    shifted["income"] += 30_000
    load(db, shifted[COLUMNS], DAY2)
    db.create_monitor("mon", "requests", reference=(DAY1, DAY2))
    out = subprocess.run(
        [
            psql,
            db.url,
            "-X",
            "-v",
            "ON_ERROR_STOP=1",
            "-At",
            "-c",
            "CALL indb.run_monitor('mon'); "
            "SELECT feature || '|' || metric FROM indb.alerts ORDER BY feature, metric;",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()
    assert "income|wasserstein" in out and "income|psi" in out
    assert not [line for line in out if line.startswith(("debt|", "age|", "tenure|"))]
    ks = db.sql(
        "SELECT value FROM indb.monitor_results WHERE feature = 'income' AND metric = 'ks_pvalue' "
        "AND window_start = TIMESTAMP '2024-01-02'"
    )
    assert ks.value.iloc[0] < 1e-10  # p-values computed inside the server


def test_windows_and_versions_without_labels_still_count_their_rows(db, loans):
    """Only labeled rows are joined with the labels (issue 17): a window with no label, and a
    version with none in a labeled window, still report rows, labeled_rows 0 and
    labeled_share 0, and no error metric; the labeled version's metrics equal scikit-learn's."""
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit(loans[NUMERIC], loans.loss)
    db.register_model("r", model, sample=loans[NUMERIC])
    db.register_model("r", LinearRegression().fit(loans[NUMERIC], loans.loss * 2), sample=loans[NUMERIC])
    db.deploy("r", table="losses", version=1)
    load(db, loans[NUMERIC].iloc[:400], DAY1, table="losses")
    load(db, loans[NUMERIC].iloc[400:700], DAY2, table="losses")
    db.deploy("r", table="losses", version=2)
    load(db, loans[NUMERIC].iloc[700:900], DAY2, table="losses")
    _label(db, "losses", np.arange(401, 601), loans.loss.to_numpy()[400:600], "2024-01-03")
    db.create_monitor("err", "losses", reference=(DAY1, DAY2), features=["income"])
    db.run_monitor("err")
    results = db.monitor_results("err").query("feature == 'prediction'")
    value = {(r.window_start, int(r.model_version), r.metric): r.value for r in results.itertuples()}
    day1, day2 = pd.Timestamp(DAY1), pd.Timestamp(DAY2)
    assert value[(day1, 1, "rows")] == 400 and value[(day1, 1, "labeled_rows")] == 0
    assert value[(day1, 1, "labeled_share")] == 0
    assert (day1, 1, "mae") not in value and (day1, 1, "label_delay_seconds") not in value
    assert value[(day2, 2, "rows")] == 200 and value[(day2, 2, "labeled_rows")] == 0
    assert (day2, 2, "rmse") not in value
    assert value[(day2, 1, "rows")] == 300 and value[(day2, 1, "labeled_rows")] == 200
    assert value[(day2, 1, "labeled_share")] == pytest.approx(200 / 300)
    rows = db.sql(
        "SELECT label, prediction FROM losses_scored "
        "WHERE label IS NOT NULL AND model_version = 1 ORDER BY id"
    )
    y, pred = rows.label.to_numpy(), rows.prediction.to_numpy()
    assert value[(day2, 1, "mae")] == pytest.approx(metrics.mean_absolute_error(y, pred), rel=RTOL)
    assert value[(day2, 1, "r2")] == pytest.approx(metrics.r2_score(y, pred), rel=RTOL)
