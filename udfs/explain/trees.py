"""Tree ensembles: exact path-dependent TreeSHAP on the ONNX tree arrays.

The algorithm is the polynomial-time one of Lundberg, Erion and Lee (2018, "Consistent
individualized feature attribution for tree ensembles", Algorithm 2): one walk down each
tree carries, for the features on the path so far, the fraction of "zero" paths (cover
ratios: the share of the background that goes this way) and of "one" paths (whether the
explained row goes this way), and the permutation weights of every subset size; at a leaf
each path feature receives its weight, with the feature unwound from the path, times the
leaf value. The walk's shape does not depend on the row, only the "one" fractions do, so
every step here works on all rows at once (numpy arrays over rows).

**Covers.** ONNX tree ensembles carry no node covers (scikit-learn's sample counts,
XGBoost's hessian sums). They are recomputed by routing the background sample through the
trees: a node's cover is the number of background rows reaching it. With the frame the
model was fit on (and no bootstrap or subsampling) this is exactly scikit-learn's
``weighted_n_node_samples``. A leaf no background row reaches gets a pseudo-count of
``UNREACHED`` rows so that its branch keeps a small, non-zero weight (additivity holds for
any positive covers that add up).

Routing follows onnxruntime: ``BRANCH_LEQ``/``LT``/``GTE``/``GT`` on the derived features
as onnxruntime computed them, NaN goes to the true branch where the node tracks missing
values and to the false branch otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from indb.udfs.compiler.tree_v5 import v3_attributes
from indb.udfs.compiler.trees import _list as numbers
from indb.udfs.explain.base import Explainer, Scores, class_targets, default_target
from indb.udfs.explain.graph import Features, Graph, attributes, features, text
from indb.udfs.signature import Signature

UNREACHED = 0.5  # background rows credited to a leaf none of them reaches
CHUNK_CELLS = 4_000_000  # rows x leaves looked up at once (bounds the memory of a batch)
MODES = ("BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT")


@dataclass
class Tree:
    """One tree as arrays over its nodes (local indexes, root 0)."""

    left: np.ndarray  # true branch, -1 at leaves
    right: np.ndarray  # false branch
    feature: np.ndarray
    threshold: np.ndarray
    mode: list[str]
    missing_true: np.ndarray
    value: np.ndarray  # (nodes, T) leaf values
    cover: np.ndarray | None = None

    def goes_true(self, node: int, x: np.ndarray) -> np.ndarray:
        column, t = x[:, self.feature[node]], self.threshold[node]
        mode = self.mode[node]
        with np.errstate(invalid="ignore"):
            if mode == "BRANCH_LEQ":
                result = column <= t
            elif mode == "BRANCH_LT":
                result = column < t
            elif mode == "BRANCH_GTE":
                result = column >= t
            else:
                result = column > t
        if self.missing_true[node]:
            result = result | np.isnan(column)
        return result

    def set_cover(self, x: np.ndarray) -> None:
        """Background rows reaching each node (leaves never reached get UNREACHED)."""
        count = np.zeros(len(self.left))
        stack = [(0, np.ones(len(x), dtype=bool))]
        while stack:
            node, rows = stack.pop()
            count[node] = rows.sum()
            if self.left[node] >= 0:
                true = self.goes_true(node, x)
                stack += [(self.left[node], rows & true), (self.right[node], rows & ~true)]
        leaf = self.left < 0
        count[leaf & (count == 0)] = UNREACHED
        for node in reversed(self._order()):  # children before parents
            if self.left[node] >= 0:
                count[node] = count[self.left[node]] + count[self.right[node]]
        self.cover = count

    def _order(self) -> list[int]:
        order, stack = [], [0]
        while stack:
            node = stack.pop()
            order.append(node)
            if self.left[node] >= 0:
                stack += [self.left[node], self.right[node]]
        return order

    def expected(self) -> np.ndarray:
        leaf = self.left < 0
        return (self.cover[leaf, None] * self.value[leaf]).sum(axis=0) / self.cover[0]


def read_trees(attrs: dict, regressor: bool) -> tuple[list[Tree], int, np.ndarray, str, str]:
    """The trees of a TreeEnsemble{Regressor,Classifier} node (v3 attributes), the number of
    scores T, the base values, the aggregate function and the post-transform."""
    modes = [text(m) for m in attrs["nodes_modes"]]
    thresholds = numbers(attrs, "nodes_values")
    tracks = attrs.get("nodes_missing_value_tracks_true") or [0] * len(modes)
    prefix = "target" if regressor else "class"
    ids = list(attrs[f"{prefix}_ids"])
    count = int(attrs.get("n_targets", 1)) if regressor else (max(ids) + 1 if ids else 1)
    index: dict[tuple[int, int], tuple[int, int]] = {}  # (tree, node id) -> (tree position, local)
    trees_of: dict[int, list[int]] = {}
    for i, tree in enumerate(attrs["nodes_treeids"]):
        trees_of.setdefault(tree, []).append(i)
    trees = []
    for position, (tree, rows) in enumerate(sorted(trees_of.items())):
        rows = sorted(rows, key=lambda i: attrs["nodes_nodeids"][i])  # the root has the lowest id
        for local, i in enumerate(rows):
            index[(tree, attrs["nodes_nodeids"][i])] = (position, local)
        size = len(rows)
        left, right = np.full(size, -1), np.full(size, -1)
        feature = np.zeros(size, dtype=np.int64)
        threshold = np.zeros(size)
        mode, missing = [], np.zeros(size, dtype=bool)
        for local, i in enumerate(rows):
            mode.append(modes[i])
            if modes[i] == "LEAF":
                continue
            if modes[i] not in MODES:
                raise ValueError(f"tree node mode {modes[i]}")
            left[local] = _local(index, tree, attrs["nodes_truenodeids"][i])
            right[local] = _local(index, tree, attrs["nodes_falsenodeids"][i])
            feature[local], threshold[local], missing[local] = (
                attrs["nodes_featureids"][i],
                thresholds[i],
                bool(tracks[i]),
            )
        trees.append(Tree(left, right, feature, threshold, mode, missing, np.zeros((size, count))))
    weights = numbers(attrs, f"{prefix}_weights")
    for tree, node, target, weight in zip(
        attrs[f"{prefix}_treeids"], attrs[f"{prefix}_nodeids"], ids, weights, strict=True
    ):
        position, local = index[(tree, node)]
        trees[position].value[local, target] += weight
    base = np.zeros(count)
    given = list(attrs.get("base_values", []))
    base[: len(given)] = given[:count]
    aggregate = text(attrs.get("aggregate_function", "SUM"))
    if aggregate not in ("SUM", "AVERAGE"):
        raise ValueError(f"tree aggregate_function {aggregate}")
    return trees, count, base, aggregate, text(attrs.get("post_transform", "NONE"))


def _local(index: dict, tree: int, node: int) -> int:
    if (tree, node) not in index:
        raise ValueError(f"tree {tree} branches to node {node}, which it does not have")
    return index[(tree, node)][1]


# -- TreeSHAP -------------------------------------------------------------------------------------
class Path:
    """The path of one walk: features ``d``, zero fractions ``z`` (numbers), one fractions
    ``o`` and permutation weights ``w`` (arrays over rows). Element 0 is the walk's start."""

    def __init__(self, d: list[int], z: list[float], o: list[np.ndarray], w: list[np.ndarray]):
        self.d, self.z, self.o, self.w = d, z, o, w

    def extend(self, zero: float, one: np.ndarray, feature: int) -> Path:
        length = len(self.d)
        w = [*self.w, np.ones_like(one) if length == 0 else np.zeros_like(one)]
        for a in range(length - 1, -1, -1):
            w[a + 1] = w[a + 1] + one * w[a] * (a + 1) / (length + 1)
            w[a] = zero * w[a] * (length - a) / (length + 1)
        return Path([*self.d, feature], [*self.z, zero], [*self.o, one], w)

    def unwind(self, k: int) -> Path:
        """The path without element ``k``, as if it had never been extended with it."""
        length = len(self.d)
        one, zero = self.o[k], self.z[k]
        hot = one != 0
        safe_one = np.where(hot, one, 1.0)
        carry = self.w[length - 1]
        w = list(self.w[: length - 1])
        for a in range(length - 2, -1, -1):
            was = w[a]
            through_one = carry * length / ((a + 1) * safe_one)
            carry = was - through_one * zero * (length - a - 1) / length
            through_zero = was * length / (zero * (length - a - 1)) if zero else np.zeros_like(was)
            w[a] = np.where(hot, through_one, through_zero)
        drop = lambda items: items[:k] + items[k + 1 :]  # noqa: E731
        return Path(drop(self.d), drop(self.z), drop(self.o), w)

    def unwound_sum(self, k: int) -> np.ndarray:
        """The sum of the weights of :meth:`unwind` (k), without building the path."""
        length = len(self.d)
        one, zero = self.o[k], self.z[k]
        hot = one != 0
        safe_one = np.where(hot, one, 1.0)
        carry, total_one, total_zero = self.w[length - 1], 0.0, 0.0
        for a in range(length - 2, -1, -1):
            through_one = carry * length / ((a + 1) * safe_one)
            total_one = total_one + through_one
            carry = self.w[a] - through_one * zero * (length - a - 1) / length
            if zero:
                total_zero = total_zero + self.w[a] * length / (zero * (length - a - 1))
        return np.where(hot, total_one, total_zero)


