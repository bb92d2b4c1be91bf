"""Global importance and attribution drift per window and model version equal a brute-force
pandas computation (and scikit-learn's nDCG) on the same explanations, on both backends.

Until deploy(..., explain=True) fills ``<table>_explanations``, the tests fill it themselves in
its agreed shape with the exact contributions of a logistic regression on standardized inputs,
w_j / s_j (x_j - mean_j), checked to add up to the model's log-odds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import ndcg_score

from indb.monitoring.monitors import MonitorError
from tests.test_monitoring_drift import DAY1, DAY2, load

TOLERANCE = 1e-9
FEATURES = ["x", "y", "z"]
DAY3 = "2024-01-03"


def _model():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    sample = pd.DataFrame(
        {"x": rng.normal(0, 1, 400), "y": rng.normal(0, 1, 400), "z": rng.normal(0, 1, 400)}
    )
    label = np.where(2 * sample.x + sample.y + 0.3 * sample.z + rng.normal(0, 0.5, 400) > 0, "yes", "no")
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(sample, label), sample


def _rows(n: int, seed: int, scales: tuple[float, float, float]) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({f: rng.normal(0, s, n) for f, s in zip(FEATURES, scales, strict=True)})


def _explain(db, model, table: str = "requests") -> pd.DataFrame:
    """Contributions of every scored row, as deploy(..., explain=True) stores them."""
    rows = db.sql(f"SELECT id, x, y, z FROM {table} ORDER BY id")
    scaler, regression = model[0], model[-1]
    weights = regression.coef_[0] / scaler.scale_
    contributions = (rows[FEATURES].to_numpy() - scaler.mean_) * weights
    base = regression.intercept_[0]
    margin = model.decision_function(rows[FEATURES])
    np.testing.assert_allclose(base + contributions.sum(1), margin, atol=1e-9)
    long = pd.DataFrame(
        {
            "id": np.repeat(rows.id.to_numpy(), len(FEATURES)),
            "feature": np.tile(FEATURES, len(rows)),
            "contribution": contributions.ravel(),
            "base": base,
        }
    )
    if db.sql(f"SELECT count(*) AS n FROM {table}_explanations").n[0]:
        db.sql(f"DELETE FROM {table}_explanations")
    db.write_table("explained", long, replace=True)
    db.sql(
        f"INSERT INTO {table}_explanations (id, feature, contribution, base, error) "
        "SELECT id, feature, contribution, base, NULL FROM explained"
    )
    return long


def _deployed(db):
    model, sample = _model()
    db.register_model("m", model, sample=sample)
    db.deploy("m", table="requests")
    db.sql(
        "CREATE TABLE requests_explanations (id BIGINT, feature VARCHAR, contribution DOUBLE PRECISION, "
        "base DOUBLE PRECISION, error DOUBLE PRECISION)"
    )
    return model, sample


def _expected(long: pd.DataFrame, ids, reference: pd.Series) -> tuple[pd.DataFrame, float, float]:
    """Brute force: importance, share, rank, share change per feature; nDCG and shift."""
    window = long[long.id.isin(ids)]
    importance = window.contribution.abs().groupby(window.feature).mean()
    frame = pd.DataFrame({"importance": importance})
    frame["share"] = frame.importance / frame.importance.sum()
    frame["rank"] = frame.importance.rank(ascending=False, method="first")
    ref_share = reference / reference.sum()
    frame["change"] = frame.share - ref_share.reindex(frame.index)
    order = frame.importance.sort_values(ascending=False).index
    ideal = reference.sort_values(ascending=False).index
    discount = 1 / np.log2(np.arange(2, len(order) + 2))
    ndcg = float(
        (reference.reindex(order).to_numpy() * discount).sum()
        / (reference[ideal].to_numpy() * discount).sum()
    )
    shift = float((frame.share - ref_share.reindex(frame.index)).abs().sum() / 2)
    return frame, ndcg, shift


def test_importance_and_attribution_drift_equal_a_pandas_reference(db):
    model, _ = _deployed(db)
    load(db, _rows(300, 1, (1.0, 1.0, 1.0)), DAY1)
    load(db, _rows(400, 2, (0.05, 1.0, 8.0)), DAY2)  # z now moves the predictions most
    long = _explain(db, model)
    db.create_monitor("why", "requests", reference=(DAY1, DAY2), features=["x"], importance=True)
    summary = db.run_monitor("why")
    results = db.monitor_results("why")
    scored = db.sql("SELECT id, scored_at FROM requests_scored")
    day = scored.scored_at.dt.floor("D")
    reference_ids = scored.id[day == pd.Timestamp(DAY1)]
    reference = long[long.id.isin(reference_ids)].contribution.abs().groupby(long.feature).mean()
    stored = db.sql(
        "SELECT feature, lower AS importance, bin AS rank FROM indb.monitor_bins "
        "WHERE monitor = 'why' AND grid = 'importance'"
    ).set_index("feature")
    np.testing.assert_allclose(stored.importance.reindex(reference.index), reference, rtol=0, atol=TOLERANCE)
    worst = 0.0
    for window in (DAY1, DAY2):
        ids = scored.id[day == pd.Timestamp(window)]
        frame, ndcg, shift = _expected(long, ids, reference)
        got = results[(results.window_start == pd.Timestamp(window)) & (results.model_version == 1)]
        value = got.set_index(["feature", "metric"]).value
        for feature, row in frame.iterrows():
            for metric, column in (
                ("importance", "importance"),
                ("importance_share", "share"),
                ("importance_rank", "rank"),
                ("importance_share_change", "change"),
            ):
                worst = max(worst, abs(value[feature, metric] - row[column]))
        worst = max(
            worst, abs(value["*", "attribution_ndcg"] - ndcg), abs(value["*", "attribution_shift"] - shift)
        )
        clarify = ndcg_score([reference[frame.index].to_numpy()], [frame.importance.to_numpy()])
        assert value["*", "attribution_ndcg"] == pytest.approx(clarify, abs=TOLERANCE)
    assert worst <= TOLERANCE, worst
    print(f"\nlargest difference against pandas: {worst:.3g}")
    first = results[(results.window_start == pd.Timestamp(DAY1)) & (results.feature == "*")]
    assert first.set_index("metric").value["attribution_ndcg"] == pytest.approx(1.0)
    drifted = results[(results.window_start == pd.Timestamp(DAY2)) & (results.metric == "attribution_ndcg")]
    assert drifted.value.iloc[0] < 0.9 and drifted.threshold.iloc[0] == 0.9 and drifted.drifted.iloc[0]
    assert "attribution_ndcg" in set(summary.alerts.metric)


def test_importance_per_model_version(db):
    model, sample = _deployed(db)
    load(db, _rows(200, 1, (1.0, 1.0, 1.0)), DAY1)
    load(db, _rows(100, 2, (1.0, 1.0, 1.0)), DAY2)
    db.register_model("m", model, sample=sample)
    db.deploy("m", table="requests", version=2)
    load(db, _rows(150, 3, (1.0, 3.0, 1.0)), DAY2)
    long = _explain(db, model)
    db.create_monitor(
        "why",
        "requests",
        reference=(DAY1, DAY2),
        features=["x"],
        importance=True,
        thresholds={"attribution_ndcg": None, "attribution_shift": 0.05},
    )
    db.run_monitor("why")
    results = db.monitor_results("why")
    day2 = results[results.window_start == pd.Timestamp(DAY2)]
    versions = db.sql("SELECT id, model_version FROM requests_scored")
    reference = long[long.id <= 200].contribution.abs().groupby(long.feature).mean()
    for version in (1, 2):
        ids = versions.id[(versions.model_version == version) & (versions.id > 200)]
        frame, _, shift = _expected(long, ids, reference)
        got = day2[day2.model_version == version].set_index(["feature", "metric"])
        for feature in FEATURES:
            assert got.value[feature, "importance"] == pytest.approx(frame.importance[feature], abs=TOLERANCE)
        assert got.value["*", "attribution_shift"] == pytest.approx(shift, abs=TOLERANCE)
        assert got.threshold["*", "attribution_shift"] == 0.05
        assert pd.isna(got.threshold["*", "attribution_ndcg"])
        assert got.n_current["*", "attribution_shift"] == len(ids)


@pytest.mark.parametrize(
    ("setup", "options", "message"),
    [
        ("no table", {"importance": True}, "deploy the model with explain=True"),
        ("empty", {"importance": True}, "have no explanations"),
        ("table", {"importance": True, "reference": "SELECT x, y, z FROM requests"}, "own rows"),
        ("table", {"thresholds": {"attribution_ndcg": 0.8}}, "importance=True"),
    ],
)
def test_bad_input_is_refused_and_creates_nothing(db, setup, options, message):
    model, _ = _deployed(db)
    if setup == "no table":
        db.sql("DROP TABLE requests_explanations")
    load(db, _rows(50, 1, (1.0, 1.0, 1.0)), DAY1)
    if setup == "table":
        _explain(db, model)
    options = {"reference": (DAY1, DAY2), **options}
    with pytest.raises(MonitorError, match=message):
        db.create_monitor("why", "requests", features=["x"], **options)
    assert db.monitors().empty
    assert db.sql("SELECT count(*) AS n FROM indb.monitor_bins").n[0] == 0


def test_the_report_draws_importance_bars_per_window(db, tmp_path):
    import re

    from indb import cli

    model, _ = _deployed(db)
    load(db, _rows(100, 1, (1.0, 1.0, 1.0)), DAY1)
    load(db, _rows(100, 2, (0.05, 1.0, 8.0)), DAY2)
    _explain(db, model)
    db.create_monitor("why", "requests", reference=(DAY1, DAY2), features=["x"], importance=True)
    db.run_monitor("why")
    out = tmp_path / "report.html"
    assert cli.main(["monitor", "report", "why", "--db", db.url, "--out", str(out)]) == 0
    part = out.read_text().split("<h2>Feature importance and attribution drift</h2>")[1]
    assert "nDCG" in part and "threshold 0.9" in part
    results = db.monitor_results("why")
    for day in (DAY1, DAY2):
        (chart,) = [s for s in re.findall(r"<svg.*?</svg>", part) if f"window {day} 00:00, version 1" in s]
        drawn = [float(v) for v in re.findall(r"<rect [^>]*><title>([-\d.e]+)</title>", chart)]
        expected = results[(results.window_start == pd.Timestamp(day)) & (results.metric == "importance")]
        assert drawn == pytest.approx(sorted(expected.value, reverse=True), rel=1e-3)
        assert len(re.findall(r"<title>reference ", chart)) == 3


def test_a_superusers_run_ignores_functions_a_low_privilege_role_defines(db):
    """The fairness and importance statements run by CALL indb.run_monitor (pg_cron's superuser
    included) resolve no function a role with CREATE on the deployment's schema put there."""
    import uuid
    from urllib.parse import urlsplit

    if not db.backend.supports_procedures:
        pytest.skip("indb.run_monitor is a PostgreSQL procedure")
    import psycopg

    model, sample = _model()
    db.register_model("m", model, sample=sample)
    db.sql("CREATE TABLE requests (x DOUBLE PRECISION, y DOUBLE PRECISION, z DOUBLE PRECISION, band VARCHAR)")
    db.deploy("m", table="requests")
    db.sql(
        "CREATE TABLE requests_explanations (id BIGINT, feature VARCHAR, contribution DOUBLE PRECISION, "
        "base DOUBLE PRECISION, error DOUBLE PRECISION)"
    )
    for day, seed in ((DAY1, 1), (DAY2, 2)):
        frame = _rows(120, seed, (1.0, 1.0, 1.0))
        frame["band"] = np.where(frame.y > 0, "high", "low")
        load(db, frame, day)
    _explain(db, model)
    db.create_monitor(
        "m",
        "requests",
        reference=(DAY1, DAY2),
        features=["x"],
        importance=True,
        protected="band",
        favorable="yes",
    )
    role = f"mallory_{uuid.uuid4().hex[:8]}"
    db.sql(f'CREATE ROLE "{role}" LOGIN')
    db.sql(f'GRANT USAGE, CREATE ON SCHEMA public TO "{role}"')
    parts = urlsplit(db.url)
    as_role = parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}").geturl()
    try:
        with psycopg.connect(as_role, autocommit=True) as mallory:
            mallory.execute("CREATE TABLE public.evidence (what text)")
            mallory.execute("GRANT INSERT ON public.evidence TO PUBLIC")
            # ln(bigint) matches the nDCG discount ln(rank + 1) exactly: on a search_path
            # with public it would win over pg_catalog's ln(double precision).
            mallory.execute(
                "CREATE FUNCTION public.ln(bigint) RETURNS double precision LANGUAGE sql "
                "AS $$ INSERT INTO public.evidence VALUES ('ln'); SELECT 1.0::float8 $$"
            )
            mallory.execute("SET search_path = public")
            assert mallory.execute("SELECT ln(CAST(3 AS bigint))").fetchone() == (1.0,)  # the trap is live
            mallory.execute("DELETE FROM public.evidence")
        with psycopg.connect(db.url, autocommit=True) as superuser:
            superuser.execute("CALL indb.run_monitor('m')")
            assert superuser.execute("SELECT what FROM public.evidence").fetchall() == []
        results = db.monitor_results("m")
        assert {"attribution_ndcg", "importance", "demographic_parity_ratio"} <= set(results.metric)
    finally:
        db.sql(f'DROP OWNED BY "{role}" CASCADE')
        db.sql(f'DROP ROLE "{role}"')


