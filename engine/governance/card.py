"""Model cards (issue 14.5): one document per model version, generated from the catalog.

``gather`` reads everything the catalog knows about a version into a list of sections, each
made of a few kinds of blocks (fields, tables, free text, charts with their values); ``render``
turns them into self-contained HTML (inline CSS and SVG, no scripts, no network, a print
stylesheet) or Markdown with jinja2 templates shipped as package data. Every catalog string is
escaped by the template engine: a description holding ``<script>`` shows as text. A section
without data says so in words.

The free-text fields the catalog cannot derive (purpose, intended use, limitations, ethical
considerations) are stored in ``indb.model_documentation`` by ``document``: per model (every
version) or per version (overrides field by field), audited. On a backend that enforces roles
(PostgreSQL) only the SECURITY DEFINER function ``indb.document_model`` writes them, callable by
developers and not readers, recording ``session_user``.

Other modules add sections (global importance, fairness) by appending a function
``(backend, version_info) -> Section | None`` to ``EXTRA_SECTIONS``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

import pandas as pd

from indb import audit, charts, registry
from indb.backends.base import Backend
from indb.errors import IndbError
from indb.monitoring import fairness, importance, report
from indb.sql import statement

FIELDS = ("purpose", "intended_use", "limitations", "ethical_considerations")
FORMATS = ("html", "md")


class CardError(IndbError, ValueError):
    """A model card that cannot be made or documented as asked: the message says why."""


# -- the document's structure -------------------------------------------------------------------
@dataclass
class Block:
    """One piece of a section: ``fields`` (rows of label, value), ``table`` (columns, rows),
    ``text`` (a titled free-text paragraph), ``code`` (preformatted text, e.g. the recipe's
    JSON), ``chart`` (an SVG from indb.charts plus its values as a table, which the Markdown
    card shows instead) or ``note`` (a sentence)."""

    kind: str
    title: str | None = None
    text: str | None = None
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    svg: str | None = None


@dataclass
class Section:
    """A titled part of the card; ``empty`` is what it says when it has no blocks."""

    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)
    empty: str = "Nothing recorded."


EXTRA_SECTIONS: list[Callable[[Backend, dict], Section | None]] = []


def fmt(value: Any) -> str:
    """How the card shows a catalog value: numbers with 6 significant digits, times to the
    second, missing values as an em dash."""
    if value is None or value is pd.NA or value is pd.NaT:
        return "—"
    if isinstance(value, float) and math.isnan(value):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (datetime, pd.Timestamp)):
        return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S")
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalars
        return fmt(value.item())
    return str(value)


def _table(frame: pd.DataFrame, columns: list[str] | None = None, title: str | None = None) -> Block:
    columns = columns or list(frame.columns)
    rows = [[fmt(v) for v in row] for row in frame[columns].itertuples(index=False)]
    return Block("table", title=title, columns=columns, rows=rows)


def _loads(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return json.loads(value) if isinstance(value, str) else value


def _sql(backend: Backend, name: str) -> str:
    return statement("model_card", name, backend.dialect)


def _query(backend: Backend, statement_name: str, /, **params) -> pd.DataFrame:
    return backend.query(_sql(backend, statement_name), params)


# -- sections -------------------------------------------------------------------------------------
def _overview(backend: Backend, info: dict) -> Section:
    mv = info["mv"]
    model = _query(backend, "model", model=mv.name).iloc[0]
    aliases = _query(backend, "aliases", model=mv.name, version=mv.version).alias.tolist()
    rows = [
        ["model", mv.name],
        ["version", str(mv.version)],
        ["task", mv.task],
        ["stage", info["stage"]],
        ["aliases", ", ".join(aliases) or "none"],
        ["model description", "none" if pd.isna(model["description"]) else str(model["description"])],
        ["version description", mv.description or "none"],
        ["registered by", fmt(mv.created_by)],
        ["registered at", fmt(mv.created_at)],
        ["sha256", mv.sha256],
        ["size", f"{mv.size_bytes:,} bytes"],
        ["tags", ", ".join(f"{k}={v}" for k, v in (mv.tags or {}).items()) or "none"],
    ]
    return Section("overview", "Overview", [Block("fields", rows=rows)])


def _owners(backend: Backend, info: dict) -> Section:
    """Owners of the model and the comments on it or on this version (indb.owners,
    indb.comments: indb.governance.collaboration)."""
    from indb.governance import collaboration

    mv = info["mv"]
    owners = collaboration.owners(backend, "model", mv.name)
    comments = collaboration.comments(backend, "model", mv.name)
    comments = comments[comments.version.isna() | (comments.version == mv.version)]
    info["owners"], info["comments"] = owners, comments
    section = Section("owners", "Owners and comments")
    if owners.empty:
        section.blocks.append(Block("note", text="No owners recorded."))
    else:
        section.blocks.append(_table(owners, ["owner", "added_by", "added_at"], "Owners"))
    if comments.empty:
        section.blocks.append(Block("note", text="No comments on the model or this version."))
    else:
        section.blocks.append(_table(comments, ["created_at", "author", "version", "body"], "Comments"))
    return section


def _documentation(backend: Backend, info: dict) -> Section:
    mv = info["mv"]
    rows = _query(backend, "documentation", model=mv.name, version=mv.version)
    merged: dict[str, Any] = {}
    for row in rows.to_dict("records"):  # the model's row, then the version's over it
        merged.update({k: row[k] for k in FIELDS if row[k] is not None and not pd.isna(row[k])})
        merged["updated"] = f"{row['updated_by']} at {fmt(row['updated_at'])}"
    info["documentation"] = merged
    blocks = [
        Block(
            "text",
            title=name.replace("_", " ").capitalize(),
            text=merged.get(name)
            or f'Not documented: db.document_model("{mv.name}", {name}=...) or '
            f"indb models doc {mv.name} --{name.replace('_', '-')} TEXT.",
        )
        for name in FIELDS
    ]
    if "updated" in merged:
        blocks.append(Block("note", text=f"Last documented by {merged['updated']}."))
    return Section("documentation", "Purpose, intended use and limitations", blocks)


def _signature(backend: Backend, info: dict) -> Section:
    sig = info["mv"].signature
    inputs = [[i.name, i.sql_type] for i in sig.inputs]
    outputs = [
        ["prediction", sig.prediction_type],
        ["probabilities", "DOUBLE[] over the classes" if sig.task == "classification" else "none"],
        ["classes", ", ".join(map(str, sig.classes)) if sig.classes is not None else "none (regression)"],
        ["SQL", sig.describe(f"predict_{info['mv'].name}")],
    ]
    return Section(
        "signature",
        "Signature",
        [
            Block("table", title="Inputs", columns=["column", "SQL type"], rows=inputs),
            Block("fields", title="Outputs", rows=outputs),
        ],
    )


def _recipe(backend: Backend, info: dict) -> Section:
    recipe = info["mv"].recipe or {}
    if not recipe:
        return Section("recipe", "Training recipe", empty="No training recipe recorded.")
    estimator = recipe.get("estimator") or {}
    rows = [
        ["estimator", fmt(estimator.get("estimator") if isinstance(estimator, dict) else estimator)],
        ["features", ", ".join(map(str, recipe.get("features") or [])) or "none recorded"],
        ["label", fmt(recipe.get("label"))],
        ["seed", fmt(recipe.get("seed"))],
    ]
    text = json.dumps(recipe, indent=2, sort_keys=True, default=str)
    return Section(
        "recipe",
        "Training recipe",
        [Block("fields", rows=rows), Block("code", title="Recipe (JSON)", text=text)],
    )


def _training(backend: Backend, info: dict) -> Section:
    mv = info["mv"]
    section = Section(
        "training", "Training data and features", empty="No training set recorded for this version."
    )
    run = _query(backend, "training_run", model=mv.name, version=mv.version)
    info["training_run"] = None if run.empty else run.iloc[0].to_dict()
    if not run.empty:
        r = info["training_run"]
        holdout = _loads(r["holdout"]) or {}
        section.blocks.append(
            Block(
                "fields",
                title=f"Training run {int(r['id'])}",
                rows=[
                    [
                        "parent version",
                        fmt(None if pd.isna(r["parent_version"]) else int(r["parent_version"])),
                    ],
                    ["rows", fmt(None if pd.isna(r["rows"]) else int(r["rows"]))],
                    ["holdout", fmt(holdout.get("definition"))],
                    ["fit seconds", fmt(r["fit_seconds"])],
                    ["triggered by", fmt(r["triggered_by"])],
                    ["finished at", fmt(r["finished_at"])],
                ],
            )
        )
        name, number = r["training_set"], r["training_set_version"]
    else:
        section.blocks.append(Block("note", text="No training run recorded (registered by hand)."))
        registered = _query(backend, "registered_training_set", model=mv.name, version=mv.version)
        name, number = (None, None) if registered.empty else tuple(registered.iloc[0])
    if name is None or number is None or pd.isna(number):
        section.blocks.append(Block("note", text="No training set recorded for this version."))
        return section
    number = int(number)
    info["training_set"] = (name, number)
    ts = _query(backend, "training_set", name=name, version=number)
    if not ts.empty:
        t = ts.iloc[0]
        section.blocks.append(
            Block(
                "fields",
                title=f"Training set {name} version {number}",
                rows=[
                    ["table", fmt(t["table_name"])],
                    ["label", fmt(t["label"])],
                    ["cutoff", fmt(t["cutoff"])],
                    ["rows", fmt(int(t["row_count"]))],
                    ["content hash", fmt(t["content_hash"])],
                    ["built at", fmt(t["created_at"])],
                ],
            )
        )
    sources = _query(backend, "training_set_features", name=name, version=number)
    if sources.empty:
        section.blocks.append(Block("note", text="Built from no feature set (the spine's own columns)."))
    else:
        sources["features"] = [", ".join(map(_feature_name, _loads(f) or [])) for f in sources.features]
        section.blocks.append(_table(sources, title="Feature sets"))
    stats = _query(backend, "statistics", scope="training_set", name=name, version=number)
    info["statistics"] = stats
    if stats.empty:
        section.blocks.append(Block("note", text="No statistics stored for this training set."))
    else:
        section.blocks.append(_table(stats, title="Statistics of the training set's columns"))
    return section


def _feature_name(feature: Any) -> str:
    """A training set's feature entry: ``{"feature", "column"}`` (or a bare name)."""
    if isinstance(feature, dict):
        name, column = feature.get("feature"), feature.get("column")
        return str(name) if column in (None, name) else f"{name} as {column}"
    return str(feature)


