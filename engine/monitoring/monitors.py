"""Monitors: a deployment, a reference, a window length and thresholds, kept in the catalog.

``create`` computes the reference statistics once (summaries, quantile bins, fine cells,
category counts and the reference sample as distinct values with counts) and generates the
SQL each run executes per window, so that runs read only the window and the stored
reference.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from sqlglot import exp

from indb import audit, deployments, identifiers, registry, userquery
from indb.backends.base import Backend
from indb.errors import NotFoundError
from indb.governance import collaboration
from indb.identifiers import Quoted
from indb.monitoring import accuracy, drift, fairness, pvalues
from indb.monitoring import importance as attributions
from indb.monitoring.thresholds import MonitorError, number
from indb.sql import statement, statements

MODES = ("exact", "binned")
WINDOW_TABLE = "indb_monitor_window"  # temporary: the current window's rows, during a run
_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}
_WINDOW = re.compile(r"^\s*(\d+)?\s*([a-z]+?)s?\s*$")
# Quality metrics where lower is worse: they alert when they fall below their threshold.
HIGHER_IS_BETTER = {"accuracy", "precision", "recall", "f1", "roc_auc", "r2", "labeled_share"}


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
    time_column: str | None = None
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
    ``indb.run_monitor`` procedure and the alert functions. Run outside create/run's
    transaction: DuckDB keeps a Python function registered by a rolled-back transaction in
    the connection but not in its catalog, and refuses to register it again."""
    source = re.sub(r"^from __future__ import annotations\n", "", _source(), flags=re.M)
    backend.register_scalar(
        "indb_ks_pvalue", pvalues.ks_pvalue, ["DOUBLE", "BIGINT", "BIGINT"], "DOUBLE", source
    )
    backend.register_scalar("indb_chi2_pvalue", pvalues.chi2_pvalue, ["DOUBLE", "BIGINT"], "DOUBLE", source)
    if backend.supports_procedures:
        install_procedures(backend)


_PROCEDURES = (
    "create_run_procedure",
    "create_alert_functions",
    "create_acknowledge_function",
    "create_resolve_function",
    "comment_alert_functions",
    "comment_acknowledge_function",
)
_RUN_COMMENT = (
    "Runs one monitor over its new windows, updates or opens alerts and sends them to its NOTIFY "
    "sinks; schedule it with pg_cron: CALL indb.run_monitor('name'). indb {}"
)


def install_procedures(backend: Backend) -> None:
    """indb.run_monitor and the alert functions, only when missing or changed (at the
    installer's connect, and before a run or a create): replacing them on every run would fail
    for roles that do not own them and collide between concurrent runs ("tuple concurrently
    updated"). A change also stores this indb's window queries in every monitor."""
    texts = [backend.render("monitoring", name) for name in _PROCEDURES]
    templates = [statements("monitoring", backend.dialect)[name][0] for name in _WINDOW_QUERIES]
    fingerprint = hashlib.sha256("\n".join(texts + templates).encode()).hexdigest()[:16]
    comment = _RUN_COMMENT.format(fingerprint)
    installed = statement("monitoring", "installed_procedure", backend.dialect)
    if backend.rows(installed)[0][0] == comment:
        return
    with backend.transaction():  # one connection at a time: the first run after an upgrade
        backend.lock_catalog()
        if backend.rows(installed)[0][0] == comment:
            return
        for text in texts:
            backend.execute(text)
        refresh_window_queries(backend)
        backend.execute(
            backend.render("monitoring", "comment_run_procedure", comment=backend.literal(comment))
        )


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
                rows[(key, _metric(metric))] = number(limit, f"{key}.{metric}")
        else:
            metric = _metric(key)
            if metric in accuracy.METRICS:
                rows[("*", metric)] = number(value, key)
            else:
                for feature in features:
                    rows[(feature, metric)] = number(value, key)
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