def tree_shap(tree: Tree, x: np.ndarray, phi: np.ndarray, goes_true=None) -> None:
    """Add the tree's path-dependent SHAP values for the rows ``x`` (n, m) to ``phi`` (n, m, T).
    ``goes_true(node)``: the rows' sides at a split, if not from comparing ``x``."""
    n = len(phi)
    goes_true = goes_true or (lambda node: tree.goes_true(node, x))

    def walk(node: int, path: Path, zero: float, one: np.ndarray, feature: int) -> None:
        path = path.extend(zero, one, feature)
        if tree.left[node] < 0:
            value = tree.value[node]
            for k in range(1, len(path.d)):
                weight = path.unwound_sum(k) * (path.o[k] - path.z[k])
                phi[:, path.d[k], :] += weight[:, None] * value[None, :]
            return
        split = int(tree.feature[node])
        true = np.asarray(goes_true(node), dtype=np.float64)
        zero_in, one_in = 1.0, np.ones(n)
        if split in path.d[1:]:
            k = path.d.index(split, 1)
            zero_in, one_in = path.z[k], path.o[k]
            path = path.unwind(k)
        cover = tree.cover
        for child, goes in ((tree.left[node], true), (tree.right[node], 1.0 - true)):
            walk(child, path, zero_in * cover[child] / cover[node], one_in * goes, split)

    walk(0, Path([], [], [], []), 1.0, np.ones(n), -1)


