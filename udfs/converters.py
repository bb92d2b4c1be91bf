"""skl2onnx converters that keep double precision where skl2onnx's own do not.

scikit-learn computes in double. skl2onnx's converters for PolynomialFeatures and
KBinsDiscretizer write float constants (a float ones column, float bin edges) into a double
graph, which onnxruntime then refuses; SVR and NuSVR become an SVMRegressor, which
onnxruntime runs in float only. The float graphs they fall back to disagree with
scikit-learn beyond indb's registration tolerance (squares of incomes lose digits in
float32; a value near a bin edge lands in the other bin). These converters write the same
computation with the input's element type, so a double graph exists for each.

They are handed to ``convert_sklearn(custom_conversion_functions=DOUBLE_CONVERTERS)``, which
keys them by class and leaves skl2onnx's global registry alone.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper
from skl2onnx.common.data_types import guess_proto_type
from sklearn.preprocessing import KBinsDiscretizer, PolynomialFeatures
from sklearn.svm import SVR, NuSVR

_NUMPY = {TensorProto.FLOAT: np.float32, TensorProto.DOUBLE: np.float64}


def _dtype(operator) -> int:
    proto = guess_proto_type(operator.inputs[0].type)
    return proto if proto in _NUMPY else TensorProto.FLOAT


def _constant(scope, container, name: str, values, proto: int, shape=None) -> str:
    array = np.asarray(values, dtype=np.int64 if proto == TensorProto.INT64 else _NUMPY[proto])
    unique = scope.get_unique_variable_name(name)
    container.add_initializer(
        unique, proto, list(array.shape if shape is None else shape), array.ravel().tolist()
    )
    return unique


def _node(scope, container, op_type: str, inputs: list[str], name: str, domain: str = "", **attrs) -> str:
    output = scope.get_unique_variable_name(name)
    container.add_node(
        op_type, inputs, output, op_domain=domain, name=scope.get_unique_operator_name(op_type), **attrs
    )
    return output


def _column(scope, container, source: str, indexes: list[int]) -> str:
    picks = _constant(scope, container, "columns", indexes, TensorProto.INT64)
    return _node(scope, container, "ArrayFeatureExtractor", [source, picks], "picked", "ai.onnx.ml")


def convert_polynomial_features(scope, operator, container):
    """Each output column is the product of its input columns (in order, as scikit-learn)."""
    model, proto = operator.raw_operator, _dtype(operator)
    source = operator.inputs[0].full_name
    columns, reference = [], None
    for powers in model.powers_:
        features = [f for f, p in enumerate(powers) for _ in range(int(p))]
        if not features:
            columns.append(None)
            continue
        picked = _column(scope, container, source, features)
        reference = _node(scope, container, "ReduceProd", [picked], "product", axes=[1], keepdims=1)
        columns.append(reference)
    if None in columns:
        shape = _node(scope, container, "Shape", [reference or source], "shape")
        ones = helper.make_tensor("one", proto, [1], [1.0])
        unit = _node(scope, container, "ConstantOfShape", [shape], "unit", value=ones)
        if reference is None:  # degree 0: a column of ones of the input's width, cut to one
            unit = _column(scope, container, unit, [0])
        columns = [unit if c is None else c for c in columns]
    container.add_node(
        "Concat",
        columns,
        operator.outputs[0].full_name,
        axis=1,
        name=scope.get_unique_operator_name("Concat"),
    )


def convert_k_bins_discretizer(scope, operator, container):
    """bin = how many inner edges are <= x (scikit-learn's searchsorted(..., side='right'))."""
    model, proto = operator.raw_operator, _dtype(operator)
    if model.encode == "onehot":
        raise RuntimeError("KBinsDiscretizer(encode='onehot') gives a sparse matrix; use 'onehot-dense'")
    source = operator.inputs[0].full_name
    outputs = []
    for i, edges in enumerate(model.bin_edges_):
        inner = list(edges[1:-1]) or [np.inf]
        column = _column(scope, container, source, [i])
        above = _node(
            scope,
            container,
            "GreaterOrEqual",
            [column, _constant(scope, container, "edges", inner, proto)],
            "above",
        )
        counts = _node(scope, container, "Cast", [above], "counts", to=proto)
        axis = _constant(scope, container, "axis", [1], TensorProto.INT64)
        bins = _node(scope, container, "ReduceSum", [counts, axis], "bins", keepdims=1)
        if model.encode == "onehot-dense":
            labels = _constant(scope, container, "labels", np.arange(model.n_bins_[i]), proto)
            hot = _node(scope, container, "Equal", [bins, labels], "hot")
            bins = _node(scope, container, "Cast", [hot], "onehot", to=proto)
        outputs.append(bins)
    container.add_node(
        "Concat",
        outputs,
        operator.outputs[0].full_name,
        axis=1,
        name=scope.get_unique_operator_name("Concat"),
    )


def convert_svr(scope, operator, container):
    """sum over support vectors of dual_coef * kernel(x, vector) + intercept, with plain ops."""
    model, proto = operator.raw_operator, _dtype(operator)
    source = operator.inputs[0].full_name
    vectors = np.asarray(model.support_vectors_, dtype=np.float64)
    gamma, coef0, degree = float(model._gamma), float(model.coef0), float(model.degree)

    def const(name, values, shape=None):
        return _constant(scope, container, name, values, proto, shape)

    if model.kernel == "rbf":
        axis = _constant(scope, container, "axis", [1], TensorProto.INT64)
        wide = _node(scope, container, "Unsqueeze", [source, axis], "wide")  # [N, 1, F]
        difference = _node(scope, container, "Sub", [wide, const("vectors", vectors)], "difference")
        square = _node(scope, container, "ReduceSumSquare", [difference], "distance", axes=[2], keepdims=0)
        scaled = _node(scope, container, "Mul", [square, const("gamma", [-gamma])], "scaled")
        kernel = _node(scope, container, "Exp", [scaled], "kernel")
    elif model.kernel in ("linear", "poly", "sigmoid"):
        kernel = _node(scope, container, "MatMul", [source, const("vectors", vectors.T)], "dot")
        if model.kernel != "linear":
            kernel = _node(scope, container, "Mul", [kernel, const("gamma", [gamma])], "scaled")
            kernel = _node(scope, container, "Add", [kernel, const("coef0", [coef0])], "shifted")
            if model.kernel == "poly":
                kernel = _node(scope, container, "Pow", [kernel, const("degree", [degree])], "kernel")
            else:
                kernel = _node(scope, container, "Tanh", [kernel], "kernel")
    else:
        raise RuntimeError(f"SVR kernel {model.kernel!r} has no double-precision converter")
    weights = const("dual_coef", np.asarray(model.dual_coef_, dtype=np.float64).T)
    scores = _node(scope, container, "MatMul", [kernel, weights], "scores")
    container.add_node(
        "Add",
        [scores, const("intercept", np.asarray(model.intercept_, dtype=np.float64))],
        operator.outputs[0].full_name,
        name=scope.get_unique_operator_name("Add"),
    )


DOUBLE_CONVERTERS = {
    PolynomialFeatures: convert_polynomial_features,
    KBinsDiscretizer: convert_k_bins_discretizer,
    SVR: convert_svr,
    NuSVR: convert_svr,
}
