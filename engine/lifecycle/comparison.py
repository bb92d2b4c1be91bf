"""Champion against challengers on the labeled rows of one deployment.

A deployment's ``<table>_predictions`` holds the champion's rows (``role = 'champion'``) and
its challengers' (``role = 'challenger'``; ``served`` true for a split arm, whose rows the
application saw, false for a shadow). Joined with the latest label of each request id, every
arm (version, role, mode) gets its metrics per window: accuracy, and log loss and ROC AUC
where probabilities exist (binary ROC AUC) and binary F1 for classifiers; MAE, RMSE and R2
for regressors (the names of the training runs and the leaderboard). A
challenger's difference to the champion is taken on the same request ids for a shadow
(paired: exact McNemar for accuracy, paired bootstrap for the rest) and on the champion's
rows of the same period for a split (unpaired: two-proportion z, bootstrap); see
:mod:`indb.lifecycle.significance`.

Why a table and not a view: a view over every deployment would have to union per-deployment
tables that come and go, and neither an exact binomial test nor a bootstrap is SQL. So each
evaluation (``db.evaluate_challengers``, the job action of the same name, or
``db.challenger_comparison(table, store=True)``) appends its rows to
``indb.challenger_comparisons``; the view ``indb.challenger_comparison`` shows the latest
evaluation of every deployment, and promotions quote those rows as their evidence.

Windows are measured back from the newest labeled prediction (not the wall clock), so a
replayed or simulated stream compares the same way: ``all`` and e.g. ``7 days``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd

from indb import deployments, identifiers, registry
from indb.backends.base import Backend
from indb.errors import IndbError, NotFoundError
from indb.identifiers import Quoted
from indb.lifecycle import significance
from indb.lifecycle.significance import Rows
from indb.sql import statement

# The names of indb.lifecycle.metrics (training runs, the leaderboard).
CLASSIFICATION_METRICS = ("accuracy", "roc_auc", "log_loss", "f1")
REGRESSION_METRICS = ("mae", "rmse", "r2")
_WINDOW = re.compile(r"^\s*(\d+)\s*(minute|hour|day|week)s?\s*$")


@dataclass(frozen=True)
class Settings:
    """How to compare: the confidence of intervals and verdicts, the labeled rows an arm needs
    before it gets a verdict, bootstrap resamples and seed, and the windows."""

    confidence: float = 0.95
    min_labels: int = 100
    resamples: int = 1000
    seed: int = 0
    windows: tuple[str, ...] = ("all", "7 days")

    def __post_init__(self):
        if not 0.5 <= self.confidence < 1:
            raise IndbError(f"confidence must be at least 0.5 and below 1, got {self.confidence!r}")
        if isinstance(self.min_labels, bool) or not isinstance(self.min_labels, int) or self.min_labels < 1:
            raise IndbError(f"min_labels must be a whole number of at least 1, got {self.min_labels!r}")
        if not isinstance(self.resamples, int) or self.resamples < 100:
            raise IndbError(f"resamples must be a whole number of at least 100, got {self.resamples!r}")
        if isinstance(self.windows, str) or not self.windows:
            raise IndbError(f"windows must be a list such as ['all', '7 days'], got {self.windows!r}")
        for window in self.windows:
            window_length(window)


def window_length(text: str) -> timedelta | None:
    """``all`` -> None, ``'7 days'`` -> 7 days; anything else is a clear error."""
    if text == "all":
        return None
    found = _WINDOW.match(text) if isinstance(text, str) else None
    if not found or int(found[1]) == 0:
        raise IndbError(f"window {text!r}: use 'all' or '<n> minutes|hours|days|weeks', e.g. '7 days'")
    return timedelta(**{found[2] + "s": int(found[1])})


@dataclass(frozen=True)
class DeploymentInfo:
    table: str
    model: str
    version: int
    runtime: str
    mode: str
    features: str | None


def deployment_info(backend: Backend, table: str) -> DeploymentInfo:
    table = identifiers.table_name(table)
    found = backend.rows(statement("comparison", "deployment_row", backend.dialect), {"table_name": table})
    if not found:
        raise NotFoundError("deployment on table", table, deployments.deployed_tables(backend))
    model, version, runtime, mode, features = found[0]
    return DeploymentInfo(table, model, int(version), runtime, mode, features)


def has_catalog_table(backend: Backend, name: str) -> bool:
    ((count,),) = backend.rows(statement("comparison", "has_catalog_table", backend.dialect), {"name": name})
    return bool(count)


def labeled_rows(backend: Backend, dep: DeploymentInfo) -> pd.DataFrame:
    """Every prediction of the deployment's model that has a label, with it."""
    q = backend.quote
    predictions = f"{dep.table}_predictions"
    columns = backend.table_columns(predictions) or {}
    probabilities = [c for c in columns if c.startswith("probability_")]
    name = "labeled_predictions" if {"role", "served"} <= set(columns) else "labeled_champion_predictions"
    sql = backend.render(
        "comparison",
        name,
        predictions=q(predictions),
        ground_truth=q(f"{dep.table}_ground_truth"),
        probability_columns=Quoted("".join(f"p.{q(c)}, " for c in probabilities)),
    )
    frame = backend.query(sql, {"model": dep.model})
    # one order on every backend: the bootstrap's resamples index rows by position
    return frame.sort_values(["id", "role", "model_version"], kind="stable", ignore_index=True)


