"""Monitors: a deployment, a reference, a window length and thresholds, kept in the catalog.

``create`` computes the reference statistics once (summaries, quantile bins, fine cells,
category counts and the reference sample as distinct values with counts) and generates the
SQL each run executes per window, so that runs read only the window and the stored
reference.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlglot
from sqlglot import exp

from indb import audit, deployments, identifiers, registry
from indb.backends.base import Backend
from indb.errors import IndbError, NotFoundError
from indb.identifiers import Quoted
from indb.monitoring import accuracy, drift, pvalues
from indb.sql import statement

MODES = ("exact", "binned")
WINDOW_TABLE = "indb_monitor_window"  # temporary: the current window's rows, during a run
_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}
_WINDOW = re.compile(r"^\s*(\d+)?\s*([a-z]+?)s?\s*$")
# Quality metrics where lower is worse: they alert when they fall below their threshold.
HIGHER_IS_BETTER = {"accuracy", "precision", "recall", "f1", "roc_auc", "r2", "labeled_share"}


class MonitorError(IndbError, ValueError):
    """A monitor that cannot be created as asked (bad reference, window, feature, threshold)."""


@dataclass(frozen=True)
class Monitor:
    name: str
    deployment: str
    features: dict[str, str]  # column -> numeric | categorical
    window: str
    window_seconds: int
    mode: str
    reference: dict
    n_reference: int
    thresholds: list[tuple[str, str, float, str]] = field(default_factory=list, repr=False)
    statements: list[tuple[str, str]] = field(default_factory=list, repr=False)


def parse_window(window: str | int | timedelta) -> tuple[str, int]:
    """``"1 day"``, ``"6 hours"``, ``"15 minutes"``, seconds, or a timedelta."""
    if isinstance(window, timedelta):
        seconds = int(window.total_seconds())
        return f"{seconds} seconds", seconds
    if isinstance(window, int) and not isinstance(window, bool):
        return f"{window} seconds", window
    match = _WINDOW.match(str(window).lower()) if isinstance(window, str) else None
    if not match or match[2] not in _UNITS:
        raise MonitorError(
            f"window {window!r} is not a length such as '1 day', '6 hours', '15 minutes' or '1 week' "
            "(months vary in length: use days)"
        )
    seconds = int(match[1] or 1) * _UNITS[match[2]]
    if seconds <= 0:
        raise MonitorError(f"window {window!r} must be longer than zero")
    return str(window), seconds


def install(backend: Backend) -> None:
    """The p-value functions the statements call, and on servers with procedures the
    ``indb.run_monitor`` procedure."""
    source = re.sub(r"^from __future__ import annotations\n", "", _source(), flags=re.M)
    backend.register_scalar(
        "indb_ks_pvalue", pvalues.ks_pvalue, ["DOUBLE", "BIGINT", "BIGINT"], "DOUBLE", source
    )
    backend.register_scalar("indb_chi2_pvalue", pvalues.chi2_pvalue, ["DOUBLE", "BIGINT"], "DOUBLE", source)
    if backend.supports_procedures:
        backend.execute(backend.render("monitoring", "create_run_procedure"))
        backend.execute(backend.render("monitoring", "comment_run_procedure"))


def _source() -> str:
    from importlib import resources

    return resources.files("indb.monitoring").joinpath("pvalues.py").read_text(encoding="utf-8")


def _kind(sql_type: str) -> str:
    return "categorical" if sql_type in ("VARCHAR", "BOOLEAN") else "numeric"


def _features(sig, features, table_columns: dict[str, str]) -> dict[str, str]:
    """Default: the model's inputs and its prediction; any other request column on demand."""
    known = {i.name: _kind(i.sql_type) for i in sig.inputs}
    known["prediction"] = "categorical" if sig.task == "classification" else "numeric"
    if features is None:
        return known
    extra = {c: t.split("(")[0].upper() for c, t in table_columns.items() if c not in ("id", "created_at")}
    known |= {
        c: _kind("VARCHAR" if t in ("VARCHAR", "TEXT") else t) for c, t in extra.items() if c not in known
    }
    if isinstance(features, str):
        features = [features]
    chosen = {}
    for name in features:
        if name not in known:
            raise NotFoundError("monitored column", name, list(known))
        chosen[name] = known[name]
    return chosen