def _evaluation(backend: Backend, info: dict) -> Section:
    mv = info["mv"]
    section = Section("evaluation", "Holdout metrics and leaderboard")
    if mv.metrics:
        rows = [[k, fmt(v)] for k, v in mv.metrics.items()]
        section.blocks.append(
            Block("table", title="Metrics recorded at registration", columns=["metric", "value"], rows=rows)
        )
    runs = _query(backend, "run_metrics", model=mv.name, version=mv.version)
    if runs.empty:
        section.blocks.append(Block("note", text="No training run evaluated this version on a holdout."))
    else:
        section.blocks.append(_table(runs, title="Holdout metrics per training run"))
    board = _query(backend, "leaderboard", model=mv.name, version=mv.version)
    info["leaderboard"] = board
    if board.empty:
        section.blocks.append(
            Block("note", text="Not on the leaderboard (the latest training run did not evaluate it).")
        )
    else:
        board["position"] = [
            f"{int(r)} of {int(n)}" for r, n in zip(board["rank"], board.ranked, strict=True)
        ]
        section.blocks.append(
            _table(board, ["metric", "value", "position", "better", "run_id"], "Leaderboard position")
        )
    return section


def _monitoring(backend: Backend, info: dict) -> Section:
    mv = info["mv"]
    section = Section("monitoring", "Drift and accuracy since deployment", empty="Never deployed.")
    deployments = _query(backend, "deployments", model=mv.name, version=mv.version)
    info["deployments"] = deployments
    if deployments.empty:
        return section
    section.blocks.append(_table(deployments, title="Deployments"))
    monitors = _query(backend, "monitors", model=mv.name, version=mv.version)
    if monitors.empty:
        section.blocks.append(Block("note", text="No monitor watches its deployments."))
        return section
    quality_metric = report.QUALITY.get(mv.task, "accuracy")
    info["charts"] = []
    for monitor in monitors.name:
        results = _query(backend, "monitor_results", monitor=monitor, version=mv.version)
        kinds = dict(backend.rows(_sql(backend, "monitor_features"), {"monitor": monitor}))
        if results.empty:
            section.blocks.append(Block("note", text=f"Monitor {monitor} has no results yet: run it."))
            continue
        drift = results[results.model_version.isna()]
        for feature, kind in kinds.items():
            metric = report.CHART_METRIC.get(kind, "psi")
            rows = drift[(drift.feature == feature) & (drift.metric == metric)]
            if not rows.empty:
                section.blocks.append(_chart(info, f"{monitor}: {feature} {metric}", rows, metric))
        quality = results[results.model_version.notna() & (results.metric == quality_metric)]
        if quality.empty:
            section.blocks.append(
                Block("note", text=f"Monitor {monitor}: no labeled rows of this version yet.")
            )
        else:
            section.blocks.append(
                _chart(info, f"{monitor}: {quality_metric} of version {mv.version}", quality, quality_metric)
            )
        alerts = _query(backend, "open_alerts", monitor=monitor, version=mv.version)
        if alerts.empty:
            section.blocks.append(Block("note", text=f"Monitor {monitor}: no alerts open or acknowledged."))
        else:
            section.blocks.append(_table(alerts, title=f"Alerts of {monitor} not resolved"))
    return section


