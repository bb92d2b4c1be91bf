"""Humility rules: checks on every scored row of a deployment, in the insert's own transaction.

Kinds (DataRobot's idea): ``outside_range`` (a numeric input below ``low`` or above
``high``; default: the range of the registration sample), ``unseen_category`` (a string
input not among ``categories``; default: those of the registration sample), ``uncertain``
(the probability of the positive class, the last class, within [low, high]). Actions:
``log`` records an event, ``override`` records it and replaces the prediction with
``override``, ``reject`` raises a ScoringError naming the rule, row and value, and the whole
INSERT is rolled back. Events are rows of ``indb.humility_events``. Bulk deployments only.
"""

from __future__ import annotations

import io
import math
import numbers

import pandas as pd

from indb import audit, deployments, identifiers, registry
from indb.backends.base import Backend
from indb.errors import DeploymentError, NotFoundError
from indb.identifiers import Quoted
from indb.sql import statement

KINDS = ("outside_range", "unseen_category", "uncertain")
ACTIONS = ("log", "override", "reject")


def _sample(backend: Backend, mv) -> pd.DataFrame:
    ((text,),) = backend.rows(
        statement("registry", "get_sample", backend.dialect), {"model": mv.name, "version": mv.version}
    )
    return pd.read_json(io.StringIO(text), orient="split") if text else pd.DataFrame()


def add_rule(
    backend: Backend,
    deployment: str,
    name: str,
    kind: str,
    feature: str | None = None,
    *,
    low: float | None = None,
    high: float | None = None,
    categories=None,
    action: str = "log",
    override=None,
) -> dict:
    target = deployments.get(backend, deployment)
    name = identifiers.alias_name(name)
    if target.mode != "bulk":
        raise DeploymentError(f"humility rules check bulk deployments; {target.table!r} scores in row mode")
    if kind not in KINDS:
        raise NotFoundError("humility rule kind", kind, list(KINDS))
    if action not in ACTIONS:
        raise NotFoundError("humility action", action, list(ACTIONS))
    if action == "override" and override is None:
        raise DeploymentError(f"humility rule {name!r}: action 'override' needs override=<prediction>")
    mv = registry.get(backend, target.model, target.version, with_bytes=False)
    inputs = {i.name: i.sql_type for i in mv.signature.inputs}
    if kind == "uncertain":
        columns = deployments.probability_columns(mv.classes)
        if not columns:
            raise DeploymentError(f"humility rule {name!r}: 'uncertain' needs a classifier's probabilities")
        feature = feature or columns[-1]
        if feature not in columns:
            raise NotFoundError("probability column", feature, list(columns))
        if low is None or high is None:
            raise DeploymentError(f"humility rule {name!r}: 'uncertain' needs low= and high= (the band)")
    elif feature not in inputs:
        raise NotFoundError("model input", feature, list(inputs))
    elif feature not in (backend.table_columns(target.table) or {}):
        raise DeploymentError(
            f"humility rule {name!r}: input {feature!r} is not a column of {target.table!r} (the "
            "deployment looks it up from a feature set); rules check the request table's own columns"
        )
    low, high = _bound(name, "low", low), _bound(name, "high", high)
    sample = _sample(backend, mv)
    if kind == "outside_range":
        if inputs[feature] == "VARCHAR":
            raise DeploymentError(f"humility rule {name!r}: {feature} is a string; use 'unseen_category'")
        low = float(sample[feature].min()) if low is None else float(low)
        high = float(sample[feature].max()) if high is None else float(high)
    if kind == "unseen_category":
        if categories is None:
            categories = sample[feature].dropna().astype(str).unique().tolist()
        categories = sorted({str(c) for c in categories})
    row = {
        "deployment": target.table,
        "name": name,
        "kind": kind,
        "feature": feature,
        "low": low,
        "high": high,
        "action": action,
        "override": None if override is None else str(override),
    }
    existing = backend.rows(statement("humility", "rules", backend.dialect), {"deployment": target.table})
    if name in [r[0] for r in existing]:
        raise DeploymentError(f"deployment {target.table!r} already has a humility rule {name!r}")
    backend.require_deployer(f"add a humility rule to {target.table!r}")

    def write() -> None:
        with backend.transaction():
            backend.execute(statement("humility", "insert_rule", backend.dialect), row)
            for category in categories or []:
                backend.execute(
                    statement("humility", "insert_category", backend.dialect),
                    {"deployment": target.table, "rule": name, "category": category},
                )
            install(backend, target.table)
            audit.record(backend, "add_humility_rule", target.table, {**row, "categories": categories})

    backend.retrying(target.table, write)  # it changes the table's triggers, as a deploy does
    return row


