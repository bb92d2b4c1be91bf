"""The graph walk and the generic ONNX operators; ML operators live in :mod:`ml`."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper
from sqlglot import exp

from indb.errors import ModelError
from indb.udfs.compiler import dialects, sql
from indb.udfs.compiler.dialects import Fail, LetLevel, Pick, Planned, Trunc
from indb.udfs.compiler.errors import ModelRefused, UnsupportedOperator
from indb.udfs.compiler.ml import MLOperators
from indb.udfs.compiler.shared import Lets, Levels, paused_gc
from indb.udfs.compiler.values import Value, apply, elementwise, materialize
from indb.udfs.signature import Signature

MAX_GRAPH_NODES = 100_000  # ONNX nodes of one graph
COMPILE_SECONDS = 120.0  # walking the graph; rendering has its own limits (shared.MAX_SQL_BYTES)
RESERVED_PREFIX = "indb_"  # indb's own column and variable names in compiled SQL
LARGEST_DOUBLE = 1.7976931348623157e308


@dataclass
class Guard:
    """Inputs that must not be NULL (nor NaN or infinite), and the error to raise if one is."""

    condition: exp.Expression
    message: str

    def wrap(
        self, expression: exp.Expression, sql_type: str | exp.DataType, *, coalesce: bool = False
    ) -> exp.Expression:
        """``coalesce``: ``COALESCE(CASE WHEN bad THEN error END, expression)``, for DuckDB,
        whose optimizer computes repeated sub-expressions once, but not inside a CASE: as
        ``CASE .. ELSE expression`` a linear model's dot product ran ~14 times per row."""
        fail = exp.Cast(this=Fail(this=exp.Literal.string(self.message)), to=exp.DataType.build(sql_type))
        if coalesce:
            check = exp.Case(ifs=[exp.If(this=exp.Paren(this=self.condition), true=fail)])
            return exp.Coalesce(this=check, expressions=[expression])
        return exp.Case(ifs=[exp.If(this=exp.Paren(this=self.condition), true=fail)], default=expression)


