"""Linear models: exact Shapley values under feature independence.

For a raw output ``f(x) = sum_j w_j x'_j + b`` over derived features ``x'``, each computed
from one input column, the Shapley value of column ``c`` with feature independence is
``sum_{j from c} w_j (x'_j - E[x'_j])`` and the base value is ``f(E[x'])``, so
base + contributions = f(x) exactly. ``E`` is the mean over the background sample.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from indb.udfs.explain.base import Explainer, Scores
from indb.udfs.explain.graph import Features


class LinearExplainer(Explainer):
    method = "linear"
    exact = True

    def __init__(
        self,
        derived: Features,
        weights: np.ndarray,
        intercepts: np.ndarray,
        background: pd.DataFrame,
        *,
        targets: list,
        kind: str,
        default,
    ):
        """``weights``: (m, T) over the m derived features; ``intercepts``: (T,)."""
        super().__init__(derived.columns, targets, kind, default)
        self.derived = derived
        self.signature = derived.signature
        self.weights = np.asarray(weights, dtype=np.float64)
        self.intercepts = np.asarray(intercepts, dtype=np.float64).reshape(-1)
        self.mean = derived.compute(background).mean(axis=0)
        self.aggregate = derived.aggregation()

    def scores(self, frame: pd.DataFrame) -> Scores:
        centered = self.derived.compute(frame) - self.mean  # (n, m)
        per_derived = centered[:, :, None] * self.weights[None, :, :]  # (n, m, T)
        contributions = np.einsum("nmt,mk->nkt", per_derived, self.aggregate)
        base = self.mean @ self.weights + self.intercepts
        return Scores(base=base, contributions=contributions)
