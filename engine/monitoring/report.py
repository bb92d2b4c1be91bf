"""``indb monitor report``: one self-contained HTML page (inline SVG, no scripts, no network).

Drift per column over time against its threshold, quality per model version over time, and
the reference against the latest window for the columns that drifted most.
"""

from __future__ import annotations

import html
import json

import numpy as np
import pandas as pd

from indb import charts
from indb.backends.base import Backend
from indb.monitoring import fairness, monitors
from indb.monitoring import importance as attributions
from indb.sql import statement

CHART_METRIC = {"numeric": "wasserstein", "categorical": "js"}
QUALITY = {"classification": "accuracy", "regression": "rmse"}


def _distribution(backend: Backend, monitor: dict, feature: str, kind: str, window) -> str:
    q = backend.quote
    time = monitor.get("time_column")
    slots = {
        "view": q(monitor["schema_name"], f"{monitor['deployment']}_scored"),
        "column": q(feature),
        "time": q(time if isinstance(time, str) else "scored_at"),
    }
    params = {"monitor": monitor["name"], "feature": feature}
    end = window + pd.Timedelta(seconds=int(monitor["window_seconds"]))
    if kind == "categorical":
        ref = backend.query(statement("monitoring", "report_reference_categories", backend.dialect), params)
        cur = backend.query(
            backend.render("monitoring", "report_window_categories", **slots), {"start": window, "end": end}
        )
        labels = list(dict.fromkeys([*ref.category, *cur.sort_values("n", ascending=False).category]))[:12]
        r = ref.set_index("category").n.reindex(labels).fillna(0).to_numpy(float)
        c = cur.set_index("category").n.reindex(labels).fillna(0).to_numpy(float)
        reference, current = r / max(ref.n.sum(), 1), c / max(cur.n.sum(), 1)
        return charts.paired_bars(f"{feature}: categories", labels, reference, current)
    edges = backend.query(statement("monitoring", "report_reference_bins", backend.dialect), params)
    values = backend.query(
        backend.render("monitoring", "report_window_values", **slots), {"start": window, "end": end}
    ).v.to_numpy(float)
    inner = edges.lower.to_numpy(float)[1:]
    current = np.bincount(np.searchsorted(inner, values, side="right"), minlength=len(edges)) / max(
        len(values), 1
    )
    reference = edges.n.to_numpy(float) / max(edges.n.sum(), 1)
    labels = ["< " + f"{inner[0]:.3g}" if len(inner) else "all"] + [f">= {e:.3g}" for e in inner]
    return charts.paired_bars(f"{feature}: reference quantile bins", labels, reference, current)


def render(backend: Backend, name: str) -> str:
    monitor = monitors.get(backend, name)
    results = backend.query(statement("monitoring", "results", backend.dialect), {"monitor": name})
    alerts = backend.query(statement("monitoring", "alerts", backend.dialect), {"monitor": name})
    kinds = dict(backend.rows(statement("monitoring", "report_features", backend.dialect), {"monitor": name}))
    sections, scores = [], {}
    drift = results[results.model_version.isna()]
    for feature, kind in kinds.items():
        metric = CHART_METRIC[kind]
        rows = drift[(drift.feature == feature) & (drift.metric == metric)].set_index("window_start")
        if rows.empty:
            continue
        threshold = rows.threshold.dropna().iloc[-1] if rows.threshold.notna().any() else None
        series = pd.to_numeric(rows.value, errors="coerce")
        sections.append(charts.line_chart(f"{feature}: {metric}", {metric: series}, threshold))
        if threshold:
            scores[feature] = float(series.iloc[-1]) / threshold
    fairness_part = fairness.report_section(results)
    importance_part = attributions.report_section(backend, name, results)
    quality_metric = QUALITY.get(monitor["task"], "accuracy")
    quality = results[(results.metric == quality_metric) & results.model_version.notna()]
    lines = {
        f"version {int(v)}": pd.to_numeric(g.set_index("window_start").value, errors="coerce")
        for v, g in quality.groupby("model_version")
    }
    quality_chart = charts.line_chart(f"{quality_metric} per model version (labeled rows only)", lines)
    latest = drift.window_start.max() if not drift.empty else None
    distributions = [
        _distribution(backend, monitor, feature, kinds[feature], latest)
        for feature in sorted(scores, key=scores.get, reverse=True)[:3]
        if latest is not None
    ]
    open_alerts = alerts[alerts.status == "open"]
    alert_rows = "".join(
        f"<tr><td>{a.window_start:%Y-%m-%d %H:%M}</td><td>{html.escape(str(a.feature))}</td>"
        f"<td>{html.escape(str(a.metric))}</td>"
        f"<td>{'' if pd.isna(a.model_version) else int(a.model_version)}</td>"
        f"<td>{a.value:.4g}</td><td>{a.threshold:g}</td></tr>"
        for a in open_alerts.itertuples()
    )
    reference = html.escape(json.dumps(json.loads(monitor["reference"])))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>indb monitor {html.escape(name)}</title>
<style>body{{font-family:sans-serif;margin:24px;color:#222}} svg{{margin:6px;border:1px solid #eee}}
table{{border-collapse:collapse}} td,th{{border:1px solid #ddd;padding:3px 8px;font-size:13px}}</style></head>
<body>
<h1>Monitor {html.escape(name)}</h1>
<p>Deployment <b>{html.escape(str(monitor["deployment"]))}</b>,
windows of {html.escape(str(monitor["window_size"]))},
{html.escape(str(monitor["mode"]))} mode; reference {reference} ({int(monitor["n_reference"]):,} rows);
last run {monitor["last_run_at"]}.</p>
<h2>Open alerts ({len(open_alerts)})</h2>
<table><tr><th>window</th><th>column</th><th>metric</th><th>version</th><th>value</th><th>threshold</th></tr>{alert_rows}</table>
<h2>Drift per column over time</h2>
{"".join(sections) or "<p>No drift results yet: run the monitor.</p>"}
<h2>Quality over time</h2>
{quality_chart or "<p>No labels have arrived yet.</p>"}
<h2>Most drifted columns: reference against the latest window</h2>
{"".join(distributions) or "<p>Nothing to show.</p>"}
{f"<h2>Fairness</h2>{fairness_part}" if fairness_part else ""}
{f"<h2>Feature importance and attribution drift</h2>{importance_part}" if importance_part else ""}
</body></html>
"""