@dataclass
class CompiledModel:
    """A model as SQL: the prediction and the probabilities (in class order; empty for
    regression) over the input columns, with their shared sub-expressions (:mod:`shared`)."""

    prediction: exp.Expression
    probabilities: list[exp.Expression]
    levels: Levels
    signature: Signature
    guard: Guard | None

    def _output(self, expression, sql_type: str, dialect: str, helpers, kind: str, generator):
        """The tree computing ``expression`` (rendered by ``generator``, which holds its plan
        of lets) and the PostgreSQL helper functions it calls."""
        functions = []

        def guarded(tree):
            if self.guard is None:
                return tree
            return self.guard.wrap(tree, sql_type, coalesce=dialect == "duckdb")

        if dialect in ("duckdb", "spark"):
            tree = guarded(self.levels.lambdas(expression, generator, dialect == "spark"))
        elif dialect == "postgres" and helpers is not None:
            # The guard goes inside the first function: the calling statement holds no model text.
            schema, name = helpers
            tree, functions = self.levels.chain(
                expression,
                generator,
                schema=schema,
                name=f"{name}_{kind}",
                arguments=[exp.column(i.name, quoted=True) for i in self.signature.inputs],
                returns="prediction" if kind == "p" else "DOUBLE[]",
                first=guarded,
            )
        elif dialect == "postgres":
            tree = guarded(self.levels.subqueries(expression, generator))
        else:
            raise ValueError(f"unknown SQL dialect {dialect!r}")
        return tree, functions

    def _array(self) -> exp.Expression:
        return exp.Array(expressions=[sql.lit(p) for p in self.probabilities])

    def prediction_tree(self, dialect: str, helpers: tuple[str, str] | None = None) -> Planned:
        """The prediction as a node to render in ``dialect`` (alone or inside a statement)."""
        generator = dialects.generator(dialect)
        tree = self._output(
            self.prediction, self.signature.prediction_type, dialect, helpers, "p", generator
        )[0]
        return Planned(this=tree, plan=generator)

    def probabilities_tree(self, dialect: str, helpers: tuple[str, str] | None = None) -> Planned:
        """The probability array as a node (see :meth:`prediction_tree`)."""
        generator = dialects.generator(dialect)
        return Planned(
            this=self._output(self._array(), "DOUBLE[]", dialect, helpers, "q", generator)[0], plan=generator
        )

    def outputs_tree(self, dialect: str, *, opaque: bool = False) -> Planned | None:
        """The prediction and the probability array as one struct ``{'o0': .., 'p': [..]}``
        whose shared sub-expressions (a tree sum) are bound once for both. Verification plans
        this once instead of each output on its own: DuckDB's planning of a big forest costs
        more than running it on a few hundred rows. DuckDB only (None elsewhere: PostgreSQL
        verifies through its helper functions, and nothing verifies Spark SQL).

        ``opaque``: the struct is the body of a lambda over a one-element list, where DuckDB's
        optimizer does not look (its common-subexpression pass took 8.4 of 11.6 s planning
        gb300d5's struct over 502 rows; in a lambda: 0.8-1.8 s). The same expression gives the
        same answers; it runs ~3x slower per row, which only a few hundred rows can afford
        (verification's)."""
        if dialect != "duckdb":
            return None
        prediction_type = exp.DataType.build(self.signature.prediction_type, dialect=dialect)
        fields = [exp.PropertyEQ(this=exp.to_identifier("o0"), expression=sql.lit(self.prediction))]
        columns = [exp.ColumnDef(this=exp.to_identifier("o0"), kind=prediction_type)]
        if self.probabilities:
            fields.append(exp.PropertyEQ(this=exp.to_identifier("p"), expression=self._array()))
            array_type = exp.DataType.build("DOUBLE[]", dialect=dialect)
            columns.append(exp.ColumnDef(this=exp.to_identifier("p"), kind=array_type))
        generator = dialects.generator(dialect)
        tree = self.levels.lambdas(exp.Struct(expressions=fields), generator, False)
        if self.guard is not None:
            struct_type = exp.DataType(this=exp.DataType.Type.STRUCT, expressions=columns, nested=True)
            tree = self.guard.wrap(tree, struct_type, coalesce=True)
        if opaque:
            tree = LetLevel(this=tree, expressions=[exp.Literal.number(0)], level=0)
        return Planned(this=tree, plan=generator)

    def outputs_columns(
        self, dialect: str, relation: exp.Expression
    ) -> tuple[exp.Expression, Planned, Planned]:
        """PostgreSQL, for one statement over ``relation`` (a trigger's rows, verification's
        table): (``relation`` with the shared sub-expressions as columns, the prediction, the
        probability array reading them). A forest's sum is computed once per row for both
        outputs, where the helper functions of :meth:`prediction_tree` and
        :meth:`probabilities_tree` compute it once for each (:meth:`shared.Levels.columns`).
        The input guard goes on the first level, else on each output."""
        if dialect != "postgres":
            raise ValueError(f"outputs as columns are PostgreSQL's form, not {dialect!r}'s")
        generator = dialects.generator(dialect)
        prediction, array = self.prediction, self._array()
        relation, levelled = self.levels.columns(
            [prediction, array], generator, relation, self._guarded("DOUBLE[]")
        )
        if not levelled:
            prediction = self._guarded(self.signature.prediction_type)(prediction)
            array = self._guarded("DOUBLE[]")(array)
        return relation, Planned(this=prediction, plan=generator), Planned(this=array, plan=generator)

    def _guarded(self, sql_type: str):
        """``tree`` -> ``tree`` behind the input guard (PostgreSQL's CASE form), if any."""
        if self.guard is None:
            return lambda tree: tree
        return lambda tree: self.guard.wrap(tree, sql_type)

    def prediction_sql(self, dialect: str, helpers: tuple[str, str] | None = None) -> str:
        """The prediction. On PostgreSQL, ``helpers=(schema, name)`` computes shared
        sub-expressions once through the functions :meth:`helper_functions` returns; without
        it they are written out in place."""
        return dialects.render(self.prediction_tree(dialect, helpers), dialect)

    def probabilities_array_sql(self, dialect: str, helpers: tuple[str, str] | None = None) -> str:
        """All probabilities as one array (NULL-free; empty models give an empty array)."""
        return dialects.render(self.probabilities_tree(dialect, helpers), dialect)

    def probability_picks(self, dialect: str, width: int | None = None, helpers=None) -> list[exp.Expression]:
        """One node per probability, NULL-padded to ``width`` columns (a scores-only binary
        classifier gives one score for two classes)."""
        picks = []
        if self.probabilities:
            array = self.probabilities_tree(dialect, helpers)
            offset = 0 if dialect == "spark" else 1
            picks = [Pick(this=array, index=i + offset) for i in range(len(self.probabilities))]
        return picks + [exp.Null() for _ in range(max(0, (width or 0) - len(picks)))]

    def probabilities_sql(self, dialect: str, width: int | None = None, helpers=None) -> list[str]:
        """One SQL expression per probability (NULL-padded to ``width`` columns)."""
        return [dialects.render(p, dialect) for p in self.probability_picks(dialect, width, helpers)]

    def helper_functions(self, helpers: tuple[str, str]) -> list:
        """The PostgreSQL functions that ``helpers`` names in the rendered SQL."""
        generator = dialects.generator("postgres")
        prediction_type = self.signature.prediction_type
        functions = self._output(self.prediction, prediction_type, "postgres", helpers, "p", generator)[1]
        if self.probabilities:
            generator = dialects.generator("postgres")
            functions += self._output(self._array(), "DOUBLE[]", "postgres", helpers, "q", generator)[1]
        return functions

    def sql(self, dialect: str) -> dict[str, str]:
        result = {"prediction": self.prediction_sql(dialect)}
        if self.probabilities:
            result["probabilities"] = self.probabilities_sql(dialect)
        return result

    def size(self, dialect: str) -> int:
        """Bytes of SQL: the prediction and the probability array, with their shared
        sub-expressions computed once (PostgreSQL: in helper functions), never written out."""
        helpers = ("indb", "size") if dialect == "postgres" else None
        total = len(self.prediction_sql(dialect, helpers))
        if self.probabilities:
            total += len(self.probabilities_array_sql(dialect, helpers))
        if helpers:
            total += sum(len(h.body) for h in self.helper_functions(helpers))
        return total