def test_importance_from_explanations_written_by_deploy(db):
    """With deploy(..., explain=True) (xdeploy's branch) the trigger writes the explanations:
    the monitor's importance equals the mean |contribution| of those rows, which are the
    closed-form contributions of the logistic regression."""
    import inspect

    if "explain" not in inspect.signature(db.deploy).parameters:
        pytest.skip("deploy(explain=True) is not on this branch yet (helper xdeploy builds it)")
    model, sample = _model()
    db.register_model("m", model, sample=sample)
    db.deploy("m", table="requests", explain=True)
    load(db, _rows(200, 1, (1.0, 1.0, 1.0)), DAY1)
    load(db, _rows(200, 2, (0.05, 1.0, 8.0)), DAY2)
    db.create_monitor("why", "requests", reference=(DAY1, DAY2), features=["x"], importance=True)
    db.run_monitor("why")
    stored = db.sql("SELECT id, feature, contribution FROM requests_explanations")
    rows = db.sql("SELECT id, x, y, z FROM requests ORDER BY id")
    scaler, regression = model[0], model[-1]
    # w_j x_j up to each column's centring constant w_j m_j (the background mean is xdeploy's)
    slopes = rows[FEATURES].to_numpy() * regression.coef_[0] / scaler.scale_
    mine = stored.pivot(index="id", columns="feature", values="contribution").loc[rows.id, FEATURES]
    assert np.ptp(mine.to_numpy() - slopes, axis=0).max() < 1e-6
    results = db.monitor_results("why")
    for day, ids in ((DAY1, rows.id[:200]), (DAY2, rows.id[200:])):
        got = results[(results.window_start == pd.Timestamp(day)) & (results.metric == "importance")]
        expected = stored[stored.id.isin(ids)].contribution.abs().groupby(stored.feature).mean()
        np.testing.assert_allclose(got.set_index("feature").value[FEATURES], expected[FEATURES], atol=1e-12)
    ndcg = results[(results.window_start == pd.Timestamp(DAY2)) & (results.metric == "attribution_ndcg")]
    assert ndcg.value.iloc[0] < 0.9 and ndcg.drifted.iloc[0]
