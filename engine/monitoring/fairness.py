"""Group fairness per window and model version: ``create_monitor(..., protected=[...], favorable=...)``.

For each protected attribute the monitor stores, per model version and group, ``group_rows``,
``group_selection_rate`` (share of rows predicted ``favorable``, over every scored row of the
window, labeled or not) and, over the rows whose label has arrived, ``group_labeled_rows``,
``group_true_positive_rate``, ``group_false_positive_rate`` and ``group_precision``; the group
is the result row's ``category``. Summary rows (``category`` NULL) hold fairlearn's
``demographic_parity_difference`` and ``_ratio``, ``equal_opportunity_difference`` and
``equalized_odds_difference`` (worst case, between groups), with thresholds and alerts like
every other metric. The SQL is sql/fairness.sql's ``fairness`` statement.

Where indb differs from fairlearn, on purpose:

* a NULL attribute value is a group of its own (result ``category`` NULL on a ``group_*``
  metric); fairlearn refuses missing sensitive values;
* a rate with an empty denominator is NULL (TPR of a group with no positive labels, FPR with no
  negatives, precision with nothing selected), and the summaries skip it; fairlearn (through
  scikit-learn's confusion matrix) reports 0 there and counts that 0 in its differences.

The favorable outcome is one of the classifier's classes (with more than two classes: that
class against the rest). Regressors are refused: a threshold on the predicted value would be a
second model decision indb would be inventing.

A protected attribute is a request column (a model input or not), a feature recorded in
``<table>_predictions`` at scoring, or a feature of a set a ``features_from`` deployment scores
from: then each row's group is its entity's latest value with event time at or before the
row's ``scored_at`` (the feature set's created time and TTL are not applied).
"""

from __future__ import annotations

import json

from sqlglot import exp

from indb import identifiers
from indb.backends.base import Backend
from indb.errors import NotFoundError
from indb.identifiers import Quoted
from indb.monitoring.thresholds import MonitorError, number
from indb.sql import statement

# Summary metrics and the direction that alerts: the four-fifths rule by default.
SUMMARY = {
    "demographic_parity_difference": "above",
    "demographic_parity_ratio": "below",
    "equal_opportunity_difference": "above",
    "equalized_odds_difference": "above",
}
DEFAULT_THRESHOLDS = {"demographic_parity_ratio": 0.8}
GROUP_METRICS = (
    "group_rows",
    "group_labeled_rows",
    "group_selection_rate",
    "group_true_positive_rate",
    "group_false_positive_rate",
    "group_precision",
)


def stored_features(backend: Backend, table: str, request: dict) -> dict:
    """Features of the feature sets a ``features_from`` deployment scores from, by name: the
    feature set, when its entity keys are request columns (a protected attribute need not be
    a model input)."""
    ((info,),) = backend.rows(statement("fairness", "deployment_features", backend.dialect), {"table": table})
    if not info:
        return {}
    from indb.feature_store import sets

    found = {}
    for name, version in (json.loads(info) if isinstance(info, str) else info).get("feature_sets", []):
        fs = sets.get(backend, name, version)
        if all(k in request for k in fs.keys):
            found |= {f: fs for f in fs.feature_names if f not in found}
    return found


def check(protected, favorable, task: str, classes, available: dict) -> tuple[list[str], str | None]:
    """The protected attributes (each a column the window can read: ``available`` maps it to
    ``r`` request, ``p`` recorded at scoring, or the feature set that holds it) and the
    favorable class as text."""
    if protected is None and favorable is None:
        return [], None
    if protected is None or favorable is None:
        raise MonitorError("fairness needs both protected=[columns] and favorable=<class>; got only one")
    names = [protected] if isinstance(protected, str) else list(protected)
    if not names:
        raise MonitorError("protected= names no column")
    for name in names:
        identifiers.column_name(name)
        if name not in available:
            raise NotFoundError("protected column", name, sorted(available))
    if len(set(names)) != len(names):
        raise MonitorError(f"protected= names a column twice: {names}")
    if task != "classification":
        raise MonitorError(
            "fairness metrics need a classifier's predicted class; this model is a regressor "
            "(compare groups with features=[...] drift or accuracy per window instead)"
        )
    from indb.monitoring.accuracy import _text

    known = [_text(c) for c in classes or []]
    if _text(favorable) not in known:
        raise MonitorError(f"favorable={favorable!r} is not a class of the model; its classes are {known}")
    return names, _text(favorable)


def split_thresholds(thresholds: dict | None, protected: list[str]) -> tuple[dict, list]:
    """(the thresholds the drift/accuracy code reads, fairness rows (feature, metric, value,
    direction)): ``{"demographic_parity_ratio": 0.8}`` for every attribute, ``{"sex":
    {"equalized_odds_difference": 0.1}}`` for one; None removes a default."""
    rows: dict[tuple[str, str], float | None] = {
        (name, metric): value for name in protected for metric, value in DEFAULT_THRESHOLDS.items()
    }
    rest = {}
    for key, value in (thresholds or {}).items():
        if key in SUMMARY:
            rows |= {(name, key): number(value, key) for name in protected}
            if not protected:
                raise MonitorError(f"threshold {key!r} is a fairness metric: add protected= and favorable=")
        elif isinstance(value, dict) and key in protected:
            mine = {m: v for m, v in value.items() if m in SUMMARY}
            for metric, limit in mine.items():
                rows[(key, metric)] = number(limit, f"{key}.{metric}")
            if len(mine) < len(value):
                rest[key] = {m: v for m, v in value.items() if m not in SUMMARY}
        else:
            rest[key] = value
    return rest, [(f, m, v, SUMMARY[m]) for (f, m), v in rows.items() if v is not None]


