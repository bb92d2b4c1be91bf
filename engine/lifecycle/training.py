"""Training runs: one row of ``indb.training_runs`` per fit, and the pieces a fit is made of.

A fit takes a materialized training set's rows in event-time order, keeps the last ones as a
time-based holdout (``"20%"``: the last fifth of the rows; ``"30 days"``: rows within 30 days of
the latest event time), fits an estimator rebuilt from a stored recipe on the rows before it and
scores every version it compares (candidate, champion, the model's other versions) on the same
holdout rows with onnxruntime: the bytes the database serves, not the estimator in memory.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from indb.backends.base import Backend
from indb.errors import IndbError, NotFoundError
from indb.lifecycle import metrics
from indb.sql import statement
from indb.udfs import convert, sessions

_HOLDOUT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%|days?)\s*$", re.IGNORECASE)


class TrainingError(IndbError, ValueError):
    """A retraining input that cannot work: the message names it and what would."""


@dataclass(frozen=True)
class Holdout:
    """The last ``fraction`` of the rows, or the rows within ``days`` of the latest time."""

    text: str
    fraction: float | None = None
    days: float | None = None

    @classmethod
    def parse(cls, value: object) -> Holdout:
        match = _HOLDOUT.match(value) if isinstance(value, str) else None
        amount = float(match[1]) if match else 0.0
        if match and match[2] == "%" and 0 < amount < 100:
            return cls(f"{match[1]}%", fraction=amount / 100)
        if match and match[2] != "%" and amount > 0:
            return cls(f"{match[1]} days", days=amount)
        raise TrainingError(
            f"holdout must be a share of the latest rows like '20%' (between 0 and 100) or a span "
            f"like '30 days', got {value!r}"
        )

    def split(self, frame: pd.DataFrame, event_time: str) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
        """(fit rows, holdout rows, the holdout as recorded); ``frame`` is in event-time order."""
        times = pd.to_datetime(frame[event_time])
        if self.fraction is not None:
            size = math.ceil(len(frame) * self.fraction)
            cut = len(frame) - size
        else:
            start = times.iloc[-1] - pd.Timedelta(days=self.days) if len(frame) else None
            cut = int((times <= start).sum()) if start is not None else 0
        fit, holdout = frame.iloc[:cut], frame.iloc[cut:]
        if fit.empty or holdout.empty:
            raise TrainingError(
                f"holdout {self.text!r} leaves {len(fit)} rows to fit and {len(holdout)} to evaluate "
                f"(of {len(frame)} labeled rows): each needs at least one"
            )
        recorded = {
            "definition": self.text,
            "rows": len(holdout),
            "fit_rows": len(fit),
            "event_time": event_time,
            "start": str(times.iloc[cut]),
            "end": str(times.iloc[-1]),
        }
        return fit, holdout, recorded


def ordered(frame: pd.DataFrame, event_time: str, label: str) -> pd.DataFrame:
    """Labeled rows in event-time order, ties broken by the rows' values.

    A training set's row order is not fixed (DuckDB reads in parallel), so rows tied on event
    time are ordered by every other column too: a refit sees the rows in the order the first
    fit saw them, whatever order the database returned them in. Rows equal in every column are
    interchangeable, so the order is total where it matters.
    """
    frame = frame[frame[label].notna()]
    ties = [c for c in frame.columns if c != event_time]

    def sortable(column: pd.Series) -> pd.Series:
        # a tie column of mixed or unorderable values (lists, dicts, Decimals and None) sorts
        # by type and text: any fixed order will do for ties, event time keeps its own order
        if column.name == event_time or column.dtype != object:
            return column
        return column.map(lambda v: None if v is None else (type(v).__name__, str(v)))

    return frame.sort_values([event_time, *ties], kind="stable", key=sortable).reset_index(drop=True)


def seeded(estimator: Any, seed: int | None) -> Any:
    """The estimator with every ``random_state`` (nested ones too) set to ``seed``."""
    if seed is None:
        return estimator
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TrainingError(f"seed must be a whole number, got {seed!r}")
    keys = [k for k in estimator.get_params(deep=True) if k == "random_state" or k.endswith("__random_state")]
    return estimator.set_params(**dict.fromkeys(keys, seed)) if keys else estimator


def predict(version, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    """Labels (or values) and class probabilities of a registered version's ONNX bytes."""
    sig = version.signature
    missing = [c for c in sig.columns if c not in frame.columns]
    if missing:
        raise TrainingError(
            f"{version.name} version {version.version} takes {', '.join(missing)}, which the "
            f"training set does not have (it has {', '.join(frame.columns)})"
        )
    # cached per (version, sha256) like the database's own sessions; the bytes are checked
    # against their sha256 when a session is built
    key = ("lifecycle", version.name, version.version, version.sha256)
    session = sessions.session(key, lambda: version.onnx)
    outputs = [sig.prediction_output] + ([sig.probability_output] if sig.probability_output else [])
    results = session.run(outputs, convert.feeds(sig, frame))
    labels = np.asarray(results[0]).reshape(len(frame), -1)[:, 0]
    proba = np.asarray(results[1], dtype=np.float64) if len(results) > 1 else None
    return labels, proba


