"""Explanations next to onnxruntime, as a vectorized Arrow scalar function (DuckDB).

Models whose contributions are not SQL (tree ensembles, the sampling explainer) are explained
by ``indb.udfs.explain`` in this process: the database hands over a batch of rows as Arrow
arrays, one per input column, and gets back per row the base value, the contributions in
the order of the model's input columns and the error estimate (NULL when exact). The
explainer is built on the first call (it reads the stored background sample) and kept with
the function, which exists only for one version (its name holds the sha256).
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable

import numpy as np
import pyarrow as pa

from indb.udfs.signature import Signature

RESULT_TYPE = "STRUCT(base DOUBLE, contributions DOUBLE[], error DOUBLE)"
_ARROW_TYPE = pa.struct(
    [
        pa.field("base", pa.float64()),
        pa.field("contributions", pa.list_(pa.float64())),
        pa.field("error", pa.float64()),
    ]
)


def function_name(model: str, version: int, sha256: str) -> str:
    """The name the trigger calls the function by: a process that never loaded indb has no
    such function, and DuckDB's "Scalar Function with name ... does not exist" then reads as
    the fix (as the onnx runtime's names do, indb.backends.duckdb.plain_client_function)."""
    return (
        "explained by indb in python: redeploy with explain=false to insert from clients that do "
        f"not load indb (model {model} version {int(version)}, {sha256[:12]})"
    )


def make_explainer_udf(sig: Signature, build: Callable[[], object]) -> Callable:
    """A function of the input columns (Arrow arrays) returning a struct array; ``build``
    makes the Explainer once."""
    lock = threading.Lock()
    holder: list = []

    def explainer():
        with lock:
            if not holder:
                holder.append(build())
        return holder[0]

    def explain(*columns):
        import pandas as pd

        frame = pd.DataFrame(
            {
                spec.name: (c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c).to_pandas()
                for c, spec in zip(columns, sig.inputs, strict=True)
            }
        )
        rows = len(frame)
        if rows == 0:
            return pa.array([], type=_ARROW_TYPE)
        found = explainer().explain(frame)
        contributions = np.ascontiguousarray(found.contributions, dtype=np.float64)
        width = contributions.shape[1]
        offsets = pa.array(np.arange(0, rows * width + 1, width, dtype=np.int32))
        error = None if found.error is None else np.asarray(found.error, dtype=np.float64)
        fields = [
            pa.array(np.asarray(found.base, dtype=np.float64)),
            pa.ListArray.from_arrays(offsets, pa.array(contributions.reshape(-1))),
            pa.nulls(rows, pa.float64()) if error is None else pa.array(error),
        ]
        return pa.StructArray.from_arrays(fields, fields=list(_ARROW_TYPE))

    explain.__signature__ = inspect.Signature(
        [inspect.Parameter(f"c{i}", inspect.Parameter.POSITIONAL_ONLY) for i in range(len(sig.inputs))]
    )
    return explain
