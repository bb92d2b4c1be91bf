"""Drift statements: per monitored column, the SQL that compares one window with the reference.

Numeric columns (exact mode), against the stored reference sample (distinct values and
counts, i.e. its exact ECDF):

* ``ks_d``: sup |F_ref - F_cur|; ``ks_pvalue`` as ``scipy.stats.ks_2samp`` (exact up to
  10,000 rows per sample, else asymptotic; see :mod:`indb.monitoring.pvalues`).
* ``wasserstein``: W1 = integral |F_ref - F_cur| dx, divided by the reference population
  standard deviation (floored at 0.001, as Evidently does).
* ``psi``: sum (q - p) ln(q / p) over ``PSI_BINS`` reference quantile bins (linear
  interpolation, numpy's default; repeated edges merged; the outer bins are open-ended).
  Smoothing: a bin's share is max(share, ``EPSILON``) = 1e-4, so an empty bin counts as
  0.01% of its sample instead of making PSI infinite.
* ``js``: Jensen-Shannon distance on the same bins, natural log (as scipy's
  ``jensenshannon`` and Evidently; its maximum is sqrt(ln 2) = 0.833), no smoothing.

Exact mode does not sort the 2 x n values: D and W come from per-cell sums, and only the
values of a few cells are sorted. The window's and the reference's values are grouped into
``FINE_CELLS`` equal-width cells over the reference range (and one cell below, one above); the
cell of a value is a monotone function of it, so each cell holds a run of consecutive values
and both ECDFs are exact at each cell's largest value ``top``. Per cell and sample: rows (share
p_r, p_c), sum of values, ``top``. Write G = F_ref - F_cur, ``a`` its value before the cell
(from the previous cell's ``top`` up to the cell's first value) and ``b`` at its ``top``
(both exact, from running counts). Inside the cell G = a + (rise of F_ref) - (rise of F_cur)
= b - (rest of F_ref's rise) + (rest of F_cur's rise), with rises in [0, p_r] and [0, p_c], so

    low = max(a - p_c, b - p_r) <= G <= min(a + p_r, b + p_c) = high.

* D: the largest |b| over cells is attained by G, so D >= it; a cell can hold a larger |G|
  only if max(|low|, |high|) exceeds it.
* W: where low >= 0 or high <= 0, G keeps its sign over the piece from the previous cell's
  ``top`` to this ``top``, so the integral of |G| there is |integral of G|, which the sums give
  exactly: a (top - prev_top) + sum over reference rows of share (top - value), minus the same
  over current rows (values taken relative to the cell's start, to keep digits).

Only the cells that fail either test ("flagged": a sign change is possible, or G could exceed
the largest |b|) are resolved value by value: their values are sorted and G taken at each.
The reference side of all this (per cell: rows, sum, ``top`` and its ascending distinct values
with counts) is computed once at create into ``indb.monitor_reference_cells``, so a run groups
only the window's values and unnests the flagged cells' reference lists (issue 17: the run no
longer reads the 1M-row reference sample of each column twice).
In the 1M vs 1M benchmark that was tens to ~1,500 cells holding 0.5-11% of the rows (measured
with 65,536 cells; more cells, fewer rows). Results equal the full sort
up to summation order (1e-13 relative in the benchmark; the tests hold them to scipy at 1e-9).

The window's PSI bin counts come from the same cells: a cell is monotone in the value, so a cell
holding no quantile edge lies inside one bin (how many edge cells precede it); the cells that
hold an edge are resolved value by value with the flagged ones, which is exact for any cell.
So a run reads the window's column twice (cell sums, then the flagged cells' values), on
DuckDB and on PostgreSQL alike (issue 17: PostgreSQL sorted both samples per column before,
~7-9 s a column at 1M vs 1M; the stored reference cells made this path cheaper there too).

Binned mode reads the window once: each row is counted in one of ``CELLS`` equal-width
cells over the reference range [lo, hi] and in its PSI bin; rows outside the range are
counted with their sum. PSI and JS are then exact. KS D is taken at cell edges, and for
each cell of width w with reference share p_r and current share p_c:

* ``|D_exact - D_binned| <= max over cells of max(p_r, p_c)`` (``ks_d_bound``): both ECDFs
  are monotone inside a cell, so the gap anywhere in it is within the larger share of the
  gap at its edges;
* ``|W_exact - W_binned| <= sum over cells of w (p_r + p_c) / 2`` divided by the reference
  std (``wasserstein_bound``): the gap inside a cell lies in an interval of length
  p_r + p_c around the mean of its edge values, which is what binned mode integrates.
  Outside [lo, hi] only the current ECDF moves and its integral is exact from the sums.

Both bounds are computed from the data of each run and stored next to the values.

Categorical columns: ``chi2`` over the reference categories (expected counts = reference
share x current rows in those categories) with ``chi2_pvalue`` (as ``scipy.stats.
chisquare``), ``psi`` and ``js`` over all categories, ``new_categories`` (how many),
``new_category_share`` and one ``new_category`` row per unseen category.
"""

