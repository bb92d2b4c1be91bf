"""Deployments: a request table whose every insert is scored into ``<table>_predictions``.

Deploying creates (or adopts) the request table, the predictions and ground-truth
tables and the ``<table>_scored`` view, then installs the backend's scoring
trigger, all in one transaction. Deploying again switches the version atomically.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import partial, wraps

from indb import audit, explanations, identifiers, registry
from indb import compiled as compiled_runtime
from indb.backends.base import Arm, Backend, FeatureJoin, ScoringTarget
from indb.errors import DeploymentError, NotFoundError
from indb.governance import stages
from indb.identifiers import Quoted, join
from indb.lifecycle import challengers as lifecycle
from indb.sql import statement
from indb.sqltypes import COMPATIBLE, base_type, spelled

RUNTIMES = ("auto", "sql", "onnx")
# Columns a row-mode deployment adds to the request table (besides probability_<class>).
PREDICTION_COLUMNS = ("model", "model_version", "runtime", "prediction", "scored_at", "role")


# SQL types a request column may have for each input type the model takes.
@dataclass(frozen=True)
class Deployment:
    table: str
    model: str
    version: int
    runtime: str
    mode: str = "bulk"
    statements: list[str] = field(default_factory=list, repr=False)
    reason: str = ""  # why this runtime

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


@dataclass(frozen=True)
class RequestColumn:
    """A column of a request table that is not a model input: an entity key (features_from)."""

    name: str
    sql_type: str
    nullable: bool = False


def _check_request_table(table: str, columns: dict[str, str], inputs) -> None:
    """Every model input present with a compatible type; all problems reported at once."""
    lowered = {c.lower(): t for c, t in columns.items()}
    problems = []
    for spec in inputs:
        found = lowered.get(spec.name.lower())
        if found is None:
            problems.append(f"no column {spec.name!r} (the model needs {spec.name} {spec.sql_type})")
        elif base_type(found) not in COMPATIBLE.get(spec.sql_type, (base_type(spec.sql_type),)):
            problems.append(f"{table}.{spec.name} is {found}; the model needs {spec.sql_type}")
    if "id" in lowered and base_type(lowered["id"]) not in COMPATIBLE["BIGINT"]:
        problems.append(f"{table}.id is {lowered['id']}; indb needs an integer row key")
    if problems:
        raise DeploymentError(f"table {table!r} cannot be scored by this model: " + "; ".join(problems))


def _request_statements(backend: Backend, table: str, inputs, existing: dict | None) -> list[str]:
    """Create the request table, or give an adopted one an ``id`` key."""
    q = backend.quote
    sequence = f"{table}_id_seq"
    has_id = existing is not None and "id" in {c.lower() for c in existing}
    result = [] if has_id else [backend.render("deploy", "create_sequence", sequence=q(sequence))]
    if existing is None:
        features = join(
            Quoted(f"{q(i.name)} {i.sql_type}" + ("" if i.nullable else " NOT NULL")) for i in inputs
        )
        result.append(
            backend.render(
                "deploy",
                "create_request_table",
                table=q(table),
                sequence_literal=backend.literal(sequence),
                feature_columns=features,
            )
        )
    elif not has_id:
        result.append(
            backend.render(
                "deploy", "add_id_column", table=q(table), sequence_literal=backend.literal(sequence)
            )
        )
    if existing is None and backend.keyed_ids:
        result.append(backend.render("deploy", "add_key", table=q(table)))
    return result


def _prediction_statements(backend: Backend, table: str, mv, mode: str) -> tuple[list[str], list[str]]:
    """Statements giving predictions a home (a table in bulk mode, columns of the request
    table in row mode), and every probability column there after them."""
    q = backend.quote
    sig = mv.signature
    home = table if mode == "row" else f"{table}_predictions"
    request = backend.table_columns(table) if mode == "row" else None
    present = backend.table_columns(home) if mode == "bulk" else (request or {})
    result = []
    prediction_type = Quoted(sig.prediction_type)
    if mode == "row" and not set(PREDICTION_COLUMNS) <= set(present or {}):
        # only when a column is missing: ALTER TABLE blocks every writer of the table
        result.append(
            backend.render(
                "deploy",
                "add_row_prediction_columns",
                table=q(table),
                prediction_type=Quoted(spelled(sig.prediction_type, backend.dialect)),
            )
        )
    elif present is None:
        result.append(
            backend.render(
                "deploy", "create_predictions_table", predictions=q(home), prediction_type=prediction_type
            )
        )
        if backend.keyed_ids:
            result.append(_served_index(backend, home))
    if backend.time_indexes and (present is None if mode == "bulk" else request is None):
        # with the table only: on a table that has rows the build would hold up its inserts
        result.append(time_index(backend, table, mode, "p_time"))
    if mode == "bulk" and present is not None and "served" not in present:
        for name in ("add_arm_columns", "add_served_column"):
            result.append(backend.render("deploy", name, predictions=q(home)))
        if backend.keyed_ids:  # one served row per id; shadow rows share the id
            key = q(f"{home[:58]}_pkey")
            result.append(backend.render("deploy", "drop_prediction_key", predictions=q(home), key=key))
            result.append(_served_index(backend, home))
    present = present or {}
    if "prediction" in present and base_type(present["prediction"]) != sig.prediction_type:
        raise DeploymentError(
            f"table {home!r} holds {present['prediction']} predictions but model {mv.name!r} version "
            f"{mv.version} predicts {sig.prediction_type}; deploy it to another table"
        )
    wanted = probability_columns(sig.classes)
    for column in wanted:
        if column not in present:
            result.append(
                backend.render("deploy", "add_probability_column", predictions=q(home), column=q(column))
            )
    every = [c for c in present if c.startswith("probability_")]
    every += [c for c in wanted if c not in every]
    if mode == "row":
        result += _shadow_statements(backend, table, prediction_type, every)
    return result, every


# The indexes on a deployment's times where a backend wants them (Backend.time_indexes), by the
# suffix of their names: <table>_p_time on the predictions' scored_at (the request table's in
# row mode), <table>_gt_id and <table>_gt_time on the ground truth's id and observed_at.
_TIME_INDEXES = {
    "p_time": "add_scored_at_index",
    "gt_id": "add_label_id_index",
    "gt_time": "add_label_time_index",
}


def time_index(
    backend: Backend, table: str, mode: str, suffix: str, *, schema: str | None = None, concurrently=False
) -> str:
    """One index on a deployment's times (sql/postgres/deploy.sql); ``concurrently`` for a
    table that has rows (``indb doctor``'s fix for tables deployed before)."""
    q = backend.quote

    def name(relation: str) -> Quoted:
        return q(schema, relation) if schema else q(relation)

    return backend.render(
        "deploy",
        _TIME_INDEXES[suffix],
        index=q(f"{table}_{suffix}"),
        home=name(table if mode == "row" else f"{table}_predictions"),
        ground_truth=name(f"{table}_ground_truth"),
        concurrently=Quoted("CONCURRENTLY" if concurrently else ""),
    )


def shadow_table(table: str) -> str:
    """Where a row-mode deployment's shadow challengers write (its served predictions are
    columns of the request table); ``<table>_predictions`` shows both."""
    return f"{table}_shadow_predictions"


def _shadow_statements(backend: Backend, table: str, prediction_type: Quoted, probabilities) -> list[str]:
    q = backend.quote
    home = shadow_table(table)
    present = backend.table_columns(home)
    result = []
    if present is None:
        result.append(
            backend.render(
                "deploy", "create_predictions_table", predictions=q(home), prediction_type=prediction_type
            )
        )
    for column in probabilities:
        if column not in (present or {}):
            result.append(
                backend.render("deploy", "add_probability_column", predictions=q(home), column=q(column))
            )
    return result


def _served_index(backend: Backend, predictions: str) -> str:
    """Exactly one served prediction per request id, whatever the challengers (the key of a
    prediction table where tables get keys)."""
    index = backend.quote(f"{predictions[:55]}_served")
    return backend.render("deploy", "add_served_index", predictions=backend.quote(predictions), index=index)


def _view_statements(backend: Backend, table: str, mv, mode: str, request: list[str], probabilities) -> list:
    """The ground-truth table and the views, each only when missing or different: replacing a
    view waits for every query reading it."""
    q = backend.quote
    result = []
    if backend.table_columns(f"{table}_ground_truth") is None:
        result.append(
            backend.render(
                "deploy",
                "create_ground_truth_table",
                ground_truth=q(f"{table}_ground_truth"),
                prediction_type=Quoted(mv.signature.prediction_type),
            )
        )
        if backend.time_indexes:
            result += [time_index(backend, table, mode, suffix) for suffix in ("gt_id", "gt_time")]
    outputs = ["model", "model_version", "runtime", "prediction", *probabilities, "scored_at"]
    predictions = backend.table_columns(f"{table}_predictions")
    scored = backend.table_columns(f"{table}_scored")
    if (
        scored is not None
        and list(scored) == [*request, *outputs, "label", "observed_at"]
        and predictions is not None
        and "served" in predictions  # else the view is from before challengers: no served filter
        and (mode != "row" or list(predictions) == ["id", *outputs, "role", "served"])
    ):
        return result
    # CREATE OR REPLACE VIEW may only add columns at the end (PostgreSQL): after a column was
    # added to the request table, or a probability column, the views are made anew (the
    # scored view first: in row mode it reads the predictions view).
    views = [(f"{table}_scored", scored, [*request, *outputs, "label", "observed_at"])]
    if mode == "row":
        views.append((f"{table}_predictions", predictions, ["id", *outputs, "role", "served"]))
    for view, present, wanted in views:
        if present is not None and list(present) != wanted[: len(present)]:
            result.append(backend.render("deploy", "drop_view", view=q(view)))
    if mode == "row":
        result.append(
            backend.render(
                "deploy",
                "create_row_predictions_view",
                predictions=q(f"{table}_predictions"),
                table=q(table),
                shadow=q(shadow_table(table)),
                probability_columns=Quoted("".join(f"{q(c)}, " for c in probabilities)),
            )
        )
    result.append(
        backend.render(
            "deploy",
            "create_scored_view",
            view=q(f"{table}_scored"),
            table=q(table),
            predictions=q(f"{table}_predictions"),
            ground_truth=q(f"{table}_ground_truth"),
            request_columns=join(Quoted(f"r.{q(c)}") for c in request),
            probability_columns=Quoted("".join(f"p.{q(c)}, " for c in probabilities)),
        )
    )
    return result


def _request_columns(table_columns: dict | None, inputs, mode: str, probabilities) -> list[str]:
    """The request table's own columns, as the scored view shows them."""
    if table_columns is None:
        return ["id", *(i.name for i in inputs), "created_at"]
    added = set(PREDICTION_COLUMNS) | set(probabilities) if mode == "row" else set()
    columns = [c for c in table_columns if c not in added]
    # an adopted table without id gets it as its last column: the view's order then stays the
    # same when a later deploy finds it there (PostgreSQL cannot reorder a view's columns)
    return columns if "id" in columns else [*columns, "id"]


def _features_from(backend: Backend, features_from, sig) -> tuple[FeatureJoin, list, dict]:
    """Which model inputs come from stored features (matched by name) and which the request
    rows carry (the entity keys and any other input): (the join, request columns, catalog)."""
    from indb.feature_store import sets

    names = [features_from] if isinstance(features_from, str) else features_from
    if not isinstance(names, list | tuple) or not names or not all(isinstance(n, str) for n in names):
        raise DeploymentError(
            f"features_from must be a feature set name or a list of them, got {features_from!r}"
        )
    chosen, provider = [], {}
    for text in names:
        name, _, version = text.partition("@")
        if version and not version.isdigit():
            raise DeploymentError(f"features_from {text!r}: expected 'set' or 'set@<version>'")
        fs = sets.get(backend, name, int(version) if version else None)
        chosen.append(fs)
        for feature in fs.features:
            if feature.name in provider:
                raise DeploymentError(
                    f"feature {feature.name!r} is in feature sets {provider[feature.name][0].name!r} and "
                    f"{fs.name!r}; deploy from one of them"
                )
            provider[feature.name] = (fs, feature)
    used: dict[str, list[str]] = {fs.name: [] for fs in chosen}
    request, problems = [], []
    for spec in sig.inputs:
        if spec.name not in provider:
            request.append(spec)  # a request-time column
            continue
        fs, feature = provider[spec.name]
        if base_type(feature.data_type) not in COMPATIBLE[spec.sql_type]:
            problems.append(
                f"{fs.name}.{feature.name} is {feature.data_type}; the model needs {spec.sql_type}"
            )
        used[fs.name].append(spec.name)
    for fs in chosen:
        if not used[fs.name]:
            problems.append(
                f"feature set {fs.name!r} has none of the model's inputs ({', '.join(sig.columns)})"
            )
    if problems:
        raise DeploymentError("cannot score from stored features: " + "; ".join(problems))
    keys = []
    for fs in chosen:
        for key, key_type in zip(fs.keys, fs.key_types, strict=True):
            if key not in [k.name for k in keys] and key not in [r.name for r in request]:
                keys.append(RequestColumn(key, identifiers.sql_type(key_type).text))
    schema = backend.current_schema()
    tables = tuple((fs.online_table, fs.keys, tuple(used[fs.name])) for fs in chosen)
    join = FeatureJoin(tables, schema, backend.fail_function)
    types = {f: provider[f][1].data_type for f in join.columns}
    info = {
        "feature_sets": [[fs.name, fs.version] for fs in chosen],
        "columns": list(join.columns),
        "types": types,
        # What the onnx trigger reads: its transition table with the stored features, rendered
        # once here (the runtime runs it as it is).
        "relation": join.source(backend.dialect, "new_rows"),
    }
    return join, keys + request, info


# Runtime choices (with the compiled and verified SQL) of versions this process deployed: a
# version's bytes never change (sha256), so switching back to one does not compile it again.
_CHOICES: dict[tuple, object] = {}


def _choose(backend: Backend, mv, runtime: str):
    key = (backend.scope, mv.name, mv.version, mv.sha256, runtime)
    found = _CHOICES.get(key)
    if found is None:
        found = compiled_runtime.choose(backend, mv, runtime)
        while len(_CHOICES) >= 32:
            del _CHOICES[next(iter(_CHOICES))]
        _CHOICES[key] = found
    return found


def _retried(verb):
    """``verb`` (its whole transaction) run through :meth:`Backend.retrying` for its table: on
    DuckDB a db.insert may hold the table's triggers dropped until it commits."""

    @wraps(verb)
    def run(backend: Backend, *args, **kwargs):
        table = kwargs["table"] if "table" in kwargs else args[0]
        return backend.retrying(identifiers.table_name(table), partial(verb, backend, *args, **kwargs))

    return run


@_retried
def deploy(
    backend: Backend,
    model: str,
    *,
    table: str,
    version: int | str | None = None,
    runtime: str = "auto",
    mode: str = "bulk",
    dry_run: bool = False,
    features_from: str | list[str] | None = None,
    challengers: list | None = None,
    reason: str | None = None,
    evidence: str | None = None,
    explain: bool | None = None,
) -> Deployment:
    """Deploy ``model`` to ``table`` or switch it. ``challengers`` (indb.lifecycle.challengers)
    is the deployment's new set of challengers; None keeps the current ones (less any that is
    now the champion, or of another model). A creation or a switch of version or runtime writes
    a row of ``indb.deployment_history`` with ``reason`` (default "deploy") and ``evidence``
    (JSON text). ``explain`` (indb.explanations): True writes ``<table>_explanations`` in the
    statement that scores each insert, False stops it, None keeps what the deployment does."""
    table = identifiers.table_name(table)
    if not dry_run:
        backend.require_deployer(f"deploy to {table!r}")
    if runtime not in RUNTIMES:
        raise DeploymentError(f"runtime {runtime!r} is not one of {', '.join(RUNTIMES)}")
    if mode not in backend.scoring_modes:
        raise DeploymentError(
            f"mode {mode!r} is not available on {backend.name}; "
            f"it scores in mode(s) {', '.join(backend.scoring_modes)}"
        )
    mv = registry.get(backend, model, version, with_bytes=True)
    existing = backend.table_columns(table)
    current = backend.rows(statement("deployments", "get_deployment", backend.dialect), {"table_name": table})
    if current and (current[0][1], current[0][2]) != (mv.name, mv.version):  # marked: db.require_stage
        stages.check_deployable(backend, table, mv.name, mv.version)
    if current and current[0][4] != mode:
        raise DeploymentError(
            f"table {table!r} is scored in {current[0][4]} mode; undeploy it before switching to {mode}"
        )
    feature_join, feature_info, inputs = None, None, mv.signature.inputs
    if features_from is not None:
        if mode != "bulk":
            raise DeploymentError("features_from scores in bulk mode only")
        feature_join, inputs, feature_info = _features_from(backend, features_from, mv.signature)
    if existing is not None:
        _check_request_table(table, existing, inputs)
    choice = _choose(backend, mv, runtime)
    explain_plan = _explain_plan(backend, table, mv, mode, current, explain)
    kept, challengers_changed = _challengers(backend, table, mv, current, challengers)
    if kept and features_from is not None:
        raise DeploymentError("challengers score deployments without features_from only so far")
    statements = _request_statements(backend, table, inputs, existing)
    more, probabilities = _prediction_statements(backend, table, mv, mode)
    # DDL on a request table that applications may be writing to (row mode keeps predictions there)
    table_ddl = existing is not None and bool(statements or (mode == "row" and more))
    statements += more
    recorded = []
    if feature_join is not None:
        present = backend.table_columns(f"{table}_predictions") or {}
        for column in feature_join.columns:
            recorded.append(column)
            if column not in present:
                statements.append(
                    backend.render(
                        "deploy",
                        "add_recorded_column",
                        predictions=backend.quote(f"{table}_predictions"),
                        column=backend.quote(column),
                        column_type=identifiers.sql_type(feature_info["types"][column]),
                    )
                )
    if explain_plan is not None:
        statements += explanations.table_statements(backend, table)
    request = _request_columns(existing, inputs, mode, probabilities)
    statements += _view_statements(backend, table, mv, mode, request, [*probabilities, *recorded])
    functions = []  # the version's own functions: created before the switch takes its lock
    if choice.compiled is not None:
        is_default = registry.default_version(backend, mv.name) == mv.version
        functions = backend.compiled_model_sql(mv.ref, choice.compiled, default=is_default)
    if explain_plan is not None:
        functions += explanations.function_statements(backend, mv, explain_plan)
    arms, chosen = [], []
    for challenger, cmv, cchoice in kept:
        columns = probability_columns(cmv.classes)
        if columns != probability_columns(mv.classes):
            raise DeploymentError(
                f"challenger version {cmv.version} of {cmv.name!r} predicts the classes "
                f"{list(cmv.classes or [])}, the champion {list(mv.classes or [])}: a challenger "
                "must predict the champion's classes, in the same order"
            )
        if cchoice.compiled is not None:
            functions += backend.compiled_model_sql(cmv.ref, cchoice.compiled, default=False)
        arms.append(Arm(cmv.ref, cchoice.runtime, columns, cchoice.compiled, challenger.buckets))
        chosen.append((challenger, cchoice.runtime, cmv.ref.content_hash))
    target = ScoringTarget(
        table,
        mv.ref,
        choice.runtime,
        probability_columns(mv.classes),
        mode,
        choice.compiled,
        feature_join,
        challengers=tuple(arms),
        explain=explain_plan,
    )
    # Rows without a prediction exist only in a table that was not deployed (adopted, or
    # undeployed and deployed again): while deployed, every insert commits with its prediction.
    backfill = existing is not None and not current
    previous = current[0][3] if current else None
    trigger_ddl = backend.scoring_ddl(target, previous)
    scoring = backend.scoring_sql(
        target, backfill=backfill and not backend.separate_backfill, previous=previous
    )
    result = Deployment(
        table, mv.name, mv.version, choice.runtime, mode, functions + statements + scoring, choice.reason
    )
    if dry_run:
        return result
    which = "update_deployment" if current else "insert_deployment"
    with backend.transaction():
        if choice.runtime == "onnx":
            backend.prepare_model(mv.ref)
        if explain_plan is not None and not explain_plan.in_sql:
            explanations.prepare(backend, mv)
        for arm in arms:
            if arm.runtime == "onnx":
                backend.prepare_model(arm.model)
        for text in functions:
            backend.execute(text)
        # The deployment's lock (the request table's on PostgreSQL, which every insert holds
        # while it writes: exclusive when the deploy changes the table's definition or triggers).
        backend.lock_deployment(table, ddl=table_ddl or (existing is not None and trigger_ddl))
        for text in statements:
            backend.execute(text)
        backend.execute(
            statement("deployments", which, backend.dialect),
            {
                "table_name": table,
                "model": mv.name,
                "version": mv.version,
                "runtime": choice.runtime,
                "mode": mode,
                "probability_columns": json.dumps(list(target.probability_columns)),
                "features": None if feature_info is None else json.dumps(feature_info),
            },
        )
        backend.execute(
            statement("explain", "set_explain_method", backend.dialect),
            {"table_name": table, "method": None if explain_plan is None else explain_plan.method},
        )
        if explain_plan is not None:
            explanations.record_features(backend, table, mv, explain_plan)
        # 11.8: follow the alias it was deployed by (set_alias moves it), else pinned
        registry.record_deployment_alias(
            backend, table, mv.name, mv.version, registry.followed_alias(backend, mv.name, version)
        )
        if challengers_changed:
            lifecycle.write(backend, table, chosen)
        switched = not current or (current[0][1], int(current[0][2]), current[0][3]) != (
            mv.name,
            mv.version,
            choice.runtime,
        )
        if switched:
            lifecycle.record_history(
                backend, table, mv.name, mv.version, choice.runtime, reason or "deploy", evidence
            )
        for text in scoring:
            backend.execute(text)
        if current and trigger_ddl and not backend.trigger_functions:
            # DuckDB: the humility triggers are made again after the replaced scoring trigger
            # (written when DuckDB was thought to fire triggers in creation order; 2.0.1 fires
            # them by name, as PostgreSQL does, and indb's names sort the humility triggers
            # after <table>_score). On PostgreSQL a switch leaves them (and their rules) alone.
            from indb.monitoring import humility

            humility.install(backend, table)
        audit.record(
            backend,
            "deploy",
            table,
            {
                "model": mv.name,
                "version": mv.version,
                "runtime": choice.runtime,
                "why": choice.reason,
                "mode": mode,
                "previous": None if not current else {"model": current[0][1], "version": current[0][2]},
                "challengers": [[c.version, c.mode, c.weight, r] for c, r, _ in chosen],
                "explain": None if explain_plan is None else explain_plan.method,
                **({"reason": reason} if reason else {}),
            },
        )
    if backfill and backend.separate_backfill:
        backend.backfill(target)
    return result


def _explain_plan(backend: Backend, table: str, mv, mode: str, current, explain: bool | None):
    """How the deployment explains its predictions (None: it does not). ``explain`` None keeps
    what the deployment did (a switch of version explains the new one)."""
    if explain is None:
        if not current:
            return None
        rows = backend.rows(statement("explain", "explain_method", backend.dialect), {"table_name": table})
        explain = bool(rows and rows[0][0])
    if not explain:
        return None
    if mode != "bulk":
        raise DeploymentError("explain=True writes <table>_explanations in bulk mode only (mode='bulk')")
    return explanations.plan(backend, mv)


def _challengers(backend: Backend, table: str, mv, current, given) -> tuple[list, bool]:
    """The challengers the deployment will have, each with its model version and runtime
    choice, and whether that set differs from the catalog's."""
    before = lifecycle.listed(backend, table) if current else []
    wanted = before if given is None else list(given)
    # the champion cannot be its own challenger; another model's versions do not apply
    wanted = [c for c in wanted if c.version != mv.version and c.model == mv.name]
    result = []
    for challenger in wanted:
        cmv = registry.get(backend, challenger.model, challenger.version, with_bytes=True)
        if cmv.signature.prediction_type != mv.signature.prediction_type:
            raise DeploymentError(
                f"challenger version {cmv.version} of {cmv.name!r} predicts "
                f"{cmv.signature.prediction_type}, the champion {mv.signature.prediction_type}"
            )
        result.append((challenger, cmv, _choose(backend, cmv, challenger.runtime)))
    changed = [(c.version, c.mode, c.bucket_low, c.bucket_high) for c in before] != [
        (c.version, c.mode, c.bucket_low, c.bucket_high) for c in wanted
    ] or any(c.runtime != ch.runtime for c, _, ch in result)
    return result, changed


def served_filter(backend: Backend, table: str, alias: Quoted | None = None) -> Quoted:
    """`` AND <alias>.served`` (or ``<predictions>.served``) when the predictions of deployment
    ``table`` record which row was served (since migration 015), else nothing: monitors and
    humility rules read the served prediction only, never a challenger's shadow row."""
    if "served" not in (backend.table_columns(f"{table}_predictions") or {}):
        return Quoted("")
    owner = alias if alias is not None else backend.quote(backend.current_schema(), f"{table}_predictions")
    return Quoted(f" AND {owner.text}.served")


def deployed_tables(backend: Backend) -> list[str]:
    """The tables with a deployment (what a "did you mean" offers for an unknown one)."""
    return [r[0] for r in backend.rows(statement("deployments", "list_deployments", backend.dialect))]


def get(backend: Backend, table: str) -> Deployment:
    table = identifiers.table_name(table)
    found = backend.rows(statement("deployments", "get_deployment", backend.dialect), {"table_name": table})
    if not found:
        raise NotFoundError("deployment on table", table, deployed_tables(backend))
    _, model, version, runtime, mode, *_ = found[0]
    return Deployment(table, model, int(version), runtime, mode)


@_retried
def undeploy(backend: Backend, table: str, *, drop_tables: bool = False) -> list[str]:
    """Stop scoring inserts into ``table``; with ``drop_tables`` also drop its indb tables."""
    deployment = get(backend, table)
    backend.require_deployer(f"undeploy {deployment.table!r}")
    q = backend.quote
    run = backend.unscoring_sql(deployment.table)
    if drop_tables:
        sql = partial(backend.render, "deploy")
        run.append(sql("drop_view", view=q(deployment.view)))
        if deployment.mode == "row":
            run.append(sql("drop_view", view=q(deployment.predictions_table)))
        tables = [deployment.table, deployment.ground_truth_table]
        if deployment.mode == "bulk":
            tables.append(deployment.predictions_table)
            run += explanations.drop_statements(backend, deployment.table)
        else:
            tables.append(shadow_table(deployment.table))
        for name in tables:
            run.append(sql("drop_table", table=q(name)))
        run.append(sql("drop_sequence", sequence=q(f"{deployment.table}_id_seq")))
    with backend.transaction():
        for text in run:
            backend.execute(text)
        backend.execute(
            statement("deployments", "delete_deployment", backend.dialect), {"table_name": deployment.table}
        )
        backend.execute(
            statement("challengers", "delete_challengers", backend.dialect), {"deployment": deployment.table}
        )
        audit.record(backend, "undeploy", deployment.table, {"drop_tables": drop_tables})
    return run