def _bound(rule: str, which: str, value) -> float | None:
    """A band edge: a finite number or None (a NaN bound compares false with every value,
    so the rule would never fire)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise DeploymentError(f"humility rule {rule!r}: {which} must be a finite number, got {value!r}")
    return float(value)


def remove_rule(backend: Backend, deployment: str, name: str) -> None:
    target = deployments.get(backend, deployment)
    backend.require_deployer(f"remove a humility rule of {target.table!r}")

    def write() -> None:
        with backend.transaction():
            params = {"deployment": target.table, "name": name}
            backend.execute(statement("humility", "delete_rule", backend.dialect), params)
            backend.execute(statement("humility", "delete_categories", backend.dialect), params)
            install(backend, target.table)
            audit.record(backend, "remove_humility_rule", target.table, {"name": name})

    backend.retrying(target.table, write)


def rules(backend: Backend, deployment: str) -> pd.DataFrame:
    return backend.query(statement("humility", "rules", backend.dialect), {"deployment": deployment})


def events(backend: Backend, deployment: str) -> pd.DataFrame:
    return backend.query(statement("humility", "events", backend.dialect), {"deployment": deployment})


# Trigger names: one per statement where triggers hold their statement (log, then override);
# "_override" is the name older indb gave the second one.
_TRIGGERS = ("score_humility", "score_humility_2", "score_humility_override")


def install(backend: Backend, table: str) -> None:
    """(Re)create the humility triggers of a deployment from its rules; none without rules.
    Deploying calls this too, so they stay after the scoring trigger (their names sort after
    ``<table>_score``). Every object the trigger statements name is schema-qualified: on
    PostgreSQL they run in a SECURITY DEFINER function with search_path pg_catalog, pg_temp."""
    found = backend.rows(statement("humility", "rules", backend.dialect), {"deployment": table})
    q = backend.quote
    schema = backend.current_schema()
    target_table = q(schema, table)
    for suffix in _TRIGGERS:
        backend.execute(backend.drop_trigger_sql(f"{table}_{suffix}", target_table))
    if not found:
        return
    target = deployments.get(backend, table)
    mv = registry.get(backend, target.model, target.version, with_bytes=False)
    predictions = q(schema, f"{table}_predictions")
    deployment = backend.literal(table)
    checks = [
        backend.render(
            "humility",
            f"check_{kind}",
            column=q(feature),
            deployment=deployment,
            rule=backend.literal(rule),
            predictions=predictions,
            served=deployments.served_filter(backend, table, Quoted("p")),
            rows=backend.inserted_rows,
        )
        for rule, kind, feature, *_ in found
    ]
    slots = {"deployment": deployment, "predictions": predictions}
    log = backend.render(
        "humility",
        "log_events",
        checks=Quoted(" UNION ALL ".join(checks)),
        fail=Quoted(backend.fail_function),
        **slots,
    )
    override = backend.render(
        "humility",
        "apply_overrides",
        prediction_type=Quoted(mv.signature.prediction_type),
        served_here=deployments.served_filter(backend, table),
        rows=backend.inserted_rows,
        **slots,
    )
    for text in backend.trigger_sql(
        f"{table}_{_TRIGGERS[0]}",
        target_table,
        [log, override],
        function=q("indb", f"humility_{table}"),
        definer=True,
        guard=(schema, table),  # a definer function: it runs only for the table it was made for
        skippable=True,  # both statements read the inserted rows as backend.inserted_rows
    ):
        backend.execute(text)
