"""Drift statistics computed in SQL equal scipy's and a plain numpy PSI (exact mode), and binned
mode stays within the error bounds it reports; on both backends."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from indb.monitoring import pvalues
from indb.monitoring.drift import EPSILON, PSI_BINS

RTOL = 1e-9
DAY1, DAY2 = "2024-01-01", "2024-01-02"


def _model():
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"x": rng.normal(0, 1, 300), "y": rng.exponential(1, 300), "c": rng.choice(list("abc"), 300)}
    )
    label = np.where(frame.x + (frame.c == "a") > 0.5, "yes", "no")
    encode = ColumnTransformer(
        [("n", StandardScaler(), ["x", "y"]), ("s", OneHotEncoder(handle_unknown="ignore"), ["c"])]
    )
    return Pipeline([("e", encode), ("m", LogisticRegression())]).fit(frame, label), frame


def load(db, frame: pd.DataFrame, day: str, table: str = "requests") -> None:
    """Insert rows through the scoring trigger and date their predictions ``day``."""
    db.write_table("incoming", frame, replace=True)
    columns = ", ".join(frame.columns)
    ((top,),) = db.sql(f"SELECT coalesce(max(id), 0) FROM {table}").itertuples(index=False)
    db.sql(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM incoming")
    db.sql(
        f"UPDATE {table}_predictions "
        "SET scored_at = CAST($day AS TIMESTAMP) + (id % 1000) * INTERVAL '1 second' "
        "WHERE id > $top",
        {"day": day, "top": int(top)},
    )


def deployed(db):
    model, sample = _model()
    db.register_model("m", model, sample=sample)
    db.deploy("m", table="requests")


def samples(n_ref: int, n_cur: int, seed: int, ties: bool):
    rng = np.random.default_rng(seed)
    ref = pd.DataFrame(
        {
            "x": rng.normal(0, 1, n_ref),
            "y": rng.exponential(1.0, n_ref),
            "c": rng.choice(list("abcd"), n_ref, p=[0.4, 0.3, 0.2, 0.1]),
        }
    )
    cur = pd.DataFrame(
        {
            "x": rng.normal(0.15, 1.2, n_cur),
            "y": rng.exponential(1.1, n_cur),
            "c": rng.choice(list("abcde"), n_cur, p=[0.35, 0.3, 0.2, 0.1, 0.05]),
        }
    )
    if ties:  # repeated values: ECDF steps larger than 1/n
        ref["x"], cur["x"] = ref.x.round(1), cur.x.round(1)
    return ref, cur


def numpy_psi_js(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    edges = np.unique(np.quantile(ref, np.arange(1, PSI_BINS) / PSI_BINS))
    p = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1) / len(ref)
    q = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=len(edges) + 1) / len(cur)
    ps, qs = np.maximum(p, EPSILON), np.maximum(q, EPSILON)
    return float(np.sum((qs - ps) * np.log(qs / ps))), float(jensenshannon(p, q))


def results(db, name: str) -> dict:
    frame = db.monitor_results(name)
    frame = frame[frame.window_start == pd.Timestamp(DAY2)]
    return {
        (r.feature, r.metric): r.value
        for r in frame.itertuples()
        if r.model_version is None or pd.isna(r.model_version)
    }


def monitored(db, name: str, ref, cur, features: list[str], **options) -> dict:
    """``ref`` loaded on DAY1 as the reference, ``cur`` on DAY2; one run; DAY2's results."""
    load(db, ref, DAY1)
    load(db, cur, DAY2)
    db.create_monitor(name, "requests", reference=(DAY1, DAY2), features=features, **options)
    db.run_monitor(name)
    return results(db, name)


def close(got, expected, what):
    assert got == pytest.approx(expected, rel=RTOL, abs=1e-300), f"{what}: {got!r} != {expected!r}"


