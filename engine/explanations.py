"""Per-prediction explanations stored beside predictions (issue 15.1 and 15.4).

``deploy(..., explain=True)`` gives a deployment the view ``<table>_explanations`` (``id``,
``feature``, ``contribution``, ``base``, ``error``): for every request row the trigger scores,
one row per request column, so that ``base + sum(contribution)`` is the model's raw output (the
log-odds of the last class for a binary classifier, the value for a regressor). ``error`` is
NULL for exact methods and the method's per-row estimate for approximate ones. The trigger
writes one row per request into ``<table>_contributions`` (the contributions as a list, in the
order ``<table>_explanation_features`` names per version): a third of the cost of writing a row
per column. Only the served champion prediction of a row is explained; the version and time
come from ``<table>_predictions``.

Linear models (and linear pipelines: scalers, imputers, one-hot encoders in front of a linear
model) are explained in SQL, whatever runtime scores them: column ``c`` contributes
``sum_{j from c} w_j (x'_j - E[x'_j])`` over the derived features ``x'_j`` it feeds, each
``x'_j`` being the compiler's own SQL for it (:func:`linear_sql`), ``w`` and ``E`` (the mean
over the background, the stored registration sample) those of ``indb.udfs.explain``'s linear
explainer: exact Shapley values under feature independence, as sqlglot trees rendered once per
dialect. Other families (tree ensembles, the sampling explainer, linear models of three or
more classes, whose explained class is each row's predicted one) run ``indb.udfs.explain``
next to onnxruntime: a DuckDB Arrow function of this process (:mod:`indb.udfs.explain_udf`) or
PostgreSQL's PL/Python runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlglot import exp

from indb import identifiers, registry
from indb.backends.base import Backend
from indb.errors import DeploymentError, ModelError
from indb.sql import statement
from indb.udfs.compiler import dialects, sql

STORED = ("id", "model", "model_version", "contributions", "base", "error")


def explanations_table(table: str) -> str:
    """The view of one row per (request id, input column)."""
    return f"{table}_explanations"


def contributions_table(table: str) -> str:
    """Where the trigger writes: one list of contributions per request id."""
    return f"{table}_contributions"


def features_table(table: str) -> str:
    return f"{table}_explanation_features"


def _stored(table: str, schema: str | None) -> exp.Schema:
    target = exp.Table(
        this=exp.to_identifier(contributions_table(table), quoted=True),
        db=exp.to_identifier(schema, quoted=True) if schema else None,
    )
    return exp.Schema(this=target, expressions=[exp.to_identifier(c) for c in STORED])


@dataclass(frozen=True)
class Plan:
    """How a deployment explains: ``method`` (stored in ``indb.deployments.explain_method``),
    the request columns, and for linear models the base and one contribution expression per
    column (SQL trees over the request row)."""

    method: str
    features: tuple[str, ...]
    exact: bool
    base: float | None = None
    terms: tuple[exp.Expression, ...] | None = None

    @property
    def in_sql(self) -> bool:
        return self.terms is not None

    def contributions(self) -> list[exp.Expression]:
        return [t.copy() for t in self.terms or ()]

    def select(self, rows: exp.Expression, model: str, version: int) -> exp.Select:
        """The stored row of each request row of ``rows``: its id, the version, the
        contributions as one list (in :attr:`features` order), the base and no error."""
        return exp.select(
            exp.column("id"),
            exp.Literal.string(model),
            exp.Literal.number(int(version)),
            exp.Array(expressions=self.contributions()),
            sql.lit(self.base),
            exp.cast(exp.null(), exp.DataType.build("DOUBLE")),
        ).from_(rows)

    def insert_sql(
        self, table: str, rows: exp.Expression, dialect: str, model, schema: str | None = None
    ) -> str:
        """INSERT of the explanations of ``rows`` by ``model`` (a ModelRef) into
        ``<table>_contributions`` (schema-qualified when ``schema`` is given: SECURITY DEFINER
        functions pin their search_path)."""
        select = self.select(rows, model.model, model.version)
        return dialects.render(exp.Insert(this=_stored(table, schema), expression=select), dialect)

    def udf_insert_sql(self, table: str, rows: exp.Expression, dialect: str, function: str, model) -> str:
        """INSERT of the explanations of ``rows`` computed by ``function`` (a scalar function of
        the input columns returning STRUCT(base, contributions[], error), indb.udfs.explain_udf)."""
        call = exp.Anonymous(
            this=exp.to_identifier(function, quoted=True),
            expressions=[exp.column(a, quoted=True) for a in model.signature.columns],
        )
        inner = (
            exp.select(exp.column("id"), exp.alias_(call, "indb_e")).from_(rows).subquery("indb_explained")
        )

        def field(name: str) -> exp.Expression:
            return exp.Dot(this=exp.column("indb_e"), expression=exp.to_identifier(name))

        select = exp.select(
            exp.column("id"),
            exp.Literal.string(model.model),
            exp.Literal.number(int(model.version)),
            field("contributions"),
            field("base"),
            field("error"),
        ).from_(inner)
        return dialects.render(exp.Insert(this=_stored(table, None), expression=select), dialect)

    def function_body(self) -> exp.Expression:
        """One row's contributions as a list of (feature, contribution) structs (DuckDB)."""
        return exp.Array(
            expressions=[
                exp.Struct(
                    expressions=[
                        exp.PropertyEQ(this=exp.to_identifier("feature"), expression=exp.Literal.string(f)),
                        exp.PropertyEQ(this=exp.to_identifier("contribution"), expression=c),
                    ]
                )
                for f, c in zip(self.features, self.contributions(), strict=True)
            ]
        )

    def udf_body(self, function: str, arguments: list[str]) -> exp.Expression:
        """One row's contributions as a list of (feature, contribution) structs, from one call
        of ``function`` (indb.udfs.explain_udf) bound by a lambda (DuckDB)."""
        from indb.udfs.compiler.dialects import Pick

        call = exp.Anonymous(
            this=exp.to_identifier(function, quoted=True),
            expressions=[exp.column(a, quoted=True) for a in arguments],
        )
        values = exp.Dot(this=exp.column("indb_e"), expression=exp.to_identifier("contributions"))
        structs = exp.Array(
            expressions=[
                exp.Struct(
                    expressions=[
                        exp.PropertyEQ(this=exp.to_identifier("feature"), expression=exp.Literal.string(f)),
                        exp.PropertyEQ(
                            this=exp.to_identifier("contribution"),
                            expression=Pick(this=values.copy(), index=i),
                        ),
                    ]
                )
                for i, f in enumerate(self.features, start=1)
            ]
        )
        bound = exp.Lambda(this=structs, expressions=[exp.to_identifier("indb_e")])
        each = exp.Anonymous(this="list_transform", expressions=[exp.Array(expressions=[call]), bound])
        return Pick(this=each, index=1)

    def rows_body(self) -> exp.Select:
        """One row's contributions as rows (feature, contribution) (PostgreSQL)."""
        names = exp.Array(expressions=[exp.Literal.string(f) for f in self.features])
        values = exp.Array(expressions=self.contributions())
        return exp.select(
            exp.alias_(exp.Explode(this=names), "feature"),
            exp.alias_(exp.Explode(this=values), "contribution"),
        )


