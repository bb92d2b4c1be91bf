"""Holdout metrics of a model version, computed with scikit-learn's own functions.

Classification: ``accuracy``, ``roc_auc``, ``log_loss``, ``f1``; regression: ``mae``, ``rmse``,
``r2``. ``auc`` is accepted for ``roc_auc``. A metric that is undefined on the rows (ROC AUC
with one class present, R2 with one row) is None rather than an error: a holdout can be small.
With two classes, ROC AUC and F1 take the second class (in the model's class order) as the
positive one, as scikit-learn does for ``predict_proba[:, 1]``; with more, ROC AUC is one-vs-rest
(macro) and F1 is macro-averaged.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from indb.errors import IndbError

CLASSIFICATION = ("accuracy", "roc_auc", "log_loss", "f1")
REGRESSION = ("mae", "rmse", "r2")
LOWER_IS_BETTER = frozenset({"log_loss", "mae", "rmse"})
ALIASES = {"auc": "roc_auc", "logloss": "log_loss", "f1_score": "f1", "rsquared": "r2"}


class MetricError(IndbError, ValueError):
    """A metric name that does not exist for the task."""


def metric_name(name: object, task: str | None = None) -> str:
    """The canonical name of a metric (``auc`` -> ``roc_auc``), checked against the task."""
    if not isinstance(name, str):
        raise MetricError(f"metric must be a name like 'roc_auc' or 'rmse', got {name!r}")
    key = ALIASES.get(name.strip().lower(), name.strip().lower())
    allowed = {"classification": CLASSIFICATION, "regression": REGRESSION}.get(
        task or "", CLASSIFICATION + REGRESSION
    )
    if key not in allowed:
        import difflib

        names = [*allowed, *(a for a, m in ALIASES.items() if m in allowed)]
        near = [ALIASES.get(n, n) for n in difflib.get_close_matches(key, names, n=1)]
        hint = f"; did you mean {near[0]!r}?" if near else ""
        what = f"{task} " if task else ""
        raise MetricError(f"unknown {what}metric {name!r}: use one of {', '.join(allowed)}{hint}")
    return key


def better(metric: str, value: float | None, than: float | None, by: float = 0.0) -> bool:
    """Whether ``value`` beats ``than`` by at least ``by`` on ``metric``."""
    if value is None:
        return False
    if than is None:
        return True
    gain = than - value if metric in LOWER_IS_BETTER else value - than
    return gain >= by


def _finite(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _codes(values, labels: list[str]) -> np.ndarray:
    """Class positions of ``values`` (compared as text); -1 for a value not among ``labels``.
    scikit-learn's metrics run far faster on integers than on arrays of strings."""
    import pandas as pd

    text = pd.Series(np.asarray(values, dtype=object).ravel()).astype(str)
    return pd.Categorical(text, categories=labels).codes.astype(np.int64)


def classification(y_true, y_pred, proba: np.ndarray | None, classes) -> dict[str, float | None]:
    from sklearn import metrics

    labels = [str(c) for c in classes]
    positions = list(range(len(labels)))
    truth, predicted = _codes(y_true, labels), _codes(y_pred, labels)
    known = bool((truth >= 0).all())
    result: dict[str, float | None] = {"accuracy": float(np.mean(truth == predicted))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if len(labels) == 2:
            result["f1"] = float(metrics.f1_score(truth, predicted, pos_label=1, zero_division=0))
        else:
            result["f1"] = float(
                metrics.f1_score(truth, predicted, labels=positions, average="macro", zero_division=0)
            )
        result["roc_auc"] = result["log_loss"] = None
        if proba is not None and len(np.unique(truth)) > 1:
            proba = np.asarray(proba, dtype=np.float64)
            if len(labels) == 2:
                result["roc_auc"] = _finite(metrics.roc_auc_score(truth == 1, proba[:, 1]))
            elif known:
                try:  # undefined when a class has no holdout row
                    result["roc_auc"] = _finite(
                        metrics.roc_auc_score(truth, proba, multi_class="ovr", labels=positions)
                    )
                except ValueError:
                    pass
        if proba is not None and known:
            # float32 ONNX probabilities may sum to 1 +- 1e-7: scikit-learn would warn
            proba = np.asarray(proba, dtype=np.float64)
            proba = proba / proba.sum(axis=1, keepdims=True)
            result["log_loss"] = _finite(metrics.log_loss(truth, proba, labels=positions))
    return {k: result[k] for k in CLASSIFICATION}


def regression(y_true, y_pred) -> dict[str, float | None]:
    from sklearn import metrics

    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64).ravel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r2 = metrics.r2_score(y_true, y_pred) if len(y_true) > 1 else float("nan")
    return {
        "mae": float(metrics.mean_absolute_error(y_true, y_pred)),
        "rmse": float(math.sqrt(metrics.mean_squared_error(y_true, y_pred))),
        "r2": _finite(r2),
    }


def compute(task: str, y_true, y_pred, proba=None, classes=None) -> dict[str, float | None]:
    """Every metric of ``task`` on one set of rows."""
    if len(y_true) == 0:
        raise MetricError("no holdout rows to compute metrics on")
    if task == "classification":
        return classification(y_true, y_pred, proba, classes)
    return regression(y_true, y_pred)
