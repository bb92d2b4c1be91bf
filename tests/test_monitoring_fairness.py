"""Group fairness per window and model version equals fairlearn's on the same rows, on both
backends; NULL groups, groups without positives and bad input behave as documented in
indb.monitoring.fairness."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from fairlearn import metrics as fm

from indb.errors import NotFoundError
from indb.monitoring.monitors import MonitorError
from tests.test_monitoring_accuracy import _label
from tests.test_monitoring_drift import DAY1, DAY2, _model, load

TOLERANCE = 1e-9
NULL = "<NULL>"  # fairlearn refuses missing sensitive values: the NULL group under a name
MEASURED: list[float] = []  # largest differences against fairlearn, printed at the end


def _requests(db) -> None:
    db.sql(
        "CREATE TABLE requests (x DOUBLE PRECISION, y DOUBLE PRECISION, c VARCHAR, "
        "sex VARCHAR, age_band VARCHAR)"
    )


def _rows(n: int, seed: int) -> pd.DataFrame:
    """Applicants whose x (the model's strongest input) depends on sex: unequal selection."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(np.array(["f", "m", None], dtype=object), n, p=[0.45, 0.45, 0.1])
    band = rng.choice(["18-30", "31-50", "51+"], n, p=[0.4, 0.4, 0.2])
    x = rng.normal(0, 1, n) - 0.8 * (sex == "f")
    return pd.DataFrame(
        {"x": x, "y": rng.exponential(1, n), "c": rng.choice(list("abc"), n), "sex": sex, "age_band": band}
    )


def _truth(frame: pd.DataFrame, seed: int) -> np.ndarray:
    """Labels: mostly the model's rule, some noise; nobody aged 51+ is labeled 'yes'."""
    rng = np.random.default_rng(seed)
    rule = (frame.x + (frame.c == "a") > 0.5) ^ (rng.random(len(frame)) < 0.2)
    return np.where(rule & (frame.age_band != "51+"), "yes", "no")


def _deployed_with_two_versions(db) -> pd.DataFrame:
    """Version 1 scores DAY1 and half of DAY2, version 2 the rest; 80% of DAY2's labels arrive."""
    model, sample = _model()
    db.register_model("m", model, sample=sample)
    _requests(db)
    db.deploy("m", table="requests")
    load(db, _rows(300, 1), DAY1)
    day2 = _rows(800, 2)
    load(db, day2.iloc[:400], DAY2)
    retrained = type(model)(model.steps).fit(
        sample.iloc[:120], np.where(sample.x.iloc[:120] > 0, "yes", "no")
    )
    db.register_model("m", retrained, sample=sample)
    db.deploy("m", table="requests", version=2)
    load(db, day2.iloc[400:], DAY2)
    ids = np.arange(301, 1101)
    labeled = np.arange(800) % 5 != 0
    _label(db, "requests", ids[labeled], _truth(day2, 3)[labeled], "2024-01-05")
    return db.sql(
        "SELECT * FROM requests_scored WHERE scored_at >= CAST($d AS TIMESTAMP) ORDER BY id", {"d": DAY2}
    )


def _frame(rows: pd.DataFrame, attribute: str, labeled: bool):
    rows = rows[rows.label.notna()] if labeled else rows
    y_true = (rows.label == "yes").astype(int).to_numpy() if labeled else np.zeros(len(rows), int)
    y_pred = (rows.prediction == "yes").astype(int).to_numpy()
    return y_true, y_pred, rows[attribute].fillna(NULL).to_numpy()


def _close(got, expected, what: str) -> None:
    difference = abs(float(got) - float(expected))
    MEASURED.append(difference)
    assert difference <= TOLERANCE, f"{what}: indb {got} fairlearn {expected}"


def _results(db, name: str) -> pd.DataFrame:
    frame = db.monitor_results(name)
    frame = frame[frame.window_start == pd.Timestamp(DAY2)].copy()
    frame["category"] = frame.category.where(frame.category.notna(), NULL)
    return frame


def test_group_metrics_and_summaries_equal_fairlearn_per_version(db):
    scored = _deployed_with_two_versions(db)
    db.create_monitor(
        "fair",
        "requests",
        reference=(DAY1, DAY2),
        features=["x"],
        protected=["sex", "age_band"],
        favorable="yes",
    )
    summary = db.run_monitor("fair")
    got = _results(db, "fair")
    assert sorted(got[got.metric == "group_selection_rate"].model_version.unique()) == [1, 2]
    for (version, attribute), mine in got[got.feature.isin(["sex", "age_band"])].groupby(
        ["model_version", "feature"]
    ):
        rows = scored[scored.model_version == version]
        value = {(m, c): v for m, c, v in zip(mine.metric, mine.category, mine.value, strict=True)}
        # Selection rate and demographic parity: every scored row of the window.
        y_true, y_pred, groups = _frame(rows, attribute, labeled=False)
        frame = fm.MetricFrame(
            metrics=fm.selection_rate, y_true=y_true, y_pred=y_pred, sensitive_features=groups
        )
        for group, rate in frame.by_group.items():
            _close(value["group_selection_rate", group], rate, f"v{version} {attribute}={group} selection")
            assert value["group_rows", group] == (groups == group).sum()
        _close(
            value["demographic_parity_difference", NULL],
            fm.demographic_parity_difference(y_true, y_pred, sensitive_features=groups),
            "dp difference",
        )
        _close(
            value["demographic_parity_ratio", NULL],
            fm.demographic_parity_ratio(y_true, y_pred, sensitive_features=groups),
            "dp ratio",
        )
        # Rates over labeled rows; groups with an undefined rate are NULL here, 0 in fairlearn.
        y_true, y_pred, groups = _frame(rows, attribute, labeled=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = fm.MetricFrame(
                metrics={
                    "group_true_positive_rate": fm.true_positive_rate,
                    "group_false_positive_rate": fm.false_positive_rate,
                    "group_precision": _precision,
                },
                y_true=y_true,
                y_pred=y_pred,
                sensitive_features=groups,
            )
        # Which rows' group has a defined rate: positives, negatives, something selected.
        defined = {
            metric: pd.Series(kind == 1).groupby(groups).transform("any").to_numpy()
            for metric, kind in (
                ("group_true_positive_rate", y_true),
                ("group_false_positive_rate", 1 - y_true),
                ("group_precision", y_pred),
            )
        }
        for metric in defined:
            for group, expected in frame.by_group[metric].items():
                if defined[metric][groups == group].all():
                    _close(value[metric, group], expected, f"v{version} {attribute}={group} {metric}")
                else:
                    assert pd.isna(value[metric, group]) and expected == 0, (metric, group)
        # Summaries over the groups where each rate is defined (all of them: fairlearn's own
        # functions; else its definition, max - min per rate, over those groups).
        tpr, fpr = defined["group_true_positive_rate"], defined["group_false_positive_rate"]
        opportunity = fm.equal_opportunity_difference(
            y_true[tpr], y_pred[tpr], sensitive_features=groups[tpr]
        )
        _close(value["equal_opportunity_difference", NULL], opportunity, "equal opportunity")
        if tpr.all() and fpr.all():
            odds = fm.equalized_odds_difference(y_true, y_pred, sensitive_features=groups)
        else:
            false_positives = fm.MetricFrame(
                metrics=fm.false_positive_rate,
                y_true=y_true[fpr],
                y_pred=y_pred[fpr],
                sensitive_features=groups[fpr],
            )
            odds = max(opportunity, false_positives.difference())
        _close(value["equalized_odds_difference", NULL], odds, "equalized odds")
    # age_band 51+ has no positive labels: its TPR is NULL, and fairlearn's 0 is not counted.
    tpr = got[(got.feature == "age_band") & (got.metric == "group_true_positive_rate")]
    assert tpr[tpr.category == "51+"].value.isna().all()
    assert tpr[tpr.category != "51+"].value.notna().all()
    # NULL sex is a group of its own.
    assert NULL in set(got[(got.feature == "sex") & (got.metric == "group_rows")].category)
    # The default four-fifths threshold: sex's demographic parity ratio is far below 0.8.
    ratios = got[(got.feature == "sex") & (got.metric == "demographic_parity_ratio")]
    assert (ratios.threshold == 0.8).all() and ratios.drifted.all()
    opened = summary.alerts[summary.alerts.metric == "demographic_parity_ratio"]
    assert set(opened.feature) >= {"sex"} and set(opened.model_version) == {1, 2}
    print(f"\nlargest difference against fairlearn: {max(MEASURED):.3g} over {len(MEASURED)} values")


def _precision(y_true, y_pred) -> float:
    from sklearn.metrics import precision_score

    return precision_score(y_true, y_pred, zero_division=0)


def test_thresholds_per_attribute_and_alerts(db):
    _deployed_with_two_versions(db)
    db.create_monitor(
        "fair",
        "requests",
        reference=(DAY1, DAY2),
        features=["x"],
        protected=["sex", "age_band"],
        favorable="yes",
        thresholds={
            "equalized_odds_difference": 0.05,
            "age_band": {"demographic_parity_ratio": None, "equal_opportunity_difference": 0.99},
            "psi": 5.0,
        },
    )
    db.run_monitor("fair")
    got = _results(db, "fair")
    limits = got[got.category == NULL].set_index(["feature", "metric", "model_version"]).threshold
    assert limits["sex", "demographic_parity_ratio", 1] == 0.8
    assert pd.isna(limits["age_band", "demographic_parity_ratio", 1])
    assert limits["age_band", "equal_opportunity_difference", 2] == 0.99
    assert limits["sex", "equalized_odds_difference", 2] == 0.05
    assert pd.isna(limits["sex", "equal_opportunity_difference", 1])
    drift = db.monitor_results("fair")
    assert (drift[(drift.feature == "x") & (drift.metric == "psi")].threshold == 5.0).all()
    alerts = db.alerts("fair")
    assert "equalized_odds_difference" in set(alerts.metric)
    assert not ((alerts.feature == "age_band") & (alerts.metric == "demographic_parity_ratio")).any()
    # Group rows never carry thresholds, even where a metric of the same family has one.
    assert got[got.metric.str.startswith("group_")].threshold.isna().all()


def test_a_protected_column_may_also_be_a_model_input(db):
    model, sample = _model()
    db.register_model("m", model, sample=sample)
    _requests(db)
    db.deploy("m", table="requests")
    load(db, _rows(200, 5), DAY1)
    monitor = db.create_monitor(
        "fair", "requests", reference=(DAY1, DAY2), features=["x"], protected="c", favorable="yes"
    )
    assert "fairness c" in [purpose for purpose, _ in monitor.statements]


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"protected": ["gender"], "favorable": "yes"}, NotFoundError, "gender"),
        ({"protected": ["sex"], "favorable": "approved"}, MonitorError, "not a class of the model"),
        ({"protected": ["sex"]}, MonitorError, "both protected"),
        ({"favorable": "yes"}, MonitorError, "both protected"),
        ({"protected": ["sex", "sex"], "favorable": "yes"}, MonitorError, "twice"),
        ({"protected": ["se x"], "favorable": "yes"}, ValueError, "not a plain identifier"),
        ({"thresholds": {"demographic_parity_ratio": 0.8}}, MonitorError, "protected="),
        (
            {"protected": ["sex"], "favorable": "yes", "thresholds": {"demographic_parity_ratio": "high"}},
            MonitorError,
            "must be a number",
        ),
    ],
)
def test_bad_input_is_refused_and_creates_nothing(db, options, error, message):
    model, sample = _model()
    db.register_model("m", model, sample=sample)
    _requests(db)
    db.deploy("m", table="requests")
    load(db, _rows(50, 6), DAY1)
    with pytest.raises(error, match=message):
        db.create_monitor("fair", "requests", reference=(DAY1, DAY2), features=["x"], **options)
    assert db.monitors().empty
    assert db.sql("SELECT count(*) AS n FROM indb.monitor_thresholds").n[0] == 0


