"""Deployments: a request table whose every insert is scored into ``<table>_predictions``.

Deploying creates (or adopts) the request table, the predictions and ground-truth
tables and the ``<table>_scored`` view, then installs the backend's scoring
trigger, all in one transaction. Deploying again switches the version atomically.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from indb import audit, identifiers, registry
from indb.backends.base import Backend, ScoringTarget
from indb.errors import DeploymentError, NotFoundError
from indb.identifiers import Quoted, join, literal, quote
from indb.sql import render, statement

RUNTIMES = ("auto", "onnx")
# SQL types a request column may have for each input type the model takes.
_COMPATIBLE = {
    "DOUBLE": (
        "DOUBLE",
        "FLOAT",
        "REAL",
        "BIGINT",
        "INTEGER",
        "SMALLINT",
        "TINYINT",
        "HUGEINT",
        "UBIGINT",
        "UINTEGER",
        "USMALLINT",
        "UTINYINT",
        "DECIMAL",
    ),
    "BIGINT": ("BIGINT", "INTEGER", "SMALLINT", "TINYINT", "UINTEGER", "USMALLINT", "UTINYINT"),
    "BOOLEAN": ("BOOLEAN",),
    "VARCHAR": ("VARCHAR",),
}


@dataclass(frozen=True)
class Deployment:
    table: str
    model: str
    version: int
    runtime: str
    statements: list[str] = field(default_factory=list, repr=False)

    @property
    def predictions_table(self) -> str:
        return f"{self.table}_predictions"

    @property
    def ground_truth_table(self) -> str:
        return f"{self.table}_ground_truth"

    @property
    def view(self) -> str:
        return f"{self.table}_scored"


def probability_columns(classes: tuple | None) -> tuple[str, ...]:
    """``probability_<class>`` per class, made into plain identifiers."""
    if not classes:
        return ()
    names: list[str] = []
    for label in classes:
        base = "probability_" + (re.sub(r"[^a-z0-9_]+", "_", str(label).lower()).strip("_") or "x")
        name, n = base, 2
        while name in names:
            name, n = f"{base}_{n}", n + 1
        names.append(identifiers.column_name(name[:63]))
    return tuple(names)


def _base_type(sql_type: str) -> str:
    return sql_type.split("(")[0].strip().upper()


def _check_request_table(table: str, columns: dict[str, str], sig) -> None:
    """Every model input present with a compatible type; all problems reported at once."""
    lowered = {c.lower(): t for c, t in columns.items()}
    problems = []
    for spec in sig.inputs:
        found = lowered.get(spec.name.lower())
        if found is None:
            problems.append(f"no column {spec.name!r} (the model needs {spec.name} {spec.sql_type})")
        elif _base_type(found) not in _COMPATIBLE[spec.sql_type]:
            problems.append(f"{table}.{spec.name} is {found}; the model needs {spec.sql_type}")
    if "id" in lowered and _base_type(lowered["id"]) not in _COMPATIBLE["BIGINT"]:
        problems.append(f"{table}.id is {lowered['id']}; indb needs an integer row key")
    if problems:
        raise DeploymentError(f"table {table!r} cannot be scored by this model: " + "; ".join(problems))


def _table_statements(backend: Backend, table: str, mv, existing: dict | None) -> list[str]:
    d = backend.dialect
    q = lambda name: quote(name, dialect=d)  # noqa: E731
    sql = lambda name, **slots: render("deploy", name, d, **slots)  # noqa: E731
    sig = mv.signature
    sequence = f"{table}_id_seq"
    result = []
    if existing is None or "id" not in {c.lower() for c in existing}:
        result.append(sql("create_sequence", sequence=q(sequence)))
    if existing is None:
        features = join(
            Quoted(f"{q(i.name)} {i.sql_type}" + ("" if i.nullable else " NOT NULL")) for i in sig.inputs
        )
        result.append(
            sql(
                "create_request_table",
                table=q(table),
                sequence_literal=literal(sequence, d),
                feature_columns=features,
            )
        )
    elif "id" not in {c.lower() for c in existing}:
        result.append(sql("add_id_column", table=q(table), sequence_literal=literal(sequence, d)))

    predictions = f"{table}_predictions"
    wanted = probability_columns(sig.classes)
    present = backend.table_columns(predictions)
    if present is None:
        result.append(
            sql(
                "create_predictions_table",
                predictions=q(predictions),
                prediction_type=Quoted(sig.prediction_type),
            )
        )
        present = {}
    elif _base_type(present.get("prediction", "")) != sig.prediction_type:
        raise DeploymentError(
            f"table {predictions!r} holds {present.get('prediction')} predictions but model "
            f"{mv.name!r} version {mv.version} predicts {sig.prediction_type}; deploy it to "
            "another table"
        )
    for column in wanted:
        if column not in present:
            result.append(sql("add_probability_column", predictions=q(predictions), column=q(column)))
    all_probabilities = [c for c in present if c.startswith("probability_")]
    all_probabilities += [c for c in wanted if c not in all_probabilities]
    result.append(
        sql(
            "create_ground_truth_table",
            ground_truth=q(f"{table}_ground_truth"),
            prediction_type=Quoted(sig.prediction_type),
        )
    )
    result.append(
        sql(
            "create_scored_view",
            view=q(f"{table}_scored"),
            table=q(table),
            predictions=q(predictions),
            ground_truth=q(f"{table}_ground_truth"),
            probability_columns=Quoted("".join(f"p.{q(c)}, " for c in all_probabilities)),
        )
    )
    return result


def deploy(
    backend: Backend,
    model: str,
    *,
    table: str,
    version: int | str | None = None,
    runtime: str = "auto",
    dry_run: bool = False,
) -> Deployment:
    table = identifiers.table_name(table)
    if runtime not in RUNTIMES:
        raise DeploymentError(f"runtime {runtime!r} is not one of {', '.join(RUNTIMES)}")
    runtime = "onnx"  # the only runtime so far; "auto" will prefer compiled SQL once it exists
    mv = registry.get(backend, model, version, with_bytes=False)
    existing = backend.table_columns(table)
    if existing is not None:
        _check_request_table(table, existing, mv.signature)
    target = ScoringTarget(table, mv.ref, runtime, probability_columns(mv.classes))
    current = backend.rows(statement("deployments", "get_deployment", backend.dialect), {"table_name": table})
    statements = _table_statements(backend, table, mv, existing)
    statements += backend.scoring_sql(target, backfill=existing is not None)
    result = Deployment(table, mv.name, mv.version, runtime, statements)
    if dry_run:
        return result
    which = "update_deployment" if current else "insert_deployment"
    with backend.transaction():
        backend.prepare_model(mv.ref)
        for text in statements:
            backend.execute(text)
        backend.execute(
            statement("deployments", which, backend.dialect),
            {"table_name": table, "model": mv.name, "version": mv.version, "runtime": runtime},
        )
        audit.record(
            backend,
            "deploy",
            table,
            {
                "model": mv.name,
                "version": mv.version,
                "runtime": runtime,
                "previous": None if not current else {"model": current[0][1], "version": current[0][2]},
            },
        )
    return result


def get(backend: Backend, table: str) -> Deployment:
    table = identifiers.table_name(table)
    found = backend.rows(statement("deployments", "get_deployment", backend.dialect), {"table_name": table})
    if not found:
        known = [r[0] for r in backend.rows(statement("deployments", "list_deployments", backend.dialect))]
        raise NotFoundError("deployment on table", table, known)
    _, model, version, runtime, *_ = found[0]
    return Deployment(table, model, int(version), runtime)


def undeploy(backend: Backend, table: str, *, drop_tables: bool = False) -> list[str]:
    """Stop scoring inserts into ``table``; with ``drop_tables`` also drop its indb tables."""
    deployment = get(backend, table)
    d = backend.dialect
    q = lambda name: quote(name, dialect=d)  # noqa: E731
    run = backend.unscoring_sql(deployment.table)
    if drop_tables:
        sql = lambda name, **slots: render("deploy", name, d, **slots)  # noqa: E731
        run.append(sql("drop_view", view=q(deployment.view)))
        for name in (deployment.table, deployment.predictions_table, deployment.ground_truth_table):
            run.append(sql("drop_table", table=q(name)))
        run.append(sql("drop_sequence", sequence=q(f"{deployment.table}_id_seq")))
    with backend.transaction():
        for text in run:
            backend.execute(text)
        backend.execute(statement("deployments", "delete_deployment", d), {"table_name": deployment.table})
        audit.record(backend, "undeploy", deployment.table, {"drop_tables": drop_tables})
    return run
