"""Accuracy against ground truth: per window and model version, over rows whose label arrived.

The statements read the window's table (see ``monitors.window_statements``) and the latest
label of each of its rows from the ground truth, as the ``<table>_scored`` view does, and
write one result row per metric and model version, so that two versions scoring the same
window compare side by side; ``labeled_share`` and ``label_delay_seconds`` (mean time from
scoring to label) say how much of the window the figures stand on.
"""

from __future__ import annotations

from indb.backends.base import Backend
from indb.identifiers import Quoted
from indb.sql import statement

CLASSIFICATION = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "log_loss",
    "confusion",
)
REGRESSION = ("mae", "rmse", "r2", "mape")
COMMON = ("rows", "labeled_rows", "labeled_share", "label_delay_seconds")
METRICS = CLASSIFICATION + REGRESSION + COMMON

INSERT_TAIL = """
SELECT $2, $1, $3, $4, m.model_version, 'prediction', m.metric, m.category, m.value,
       coalesce(t1.threshold, t2.threshold),
       CASE WHEN m.value IS NULL OR coalesce(t1.threshold, t2.threshold) IS NULL THEN NULL
            WHEN coalesce(t1.direction, t2.direction) = 'below'
                THEN m.value < coalesce(t1.threshold, t2.threshold)
            ELSE m.value >= coalesce(t1.threshold, t2.threshold) END,
       NULL, CAST(s.n AS BIGINT)
FROM metrics AS m JOIN summary AS s ON s.model_version = m.model_version
LEFT JOIN indb.monitor_thresholds AS t1
    ON t1.monitor = $1 AND t1.feature = 'prediction' AND t1.metric = m.metric
LEFT JOIN indb.monitor_thresholds AS t2 ON t2.monitor = $1 AND t2.feature = '*' AND t2.metric = m.metric"""


def statements(
    backend: Backend,
    monitor: str,
    window: Quoted,
    ground_truth: Quoted,
    task: str,
    classes,
    probability_columns: list[str],
) -> list[tuple[str, str]]:
    q = backend.quote
    labels = Quoted(backend.render("monitoring", "latest_labels", window=window, ground_truth=ground_truth))
    slots = {"window": window, "labels": labels, "insert_tail": Quoted(INSERT_TAIL)}
    if task != "classification":
        return [("accuracy", backend.render("monitoring", "accuracy_regression", **slots))]
    classes = list(classes or [])
    for position, label in enumerate(classes):
        backend.execute(
            statement("monitoring", "insert_class", backend.dialect),
            {"monitor": monitor, "bin": position, "category": _text(label)},
        )
    last = len(classes) - 1
    pivot = [f"max(CASE WHEN bin = {i} THEN category END) AS c{i}" for i in range(len(classes))]
    pivot.append(f"max(CASE WHEN bin = {last} THEN category END) AS positive")
    columns = [q(c).text for c in probability_columns]
    if columns:
        label_probability = (
            "CASE "
            + " ".join(f"WHEN CAST(g.label AS VARCHAR) = cls.c{i} THEN v.{c}" for i, c in enumerate(columns))
            + " END"
        )
        score = f"v.{columns[-1]}"
    else:
        label_probability = score = "CAST(NULL AS DOUBLE)"
    if len(classes) == 2:
        precision = "max(CASE WHEN is_positive = 1 THEN coalesce(tp / nullif(pp, 0), 0) END)"
        recall = "max(CASE WHEN is_positive = 1 THEN coalesce(tp / nullif(ap, 0), 0) END)"
        f1 = "max(CASE WHEN is_positive = 1 THEN coalesce(2 * tp / nullif(pp + ap, 0), 0) END)"
    else:
        seen = "CASE WHEN pp + ap > 0 THEN {} END"
        precision = "avg(" + seen.format("coalesce(tp / nullif(pp, 0), 0)") + ")"
        recall = "avg(" + seen.format("coalesce(tp / nullif(ap, 0), 0)") + ")"
        f1 = "avg(" + seen.format("2 * tp / (pp + ap)") + ")"
    text = backend.render(
        "monitoring",
        "accuracy_classification",
        class_pivot=Quoted(", ".join(pivot)),
        label_probability=Quoted(label_probability),
        score=Quoted(score),
        precision=Quoted(precision),
        recall=Quoted(recall),
        f1=Quoted(f1),
        binary=Quoted("TRUE" if len(classes) == 2 and columns else "FALSE"),
        **slots,
    )
    return [("accuracy", text)]


def _text(label) -> str:
    """A class label as SQL's CAST(label AS VARCHAR) writes it."""
    return str(label).lower() if isinstance(label, bool) else str(label)