@pytest.mark.parametrize(
    "n_ref, n_cur, ties",
    [(700, 900, False), (400, 450, True), (12_000, 11_000, False)],
    ids=["exact-p", "ties", "asymptotic-p"],
)
def test_exact_mode_equals_scipy(db, n_ref, n_cur, ties):
    deployed(db)
    ref, cur = samples(n_ref, n_cur, seed=n_ref, ties=ties)
    got = monitored(db, "drift", ref, cur, ["x", "y", "c"])
    for column in ("x", "y"):
        a, b = ref[column].to_numpy(), cur[column].to_numpy()
        ks = stats.ks_2samp(a, b)
        close(got[(column, "ks_d")], ks.statistic, f"{column} ks_d")
        close(got[(column, "ks_pvalue")], ks.pvalue, f"{column} ks_pvalue")
        w = stats.wasserstein_distance(a, b) / max(np.std(a), 0.001)
        close(got[(column, "wasserstein")], w, f"{column} wasserstein")
        psi, js = numpy_psi_js(a, b)
        close(got[(column, "psi")], psi, f"{column} psi")
        close(got[(column, "js")], js, f"{column} js")
    known = sorted(ref.c.unique())
    observed = cur.c.value_counts()
    obs = np.array([observed.get(k, 0) for k in known], dtype=float)
    expected = ref.c.value_counts()[known].to_numpy() / len(ref) * obs.sum()
    chi = stats.chisquare(obs, expected)
    close(got[("c", "chi2")], chi.statistic, "chi2")
    close(got[("c", "chi2_pvalue")], chi.pvalue, "chi2_pvalue")
    union = sorted(set(ref.c) | set(cur.c))
    p = np.array([(ref.c == k).mean() for k in union])
    q = np.array([(cur.c == k).mean() for k in union])
    close(got[("c", "js")], jensenshannon(p, q), "categorical js")
    ps, qs = np.maximum(p, EPSILON), np.maximum(q, EPSILON)
    close(got[("c", "psi")], np.sum((qs - ps) * np.log(qs / ps)), "categorical psi")
    assert got[("c", "new_categories")] == 1
    close(got[("c", "new_category_share")], (cur.c == "e").mean(), "new category share")
    new = db.monitor_results("drift").query("metric == 'new_category'")
    assert list(new.category) == ["e"] and int(new.value.iloc[0]) == (cur.c == "e").sum()


@pytest.mark.parametrize("shift", [0.0, 0.3], ids=["no-drift", "drift"])
def test_exact_mode_with_crowded_cells_equals_scipy(db, shift):
    """Outliers stretch the reference range, so exact mode's cells hold hundreds of values each:
    both its paths (cells summed whole, cells sorted value by value) decide D and W."""
    deployed(db)
    ref, cur = samples(20_000, 16_000, seed=11, ties=False)
    cur["x"] = np.random.default_rng(12).normal(shift, 1, len(cur))
    ref.loc[0, "x"], ref.loc[1, "x"] = -2_000.0, 3_000.0  # cells 0.038 wide
    ref.loc[0, "y"] = 4_000.0
    cur.loc[:5, "y"] = 1e6  # beyond the reference range
    cur.loc[6:9, "x"] = -2_500.0
    got = monitored(db, "crowded", ref, cur, ["x", "y"])
    for column in ("x", "y"):
        a, b = ref[column].to_numpy(), cur[column].to_numpy()
        close(got[(column, "ks_d")], stats.ks_2samp(a, b).statistic, f"{column} ks_d")
        w = stats.wasserstein_distance(a, b) / max(np.std(a), 0.001)
        close(got[(column, "wasserstein")], w, f"{column} wasserstein")


def test_exact_mode_psi_from_cells_equals_numpy(db):
    """Exact mode counts the window's PSI bins from its fine cells, resolving the cells that hold
    an edge value by value: crowded cells (outliers stretch the range), values equal to the
    edges, and edges merged by a reference that is 60% one value."""
    deployed(db)
    rng = np.random.default_rng(21)
    ref, cur = samples(20_000, 16_000, seed=21, ties=False)
    ref["x"] = np.where(rng.random(len(ref)) < 0.6, 0.0, rng.normal(0, 1, len(ref)).round(2))
    cur["x"] = np.where(rng.random(len(cur)) < 0.4, 0.0, rng.normal(0.2, 1, len(cur)).round(2))
    ref.loc[0, "y"], ref.loc[1, "y"] = -3_000.0, 5_000.0  # cells 0.06 wide: hundreds of values each
    edges = np.quantile(ref.y, np.arange(1, PSI_BINS) / PSI_BINS)
    cur.loc[: len(edges) - 1, "y"] = edges  # values exactly on the edges
    got = monitored(db, "edges", ref, cur, ["x", "y"])
    for column in ("x", "y"):
        a, b = ref[column].to_numpy(), cur[column].to_numpy()
        psi, js = numpy_psi_js(a, b)
        close(got[(column, "psi")], psi, f"{column} psi")
        close(got[(column, "js")], js, f"{column} js")
        close(got[(column, "ks_d")], stats.ks_2samp(a, b).statistic, f"{column} ks_d")
        w = stats.wasserstein_distance(a, b) / max(np.std(a), 0.001)
        close(got[(column, "wasserstein")], w, f"{column} wasserstein")


