"""Online lookup: the latest features of given entities, read from the latest-values tables.

Each feature set version keeps ``fs_<name>_v<N>_latest`` (one row per entity, primary key on
the entity keys) current through an insert trigger on its history table; analysts read the
view ``fs_<name>_latest``. ``materialize()`` rebuilds a latest-values table from history.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import pandas as pd
import sqlglot
from sqlglot import exp

from indb import audit
from indb.backends.base import Backend
from indb.feature_store import sets, training
from indb.feature_store.pit import ROW, column, param, table_node
from indb.feature_store.sets import FeatureStoreError
from indb.identifiers import Quoted


def _entities_frame(entities: Any) -> pd.DataFrame:
    if isinstance(entities, dict):
        return pd.DataFrame([entities])
    if isinstance(entities, pd.DataFrame):
        return entities
    if isinstance(entities, list | tuple) and entities and all(isinstance(e, dict) for e in entities):
        return pd.DataFrame(list(entities))
    raise FeatureStoreError(
        "entities must be a dict of key values, a list of them, or a DataFrame; "
        f"got {type(entities).__name__}"
    )


def online_features(backend: Backend, features: list[str], entities: Any, *, as_dict: bool = False):
    """One row per entity (in the order given): its keys, then the latest value of each feature
    (NULL for an entity without rows). ``as_dict``: plain dicts instead of a DataFrame (one dict
    for one entity given as a dict, else a list of them, one per entity), for a service that
    answers one request at a time: building a one-row DataFrame costs about as much as the
    point query itself."""
    if not isinstance(as_dict, bool):
        raise FeatureStoreError(f"as_dict must be True or False, got {as_dict!r}")
    try:
        return _lookup(backend, features, entities, as_dict)
    except FeatureStoreError:
        raise
    except Exception:
        # a cached feature set shape may be stale (a new version made elsewhere): once more
        for item in features if isinstance(features, list | tuple) else ():
            if isinstance(item, str):
                sets.forget(backend, item.split(":")[0].split("@")[0].strip())
        return _lookup(backend, features, entities, as_dict)


def _lookup(backend: Backend, features: list[str], entities: Any, as_dict: bool):
    selections = training.parse_features(backend, features, cached=True)
    if isinstance(entities, dict):
        keys = dict.fromkeys(k for s in selections for k in s.feature_set.keys)
        missing = [k for k in keys if k not in entities]
        if missing:
            raise FeatureStoreError(f"entities need key column(s) {missing}; got {list(entities)}")
        row = _one(backend, selections, entities)
        if as_dict:
            return row
        # one row as a tuple infers each column's dtype as {column: [value]} does (tested)
        return pd.DataFrame([tuple(row.values())], columns=_labels(tuple(row)).copy())
    frame = _entities_frame(entities)
    needed = dict.fromkeys(k for s in selections for k in s.feature_set.keys)
    missing = [k for k in needed if k not in frame.columns]
    if missing:
        raise FeatureStoreError(f"entities need key column(s) {missing}; got {list(frame.columns)}")
    found = _many(backend, selections, frame)
    return found.to_dict("records") if as_dict else found


def _table(selection) -> str:
    """A pinned version's latest-values table, else the view showing the newest version."""
    fs = selection.feature_set
    return fs.online_table if selection.pinned else f"fs_{fs.name}_latest"


@lru_cache(maxsize=1024)
def _lookup_sql(dialect: str, table: str, columns: tuple[str, ...], keys: tuple[str, ...]) -> str:
    """One entity's row; the key values are bound parameters named like the keys."""
    query = exp.select(*(column(c) for c in columns)).from_(table_node(table))
    if keys:  # an entity without keys has one row
        query = query.where(exp.and_(*(exp.EQ(this=column(k), expression=param(k)) for k in keys)))
    return query.sql(dialect)


@lru_cache(maxsize=1024)
def _labels(columns: tuple[str, ...]) -> pd.Index:
    """Column labels, built once per output shape: a pandas Index of strings costs more than
    the rest of a one-row frame."""
    return pd.Index(columns)


def _one(backend: Backend, selections, entity: dict) -> dict:
    """The entity's keys (as given) and its features' latest values, by output name."""
    row = dict(entity)
    for selection in selections:
        fs = selection.feature_set
        columns = tuple(c for c, _ in selection.features)
        found = backend.rows(
            _lookup_sql(backend.dialect, _table(selection), columns, fs.keys),
            {k: _python(entity[k]) for k in fs.keys},
        )
        values = found[0] if found else (None,) * len(selection.features)
        for (_, output), value in zip(selection.features, values, strict=True):
            row[output] = value
    return row


def _python(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _many(backend: Backend, selections, frame: pd.DataFrame) -> pd.DataFrame:
    """Entities in a DataFrame: staged, numbered, each feature set's latest values joined."""
    with backend.staged(frame) as staged:
        table = sqlglot.parse_one(staged.text, into=exp.Table, read=backend.dialect)
        numbered = exp.select(exp.Star(), exp.alias_(exp.Window(this=exp.RowNumber()), ROW, quoted=True))
        query = exp.select(*(column(str(c), "e") for c in frame.columns)).from_(
            numbered.from_(table).subquery("e")
        )
        for n, selection in enumerate(selections, start=1):
            fs, alias = selection.feature_set, f"f{n}"
            equal = [exp.EQ(this=column(k, "e"), expression=column(k, alias)) for k in fs.keys]
            on = exp.and_(*equal) if equal else exp.true()
            query = query.join(table_node(_table(selection)).as_(alias, quoted=True), join_type="LEFT", on=on)
            query = query.select(
                *(exp.alias_(column(c, alias), o, quoted=True) for c, o in selection.features)
            )
        return backend.query(query.order_by(column(ROW, "e")).sql(backend.dialect))


def materialize(backend: Backend, name: str, version: int | None = None) -> int:
    """Rebuild a feature set version's latest-values table from its history; returns its rows."""
    fs = sets.get(backend, name, version)
    q = backend.quote
    with backend.transaction():
        backend.execute(backend.render("feature_store", "delete_all", table=q(fs.online_table)))
        backend.execute(sets.upsert_latest_sql(backend, fs, Quoted(q(fs.table).text)))
        count_rows = exp.select(exp.func("count", exp.Star())).from_(table_node(fs.online_table))
        ((count,),) = backend.rows(count_rows.sql(backend.dialect))
        audit.record(backend, "materialize_online", f"{fs.name} v{fs.version}", {"rows": int(count)})
    return int(count)
