"""Transformations: fitted feature-engineering pipelines without a final estimator (an
imputer and a scaler, a one-hot or target encoder) compiled to a SQL view over a table.

``register`` converts the pipeline to ONNX, checks onnxruntime against scikit-learn's
``transform`` on the sample, compiles the graph to one SQL array per row (the compiler's
graph walk, every element of the output tensor), checks that SQL in the database against
``transform`` too, and creates the function ``transform_<name>(inputs...)`` (one row's
outputs as an array) and, over a source table, the view ``<name>``: that table's other columns
(keys, times, labels) followed by one column per output. A view is a table name, so a feature
set can take it as its source.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlglot import exp

from indb import audit, identifiers
from indb.backends.base import Backend
from indb.errors import DeploymentError, ModelError, NotFoundError
from indb.identifiers import Quoted, join
from indb.sql import render, statement
from indb.udfs import convert
from indb.udfs.compiler import sql as sqlnodes
from indb.udfs.compiler.compile import CompiledModel, Compiler, UnsupportedOperator
from indb.udfs.compiler.values import materialize
from indb.udfs.signature import Input

TOLERANCE = 1e-6  # relative above 1, as compiled models are verified


@dataclass(frozen=True)
class Transform:
    name: str
    inputs: tuple[Input, ...]
    outputs: tuple[str, ...]  # the view's output columns, in the pipeline's order
    source: str | None
    sha256: str

    @property
    def view(self) -> str | None:
        return self.name if self.source else None

    def __repr__(self) -> str:
        where = f"view {self.name} over {self.source}" if self.source else "no view"
        return f"<Transform {self.name}: {', '.join(self.outputs)} ({where})>"


class _OutputsCompiler(Compiler):
    """Every element of the graph's one output tensor, rather than a prediction."""

    def run(self) -> CompiledModel:
        self.walk()
        value = materialize(self.values[self.signature.prediction_output])
        elements = [sqlnodes.lit(e) for e in value.data.ravel()]
        outputs, levels = self.lets.finish(elements)
        return CompiledModel(outputs[0], outputs, levels, self.signature, self._guard())


def _dense(values: Any) -> np.ndarray:
    values = values.toarray() if hasattr(values, "toarray") else values
    if isinstance(values, pd.DataFrame):
        values = values.to_numpy()
    try:
        return np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    except (TypeError, ValueError):
        raise ModelError("the pipeline's transform returns non-numeric values; indb takes numbers") from None


def _output_names(name: str, pipeline: Any, width: int) -> tuple[str, ...]:
    try:
        raw = [str(n) for n in pipeline.get_feature_names_out()]
    except Exception:  # not every transformer names its outputs
        raw = []
    if len(raw) != width:
        raw = [f"{name}_{i}" for i in range(width)]
    names, seen = [], set()
    for text in raw:
        clean = re.sub(r"\W+", "_", text).strip("_").lower() or name
        clean = clean if not clean[0].isdigit() else f"f_{clean}"
        clean = clean[: identifiers.MAX_NAME - 4]
        candidate, n = clean, 1
        while candidate in seen:
            n += 1
            candidate = f"{clean}_{n}"
        seen.add(candidate)
        names.append(identifiers.column_name(candidate))
    return tuple(names)


def _close(got: np.ndarray, expected: np.ndarray, tolerance: float) -> tuple[bool, float]:
    same_nan = np.isnan(got) == np.isnan(expected)
    got, expected = np.nan_to_num(got), np.nan_to_num(expected)
    error = np.abs(got - expected) / np.maximum(1.0, np.abs(expected))
    worst = float(error.max()) if error.size else 0.0
    return bool(same_nan.all()) and worst <= tolerance, worst


