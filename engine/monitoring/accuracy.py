"""Accuracy against ground truth: per window and model version, over rows whose label arrived.

The statements read the window's table (see ``monitors.window_statements``) and the latest
label of each of its rows from the ground truth, as the ``<table>_scored`` view does, and
write one result row per metric and model version, so that two versions scoring the same
window compare side by side; ``labeled_share`` and ``label_delay_seconds`` (mean time from
scoring to label) say how much of the window the figures stand on.
"""

from __future__ import annotations

from sqlglot import exp

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
    return [("accuracy", _classification(backend, len(classes), probability_columns, slots))]


# Precision, recall and F1 over per_class: the positive class's for two classes, else macro
# averages over the classes seen (as scikit-learn's average="binary" / "macro").
_BINARY = {
    "precision": "max(CASE WHEN is_positive = 1 THEN coalesce(tp / nullif(pp, 0), 0) END)",
    "recall": "max(CASE WHEN is_positive = 1 THEN coalesce(tp / nullif(ap, 0), 0) END)",
    "f1": "max(CASE WHEN is_positive = 1 THEN coalesce(2 * tp / nullif(pp + ap, 0), 0) END)",
}
_MACRO = {
    "precision": "avg(CASE WHEN pp + ap > 0 THEN coalesce(tp / nullif(pp, 0), 0) END)",
    "recall": "avg(CASE WHEN pp + ap > 0 THEN coalesce(tp / nullif(ap, 0), 0) END)",
    "f1": "avg(CASE WHEN pp + ap > 0 THEN 2 * tp / (pp + ap) END)",
}


def _render(*nodes: exp.Expression) -> Quoted:
    return Quoted(", ".join(n.sql(dialect="duckdb") for n in nodes))


def _classification(backend: Backend, n_classes: int, probability_columns: list[str], slots: dict) -> str:
    """The classification statement for ``n_classes`` classes: the class names pivoted into
    c0 .. c<n-1> and ``positive`` (the last), and each row's probability of its label."""
    category = lambda b: exp.Max(this=exp.case().when(exp.column("bin").eq(b), exp.column("category")))  # noqa: E731
    pivot = [exp.alias_(category(i), f"c{i}") for i in range(n_classes)]
    pivot.append(exp.alias_(category(n_classes - 1), "positive"))
    columns = [exp.column(c, table="v", quoted=True) for c in probability_columns]
    if columns:
        label = exp.cast(exp.column("label", table="g"), "VARCHAR")
        label_probability = exp.case()
        for i, column in enumerate(columns):
            label_probability = label_probability.when(
                label.copy().eq(exp.column(f"c{i}", table="cls")), column
            )
        score = columns[-1]
    else:
        label_probability = score = exp.cast(exp.null(), "DOUBLE")
    scores = _BINARY if n_classes == 2 else _MACRO
    return backend.render(
        "monitoring",
        "accuracy_classification",
        class_pivot=_render(*pivot),
        label_probability=_render(label_probability),
        score=_render(score),
        precision=Quoted(scores["precision"]),
        recall=Quoted(scores["recall"]),
        f1=Quoted(scores["f1"]),
        binary=Quoted("TRUE" if n_classes == 2 and columns else "FALSE"),
        **slots,
    )


def _text(label) -> str:
    """A class label as SQL's CAST(label AS VARCHAR) writes it."""
    return str(label).lower() if isinstance(label, bool) else str(label)
