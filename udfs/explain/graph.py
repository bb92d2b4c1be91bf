"""Reading a model's ONNX graph for explanations: where its estimator starts, the derived
features it reads (computed by onnxruntime), and which input column each one comes from.

An indb model is preprocessing (per-column inputs, Concat, scalers, encoders, imputers)
followed by one estimator node (or a MatMul + Add for skl2onnx's double-precision linear
models) and its post-processing. The derived features are the estimator's input tensor.
Which input column a derived feature comes from is read off the SQL the compiler writes
for it: the columns its expression mentions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import pandas as pd
from onnx import helper, numpy_helper
from sqlglot import exp

from indb.udfs import convert, sessions
from indb.udfs.explain.base import ExplainError
from indb.udfs.signature import Signature

TREES = ("TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble")
LINEAR = ("LinearClassifier", "LinearRegressor")
# Nodes that hold a fitted estimator (besides MatMul/Gemm with constant weights).
ESTIMATORS = (*TREES, *LINEAR, "SVMClassifier", "SVMRegressor")
MATRIX = ("MatMul", "Gemm")


class Graph:
    """Producers, consumers and constants of one ONNX graph."""

    def __init__(self, proto: onnx.ModelProto):
        self.proto = proto
        graph = proto.graph
        self.nodes = list(graph.node)
        self.constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        for node in self.nodes:
            if node.op_type == "Constant":
                value = next((a for a in node.attribute if a.name == "value"), None)
                if value is not None:
                    self.constants[node.output[0]] = numpy_helper.to_array(value.t)
        self.producer = {out: node for node in self.nodes for out in node.output}
        self.consumers: dict[str, list] = {}
        for node in self.nodes:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)

    def is_estimator(self, node) -> bool:
        if node.op_type in ESTIMATORS:
            return True
        return node.op_type in MATRIX and len(node.input) > 1 and node.input[1] in self.constants

    def downstream(self, tensor: str) -> list:
        """Every node that reads ``tensor`` directly or through other nodes."""
        seen, stack, found = set(), [tensor], []
        while stack:
            for node in self.consumers.get(stack.pop(), []):
                if id(node) not in seen:
                    seen.add(id(node))
                    found.append(node)
                    stack.extend(node.output)
        return found

    def ancestors(self, tensor: str) -> list:
        """The nodes computing ``tensor``, in graph order."""
        needed, stack = set(), [tensor]
        while stack:
            node = self.producer.get(stack.pop())
            if node is not None and id(node) not in needed:
                needed.add(id(node))
                stack.extend(n for n in node.input if n)
        return [n for n in self.nodes if id(n) in needed]

    def estimators(self) -> list:
        return [n for n in self.nodes if self.is_estimator(n)]


def attributes(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class Features:
    """The estimator's input tensor: computed from a frame, and the input column of each
    derived feature (``owner[j]``: index into ``columns``; -1 for a constant)."""

    proto: onnx.ModelProto  # the graph up to the tensor
    signature: Signature
    tensor: str
    owner: np.ndarray | None  # None: some derived feature reads several input columns
    columns: list[str]
    session: Any = None

    def compute(self, frame: pd.DataFrame) -> np.ndarray:
        (values,) = self.session.run([self.tensor], convert.feeds(self.signature, frame))
        return np.asarray(values, dtype=np.float64).reshape(len(frame), -1)

    def aggregation(self) -> np.ndarray:
        """(m, k) 0/1 matrix adding derived features into their input columns."""
        matrix = np.zeros((len(self.owner), len(self.columns)))
        for j, owner in enumerate(self.owner):
            if owner >= 0:
                matrix[j, owner] = 1.0
        return matrix


def features(proto: onnx.ModelProto, signature: Signature, tensor: str) -> Features:
    """The derived features feeding ``tensor``'s consumer, read from the graph."""
    graph = Graph(proto)
    nodes = graph.ancestors(tensor)
    try:
        inferred = onnx.shape_inference.infer_shapes(proto).graph.value_info
    except Exception:  # onnx raises its own types for graphs it cannot infer; try both below
        inferred = []
    kinds = {v.name: v.type.tensor_type.elem_type for v in inferred}
    kinds.update({v.name: v.type.tensor_type.elem_type for v in proto.graph.input})
    used = {name for node in nodes for name in node.input}
    # ai.onnx.ml operators (Imputer, ...) have no type inference: try the element types in turn.
    kinds = [kinds[tensor]] if kinds.get(tensor) else [onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE]
    for elem in kinds:
        body = helper.make_graph(
            nodes,
            "indb_explain_features",
            list(proto.graph.input),
            [helper.make_tensor_value_info(tensor, elem, None)],
            [i for i in proto.graph.initializer if i.name in used],
        )
        cut = helper.make_model(body, opset_imports=list(proto.opset_import), ir_version=proto.ir_version)
        try:
            session = sessions.build(cut.SerializeToString())
        except Exception as e:  # onnxruntime raises its own Fail types
            error = e
            continue
        return Features(cut, signature, tensor, _owners(cut, signature, tensor), signature.columns, session)
    raise ExplainError(f"cannot compute the estimator's input {tensor!r} on its own: {error}")


def _owners(cut: onnx.ModelProto, signature: Signature, tensor: str) -> np.ndarray | None:
    """The input column each element of ``tensor`` reads, from the compiler's SQL for it."""
    from indb.udfs.compiler.compile import Compiler
    from indb.udfs.compiler.errors import ModelRefused, UnsupportedOperator
    from indb.udfs.compiler.values import materialize

    compiler = Compiler(cut, signature)
    try:
        compiler.walk()
    except (UnsupportedOperator, ModelRefused, ValueError):
        return None
    bodies = compiler.lets.bodies
    memo: dict[str, frozenset] = {}

    def columns_of(element) -> frozenset:
        if not isinstance(element, exp.Expression):
            return frozenset()
        found = set()
        for node in element.walk():
            if isinstance(node, exp.Column):
                found.add(node.name)
            elif type(node).__name__ == "LetRef":
                name = node.name
                if name not in memo:
                    memo[name] = columns_of(bodies[name])
                found |= memo[name]
        return frozenset(found)

    index = {c: i for i, c in enumerate(signature.columns)}
    owner = []
    for element in materialize(compiler.values[tensor]).data.ravel():
        names = columns_of(element)
        if len(names) > 1:
            return None
        owner.append(index[next(iter(names))] if names else -1)
    return np.array(owner, dtype=np.int64)