def prepare(name: str, pipeline: Any, sample: pd.DataFrame):
    """ONNX, signature, output names, compiled SQL and sklearn's own transform of the sample."""
    identifiers.model_name(name)
    if isinstance(pipeline, bytes | bytearray | memoryview):
        return _prepare_onnx(name, bytes(pipeline), sample)
    if hasattr(pipeline, "predict"):
        raise ModelError(
            f"{type(pipeline).__name__} ends with an estimator (it has predict): register it "
            "with db.register_model"
        )
    if not (hasattr(pipeline, "transform") and hasattr(pipeline, "fit")):
        raise ModelError(
            f"cannot register a {type(pipeline).__name__} as a transform: give a fitted "
            "scikit-learn transformer or pipeline without a final estimator"
        )
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(pipeline)
        expected = _dense(pipeline.transform(sample))
        proto = convert.from_sklearn(pipeline, sample)
        sig = convert.signature(proto, sample)
    except NotFittedError:
        raise ModelError(f"{type(pipeline).__name__} is not fitted; call fit() first") from None
    except convert.ConversionError as e:
        raise ModelError(str(e)) from None
    if len(proto.graph.output) != 1:
        raise ModelError(f"the converted pipeline has {len(proto.graph.output)} outputs; indb takes one")
    got = _run(proto, sig, sample)
    if got.shape != expected.shape:
        raise ModelError(f"ONNX gives {got.shape[1]} outputs per row, scikit-learn {expected.shape[1]}")
    ok, worst = _close(got, expected, 1e-5)
    if not ok:
        raise ModelError(f"the ONNX conversion differs from scikit-learn's transform by {worst:.3g}")
    return proto, sig, _output_names(name, pipeline, expected.shape[1]), _compile(name, proto, sig), expected


def _prepare_onnx(name: str, data: bytes, sample: pd.DataFrame):
    """Ready ONNX bytes (one numeric output tensor): the SQL is checked against onnxruntime."""
    try:
        proto = convert.fit_to_sample(convert.parse_onnx(data), sample)
        sig = convert.signature(proto, sample)
    except convert.ConversionError as e:
        raise ModelError(str(e)) from None
    if len(proto.graph.output) != 1:
        raise ModelError(f"the ONNX graph has {len(proto.graph.output)} outputs; a transform has one")
    expected = _run(proto, sig, sample)
    names = _output_names(name, None, expected.shape[1])
    return proto, sig, names, _compile(name, proto, sig), expected


def _run(proto, sig, sample: pd.DataFrame) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, convert.feeds(sig, sample))
    return np.asarray(got, dtype=np.float64).reshape(len(sample), -1)


def _compile(name: str, proto, sig) -> CompiledModel:
    try:
        return _OutputsCompiler(proto, sig).run()
    except UnsupportedOperator as e:
        raise ModelError(f"transform {name!r} cannot be compiled to SQL: {e}") from None


def _verify(backend: Backend, name: str, compiled: CompiledModel, sample: pd.DataFrame, expected) -> None:
    """The compiled SQL, run in the database on the sample, against scikit-learn's transform."""
    from indb import compiled as runtime

    frame = runtime.evaluate(backend, compiled, sample[[i.name for i in compiled.signature.inputs]])
    got = frame.drop(columns=["o0"]).to_numpy(dtype=np.float64, na_value=np.nan)
    ok, worst = _close(got, expected, TOLERANCE)
    if not ok:
        raise ModelError(
            f"transform {name!r}: the compiled SQL differs from scikit-learn's transform by "
            f"{worst:.3g} (tolerance {TOLERANCE})"
        )


def _view_sql(backend: Backend, transform: Transform, compiled: CompiledModel) -> list[str]:
    q = backend.quote
    columns = backend.table_columns(transform.source)
    if columns is None:
        raise NotFoundError("table", transform.source)
    missing = [i.name for i in transform.inputs if i.name not in columns]
    if missing:
        raise DeploymentError(f"table {transform.source!r} has no column(s) {missing} the transform takes")
    used = {i.name for i in transform.inputs} | set(transform.outputs)
    passthrough = [q(c) for c in columns if c not in used and c != "indb_values"]
    outputs = [Quoted(f"indb_values[{n}] AS {q(o).text}") for n, o in enumerate(transform.outputs, 1)]
    d = backend.dialect
    return [
        *_function_sql(backend, transform, compiled),
        render("transforms", "drop_view", d, view=q(transform.name)),
        render(
            "transforms",
            "create_view",
            d,
            view=q(transform.name),
            passthrough=Quoted("".join(f"{p.text}, " for p in passthrough)),
            outputs=join(outputs),
            values=Quoted(compiled.probabilities_array_sql(d)),
            source=q(transform.source),
        ),
    ]


def function_name(name: str) -> str:
    return f"transform_{name}"


