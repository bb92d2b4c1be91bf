"""Training sets: a spine (entity keys, a time, usually a label) joined point-in-time to features.

``training_set()`` returns the rows (and the SQL it ran); ``materialize=True`` stores them as
``ts_<name>_v<N>`` with their lineage in ``indb.training_sets`` and
``indb.training_set_features``, and keeps the definition (spine, features with their
versions, ttl, cut-off) so that ``rebuild()`` can make a new version later.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from sqlglot import exp

from indb import audit, identifiers
from indb.backends.base import Backend
from indb.errors import NotFoundError
from indb.feature_store import pit, sets, times
from indb.feature_store.sets import FeatureStoreError, Source
from indb.sql import statement

_FEATURE = re.compile(r"^\s*(\w+)(?:@(\d+))?\s*:\s*(\*|\w+)(?:\s+as\s+(\w+))?\s*$", re.IGNORECASE)


@dataclass
class TrainingSet:
    """Rows of a point-in-time join and how they were made."""

    sql: str
    params: dict
    columns: list[str]
    feature_sets: list[tuple[str, int]]
    features: list[str]
    label: str | None = None
    name: str | None = None
    version: int | None = None
    table: str | None = None
    row_count: int | None = None
    content_hash: str | None = None
    frame: pd.DataFrame | None = field(default=None, repr=False)
    backend: Any = field(default=None, repr=False)

    def df(self) -> pd.DataFrame:
        """The rows, in spine order."""
        if self.frame is not None:
            return self.frame
        if self.table is None:
            raise FeatureStoreError("this training set was a dry run: it has SQL but no rows")
        rows = (
            exp.select(*(pit.column(c) for c in self.columns))
            .from_(pit.table_node(self.table))
            .order_by(pit.column(pit.ROW))
        )
        return self.backend.query(rows.sql(self.backend.dialect))


def parse_features(backend: Backend, features: Any, *, cached: bool = False) -> list[pit.Selection]:
    """``"set:feature"``, ``"set:*"``, ``"set@2:feature"``, ``"set:feature AS name"``; an empty
    list when the spine carries its features itself (requests joined with their labels)."""
    if isinstance(features, str) or not isinstance(features, list | tuple):
        raise FeatureStoreError(
            f"features must be a list like ['set:feature', 'set:*'] (or [] when the spine "
            f"holds the features), got {features!r}"
        )
    grouped: dict[tuple[str, int], list[tuple[str, str]]] = {}
    resolved: dict[tuple[str, int], sets.FeatureSet] = {}
    pinned: dict[tuple[str, int], bool] = {}
    read: dict[tuple[str, str | None], sets.FeatureSet] = {}  # each set read once per call
    for item in features:
        match = _FEATURE.match(item) if isinstance(item, str) else None
        if match is None:
            raise FeatureStoreError(
                f"feature {item!r} is not 'set:feature', 'set:*', 'set@version:feature' "
                "or 'set:feature AS name'"
            )
        name, version, feature, alias = match.groups()
        if feature != "*":
            identifiers.column_name(feature)
        if (name, version) not in read:
            number = None if version is None else int(version)
            read[name, version] = sets.get(backend, name, number, cached=cached)
        fs = read[name, version]
        key = (fs.name, fs.version)
        pinned[key] = pinned.get(key, False) or version is not None
        resolved[key] = fs
        chosen = grouped.setdefault(key, [])
        if feature == "*":
            wanted = [(f, f) for f in fs.feature_names]
        elif feature not in fs.feature_names:
            raise NotFoundError(
                f"feature of feature set {fs.name!r} version {fs.version}", feature, fs.feature_names
            )
        else:
            output = identifiers.column_name(alias) if alias else feature
            if sets.reserved(output):
                raise FeatureStoreError(f"output column {output!r}: {sets.RESERVED}")
            wanted = [(feature, output)]
        # the same feature under the same name, asked for twice ("set:x", "set:*"): once
        chosen += [pair for pair in wanted if pair not in chosen]
    return [pit.Selection(resolved[k], tuple(v), pinned=pinned[k]) for k, v in grouped.items()]


def _check_spine(spine_columns: dict[str, str], event_time: str, label: str | None, selections) -> None:
    problems = []
    if event_time not in spine_columns:
        problems.append(f"no time column {event_time!r} (pass event_time=<column>)")
    elif times.kind(spine_columns[event_time]) is None:
        problems.append(f"{event_time!r} is {spine_columns[event_time]}; expected TIMESTAMP or DATE")
    if label is not None and label not in spine_columns:
        problems.append(f"no label column {label!r}")
    for selection in selections:
        for key in selection.feature_set.keys:
            if key not in spine_columns:
                problems.append(f"no key column {key!r} (entity {selection.feature_set.entity!r})")
    for column in spine_columns:
        if column.lower().startswith("_indb"):
            problems.append(f"column {column!r}: names starting with _indb are indb's own")
    if problems:
        raise FeatureStoreError(
            "the spine cannot be joined: "
            + "; ".join(dict.fromkeys(problems))
            + f" (spine columns: {', '.join(spine_columns)})"
        )
    seen = set(spine_columns)
    for selection in selections:
        for _, output in selection.features:
            if output in seen:
                raise FeatureStoreError(
                    f"output column {output!r} appears twice (spine or another feature set); name one "
                    f"with '{selection.feature_set.name}:{_} AS <name>'"
                )
            seen.add(output)


def training_set(
    backend: Backend,
    spine: Any,
    features: list[str],
    *,
    event_time: str = "event_time",
    label: str | None = None,
    ttl: Any = None,
    materialize: bool = False,
    name: str | None = None,
    description: str | None = None,
    cutoff: datetime | None = None,
    dry_run: bool = False,
    statistics: bool = True,
    filter_by_created_time: bool = True,
) -> TrainingSet:
    """``filter_by_created_time`` (default): a feature row counts only once created by the
    spine's time. False is Feast's default: the created time only orders rows that share an
    event time, so a backfill created later wins over the row it restates."""
    identifiers.column_name(event_time)
    if not isinstance(filter_by_created_time, bool):
        raise FeatureStoreError(
            f"filter_by_created_time must be True or False, got {filter_by_created_time!r}"
        )
    if label is not None:
        identifiers.column_name(label)
    override = sets.ttl_seconds(ttl)
    if materialize:
        name = identifiers.feature_set_name(name, "training set")
    elif name is not None:
        raise FeatureStoreError("name= is for materialize=True training sets")
    if cutoff is not None and not isinstance(cutoff, datetime):
        raise FeatureStoreError(f"cutoff must be a datetime, got {type(cutoff).__name__}")
    selections = parse_features(backend, features)
    selections = [
        pit.Selection(
            s.feature_set,
            s.features,
            override if override is not None else s.feature_set.ttl_seconds,
            time_ties=not backend.asof_join or sets.time_ties_possible(backend, s.feature_set),
            created_filter=filter_by_created_time,
        )
        for s in selections
    ]
    with Source(backend, spine, "spine", spine=True) as src:
        _check_spine(src.columns, event_time, label, selections)
        columns = list(src.columns) + [o for s in selections for _, o in s.features]
        join = pit.build(
            backend,
            src.tree,
            src.columns,
            event_time,
            selections,
            cutoff_param="cutoff" if cutoff is not None else None,
        )
        if cutoff is not None:  # naive means UTC, as for every time
            join.params["cutoff"] = times.python_value(cutoff, src.columns[event_time])
        result = TrainingSet(
            sql=join.text,
            params=join.params,
            columns=columns,
            feature_sets=[(s.feature_set.name, s.feature_set.version) for s in selections],
            features=[
                f"{s.feature_set.name}@{s.feature_set.version}:{c} AS {o}"
                for s in selections
                for c, o in s.features
            ],
            label=label,
            backend=backend,
        )
        if dry_run:
            return result
        if not materialize:
            result.frame = backend.query(join.text, join.params)
            return result
        result = _materialize(
            backend,
            result,
            src,
            spine,
            selections,
            event_time,
            override,
            cutoff,
            name,
            description,
            statistics,
        )
    result.frame = result.df()  # the stored rows, as a plain training set hands them back
    return result


def _create_table_as(table: str, query: exp.Query) -> exp.Create:
    return exp.Create(this=pit.table_node(table), kind="TABLE", expression=query)


def _materialize(
    backend, result, src, spine, selections, event_time, override, cutoff, name, description, statistics
) -> TrainingSet:
    q = backend.quote
    ((version,),) = backend.rows(
        statement("feature_store", "next_training_set_version", backend.dialect), {"name": name}
    )
    table = f"ts_{name}_v{version}"
    spine_table = f"{table}_spine"
    for existing in (table, spine_table):
        if backend.table_columns(existing) is not None:
            raise FeatureStoreError(f"table {existing!r} exists already; drop or rename it first")
    with backend.transaction():
        if src.kind == "frame":  # keep the spine so the definition can be rebuilt
            copy = exp.select(exp.Star()).from_(src.tree.copy())
            backend.execute(_create_table_as(spine_table, copy).sql(backend.dialect))
            spine_definition = {"table": spine_table}
        else:
            spine_definition = (
                {"table": src.description} if src.kind == "table" else {"query": src.description}
            )
        join = pit.build(
            backend,
            src.tree,
            src.columns,
            event_time,
            selections,
            cutoff_param="cutoff" if cutoff is not None else None,
            keep_row=True,
        )
        backend.execute(_create_table_as(table, join.tree).sql(backend.dialect), result.params)
        ((rows, content_hash),) = backend.rows(
            backend.render("feature_store", "table_summary", table=q(table))
        )
        definition = {
            "spine": spine_definition,
            "event_time": event_time,
            "features": result.features,
            "label": result.label,
            "ttl_seconds": override,
            "cutoff": None if cutoff is None else cutoff.isoformat(),
            "filter_by_created_time": all(s.created_filter for s in selections),
        }
        backend.execute(
            statement("feature_store", "insert_training_set", backend.dialect),
            {
                "name": name,
                "version": version,
                "table_name": table,
                "definition": json.dumps(definition),
                "spine": json.dumps(spine_definition),
                "label": result.label,
                "ttl_seconds": override,
                "cutoff": cutoff,
                "row_count": int(rows),
                "content_hash": str(content_hash),
                "description": description,
                "created_by": backend.user,
            },
        )
        for selection in selections:
            fs = selection.feature_set
            backend.execute(
                statement("feature_store", "insert_training_set_features", backend.dialect),
                {
                    "training_set": name,
                    "version": version,
                    "feature_set": fs.name,
                    "feature_set_version": fs.version,
                    "features": json.dumps([{"feature": c, "column": o} for c, o in selection.features]),
                },
            )
        audit.record(backend, "create_training_set", f"{name} v{version}", {"rows": int(rows)})
        result.name, result.version, result.table = name, int(version), table
        result.row_count, result.content_hash = int(rows), str(content_hash)
        if statistics:
            from indb.feature_store import statistics as stats

            outputs = [o for s in selections for _, o in s.features] + (
                [result.label] if result.label else []
            )
            stats.compute_training_set(backend, result, outputs)
    return result


def resolve(backend: Backend, name: str, version: int | None = None) -> tuple[str, int]:
    name = identifiers.feature_set_name(name, "training set")
    ((latest,),) = backend.rows(
        statement("feature_store", "latest_training_set_version", backend.dialect), {"name": name}
    )
    if latest is None:
        known = [
            r[0] for r in backend.rows(statement("feature_store", "list_training_set_names", backend.dialect))
        ]
        raise NotFoundError("training set", name, known)
    if version is None:
        return name, int(latest)
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= int(latest):
        raise NotFoundError(
            f"version of training set {name!r}", version, [str(v) for v in range(1, int(latest) + 1)]
        )
    return name, version


def get(backend: Backend, name: str, version: int | None = None) -> TrainingSet:
    name, version = resolve(backend, name, version)
    row = backend.query(
        statement("feature_store", "get_training_set", backend.dialect), {"name": name, "version": version}
    ).iloc[0]
    definition = json.loads(row["definition"])
    lineage = backend.rows(
        statement("feature_store", "get_training_set_lineage", backend.dialect),
        {"name": name, "version": version},
    )
    columns = [c for c in (backend.table_columns(row["table_name"]) or {}) if c != pit.ROW]
    return TrainingSet(
        sql="",
        params={},
        columns=columns,
        feature_sets=[(n, int(v)) for n, v in lineage],
        features=definition["features"],
        label=definition["label"],
        name=name,
        version=version,
        table=row["table_name"],
        row_count=int(row["row_count"]),
        content_hash=row["content_hash"],
        backend=backend,
    )


def rebuild(
    backend: Backend, name: str, version: int | None = None, *, cutoff: datetime | None = None
) -> TrainingSet:
    """A new version of a training set from its stored definition: the same spine source
    (re-read, so new rows count), the same feature set versions, spine rows up to ``cutoff``."""
    name, version = resolve(backend, name, version)
    row = backend.query(
        statement("feature_store", "get_training_set", backend.dialect), {"name": name, "version": version}
    ).iloc[0]
    definition = json.loads(row["definition"])
    spine = definition["spine"].get("table") or definition["spine"]["query"]
    return training_set(
        backend,
        spine,
        definition["features"],
        event_time=definition["event_time"],
        label=definition["label"],
        ttl=definition["ttl_seconds"],
        filter_by_created_time=definition.get("filter_by_created_time", True),
        materialize=True,
        name=name,
        cutoff=cutoff,
    )