def _reference_table(backend: Backend, spec: dict, view: str, time: Quoted) -> Quoted:
    """A temporary table holding the reference rows; returns its quoted name."""
    temp = backend.quote(backend.temp_schema, f"indb_reference_{uuid.uuid4().hex[:12]}")
    if "query" in spec:
        query = userquery.select_query(spec["query"], backend.dialect, "reference query")
        create = exp.Create(
            this=exp.to_table(temp.text, dialect=backend.dialect),
            kind="TABLE",
            expression=query,
            properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
        )
        backend.execute(create.sql(dialect=backend.dialect))
        return temp
    if "training_set" in spec:
        name = identifiers.table_name(spec["training_set"])
        try:
            found = backend.rows(
                statement("monitoring", "training_set_table", backend.dialect), {"name": name}
            )
        except Exception:
            raise MonitorError(
                f"reference {name!r} is not a query or a time window, and this database has no "
                "training sets (indb.training_sets)"
            ) from None
        if not found:
            raise NotFoundError("training set", name)
        source = backend.quote(identifiers.table_name(found[0][0]))
        backend.execute(backend.render("monitoring", "create_reference_like", temp=temp, source=source))
        backend.execute(backend.render("monitoring", "insert_reference_table", temp=temp, source=source))
        return temp
    source = backend.quote(view)
    backend.execute(backend.render("monitoring", "create_reference_like", temp=temp, source=source))
    backend.execute(
        backend.render("monitoring", "insert_reference_window", temp=temp, view=source, time=time),
        {"start": datetime.fromisoformat(spec["start"]), "end": datetime.fromisoformat(spec["end"])},
    )
    return temp


def _store_reference(backend: Backend, name: str, temp: Quoted, features: dict[str, str], mode: str) -> None:
    q = backend.quote
    source = temp
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
        ((count,),) = backend.rows(backend.render("monitoring", "reference_count", **slots))
        unique = sorted(set(float(e) for e in _reference_edges(backend, slots, count)))
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
        for text in drift.reference_statements(backend, mode):
            backend.execute(text, params)


