"""Feature statistics computed by the database and stored in ``indb.feature_statistics``.

Numeric (and boolean) features: count, nulls, distinct, min, max, mean, stddev, quantiles
(1, 5, 25, 50, 75, 95, 99 %) and a 10-bin equal-width histogram between min and max.
Other features (strings, times): count, nulls, distinct and the 10 most frequent values.
One row per feature, per feature set version (scope ``feature_set``) or training set
version (scope ``training_set``); monitoring compares against these.
"""

from __future__ import annotations

import json

from sqlglot import exp

from indb.backends.base import Backend
from indb.feature_store.sets import FeatureSet
from indb.identifiers import Quoted
from indb.sql import statement
from indb.sqltypes import NUMERIC_TYPES, base_type

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
BINS = 10
TOP_VALUES = 10


def _float(value):
    return None if value is None or value != value else float(value)


def feature_statistics(backend: Backend, source: Quoted, column: str, data_type: str) -> dict:
    """One feature's statistics, computed in SQL."""
    q = backend.quote
    kind = (
        "numeric"
        if base_type(data_type) in NUMERIC_TYPES or base_type(data_type) == "BOOLEAN"
        else "categorical"
    )
    expression = q(column)
    if base_type(data_type) == "BOOLEAN":  # statistics of booleans: of 0 and 1
        cast = exp.cast(exp.column(column, quoted=True), exp.DataType.build("INTEGER"))
        expression = Quoted(cast.sql(dialect=backend.dialect))
    result = {
        "feature": column,
        "data_type": data_type,
        "kind": kind,
        "min": None,
        "max": None,
        "mean": None,
        "stddev": None,
        "quantiles": None,
        "histogram": None,
        "top_values": None,
    }
    if kind == "numeric":
        row = backend.query(
            backend.render("feature_store", "numeric_statistics", column=expression, source=source)
        )
        row = row.iloc[0]
        result.update(
            count=int(row["count"]),
            nulls=int(row["nulls"]),
            distinct_count=int(row["distinct_count"]),
            min=_float(row["min"]),
            max=_float(row["max"]),
            mean=_float(row["mean"]),
            stddev=_float(row["stddev"]),
        )
        values = row["quantiles"]
        if values is not None and result["count"]:
            result["quantiles"] = {str(p): _float(v) for p, v in zip(QUANTILES, list(values), strict=True)}
        if result["count"]:
            lo, hi = result["min"], result["max"]
            width = (hi - lo) / BINS if hi > lo else 1.0
            counts = dict(
                backend.rows(
                    backend.render("feature_store", "histogram", column=expression, source=source),
                    {"lo": lo, "width": width, "bins": BINS},
                )
            )
            result["histogram"] = {
                "edges": [lo + i * width for i in range(BINS + 1)],
                "counts": [int(counts.get(i, 0)) for i in range(BINS)],
            }
    else:
        ((count, nulls, distinct),) = backend.rows(
            backend.render("feature_store", "categorical_statistics", column=q(column), source=source)
        )
        result.update(count=int(count), nulls=int(nulls), distinct_count=int(distinct))
        top = backend.rows(
            backend.render("feature_store", "top_values", column=q(column), source=source),
            {"limit": TOP_VALUES},
        )
        result["top_values"] = [{"value": v, "count": int(n)} for v, n in top]
    return result


def _store(backend: Backend, scope: str, name: str, version: int, rows: list[dict]) -> None:
    with backend.transaction():
        backend.execute(
            statement("feature_store", "delete_statistics", backend.dialect),
            {"scope": scope, "name": name, "version": version},
        )
        for row in rows:
            values = dict(row)
            for key in ("quantiles", "histogram", "top_values"):
                values[key] = None if row[key] is None else json.dumps(row[key])
            backend.execute(
                statement("feature_store", "insert_statistics", backend.dialect),
                {"scope": scope, "name": name, "version": version, **values},
            )


def compute_feature_set(backend: Backend, fs: FeatureSet) -> list[dict]:
    source = backend.quote(fs.table)
    rows = [feature_statistics(backend, source, f.name, f.data_type) for f in fs.features]
    _store(backend, "feature_set", fs.name, fs.version, rows)
    return rows


def compute_training_set(backend: Backend, ts, columns: list[str]) -> list[dict]:
    source = backend.quote(ts.table)
    types = backend.table_columns(ts.table) or {}
    rows = [feature_statistics(backend, source, c, types.get(c, "VARCHAR")) for c in columns]
    _store(backend, "training_set", ts.name, ts.version, rows)
    return rows