def _chart(info: dict, title: str, rows: pd.DataFrame, metric: str) -> Block:
    series = pd.to_numeric(rows.set_index("window_start").value, errors="coerce")
    threshold = rows.threshold.dropna()
    limit = float(threshold.iloc[-1]) if not threshold.empty else None
    svg = charts.line_chart(title, {metric: series}, limit)
    info["charts"].append({"title": title, "values": series.dropna().tolist(), "threshold": limit})
    table = _table(rows, ["window_start", "value", "threshold", "drifted", "n_current"])
    return Block("chart", title=title, svg=svg, columns=table.columns, rows=table.rows)


def _monitors(backend: Backend, info: dict) -> list[str]:
    mv = info["mv"]
    return _query(backend, "monitors", model=mv.name, version=mv.version).name.tolist()


def _latest(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows.window_start == rows.window_start.max()]


def _importance(backend: Backend, info: dict) -> Section:
    """Global importance (mean |contribution| per input column) and attribution drift, from
    monitors created with importance=True (indb.monitoring.importance)."""
    mv = info["mv"]
    section = Section(
        "importance",
        "Global importance",
        empty="No monitor computes feature importance for this version "
        "(deploy(..., explain=True), then create_monitor(..., importance=True)).",
    )
    for monitor in _monitors(backend, info):
        rows = _query(backend, "importance_results", monitor=monitor, version=mv.version)
        per_feature = rows[rows.feature != "*"]
        if per_feature.empty:
            continue
        latest = _latest(per_feature).pivot_table(index="feature", columns="metric", values="value")
        latest = latest.reset_index().sort_values("importance", ascending=False)
        columns = [c for c in ("feature", *importance.FEATURE_METRICS) if c in latest]
        start = fmt(per_feature.window_start.max())
        section.blocks.append(_table(latest, columns, f"{monitor}: importance in the window from {start}"))
        shares = per_feature[per_feature.metric == "importance_share"]
        if not shares.empty:
            series = {
                feature: pd.to_numeric(group.set_index("window_start").value, errors="coerce")
                for feature, group in shares.groupby("feature")
            }
            title = f"{monitor}: importance share per window"
            svg = charts.line_chart(title, series)
            # the points in drawing order: series by series, each over time
            drawn = [v for points in series.values() for v in points.dropna().tolist()]
            info["charts"].append({"title": title, "values": drawn, "threshold": None})
            table = _table(shares, ["window_start", "feature", "value"])
            section.blocks.append(
                Block("chart", title=title, svg=svg, columns=table.columns, rows=table.rows)
            )
        ndcg = rows[(rows.feature == "*") & (rows.metric == "attribution_ndcg")]
        if not ndcg.empty:
            section.blocks.append(
                _chart(info, f"{monitor}: attribution drift (nDCG)", ndcg, "attribution_ndcg")
            )
    return section