from __future__ import annotations

import numpy as np
from sqlglot import exp

from indb.backends.base import Backend
from indb.identifiers import Quoted, fill

PSI_BINS = 10
CELLS = 10_000
FINE_CELLS = 131_072  # exact mode's cells over [lo, hi]: a grouping key, not an approximation
EPSILON = 1e-4

# Alert on effect sizes; p-values are reported without a threshold (at large n they flag
# shifts of no consequence). Every threshold is a row in indb.monitor_thresholds.
DEFAULT_THRESHOLDS = {
    "numeric": {"wasserstein": 0.1, "psi": 0.2, "js": 0.1},
    "categorical": {"psi": 0.2, "js": 0.1, "new_category_share": 0.05},
}
NUMERIC_METRICS = ("ks_d", "ks_pvalue", "wasserstein", "psi", "js", "ks_d_bound", "wasserstein_bound")
CATEGORICAL_METRICS = ("chi2", "chi2_pvalue", "psi", "js", "new_categories", "new_category_share")


# Fragments are sqlglot trees rendered once in the dialect the sql/monitoring.sql statements
# are written in (DuckDB's; the backend transpiles the whole statement).
_TEMPLATE_DIALECT = "duckdb"


def quantile_neighbours(n: int, probabilities: list[float]) -> tuple[list[int], np.ndarray]:
    """numpy's default ("linear") quantiles of ``n`` sorted values, by position: the 1-based
    positions of the values each quantile lies between (lower ones, then upper ones) and the
    weight of the upper one, computed with numpy's own operations."""
    index = (n - 1) * np.asarray(probabilities, dtype=np.float64)
    lower = np.floor(index)
    gamma = index - lower
    lower = np.minimum(lower.astype(np.int64), n - 1)  # numpy takes the last value at the top
    upper = np.minimum(lower + 1, n - 1)
    return [int(p) + 1 for p in (*lower, *upper)], gamma


