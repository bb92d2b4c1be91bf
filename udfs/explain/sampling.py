"""Any model: Shapley values of the input columns estimated by sampling permutations.

For a row x, a permutation pi of the columns and a background row z, walk from z to x
setting x's columns in the order of pi; the change of the model's raw output at each step
is that column's marginal contribution (Strumbelj and Kononenko, 2014). Averaged over
permutations and background rows it estimates the interventional Shapley value with the
background as the reference distribution.

* Seeded and reproducible: the background rows, the permutations and the schedule pairing
  them are drawn once, from ``seed``, and shared by every row, so a row's explanation does
  not depend on the batch it is explained in.
* Every background row is used equally often and each walk's steps add up to
  ``f(x) - f(z)``, so base (the mean output over the background rows) plus the
  contributions equals the raw output exactly, not only in expectation.
* Each permutation is paired with its reverse (antithetic sampling, less variance); the
  per-row ``error`` is the largest standard error over the row's contributions, from the
  spread of the pair means within each background row (a stratified estimate; with one
  pair per background row, the plain spread of the pairs, which overstates it).

The raw output of a black box: the value (regression); for classifiers with probabilities,
the log-odds of the positive class (two classes) or the log-probability of each class
(more); for classifiers that give scores (an SVM without probabilities), the scores: the
positive class's decision function for two classes, one score per class for more.
"""

from __future__ import annotations

import numpy as np
import onnx
import pandas as pd

from indb.udfs import convert, sessions
from indb.udfs.explain.base import Explainer, ExplainError, Scores, default_target
from indb.udfs.signature import Signature

TINY = 1e-12  # probabilities are clipped to [TINY, 1] before taking logs
CHUNK_EVALUATIONS = 200_000  # model rows per onnxruntime call


