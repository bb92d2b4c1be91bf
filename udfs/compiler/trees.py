"""Tree ensembles as nested CASE expressions, exact to onnxruntime's float32 comparisons.

onnxruntime compares float32(x) with float32 thresholds. Instead of casting every input,
each threshold becomes the exact double cut-off: float32(x) <= t holds exactly when x lies
below the midpoint between t and the next float32 (at the midpoint itself, rounding goes
to the even neighbour).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from onnx import numpy_helper
from sqlglot import exp

from indb.udfs.compiler import sql
from indb.udfs.compiler.values import Value

MAX_TREE_DEPTH = 250  # deeper nested CASEs overflow Python's stack in sqlglot (and the engines')


def _unsupported(message: str):
    from indb.udfs.compiler.compile import UnsupportedOperator

    return UnsupportedOperator(message)


def float32_cut(threshold: float) -> tuple[str, float]:
    """(operator, cut-off) with float32(x) <= threshold  <=>  x <operator> cut-off, for doubles x."""
    t = np.float32(threshold)
    if np.isinf(t):
        return ("<=", float(t))
    up = np.nextafter(t, np.float32(np.inf))
    if np.isinf(up):  # the largest float32: the midpoint towards infinity
        up = float(t) + (float(t) - float(np.nextafter(t, np.float32(0))))
    middle = (float(t) + float(up)) / 2.0  # exact in double
    even = int(np.array(t).view(np.uint32)) % 2 == 0
    return ("<=" if even else "<", middle)


def _condition(x, mode: str, threshold: float, rounded32: bool, tracks_missing: bool):
    if mode == "BRANCH_LT":
        threshold = (
            float(np.nextafter(np.float32(threshold), np.float32(-np.inf))) if rounded32 else threshold
        )
        mode, strict = "BRANCH_LEQ", not rounded32
    else:
        strict = False
    if mode not in ("BRANCH_LEQ", "BRANCH_GT", "BRANCH_GTE"):
        raise _unsupported(f"tree node mode {mode}")
    if mode == "BRANCH_GTE":  # x >= t  <=>  not (x < t)
        inner = _condition(x, "BRANCH_LT", threshold, rounded32, False)
        condition = exp.Not(this=sql.paren(inner))
    elif mode == "BRANCH_GT":  # x > t  <=>  not (x <= t)
        inner = _condition(x, "BRANCH_LEQ", threshold, rounded32, False)
        condition = exp.Not(this=sql.paren(inner))
    elif rounded32:
        operator, cut = float32_cut(threshold)
        condition = sql.compare(operator, x, cut)
    else:
        condition = sql.compare("<" if strict else "<=", x, float(threshold))
    if tracks_missing:
        missing = exp.Or(
            this=exp.Is(this=x, expression=exp.Null()), expression=sql.compare("=", x, float("nan"))
        )
        condition = exp.Or(this=sql.paren(condition), expression=sql.paren(missing))
    return condition


def _list(attrs: dict, name: str, *, short: bool = False):
    """An attribute's numbers as doubles. ``short``: float32 values as their shortest decimal
    (within half a float32 ulp: leaf weights, where it halves the SQL and moves sums by ~1e-8)."""
    if f"{name}_as_tensor" in attrs:
        return numpy_helper.to_array(attrs[f"{name}_as_tensor"]).astype(np.float64).tolist()
    if short:
        return [float(str(np.float32(v))) for v in attrs.get(name, [])]
    return [float(np.float32(v)) for v in attrs.get(name, [])]


def _roots(nodes: dict) -> dict:
    """Each tree's root: its smallest node id (one pass; a search per tree was quadratic)."""
    roots: dict = {}
    for tree, node in nodes:
        if tree not in roots or node < roots[tree]:
            roots[tree] = node
    return dict(sorted(roots.items()))


def _check_trees(nodes: dict, roots: dict) -> None:
    """Refuse what nested CASEs cannot mean: NaN thresholds (every comparison false), trees
    deeper than MAX_TREE_DEPTH, branches to missing nodes or back up the tree."""
    from indb.udfs.compiler.errors import ModelRefused

    for (tree, node), (mode, _, threshold, *_) in nodes.items():
        if mode != "LEAF" and np.isnan(threshold):
            raise ModelRefused(f"tree {tree} node {node} has a NaN threshold: no input is ever below it")
    for tree, root in roots.items():
        stack, seen = [(root, 1)], set()
        while stack:
            node, depth = stack.pop()
            if depth > MAX_TREE_DEPTH:
                raise ModelRefused(
                    f"tree {tree} is deeper than the compiler's limit of {MAX_TREE_DEPTH} levels"
                )
            found = nodes.get((tree, node))
            if found is None:
                raise ModelRefused(f"tree {tree} branches to node {node}, which it does not have")
            if node in seen:
                raise ModelRefused(f"tree {tree} reaches node {node} twice (a cycle or a shared node)")
            seen.add(node)
            if found[0] != "LEAF":
                stack += [(found[3], depth + 1), (found[4], depth + 1)]


def tree_ensemble(value: Value, attrs: dict, *, regressor: bool, classes: int = 0) -> list:
    """One score expression per target (regressor) or class (classifier), before post-transform."""
    if not value.batched or value.data.ndim != 1:
        raise _unsupported("tree ensemble over anything but one row of features")
    row = list(value.data)
    modes = [m.decode() if isinstance(m, bytes) else m for m in attrs["nodes_modes"]]
    thresholds = _list(attrs, "nodes_values")
    tracks = attrs.get("nodes_missing_value_tracks_true") or [0] * len(modes)
    nodes = {}
    for i, (tree, node) in enumerate(zip(attrs["nodes_treeids"], attrs["nodes_nodeids"], strict=True)):
        nodes[(tree, node)] = (
            modes[i],
            attrs["nodes_featureids"][i],
            thresholds[i],
            attrs["nodes_truenodeids"][i],
            attrs["nodes_falsenodeids"][i],
            tracks[i],
        )
    roots = _roots(nodes)
    _check_trees(nodes, roots)
    prefix = "target" if regressor else "class"
    weights = _list(attrs, f"{prefix}_weights", short=True)
    leaves: dict = defaultdict(lambda: defaultdict(float))
    ids = attrs[f"{prefix}_ids"]
    for tree, node, target, weight in zip(
        attrs[f"{prefix}_treeids"], attrs[f"{prefix}_nodeids"], ids, weights, strict=True
    ):
        leaves[(tree, node)][target] += weight
    targets = attrs.get("n_targets", 1) if regressor else (max(ids) + 1 if ids else classes)

    def expression(tree: int, node: int, target: int):
        mode, feature, threshold, true_id, false_id, missing = nodes[(tree, node)]
        if mode == "LEAF":
            return leaves.get((tree, node), {}).get(target, 0.0)
        condition = _condition(row[feature], mode, threshold, value.rounded32, bool(missing))
        return sql.case(condition, expression(tree, true_id, target), expression(tree, false_id, target))

    base = list(attrs.get("base_values", [])) or [0.0] * targets
    aggregate = attrs.get("aggregate_function", b"SUM")
    aggregate = aggregate.decode() if isinstance(aggregate, bytes) else aggregate
    if aggregate not in ("SUM", "AVERAGE"):
        raise _unsupported(f"tree aggregate_function {aggregate}")
    scores = []
    for target in range(targets):
        total = sql.total([expression(tree, root, target) for tree, root in roots.items()], grouped=True)
        if aggregate == "AVERAGE":
            total = sql.div(total, float(len(roots)))
        scores.append(sql.add(total, float(base[target]) if target < len(base) else 0.0))
    return scores
