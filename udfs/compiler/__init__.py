"""ONNX -> SQL: a model's graph as one SQL expression per output, over the input columns.

>>> compiled = compile_onnx(model_proto, signature)
>>> compiled.prediction.sql("duckdb"), [p.sql("postgres") for p in compiled.probabilities]

The compiler walks the graph in order and keeps, for every tensor, the SQL expressions of
one row (see :mod:`values`); each operator has a ``visit_<Op>`` method, and an operator
without one raises :class:`UnsupportedOperator` naming it.
"""

from indb.udfs.compiler.compile import CompiledModel, compile_onnx
from indb.udfs.compiler.errors import ModelRefused, UnsupportedOperator

__all__ = ["CompiledModel", "ModelRefused", "UnsupportedOperator", "compile_onnx"]
