"""The ONNX runtime as a vectorized Arrow scalar function.

The database hands over a batch of rows as Arrow arrays, one per input column;
the function checks NULLs, converts each column to the ONNX input's dtype, runs
the cached session once for the whole batch, and returns a struct with the
prediction and, for classifiers, the probabilities in class order.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np
import pyarrow as pa

from indb.errors import ScoringError
from indb.udfs import sessions
from indb.udfs.signature import ONNX_NUMPY, Signature

_ARROW_PREDICTION = {"BIGINT": pa.int64(), "VARCHAR": pa.string(), "DOUBLE": pa.float64()}


def result_type(sig: Signature) -> str:
    """SQL type of the scoring function's struct result."""
    if sig.task == "classification":
        return f"STRUCT(prediction {sig.prediction_type}, probabilities DOUBLE[])"
    return "STRUCT(prediction DOUBLE)"


def _column(array, spec, model: str, version: int, allow_nan: bool = False) -> np.ndarray:
    if isinstance(array, pa.ChunkedArray):
        array = array.chunk(0) if array.num_chunks == 1 else array.combine_chunks()
    if array.null_count and not spec.nullable:
        raise ScoringError(
            f"model {model!r} version {version}: input column {spec.name!r} is NULL in "
            f"{array.null_count} row(s); it needs a {spec.sql_type} value"
        )
    if spec.onnx_type == "string":
        if array.null_count:
            array = array.fill_null("")
        values = np.asarray(array.to_pylist(), dtype=object)
    else:
        if pa.types.is_boolean(array.type):
            array = array.cast(pa.int8())
        values = array.to_numpy(zero_copy_only=False)  # NULL -> NaN for nullable floats
        if not allow_nan and pa.types.is_floating(array.type):
            # NULLs became NaN above: count only the NaN/inf values that were sent
            bad = int(np.count_nonzero(~np.isfinite(values))) - array.null_count
            if bad:
                raise ScoringError(
                    f"model {model!r} version {version}: input column {spec.name!r} is NaN or "
                    f"infinite in {bad} row(s); it needs a finite {spec.sql_type} value (register "
                    "the model with allow_nan=True if it expects NaN)"
                )
        if array.null_count and spec.onnx_type == "int64":
            raise ScoringError(
                f"model {model!r} version {version}: input column {spec.name!r} is NULL and "
                "the model takes integers, which have no missing value"
            )
        values = values.astype(ONNX_NUMPY[spec.onnx_type], copy=False)
    return values.reshape(-1, 1)


def _probabilities(raw, classes: tuple) -> np.ndarray:
    if isinstance(raw, list):  # ZipMap output: one {class: probability} per row
        return np.array([[row[c] for c in classes] for row in raw], dtype=np.float64)
    return np.asarray(raw, dtype=np.float64)


def make_scorer(
    model: str,
    version: int,
    sha256: str,
    sig: Signature,
    load: Callable[[], bytes],
    scope: object,
    threads: int = 1,
) -> Callable:
    """A function of the input columns (Arrow arrays) returning a struct array; ``threads``
    is onnxruntime's thread count per call."""
    key = (scope, model, version, sha256)
    prediction_type = _ARROW_PREDICTION[sig.prediction_type]
    outputs = [sig.prediction_output]
    if sig.task == "classification":
        outputs.append(sig.probability_output)

    def score(*columns):
        feeds = {
            spec.onnx_name: _column(array, spec, model, version, sig.allow_nan)
            for array, spec in zip(columns, sig.inputs, strict=True)
        }
        rows = len(next(iter(feeds.values())))
        if rows == 0:
            return pa.array([], type=_struct_type(sig, prediction_type))
        session = sessions.session(key, load, threads)
        try:
            results = session.run(outputs, feeds)
        except Exception as e:
            raise ScoringError(f"model {model!r} version {version}: onnxruntime failed: {e}") from None
        prediction = pa.array(np.asarray(results[0]).reshape(rows), type=prediction_type)
        fields = [prediction]
        if sig.task == "classification":
            matrix = _probabilities(results[1], sig.classes)
            width = matrix.shape[1]
            offsets = pa.array(np.arange(0, rows * width + 1, width, dtype=np.int32))
            fields.append(pa.ListArray.from_arrays(offsets, pa.array(matrix.reshape(-1))))
        return pa.StructArray.from_arrays(fields, fields=list(_struct_type(sig, prediction_type)))

    # DuckDB counts a UDF's parameters: give the variadic function one per input column.
    score.__signature__ = inspect.Signature(
        [inspect.Parameter(f"c{i}", inspect.Parameter.POSITIONAL_ONLY) for i in range(len(sig.inputs))]
    )
    return score


def _struct_type(sig: Signature, prediction_type: pa.DataType) -> pa.StructType:
    fields = [pa.field("prediction", prediction_type)]
    if sig.task == "classification":
        fields.append(pa.field("probabilities", pa.list_(pa.float64())))
    return pa.struct(fields)