class TreeExplainer(Explainer):
    method = "tree_path_dependent"
    exact = True

    def __init__(
        self,
        derived: Features,
        trees: list[Tree],
        base: np.ndarray,
        average: bool,
        background: pd.DataFrame,
        *,
        targets: list,
        kind: str,
        default,
    ):
        super().__init__(derived.columns, targets, kind, default)
        self.derived, self.trees, self.average = derived, trees, average
        self.signature = derived.signature
        self.width = len(derived.owner)
        x = derived.compute(background)
        for tree in trees:
            tree.set_cover(x)
        self.scale = 1.0 / len(trees) if average else 1.0
        expected = np.sum([tree.expected() for tree in trees], axis=0)
        self.base = np.asarray(base, dtype=np.float64) + self.scale * expected
        self.aggregate = derived.aggregation()
        from indb.udfs.explain.leaf_tables import MAX_CODE_SPLITS, CodeTables, LeafTables

        small = [t for t in trees if int((t.left >= 0).sum()) <= MAX_CODE_SPLITS]
        self.codes = CodeTables(small, self.width)
        self.tables = LeafTables([t for t in trees if int((t.left >= 0).sum()) > MAX_CODE_SPLITS], self.width)

    def scores(self, frame: pd.DataFrame) -> Scores:
        x = self.derived.compute(frame)
        phi = np.zeros((len(frame), self.width, len(self.targets)))
        # Memory per row: a few look-ups per leaf, a row of phi per tabled tree.
        cells = self.tables.leaves * 4 + len(self.codes.trees) * phi[0].size
        step = max(64, CHUNK_CELLS // max(1, cells))
        for start in range(0, len(x), step):
            self.codes.add_to(x[start : start + step], phi[start : start + step])
            self.tables.add_to(x[start : start + step], phi[start : start + step])
        for tree in self.tables.walked:
            tree_shap(tree, x, phi)
        contributions = np.einsum("nmt,mk->nkt", phi * self.scale, self.aggregate)
        return Scores(base=self.base, contributions=contributions)


KINDS = {"LOGISTIC": "log-odds", "SOFTMAX": "softmax logit", "SOFTMAX_ZERO": "softmax logit"}


def tree_explainer(graph: Graph, node, signature: Signature, frame: pd.DataFrame) -> Explainer | None:
    """TreeSHAP for a model whose one estimator is ``node``; None when its derived features
    mix input columns or its trees use comparisons TreeSHAP here does not read."""
    attrs = attributes(node)
    if node.op_type == "TreeEnsemble":
        attrs = v3_attributes(attrs)
    regressor = node.op_type != "TreeEnsembleClassifier"
    try:
        trees, count, base, aggregate, transform = read_trees(attrs, regressor)
    except ValueError:
        return None
    if transform not in ("NONE", *KINDS):
        return None
    derived = features(graph.proto, signature, node.input[0])
    if derived.owner is None:
        return None
    if signature.task == "regression":
        if count != 1:
            return None
        targets, kind = ["value"], "value" if transform == "NONE" else KINDS[transform]
    else:
        targets = class_targets(signature.classes, count)
        positive = all(float(w) >= 0 for t in trees for w in t.value.ravel())
        kind = KINDS.get(transform, "probability" if positive else "score")
    return TreeExplainer(
        derived,
        trees,
        base,
        aggregate == "AVERAGE",
        frame,
        targets=targets,
        kind=kind,
        default=default_target(targets),
    )