def test_a_regressor_is_refused(db):
    from sklearn.linear_model import LinearRegression

    frame = _rows(100, 7)
    db.register_model("r", LinearRegression().fit(frame[["x", "y"]], frame.x * 2), sample=frame[["x", "y"]])
    db.sql("CREATE TABLE losses (x DOUBLE PRECISION, y DOUBLE PRECISION, sex VARCHAR)")
    db.deploy("r", table="losses")
    load(db, frame[["x", "y", "sex"]], DAY1, table="losses")
    with pytest.raises(MonitorError, match="regressor"):
        db.create_monitor("fair", "losses", reference=(DAY1, DAY2), protected=["sex"], favorable=1.0)
    assert db.monitors().empty


def test_the_report_shows_groups_and_summaries_against_thresholds(db, tmp_path):
    import re

    from indb import cli

    _deployed_with_two_versions(db)
    db.create_monitor(
        "fair", "requests", reference=(DAY1, DAY2), features=["x"], protected=["sex"], favorable="yes"
    )
    db.run_monitor("fair")
    out = tmp_path / "report.html"
    assert cli.main(["monitor", "report", "fair", "--db", db.url, "--out", str(out)]) == 0
    page = out.read_text()
    fairness = page.split("<h2>Fairness</h2>")[1]
    assert "Protected attribute sex" in fairness and "demographic_parity_ratio" in fairness
    assert "0.8 (below)" in fairness and "ALERT" in fairness
    got = _results(db, "fair")
    latest = got[(got.metric == "group_selection_rate") & (got.model_version == 2)]
    (chart,) = [s for s in re.findall(r"<svg.*?</svg>", fairness) if "per group (version 2)" in s]
    drawn = [float(v) for v in re.findall(r"<rect [^>]*><title>([-\d.e]+)</title>", chart)]
    table = latest.assign(group=latest.category.where(latest.category != NULL, "NULL")).sort_values("group")
    assert drawn == pytest.approx(list(table.value), rel=1e-3)
    assert "<script" not in page