def _argument_types(backend: Backend, transform: Transform) -> list[str]:
    return [exp.DataType.build(i.argument_type).sql(backend.dialect) for i in transform.inputs]


def _drop_sql(backend: Backend, transform: Transform) -> list[str]:
    """Statements removing a transform's function and view (each dialect's statement takes the
    slots it needs: PostgreSQL names a function by its argument types)."""
    q, d = backend.quote, backend.dialect
    result = [
        render(
            "transforms",
            "drop_function",
            d,
            function=q(function_name(transform.name)),
            argument_types=Quoted(", ".join(_argument_types(backend, transform))),
        )
    ]
    if transform.source:
        result.append(render("transforms", "drop_view", d, view=q(transform.name)))
    return result


def _function_sql(backend: Backend, transform: Transform, compiled: CompiledModel) -> list[str]:
    """``transform_<name>(inputs...)``: the outputs of one row as an array (a DuckDB macro or a
    PostgreSQL SQL function; each dialect's statement takes the slots it needs)."""
    q = backend.quote
    types = _argument_types(backend, transform)
    typed = [Quoted(f"{q(i.name).text} {t}") for i, t in zip(transform.inputs, types, strict=True)]
    return [
        render(
            "transforms",
            "create_function",
            backend.dialect,
            function=q(function_name(transform.name)),
            parameters=join(q(i.name) for i in transform.inputs),
            typed_parameters=join(typed),
            values=Quoted(compiled.probabilities_array_sql(backend.dialect)),
        )
    ]


def register(
    backend: Backend, name: str, pipeline: Any, *, sample: pd.DataFrame, source: str | None = None
) -> Transform:
    """Store a transform and (with ``source``) create its view; all or nothing."""
    if source is not None:
        identifiers.table_name(source)
    if isinstance(pipeline, bytearray | memoryview):
        pipeline = bytes(pipeline)
    proto, sig, outputs, compiled, expected = prepare(name, pipeline, sample)
    data = proto.SerializeToString()
    transform = Transform(name, sig.inputs, outputs, source, hashlib.sha256(data).hexdigest())
    from indb.recipe import recipe

    with backend.transaction():
        _verify(backend, name, compiled, sample, expected)
        if backend.rows(statement("transforms", "get_transform", backend.dialect), {"name": name}):
            for text in _drop_sql(backend, get(backend, name)):  # re-registered: replace all of it
                backend.execute(text)
        views = (
            _view_sql(backend, transform, compiled) if source else _function_sql(backend, transform, compiled)
        )
        backend.execute(statement("transforms", "delete_transform", backend.dialect), {"name": name})
        backend.execute(
            statement("transforms", "insert_transform", backend.dialect),
            {
                "name": name,
                "onnx": data,
                "sha256": transform.sha256,
                "inputs": sig.inputs_json(),
                "outputs": json.dumps({"columns": list(outputs), "onnx_output": sig.prediction_output}),
                "source": source,
                "recipe": json.dumps(
                    recipe(pipeline, sig.columns) if not isinstance(pipeline, bytes) else {"source": "onnx"}
                ),
                "created_by": backend.user,
            },
        )
        for text in views:
            backend.execute(text)
        audit.record(
            backend,
            "register_transform",
            name,
            {"sha256": transform.sha256, "source": source, "outputs": list(outputs)},
        )
    return transform


def drop(backend: Backend, name: str) -> None:
    """Remove a transform: its view, its function and its catalog row."""
    transform = get(backend, name)
    with backend.transaction():
        for text in _drop_sql(backend, transform):
            backend.execute(text)
        backend.execute(statement("transforms", "delete_transform", backend.dialect), {"name": name})
        audit.record(backend, "drop_transform", name, {"sha256": transform.sha256})


def get(backend: Backend, name: str) -> Transform:
    found = backend.query(statement("transforms", "get_transform", backend.dialect), {"name": name})
    if found.empty:
        known = [r[0] for r in backend.rows(statement("transforms", "list_transform_names", backend.dialect))]
        raise NotFoundError("transform", name, known)
    row = found.iloc[0]
    inputs = tuple(Input(**i) for i in _json(row["inputs"]))
    outputs = tuple(_json(row["outputs"])["columns"])
    return Transform(row["name"], inputs, outputs, row["source"], row["sha256"])


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value