def _thresholds(features: dict[str, str], thresholds: dict | None) -> list[tuple[str, str, float, str]]:
    """(feature, metric, threshold, direction): defaults for every column, then the user's:
    ``{"psi": 0.3}`` for all columns, ``{"income": {"wasserstein": 0.2}}`` for one,
    ``{"accuracy": 0.8}`` for quality (alerts below it), a value of None removes one."""
    rows: dict[tuple[str, str], float | None] = {}
    for kind in ("numeric", "categorical"):
        if kind in features.values():
            for feature in (f for f, k in features.items() if k == kind):
                for metric, value in drift.DEFAULT_THRESHOLDS[kind].items():
                    rows[(feature, metric)] = value
    for key, value in (thresholds or {}).items():
        if isinstance(value, dict):
            if key not in features:
                raise NotFoundError("monitored column", key, list(features))
            for metric, limit in value.items():
                rows[(key, _metric(metric))] = _number(limit, f"{key}.{metric}")
        else:
            metric = _metric(key)
            if metric in accuracy.METRICS:
                rows[("*", metric)] = _number(value, key)
            else:
                for feature in features:
                    rows[(feature, metric)] = _number(value, key)
    return [
        (feature, metric, value, "below" if metric in HIGHER_IS_BETTER else "above")
        for (feature, metric), value in rows.items()
        if value is not None
    ]


def _metric(name: str) -> str:
    every = set(drift.NUMERIC_METRICS) | set(drift.CATEGORICAL_METRICS) | set(accuracy.METRICS)
    if name not in every:
        raise NotFoundError("metric", name, sorted(every))
    return name


