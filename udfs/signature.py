"""What a model takes and returns, in SQL terms.

The signature maps each SQL column to an ONNX input (name and element type) and
says what the model returns: a class label plus probabilities in class order,
or a regression value.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

SQL_TYPES = ("DOUBLE", "BIGINT", "BOOLEAN", "VARCHAR")
ONNX_NUMPY = {"float": np.float32, "double": np.float64, "int64": np.int64, "string": object}


@dataclass(frozen=True)
class Input:
    name: str  # SQL column name
    sql_type: str  # one of SQL_TYPES
    onnx_name: str
    onnx_type: str  # key of ONNX_NUMPY
    nullable: bool = False  # NULL becomes NaN (numeric) instead of an error

    @property
    def argument_type(self) -> str:
        """SQL type of the scoring function's argument: any number for a float input, so
        ``predict_m(67.0)`` works for an integer column."""
        if self.onnx_type in ("float", "double") and self.sql_type != "BOOLEAN":
            return "DOUBLE"
        return self.sql_type


@dataclass(frozen=True)
class Signature:
    inputs: tuple[Input, ...]
    task: str  # "classification" or "regression"
    prediction_type: str  # SQL type of the prediction: BIGINT or VARCHAR labels, DOUBLE values
    prediction_output: str
    probability_output: str | None = None
    classes: tuple | None = None
    # NaN and +-inf in numeric inputs are refused like NULL unless the model expects them
    # (registered with allow_nan=True, e.g. an imputer). Stored in the outputs JSON.
    allow_nan: bool = False

    @property
    def columns(self) -> list[str]:
        return [i.name for i in self.inputs]

    def describe(self, function: str) -> str:
        args = ", ".join(f"{i.name} {i.sql_type}" for i in self.inputs)
        text = f"{function}({args}) -> {self.prediction_type}"
        if self.task == "classification":
            text += f"; predict_proba -> DOUBLE[] over classes {list(self.classes)}"
        return text

    def inputs_json(self) -> str:
        return json.dumps([asdict(i) for i in self.inputs])

    def outputs_json(self) -> str:
        return json.dumps(
            {
                "task": self.task,
                "prediction_type": self.prediction_type,
                "prediction_output": self.prediction_output,
                "probability_output": self.probability_output,
                "allow_nan": self.allow_nan,
            }
        )

    def classes_json(self) -> str | None:
        return None if self.classes is None else json.dumps(list(self.classes))

    @classmethod
    def from_catalog(cls, inputs: str, outputs: str, classes: str | None) -> Signature:
        out = json.loads(outputs)
        return cls(
            inputs=tuple(Input(**i) for i in json.loads(inputs)),
            task=out["task"],
            prediction_type=out["prediction_type"],
            prediction_output=out["prediction_output"],
            probability_output=out["probability_output"],
            classes=None if classes is None else tuple(json.loads(classes)),
            allow_nan=bool(out.get("allow_nan", False)),
        )


def sql_type_of(series: pd.Series) -> str:
    """The SQL column type that holds a sample column, or ValueError naming it."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "BOOLEAN"
    if pd.api.types.is_integer_dtype(dtype):
        return "BIGINT"
    if pd.api.types.is_float_dtype(dtype):
        return "DOUBLE"
    if pd.api.types.is_string_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
        values = series.dropna()
        if all(isinstance(v, str) for v in values):
            return "VARCHAR"
    raise ValueError(
        f"sample column {series.name!r} has dtype {dtype}; models take numeric, boolean or string columns"
    )