def _is_float(spec) -> bool:
    return spec.onnx_type in ("float", "double") and spec.sql_type == "DOUBLE"


def attributes(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _reduce_axes(node, values, attrs) -> list[int] | None:
    if len(values) > 1 and values[1] is not None:
        return [int(a) for a in values[1].numbers().ravel()]
    return attrs.get("axes")


class Compiler(MLOperators):
    def __init__(self, model: onnx.ModelProto, signature: Signature):
        self.model = model
        self.signature = signature
        self.values: dict[str, Value] = {}
        self.lets = Lets()

    # -- walk -----------------------------------------------------------------------------------
    def run(self) -> CompiledModel:
        self.walk()
        sig = self.signature
        prediction = sql.lit(self._scalar(self.values[sig.prediction_output]))
        probabilities = []
        if sig.probability_output:
            outputs = materialize(self.values[sig.probability_output]).data.ravel()
            probabilities = [sql.lit(p) for p in outputs]
        outputs, levels = self.lets.finish([prediction, *probabilities])
        return CompiledModel(outputs[0], outputs[1:], levels, sig, self._guard())

    def walk(self) -> None:
        """Translate every node; ``self.values`` then holds each graph value's SQL."""
        graph = self.model.graph
        reserved = [i.name for i in self.signature.inputs if i.name.lower().startswith(RESERVED_PREFIX)]
        if reserved:
            raise ModelError(
                f"input column {reserved[0]!r}: names starting with {RESERVED_PREFIX!r} are indb's own "
                "(compiled SQL and verification use them); rename the column"
            )
        if len(graph.node) > MAX_GRAPH_NODES:
            raise ModelRefused(
                f"the ONNX graph has {len(graph.node):,} nodes; the limit is {MAX_GRAPH_NODES:,}"
            )
        deadline = time.monotonic() + COMPILE_SECONDS
        for initializer in graph.initializer:
            self.values[initializer.name] = Value.constant(numpy_helper.to_array(initializer))
        for spec in self.signature.inputs:
            column = exp.column(spec.name, quoted=True)
            if spec.onnx_type == "double" and spec.sql_type == "BIGINT":  # age * age must not overflow
                column = exp.Cast(this=column, to=exp.DataType.build("DOUBLE"))
            self.values[spec.onnx_name] = Value(
                np.array([column], dtype=object), batched=True, rounded32=spec.onnx_type == "float"
            )
        for node in graph.node:
            if time.monotonic() > deadline:
                raise ModelRefused(
                    f"compiling took over {COMPILE_SECONDS:.0f} s (at {node.op_type} node {node.name!r})"
                )
            visit = getattr(self, f"visit_{node.op_type}", None)
            if visit is None:
                raise UnsupportedOperator(
                    f"ONNX operator {node.op_type!r} ({node.domain or 'ai.onnx'}) cannot be compiled to SQL"
                )
            inputs = [self.values[name] if name else None for name in node.input]
            outputs = [self._share_value(v) for v in visit(node, inputs, attributes(node))]
            for name, value in zip(node.output, outputs, strict=False):
                self.values[name] = value

    def _guard(self) -> Guard | None:
        """An error, not a silent answer, when an input the model needs is NULL, or a number
        input is NaN or infinite (unless the model was registered with ``allow_nan=True``):
        onnxruntime is refused the same rows."""
        inputs = self.signature.inputs
        required = [i.name for i in inputs if not i.nullable]
        tests = [exp.Is(this=exp.column(name, quoted=True), expression=exp.Null()) for name in required]
        finite = [] if self.signature.allow_nan else [i.name for i in inputs if _is_float(i)]
        for name in finite:  # NaN is above every number in all three engines: NOT (NaN <= max) holds
            within = exp.LTE(
                this=exp.Abs(this=exp.column(name, quoted=True)), expression=sql.lit(LARGEST_DOUBLE)
            )
            tests.append(exp.Not(this=exp.Paren(this=within)))
        if not tests:
            return None
        condition = tests[0]
        for test in tests[1:]:
            condition = exp.Or(this=condition, expression=test)
        names = [i.name for i in inputs if i.name in required or i.name in finite]
        what = "NULL, NaN or infinite" if finite else "NULL"
        message = f"ScoringError: an input of this model is {what}; it needs values in {', '.join(names)}"
        return Guard(condition, message)

    def share(self, element):
        """A name for a sub-expression used more than once (see :mod:`shared`)."""
        return self.lets.bind(element)

    def _share_value(self, value):
        if value is None or not value.batched:
            return value
        return Value(apply(self.share, value.data), True, value.rounded32)

    def _scalar(self, value: Value):
        value = materialize(value)
        flat = value.data.ravel()
        if len(flat) != 1:
            raise UnsupportedOperator(f"model output has {len(flat)} values per row; indb takes one")
        return flat[0]

    # -- shapes ---------------------------------------------------------------------------------
    def visit_Identity(self, node, values, attrs):
        return [values[0]]

    def visit_Concat(self, node, values, attrs):
        axis = attrs["axis"]
        batched = any(v.batched for v in values)
        if batched:
            rank = len(values[0].shape)
            axis = axis % rank - 1
            if axis < 0:
                raise UnsupportedOperator("Concat along the batch axis")
            arrays = [v.row(rank) for v in values]
        else:
            arrays = [v.data for v in values]
        return [Value(np.concatenate(arrays, axis=axis), batched, all(v.rounded32 for v in values))]

    def _reshape(self, value: Value, shape: list[int]) -> Value:
        if not value.batched:
            return Value(
                value.data.reshape([s if s != 0 else value.data.shape[i] for i, s in enumerate(shape)]), False
            )
        rest = [value.data.shape[i - 1] if s == 0 else s for i, s in enumerate(shape)][1:]
        return Value(value.data.reshape(rest), True, value.rounded32)

    def visit_Reshape(self, node, values, attrs):
        return [self._reshape(values[0], [int(s) for s in values[1].numbers().ravel()])]

    def visit_Flatten(self, node, values, attrs):
        value = values[0]
        return [Value(value.data.reshape(-1), value.batched, value.rounded32)]

    def visit_Squeeze(self, node, values, attrs):
        value = values[0]
        axes = _reduce_axes(node, values, attrs)
        data = value.data
        offset = 1 if value.batched else 0
        for axis in sorted(((a % len(value.shape)) - offset for a in (axes or [])), reverse=True):
            data = data.squeeze(axis)
        if axes is None:
            data = data.squeeze()
        return [Value(np.asarray(data, dtype=object), value.batched, value.rounded32)]

    def visit_Unsqueeze(self, node, values, attrs):
        value = values[0]
        axes = _reduce_axes(node, values, attrs)
        data = value.data
        offset = 1 if value.batched else 0
        for axis in sorted(axes):
            data = np.expand_dims(data, axis - offset)
        return [Value(data, value.batched, value.rounded32)]

    def visit_Shape(self, node, values, attrs):
        # -1 stands for the number of rows, unknown to a per-row expression.
        shape = [-1 if (values[0].batched and i == 0) else s for i, s in enumerate(values[0].shape)]
        return [Value.constant(np.array(shape, dtype=np.int64))]

    def visit_ConstantOfShape(self, node, values, attrs):
        shape = [int(s) for s in values[0].numbers().ravel()]
        fill = numpy_helper.to_array(attrs["value"]).ravel()[0].item() if "value" in attrs else 0.0
        if shape and shape[0] == -1:
            return [Value(np.full(shape[1:], fill, dtype=object), True)]
        return [Value(np.full(shape, fill, dtype=object), False)]

    def visit_Constant(self, node, values, attrs):
        return [Value.constant(numpy_helper.to_array(attrs["value"]))]

    def visit_Cast(self, node, values, attrs):
        value = values[0]
        to = attrs["to"]
        if to == onnx.TensorProto.FLOAT:
            return [Value(self._numbers_from_booleans(value.data, 1.0, 0.0), value.batched, rounded32=True)]
        if to == onnx.TensorProto.DOUBLE:
            return [Value(self._numbers_from_booleans(value.data, 1.0, 0.0), value.batched, value.rounded32)]
        if to in (onnx.TensorProto.INT64, onnx.TensorProto.INT32):
            value = materialize(value)

            def to_int(x):
                if sql.is_const(x):
                    return int(x)
                if isinstance(x, exp.Predicate | exp.Boolean | exp.Not):
                    return sql.case(x, 1, 0)
                return exp.Cast(this=Trunc(this=x), to=exp.DataType.build("BIGINT"))

            return [Value(apply(to_int, value.data), value.batched)]
        if to == onnx.TensorProto.STRING:
            return [value]
        if to == onnx.TensorProto.BOOL:
            return [
                elementwise(
                    lambda x: x != 0 if sql.is_const(x) else exp.NEQ(this=x, expression=sql.lit(0)), value
                )
            ]
        raise UnsupportedOperator(f"Cast to {onnx.TensorProto.DataType.Name(to)}")

    @staticmethod
    def _numbers_from_booleans(data, true, false):
        def convert(x):
            if isinstance(x, exp.Predicate | exp.Boolean | exp.Not | exp.And | exp.Or):
                return sql.case(x, true, false)
            if isinstance(x, bool | np.bool_):
                return true if x else false
            return x

        return apply(convert, data)

    # -- arithmetic -----------------------------------------------------------------------------
    def _binary(self, function, values):
        return [elementwise(function, *(materialize(v) for v in values))]

    def visit_Add(self, node, values, attrs):
        return self._binary(sql.add, values)

    def visit_Sub(self, node, values, attrs):
        return self._binary(sql.sub, values)

    def visit_Mul(self, node, values, attrs):
        return self._binary(sql.mul, values)

    def visit_Div(self, node, values, attrs):
        return self._binary(sql.div, values)

    def visit_Pow(self, node, values, attrs):
        def power(a, b):
            if sql.is_const(a) and sql.is_const(b):
                return a**b
            if sql.is_const(b) and b == 2:
                return sql.mul(a, a)
            return exp.Pow(this=sql.lit(a), expression=sql.lit(b))

        return self._binary(power, values)

    def visit_Sum(self, node, values, attrs):
        result = materialize(values[0])
        for value in values[1:]:
            result = elementwise(sql.add, result, materialize(value))
        return [result]

    def _unary(self, function, value):
        return [elementwise(function, materialize(value))]

    def visit_Neg(self, node, values, attrs):
        return self._unary(sql.neg, values[0])

    def visit_Abs(self, node, values, attrs):
        return self._unary(lambda a: sql.func("abs", a, abs), values[0])

    def visit_Exp(self, node, values, attrs):
        return self._unary(lambda a: sql.func("exp", a, math.exp), values[0])

    def visit_Log(self, node, values, attrs):
        return self._unary(lambda a: sql.func("ln", a, math.log), values[0])

    def visit_Sqrt(self, node, values, attrs):
        return self._unary(lambda a: sql.func("sqrt", a, math.sqrt), values[0])

    def visit_Sigmoid(self, node, values, attrs):
        return self._unary(sql.sigmoid, values[0])

    def visit_Relu(self, node, values, attrs):
        return self._unary(
            lambda a: max(a, 0.0) if sql.is_const(a) else sql.case(sql.compare(">", a, 0.0), a, 0.0),
            values[0],
        )

    def visit_Tanh(self, node, values, attrs):
        def tanh(a):
            if sql.is_const(a):
                return math.tanh(a)
            return sql.sub(sql.div(2.0, sql.add(1.0, sql.func("exp", sql.mul(-2.0, a), math.exp))), 1.0)

        return self._unary(tanh, values[0])

    def visit_MatMul(self, node, values, attrs):
        a, b = materialize(values[0]), values[1]
        if not a.batched or b.batched:
            raise UnsupportedOperator("MatMul of anything but a row by a constant matrix")
        weights = b.numbers()
        row = a.data
        if weights.ndim == 1:
            return [Value(np.array(self._dot(row, weights), dtype=object), True)]
        out = np.empty(weights.shape[1], dtype=object)
        for j in range(weights.shape[1]):
            out[j] = self._dot(row, weights[:, j])
        return [Value(out, True)]

    @staticmethod
    def _dot(row, column):
        # Exact zeros are left out: smaller SQL (a NaN input then gives a number, not NaN).
        return sql.total([sql.mul(x, float(w)) for x, w in zip(row, column, strict=True) if w != 0])

    def visit_Gemm(self, node, values, attrs):
        a, b = materialize(values[0]), values[1].numbers()
        if attrs.get("transA", 0):
            raise UnsupportedOperator("Gemm with transA")
        if attrs.get("transB", 0):
            b = b.T
        alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
        out = np.empty(b.shape[1], dtype=object)
        for j in range(b.shape[1]):
            out[j] = self._dot(a.data, b[:, j] * alpha)
        result = Value(out, True)
        if len(values) > 2 and values[2] is not None:
            c = values[2].numbers() * beta
            result = elementwise(sql.add, result, Value.constant(c))
        return [result]

    # -- reductions -----------------------------------------------------------------------------
    def _reduce(self, values, attrs, combine, node=None):
        value = materialize(values[0])
        axes = _reduce_axes(node, values, attrs)
        keep = attrs.get("keepdims", 1)
        if not value.batched:
            raise UnsupportedOperator("reduction of a constant")
        rank = len(value.shape)
        axes = [a % rank for a in (axes if axes is not None else range(rank))]
        if 0 in axes:
            raise UnsupportedOperator("reduction over the batch axis")
        data = value.data
        for axis in sorted(axes, reverse=True):
            data = np.apply_along_axis(lambda v: np.array([combine(list(v))], dtype=object), axis - 1, data)
            data = data if keep else data.squeeze(axis - 1)
        return [Value(np.asarray(data, dtype=object), True)]

    def visit_ReduceSum(self, node, values, attrs):
        return self._reduce(values, attrs, sql.total, node)

    def visit_ReduceSumSquare(self, node, values, attrs):
        return self._reduce(values, attrs, lambda v: sql.total([sql.mul(x, x) for x in v]), node)

    def visit_ReduceProd(self, node, values, attrs):
        def product(v):
            result = 1.0
            for x in v:
                result = sql.mul(result, x)
            return result

        return self._reduce(values, attrs, product, node)

    def visit_ReduceMax(self, node, values, attrs):
        return self._reduce(values, attrs, greatest, node)

    def visit_ReduceLogSumExp(self, node, values, attrs):
        def logsumexp(v):
            top = greatest(v)
            inner = sql.total([sql.func("exp", sql.sub(x, top), math.exp) for x in v])
            return sql.add(top, sql.func("ln", inner, math.log))

        return self._reduce(values, attrs, logsumexp, node)

    def visit_Softmax(self, node, values, attrs):
        value = materialize(values[0])
        if not value.batched or value.data.ndim != 1:
            raise UnsupportedOperator("Softmax over anything but one row of scores")
        return [Value(np.array(softmax(list(value.data), self.share), dtype=object), True)]

    def visit_ArgMax(self, node, values, attrs):
        value = materialize(values[0])
        if not value.batched or value.data.ndim != 1 or attrs.get("axis", 0) % 2 != 1:
            raise UnsupportedOperator("ArgMax over anything but the columns of one row")
        if attrs.get("select_last_index", 0):
            raise UnsupportedOperator("ArgMax with select_last_index")
        index = argmax(list(value.data))
        data = np.array([index], dtype=object) if attrs.get("keepdims", 1) else np.array(index, dtype=object)
        return [Value(data, True)]

    # -- comparisons and selection --------------------------------------------------------------
    def _compare(self, kind, values):
        return self._binary(lambda a, b: sql.compare(kind, a, b), values)

    def visit_Less(self, node, values, attrs):
        return self._compare("<", values)

    def visit_LessOrEqual(self, node, values, attrs):
        return self._compare("<=", values)

    def visit_Greater(self, node, values, attrs):
        return self._compare(">", values)

    def visit_GreaterOrEqual(self, node, values, attrs):
        return self._compare(">=", values)

    def visit_Equal(self, node, values, attrs):
        return self._compare("=", values)

    def visit_Not(self, node, values, attrs):
        return [elementwise(lambda a: (not a) if sql.is_const(a) else exp.Not(this=sql.paren(a)), values[0])]

    def visit_And(self, node, values, attrs):
        return [elementwise(lambda a, b: exp.And(this=sql.lit(a), expression=sql.lit(b)), *values)]

    def visit_Or(self, node, values, attrs):
        return [elementwise(lambda a, b: exp.Or(this=sql.lit(a), expression=sql.lit(b)), *values)]

    def visit_Where(self, node, values, attrs):
        condition = values[0]
        return [
            elementwise(
                lambda c, a, b: (a if c else b) if sql.is_const(c) else sql.case(c, a, b),
                condition,
                materialize(values[1]),
                materialize(values[2]),
            )
        ]

    def visit_Gather(self, node, values, attrs):
        data, indices = values
        axis = attrs.get("axis", 0)
        if indices.batched:
            raise UnsupportedOperator("Gather with row-dependent indices")
        picks = indices.numbers().astype(int)
        if data.batched:
            axis = axis % len(data.shape) - 1
            return [Value(np.take(data.data, picks, axis=axis), True, data.rounded32)]
        return [Value(np.take(data.data, picks, axis=axis), False)]


def greatest(v):
    if all(sql.is_const(x) for x in v):
        return max(v)
    if len(v) == 1:
        return v[0]
    return exp.Greatest(this=sql.lit(v[0]), expressions=[sql.lit(x) for x in v[1:]], ignore_nulls=True)


def softmax(v, share=lambda e: e):
    top = share(greatest(v))
    powers = [share(sql.func("exp", sql.sub(x, top), math.exp)) for x in v]
    denominator = share(sql.total(powers))
    return [sql.div(p, denominator) for p in powers]


def argmax(v):
    """The first index of the largest value (ONNX ArgMax), as a CASE over comparisons."""
    if all(sql.is_const(x) for x in v):
        return int(np.argmax(v))
    whens = []
    for i in range(len(v) - 1):
        # Earlier indexes were not the maximum, so beating every later one is enough.
        tests = [sql.compare(">=", v[i], v[j]) for j in range(i + 1, len(v))]
        condition = tests[0]
        for test in tests[1:]:
            condition = exp.And(this=sql.lit(condition), expression=sql.lit(test))
        whens.append((condition, i))
    case = exp.Case()
    for condition, index in whens:
        case = case.when(sql.lit(condition), sql.lit(index))
    return case.else_(sql.lit(len(v) - 1))


def compile_onnx(model: onnx.ModelProto, signature: Signature) -> CompiledModel:
    """SQL expressions for the model's prediction and probabilities, or UnsupportedOperator."""
    with paused_gc():
        return Compiler(model, signature).run()