def test_a_protected_attribute_from_the_feature_store_is_read_as_of_scoring_time(db):
    """segment is a feature of the set the deployment scores from, not a model input: each row's
    group is its customer's latest segment at or before the row's scoring time."""
    from datetime import datetime, timedelta

    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(8)
    start = datetime(2024, 1, 1)
    history = pd.DataFrame(
        {
            "customer_id": np.repeat(np.arange(40), 3).astype(np.int64),
            "ts": [start + timedelta(hours=12 * k + int(c) % 5) for c in range(40) for k in range(3)],
            "income": rng.normal(50_000, 10_000, 120).round(2),
            "debt": rng.gamma(2.0, 5_000, 120).round(2),
            "segment": rng.choice(["a", "b", "c"], 120),
        }
    )
    db.create_entity("customer", keys=["customer_id"])
    db.create_feature_set("finance", "customer", source=history, event_time="ts")
    model = LogisticRegression(max_iter=500).fit(history[["income", "debt"]], history.income > 50_000)
    db.register_model("risk", model, sample=history[["income", "debt"]])
    db.deploy("risk", table="risk_requests", features_from="finance")
    customers = rng.integers(0, 40, 300)
    db.sql("INSERT INTO risk_requests (customer_id) VALUES " + ", ".join(f"({int(c)})" for c in customers))
    # Scored between the first and the last feature rows: the segment of that time counts.
    db.sql(
        "UPDATE risk_requests_predictions SET scored_at = TIMESTAMP '2024-01-01 02:00:00' "
        "+ (id % 22) * INTERVAL '1 hour'"
    )
    db.create_monitor(
        "fair",
        "risk_requests",
        reference=("2024-01-01", "2024-01-03"),
        features=["income"],
        protected=["segment"],
        favorable=1,  # the classifier's classes are 0 and 1
    )
    db.run_monitor("fair")
    rows = db.sql(
        "SELECT r.id, r.customer_id, p.prediction, p.scored_at FROM risk_requests AS r "
        "JOIN risk_requests_predictions AS p ON p.id = r.id ORDER BY r.id"
    )
    known = history.sort_values("ts")
    rows["segment"] = [
        (lambda h: h.segment.iloc[-1] if len(h) else None)(
            known[(known.customer_id == c) & (known.ts <= t.to_pydatetime())]
        )
        for c, t in zip(rows.customer_id, rows.scored_at, strict=True)
    ]
    assert rows.segment.isna().any() and rows.segment.nunique() == 3  # some before any feature row
    latest = rows.customer_id.map(known.groupby("customer_id").segment.last())
    assert (rows.segment.notna() & (rows.segment != latest)).sum() > 20  # as of then, not now
    got = db.monitor_results("fair")
    got = got[got.window_start == pd.Timestamp("2024-01-01")].copy()
    got["category"] = got.category.where(got.category.notna(), NULL)
    rates = got[got.metric == "group_selection_rate"].set_index("category").value
    y_pred = (rows.prediction.astype(int) == 1).astype(int).to_numpy()
    groups = rows.segment.fillna(NULL).to_numpy()
    frame = fm.MetricFrame(
        metrics=fm.selection_rate, y_true=np.zeros(len(rows), int), y_pred=y_pred, sensitive_features=groups
    )
    for group, rate in frame.by_group.items():
        _close(rates[group], rate, f"segment={group}")
    _close(
        got[got.metric == "demographic_parity_ratio"].value.iloc[0],
        fm.demographic_parity_ratio(np.zeros(len(rows), int), y_pred, sensitive_features=groups),
        "dp ratio",
    )


