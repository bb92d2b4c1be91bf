"""``indb monitor report``: one self-contained HTML page (inline SVG, no scripts, no network).

Drift per column over time against its threshold, quality per model version over time, and
the reference against the latest window for the columns that drifted most.
"""

from __future__ import annotations

import html
import json

import numpy as np
import pandas as pd

from indb.backends.base import Backend
from indb.monitoring import monitors
from indb.sql import statement

CHART_METRIC = {"numeric": "wasserstein", "categorical": "js"}
QUALITY = {"classification": "accuracy", "regression": "rmse"}
COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
WIDTH, HEIGHT, PAD = 520, 180, 36


def _line_chart(title: str, series: dict[str, pd.Series], threshold: float | None = None) -> str:
    """Lines over window starts; a dashed red line at the threshold."""
    values = [v for s in series.values() for v in s.dropna().tolist()]
    if threshold is not None:
        values.append(threshold)
    if not values:
        return ""
    times = sorted({t for s in series.values() for t in s.index})
    low, high = min(0.0, min(values)), max(values) * 1.1 or 1.0
    span_x = max(len(times) - 1, 1)

    def x(t):
        return PAD + (times.index(t) / span_x) * (WIDTH - 2 * PAD)

    def y(v):
        return HEIGHT - PAD + (PAD * 2 - HEIGHT) * (v - low) / (high - low)

    parts = [
        f'<svg width="{WIDTH}" height="{HEIGHT}" role="img"><title>{html.escape(title)}</title>',
        f'<text x="{PAD}" y="16" font-weight="bold">{html.escape(title)}</text>',
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#999"/>',
        f'<text x="2" y="{y(high / 1.1):.1f}" font-size="10">{high / 1.1:.3g}</text>',
        f'<text x="2" y="{HEIGHT - PAD}" font-size="10">{low:.3g}</text>',
    ]
    if times:
        parts.append(f'<text x="{PAD}" y="{HEIGHT - 8}" font-size="10">{times[0]:%Y-%m-%d %H:%M}</text>')
        parts.append(
            f'<text x="{WIDTH - PAD}" y="{HEIGHT - 8}" font-size="10" text-anchor="end">'
            f"{times[-1]:%Y-%m-%d %H:%M}</text>"
        )
    if threshold is not None:
        parts.append(
            f'<line x1="{PAD}" y1="{y(threshold):.1f}" x2="{WIDTH - PAD}" y2="{y(threshold):.1f}" '
            f'stroke="#d62728" stroke-dasharray="4 3"/><text x="{WIDTH - PAD}" y="{y(threshold) - 3:.1f}" '
            f'font-size="10" text-anchor="end" fill="#d62728">threshold {threshold:g}</text>'
        )
    for i, (name, s) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        points = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in s.dropna().items())
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/>')
        for t, v in s.dropna().items():
            parts.append(
                f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="2.5" fill="{color}">'
                f"<title>{v:.4g}</title></circle>"
            )
        if len(series) > 1:
            parts.append(
                f'<text x="{WIDTH - PAD + 4}" y="{PAD + 14 * i}" font-size="10" fill="{color}">'
                f"{html.escape(name)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _bars(title: str, labels: list[str], reference: np.ndarray, current: np.ndarray) -> str:
    """Paired bars: reference (grey) and the latest window (blue) shares per bin or category."""
    n = max(len(labels), 1)
    slot = (WIDTH - 2 * PAD) / n
    top = max(float(np.max(reference, initial=0)), float(np.max(current, initial=0))) or 1.0
    parts = [
        f'<svg width="{WIDTH}" height="{HEIGHT}" role="img"><title>{html.escape(title)}</title>',
        f'<text x="{PAD}" y="16" font-weight="bold">{html.escape(title)}</text>',
        f'<text x="{WIDTH - PAD}" y="16" font-size="10" text-anchor="end">'
        '<tspan fill="#999">reference</tspan> '
        '<tspan fill="#1f77b4">latest window</tspan></text>',
    ]
    for i, (label, r, c) in enumerate(zip(labels, reference, current, strict=True)):
        x0 = PAD + i * slot
        for j, (share, color) in enumerate(((r, "#999"), (c, "#1f77b4"))):
            h = (HEIGHT - 2 * PAD) * share / top
            parts.append(
                f'<rect x="{x0 + j * slot * 0.4 + slot * 0.1:.1f}" y="{HEIGHT - PAD - h:.1f}" '
                f'width="{slot * 0.4:.1f}" height="{h:.1f}" fill="{color}"><title>{share:.3f}</title></rect>'
            )
        parts.append(
            f'<text x="{x0 + slot / 2:.1f}" y="{HEIGHT - PAD + 12}" font-size="9" '
            f'text-anchor="middle">{html.escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


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
        return _bars(f"{feature}: categories", labels, r / max(ref.n.sum(), 1), c / max(cur.n.sum(), 1))
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
    return _bars(f"{feature}: reference quantile bins", labels, reference, current)


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
        sections.append(_line_chart(f"{feature}: {metric}", {metric: series}, threshold))
        if threshold:
            scores[feature] = float(series.iloc[-1]) / threshold
    quality_metric = QUALITY.get(monitor["task"], "accuracy")
    quality = results[(results.metric == quality_metric) & results.model_version.notna()]
    lines = {
        f"version {int(v)}": pd.to_numeric(g.set_index("window_start").value, errors="coerce")
        for v, g in quality.groupby("model_version")
    }
    quality_chart = _line_chart(f"{quality_metric} per model version (labeled rows only)", lines)
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
</body></html>
"""
