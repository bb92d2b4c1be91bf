"""The compiled-SQL runtime: compile a version, verify it against onnxruntime, pick a runtime.

Verification runs the compiled expressions in the database itself, over the registration
sample, random rows within its ranges and its edge values, and compares them with
onnxruntime on the same rows: any label that differs, or any output further than
``TOLERANCE`` (relative above 1), refuses the SQL form.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass

import numpy as np
import onnx
import pandas as pd
from sqlglot import exp

from indb.backends.base import Backend
from indb.errors import DatabaseError, DeploymentError
from indb.registry import EXPECTED, PARITY_TOLERANCE, ModelVersion
from indb.sql import statement
from indb.udfs import convert, sessions
from indb.udfs.compiler import CompiledModel, ModelRefused, UnsupportedOperator, compile_onnx, dialects
from indb.udfs.compiler.dialects import Pick

__all__ = ["UnsupportedOperator", "choose", "compile_version", "verify"]

TOLERANCE = 1e-6
RANDOM_ROWS = 300
AUTO_MAX_SQL_BYTES = 64_000  # above this, onnxruntime beats the SQL engines on these models
MAX_TREE_NODES = 250_000  # beyond this the SQL runs to tens of MB
MAX_ONNX_BYTES = 64_000_000  # bigger models are scored by onnxruntime only


@dataclass(frozen=True)
class RuntimeChoice:
    runtime: str  # "sql" or "onnx"
    compiled: CompiledModel | None
    reason: str  # why this runtime (shown by deploy, kept in the audit log)


def compile_version(mv: ModelVersion) -> CompiledModel:
    if len(mv.onnx) > MAX_ONNX_BYTES:
        raise ModelRefused(
            f"model {mv.name!r} version {mv.version} is {len(mv.onnx):,} bytes of ONNX; the compiler "
            f"takes at most {MAX_ONNX_BYTES:,}"
        )
    nodes = tree_nodes(mv)  # before compiling: the trees would be built in memory first
    if nodes > MAX_TREE_NODES:
        raise ModelRefused(
            f"model {mv.name!r} version {mv.version} has {nodes:,} tree nodes (times classes), which "
            f"would compile to tens of MB of SQL; the limit is {MAX_TREE_NODES:,}"
        )
    return compile_onnx(onnx.load_from_string(mv.onnx), mv.signature)


def tree_nodes(mv: ModelVersion) -> int:
    """Tree nodes times the classes each is written out for: what drives compiled SQL size."""
    total = 0
    for node in onnx.load_from_string(mv.onnx).graph.node:
        if node.op_type.startswith("TreeEnsemble"):
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            ids = attrs.get("class_ids") or attrs.get("target_ids") or [0]
            total += len(attrs.get("nodes_nodeids", [])) * (len(set(ids)) or 1)
    return total


def sql_size(compiled: CompiledModel, dialect: str) -> int:
    return compiled.size(dialect)


def named(mv: ModelVersion, render, *args):
    """``render(*args)``, a ModelRefused from it naming the model (rendering's limits on size
    and time do not know which model they render)."""
    try:
        return render(*args)
    except ModelRefused as e:
        raise ModelRefused(f"model {mv.name!r} version {mv.version}: {e}") from None


def evaluate(
    backend: Backend,
    compiled: CompiledModel,
    rows: pd.DataFrame,
    *,
    functions: bool = True,
    together: bool = False,
) -> pd.DataFrame:
    """The compiled SQL run in the database over ``rows``: columns o0 (the prediction) and
    o1.. (the probabilities), in the order of ``rows``. Nothing is left behind. ``functions=False``
    runs the self-contained expressions (no helper functions) that ``db.compile_sql`` renders
    for a database of another kind. ``together=True``: both outputs share one computation of
    the model's shared values, as a deployment's trigger computes them (what verification runs:
    one plan of a big forest instead of two): one struct where the dialect has them
    (:meth:`CompiledModel.outputs_tree`, opaque to the optimizer, whose planning of a big
    forest costs more than running it on a few hundred rows), else, where helper functions would share them,
    columns of the rows (:meth:`CompiledModel.outputs_columns`, no functions); by default each
    output is selected as the ``predict_*`` functions compute it."""
    table = f"indb_verify_{uuid.uuid4().hex[:12]}"
    helpers = backend.compiled_helpers(None) if functions else None
    combined = compiled.outputs_tree(backend.dialect, opaque=True) if together else None
    if together and combined is None and helpers is not None:
        select, helpers = _select_columns(compiled, backend.dialect, table), None
    else:
        select = _select(compiled, backend.dialect, helpers, table, combined)
    frame = rows.reset_index(drop=True).reset_index().rename(columns={"index": "indb_row"})
    # No try/finally: after an error PostgreSQL refuses every statement until the transaction
    # ends, so a DROP there would hide the real error. The transaction's rollback removes the
    # table and the functions instead.
    with backend.transaction():
        backend.write_table(table, frame, replace=True)
        created = backend.compiled_helper_sql(compiled, helpers)
        for text in created:
            backend.execute(text)
        result = backend.query(select)
        backend.execute(_drop("TABLE", (table,), backend.dialect))
        if created:
            for helper in compiled.helper_functions(helpers):
                backend.execute(_drop("FUNCTION", (helpers[0], helper.name), backend.dialect))
    return result if combined is None else _unpack(result["o"], len(compiled.probabilities))


def _unpack(structs: pd.Series, probabilities: int) -> pd.DataFrame:
    """Columns o0, o1.. from the struct column of :meth:`CompiledModel.outputs_tree`."""
    columns = {"o0": [s["o0"] for s in structs]}
    for i in range(probabilities):
        columns[f"o{i + 1}"] = [s["p"][i] for s in structs]
    return pd.DataFrame(columns)


def _drop(kind: str, name: tuple[str, ...], dialect: str) -> str:
    """DROP of a table or function ``name`` ((schema,) name), quoted, as one tree."""
    *schema, last = (exp.to_identifier(part, quoted=True) for part in name)
    table = exp.Table(this=last, db=schema[0] if schema else None)
    return exp.Drop(tables=[table], kind=kind).sql(dialect=dialect)


def _select(compiled: CompiledModel, dialect: str, helpers, table: str, combined=None) -> str:
    """SELECT o0 (the prediction), o1.. (the probabilities) FROM table ORDER BY indb_row; with
    ``combined`` (:meth:`CompiledModel.outputs_tree`), SELECT it as one struct column o."""
    if combined is not None:
        aliased = [exp.alias_(combined, "o")]
    else:
        outputs = [
            compiled.prediction_tree(dialect, helpers),
            *compiled.probability_picks(dialect, helpers=helpers),
        ]
        aliased = [exp.alias_(o, f"o{i}") for i, o in enumerate(outputs)]
    query = (
        exp.select(*aliased, copy=False)
        .from_(exp.Table(this=exp.to_identifier(table, quoted=True)), copy=False)
        .order_by(exp.column("indb_row"), copy=False)
    )
    return dialects.render(query, dialect)


def _select_columns(compiled: CompiledModel, dialect: str, table: str) -> str:
    """SELECT o0, o1.. FROM table ORDER BY indb_row, the outputs reading the shared values as
    columns of the rows (:meth:`CompiledModel.outputs_columns`: a trigger's form)."""
    source = exp.Table(this=exp.to_identifier(table, quoted=True))
    rows, prediction, array = compiled.outputs_columns(dialect, source)
    outputs = [prediction] + [Pick(this=array, index=i + 1) for i in range(len(compiled.probabilities))]
    query = (
        exp.select(*(exp.alias_(o, f"o{i}") for i, o in enumerate(outputs)), copy=False)
        .from_(rows, copy=False)
        .order_by(exp.column("indb_row"), copy=False)
    )
    return dialects.render(query, dialect)


def verification_rows(backend: Backend, mv: ModelVersion, seed: int = 0) -> pd.DataFrame:
    """The stored registration sample, random rows within its ranges, and its edge values."""
    return _verification_rows(backend, mv, seed)[0]


def _verification_rows(backend: Backend, mv: ModelVersion, seed: int = 0):
    """(rows, the estimator's outputs stored for the first rows: columns indb_expected and
    indb_expected_p<i>, empty for models registered as ONNX or before they were stored)."""
    ((text,),) = backend.rows(
        statement("registry", "get_sample", backend.dialect), {"model": mv.name, "version": mv.version}
    )
    sample = pd.read_json(io.StringIO(text), orient="split") if text else pd.DataFrame()
    if sample.empty:
        raise DeploymentError(f"model {mv.name!r} version {mv.version} has no stored sample to verify with")
    estimator = sample[[c for c in sample.columns if str(c).startswith(EXPECTED)]]
    sample = sample[mv.signature.columns]
    rng = np.random.default_rng(seed)
    random, edges = {}, {}
    for spec in mv.signature.inputs:
        column = sample[spec.name]
        if spec.sql_type == "VARCHAR":
            seen = column.dropna().astype(str).unique()
            random[spec.name] = rng.choice(seen, RANDOM_ROWS)
            edges[spec.name] = [seen[0], seen[-1]]
        else:
            low, high = float(column.min()), float(column.max())
            values = rng.uniform(low, high, RANDOM_ROWS)
            if spec.sql_type in ("BIGINT", "BOOLEAN"):
                values = np.round(values)
            random[spec.name] = values
            edges[spec.name] = [low, high]
    rows = pd.concat([sample, pd.DataFrame(random), pd.DataFrame(edges)], ignore_index=True)
    for spec in mv.signature.inputs:
        if spec.sql_type == "BIGINT":
            rows[spec.name] = rows[spec.name].round().astype("int64")
        elif spec.sql_type == "BOOLEAN":
            rows[spec.name] = rows[spec.name].astype(bool)
    return rows[mv.signature.columns], estimator


def verify(backend: Backend, mv: ModelVersion, compiled: CompiledModel) -> dict:
    """Score the verification rows with both runtimes; raise DeploymentError on a difference.

    The reference is onnxruntime, and on the sample rows also the registered estimator's own
    outputs (stored at registration): a row passes when the SQL agrees with onnxruntime, or
    is at least as close to the estimator as onnxruntime is. Labels that differ only where
    onnxruntime saw a tie (two classes within PARITY_TOLERANCE) pass, as at registration.
    Elsewhere the tolerance is TOLERANCE, or onnxruntime's own distance from the estimator on
    the sample where that is larger (the model's float32 noise, not a compiler error)."""
    rows, estimator = _verification_rows(backend, mv)
    try:
        got = evaluate(backend, compiled, rows, together=True)
    except Exception as e:  # the engine refuses the SQL (e.g. a float overflow PostgreSQL raises)
        error = backend.translate(e)
        if not isinstance(error, DatabaseError):
            raise
        reason = str(error).splitlines()[0] if str(error) else type(e).__name__
        raise DeploymentError(
            f"compiled SQL of model {mv.name!r} version {mv.version} fails in the database on the "
            f"verification rows: {reason}"
        ) from None
    sig = mv.signature
    session = sessions.build(mv.onnx)
    outputs = [sig.prediction_output] + ([sig.probability_output] if sig.probability_output else [])
    reference = session.run(outputs, convert.feeds(sig, rows))
    found = _compare(sig, compiled, got, reference, estimator)
    report = {"rows": len(rows), "tolerance": found.tolerance, "label_mismatches": len(found.mislabeled)}
    report["max_difference"] = found.max_difference
    report["estimator_rows"] = len(estimator) if len(estimator.columns) else 0
    what = f"compiled SQL of model {mv.name!r} version {mv.version}"
    if found.mislabeled:
        row = found.mislabeled[0]
        raise DeploymentError(
            f"{what} disagrees with onnxruntime on {len(found.mislabeled)} labels of {len(rows)} "
            f"verification rows (not ties), e.g. row {row}: SQL {got['o0'][row]!r}, onnxruntime "
            f"{found.labels[row]!r}" + found.estimator_label(row)
        )
    if found.failed:
        row = found.worst
        raise DeploymentError(
            f"{what} differs from onnxruntime by {found.difference[row]:.3g} (relative above 1) > "
            f"{found.tolerance:.3g} on row {row} of {len(rows)} verification rows ({len(found.failed)} "
            f"rows differ)" + found.estimator_value(row)
        )
    return report


@dataclass
class _Comparison:
    labels: list  # onnxruntime's labels (str), classifiers only
    mislabeled: list[int]
    difference: np.ndarray  # per row: the largest relative difference from onnxruntime
    failed: list[int]  # rows beyond the tolerance and no closer to the estimator than onnxruntime
    tolerance: float
    estimator_labels: list
    estimator_gap: np.ndarray  # per row with estimator outputs: (SQL, onnxruntime) distance to it

    @property
    def max_difference(self) -> float:
        return float(self.difference.max()) if self.difference.size else 0.0

    @property
    def worst(self) -> int:
        return max(self.failed, key=lambda r: self.difference[r])

    def estimator_label(self, row: int) -> str:
        if row < len(self.estimator_labels):
            return f", the estimator {self.estimator_labels[row]!r}"
        return ""

    def estimator_value(self, row: int) -> str:
        if row < len(self.estimator_gap):
            sql, ort = self.estimator_gap[row]
            return f"; from the estimator's own output: SQL {sql:.3g}, onnxruntime {ort:.3g}"
        return ""


def _relative(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row, the largest |a - b| relative to |b| above 1 (2-D: over the columns)."""
    difference = np.abs(a - b) / np.maximum(1.0, np.abs(b))
    return difference.max(axis=1) if difference.ndim == 2 else difference


def _compare(sig, compiled: CompiledModel, got: pd.DataFrame, reference: list, estimator: pd.DataFrame):
    n = len(got)
    expected = np.asarray(reference[0]).reshape(n)
    known = len(estimator) if EXPECTED in estimator.columns else 0
    columns = [c for c in estimator.columns if c != EXPECTED]
    if sig.task == "classification":
        labels = [str(v) for v in expected]
        ours = got[[f"o{i + 1}" for i in range(len(compiled.probabilities))]].to_numpy(dtype=np.float64)
        theirs = np.asarray(reference[1], dtype=np.float64).reshape(n, -1)
        truth = estimator[columns].to_numpy(dtype=np.float64) if columns and known else None
        estimator_labels = [str(v) for v in estimator[EXPECTED]] if known else []
    else:
        labels, estimator_labels = [], []
        ours, theirs = got["o0"].to_numpy(dtype=np.float64), expected.astype(np.float64)
        truth = estimator[EXPECTED].to_numpy(dtype=np.float64) if known else None
    difference = _relative(ours, theirs)
    gap = np.zeros((0, 2))
    tolerance = TOLERANCE
    if (
        truth is not None
        and truth.shape[:1] == (known,)
        and (truth.ndim == 1 or truth.shape == ours[:known].shape)
    ):
        gap = np.stack([_relative(ours[:known], truth), _relative(theirs[:known], truth)], axis=1)
        tolerance = max(TOLERANCE, float(gap[:, 1].max()))
    failed = [
        r
        for r in np.flatnonzero(difference > TOLERANCE).tolist()
        if (gap[r, 0] > max(gap[r, 1], TOLERANCE) if r < len(gap) else difference[r] > tolerance)
    ]
    mislabeled = []
    if labels:
        position = {str(c): i for i, c in enumerate(sig.classes)}
        for row, (a, b) in enumerate(zip(got["o0"], labels, strict=True)):
            a = str(a)
            if a == b or (row < len(estimator_labels) and a == estimator_labels[row]):
                continue
            probabilities = theirs[row] if theirs.shape[1] == len(position) else None
            if probabilities is not None and a in position:
                if probabilities.max() - probabilities[position[a]] <= PARITY_TOLERANCE:
                    continue  # a tie: either label is right (registration's rule)
            mislabeled.append(row)
    return _Comparison(labels, mislabeled, difference, failed, tolerance, estimator_labels, gap)


def choose(backend: Backend, mv: ModelVersion, runtime: str) -> RuntimeChoice:
    """The runtime a deployment uses: compiled SQL when asked, or under auto when it compiles,
    verifies and is small enough to be fast; else onnxruntime, with the reason."""
    if runtime == "onnx":
        return RuntimeChoice("onnx", None, "asked for onnx")
    nodes = tree_nodes(mv)
    # Size limits under auto only matter where onnxruntime is there to fall back to; without it
    # (PostgreSQL without PL/Python) compiled SQL is the only runtime, however large.
    onnx_faster = runtime == "auto" and backend.runs_onnx
    if onnx_faster and nodes:
        reason = "tree ensembles score faster in onnxruntime than as compiled SQL (benchmarks/RESULTS.md)"
        return RuntimeChoice("onnx", None, reason)
    if nodes > MAX_TREE_NODES:
        message = (
            f"{nodes:,} tree nodes (times classes) would compile to tens of MB of SQL; the limit is "
            f"{MAX_TREE_NODES:,}"
        )
        if runtime == "sql":
            raise DeploymentError(f"runtime='sql' is not possible: {message}. Deploy with runtime='onnx'")
        return RuntimeChoice("onnx", None, message)
    try:
        compiled = compile_version(mv)
        size = named(mv, sql_size, compiled, backend.dialect)
        if onnx_faster and size > AUTO_MAX_SQL_BYTES:
            return RuntimeChoice(
                "onnx", None, f"compiled SQL is {size:,} bytes; onnxruntime is faster at this size"
            )
        report = verify(backend, mv, compiled)
    except (UnsupportedOperator, DeploymentError) as e:
        if runtime == "sql":
            raise DeploymentError(f"runtime='sql' is not possible: {e}") from None
        return RuntimeChoice("onnx", None, f"compiled SQL refused: {e}")
    return RuntimeChoice(
        "sql",
        compiled,
        f"compiled SQL ({size:,} bytes) verified on {report['rows']} rows, max difference "
        f"{report['max_difference']:.2g}",
    )
