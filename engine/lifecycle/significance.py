"""Is a challenger better than the champion? Differences with confidence intervals and tests.

numpy and the standard library only (no scipy at run time: this also runs inside PostgreSQL's
PL/Python), written so that results equal scipy's where scipy has the same test
(tests/test_lifecycle_promotion.py holds them to it):

* ``mcnemar_exact``: paired accuracy (shadow rows, same request ids). The exact McNemar test
  is the two-sided binomial test of the discordant pairs at 1/2 (``scipy.stats.binomtest``);
  the interval of the difference comes from the Clopper-Pearson interval of the share of
  discordant pairs the challenger won (``binomtest(...).proportion_ci()``), so it is exact too.
* ``two_proportions``: unpaired accuracy (split arms). The pooled two-proportion z-test (the
  p-value of ``scipy.stats.chi2_contingency(..., correction=False)``) and a Wald interval.
* ``bootstrap``: any other metric (log loss, ROC AUC, F1, MAE, RMSE, R2), percentile interval of the
  challenger-minus-champion difference over seeded resamples; ``paired`` resamples request
  ids (both arms together), otherwise each arm's rows on their own. Resamples are weights
  (how often each row was drawn), so a metric is computed in O(rows) per resample.

Every difference is challenger minus champion, in the metric's units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np


@dataclass(frozen=True)
class Difference:
    value: float  # challenger - champion
    low: float
    high: float
    p_value: float | None
    method: str


# -- exact binomial -------------------------------------------------------------------------
def _log_pmf(n: int, p: float) -> np.ndarray:
    """log P(X = k) for k = 0..n, X ~ Binomial(n, p), 0 < p < 1."""
    logs = np.log(np.arange(1, n + 1, dtype=float))
    log_factorial = np.concatenate([[0.0], np.cumsum(logs)])
    k = np.arange(n + 1)
    return log_factorial[n] - log_factorial - log_factorial[::-1] + k * math.log(p) + (n - k) * math.log1p(-p)


def _sum_exp(logs: np.ndarray) -> float:
    if logs.size == 0:
        return 0.0
    top = float(logs.max())
    return math.exp(top) * float(np.exp(logs - top).sum())


def binomial_two_sided_half(k: int, n: int) -> float:
    """Two-sided p-value of k successes in n trials at p = 1/2 (scipy's binomtest)."""
    if n == 0 or 2 * k == n:
        return 1.0
    low = min(k, n - k)
    return min(1.0, 2.0 * _sum_exp(_log_pmf(n, 0.5)[: low + 1]))


def clopper_pearson(k: int, n: int, confidence: float) -> tuple[float, float]:
    """Exact interval of a binomial proportion (scipy's ``proportion_ci(method='exact')``)."""
    if n == 0:
        return 0.0, 1.0
    alpha = 1.0 - confidence

    def solve(tail, target: float) -> float:  # the p where tail(p) == target; tail increases with p
        lo, hi = 0.0, 1.0
        for _ in range(80):
            mid = (lo + hi) / 2
            if tail(mid) < target:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    # low: P(X >= k) = alpha/2; high: P(X <= k) = alpha/2, i.e. P(X > k) = 1 - alpha/2
    low = 0.0 if k == 0 else solve(lambda p: _sum_exp(_log_pmf(n, p)[k:]), alpha / 2)
    high = 1.0 if k == n else solve(lambda p: _sum_exp(_log_pmf(n, p)[k + 1 :]), 1 - alpha / 2)
    return low, high


def mcnemar_exact(champion_correct, challenger_correct, confidence: float) -> Difference:
    """Paired accuracy: the same rows, each arm right or wrong."""
    a = np.asarray(champion_correct, dtype=bool)
    b = np.asarray(challenger_correct, dtype=bool)
    if a.shape != b.shape or a.size == 0:
        raise ValueError("mcnemar_exact needs two equally long, non-empty arrays")
    won = int(np.sum(b & ~a))  # challenger right, champion wrong
    lost = int(np.sum(a & ~b))
    discordant, n = won + lost, a.size
    p_value = binomial_two_sided_half(won, discordant)
    if discordant == 0:
        return Difference(0.0, 0.0, 0.0, p_value, "mcnemar_exact")
    low, high = clopper_pearson(won, discordant, confidence)
    share = discordant / n
    return Difference(
        (won - lost) / n, share * (2 * low - 1), share * (2 * high - 1), p_value, "mcnemar_exact"
    )


def two_proportions(champion_correct, challenger_correct, confidence: float) -> Difference:
    """Unpaired accuracy: different rows per arm (split routing)."""
    a = np.asarray(champion_correct, dtype=bool)
    b = np.asarray(challenger_correct, dtype=bool)
    if a.size == 0 or b.size == 0:
        raise ValueError("two_proportions needs rows in both arms")
    n1, n2 = a.size, b.size
    p1, p2 = a.mean(), b.mean()
    pooled = (a.sum() + b.sum()) / (n1 + n2)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    p_value = 1.0 if se0 == 0 else math.erfc(abs(p2 - p1) / se0 / math.sqrt(2))
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    diff = float(p2 - p1)
    return Difference(diff, diff - z * se, diff + z * se, float(p_value), "two_proportion_z")


# -- metrics over weighted rows -------------------------------------------------------------
class Rows:
    """One arm's labeled rows, ready for weighted metrics: ``correct`` (classification),
    ``loss`` (log loss per row, where probabilities exist), ``positive`` (binary: the label is
    the second class) with ``predicted`` (the prediction is) for F1 and ``score`` (its
    probability) for ROC AUC, ``error`` (regression: prediction - label) and ``label`` (R2)."""

    def __init__(
        self, *, correct=None, loss=None, score=None, positive=None, predicted=None, error=None, label=None
    ):
        def array(values, dtype):
            return None if values is None else np.asarray(values, dtype=dtype)

        self.correct, self.loss = array(correct, float), array(loss, float)
        self.error, self.label = array(error, float), array(label, float)
        self.positive, self.predicted = array(positive, bool), array(predicted, bool)
        self._auc, self._cache = None, {}
        if score is not None and positive is not None:
            self._auc = _AucRows(np.asarray(score, dtype=float), np.asarray(positive, dtype=bool))
        arrays = (self.correct, self.loss, self.error, self.label, self.positive, self.predicted)
        sizes = {len(x) for x in arrays if x is not None}
        if self._auc is not None:
            sizes.add(len(self._auc.order))
        if len(sizes) != 1:
            raise ValueError("an arm's arrays must all have one length")
        self.n = sizes.pop()

    def metric(self, name: str, weights: np.ndarray | None = None) -> float:
        w = np.ones(self.n) if weights is None else weights
        total = w.sum()
        if name == "accuracy":
            return _dot(w, self.correct) / total
        if name == "log_loss":
            return _dot(w, self.loss) / total
        if name == "mae":
            return _dot(w, self._derived("absolute", lambda: np.abs(self.error))) / total
        if name == "rmse":
            return math.sqrt(_dot(w, self._derived("squared", lambda: self.error**2)) / total)
        if name == "roc_auc":
            return self._auc.value(w)
        if name == "f1":  # scikit-learn's binary F1 (0 when there is no positive at all)
            tp = _dot(w, self._derived("tp", lambda: (self.predicted & self.positive).astype(float)))
            wrong = _dot(w, self._derived("wrong", lambda: (self.predicted != self.positive).astype(float)))
            return 2 * tp / (2 * tp + wrong) if tp + wrong else 0.0
        if name == "r2":
            mean = _dot(w, self.label) / total
            spread = _dot(w, (self.label - mean) ** 2)
            squared = self._derived("squared", lambda: self.error**2)
            return 1 - _dot(w, squared) / spread if spread > 0 else math.nan
        raise ValueError(f"unknown metric {name!r}")

    def _derived(self, name: str, make) -> np.ndarray:
        """A per-row array computed once for every resample."""
        found = self._cache.get(name)
        if found is None:
            found = self._cache[name] = make()
        return found

    def has(self, name: str) -> bool:
        if name == "roc_auc":
            return self._auc is not None and self._auc.defined
        if name == "f1":
            return self.positive is not None and self.predicted is not None
        if name == "r2":
            return self.error is not None and self.label is not None and np.ptp(self.label) > 0
        needs = {"accuracy": self.correct, "log_loss": self.loss, "mae": self.error, "rmse": self.error}
        return needs.get(name) is not None


def _dot(weights: np.ndarray, values: np.ndarray) -> float:
    # einsum, not ``@``: BLAS threads cost milliseconds per call on a busy machine
    return float(np.einsum("i,i->", weights, values))


class _AucRows:
    """ROC AUC as the Mann-Whitney statistic (ties count one half), weighted: the scores are
    sorted once, each resample only re-weights the tie groups."""

    def __init__(self, score: np.ndarray, positive: np.ndarray):
        self.order = np.argsort(score, kind="mergesort")
        ordered = score[self.order]
        starts = np.r_[True, ordered[1:] != ordered[:-1]]
        self.group = np.cumsum(starts) - 1
        self.groups = int(self.group[-1]) + 1 if len(ordered) else 0
        self.positive = positive[self.order]
        self.defined = bool(self.positive.any() and (~self.positive).any())

    def value(self, weights: np.ndarray) -> float:
        w = weights[self.order]
        pos = np.bincount(self.group, weights=w * self.positive, minlength=self.groups)
        neg = np.bincount(self.group, weights=w * ~self.positive, minlength=self.groups)
        total_pos, total_neg = pos.sum(), neg.sum()
        if total_pos == 0 or total_neg == 0:
            return math.nan
        below = np.cumsum(neg) - neg
        return float((pos * (below + 0.5 * neg)).sum() / (total_pos * total_neg))


def bootstrap(
    metric: str,
    champion: Rows,
    challenger: Rows,
    *,
    paired: bool,
    confidence: float,
    resamples: int = 1000,
    seed: int = 0,
) -> Difference:
    """Percentile interval of challenger - champion over ``resamples`` seeded resamples.
    ``paired``: row i of both arms is the same request (drawn together). The p-value is twice
    the share of resampled differences on the far side of zero (at most 1)."""
    return bootstrap_many(
        [metric], champion, challenger, paired=paired, confidence=confidence, resamples=resamples, seed=seed
    )[metric]


def _draw(rng: np.random.Generator, n: int) -> np.ndarray:
    """One resample of n rows with replacement, as how often each row was drawn."""
    return np.bincount(rng.integers(0, n, n), minlength=n).astype(float)


def bootstrap_many(
    metrics, champion: Rows, challenger: Rows, *, paired: bool, confidence: float, resamples: int, seed: int
) -> dict[str, Difference]:
    """:func:`bootstrap` of several metrics over the same resamples (drawn once)."""
    if paired and champion.n != challenger.n:
        raise ValueError("paired arms must have the same rows")
    if champion.n == 0 or challenger.n == 0:
        raise ValueError("bootstrap needs rows in both arms")
    rng = np.random.default_rng(seed)
    diffs = np.empty((len(metrics), resamples))
    for i in range(resamples):
        w1 = np.bincount(rng.integers(0, champion.n, champion.n), minlength=champion.n).astype(float)
        w2 = w1
        if not paired:
            w2 = np.bincount(rng.integers(0, challenger.n, challenger.n), minlength=challenger.n).astype(
                float
            )
        for k, metric in enumerate(metrics):
            diffs[k, i] = challenger.metric(metric, w2) - champion.metric(metric, w1)
    method = "paired_bootstrap" if paired else "bootstrap"
    alpha = 1.0 - confidence
    result = {}
    for k, metric in enumerate(metrics):
        observed = challenger.metric(metric) - champion.metric(metric)
        finite = diffs[k][np.isfinite(diffs[k])]
        if finite.size == 0:
            result[metric] = Difference(observed, math.nan, math.nan, None, method)
            continue
        low, high = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
        p_value = min(1.0, 2.0 * min(float(np.mean(finite <= 0)), float(np.mean(finite >= 0))))
        result[metric] = Difference(float(observed), float(low), float(high), p_value, method)
    return result


# -- verdicts -------------------------------------------------------------------------------
HIGHER_IS_BETTER = {
    "accuracy": True,
    "roc_auc": True,
    "f1": True,
    "log_loss": False,
    "mae": False,
    "rmse": False,
    "r2": True,
}


def verdict(metric: str, difference: Difference, labeled: int, *, min_labels: int, confidence: float) -> str:
    """``too few labels`` under ``min_labels``; else ``better``/``worse`` when the test rejects
    no difference at ``confidence`` (accuracy: its p-value; bootstrap: the interval excludes
    zero), else ``no difference``."""
    if labeled < min_labels:
        return "too few labels"
    if difference.method in ("mcnemar_exact", "two_proportion_z"):
        significant = difference.p_value is not None and difference.p_value < 1 - confidence
    else:
        significant = not (math.isnan(difference.low) or difference.low <= 0 <= difference.high)
    if not significant or difference.value == 0:
        return "no difference"
    up = difference.value > 0
    return "better" if up == HIGHER_IS_BETTER[metric] else "worse"


def improvement(metric: str, difference: Difference) -> tuple[float, float]:
    """The difference turned so that positive is better: (point, lower end of its interval)."""
    if HIGHER_IS_BETTER[metric]:
        return difference.value, difference.low
    return -difference.value, -difference.high