# -- one arm's rows as arrays ---------------------------------------------------------------
def arm_rows(frame: pd.DataFrame, classes: tuple | None) -> Rows:
    """Arrays for the metrics: a classifier's correctness, per-row log loss and binary AUC
    score (from its ``probability_<class>`` columns, when all are filled), a regressor's error."""
    if classes is None:
        label = pd.to_numeric(frame.label).to_numpy(float)
        return Rows(error=pd.to_numeric(frame.prediction).to_numpy(float) - label, label=label)
    labels = frame.label.map(str).to_numpy()
    predictions = frame.prediction.map(str).to_numpy()
    correct = predictions == labels
    binary = {}
    if len(classes) == 2:  # the second class is the positive one, as in scikit-learn
        binary = {"positive": labels == str(classes[1]), "predicted": predictions == str(classes[1])}
    columns = list(deployments.probability_columns(classes))
    if not set(columns) <= set(frame.columns) or frame[columns].isna().to_numpy().any():
        return Rows(correct=correct, **binary)
    probabilities = frame[columns].to_numpy(float)
    index = {str(c): i for i, c in enumerate(classes)}
    where = np.array([index.get(label, -1) for label in labels])
    true_probability = np.where(where >= 0, probabilities[np.arange(len(frame)), np.maximum(where, 0)], 0.0)
    loss = -np.log(np.clip(true_probability, 1e-15, 1 - 1e-15))
    if binary:
        return Rows(correct=correct, loss=loss, score=probabilities[:, 1], **binary)
    return Rows(correct=correct, loss=loss)


def _metrics_of(rows: Rows, classes: tuple | None) -> list[str]:
    names = REGRESSION_METRICS if classes is None else CLASSIFICATION_METRICS
    return [m for m in names if rows.has(m)]


# -- the comparison -------------------------------------------------------------------------
@dataclass
class Comparison:
    deployment: DeploymentInfo
    settings: Settings
    rows: list[dict]

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=list(ROW_COLUMNS))


ROW_COLUMNS = (
    "deployment",
    "model",
    "champion_version",
    "window_name",
    "window_start",
    "version",
    "role",
    "mode",
    "metric",
    "labeled_rows",
    "value",
    "champion_value",
    "difference",
    "ci_low",
    "ci_high",
    "p_value",
    "confidence",
    "method",
    "verdict",
)


def compare(backend: Backend, table: str, settings: Settings | None = None) -> Comparison:
    """Every arm of the deployment on ``table`` against its champion, per window and metric."""
    settings = settings or Settings()
    dep = deployment_info(backend, table)
    frame = labeled_rows(backend, dep)
    classes_of: dict[int, tuple | None] = {}

    def classes(version: int) -> tuple | None:
        if version not in classes_of:
            classes_of[version] = registry.get(backend, dep.model, version, with_bytes=False).classes
        return classes_of[version]

    classes(dep.version)
    result = []
    newest = frame.scored_at.max() if len(frame) else None
    for window in settings.windows:
        length = window_length(window)
        start = None if length is None or newest is None else (pd.Timestamp(newest) - length).to_pydatetime()
        part = frame if start is None else frame[frame.scored_at >= start]
        result += _window_rows(dep, settings, window, start, part, classes)
    return Comparison(dep, settings, result)


def _base(dep: DeploymentInfo, settings: Settings, window: str, start) -> dict:
    return {
        "deployment": dep.table,
        "model": dep.model,
        "champion_version": dep.version,
        "window_name": window,
        "window_start": start,
        "confidence": settings.confidence,
    }


