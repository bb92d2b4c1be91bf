"""Entities and versioned feature sets: catalog rows, history and latest-value tables, ingestion.

A feature set version owns two tables in the default schema: ``fs_<name>_v<N>`` (every
ingested row: entity keys, event time, optional created time, features, and ``_indb_seq``
which orders rows that tie on entity and time) and ``fs_<name>_v<N>_latest`` (one row per
entity, kept current by an insert trigger on the history table, so rows written with plain
SQL count too). Views ``fs_<name>`` and ``fs_<name>_latest`` show the newest version.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from indb import audit, identifiers
from indb.backends.base import Backend
from indb.errors import IndbError, InvalidNameError, NotFoundError
from indb.identifiers import Quoted, join
from indb.sql import statement
from indb.sqltypes import NUMERIC_TYPES, base_type

SEQ = "_indb_seq"
TIME_TYPES = ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ", "DATE")
FEATURE_TYPES = NUMERIC_TYPES + TIME_TYPES + ("BOOLEAN", "VARCHAR")


class FeatureStoreError(IndbError, ValueError):
    """A feature set, ingestion or training set that cannot be made as asked."""


@dataclass(frozen=True)
class Feature:
    name: str
    data_type: str
    description: str | None = None


@dataclass(frozen=True)
class FeatureSet:
    """One version of a feature set, as stored in ``indb.feature_sets`` and ``indb.features``."""

    name: str
    version: int
    entity: str
    keys: tuple[str, ...]
    event_time: str
    created_time: str | None
    ttl_seconds: float | None
    table: str
    online_table: str
    features: tuple[Feature, ...]
    key_types: tuple[str, ...] = ()
    time_type: str = "TIMESTAMP"
    description: str | None = None

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def columns(self) -> list[str]:
        """Stored columns in order (without ``_indb_seq``)."""
        times = [self.event_time] + ([self.created_time] if self.created_time else [])
        return [*self.keys, *times, *self.feature_names]


def ttl_seconds(ttl: Any) -> float | None:
    if ttl is None:
        return None
    if isinstance(ttl, timedelta):
        seconds = ttl.total_seconds()
    elif isinstance(ttl, int | float) and not isinstance(ttl, bool):
        seconds = float(ttl)
    else:
        raise FeatureStoreError(f"ttl must be a timedelta or a number of seconds, got {type(ttl).__name__}")
    if not seconds > 0:
        raise FeatureStoreError(f"ttl must be positive, got {ttl!r}")
    return seconds


# -- entities ------------------------------------------------------------------------------------
def create_entity(backend: Backend, name: str, keys: list[str], description: str | None = None) -> dict:
    name = identifiers.feature_set_name(name, "entity")
    if isinstance(keys, str) or not keys:
        raise FeatureStoreError(f"entity {name!r} needs a non-empty list of key columns, got {keys!r}")
    keys = [identifiers.column_name(k) for k in keys]
    if len(set(keys)) != len(keys):
        raise FeatureStoreError(f"entity {name!r} lists a key twice: {keys}")
    found = backend.rows(statement("feature_store", "get_entity", backend.dialect), {"name": name})
    if found:
        if json.loads(found[0][1]) != keys:
            raise FeatureStoreError(f"entity {name!r} exists with keys {json.loads(found[0][1])}, not {keys}")
        return {"name": name, "keys": keys}
    with backend.transaction():
        backend.execute(
            statement("feature_store", "insert_entity", backend.dialect),
            {"name": name, "keys": json.dumps(keys), "description": description, "created_by": backend.user},
        )
        audit.record(backend, "create_entity", name, {"keys": keys})
    return {"name": name, "keys": keys}


def entity_keys(backend: Backend, name: str) -> list[str]:
    identifiers.feature_set_name(name, "entity")
    found = backend.rows(statement("feature_store", "get_entity", backend.dialect), {"name": name})
    if not found:
        known = [r[0] for r in backend.rows(statement("feature_store", "list_entity_names", backend.dialect))]
        raise NotFoundError("entity", name, known)
    return json.loads(found[0][1])


# -- reading feature sets -------------------------------------------------------------------------
def feature_set_names(backend: Backend) -> list[str]:
    return [r[0] for r in backend.rows(statement("feature_store", "list_feature_set_names", backend.dialect))]


def latest_version(backend: Backend, name: str) -> int | None:
    ((version,),) = backend.rows(
        statement("feature_store", "latest_feature_set_version", backend.dialect), {"name": name}
    )
    return None if version is None else int(version)


# (database, name, version) -> FeatureSet for online lookups: a version's tables, keys and
# features never change (its ttl and description may; lookups read neither). The entry for
# version None is the newest version seen; lookups through it read the view that always
# shows the newest version, and forget it when that fails.
_shapes: dict[tuple[str, str, int | None], FeatureSet] = {}


def forget(backend: Backend, name: str) -> None:
    _shapes.pop((backend.scope, name, None), None)


def get(backend: Backend, name: str, version: int | None = None, *, cached: bool = False) -> FeatureSet:
    """A feature set version (default: the newest); ``cached`` reuses one read before."""
    name = identifiers.feature_set_name(name)
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise TypeError(f"feature set version must be an int or None, got {type(version).__name__}")
    key = (backend.scope, name, version)
    if cached and key in _shapes:
        return _shapes[key]
    newest = latest_version(backend, name)
    if newest is None:
        raise NotFoundError("feature set", name, feature_set_names(backend))
    found = backend.query(
        statement("feature_store", "get_feature_set", backend.dialect),
        {"name": name, "version": newest if version is None else version},
    )
    if found.empty:
        raise NotFoundError(
            f"version of feature set {name!r}", version, [str(v) for v in range(1, newest + 1)]
        )
    version = newest if version is None else version
    row = found.iloc[0]
    features = tuple(
        Feature(n, t, d)
        for n, t, d in backend.rows(
            statement("feature_store", "get_features", backend.dialect), {"name": name, "version": version}
        )
    )
    keys = tuple(json.loads(row["keys"]))
    stored = backend.table_columns(row["table_name"]) or {}
    ttl = row["ttl_seconds"]
    fs = FeatureSet(
        name=name,
        version=int(version),
        entity=row["entity"],
        keys=keys,
        event_time=row["event_time"],
        created_time=None if _missing(row["created_time"]) else row["created_time"],
        ttl_seconds=None if _missing(ttl) else float(ttl),
        table=row["table_name"],
        online_table=row["online_table"],
        features=features,
        key_types=tuple(stored.get(k, "VARCHAR") for k in keys),
        time_type=stored.get(row["event_time"], "TIMESTAMP"),
        description=None if _missing(row["description"]) else row["description"],
    )
    _shapes[key] = _shapes[(backend.scope, name, fs.version)] = fs
    return fs


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


# -- sources --------------------------------------------------------------------------------------
def _is_frame(data: Any) -> bool:
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return True
    try:
        import pyarrow as pa
    except ImportError:  # pragma: no cover
        return False
    return isinstance(data, pa.Table | pa.RecordBatchReader)


class Source:
    """A DataFrame, Arrow table, table or view name, or SELECT query, readable as a relation."""

    def __init__(self, backend: Backend, data: Any, what: str = "source"):
        self.backend, self.data, self.what = backend, data, what
        self._stage = None

    def __enter__(self) -> Source:
        data, backend = self.data, self.backend
        if _is_frame(data):
            self._stage = backend.staged(data)
            self.relation = self._stage.__enter__()
            self.description = f"{type(data).__name__}"
            self.kind = "frame"
        elif isinstance(data, str) and data.strip():
            text = data.strip()
            try:
                name = identifiers.table_name(text)
            except InvalidNameError:
                name = None
            if name is not None:
                if backend.table_columns(name) is None:
                    raise NotFoundError(f"table or view for {self.what}", name, [])
                self.relation = backend.quote(name)
                self.kind = "table"
            else:
                self.relation = Quoted(f"({text.rstrip().rstrip(';')}) AS indb_source")
                self.kind = "query"
            self.description = text
        else:
            raise FeatureStoreError(
                f"{self.what} must be a DataFrame, an Arrow table, a table or view name, or a SELECT "
                f"query; got {type(data).__name__}"
            )
        try:
            self.columns = backend.query_columns(f"SELECT * FROM {self.relation}")
        except Exception:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self._stage is not None:
            self._stage.__exit__(*exc)
            self._stage = None


# -- creating feature sets ------------------------------------------------------------------------
def _schema(
    columns: dict[str, str],
    keys: list[str],
    event_time: str,
    created_time: str | None,
    features: list[str] | None,
) -> tuple[dict[str, str], dict[str, str]]:
    """(key and time columns -> type, feature columns -> type), every problem reported at once."""
    problems = []
    if features is not None and (isinstance(features, str) or not features):
        raise FeatureStoreError(f"features must be a non-empty list of column names, got {features!r}")
    wanted = [*keys, event_time] + ([created_time] if created_time else [])
    fixed = {}
    for column in wanted:
        identifiers.column_name(column)
        if column not in columns:
            problems.append(f"no column {column!r}")
        else:
            fixed[column] = columns[column]
    for column in [event_time] + ([created_time] if created_time else []):
        if column in columns and columns[column].upper() not in TIME_TYPES:
            problems.append(f"{column!r} is {columns[column]}; a time column must be TIMESTAMP or DATE")
    if created_time and event_time in columns and created_time in columns:
        if columns[created_time].upper() != columns[event_time].upper():
            problems.append(f"{created_time!r} must have the type of {event_time!r} ({columns[event_time]})")
    chosen = features if features is not None else [c for c in columns if c not in wanted]
    values = {}
    for column in chosen:
        identifiers.column_name(column)
        if column.lower().startswith("_indb"):
            problems.append(f"column {column!r}: names starting with _indb are indb's own")
        elif column in wanted:
            problems.append(f"{column!r} is a key or time column, not a feature")
        elif column not in columns:
            problems.append(f"no feature column {column!r}")
        elif base_type(columns[column]) not in FEATURE_TYPES:
            problems.append(
                f"feature {column!r} is {columns[column]}; features are numbers, booleans, strings or times"
            )
        else:
            values[column] = columns[column]
    if not chosen:
        problems.append("no feature columns besides the keys and times")
    if len({c.lower() for c in [*fixed, *values]}) != len(fixed) + len(values):
        problems.append("columns differ only by case")
    if problems:
        raise FeatureStoreError("; ".join(problems) + f" (columns given: {', '.join(columns) or 'none'})")
    return fixed, values


def _schema_hash(keys, event_time, created_time, fixed: dict, values: dict) -> str:
    shape = {
        "keys": [[k, fixed[k].upper()] for k in keys],
        "event_time": [event_time, fixed[event_time].upper()],
        "created_time": [created_time, fixed[created_time].upper()] if created_time else None,
        "features": [[k, v.upper()] for k, v in values.items()],
    }
    return hashlib.sha256(json.dumps(shape).encode()).hexdigest()


def order_columns(fs: FeatureSet, alias: str = "") -> list[Quoted]:
    """Which row of an entity is the latest: event time, then created time, then ingestion."""
    q = lambda c: Quoted(f"{alias}{fs_quote(c)}")  # noqa: E731
    order = [q(fs.event_time)]
    if fs.created_time:
        created, event = fs_quote(fs.created_time), fs_quote(fs.event_time)
        order.append(Quoted(f"(coalesce({alias}{created}, {alias}{event}))"))
    order.append(q(SEQ))
    return order


def fs_quote(column: str) -> str:
    return identifiers.quote(column, dialect="duckdb").text


def _ddl(backend: Backend, fs: FeatureSet, types: dict[str, str], source: str | None) -> list[str]:
    q = backend.quote
    sequence = f"{fs.table}_seq"
    not_null = set(fs.keys) | {fs.event_time}
    columns = join(
        Quoted(f"{q(c)} {identifiers.sql_type(types[c])}" + (" NOT NULL" if c in not_null else ""))
        for c in fs.columns
    )
    keys = join(q(k) for k in fs.keys)
    statements = [
        backend.render("feature_store", "create_sequence", sequence=q(sequence)),
        backend.render(
            "feature_store",
            "create_history_table",
            table=q(fs.table),
            columns=columns,
            sequence_literal=backend.literal(sequence),
        ),
        backend.render(
            "feature_store", "create_online_table", table=q(fs.online_table), columns=columns, keys=keys
        ),
    ]
    order_desc = join(Quoted(f"{o} DESC") for o in order_columns(fs))
    if not backend.asof_join:
        statements.append(
            backend.render(
                "feature_store",
                "create_history_index",
                index=q(f"{fs.table}_pit"),
                table=q(fs.table),
                keys=keys,
                order_desc=order_desc,
            )
        )
    statements += online_trigger_sql(backend, fs)
    shown = join(q(c) for c in fs.columns)
    for view, table in ((f"fs_{fs.name}", fs.table), (f"fs_{fs.name}_latest", fs.online_table)):
        statements.append(
            backend.render("feature_store", "create_view", view=q(view), table=q(table), columns=shown)
        )
    return statements


def upsert_latest_sql(backend: Backend, fs: FeatureSet, source: Quoted) -> str:
    q = backend.quote
    stored = [*fs.columns, SEQ]
    keys = join(q(k) for k in fs.keys)
    current = order_columns(fs, f"{q(fs.online_table)}.")
    excluded = order_columns(fs, "excluded.")
    row = lambda parts: Quoted(  # noqa: E731
        ("{" + ", ".join(f"'c{i}': {p}" for i, p in enumerate(parts)) + "}")
        if backend.asof_join
        else "ROW(" + ", ".join(p.text for p in parts) + ")"
    )
    return backend.render(
        "feature_store",
        "upsert_latest",
        online=q(fs.online_table),
        columns=join(q(c) for c in fs.columns),
        source=source,
        keys=keys,
        order_desc=join(Quoted(f"{o} DESC") for o in order_columns(fs)),
        assignments=join(Quoted(f"{q(c)} = excluded.{q(c)}") for c in stored if c not in fs.keys),
        order_excluded=row(excluded),
        order_current=row(current),
    )


def online_trigger_sql(backend: Backend, fs: FeatureSet) -> list[str]:
    """The trigger that keeps the latest row per entity current as history rows arrive (one
    ``Backend.trigger_sql`` builds it, as it does humility rules' triggers). Its function runs
    as the inserting role (not SECURITY DEFINER), like the insert itself."""
    q = backend.quote
    ((schema,),) = backend.rows(statement("triggers", "current_schema", backend.dialect))
    return backend.trigger_sql(
        f"{fs.table}_latest",
        q(fs.table),
        [upsert_latest_sql(backend, fs, Quoted("new_rows"))],
        function=q(schema, f"{fs.table}_latest"),
    )


def create(
    backend: Backend,
    name: str,
    entity: str,
    *,
    source: Any = None,
    columns: dict[str, str] | None = None,
    event_time: str = "event_time",
    created_time: str | None = None,
    ttl: Any = None,
    features: list[str] | None = None,
    description: str | None = None,
    descriptions: dict[str, str] | None = None,
    statistics: bool = True,
) -> FeatureSet:
    """Register a feature set version from a source's columns (and load its rows), or from
    ``columns`` (name -> SQL type, keys and times included) with no rows. An unchanged schema
    keeps the current version (ttl and description are updated); a changed one makes a new
    version with new tables, and older versions stay as they were."""
    name = identifiers.feature_set_name(name)
    keys = entity_keys(backend, entity)
    identifiers.column_name(event_time)
    if created_time is not None:
        identifiers.column_name(created_time)
    seconds = ttl_seconds(ttl)
    if (source is None) == (columns is None):
        raise FeatureStoreError(
            "give either source= (rows to load) or columns= (a schema), not both or neither"
        )
    if descriptions is not None and not isinstance(descriptions, dict):
        raise FeatureStoreError("descriptions must be a dict of feature name -> text")
    given = None
    if columns is not None:
        if not isinstance(columns, dict):
            raise FeatureStoreError("columns must be a dict of column name -> SQL type")
        given = {identifiers.column_name(c): identifiers.sql_type(t).text for c, t in columns.items()}
    reading = nullcontext() if source is None else Source(backend, source, f"feature set {name!r}")
    with reading as src:
        return _create(
            backend,
            name,
            entity,
            keys,
            src,
            given if src is None else src.columns,
            event_time,
            created_time,
            seconds,
            features,
            description,
            descriptions,
            statistics,
        )


def _create(
    backend,
    name,
    entity,
    keys,
    src,
    columns,
    event_time,
    created_time,
    seconds,
    features,
    description,
    descriptions,
    statistics,
) -> FeatureSet:
    fixed, values = _schema(columns, keys, event_time, created_time, features)
    unknown = set(descriptions or {}) - set(values)
    if unknown:
        raise FeatureStoreError(f"descriptions name columns that are not features: {sorted(unknown)}")
    schema_hash = _schema_hash(keys, event_time, created_time, fixed, values)
    current = latest_version(backend, name)
    if current is not None:
        found = backend.rows(
            statement("feature_store", "get_feature_set", backend.dialect), {"name": name, "version": current}
        )
        if found[0][2] != entity:
            raise FeatureStoreError(f"feature set {name!r} describes entity {found[0][2]!r}, not {entity!r}")
        if found[0][9] == schema_hash:
            with backend.transaction():
                backend.execute(
                    statement("feature_store", "update_feature_set", backend.dialect),
                    {"name": name, "version": current, "ttl_seconds": seconds, "description": description},
                )
            return get(backend, name, current)
    version = (current or 0) + 1
    forget(backend, name)
    table = f"fs_{name}_v{version}"
    fs = FeatureSet(
        name=name,
        version=version,
        entity=entity,
        keys=tuple(keys),
        event_time=event_time,
        created_time=created_time,
        ttl_seconds=seconds,
        table=table,
        online_table=f"{table}_latest",
        features=tuple(Feature(c, t.upper(), (descriptions or {}).get(c)) for c, t in values.items()),
        description=description,
    )
    types = {**fixed, **values}
    for existing in (fs.table, fs.online_table):
        if backend.table_columns(existing) is not None:
            raise FeatureStoreError(f"table {existing!r} exists already; drop or rename it first")
    with backend.transaction():
        for text in _ddl(backend, fs, types, None):
            backend.execute(text)
        backend.execute(
            statement("feature_store", "insert_feature_set", backend.dialect),
            {
                "name": name,
                "version": version,
                "entity": entity,
                "keys": json.dumps(list(keys)),
                "event_time": event_time,
                "created_time": created_time,
                "ttl_seconds": seconds,
                "table_name": fs.table,
                "online_table": fs.online_table,
                "schema_hash": schema_hash,
                "source": None if src is None else src.description[:10_000],
                "description": description,
                "created_by": backend.user,
            },
        )
        for position, feature in enumerate(fs.features):
            backend.execute(
                statement("feature_store", "insert_feature", backend.dialect),
                {
                    "feature_set": name,
                    "version": version,
                    "name": feature.name,
                    "position": position,
                    "data_type": feature.data_type,
                    "description": feature.description,
                },
            )
        fs = get(backend, name, version)
        if src is not None:
            _insert(backend, fs, src)
        audit.record(backend, "create_feature_set", f"{name} v{version}", {"schema_hash": schema_hash})
        if statistics:
            from indb.feature_store import statistics as stats

            stats.compute_feature_set(backend, fs)
    return fs


# -- ingestion ------------------------------------------------------------------------------------
def _check_rows(fs: FeatureSet, columns: dict[str, str]) -> None:
    problems = []
    expected = {c: None for c in fs.columns}
    types = {f.name: f.data_type for f in fs.features}
    for column in fs.columns:
        if column not in columns:
            kind = "key" if column in fs.keys else ("time" if column not in types else types[column])
            problems.append(f"no column {column!r} ({kind})")
            continue
        got = base_type(columns[column])
        want = base_type(types.get(column, "")) if column in types else None
        if column in (fs.event_time, fs.created_time) and columns[column].upper() not in TIME_TYPES:
            problems.append(f"{column!r} is {columns[column]}; expected a TIMESTAMP or DATE")
        elif want in NUMERIC_TYPES and got not in NUMERIC_TYPES and got != "BOOLEAN":
            problems.append(f"feature {column!r} is {columns[column]}; expected {types[column]}")
        elif want == "VARCHAR" and got != "VARCHAR":
            problems.append(f"feature {column!r} is {columns[column]}; expected VARCHAR")
        elif want in TIME_TYPES and got not in TIME_TYPES:
            problems.append(f"feature {column!r} is {columns[column]}; expected {types[column]}")
        elif want == "BOOLEAN" and got != "BOOLEAN":
            problems.append(f"feature {column!r} is {columns[column]}; expected BOOLEAN")
    extra = [c for c in columns if c not in expected]
    if extra:
        problems.append(f"columns {extra} are not in feature set {fs.name!r} version {fs.version}")
    if problems:
        raise FeatureStoreError(
            f"rows for feature set {fs.name!r} version {fs.version} (table {fs.table!r}) do not fit: "
            + "; ".join(problems)
        )


def _insert(backend: Backend, fs: FeatureSet, src: Source) -> int:
    q = backend.quote
    _check_rows(fs, src.columns)
    required = [*fs.keys, fs.event_time]
    condition = Quoted(" OR ".join(f"{q(c)} IS NULL" for c in required))
    ((invalid,),) = backend.rows(
        backend.render("feature_store", "count_invalid_rows", source=src.relation, condition=condition)
    )
    if invalid:
        raise FeatureStoreError(
            f"{invalid} row(s) for feature set {fs.name!r} have a NULL key or event time "
            f"({', '.join(required)}); nothing was loaded"
        )
    columns = join(q(c) for c in fs.columns)
    ((batch,),) = backend.rows(
        backend.render("feature_store", "next_batch", sequence_literal=backend.literal(f"{fs.table}_seq"))
    )
    backend.execute(
        backend.render(
            "feature_store",
            "insert_rows",
            table=q(fs.table),
            columns=columns,
            values=columns,
            source=src.relation,
        ),
        {"batch": int(batch)},
    )
    ((count,),) = backend.rows(f"SELECT count(*) FROM {src.relation}")
    if backend.asof_join and fs.created_time is None:
        _check_time_ties(backend, fs, int(batch))
    return int(count)


BATCH = 4294967296  # _indb_seq = batch * BATCH + row within the batch


def _check_time_ties(backend: Backend, fs: FeatureSet, batch: int) -> None:
    """Record whether two rows share an entity and an event time, checking the rows added
    since the last check (plain SQL inserts included). Without such ties an ASOF join on the
    event time alone is exact; with them it must also order by _indb_seq (slower)."""
    q = backend.quote
    ids = {"name": fs.name, "version": fs.version}
    ((ties, checked),) = backend.rows(statement("feature_store", "get_time_ties", backend.dialect), ids)
    if not ties:
        on = Quoted(" AND ".join(f"h.{q(c)} = n.{q(c)}" for c in [*fs.keys, fs.event_time]))
        low = 0 if checked is None else (int(checked) + 1) * BATCH
        ((rows, matches),) = backend.rows(
            backend.render("feature_store", "count_tie_matches", table=q(fs.table), on=on), {"low": low}
        )
        ties = int(matches) > int(rows)
    backend.execute(
        statement("feature_store", "set_time_ties", backend.dialect),
        {**ids, "found": bool(ties), "batch": batch},
    )


def time_ties_possible(backend: Backend, fs: FeatureSet) -> bool:
    """False when no two stored rows can tie on entity and event time: every row was checked
    at ingestion and none tied."""
    ids = {"name": fs.name, "version": fs.version}
    ((ties, checked),) = backend.rows(statement("feature_store", "get_time_ties", backend.dialect), ids)
    if ties:
        return True
    ((seq,),) = backend.rows(backend.render("feature_store", "max_sequence", table=backend.quote(fs.table)))
    if seq is None:
        return False
    return checked is None or int(seq) // BATCH > int(checked)


def ingest(
    backend: Backend, name: str, data: Any, *, version: int | None = None, statistics: bool = False
) -> int:
    """Append rows (DataFrame, Arrow, table/view name or query) to a feature set version in
    one transaction; the latest-values table follows. Returns the number of rows loaded."""
    fs = get(backend, name, version)
    with Source(backend, data, f"rows for feature set {fs.name!r}") as src, backend.transaction():
        count = _insert(backend, fs, src)
        audit.record(backend, "ingest", f"{fs.name} v{fs.version}", {"rows": count})
        if statistics:
            from indb.feature_store import statistics as stats

            stats.compute_feature_set(backend, fs)
    return count
