"""Tensors of one row: numpy object arrays of SQL expressions or constants.

ONNX tensors carry a leading batch dimension; SQL evaluates one row at a time, so a
batched tensor of shape [N, k] is kept as a (k,) array of expressions, one per column.
Initializers are constants kept with their full shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from indb.udfs.compiler import sql


@dataclass
class Value:
    data: np.ndarray  # object array: sqlglot expressions and/or Python constants
    batched: bool  # True: data is one row of a [N, ...] tensor
    rounded32: bool = False  # True: onnxruntime holds float32(data), data are unrounded doubles

    @classmethod
    def constant(cls, array: np.ndarray) -> Value:
        values = np.empty(array.shape, dtype=object)
        flat = array.ravel()
        out = values.ravel()
        for i, v in enumerate(flat):
            out[i] = v.item() if isinstance(v, np.generic) else v
        return cls(values, batched=False)

    @property
    def shape(self) -> tuple:
        """The ONNX shape, with 1 standing for the batch dimension."""
        return ((1,) + self.data.shape) if self.batched else self.data.shape

    def numbers(self) -> np.ndarray:
        """The constant as a numeric array (an error if it depends on the row)."""
        if self.batched or any(not sql.is_const(x) for x in self.data.ravel()):
            raise ValueError("expected a constant tensor")
        return np.array(self.data.tolist())

    def row(self, rank: int) -> np.ndarray:
        """This value as an array to combine with a batched tensor of ONNX rank ``rank``."""
        if self.batched or self.data.ndim < rank:
            return self.data
        if self.data.shape[0] != 1:
            raise ValueError(f"cannot broadcast a constant of shape {self.data.shape} over rows")
        return self.data[0]


def apply(function, *arrays) -> np.ndarray:
    """``function`` element by element (numpy broadcasting), always as an object array."""
    result = np.frompyfunc(function, len(arrays), 1)(*arrays)
    return np.asarray(result, dtype=object) if isinstance(result, np.ndarray) else _scalar(result)


def _scalar(x) -> np.ndarray:
    array = np.empty((), dtype=object)
    array[()] = x
    return array


def elementwise(function, *values: Value) -> Value:
    """Apply a scalar function element by element with ONNX (numpy) broadcasting."""
    batched = any(v.batched for v in values)
    rank = max(len(v.shape) for v in values)
    arrays = [v.row(rank) if batched else v.data for v in values]
    return Value(apply(function, *arrays), batched)


def materialize(value: Value) -> Value:
    """Make float32 rounding explicit before arithmetic uses the value."""
    if not value.rounded32:
        return value
    from sqlglot import exp

    def cast(x):
        if sql.is_const(x):
            return float(np.float32(x))
        single = exp.Cast(this=x, to=exp.DataType.build("FLOAT"))
        return exp.Cast(this=single, to=exp.DataType.build("DOUBLE"))

    return Value(apply(cast, value.data), value.batched)