def _window_rows(dep, settings, window, start, part: pd.DataFrame, classes) -> list[dict]:
    base = _base(dep, settings, window, start)
    champion = part[(part.role == "champion") & (part.model_version == dep.version)]
    out = []
    champion_rows = arm_rows(champion, classes(dep.version)) if len(champion) else None
    for metric in _metrics_of(champion_rows, classes(dep.version)) if champion_rows else []:
        out.append(
            {
                **base,
                "version": dep.version,
                "role": "champion",
                "mode": "champion",
                "metric": metric,
                "labeled_rows": champion_rows.n,
                "value": _finite(champion_rows.metric(metric)),
            }
        )
    challengers = part[(part.role == "challenger") & (part.model_version != dep.version)]
    arms = challengers.assign(mode=np.where(challengers.served.astype(bool), "split", "shadow"))
    for (version, mode), rows in arms.groupby(["model_version", "mode"], sort=True):
        out += _challenger_rows(base, settings, int(version), mode, rows, champion, dep, classes)
    return out


def _challenger_rows(base, settings, version, mode, rows, champion, dep, classes) -> list[dict]:
    paired = mode == "shadow"
    if paired:
        both = champion.merge(rows, on="id", suffixes=("_champion", ""))
        mine = both[[c for c in rows.columns if c in both.columns]]
        theirs = both[[c for c in both.columns if c.endswith("_champion")]].rename(
            columns=lambda c: c.removesuffix("_champion")
        )
        theirs = theirs.assign(label=both.label)
    else:
        mine = rows
        theirs = champion[champion.scored_at >= rows.scored_at.min()]
    arm = {**base, "version": version, "role": "challenger", "mode": mode, "labeled_rows": len(mine)}
    if len(mine) == 0 or len(theirs) == 0:
        metrics = REGRESSION_METRICS[:1] if classes(version) is None else CLASSIFICATION_METRICS[:1]
        return [{**arm, "metric": m, "verdict": "too few labels"} for m in metrics]
    challenger_rows = arm_rows(mine, classes(version))
    champion_rows = arm_rows(theirs, classes(dep.version))
    metrics = [m for m in _metrics_of(challenger_rows, classes(version)) if champion_rows.has(m)]
    differences = _differences(metrics, champion_rows, challenger_rows, paired, settings)
    out = []
    for metric in metrics:
        difference = differences[metric]
        out.append(
            {
                **arm,
                "metric": metric,
                "value": _finite(challenger_rows.metric(metric)),
                "champion_value": _finite(champion_rows.metric(metric)),
                "difference": _finite(difference.value),
                "ci_low": _finite(difference.low),
                "ci_high": _finite(difference.high),
                "p_value": _finite(difference.p_value),
                "method": difference.method,
                "verdict": significance.verdict(
                    metric,
                    difference,
                    len(mine),
                    min_labels=settings.min_labels,
                    confidence=settings.confidence,
                ),
            }
        )
    return out


def _differences(metrics, champion: Rows, challenger: Rows, paired: bool, settings: Settings) -> dict:
    """Accuracy by its exact (paired) or z (unpaired) test; the rest by one bootstrap."""
    found = {}
    if "accuracy" in metrics:
        test = significance.mcnemar_exact if paired else significance.two_proportions
        correct = champion.correct.astype(bool), challenger.correct.astype(bool)
        found["accuracy"] = test(*correct, settings.confidence)
    rest = [m for m in metrics if m != "accuracy"]
    if rest:
        found |= significance.bootstrap_many(
            rest,
            champion,
            challenger,
            paired=paired,
            confidence=settings.confidence,
            resamples=settings.resamples,
            seed=settings.seed,
        )
    return found


def _finite(value) -> float | None:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return float(value)


def store(backend: Backend, comparison: Comparison) -> int:
    """Append the comparison's rows to ``indb.challenger_comparisons``; its evaluation id."""
    with backend.transaction():
        ((evaluation_id,),) = backend.rows(statement("comparison", "next_evaluation_id", backend.dialect))
        for row in comparison.rows:
            values = {c: row.get(c) for c in ROW_COLUMNS}
            values["labeled_rows"] = int(values["labeled_rows"])
            backend.execute(
                statement("comparison", "insert_comparison", backend.dialect),
                {**values, "evaluation_id": int(evaluation_id)},
            )
    return int(evaluation_id)