def test_the_cli_creates_a_fairness_monitor(db, capsys):
    from indb import cli

    _deployed_with_two_versions(db)
    argv = ["monitor", "create", "fair", "requests", "--db", db.url, "--reference-window", DAY1, DAY2]
    argv += ["--feature", "x", "--protected", "sex", "--protected", "age_band", "--favorable", "yes"]
    argv += ["--thresholds", '{"equalized_odds_difference": 0.1}']
    assert cli.main(argv) == 0
    assert cli.main(["monitor", "run", "fair", "--db", db.url]) == 0
    got = _results(db, "fair")
    summary = got[(got.category == NULL) & (got.metric == "equalized_odds_difference")]
    assert set(summary.feature) == {"sex", "age_band"} and (summary.threshold == 0.1).all()
    assert cli.main(argv[:4] + ["--db", db.url, "--reference-window", DAY1, DAY2, "--favorable", "yes"]) != 0
    assert "both protected" in capsys.readouterr().err


def test_a_developer_runs_a_fairness_monitor_and_cannot_change_its_favorable_class(db):
    """On PostgreSQL an admin creates monitors; a developer (a real LOGIN role) runs them, and
    the stored favorable class and thresholds the statements read are not theirs to change."""
    if not db.backend.supports_procedures:
        pytest.skip("roles are PostgreSQL's")
    import psycopg

    from tests.test_trust_postgres import login_role

    _deployed_with_two_versions(db)
    db.create_monitor(
        "fair", "requests", reference=(DAY1, DAY2), features=["x"], protected=["sex"], favorable="yes"
    )
    with login_role(db, "indb_developer") as (_, url), psycopg.connect(url, autocommit=True) as dev:
        dev.execute("CALL indb.run_monitor('fair')")
        for sql in (
            "UPDATE indb.monitor_bins SET category = 'no' WHERE grid = 'favorable'",
            "DELETE FROM indb.monitor_thresholds",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                dev.execute(sql)
    assert (_results(db, "fair").metric == "demographic_parity_ratio").sum() == 2