def evaluate(version, frame: pd.DataFrame, label: str) -> dict[str, float | None]:
    """Every metric of the version's task on ``frame``'s rows (its label in column ``label``)."""
    labels, proba = predict(version, frame)
    if version.task != "classification":
        return metrics.compute("regression", frame[label].to_numpy(), labels)
    return metrics.compute("classification", frame[label].to_numpy(), labels, proba, version.classes)


# -- the training_runs rows -------------------------------------------------------------------
def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _json(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(
        value, allow_nan=False, default=lambda v: v.item() if isinstance(v, np.generic) else str(v)
    )


def start(
    backend: Backend,
    model: str,
    *,
    parent_version: int | None,
    recipe: dict | None,
    training_set: str | None,
    triggered_by: str | None,
    job_run_id: int | None,
    started_at: datetime,
) -> int:
    """A ``running`` row, committed at once so that it shows while the fit runs."""
    ((run_id,),) = backend.rows(statement("lifecycle", "next_run_id", backend.dialect))
    backend.execute(
        statement("lifecycle", "insert_run", backend.dialect),
        {
            "id": int(run_id),
            "model": model,
            "parent_version": parent_version,
            "recipe": _json(recipe),
            "training_set": training_set,
            "triggered_by": triggered_by,
            "job_run_id": job_run_id,
            "started_at": started_at,
        },
    )
    return int(run_id)


RUN_FIELDS = (
    "status",
    "version",
    "parent_version",
    "recipe",
    "training_set",
    "training_set_version",
    "cutoff",
    "rows",
    "content_hash",
    "holdout",
    "metrics",
    "champion_metrics",
    "fit_seconds",
    "notes",
    "error",
)
_JSON_FIELDS = ("recipe", "holdout", "metrics", "champion_metrics", "notes")


def finish(backend: Backend, run_id: int, **fields: Any) -> None:
    """Record how a run ended (every field of RUN_FIELDS; missing ones are NULL)."""
    values = {key: fields.get(key) for key in RUN_FIELDS}
    for key in _JSON_FIELDS:
        values[key] = _json(values[key])
    backend.execute(
        statement("lifecycle", "update_run", backend.dialect),
        {**values, "id": run_id, "finished_at": utcnow()},
    )


def record_metrics(backend: Backend, run_id: int, model: str, evaluated: dict[int, tuple[str, dict]]) -> None:
    """One row per (version, metric) a run evaluated: what indb.leaderboard ranks."""
    for version, (role, values) in evaluated.items():
        for metric, value in values.items():
            backend.execute(
                statement("lifecycle", "insert_metric", backend.dialect),
                {
                    "run_id": run_id,
                    "model": model,
                    "version": int(version),
                    "role": role,
                    "metric": metric,
                    "value": value,
                },
            )


def _loads(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def get(backend: Backend, run_id: int) -> dict:
    frame = backend.query(statement("lifecycle", "get_run", backend.dialect), {"id": int(run_id)})
    if frame.empty:
        raise NotFoundError("training run", run_id)
    row = frame.iloc[0].to_dict()
    for key in _JSON_FIELDS:
        row[key] = _loads(row[key])
    return {k: (None if not isinstance(v, str | dict | list) and pd.isna(v) else v) for k, v in row.items()}


def runs(backend: Backend, model: str | None = None, limit: int = 100) -> pd.DataFrame:
    return backend.query(
        statement("lifecycle", "list_runs", backend.dialect), {"model": model, "limit": int(limit)}
    )


def leaderboard(backend: Backend, model: str, metric: str | None = None) -> pd.DataFrame:
    """Every version of ``model`` ranked on its latest training run's holdout (one metric or all)."""
    from indb import identifiers, registry

    identifiers.model_name(model)
    registry._require_model(backend, model)
    if metric is not None:
        metric = metrics.metric_name(metric)
    return backend.query(
        statement("lifecycle", "leaderboard", backend.dialect), {"model": model, "metric": metric}
    )
