"""The ai.onnx.ml opset 5 ``TreeEnsemble`` operator, read as the v3 attributes :mod:`trees` takes.

v5 keeps one array of interior nodes for every tree (``tree_roots`` point into it) and
separate leaf arrays; a branch names either a node or a leaf (``nodes_trueleafs`` /
``nodes_falseleafs``). Enumerations are integers, thresholds and weights tensors. Each tree
is walked from its root and numbered again, root first, with its leaves as LEAF nodes.
"""

from __future__ import annotations

import numpy as np
from onnx import numpy_helper

MODES = ("BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ", "BRANCH_MEMBER")
AGGREGATES = ("AVERAGE", "SUM", "MIN", "MAX")
TRANSFORMS = ("NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO", "PROBIT")


def _array(attrs: dict, name: str) -> np.ndarray:
    value = attrs.get(name)
    return np.zeros(0) if value is None else numpy_helper.to_array(value)


def v3_attributes(attrs: dict) -> dict:
    """TreeEnsembleRegressor (v3) attributes for the same trees."""
    splits = _array(attrs, "nodes_splits")
    modes = [int(m) for m in _array(attrs, "nodes_modes").ravel()]
    features = list(attrs["nodes_featureids"])
    true_ids, false_ids = list(attrs["nodes_truenodeids"]), list(attrs["nodes_falsenodeids"])
    true_leaf, false_leaf = list(attrs["nodes_trueleafs"]), list(attrs["nodes_falseleafs"])
    tracks = list(attrs.get("nodes_missing_value_tracks_true") or [0] * len(modes))
    leaf_targets, leaf_weights = list(attrs["leaf_targetids"]), _array(attrs, "leaf_weights")
    out = {
        key: [] for key in ("treeids", "nodeids", "featureids", "modes", "values", "true", "false", "tracks")
    }
    targets = {"treeids": [], "nodeids": [], "ids": [], "weights": []}

    def add(tree, node_id, feature, mode, value, true_id, false_id, track):
        for key, item in zip(
            out, (tree, node_id, feature, mode, value, true_id, false_id, track), strict=True
        ):
            out[key].append(item)

    for tree, root in enumerate(attrs["tree_roots"]):
        counter = iter(range(len(modes) + len(leaf_targets) + 1))
        stack = [(root, False, next(counter))]  # (index, is a leaf, new id)
        while stack:
            index, leaf, node_id = stack.pop()
            if leaf:
                add(tree, node_id, 0, b"LEAF", 0.0, 0, 0, 0)
                for key, item in zip(
                    targets, (tree, node_id, leaf_targets[index], float(leaf_weights[index])), strict=True
                ):
                    targets[key].append(item)
                continue
            true_new, false_new = next(counter), next(counter)
            mode = MODES[modes[index]].encode()
            add(
                tree, node_id, features[index], mode, float(splits[index]), true_new, false_new, tracks[index]
            )
            stack.append((false_ids[index], bool(false_leaf[index]), false_new))
            stack.append((true_ids[index], bool(true_leaf[index]), true_new))
    value_type = splits.dtype if splits.dtype in (np.float32, np.float64) else np.float64
    weight_type = leaf_weights.dtype if leaf_weights.dtype in (np.float32, np.float64) else np.float64
    return {
        "nodes_treeids": out["treeids"],
        "nodes_nodeids": out["nodeids"],
        "nodes_featureids": out["featureids"],
        "nodes_modes": out["modes"],
        "nodes_values_as_tensor": numpy_helper.from_array(np.array(out["values"], dtype=value_type)),
        "nodes_truenodeids": out["true"],
        "nodes_falsenodeids": out["false"],
        "nodes_missing_value_tracks_true": out["tracks"],
        "target_treeids": targets["treeids"],
        "target_nodeids": targets["nodeids"],
        "target_ids": targets["ids"],
        "target_weights_as_tensor": numpy_helper.from_array(np.array(targets["weights"], dtype=weight_type)),
        "n_targets": int(attrs.get("n_targets", 1)),
        "aggregate_function": AGGREGATES[int(attrs.get("aggregate_function", 1))].encode(),
        "post_transform": TRANSFORMS[int(attrs.get("post_transform", 0))].encode(),
    }