def _number(value, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MonitorError(f"threshold {what} must be a number, got {value!r}")
    return float(value)


# -- the reference ------------------------------------------------------------------------------
def _reference_spec(reference) -> dict:
    if isinstance(reference, tuple | list) and len(reference) == 2:
        return {"start": _time(reference[0]), "end": _time(reference[1])}
    if isinstance(reference, dict):
        if "query" in reference or "training_set" in reference:
            return dict(reference)
        if "start" in reference and "end" in reference:
            return {"start": _time(reference["start"]), "end": _time(reference["end"])}
    if isinstance(reference, str):
        if re.match(r"^\s*(select|with|from|\()", reference, re.I):
            return {"query": reference}
        return {"training_set": reference}
    raise MonitorError(
        "reference must be a time window (start, end) of the deployment's rows, a SELECT query, "
        f"or a training set name; got {reference!r}"
    )


def _time(value) -> str:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    try:
        return datetime.fromisoformat(str(value)).isoformat(sep=" ")
    except ValueError:
        raise MonitorError(f"reference time {value!r} is not an ISO date or timestamp") from None


def _reference_table(backend: Backend, spec: dict, view: str) -> str:
    """A temporary table holding the reference rows; returns its name."""
    q = backend.quote
    temp = f"indb_reference_{uuid.uuid4().hex[:12]}"
    if "query" in spec:
        text = spec["query"]
        try:
            tree = sqlglot.parse(text, dialect=backend.dialect)
        except sqlglot.errors.ParseError as e:
            raise MonitorError(f"reference query does not parse: {e}") from None
        if len(tree) != 1 or not isinstance(tree[0], exp.Query):
            raise MonitorError("reference query must be one SELECT statement")
        backend.execute(f"CREATE TEMPORARY TABLE {q(temp)} AS {text}")
        return temp
    if "training_set" in spec:
        name = identifiers.table_name(spec["training_set"])
        try:
            found = backend.rows(
                "SELECT table_name FROM indb.training_sets WHERE name = $name ORDER BY version DESC LIMIT 1",
                {"name": name},
            )
        except Exception:
            raise MonitorError(
                f"reference {name!r} is not a query or a time window, and this database has no "
                "training sets (indb.training_sets)"
            ) from None
        if not found:
            raise NotFoundError("training set", name)
        source = q(identifiers.table_name(found[0][0]))
        backend.execute(f"CREATE TEMPORARY TABLE {q(temp)} AS SELECT * FROM {source}")
        return temp
    backend.execute(f"CREATE TEMPORARY TABLE {q(temp)} AS SELECT * FROM {q(view)} LIMIT 0")
    backend.execute(
        f"INSERT INTO {q(temp)} SELECT * FROM {q(view)} WHERE scored_at >= $start AND scored_at < $end",
        {"start": datetime.fromisoformat(spec["start"]), "end": datetime.fromisoformat(spec["end"])},
    )
    return temp


def _store_reference(backend: Backend, name: str, temp: str, features: dict[str, str], mode: str) -> None:
    q = backend.quote
    source = q(temp)
    for feature, kind in features.items():
        slots = {"column": q(feature), "source": source}
        params = {"monitor": name, "feature": feature}
        if kind == "categorical":
            backend.execute(backend.render("monitoring", "reference_categorical_summary", **slots), params)
            backend.execute(backend.render("monitoring", "reference_categories", **slots), params)
            continue
        backend.execute(
            backend.render("monitoring", "reference_numeric_summary", **slots),
            {**params, "cells": drift.CELLS},
        )
        probabilities = [b / drift.PSI_BINS for b in range(1, drift.PSI_BINS)]
        ((edges,),) = backend.rows(
            backend.render("monitoring", "reference_quantiles", **slots), {"probabilities": probabilities}
        )
        unique = sorted(set(float(e) for e in edges or []))
        for position, lower in enumerate([float("-inf"), *unique]):
            backend.execute(
                statement("monitoring", "insert_edge", backend.dialect),
                {**params, "bin": position, "lower": lower},
            )
        backend.execute(
            backend.render(
                "monitoring",
                "reference_psi_counts",
                bin_expression=drift.bin_expression(),
                edge_pivot=drift.edge_pivot(),
                **slots,
            ),
            params,
        )
        backend.execute(
            backend.render("monitoring", "reference_cells", cell_expression=drift.cell_expression(), **slots),
            params,
        )
        if mode == "exact":
            backend.execute(backend.render("monitoring", "reference_values", **slots), params)


def window_statements(
    backend: Backend, window: Quoted, table: str, features: dict[str, str], probability_columns: list[str]
) -> list[tuple[str, str]]:
    """The first steps of every window: its rows into a temporary table, read once, so that
    the statements after it scan that table instead of the scored view (request rows joined
    with predictions and ground truth) once per column."""
    q = backend.quote
    columns = [f"r.{q(f).text}" for f in features if f != "prediction"]
    columns += [
        f"p.{q(c).text}" for c in ("id", "model_version", "prediction", *probability_columns, "scored_at")
    ]
    create = backend.render(
        "monitoring",
        "create_window",
        window=window,
        columns=Quoted(", ".join(columns)),
        table=q(table),
        predictions=q(f"{table}_predictions"),
    )
    return [
        ("drop window", backend.render("monitoring", "drop_window", window=window)),
        ("read window", create),
    ]


def _positional(text: str) -> str:
    """Stored statements keep $1..$4 in every dialect (PL/pgSQL's EXECUTE ... USING)."""
    return re.sub(r"%\((\d+)\)s", r"$\1", text)


def create(
    backend: Backend,
    name: str,
    deployment: str,
    *,
    reference,
    window="1 day",
    features=None,
    thresholds: dict | None = None,
    mode: str = "exact",
) -> Monitor:
    name = identifiers.monitor_name(name)
    if mode not in MODES:
        raise MonitorError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    target = deployments.get(backend, deployment)
    mv = registry.get(backend, target.model, target.version, with_bytes=False)
    chosen = _features(mv.signature, features, backend.table_columns(target.table) or {})
    window_text, seconds = parse_window(window)
    spec = _reference_spec(reference)
    limits = _thresholds(chosen, thresholds)
    if backend.rows(statement("monitoring", "get_monitor", backend.dialect), {"name": name}):
        raise MonitorError(f"monitor {name!r} exists; drop it first (db.drop_monitor)")
    view = target.view
    ((schema,),) = backend.rows("SELECT current_schema()")
    probability_columns = list(deployments.probability_columns(mv.classes))
    with backend.transaction():
        install(backend)
        temp = _reference_table(backend, spec, view)
        try:
            present = set(backend.query(f"SELECT * FROM {backend.quote(temp)} LIMIT 0").columns)
            missing = [f for f in chosen if f not in present and f != "prediction"]
            if missing:
                raise MonitorError(f"the reference has no column(s) {missing}; it has {sorted(present)}")
            if "prediction" not in present:
                chosen.pop("prediction", None)  # e.g. a training set: no predictions to compare
            ((n_reference,),) = backend.rows(f"SELECT count(*) FROM {backend.quote(temp)}")
            if not n_reference:
                raise MonitorError(f"the reference of monitor {name!r} has no rows: {spec}")
            backend.execute(
                statement("monitoring", "insert_monitor", backend.dialect),
                {
                    "name": name,
                    "deployment": target.table,
                    "schema_name": schema,
                    "reference": json.dumps(spec),
                    "window_size": window_text,
                    "window_seconds": seconds,
                    "mode": mode,
                    "task": mv.task,
                    "classes": mv.signature.classes_json(),
                    "probability_columns": json.dumps(probability_columns),
                    "n_reference": int(n_reference),
                    "created_by": backend.user,
                },
            )
            _store_reference(backend, name, temp, chosen, mode)
        finally:
            backend.execute(f"DROP TABLE IF EXISTS {backend.quote(temp)}")
        for feature, metric, value, direction in limits:
            if feature == "*" or feature in chosen:
                backend.execute(
                    statement("monitoring", "insert_threshold", backend.dialect),
                    {
                        "monitor": name,
                        "feature": feature,
                        "metric": metric,
                        "threshold": value,
                        "direction": direction,
                    },
                )
        window = backend.quote(WINDOW_TABLE)
        steps = window_statements(backend, window, target.table, chosen, probability_columns)
        for feature, kind in chosen.items():
            steps += drift.column_statements(backend, window, feature, kind, mode)
        steps += accuracy.statements(
            backend, name, window, target.ground_truth_table, mv.task, mv.classes, probability_columns
        )
        steps.append(("drop window", backend.render("monitoring", "drop_window", window=window)))
        for step, (purpose, text) in enumerate(steps):
            backend.execute(
                statement("monitoring", "insert_statement", backend.dialect),
                {"monitor": name, "step": step, "purpose": purpose, "statement": _positional(text)},
            )
        audit.record(
            backend, "create_monitor", name, {"deployment": target.table, "reference": spec, "mode": mode}
        )
    return Monitor(
        name, target.table, chosen, window_text, seconds, mode, spec, int(n_reference), limits, steps
    )


def get(backend: Backend, name: str) -> dict:
    found = backend.query(statement("monitoring", "get_monitor", backend.dialect), {"name": name})
    if found.empty:
        known = [r[0] for r in backend.rows(statement("monitoring", "list_monitors", backend.dialect))]
        raise NotFoundError("monitor", name, known)
    return found.iloc[0].to_dict()


def drop(backend: Backend, name: str) -> None:
    get(backend, name)
    with backend.transaction():
        for table in (
            "monitor_features",
            "monitor_bins",
            "monitor_reference_values",
            "monitor_thresholds",
            "monitor_statements",
            "monitor_results",
            "alerts",
        ):
            backend.execute(
                f"DELETE FROM {backend.quote('indb', table)} WHERE monitor = $monitor", {"monitor": name}
            )
        backend.execute(statement("monitoring", "delete_monitor", backend.dialect), {"monitor": name})
        audit.record(backend, "drop_monitor", name)
