"""Global importance and attribution drift: ``create_monitor(..., importance=True)``.

Reads the deployment's ``<table>_explanations`` (``id``, ``feature``, ``contribution``: one row
per scored row and input column, written at scoring time by ``deploy(..., explain=True)``);
the model version and the window come from the window's rows, joined on ``id``.

Per window and model version, per feature: ``importance`` (mean |contribution|, SageMaker
Clarify's ``mean_abs`` global SHAP), ``importance_share`` (its share of the total),
``importance_rank`` (1 = largest) and ``importance_share_change`` (share minus the
reference's). Attribution drift against the reference, on feature ``*``:

* ``attribution_ndcg``: Clarify's definition, nDCG of the window's ranking with the
  reference's importance a(f) as relevance, DCG = sum_i a(F_i) / log2(i + 1) over the window's
  order F, divided by the same sum over the reference's own order; 1 when the order is the
  same. Clarify flags a violation below 0.9, the default threshold here.
* ``attribution_shift``: half the L1 distance between the normalized importances (0..1).

The reference importance is computed once, at creation, from the explanations of the
reference rows (a time window of the deployment's own rows, or a query returning their ids).
"""

from __future__ import annotations

from indb import identifiers
from indb.backends.base import Backend
from indb.identifiers import Quoted
from indb.monitoring.thresholds import MonitorError, number
from indb.sql import statement

SUMMARY = {"attribution_ndcg": "below", "attribution_shift": "above"}
DEFAULT_THRESHOLDS = {"attribution_ndcg": 0.9}
FEATURE_METRICS = ("importance", "importance_share", "importance_rank", "importance_share_change")
COLUMNS = ("id", "feature", "contribution")


def explanations_table(backend: Backend, table: str) -> str:
    """``<table>_explanations``, checked to exist with the columns the statements read."""
    name = f"{identifiers.table_name(table)}_explanations"
    columns = backend.table_columns(name)
    if columns is None:
        raise MonitorError(
            f"importance=True reads {name}, which does not exist: deploy the model with explain=True"
        )
    missing = [c for c in COLUMNS if c not in columns]
    if missing:
        raise MonitorError(f"{name} has no column(s) {missing}; it has {sorted(columns)}")
    return name


def split_thresholds(thresholds: dict | None, enabled: bool) -> tuple[dict, list]:
    """(the rest, rows (feature '*', metric, value, direction)); None removes a default."""
    rows = dict(DEFAULT_THRESHOLDS) if enabled else {}
    rest = {}
    for key, value in (thresholds or {}).items():
        if key in SUMMARY:
            rows[key] = number(value, key)
        else:
            rest[key] = value
    if not enabled and rows:
        raise MonitorError(f"thresholds {sorted(rows)} are attribution drift metrics: add importance=True")
    return rest, [("*", m, v, SUMMARY[m]) for m, v in rows.items() if v is not None]


def store_reference(backend: Backend, monitor: str, explanations: Quoted, temp: Quoted, present: set) -> None:
    if "id" not in present:
        raise MonitorError(
            "importance=True needs a reference of the deployment's own rows (a time window, or a "
            "query returning their id): attribution drift compares against their explanations"
        )
    backend.execute(
        backend.render("fairness", "reference_importance", explanations=explanations, temp=temp),
        {"monitor": monitor},
    )
    ((found,),) = backend.rows(
        statement("fairness", "reference_importance_rows", backend.dialect), {"monitor": monitor}
    )
    if not found:
        raise MonitorError("the reference rows have no explanations: were they scored with explain=True?")


def statements(backend: Backend, window: Quoted, explanations: Quoted) -> list[tuple[str, str]]:
    return [
        ("importance", backend.render("fairness", "importance", window=window, explanations=explanations))
    ]


WINDOWS_SHOWN = 4  # the report draws the importance bars of the latest windows


def report_section(backend: Backend, monitor: str, results) -> str:
    """The report's importance part: attribution nDCG over time per model version, and bars of
    mean |contribution| per feature for the latest windows with the reference's as ticks."""
    import pandas as pd

    from indb import charts

    rows = results[results.metric.isin([*FEATURE_METRICS, *SUMMARY])]
    if rows.empty:
        return ""
    reference = backend.query(
        statement("fairness", "report_reference_importance", backend.dialect), {"monitor": monitor}
    ).set_index("feature")
    ndcg = rows[rows.metric == "attribution_ndcg"]
    threshold = ndcg.threshold.dropna().iloc[-1] if ndcg.threshold.notna().any() else None
    lines = {
        f"version {int(v)}": pd.to_numeric(g.set_index("window_start").value, errors="coerce")
        for v, g in ndcg.groupby("model_version")
    }
    parts = [charts.line_chart("attribution drift: nDCG of the importance ranking", lines, threshold)]
    importance = rows[rows.metric == "importance"]
    for start in sorted(importance.window_start.unique())[-WINDOWS_SHOWN:]:
        for version, window in importance[importance.window_start == start].groupby("model_version"):
            window = window.sort_values("value", ascending=False)
            when = f"{pd.Timestamp(start):%Y-%m-%d %H:%M}"
            parts.append(
                charts.bar_chart(
                    f"mean |contribution|, window {when}, version {int(version)}",
                    list(window.feature),
                    list(window.value),
                    [reference.importance.get(f) for f in window.feature],
                )
            )
    return "".join(parts)
