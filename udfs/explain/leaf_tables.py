"""TreeSHAP as table look-ups: the same values as :func:`trees.tree_shap`, computed per leaf
once and then gathered for every row.

In the path-dependent algorithm a row enters a leaf's sum only through its "one"
fractions: for each distinct feature on the leaf's path, whether the row takes the leaf's
side at every node splitting on that feature (1) or not (0). With k distinct features
there are 2**k such patterns, so each leaf's contribution to each of its features is a
table of 2**k numbers, computed once with the path algorithm run over the patterns
instead of rows. Explaining a row is then: the side it takes at every split (one
comparison per node), the pattern of each leaf (bit operations) and a look-up; no
per-row recursion. Leaves are grouped by k so the tables need no padding. Trees whose
paths hold more than ``MAX_PATTERN_FEATURES`` distinct features keep the walk.

Small trees (boosting's depth 3, LightGBM's 8 leaves) go further: a row's SHAP values in a
tree depend only on its sides at the tree's s splits, so the whole tree is one table of
2**s rows (:class:`CodeTables`): per row and tree, one code (s bits) and one look-up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from indb.udfs.explain.trees import Path, Tree, tree_shap

MAX_PATTERN_FEATURES = 10  # 2**10 patterns per leaf
MAX_CODE_SPLITS = 10  # trees with at most this many splits are tabled whole (2**10 codes)
MODE_CODES = {"BRANCH_LEQ": 0, "BRANCH_LT": 1, "BRANCH_GTE": 2, "BRANCH_GT": 3}
COMPARE = (np.less_equal, np.less, np.greater_equal, np.greater)  # in MODE_CODES order


@dataclass
class Group:
    """The leaves whose paths hold ``k`` distinct features."""

    nodes: np.ndarray  # (L, D) split indexes along each leaf's path (padded with 0)
    side: np.ndarray  # (L, D) True where the path takes the true branch
    bit: np.ndarray  # (L, D) 1 << the split's distinct-feature slot; 0 for padding
    table: np.ndarray  # (k, T, L * 2**k) contribution per slot, target and (leaf, pattern)
    features: np.ndarray  # (k, m, L) 1 where slot j of leaf l is derived feature i
    leaves: int
    k: int


class Splits:
    """Every split of a list of trees, to compare all rows with all splits at once."""

    def __init__(self):
        self.feature, self.threshold, self.mode, self.missing = [], [], [], []

    def add(self, tree: Tree, node: int) -> int:
        self.feature.append(int(tree.feature[node]))
        self.threshold.append(float(tree.threshold[node]))
        self.mode.append(MODE_CODES[tree.mode[node]])
        self.missing.append(bool(tree.missing_true[node]))
        return len(self.feature) - 1

    def freeze(self) -> None:
        self.feature = np.array(self.feature, dtype=np.int64)
        self.threshold = np.array(self.threshold, dtype=np.float64)
        self.mode = np.array(self.mode, dtype=np.int64)
        self.missing = np.array(self.missing, dtype=bool)
        self.by_mode = [np.flatnonzero(self.mode == code) for code in range(len(COMPARE))]

    def sides(self, x: np.ndarray) -> np.ndarray:
        """(splits, n): True where a row takes the true branch (onnxruntime's rules)."""
        column = np.ascontiguousarray(x.T)[self.feature]
        threshold = self.threshold[:, None]
        with np.errstate(invalid="ignore"):
            if all(len(i) in (0, len(self.mode)) for i in self.by_mode):  # one kind of comparison
                result = COMPARE[int(self.mode[0])](column, threshold)
            else:
                result = np.empty(column.shape, dtype=bool)
                for compare, splits in zip(COMPARE, self.by_mode, strict=True):
                    result[splits] = compare(column[splits], threshold[splits])
        if self.missing.any():
            result |= np.isnan(column) & self.missing[:, None]
        return result


def _leaf_table(tree: Tree, path: list[tuple[int, bool]], leaf: int, slots: dict[int, int]) -> np.ndarray:
    """(2**k, k, T): the path algorithm over every pattern of one leaf."""
    k = len(slots)
    patterns = np.arange(2**k)
    bits = ((patterns[:, None] >> np.arange(k)[None, :]) & 1).astype(np.float64)
    walk = Path([], [], [], []).extend(1.0, np.ones(2**k), -1)
    cover = tree.cover
    for node, side in path:
        feature = int(tree.feature[node])
        child = tree.left[node] if side else tree.right[node]
        zero, one = 1.0, np.ones(2**k)
        if feature in walk.d[1:]:
            position = walk.d.index(feature, 1)
            zero, one = walk.z[position], walk.o[position]
            walk = walk.unwind(position)
        walk = walk.extend(zero * cover[child] / cover[node], one * bits[:, slots[feature]], feature)
    table = np.zeros((2**k, k, tree.value.shape[1]))
    for position in range(1, len(walk.d)):
        weight = walk.unwound_sum(position) * (walk.o[position] - walk.z[position])
        table[:, slots[walk.d[position]], :] = weight[:, None] * tree.value[leaf][None, :]
    return table


def _paths(tree: Tree):
    """(leaf, [(node, takes the true branch), ...]) for every leaf, root first."""
    stack = [(0, [])]
    while stack:
        node, path = stack.pop()
        if tree.left[node] < 0:
            yield node, path
            continue
        stack.append((tree.right[node], [*path, (node, False)]))
        stack.append((tree.left[node], [*path, (node, True)]))


class LeafTables:
    """The look-up tables of a list of trees (covers set); ``walked``: trees left to the walk."""

    def __init__(self, trees: list[Tree], width: int):
        self.splits = Splits()
        self.width = width
        self.walked: list[Tree] = []
        by_k: dict[int, list] = {}
        for tree in trees:
            leaves = list(_paths(tree))
            if any(len({int(tree.feature[n]) for n, _ in p}) > MAX_PATTERN_FEATURES for _, p in leaves):
                self.walked.append(tree)
                continue
            index = {}
            for leaf, path in leaves:
                if not path:  # a tree that is one leaf: a constant, no contributions
                    continue
                slots: dict[int, int] = {}
                for node, _ in path:
                    slots.setdefault(int(tree.feature[node]), len(slots))
                    if node not in index:
                        index[node] = self.splits.add(tree, node)
                entry = (
                    [index[n] for n, _ in path],
                    [s for _, s in path],
                    [slots[int(tree.feature[n])] for n, _ in path],
                    _leaf_table(tree, path, leaf, slots),
                    list(slots),
                )
                by_k.setdefault(len(slots), []).append(entry)
        self.splits.freeze()
        self.groups = [self._group(entries) for _, entries in sorted(by_k.items())]
        self.leaves = sum(g.leaves for g in self.groups)

    def _group(self, entries: list) -> Group:
        depth = max(1, max(len(e[0]) for e in entries))

        def pad(values, fill, dtype):
            return np.array([v + [fill] * (depth - len(v)) for v in values], dtype=dtype)

        leaves, k = len(entries), len(entries[0][4])
        features = np.zeros((k, self.width, leaves))
        for leaf, entry in enumerate(entries):
            for j, feature in enumerate(entry[4]):
                features[j, feature, leaf] = 1.0
        slot = pad([e[2] for e in entries], -1, np.int64)
        table = np.stack([e[3] for e in entries])  # (L, 2**k, k, T)
        return Group(
            nodes=pad([e[0] for e in entries], 0, np.int64),
            side=pad([e[1] for e in entries], True, bool),
            bit=np.where(slot < 0, 0, np.left_shift(1, np.maximum(slot, 0))).astype(np.int32),
            table=np.ascontiguousarray(table.transpose(2, 3, 0, 1).reshape(k, table.shape[3], -1)),
            features=features,
            leaves=leaves,
            k=k,
        )

    def add_to(self, x: np.ndarray, phi: np.ndarray) -> None:
        """Add the tables' SHAP values for rows ``x`` (n, m) to ``phi`` (n, m, T).

        Arrays run (leaves, rows): each step gathers whole rows of contiguous memory."""
        if not len(self.splits.feature):
            return
        sides = self.splits.sides(x)
        n = len(x)
        for group in self.groups:
            pattern = np.full((group.leaves, n), (1 << group.k) - 1, dtype=np.int32)
            for d in range(group.nodes.shape[1]):  # a failed split clears its feature's bit
                failed = sides[group.nodes[:, d]] != group.side[:, d, None]
                pattern &= ~(failed * group.bit[:, d, None])
            pattern += (np.arange(group.leaves, dtype=np.int32) << group.k)[:, None]
            for j in range(group.k):
                for t in range(phi.shape[2]):
                    values = group.table[j, t].take(pattern)  # (L, n)
                    phi[:, :, t] += (group.features[j] @ values).T


class CodeTables:
    """Whole trees as tables: the SHAP values for every combination of sides at their splits."""

    def __init__(self, trees: list[Tree], width: int):
        self.trees = trees
        self.splits = Splits()
        self.groups = []  # (splits per tree s, split indexes (trees, s), tables (trees * 2**s, m * T))
        by_size: dict[int, list] = {}
        for tree in trees:
            internal = [int(n) for n in np.flatnonzero(tree.left >= 0)]
            if internal:
                by_size.setdefault(len(internal), []).append((tree, internal))
        for size, members in sorted(by_size.items()):
            codes = np.arange(2**size)
            nodes, tables = [], []
            for tree, internal in members:
                bit = {node: i for i, node in enumerate(internal)}
                phi = np.zeros((2**size, width, tree.value.shape[1]))
                tree_shap(
                    tree, None, phi, goes_true=lambda node, bit=bit, codes=codes: (codes >> bit[node]) & 1
                )
                nodes.append([self.splits.add(tree, node) for node in internal])
                tables.append(phi.reshape(2**size, -1))
            self.groups.append((size, np.array(nodes, dtype=np.int64), np.concatenate(tables)))
        self.splits.freeze()

    def add_to(self, x: np.ndarray, phi: np.ndarray) -> None:
        """Add the trees' SHAP values for rows ``x`` (n, m) to ``phi`` (n, m, T)."""
        if not self.groups:
            return
        sides = self.splits.sides(x)
        total = np.zeros((len(x), phi.shape[1] * phi.shape[2]))
        for size, nodes, table in self.groups:
            code = np.zeros((len(nodes), len(x)), dtype=np.int64)
            for i in range(size):
                code |= sides[nodes[:, i]].astype(np.int64) << i
            code += (np.arange(len(nodes)) << size)[:, None]
            total += table[code].sum(axis=0)
        phi += total.reshape(phi.shape)