def test_binned_mode_is_within_its_bounds(db):
    deployed(db)
    ref, cur = samples(3000, 2500, seed=5, ties=False)
    cur.loc[:40, "x"] = 7.5  # beyond the reference range: counted exactly
    cur.loc[41:60, "y"] = -1.0
    got = monitored(db, "binned", ref, cur, ["x", "y"], mode="binned")
    for column in ("x", "y"):
        a, b = ref[column].to_numpy(), cur[column].to_numpy()
        d = stats.ks_2samp(a, b).statistic
        w = stats.wasserstein_distance(a, b) / max(np.std(a), 0.001)
        assert 0 < got[(column, "ks_d_bound")] < 0.01
        assert abs(got[(column, "ks_d")] - d) <= got[(column, "ks_d_bound")] + 1e-12
        assert got[(column, "ks_d")] <= d + 1e-12  # taken at cell edges: never above the exact D
        assert abs(got[(column, "wasserstein")] - w) <= got[(column, "wasserstein_bound")] + 1e-12
        assert got[(column, "wasserstein_bound")] < 0.01
        psi, js = numpy_psi_js(a, b)
        close(got[(column, "psi")], psi, f"{column} psi")
        close(got[(column, "js")], js, f"{column} js")
        close(got[(column, "ks_pvalue")], pvalues.ks_pvalue(got[(column, "ks_d")], len(a), len(b)), "p")


def test_binned_mode_psi_with_merged_edges_equals_numpy(db):
    """Binned mode counts every window value into its PSI bin by a binary search over the
    reference edges: values exactly on the edges, and a reference 60% one value, whose merged
    edges leave the last ones missing."""
    deployed(db)
    rng = np.random.default_rng(31)
    ref, cur = samples(4000, 3000, seed=31, ties=False)
    ref["x"] = np.where(rng.random(len(ref)) < 0.6, 0.0, rng.normal(0, 1, len(ref)).round(2))
    cur["x"] = np.where(rng.random(len(cur)) < 0.4, 0.0, rng.normal(0.2, 1, len(cur)).round(2))
    edges = np.quantile(ref.y, np.arange(1, PSI_BINS) / PSI_BINS)
    cur.loc[: len(edges) - 1, "y"] = edges  # values exactly on the edges
    assert len(np.unique(np.quantile(ref.x, np.arange(1, PSI_BINS) / PSI_BINS))) < PSI_BINS - 1
    got = monitored(db, "binned_edges", ref, cur, ["x", "y"], mode="binned")
    for column in ("x", "y"):
        psi, js = numpy_psi_js(ref[column].to_numpy(), cur[column].to_numpy())
        close(got[(column, "psi")], psi, f"{column} psi")
        close(got[(column, "js")], js, f"{column} js")


def test_reference_is_stored_once(db):
    deployed(db)
    ref, cur = samples(300, 300, seed=1, ties=False)
    load(db, ref, DAY1)
    db.create_monitor("once", "requests", reference=(DAY1, DAY2), features=["x", "c"])
    stored = db.sql("SELECT feature, count(*) AS n FROM indb.monitor_reference_values GROUP BY feature")
    assert dict(zip(stored.feature, stored.n, strict=True)) == {"x": 300}
    load(db, cur, DAY2)
    db.sql("DELETE FROM requests WHERE id <= 300")  # the reference rows are gone: runs do not need them
    db.run_monitor("once")
    got = results(db, "once")
    close(got[("x", "ks_d")], stats.ks_2samp(ref.x, cur.x).statistic, "ks_d")


def test_reference_cells_hold_the_reference_sample(db):
    """Exact mode stores the reference side once per fine cell: its rows, largest value and
    ascending distinct values are the stored reference sample's, cell by cell; drop_monitor
    removes them."""
    deployed(db)
    ref, _ = samples(300, 300, seed=2, ties=True)
    load(db, ref, DAY1)
    db.create_monitor("cells", "requests", reference=(DAY1, DAY2), features=["x", "y"])
    values = db.sql(
        "SELECT feature, value, n FROM indb.monitor_reference_values WHERE monitor = 'cells' "
        "ORDER BY feature, value"
    )
    cells = db.sql(
        "SELECT feature, cell, n, top, vals, counts FROM indb.monitor_reference_cells "
        "WHERE monitor = 'cells' ORDER BY feature, cell"
    )
    assert set(cells.feature) == {"x", "y"}
    for feature, group in cells.groupby("feature"):
        expected = values[values.feature == feature]
        assert [v for vals in group.vals for v in vals] == list(expected.value)
        assert [c for counts in group.counts for c in counts] == list(expected.n)
        assert list(group.n) == [sum(c) for c in group.counts]
        assert list(group.top) == [max(v) for v in group.vals]
        assert group.cell.is_unique
    db.drop_monitor("cells")
    assert db.sql("SELECT count(*) AS n FROM indb.monitor_reference_cells").n[0] == 0


