"""The data of each page: a few ``Shown`` queries (rows + their SQL) and charts drawn from them.

Every number a page shows comes from one of its ``Shown`` queries, so "show SQL" reproduces
it. Deployment pages read a bounded time range (``days`` before the latest prediction) of the
deployment's prediction table, grouped by hour or day: never its rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from indb import charts, identifiers
from indb.backends.base import Backend
from indb.errors import NotFoundError
from indb.ui.queries import Shown, run

LIMIT = 200
QUALITY = {"classification": "accuracy", "regression": "rmse"}
DRIFT_DEFAULT = ("psi", "js", "wasserstein")


@dataclass
class Page:
    title: str
    template: str
    sections: dict[str, Shown] = field(default_factory=dict)
    charts: dict[str, list[str]] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def add(self, key: str, shown: Shown) -> Shown:
        self.sections[key] = shown
        return shown


def overview(backend: Backend) -> Page:
    page = Page("Overview", "overview.html")
    p = {"limit": LIMIT}
    page.add("counts", run(backend, "At a glance", "overview_counts"))
    page.add("models", run(backend, "Models", "overview_models", p))
    page.add("deployments", run(backend, "Deployments", "overview_deployments", p))
    page.add("alerts", run(backend, "Open alerts", "overview_alerts", p))
    page.add("failing_jobs", run(backend, "Failing jobs", "overview_failing_jobs", p))
    page.add("monitors", run(backend, "Monitors", "monitors", p))
    return page


def model(backend: Backend, name: str) -> Page:
    name = identifiers.model_name(name)
    page = Page(f"Model {name}", "model.html", extra={"name": name})
    p = {"model": name, "limit": LIMIT}
    versions = page.add("versions", run(backend, "Versions", "model_versions", p))
    if versions.refused is None and versions.empty:
        raise NotFoundError("model", name)
    page.add("aliases", run(backend, "Aliases", "model_aliases", {"model": name}))
    page.add("deployments", run(backend, "Deployments", "model_deployments", {"model": name}))
    page.add("leaderboard", run(backend, "Leaderboard", "model_leaderboard", p))
    lineage = page.add("lineage", run(backend, "Lineage", "model_lineage", p))
    page.charts = {"lineage": []}
    if not lineage.empty:
        page.charts["lineage"].append(charts.lineage_graph(f"lineage of {name}", _edges(lineage.frame)))
    page.add("requests", run(backend, "Stage requests", "model_stage_requests", p))
    audit = {"model": name, "versions": f"{name} v%", "limit": 50}
    page.add("audit", run(backend, "Audit trail", "model_audit", audit))
    return page


def _edges(frame: pd.DataFrame) -> list[tuple[tuple, str, tuple]]:
    def version(value):
        return None if pd.isna(value) else int(value)

    return [
        (
            (e.from_kind, str(e.from_name), version(e.from_version)),
            e.relation,
            (e.to_kind, str(e.to_name), version(e.to_version)),
        )
        for e in frame.itertuples()
    ]


def deployment(backend: Backend, table: str, days: int = 14) -> Page:
    table = identifiers.table_name(table)
    page = Page(f"Deployment {table}", "deployment.html", extra={"table": table, "days": days})
    found = page.add("deployment", run(backend, "Deployment", "deployment", {"deployment": table}))
    if found.refused is None and found.empty:
        raise NotFoundError("deployment", table)
    task = None if found.empty else found.frame.task.iloc[0]
    page.add("challengers", run(backend, "Challengers", "deployment_challengers", {"deployment": table}))
    predictions = backend.quote(f"{table}_predictions")
    latest = run(backend, "Latest prediction", "deployment_latest", predictions=predictions)
    page.charts = {"requests": [], "predictions": [], "quality": []}
    if latest.refused is None and not latest.empty and pd.notna(latest.frame.latest.iloc[0]):
        since = pd.Timestamp(latest.frame.latest.iloc[0]).floor("h") - pd.Timedelta(days=days)
        window = {"since": since.to_pydatetime()}
        hourly = page.add(
            "requests",
            run(
                backend,
                "Predictions per hour",
                "deployment_requests_per_hour",
                window,
                predictions=predictions,
            ),
        )
        if not hourly.empty:
            series = hourly.frame.set_index(pd.to_datetime(hourly.frame.hour)).predictions.astype(float)
            page.charts["requests"].append(charts.line_chart("predictions per hour", {"predictions": series}))
        if task == "classification":
            share = page.add(
                "predictions",
                run(
                    backend,
                    "Predicted class per day",
                    "deployment_class_share",
                    window,
                    predictions=predictions,
                ),
            )
            lines = {
                str(label): g.set_index(pd.to_datetime(g.day)).predictions.astype(float)
                for label, g in share.frame.groupby("prediction")
            }
            if lines:
                page.charts["predictions"].append(charts.line_chart("predictions per class per day", lines))
        else:
            summary = page.add(
                "predictions",
                run(
                    backend,
                    "Predicted value per day",
                    "deployment_value_summary",
                    window,
                    predictions=predictions,
                ),
            )
            if not summary.empty:
                frame = summary.frame.set_index(pd.to_datetime(summary.frame.day))
                lines = {c: frame[c].astype(float) for c in ("low", "mean", "high")}
                page.charts["predictions"].append(charts.line_chart("prediction per day", lines))
    else:
        page.extra["no_predictions"] = latest.refused or "no predictions yet"
        page.extra["predictions_refused"] = latest.refused is not None
    p = {"deployment": table, "limit": LIMIT}
    page.add("comparison", run(backend, "Champion against challengers", "deployment_comparison", p))
    page.add("humility", run(backend, "Humility events", "deployment_humility", p))
    metric = QUALITY.get(task or "", "accuracy")
    quality = page.add(
        "quality",
        run(backend, f"{metric} per version", "deployment_quality", {**p, "metric": metric}),
    )
    lines = {
        f"version {int(v)}": g.set_index(pd.to_datetime(g.window_start)).value.astype(float)
        for v, g in quality.frame.groupby("model_version")
    }
    if lines:
        page.charts["quality"].append(charts.line_chart(f"{metric} per model version", lines))
    page.add("monitors", run(backend, "Monitors", "deployment_monitors", {"deployment": table}))
    return page


def monitors(backend: Backend) -> Page:
    page = Page("Monitors", "monitors.html")
    page.add("monitors", run(backend, "Monitors", "monitors", {"limit": LIMIT}))
    return page


def monitor(backend: Backend, name: str, metric: str | None = None) -> Page:
    page = Page(f"Monitor {name}", "monitor.html", extra={"name": name})
    found = page.add("monitor", run(backend, "Monitor", "monitor", {"monitor": name}))
    if found.refused is None and found.empty:
        raise NotFoundError("monitor", name)
    features = page.add("features", run(backend, "Monitored columns", "monitor_features", {"monitor": name}))
    metrics = page.add("metrics", run(backend, "Drift metrics", "monitor_metrics", {"monitor": name}))
    known = list(metrics.frame.metric) if not metrics.empty else []
    if metric not in known:
        metric = next((m for m in DRIFT_DEFAULT if m in known), known[0] if known else "psi")
    page.extra.update(metric=metric, metrics=known)
    drift = page.add(
        "drift",
        run(
            backend,
            f"{metric} per column and window",
            "monitor_drift",
            {"monitor": name, "metric": metric, "limit": 5000},
        ),
    )
    page.charts = {"drift": [], "histograms": []}
    for feature, rows in drift.frame.groupby("feature", sort=True):
        series = rows.set_index(pd.to_datetime(rows.window_start)).value.astype(float)
        threshold = rows.threshold.dropna()
        page.charts["drift"].append(
            charts.line_chart(
                f"{feature}: {metric}",
                {metric: series},
                float(threshold.iloc[-1]) if len(threshold) else None,
            )
        )
    if not found.empty and not drift.empty and not features.empty:
        page.extra["histograms"] = _histograms(
            backend, page, found.frame.iloc[0], features.frame, drift.frame
        )
    page.add("alerts", run(backend, "Alerts", "monitor_alerts", {"monitor": name, "limit": LIMIT}))
    return page


def _histograms(backend: Backend, page: Page, spec, features: pd.DataFrame, drift: pd.DataFrame) -> list[str]:
    """Reference against the latest window, for the columns that drifted most."""
    latest = pd.Timestamp(drift.window_start.max())
    end = latest + pd.Timedelta(seconds=int(spec.window_seconds))
    last = drift[pd.to_datetime(drift.window_start) == latest]
    ranked = last.assign(score=last.value / last.threshold.replace(0, np.nan)).sort_values(
        "score", ascending=False
    )
    kinds = dict(zip(features.feature, features.kind, strict=True))
    time = spec.time_column if isinstance(spec.time_column, str) and spec.time_column else "scored_at"
    window = {"start": latest.to_pydatetime(), "end": end.to_pydatetime()}
    holder = f"{spec.deployment}_predictions" if time == "scored_at" else spec.deployment
    ids = run(
        backend,
        "Window ids",
        "monitor_window_ids",
        window,
        rows=backend.quote(spec.schema_name, holder),
        time=backend.quote(time),
    )
    if ids.refused or ids.empty or pd.isna(ids.frame.low.iloc[0]):
        return []
    window.update(low=int(ids.frame.low.iloc[0]), high=int(ids.frame.high.iloc[0]))
    shown = []
    for feature in [f for f in ranked.feature if f in kinds][:3]:
        slots = {
            "view": backend.quote(spec.schema_name, f"{spec.deployment}_scored"),
            "column": backend.quote(feature),
            "time": backend.quote(time),
        }
        params = {"monitor": spec["name"], "feature": feature, **window}
        statement = "monitor_categories" if kinds[feature] == "categorical" else "monitor_histogram"
        result = page.add(
            f"histogram_{feature}",
            run(
                backend,
                f"{feature}: reference against the window of {latest:%Y-%m-%d %H:%M}",
                statement,
                params,
                **slots,
            ),
        )
        if result.empty:
            continue
        frame = result.frame
        if kinds[feature] == "categorical":
            labels = [str(c) for c in frame.category]
        else:
            labels = [_bin_label(low, high) for low, high in zip(frame.lower, frame.upper, strict=True)]
        reference = frame.reference.to_numpy(float) / max(frame.reference.sum(), 1)
        current = frame.current.to_numpy(float) / max(frame.current.sum(), 1)
        page.charts["histograms"].append(charts.paired_bars(result.title, labels, reference, current))
        shown.append(feature)
    return shown


def _bin_label(low: float, high: float) -> str:
    if pd.isna(high):
        return f">= {low:.3g}"
    if not np.isfinite(low):
        return f"< {high:.3g}"
    return f"{low:.3g}"


def feature_sets(backend: Backend) -> Page:
    page = Page("Feature sets", "feature_sets.html")
    page.add("feature_sets", run(backend, "Feature sets", "feature_sets", {"limit": LIMIT}))
    return page


def feature_set(backend: Backend, name: str, version: int | None = None) -> Page:
    page = Page(f"Feature set {name}", "feature_set.html", extra={"name": name})
    versions = page.add("versions", run(backend, "Versions", "feature_set_versions", {"feature_set": name}))
    if versions.refused is None and versions.empty:
        raise NotFoundError("feature set", name)
    if versions.empty:
        return page
    chosen = versions.frame.iloc[0] if version is None else versions.frame[versions.frame.version == version]
    if isinstance(chosen, pd.DataFrame):
        if chosen.empty:
            raise NotFoundError("feature set version", f"{name}@{version}")
        chosen = chosen.iloc[0]
    version = int(chosen.version)
    page.extra["version"] = version
    p = {"feature_set": name, "version": version}
    page.add("features", run(backend, f"Features of version {version}", "feature_set_features", p))
    page.add(
        "freshness",
        run(
            backend,
            "Freshness",
            "feature_set_freshness",
            history=backend.quote(chosen.table_name),
            event_time=backend.quote(chosen.event_time),
        ),
    )
    stats = page.add(
        "statistics", run(backend, f"Statistics of version {version}", "feature_set_statistics", p)
    )
    page.charts = {"histograms": []}
    for row in stats.frame.itertuples():
        chart = _statistics_chart(row)
        if chart:
            page.charts["histograms"].append(chart)
    return page


def _statistics_chart(row) -> str:
    if isinstance(row.histogram, str) and row.histogram:
        hist = json.loads(row.histogram)
        edges, counts = hist.get("edges") or [], hist.get("counts") or []
        labels = [f"{e:.3g}" for e in edges[: len(counts)]]
        return charts.histogram(f"{row.feature}: histogram", labels, counts)
    if isinstance(row.top_values, str) and row.top_values:
        top = json.loads(row.top_values)
        return charts.histogram(
            f"{row.feature}: top values", [str(t["value"]) for t in top], [t["count"] for t in top]
        )
    return ""


def jobs(backend: Backend, job: str | None = None) -> Page:
    page = Page("Jobs" if job is None else f"Job {job}", "jobs.html", extra={"job": job})
    page.add("jobs", run(backend, "Jobs", "jobs", {"limit": LIMIT}))
    if job is None:
        page.add("runs", run(backend, "Latest runs", "job_runs", {"limit": 50}))
    else:
        page.add("runs", run(backend, f"Runs of {job}", "job_runs_of", {"job": job, "limit": 100}))
    return page