def _fairness(backend: Backend, info: dict) -> Section:
    """Group fairness per protected attribute, from monitors created with protected= and
    favorable= (indb.monitoring.fairness)."""
    mv = info["mv"]
    section = Section(
        "fairness",
        "Fairness",
        empty="No monitor computes group fairness for this version "
        "(create_monitor(..., protected=[...], favorable=...)).",
    )
    for monitor in _monitors(backend, info):
        rows = _query(backend, "fairness_results", monitor=monitor, version=mv.version)
        for attribute, found in rows.groupby("feature", sort=True):
            summary = found[~found.metric.str.startswith("group_")]
            latest = _latest(found)
            start = fmt(found.window_start.max())
            heading = f"{monitor}: {attribute}, window from {start}"
            latest_summary = latest[~latest.metric.str.startswith("group_")]
            if not latest_summary.empty:
                section.blocks.append(
                    _table(latest_summary, ["metric", "value", "threshold", "drifted"], heading)
                )
            groups = latest[latest.metric.str.startswith("group_")].copy()
            if not groups.empty:
                groups["group"] = groups.category.fillna("(missing)")
                table = groups.pivot_table(index="group", columns="metric", values="value").reset_index()
                columns = ["group", *[m for m in fairness.GROUP_METRICS if m in table]]
                section.blocks.append(_table(table, columns, f"{monitor}: {attribute} per group"))
            ratio = summary[summary.metric == "demographic_parity_ratio"]
            if not ratio.empty:
                title = f"{monitor}: {attribute} demographic parity ratio"
                section.blocks.append(_chart(info, title, ratio, "demographic_parity_ratio"))
    return section