class SamplingExplainer(Explainer):
    method = "sampling"
    exact = False

    def __init__(
        self,
        proto: onnx.ModelProto,
        signature: Signature,
        background: pd.DataFrame,
        *,
        samples: int = 64,
        seed: int = 0,
        background_rows: int = 32,
    ):
        """``samples``: permutation pairs per row (rounded up to a multiple of the background
        rows used); ``background_rows``: background rows walked from (a seeded subset)."""
        if not isinstance(samples, int) or samples < 2:
            raise ExplainError(f"samples must be an integer of at least 2, got {samples!r}")
        if not isinstance(background_rows, int) or background_rows < 1:
            raise ExplainError(f"background_rows must be a positive integer, got {background_rows!r}")
        self.session = sessions.build(proto.SerializeToString())
        self.signature = signature
        rng = np.random.default_rng(seed)
        take = min(background_rows, len(background))
        chosen = np.sort(rng.choice(len(background), size=take, replace=False))
        self.background = background.iloc[chosen].reset_index(drop=True)
        targets, kind = self._outputs()
        super().__init__(signature.columns, targets, kind, default_target(targets))
        pairs = -(-samples // take) * take
        width = len(self.features)
        self.order = np.argsort(rng.random((pairs, width)), axis=1)  # one permutation per pair
        self.partner = np.arange(pairs) % take  # background row of each pair
        self.base = self.raw(self.background).mean(axis=0)

    # -- the black box ---------------------------------------------------------------------------
    def _outputs(self) -> tuple[list, str]:
        sig = self.signature
        if sig.task == "regression":
            self.transform = "value"
            return ["value"], "value"
        scores = self._run(self.background)
        classes = list(sig.classes)
        probabilities = (
            scores.shape[1] == len(classes)
            and np.all((scores >= -1e-6) & (scores <= 1 + 1e-6))
            and np.allclose(scores.sum(axis=1), 1.0, atol=1e-4)
        )
        if probabilities and len(classes) == 2:
            self.transform = "log-odds"
            return [classes[1]], "log-odds"
        if probabilities:
            self.transform = "log-probability"
            return classes, "log-probability"
        self.transform = "score"
        if scores.shape[1] == 1:
            return [classes[-1]], "score"
        if scores.shape[1] == 2 and len(classes) == 2:
            # Two scores for two classes need not be one per class (skl2onnx's binary SVM
            # gives (margin, -margin)): keep the column that is positive where the model
            # predicts the second class.
            (labels,) = self.session.run([sig.prediction_output], convert.feeds(sig, self.background))
            second = np.asarray(labels).reshape(-1).astype(str) == str(classes[1])
            agree = [np.mean((scores[:, j] > 0) == second) for j in (0, 1)]
            self.transform = ("column", int(np.argmax(agree)))
            return [classes[1]], "decision function"
        if scores.shape[1] != len(classes):
            raise ExplainError(f"the model gives {scores.shape[1]} scores for {len(classes)} classes")
        return classes, "score"

    def _run(self, frame: pd.DataFrame) -> np.ndarray:
        sig = self.signature
        name = sig.prediction_output if sig.task == "regression" else sig.probability_output
        (values,) = self.session.run([name], convert.feeds(sig, frame))
        return np.asarray(values, dtype=np.float64).reshape(len(frame), -1)

    def raw(self, frame: pd.DataFrame) -> np.ndarray:
        """The raw outputs (n, T) explained for ``frame``."""
        values = self._run(frame)
        if self.transform == "log-odds":
            p = np.clip(values, TINY, 1.0)
            return (np.log(p[:, 1]) - np.log(p[:, 0]))[:, None]
        if self.transform == "log-probability":
            return np.log(np.clip(values, TINY, 1.0))
        if isinstance(self.transform, tuple):
            return values[:, self.transform[1], None]
        return values

    # -- sampling --------------------------------------------------------------------------------
    def scores(self, frame: pd.DataFrame) -> Scores:
        n, width = len(frame), len(self.features)
        walks = 2 * len(self.order)
        per_row = walks * (width + 1)
        step = max(1, CHUNK_EVALUATIONS // per_row)
        contributions = np.zeros((n, width, len(self.targets)))
        error = np.zeros((n, len(self.targets)))
        for start in range(0, n, step):
            part = frame.iloc[start : start + step].reset_index(drop=True)
            contributions[start : start + len(part)], error[start : start + len(part)] = self._sample(part)
        return Scores(base=self.base, contributions=contributions, error=error)

    def _walks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each walk (the permutations, then their reverses) and step: which columns come
        from x (walks, steps, columns); the background row and the column order of each walk."""
        order = np.concatenate([self.order, self.order[:, ::-1]])
        walks, width = order.shape
        rank = np.empty_like(order)
        rank[np.arange(walks)[:, None], order] = np.arange(width)[None, :]
        from_x = rank[:, None, :] < np.arange(width + 1)[None, :, None]
        return from_x, np.concatenate([self.partner, self.partner]), order

    def _sample(self, part: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        from_x, partner, order = self._walks()
        walks, steps, width = from_x.shape
        n = len(part)
        columns = {}
        for c, name in enumerate(self.features):
            x = part[name].to_numpy()[:, None, None]
            z = self.background[name].to_numpy()[partner][None, :, None]
            columns[name] = np.where(from_x[None, :, :, c], x, z).reshape(-1)
        evaluated = pd.DataFrame(columns)
        for spec in self.signature.inputs:  # np.where over object columns keeps the model's types
            evaluated[spec.name] = evaluated[spec.name].astype(part[spec.name].dtype)
        values = self.raw(evaluated).reshape(n, walks, steps, -1)
        marginal = np.diff(values, axis=2)  # (n, walks, width, T): the column set at each step
        per_column = np.zeros_like(marginal)
        walk_index = np.arange(walks)[:, None]
        per_column[:, walk_index, order, :] = marginal
        pairs = walks // 2
        pair_means = (per_column[:, :pairs] + per_column[:, pairs:]) / 2  # (n, pairs, width, T)
        estimate = pair_means.mean(axis=1)
        return estimate, self._standard_error(pair_means).max(axis=1)

    def _standard_error(self, pair_means: np.ndarray) -> np.ndarray:
        """(n, width, T): pair p walks from background row p mod B, every row equally often,
        so the estimate is a stratified mean: its variance is the within-row variances'
        mean over B, divided by B * (pairs per row). With one pair per row there is no
        within-row spread to measure, and the plain (larger) pair variance is used."""
        n, pairs = pair_means.shape[:2]
        rows = len(self.background)
        repeats = pairs // rows
        if repeats < 2:
            return pair_means.std(axis=1, ddof=1) / np.sqrt(pairs)
        strata = pair_means.reshape(n, repeats, rows, *pair_means.shape[2:])
        within = strata.var(axis=1, ddof=1).mean(axis=1)  # (n, width, T)
        return np.sqrt(within / (rows * repeats))