def linear_sql(found) -> tuple[float, list[exp.Expression]] | None:
    """A linear explainer's base and per-column contributions as SQL: the compiler's SQL for
    each derived feature ``x'_j`` (the graph up to the estimator, compiled as models are), so
    column ``c`` contributes ``sum_{j from c} w_j (x'_j - E[x'_j])`` with the explainer's own
    weights and background means. None when the model is not one of those (or the class
    explained depends on the row: three or more classes)."""
    from indb.udfs.compiler.compile import Compiler
    from indb.udfs.compiler.errors import ModelRefused, UnsupportedOperator
    from indb.udfs.compiler.values import materialize
    from indb.udfs.explain.linear import LinearExplainer

    if not isinstance(found, LinearExplainer) or found.default not in found.targets:
        return None
    t = found.targets.index(found.default)
    derived = found.derived
    compiler = Compiler(derived.proto, derived.signature)
    try:
        compiler.walk()
        elements = materialize(compiler.values[derived.tensor]).data.ravel()
    except (UnsupportedOperator, ModelRefused, ModelError, KeyError):
        return None
    if len(elements) != len(derived.owner):
        return None
    per_column: list = [0.0] * len(found.features)
    for j, element in enumerate(elements):
        owner, weight = int(derived.owner[j]), float(found.weights[j, t])
        if owner < 0 or weight == 0.0:
            continue  # a constant derived feature is its own mean
        term = sql.mul(weight, sql.sub(element, float(found.mean[j])))
        per_column[owner] = sql.add(per_column[owner], term)
    outputs, levels = compiler.lets.finish([sql.lit(c) for c in per_column])
    base = float((found.mean @ found.weights + found.intercepts)[t])
    return base, [levels.inline(o) for o in outputs]


