"""Choosing the explainer for a stored model version (see the package docstring)."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import onnx
import pandas as pd

from indb.udfs import sessions
from indb.udfs.explain.base import Explainer, ExplainError, class_targets, default_target
from indb.udfs.explain.graph import LINEAR, MATRIX, TREES, Graph, attributes, features, text
from indb.udfs.explain.linear import LinearExplainer
from indb.udfs.explain.sampling import SamplingExplainer
from indb.udfs.explain.trees import tree_explainer
from indb.udfs.signature import Signature


def _field(model_version: Any, name: str, default=None):
    if isinstance(model_version, dict):
        return model_version.get(name, default)
    return getattr(model_version, name, default)


def _json(value):
    return value if value is None or isinstance(value, str) else json.dumps(value)


def signature_of(model_version: Any) -> Signature:
    found = _field(model_version, "signature")
    if isinstance(found, Signature):
        return found
    inputs, outputs = _field(model_version, "inputs"), _field(model_version, "outputs")
    if inputs is None or outputs is None:
        raise ExplainError(
            "the model version has no inputs/outputs signature: give a catalog row of indb.model_versions"
        )
    classes = _field(model_version, "classes")
    classes = None if isinstance(classes, float) else classes  # pandas reads a NULL text as NaN
    return Signature.from_catalog(_json(inputs), _json(outputs), _json(classes))


def model_bytes(model_version: Any) -> bytes:
    data = _field(model_version, "onnx")
    if data is None:
        raise ExplainError("the model version carries no ONNX bytes; load it with its bytes")
    data = bytes(data)
    sha256 = _field(model_version, "sha256")
    if isinstance(sha256, str):
        sessions.verify(
            str(_field(model_version, "model", _field(model_version, "name", "?"))),
            int(_field(model_version, "version", 0)),
            data,
            sha256,
        )
    return data


def background_of(model_version: Any, signature: Signature, background: pd.DataFrame | None) -> pd.DataFrame:
    """The explicit background, else the registration sample stored with the version."""
    if background is None:
        stored = _field(model_version, "sample")
        if isinstance(stored, str) and stored:
            background = pd.read_json(io.StringIO(stored), orient="split")
        elif isinstance(stored, pd.DataFrame):
            background = stored
    if background is None or len(background) == 0:
        raise ExplainError(
            "explanations need a background sample of the model's inputs: the version has no stored "
            "sample; pass background=<DataFrame of training rows>"
        )
    missing = [c for c in signature.columns if c not in background.columns]
    if missing:
        raise ExplainError(f"the background sample lacks input column(s) {missing}")
    frame = background[signature.columns].reset_index(drop=True)
    for spec in signature.inputs:  # JSON gives integers back as floats, or floats as integers
        if spec.sql_type == "DOUBLE":
            frame[spec.name] = frame[spec.name].astype(np.float64)
    return frame


METHODS = ("auto", "sampling")


def explainer_for(
    model_version: Any, background: pd.DataFrame | None = None, *, method: str = "auto", **options
) -> Explainer:
    """The explainer for a model version: a catalog row of ``indb.model_versions`` as a dict
    (``onnx``, ``inputs``, ``outputs``, ``classes``, ``sample``, optionally ``sha256``) or a
    registry ModelVersion loaded with its bytes. ``background``: input rows to take
    expectations over (default: the stored registration sample). ``method``: "auto" (exact
    for linear models and tree ensembles, sampling otherwise) or "sampling" (any model as a
    black box). ``options`` go to the sampling explainer (``samples``, ``seed``,
    ``background_rows``)."""
    if method not in METHODS:
        raise ExplainError(f"method must be one of {METHODS}, got {method!r}")
    signature = signature_of(model_version)
    proto = onnx.load_from_string(model_bytes(model_version))
    frame = background_of(model_version, signature, background)
    if method == "auto":
        graph = Graph(proto)
        found = graph.estimators()
        explainer = None
        if found and found[0].op_type in (*LINEAR, *MATRIX):
            explainer = _linear(graph, found[0], signature, frame)
        elif len(found) == 1 and found[0].op_type in TREES:
            explainer = tree_explainer(graph, found[0], signature, frame)
        if explainer is not None:
            return explainer
    return SamplingExplainer(proto, signature, frame, **options)


def _linear(graph: Graph, node, signature: Signature, frame: pd.DataFrame) -> Explainer | None:
    """A LinearClassifier/LinearRegressor node, or MatMul (+ Add) with constant weights and
    no other estimator after it; None when the model is not linear in its derived features."""
    attrs = attributes(node)
    if node.op_type in LINEAR:
        raw = node.output[-1]
        intercepts = np.asarray(attrs.get("intercepts", [0.0]), dtype=np.float64)
        count = len(intercepts) if node.op_type == "LinearClassifier" else int(attrs.get("targets", 1))
        weights = np.asarray(attrs["coefficients"], dtype=np.float64).reshape(count, -1).T
        transform = text(attrs.get("post_transform", "NONE"))
    else:
        weights = graph.constants[node.input[1]].astype(np.float64)
        intercepts = np.zeros(weights.shape[1] if weights.ndim == 2 else 1)
        if node.op_type == "Gemm":
            if attrs.get("transA", 0):
                return None
            weights = (weights.T if attrs.get("transB", 0) else weights) * attrs.get("alpha", 1.0)
            if len(node.input) > 2 and node.input[2] in graph.constants:
                intercepts = intercepts + attrs.get("beta", 1.0) * graph.constants[node.input[2]].reshape(-1)
        if weights.ndim == 1:
            weights = weights[:, None]
        raw = node.output[0]
        after = graph.consumers.get(raw, [])
        if len(after) == 1 and after[0].op_type == "Add":
            other = [n for n in after[0].input if n != raw]
            if len(other) != 1 or other[0] not in graph.constants:
                return None
            intercepts = intercepts + graph.constants[other[0]].astype(np.float64).reshape(-1)
            raw = after[0].output[0]
        ops = {n.op_type for n in graph.downstream(raw)}
        if any(graph.is_estimator(n) for n in graph.downstream(raw)):
            return None
        transform = "LOGISTIC" if "Sigmoid" in ops else "SOFTMAX" if "Softmax" in ops else "NONE"
    if any(graph.is_estimator(n) for n in graph.downstream(raw)):
        return None
    derived = features(graph.proto, signature, node.input[0])
    if derived.owner is None:
        return None
    count = weights.shape[1]
    intercepts = np.broadcast_to(intercepts, (count,))
    if signature.task == "regression":
        if count != 1:
            return None
        targets, kind = ["value"], "value"
    else:
        targets = class_targets(signature.classes, count)
        kind = {"LOGISTIC": "log-odds", "SOFTMAX": "softmax logit"}.get(transform, "decision function")
    return LinearExplainer(
        derived, weights, intercepts, frame, targets=targets, kind=kind, default=default_target(targets)
    )