def interpolate(lower: np.ndarray, upper: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """numpy's linear interpolation between neighbours (np.quantile's _lerp): from the lower
    value below a weight of 1/2, from the upper one from there, so the result is numpy's bit for
    bit (SQL engines' quantile_cont and percentile_cont round differently)."""
    difference = upper - lower
    return np.where(gamma >= 0.5, upper - difference * (1 - gamma), lower + difference * gamma)


def _render(*nodes: exp.Expression, separator: str = ", ") -> Quoted:
    return Quoted(separator.join(n.sql(dialect=_TEMPLATE_DIALECT) for n in nodes))


def edge_pivot() -> Quoted:
    """The PSI bins' lower edges as one row: e1 .. e9 (``max(CASE WHEN bin = b THEN lower END)``)."""
    return _render(
        *(
            exp.alias_(exp.Max(this=exp.case().when(exp.column("bin").eq(b), exp.column("lower"))), f"e{b}")
            for b in range(1, PSI_BINS)
        )
    )


def _cell(count: str, cast: str, table: str = "f", value: exp.Expression | None = None) -> exp.Expression:
    """The cell of ``v`` (or ``value``) among ``f.<count>`` equal-width cells over [f.lo, f.hi]:
    -1 below, f.<count> above. Monotone in the value (every step of it is), so each cell holds a
    run of values."""
    v = value if value is not None else exp.column("v")
    lo, hi, k = exp.column("lo", table), exp.column("hi", table), exp.column(count, table)
    inside = exp.cast(
        exp.Floor(
            this=exp.Div(
                this=exp.Mul(this=exp.Paren(this=exp.Sub(this=v.copy(), expression=lo)), expression=k),
                expression=exp.Paren(this=exp.Sub(this=hi.copy(), expression=lo.copy())),
            )
        ),
        cast,
    )
    return (
        exp.case()
        .when(v.copy() < lo.copy(), exp.Literal.number(-1))
        .when(v.copy() > hi.copy(), k.copy())
        .when(hi.copy().eq(lo.copy()), exp.Literal.number(0))
        .else_(
            exp.Anonymous(
                this="least", expressions=[exp.Sub(this=k.copy(), expression=exp.Literal.number(1)), inside]
            )
        )
    )


def fine_expression(table: str = "f") -> Quoted:
    """Exact mode's cell of ``v``: ``FINE_CELLS`` cells (f.kf) over the reference range."""
    return _render(_cell("kf", "BIGINT", table))


def _edges_below(value: exp.Expression, table: str, prefix: str, strict: bool) -> exp.Expression:
    """How many of <table>.<prefix>1 .. <prefix>9 are <= value (< value when ``strict``); a
    missing (merged) edge is NULL and counts 0."""
    terms = []
    for b in range(1, PSI_BINS):
        edge = exp.column(f"{prefix}{b}", table=table)
        test = (
            exp.GT(this=value.copy(), expression=edge)
            if strict
            else exp.GTE(this=value.copy(), expression=edge)
        )
        terms.append(exp.case().when(test, exp.Literal.number(1)).else_(exp.Literal.number(0)))
    total = terms[0]
    for term in terms[1:]:
        total = exp.Add(this=total, expression=term)
    return exp.Paren(this=total)


def _search_edges(value: exp.Expression, table: str, low: int, high: int) -> exp.Expression:
    """How many of <table>.e1 .. e<high> are <= value, known to be at least ``low``: one
    comparison per halving. The edges ascend strictly and only the last ones may be missing
    (NULL: merged), so whether value >= e_b holds for a leading run of b, and a NULL edge takes
    the ELSE branch as a missing edge counts 0."""
    if low == high:
        return exp.Literal.number(low)
    middle = (low + high + 1) // 2
    test = exp.GTE(this=value.copy(), expression=exp.column(f"e{middle}", table=table))
    return (
        exp.case()
        .when(test, _search_edges(value, table, middle, high))
        .else_(_search_edges(value, table, low, middle - 1))
    )


def bin_expression(table: str = "e", value_table: str | None = None) -> Quoted:
    """The PSI bin of ``v`` (or <value_table>.v): how many edges are <= v (numpy's
    searchsorted, side right), by a binary search over the edges: 3-4 comparisons per value
    instead of 9 (binned mode evaluates it for every row of the window: issue 17, a 1M-value
    grouping by cell and bin 39 ms instead of 47 ms)."""
    return _render(exp.Paren(this=_search_edges(exp.column("v", value_table), table, 0, PSI_BINS - 1)))


def edge_cells() -> Quoted:
    """The fine cell of each PSI edge, c1 .. c9 (from ``e``'s e1 .. e9 over ``f``; NULL for a
    merged edge)."""

    def cell(edge: exp.Column) -> exp.Expression:  # least() skips NULLs: keep a missing edge NULL
        return exp.case().when(edge.is_(exp.null()), exp.null()).else_(_cell("kf", "BIGINT", "f", edge))

    return _render(*(exp.alias_(cell(exp.column(f"e{b}", "e")), f"c{b}") for b in range(1, PSI_BINS)))


def cell_bin(table: str = "g") -> Quoted:
    """The PSI bin of every value of fine cell <table>.fine when no edge lies in that cell: how
    many edge cells (ef.c1 .. c9) are below it. The cell is monotone in the value, so a value
    in a later cell than an edge's is above that edge, and one in an earlier cell below it."""
    return _render(_edges_below(exp.column("fine", table), "ef", "c", strict=True))


def edge_cell_match(table: str = "g") -> Quoted:
    """``<table>.fine`` is the cell of some PSI edge (TRUE or FALSE, never NULL)."""
    cells = [exp.column(f"c{b}", "ef") for b in range(1, PSI_BINS)]
    return _render(
        exp.func("coalesce", exp.In(this=exp.column("fine", table), expressions=cells), exp.false())
    )


def cell_expression() -> Quoted:
    """Binned mode's cell of ``v``: ``CELLS`` cells (f.k) over [f.lo, f.hi]. The same
    expression counts the reference, so both samples fall into identical cells."""
    return _render(_cell("k", "INTEGER"))


_DIVERGENCE = """
divergence AS MATERIALIZED (
    SELECT sum((greatest(q, {epsilon}) - greatest(p, {epsilon}))
               * ln(greatest(q, {epsilon}) / greatest(p, {epsilon}))) AS psi,
           sqrt(greatest(sum(CASE WHEN p > 0 THEN p * ln(2 * p / (p + q)) ELSE 0 END
                           + CASE WHEN q > 0 THEN q * ln(2 * q / (p + q)) ELSE 0 END) / 2, 0)) AS js
    FROM shares
),"""

_SHARES = """
shares AS (
    SELECT CAST(r.n AS DOUBLE) / t.nr AS p, CAST(coalesce(c.n, 0) AS DOUBLE) / t.nc AS q
    FROM indb.monitor_bins AS r CROSS JOIN totals AS t LEFT JOIN cur_bins AS c ON c.bin = r.bin
    WHERE r.monitor = $1 AND r.feature = {name} AND r.grid = 'psi' AND t.nc > 0
),"""

# The window's PSI bin counts from its cells (numeric_exact): a cell holding no edge lies in one
# bin; the values of the cells holding one were resolved with the flagged cells (points).
_CELL_BINS = """
cur_bins AS (
    SELECT bin, sum(n) AS n FROM (
        SELECT {cell_bin} AS bin, g.nc AS n FROM gaps AS g, ef WHERE g.nc > 0 AND NOT {edge_cell_match}
        UNION ALL
        SELECT {point_bin} AS bin, g.nc AS n FROM points AS g, e, ef WHERE g.nc > 0 AND {edge_cell_match}
    ) AS u GROUP BY bin
),"""

_BINNED_BINS = """
cur_bins AS (SELECT bin, sum(n) AS n FROM pass GROUP BY bin),"""

INSERT_TAIL = """
SELECT $2, $1, $3, $4, {name}, m.metric, NULL, m.value,
       coalesce(t1.threshold, t2.threshold),
       CASE WHEN m.value IS NULL OR coalesce(t1.threshold, t2.threshold) IS NULL THEN NULL
            WHEN coalesce(t1.direction, t2.direction) = 'below'
                THEN m.value < coalesce(t1.threshold, t2.threshold)
            ELSE m.value >= coalesce(t1.threshold, t2.threshold) END,
       CAST(t.nr AS BIGINT), CAST(t.nc AS BIGINT)
FROM metrics AS m CROSS JOIN totals AS t
LEFT JOIN indb.monitor_thresholds AS t1 ON t1.monitor = $1 AND t1.feature = {name} AND t1.metric = m.metric
LEFT JOIN indb.monitor_thresholds AS t2 ON t2.monitor = $1 AND t2.feature = '*' AND t2.metric = m.metric
WHERE t.nc > 0"""


def _fragment(text: str, name: Quoted) -> Quoted:
    """A CTE fragment above with its slots filled (the column's name as a literal)."""
    return Quoted(
        fill(
            text,
            name=name,
            edge_pivot=edge_pivot(),
            bin_expression=bin_expression(),
            cell_bin=cell_bin(),
            point_bin=bin_expression(value_table="g"),
            edge_cell_match=edge_cell_match(),
            epsilon=Quoted(repr(EPSILON)),
        )
    )


def reference_statements(backend: Backend, mode: str) -> list[str]:
    """Run per numeric column at create, after its reference values are stored ($monitor,
    $feature): the reference side of the statement :func:`column_statements` runs."""
    if mode != "exact":
        return []
    return [
        backend.render(
            "monitoring",
            "reference_fine_cells",
            fine_expression=fine_expression("f"),
            fine_cells=Quoted(str(FINE_CELLS)),
        )
    ]


def column_statements(
    backend: Backend, window: Quoted, feature: str, kind: str, mode: str
) -> list[tuple[str, str]]:
    """(purpose, SQL) run per window for one monitored column, reading the window's table."""
    q = backend.quote
    name = backend.literal(feature)
    slots = {
        "window": window,
        "column": q(feature),
        "name": name,
        "insert_tail": _fragment(INSERT_TAIL, name),
        "epsilon": Quoted(repr(EPSILON)),
        "ks_pvalue": backend.scalar_function("indb_ks_pvalue"),
        "chi2_pvalue": backend.scalar_function("indb_chi2_pvalue"),
    }
    if kind == "categorical":
        # One statement, one grouping of the window's column: the metrics and the new categories.
        return [(f"drift {feature}", backend.render("monitoring", "categorical", **slots))]
    divergence = _SHARES + _DIVERGENCE
    if mode == "binned":
        statement = backend.render(
            "monitoring",
            "numeric_binned",
            edge_pivot=edge_pivot(),
            bin_expression=bin_expression(),
            cell_expression=cell_expression(),
            binned_psi_ctes=_fragment(_BINNED_BINS + divergence, name),
            **slots,
        )
    else:
        statement = backend.render(
            "monitoring",
            "numeric_exact",
            psi_ctes=_fragment(_CELL_BINS + divergence, name),
            fine_expression=fine_expression(),
            edge_pivot=edge_pivot(),
            edge_cells=edge_cells(),
            edge_cell_match=edge_cell_match(),
            fine_cells=Quoted(str(FINE_CELLS)),
            **slots,
        )
    return [(f"drift {feature}", statement)]