_PREDICTION_COLUMNS = ("id", "model", "model_version", "runtime", "prediction", "scored_at")
# DuckDB's TIMESTAMP_S/MS/NS (pandas writes nanoseconds) and DATE are read as TIMESTAMP.
_AS_TIMESTAMP = ("DATE", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS")
_TIMES = (
    "TIMESTAMP",
    "TIMESTAMP WITHOUT TIME ZONE",
    "TIMESTAMP WITH TIME ZONE",
    "TIMESTAMPTZ",
    *_AS_TIMESTAMP,
)


def _column(relation: str, name: str) -> exp.Column:
    return exp.column(name, table=relation, quoted=True)


def _fragment(backend: Backend, nodes: list[exp.Expression]) -> Quoted:
    """Expression trees rendered once for this dialect, as one slot of a statement."""
    return Quoted(", ".join(n.sql(dialect=backend.dialect) for n in nodes))


def _window_time(backend: Backend, relation: str, column: str | None, sql_type: str | None) -> Quoted:
    """The window time of a row: ``scored_at`` of its prediction, or the request table's
    ``time_column`` (time-zone-aware values taken in UTC, dates as their midnight, other
    precisions as microseconds)."""
    node: exp.Expression = _column(relation, column or "scored_at")
    if sql_type in ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"):
        node = exp.AtTimeZone(this=node, zone=exp.Literal.string("UTC"))
    elif sql_type in _AS_TIMESTAMP:
        node = exp.cast(node, "TIMESTAMP")
    return Quoted(node.sql(dialect=backend.dialect))


def _time_column(time_column, request: dict[str, str]) -> tuple[str | None, str | None]:
    if time_column is None:
        return None, None
    identifiers.column_name(time_column)
    times = [c for c, t in request.items() if t.upper() in _TIMES]
    if time_column not in request:
        raise NotFoundError("request column", time_column, times)
    kind = request[time_column].upper()
    if kind not in _TIMES:
        raise MonitorError(
            f"time_column {time_column!r} is {kind}, not a timestamp or date; timestamp columns: {times}"
        )
    return time_column, kind


def window_statements(
    backend: Backend,
    window: Quoted,
    tables: tuple[Quoted, Quoted],
    sources: dict[str, str],
    probability_columns: list[str],
    time: Quoted,
    served: Quoted | None = None,
) -> list[tuple[str, str]]:
    """The first steps of every window: its rows into a temporary table, read once, so that
    the statements after it scan that table instead of the scored view (request rows joined
    with predictions and ground truth) once per column. ``sources`` says where each monitored
    column is read: ``r`` the request table, ``p`` the predictions (features a deployment
    took from a feature store are recorded there, as the model used them)."""
    columns = [_column(relation, f) for f, relation in sources.items()]
    columns += [
        _column("p", c) for c in ("id", "model_version", "prediction", *probability_columns, "scored_at")
    ]
    table, predictions = tables
    create = backend.render(
        "monitoring",
        "create_window",
        window=window,
        columns=_fragment(backend, columns),
        table=table,
        predictions=predictions,
        time=time,
        served=served or Quoted(""),
    )
    return [
        ("drop window", backend.render("monitoring", "drop_window", window=window)),
        ("read window", create),
    ]


_WINDOW_QUERIES = ("windows", "first_relabeled_window")


def _window_queries(
    backend: Backend, schema: str, target, time_column: str | None, time_type: str | None
) -> dict[str, str]:
    """A run's two queries over the deployment's history, stored with the monitor: the windows
    with rows since a moment, and the first window with a row scored or labelled since the
    last run."""
    q = backend.quote
    time = _window_time(backend, "s", time_column, time_type)
    source = q(schema, target.table if time_column else target.predictions_table)
    view, labels = q(schema, target.view), q(schema, target.ground_truth_table)
    return {
        "windows_sql": _positional(backend.render("monitoring", "windows", source=source, time=time)),
        "relabeled_sql": _positional(
            backend.render("monitoring", "first_relabeled_window", view=view, ground_truth=labels, time=time)
        ),
    }


def refresh_window_queries(backend: Backend) -> list[str]:
    """Monitors keep the window queries stored when they were created; an indb whose queries
    changed (the relabel query on PostgreSQL read the whole history before) stores its own in each, so
    that runs from pg_cron use them too. The monitors changed."""
    changed = []
    for name, deployment, schema, time_column, *stored in backend.rows(
        statement("monitoring", "stored_window_queries", backend.dialect)
    ):
        if stored[0] is None:  # older still: its run says to create it again
            continue
        try:
            target = deployments.get(backend, deployment)
            time_type = _time_column(time_column, backend.table_columns(target.table) or {})[1]
        except (NotFoundError, MonitorError):  # undeployed, or its column gone: its runs say so
            continue
        queries = _window_queries(backend, schema, target, time_column, time_type)
        if [queries["windows_sql"], queries["relabeled_sql"]] != stored:
            backend.execute(
                statement("monitoring", "set_window_queries", backend.dialect),
                {"name": name, "time_column": time_column, **queries},
            )
            changed.append(name)
    return changed


def _positional(text: str) -> str:
    """Stored statements keep $1..$4 in every dialect (PL/pgSQL's EXECUTE ... USING)."""
    return re.sub(r"%\((\d+)\)s", r"$\1", text)


def _sources(backend: Backend, target, chosen: dict[str, str], request: dict[str, str]) -> dict[str, str]:
    """Where each monitored column is read: the request table, else the predictions."""
    recorded = backend.table_columns(target.predictions_table) or {}
    sources, missing = {}, []
    for feature in chosen:
        if feature == "prediction":
            continue
        if feature in request:
            sources[feature] = "r"
        elif feature in recorded and feature not in _PREDICTION_COLUMNS:
            sources[feature] = "p"
        else:
            missing.append(feature)
    if missing:
        raise MonitorError(
            f"deployment {target.table!r} has no column(s) {missing}: neither its request table nor "
            "its predictions (features recorded at scoring time) hold them"
        )
    return sources


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
    time_column: str | None = None,
    protected=None,
    favorable=None,
    importance: bool = False,
) -> Monitor:
    name = identifiers.monitor_name(name)
    if mode not in MODES:
        raise MonitorError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    target = deployments.get(backend, deployment)
    mv = registry.get(backend, target.model, target.version, with_bytes=False)
    request = backend.table_columns(target.table) or {}
    time_column, time_type = _time_column(time_column, request)
    recorded = backend.table_columns(target.predictions_table) or {}
    extra = {c: t for c, t in recorded.items() if c not in _PREDICTION_COLUMNS} | request
    chosen = _features(mv.signature, features, extra)
    sources = _sources(backend, target, chosen, request)
    readable = fairness.stored_features(backend, target.table, request) if protected else {}
    readable |= {c: "r" for c in request} | {
        c: "p" for c in recorded if c not in _PREDICTION_COLUMNS and c not in request
    }
    protected, favorable = fairness.check(protected, favorable, mv.task, mv.classes, readable)
    window_text, seconds = parse_window(window)
    spec = _reference_spec(reference)
    thresholds, fair_limits = fairness.split_thresholds(thresholds, protected)
    thresholds, importance_limits = attributions.split_thresholds(thresholds, bool(importance))
    schema = backend.current_schema()
    explanations = None
    if importance:
        explanations = backend.quote(schema, attributions.explanations_table(backend, target.table))
    limits = _thresholds(chosen, thresholds)
    if backend.rows(statement("monitoring", "get_monitor", backend.dialect), {"name": name}):
        raise MonitorError(f"monitor {name!r} exists; drop it first (db.drop_monitor)")
    q = backend.quote
    probability_columns = list(deployments.probability_columns(mv.classes))
    install(backend)
    # No cleanup in a finally: after a failed statement the transaction is aborted and any
    # further statement would hide the error; the rollback drops the temporary table.
    with backend.transaction():
        temp = _reference_table(
            backend, spec, target.view, _window_time(backend, "s", time_column, time_type)
        )
        present = set(backend.query(backend.render("monitoring", "reference_columns", temp=temp)).columns)
        missing = [f for f in chosen if f not in present and f != "prediction"]
        if missing:
            raise MonitorError(f"the reference has no column(s) {missing}; it has {sorted(present)}")
        if "prediction" not in present:
            chosen.pop("prediction", None)  # e.g. a training set: no predictions to compare
        ((n_reference,),) = backend.rows(backend.render("monitoring", "reference_rows", temp=temp))
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
        if explanations is not None:
            attributions.store_reference(backend, name, explanations, temp, present)
        if favorable is not None:
            fairness.store(backend, name, favorable)
        backend.execute(backend.render("monitoring", "drop_reference", temp=temp))
        limits = [
            *(row for row in limits if row[0] == "*" or row[0] in chosen),
            *fair_limits,
            *importance_limits,
        ]
        for feature, metric, value, direction in limits:
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
        # Every object the stored statements name is schema-qualified: indb.run_monitor runs
        # them with search_path = pg_catalog, pg_temp.
        window = q(backend.temp_schema, WINDOW_TABLE)
        tables = (q(schema, target.table), q(schema, target.predictions_table))
        time = _window_time(backend, "r" if time_column else "p", time_column, time_type)
        sources = {f: s for f, s in sources.items() if f in chosen}
        for attribute in protected:  # a stored feature's entity keys, else the column itself
            keys = getattr(readable[attribute], "keys", None)
            sources |= {k: "r" for k in keys} if keys else {attribute: readable[attribute]}
        served = deployments.served_filter(backend, target.table, Quoted("p"))
        steps = window_statements(backend, window, tables, sources, probability_columns, time, served)
        for feature, kind in chosen.items():
            steps += drift.column_statements(backend, window, feature, kind, mode)
        steps += accuracy.statements(
            backend,
            name,
            window,
            q(schema, target.ground_truth_table),
            mv.task,
            mv.classes,
            probability_columns,
        )
        steps += fairness.statements(
            backend,
            window,
            q(schema, target.ground_truth_table),
            {attribute: readable[attribute] for attribute in protected},
            schema,
        )
        if explanations is not None:
            steps += attributions.statements(backend, window, explanations)
        steps.append(("drop window", backend.render("monitoring", "drop_window", window=window)))
        for step, (purpose, text) in enumerate(steps):
            backend.execute(
                statement("monitoring", "insert_statement", backend.dialect),
                {"monitor": name, "step": step, "purpose": purpose, "statement": _positional(text)},
            )
        queries = _window_queries(backend, schema, target, time_column, time_type)
        backend.execute(
            statement("monitoring", "set_window_queries", backend.dialect),
            {"name": name, "time_column": time_column, **queries},
        )
        audit.record(
            backend,
            "create_monitor",
            name,
            {
                "deployment": target.table,
                "reference": spec,
                "mode": mode,
                "time_column": time_column,
                "protected": protected,
                "favorable": favorable,
                "importance": bool(importance),
            },
        )
    return Monitor(
        name,
        target.table,
        chosen,
        window_text,
        seconds,
        mode,
        spec,
        int(n_reference),
        time_column,
        limits,
        steps,
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
            "features",
            "bins",
            "reference_values",
            "reference_cells",
            "thresholds",
            "statements",
            "results",
            "alerts",
        ):
            backend.execute(
                statement("monitoring", f"delete_monitor_{table}", backend.dialect), {"monitor": name}
            )
        backend.execute(statement("monitoring", "delete_sinks", backend.dialect), {"monitor": name})
        backend.execute(statement("monitoring", "delete_monitor", backend.dialect), {"monitor": name})
        for text, params in collaboration.forget_statements(backend, "monitor", name):
            backend.execute(text, params)
        audit.record(backend, "drop_monitor", name)


def _reference_edges(backend, slots: dict, count: int) -> list[float]:
    """The PSI bin edges: the reference's deciles as numpy computes them (drift.interpolate
    between the values the database picks out), none for a column without values."""
    if not count:
        return []
    probabilities = [b / drift.PSI_BINS for b in range(1, drift.PSI_BINS)]
    positions, gamma = drift.quantile_neighbours(count, probabilities)
    ((values,),) = backend.rows(
        backend.render("monitoring", "reference_order_statistics", **slots), {"positions": positions}
    )
    values = np.asarray(values, dtype=np.float64)
    half = len(probabilities)
    return drift.interpolate(values[:half], values[half:], gamma).tolist()