def _humility(backend: Backend, info: dict) -> Section:
    mv = info["mv"]
    section = Section("humility", "Humility rules", empty="No humility rules on its deployments.")
    rules = _query(backend, "humility_rules", model=mv.name, version=mv.version)
    if not rules.empty:
        section.blocks.append(_table(rules))
        events = _query(backend, "humility_events", model=mv.name, version=mv.version)
        if events.empty:
            section.blocks.append(Block("note", text="No row has triggered a rule."))
        else:
            section.blocks.append(_table(events, title="Rows caught per rule"))
    return section


def _governance(backend: Backend, info: dict) -> Section:
    mv = info["mv"]
    section = Section("governance", "Stage, approvals and audit trail")
    section.blocks.append(Block("fields", rows=[["stage", info["stage"]]]))
    requests = _query(backend, "stage_requests", model=mv.name, version=mv.version)
    approvals = _query(backend, "stage_approvals", model=mv.name, version=mv.version)
    if requests.empty:
        section.blocks.append(Block("note", text="No stage requests."))
    else:
        section.blocks.append(_table(requests, title="Stage requests"))
    if approvals.empty:
        section.blocks.append(Block("note", text="No approvals or rejections."))
    else:
        section.blocks.append(_table(approvals, title="Decisions"))
    trail = _query(
        backend,
        "audit_trail",
        model=mv.name,
        version=mv.version,
        model_v=f"{mv.name} v{mv.version}",
        model_at=f"{mv.name}@{mv.version}",
    )
    info["audit"] = trail
    if trail.empty:
        section.blocks.append(Block("note", text="No audit log entries."))
    else:
        section.blocks.append(_table(trail, title="Audit trail"))
    return section


SECTIONS: tuple[Callable[[Backend, dict], Section], ...] = (
    _overview,
    _owners,
    _documentation,
    _signature,
    _recipe,
    _training,
    _evaluation,
    _monitoring,
    _importance,
    _fairness,
    _humility,
    _governance,
)


def gather(backend: Backend, model: str, version: int | str | None = None) -> dict:
    """Everything the card shows, read in one snapshot: ``{"mv", "stage", "sections": [...],
    ...}`` plus the raw frames the sections were built from (for tests and ``indb ui``)."""
    mv = registry.get(backend, model, version, with_bytes=False)
    stages = dict(backend.rows(_sql(backend, "versions"), {"model": mv.name}))
    info: dict = {"mv": mv, "stage": stages.get(mv.version) or "none", "charts": []}
    sections = [build(backend, info) for build in SECTIONS]
    sections += [s for s in (extra(backend, info) for extra in EXTRA_SECTIONS) if s is not None]
    info["sections"] = sections
    return info


# -- rendering ------------------------------------------------------------------------------------
class _Verbatim(str):
    """Markdown the card built itself (an indented code block), not escaped again."""


def _code_block(text: str) -> _Verbatim:
    # an indented code block shows its lines literally; JSON text holds no raw newlines in
    # strings, so no line can leave the block
    return _Verbatim("\n".join("    " + line for line in str(text).splitlines()))