def test_pvalues_match_scipy_across_regimes():
    rng = np.random.default_rng(3)
    for n1, n2, shift in [
        (30, 45, 0.5),
        (5000, 5000, 0.05),
        (10_000, 7000, 0.1),
        (20_000, 30_000, 0.05),
        (50_000, 60_000, 0.02),
        (100, 20_000, 0.3),
        (300_000, 300_000, 0.005),
    ]:
        a, b = rng.normal(0, 1, n1), rng.normal(shift, 1, n2)
        ks = stats.ks_2samp(a, b)
        close(pvalues.ks_pvalue(ks.statistic, n1, n2), ks.pvalue, f"ks {n1} x {n2}")
    for x, dof in [(0.5, 1), (3.2, 2), (40.0, 7), (300.0, 12), (1e-4, 3)]:
        close(pvalues.chi2_pvalue(x, dof), stats.chi2.sf(x, dof), f"chi2 {x} {dof}")


def test_duckdb_function_check_sees_this_transaction_and_aborts_nothing(tmp_path):
    """The check run_monitor makes for its p-value functions (DuckDB): a committed function is
    found, a missing name is not, a function made in the connection's open transaction is found
    until that transaction rolls back, and a miss inside the user's transaction leaves it usable."""
    import indb

    db = indb.connect(f"duckdb://{tmp_path}/functions.duckdb")
    backend = db.backend
    missing = "indb test function that does not exist"
    try:
        backend.register_scalar("indb_probe_a", lambda x: x, ["DOUBLE"], "DOUBLE", "")
        assert backend._has_function("indb_probe_a")
        assert not backend._has_function(missing)
        db.sql("BEGIN")  # the user's own transaction
        db.sql("CREATE TABLE kept (a INTEGER)")
        backend.register_scalar("indb_probe_b", lambda x, y: x + y, ["DOUBLE", "BIGINT"], "DOUBLE", "")
        assert backend._has_function("indb_probe_b")  # only this connection sees it yet
        assert not backend._has_function(missing)
        assert db.sql("SELECT indb_probe_b(2.0, 3) AS v, (SELECT count(*) FROM kept) AS n").v[0] == 5.0
        db.sql("ROLLBACK")
        assert not backend._has_function("indb_probe_b")
        assert backend._has_function("indb_probe_a")
    finally:
        db.close()


@pytest.mark.parametrize("mode", ["exact", "binned"])
def test_psi_edges_are_numpys_quantiles_to_the_last_bit(db, mode):
    """The PSI edges are np.quantile's (its linear interpolation, rounded as numpy rounds it):
    DuckDB's quantile_cont was 1 ulp off at some edges, so a window value on such an edge fell
    in the other bin than numpy puts it."""
    deployed(db)
    ref, cur = samples(2997, 2000, seed=3, ties=False)  # quantile_cont was off at 1 + 3 of these edges
    probabilities = np.arange(1, PSI_BINS) / PSI_BINS
    edges = {c: np.unique(np.quantile(ref[c].to_numpy(), probabilities)) for c in ("x", "y")}
    cur.loc[: PSI_BINS - 2, "x"] = edges["x"]  # window values exactly on the edges
    load(db, ref, DAY1)
    load(db, cur, DAY2)
    db.create_monitor("edges", "requests", reference=(DAY1, DAY2), features=["x", "y"], mode=mode)
    for column in ("x", "y"):
        stored = db.sql(
            "SELECT lower FROM indb.monitor_bins WHERE monitor = 'edges' AND feature = $f AND grid = 'psi' "
            "AND bin > 0 ORDER BY bin",
            {"f": column},
        ).lower.to_numpy()
        assert stored.tolist() == edges[column].tolist()  # equal floats, not close ones
    db.run_monitor("edges")
    got = results(db, "edges")
    psi, js = numpy_psi_js(ref.x.to_numpy(), cur.x.to_numpy())
    close(got[("x", "psi")], psi, "x psi")
    close(got[("x", "js")], js, "x js")