def store(backend: Backend, monitor: str, favorable: str) -> None:
    backend.execute(
        statement("fairness", "insert_favorable", backend.dialect),
        {"monitor": monitor, "category": favorable},
    )


def statements(
    backend: Backend, window: Quoted, ground_truth: Quoted, protected: dict, schema: str
) -> list[tuple[str, str]]:
    """(purpose, SQL) per protected attribute (name -> ``r``/``p``, read from the window's
    table, or the feature set holding it), reading the window's table."""
    labels = Quoted(backend.render("monitoring", "latest_labels", window=window, ground_truth=ground_truth))
    return [
        (
            f"fairness {name}",
            backend.render(
                "fairness",
                "fairness",
                window=window,
                labels=labels,
                group=_group(name, source, schema),
                name=backend.literal(name),
            ),
        )
        for name, source in protected.items()
    ]


def _group(name: str, source, schema: str) -> Quoted:
    """The group of a window row ``v``: its column, or for a feature kept in a feature set,
    the entity's value as of the row's scoring time (its latest row with event time at or
    before ``scored_at``; rendered in the statements' dialect, DuckDB's, and transpiled with
    them). The feature set's table is schema-qualified, as indb.run_monitor requires."""
    from indb.feature_store import times, trees

    if isinstance(source, str):
        node: exp.Expression = exp.column(name, table="v", quoted=True)
    else:
        fs = source
        at = times.convert(exp.column("scored_at", table="v", quoted=True), "TIMESTAMP", fs.time_type)
        table = exp.Table(
            this=exp.to_identifier(fs.table, quoted=True), db=exp.to_identifier(schema, quoted=True)
        )
        keys = [trees.column(k, "h").eq(trees.column(k, "v")) for k in fs.keys]
        query = (
            exp.select(trees.column(name, "h"))
            .from_(table.as_("h", quoted=True))
            .where(exp.and_(*keys, exp.LTE(this=trees.column(fs.event_time, "h"), expression=at)))
            .order_by(*(trees.desc(o) for o in trees.order_by(fs, "h")))
            .limit(1)
        )
        node = exp.Subquery(this=query)
    return Quoted(exp.cast(node, "VARCHAR").sql(dialect="duckdb"))


def report_section(results) -> str:
    """The report's fairness part: per protected attribute, the summary metrics of the latest
    window against their thresholds, the per-group table and selection rates, and the
    demographic parity ratio over time per model version."""
    import html

    import pandas as pd

    from indb import charts

    mine = results[results.metric.isin([*SUMMARY, *GROUP_METRICS])]
    if mine.empty:
        return ""
    parts = []
    for attribute, rows in mine.groupby("feature", sort=True):
        name = html.escape(str(attribute))
        parts.append(f"<h3>Protected attribute {name}</h3>")
        ratio = rows[rows.metric == "demographic_parity_ratio"]
        threshold = ratio.threshold.dropna().iloc[-1] if ratio.threshold.notna().any() else None
        lines = {
            f"version {int(v)}": pd.to_numeric(g.set_index("window_start").value, errors="coerce")
            for v, g in ratio.groupby("model_version")
        }
        parts.append(charts.line_chart(f"{attribute}: demographic parity ratio", lines, threshold))
        latest = rows[rows.window_start == rows.window_start.max()]
        for version, window in latest.groupby("model_version"):
            when = f"{window.window_start.iloc[0]:%Y-%m-%d %H:%M}"
            summary = window[window.category.isna() & window.metric.isin(list(SUMMARY))]
            cells = "".join(
                f"<tr><td>{html.escape(m.metric)}</td><td>{_number_text(m.value)}</td>"
                f"<td>{'' if pd.isna(m.threshold) else f'{m.threshold:g} ({SUMMARY[m.metric]})'}</td>"
                f"<td>{'ALERT' if pd.notna(m.drifted) and bool(m.drifted) else ''}</td></tr>"
                for m in summary.itertuples()
            )
            parts.append(
                f"<p>Window {when}, model version {int(version)}</p>"
                "<table><tr><th>summary metric</th><th>value</th><th>threshold</th><th></th></tr>"
                f"{cells}</table>"
            )
            groups = window[window.metric.str.startswith("group_")].copy()
            groups["group"] = groups.category.where(groups.category.notna(), "NULL")
            table = groups.pivot_table(index="group", columns="metric", values="value", dropna=False)
            columns = [c for c in GROUP_METRICS if c in table.columns]
            head = "".join(f"<th>{html.escape(c.removeprefix('group_'))}</th>" for c in columns)
            body = "".join(
                f"<tr><td>{html.escape(str(g))}</td>"
                + "".join(f"<td>{_number_text(row[c])}</td>" for c in columns)
                + "</tr>"
                for g, row in table.iterrows()
            )
            parts.append(f"<table><tr><th>group</th>{head}</tr>{body}</table>")
            if "group_selection_rate" in table.columns:
                parts.append(
                    charts.bar_chart(
                        f"{attribute}: selection rate per group (version {int(version)})",
                        [str(g) for g in table.index],
                        list(table.group_selection_rate),
                    )
                )
    return "".join(parts)


def _number_text(value) -> str:
    import pandas as pd

    return "NULL" if value is None or pd.isna(value) else f"{float(value):.4g}"