def _markdown_escape(value: Any) -> str:
    """Catalog text in Markdown: no raw HTML (a renderer would run it), no table breaks."""
    if isinstance(value, _Verbatim):
        return value
    text = "" if value is None else str(value)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")
    return text.replace("\r\n", "\n").replace("\n", "<br>")


@cache
def _environment(format: str):
    import jinja2

    loader = jinja2.PackageLoader("indb.governance", "templates")
    if format == "html":
        return jinja2.Environment(loader=loader, autoescape=True, trim_blocks=True, lstrip_blocks=True)
    environment = jinja2.Environment(
        loader=loader, autoescape=False, finalize=_markdown_escape, trim_blocks=True, lstrip_blocks=True
    )
    environment.filters["code_block"] = _code_block
    return environment


def format_of(path: str | None, format: str | None = None) -> str:
    """``html`` or ``md``: given, else from the file's suffix (.html, .htm, .md, .markdown)."""
    if format is not None:
        if format not in FORMATS:
            raise CardError(f"unknown model card format {format!r}: html or md")
        return format
    suffix = (path or "").lower().rsplit(".", 1)[-1] if path and "." in path else ""
    found = {"html": "html", "htm": "html", "md": "md", "markdown": "md"}.get(suffix)
    if found is None:
        raise CardError(
            f"cannot tell the card's format from {path!r}: name it .html or .md, or pass --format"
        )
    return found


def render(backend: Backend, model: str, version: int | str | None = None, format: str = "html") -> str:
    """The model card of ``model`` ``version`` (None: the default version) as HTML or Markdown."""
    format = format_of(None, format)
    info = gather(backend, model, version)
    template = _environment(format).get_template(f"model_card.{format}.j2")
    import markupsafe

    for section in info["sections"]:
        for block in section.blocks:
            if block.svg is not None:
                block.svg = markupsafe.Markup(block.svg)  # built by indb.charts, which escapes its text
    return template.render(
        mv=info["mv"],
        stage=info["stage"],
        sections=info["sections"],
        generated=datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
    )


# -- documentation (free text) --------------------------------------------------------------------
def document(
    backend: Backend,
    model: str,
    version: int | str | None = None,
    **fields: str | None,
) -> dict:
    """Store free-text fields of the model (``version`` None: every version) or of one version.
    Fields left out (or None) keep their stored text; an empty string clears one."""
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise CardError(f"unknown documentation field(s) {', '.join(unknown)}: use {', '.join(FIELDS)}")
    given = {k: v for k, v in fields.items() if v is not None}
    if not given:
        raise CardError(f"nothing to document: give at least one of {', '.join(FIELDS)}")
    for name, value in given.items():
        if not isinstance(value, str):
            raise CardError(f"{name} must be text, not {type(value).__name__}")
    if version is None:
        registry.get(backend, model, None, with_bytes=False)  # the model must exist
        number = None
    else:
        number = registry.get(backend, model, version, with_bytes=False).version
    params = {"model": model, "version": number, **{k: fields.get(k) for k in FIELDS}}
    if backend.enforces_roles:  # the server records session_user and audits
        backend.execute(_sql(backend, "document_model"), params)
        return _stored(backend, model, number)
    key = {"model": model, "version": -1 if number is None else number}
    with backend.transaction():
        old = backend.query(_sql(backend, "documentation_row"), key)
        before = {} if old.empty else old.iloc[0].to_dict()
        merged = {}
        for name in FIELDS:
            value = fields.get(name)
            value = before.get(name) if value is None else value
            merged[name] = (
                None
                if value is None or (isinstance(value, float) and pd.isna(value)) or value == ""
                else value
            )
        backend.execute(_sql(backend, "delete_documentation"), key)
        backend.execute(_sql(backend, "insert_documentation"), {**params, **merged, "user": audit.os_user()})
        audit.record(backend, "document_model", model if number is None else f"{model}@{number}", given)
    return _stored(backend, model, number)


def _stored(backend: Backend, model: str, number: int | None) -> dict:
    found = backend.query(
        _sql(backend, "documentation_row"), {"model": model, "version": -1 if number is None else number}
    )
    row = found.iloc[0].to_dict()
    return {"model": model, "version": number, **{k: (None if pd.isna(row[k]) else row[k]) for k in FIELDS}}