# -- explainers (indb.udfs.explain) -----------------------------------------------------------------
def catalog_row(backend: Backend, mv: registry.ModelVersion) -> dict[str, Any]:
    """The version's row of indb.model_versions as ``explainer_for`` takes it."""
    frame = backend.query(
        statement("explain", "model_version_row", backend.dialect), {"model": mv.name, "version": mv.version}
    )
    row = frame.iloc[0].to_dict()
    row["onnx"] = bytes(row["onnx"])
    row["task"] = mv.task
    return row


def explainer(backend: Backend, mv: registry.ModelVersion):
    """indb.udfs.explain's Explainer for a version, or a DeploymentError naming the model family
    it has none for."""
    try:
        from indb.udfs.explain import explainer_for

        return explainer_for(catalog_row(backend, mv))
    except (ImportError, NotImplementedError, ValueError, ModelError) as e:
        raise DeploymentError(
            f"model {mv.name!r} version {mv.version} ({family(mv)}) cannot be explained: {e}"
        ) from None


def family(mv: registry.ModelVersion) -> str:
    """The estimator's class as its recipe names it (the last step of a pipeline), else the
    ONNX operators that hold it."""
    estimator = (mv.recipe or {}).get("estimator") or {}
    while isinstance(estimator, dict) and (estimator.get("params") or {}).get("steps"):
        last = estimator["params"]["steps"][-1]  # (name, estimator), JSON as {"tuple": [...]}
        last = last.get("tuple") if isinstance(last, dict) else last
        estimator = last[-1] if isinstance(last, list | tuple) and last else None
    path = estimator.get("estimator") if isinstance(estimator, dict) else None
    if isinstance(path, str):
        return path.rsplit(".", 1)[-1]
    if mv.onnx:
        import onnx

        ops = sorted({n.op_type for n in onnx.load_from_string(mv.onnx).graph.node})
        return "ONNX " + ", ".join(ops)
    return "unknown estimator"


def plan(backend: Backend, mv: registry.ModelVersion) -> Plan:
    found = explainer(backend, mv)
    method = getattr(found, "method", "") or type(found).__name__
    linear = linear_sql(found)
    if linear is None:
        return Plan(str(method), tuple(found.features), bool(found.exact))
    base, terms = linear
    return Plan(str(method), tuple(found.features), True, base, tuple(terms))


# -- db.explain -------------------------------------------------------------------------------------
def explain(backend: Backend, model: str, rows: Any, version: int | str | None = None) -> pd.DataFrame:
    """Contributions of each request column for ``rows`` (a DataFrame, a dict for one row, or a
    list of dicts): one output row per (row, feature), sorted by |contribution| within a row,
    with ``base`` and ``output`` (the raw output: base + sum of the contributions)."""
    identifiers.model_name(model)
    mv = registry.get(backend, model, version, with_bytes=True)
    frame = _frame(rows, mv)
    found = explainer(backend, mv)
    result = found.explain(frame)
    contributions = np.asarray(result.contributions, dtype=np.float64)
    base = np.broadcast_to(np.asarray(result.base, dtype=np.float64), (len(frame),))
    error = None if result.error is None else np.asarray(result.error, dtype=np.float64)
    records = []
    for i in range(len(frame)):
        output = float(base[i] + contributions[i].sum())
        order = np.argsort(-np.abs(contributions[i]), kind="stable")
        for j in order:
            records.append(
                {
                    "row": i,
                    "feature": result.features[j],
                    "contribution": float(contributions[i, j]),
                    "base": float(base[i]),
                    "output": output,
                    "error": None if error is None else float(np.ravel(error)[i]),
                }
            )
    out = pd.DataFrame.from_records(
        records, columns=["row", "feature", "contribution", "base", "output", "error"]
    )
    out.attrs.update(model=mv.name, version=mv.version, output=str(result.output), exact=bool(result.exact))
    return out


def _frame(rows: Any, mv) -> pd.DataFrame:
    if isinstance(rows, dict):
        rows = [rows]
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame.from_records(list(rows))
    columns = list(mv.signature.columns)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ModelError(
            f"model {mv.name!r} version {mv.version} needs column(s) {missing} to explain a row "
            f"(it takes {', '.join(columns)})"
        )
    return frame[columns].reset_index(drop=True)


# -- deployment statements --------------------------------------------------------------------------
def table_statements(backend: Backend, table: str) -> list[str]:
    """``<table>_contributions``, ``<table>_explanation_features`` and the view
    ``<table>_explanations``, each when missing."""
    q = backend.quote
    slots = {
        "contributions": q(contributions_table(table)),
        "features": q(features_table(table)),
        "view": q(explanations_table(table)),
    }
    result = []
    for name, template in (
        (contributions_table(table), "create_contributions_table"),
        (features_table(table), "create_features_table"),
        (explanations_table(table), "create_explanations_view"),
    ):
        if backend.table_columns(name) is None:
            result.append(backend.render("explain", template, **slots))
    return result


def record_features(backend: Backend, table: str, mv: registry.ModelVersion, plan: Plan) -> None:
    """Which input column each position of the version's contributions is (in the deploy's
    transaction)."""
    features = backend.quote(features_table(table))
    params = {"model": mv.name, "version": mv.version}
    backend.execute(backend.render("explain", "delete_features", features=features), params)
    for position, feature in enumerate(plan.features, start=1):
        backend.execute(
            backend.render("explain", "insert_feature", features=features),
            {**params, "position": position, "feature": feature},
        )


def drop_statements(backend: Backend, table: str) -> list[str]:
    q = backend.quote
    return [
        backend.render("deploy", "drop_view", view=q(explanations_table(table))),
        backend.render("deploy", "drop_table", table=q(contributions_table(table))),
        backend.render("deploy", "drop_table", table=q(features_table(table))),
    ]


def prepare(backend: Backend, mv: registry.ModelVersion) -> None:
    """Make the version's explainer callable where the database runs Python functions of this
    process (DuckDB): built on first use from the catalog row read now."""
    row = catalog_row(backend, mv)

    def build():
        from indb.udfs.explain import explainer_for

        return explainer_for(row)

    backend.prepare_explainer(mv.ref, build)


def install_all(backend: Backend) -> None:
    """At connect: the explainers of deployments whose explanations are computed in Python."""
    if not backend.explains_in_process:
        return
    for _table, model, version, _ in backend.rows(
        statement("explain", "explained_deployments", backend.dialect)
    ):
        try:  # the bytes come with the catalog row prepare reads (checked on first use)
            prepare(backend, registry.get(backend, model, int(version), with_bytes=False))
        except Exception:  # noqa: BLE001 (an insert then says the function is missing)
            continue


def function_statements(backend: Backend, mv: registry.ModelVersion, plan: Plan) -> list[str]:
    """``explain_<model>_v<N>`` (and ``explain_<model>`` for the default version): SQL where
    the contributions are SQL, else a call of the version's explainer (DuckDB: the Python
    function of this process; PostgreSQL: PL/Python)."""
    default = registry.default_version(backend, mv.name) == mv.version
    return backend.explain_function_sql(mv.ref, plan, default=default)
