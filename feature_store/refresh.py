"""Refreshing a feature set from the source it was created from.

``indb.feature_sets.source`` keeps what a version was created from: a table or view name, a
SELECT query (text, at most 10,000 characters), or the type of an in-memory frame
("DataFrame", "Table", "RecordBatchReader"), which cannot be read again. A refresh re-reads
a table or query source and appends only its rows whose entity keys and event time the
history table does not hold yet, so running it again without new source rows adds nothing.
A corrected value for a (keys, event time) already stored is not re-read: ingest it.
"""

from __future__ import annotations

from sqlglot import exp

from indb import identifiers, userquery
from indb.backends.base import Backend
from indb.errors import InvalidNameError
from indb.feature_store import sets, times, trees
from indb.feature_store.sets import FeatureSet, FeatureStoreError
from indb.sql import statement

FRAMES = ("DataFrame", "Table", "RecordBatchReader")
STORED_LENGTH = 10_000  # sets._create keeps this much of the source's text


def stored_source(backend: Backend, fs: FeatureSet) -> str:
    """The table name or query ``fs`` was created from; a clear error when there is none."""
    found = backend.rows(
        statement("feature_store", "get_feature_set", backend.dialect),
        {"name": fs.name, "version": fs.version},
    )
    source = found[0][10] if found else None
    where = f"feature set {fs.name!r} version {fs.version}"
    if source is None or not str(source).strip():
        raise FeatureStoreError(
            f"{where} has no stored source query (it was created from columns=): nothing to refresh "
            "from; ingest rows with a query instead"
        )
    if source in FRAMES:
        raise FeatureStoreError(
            f"{where} was created from an in-memory {source}, not a table or query: nothing to "
            "refresh from; ingest rows with a query instead"
        )
    if len(source) >= STORED_LENGTH:
        raise FeatureStoreError(
            f"{where}: its stored source was cut at {STORED_LENGTH:,} characters, so it cannot be "
            "re-read; ingest rows with a query instead (or a view holding the query as its source)"
        )
    return str(source)


def _source_tree(backend: Backend, source: str, what: str) -> exp.Expression:
    try:
        return trees.table_node(identifiers.table_name(source)).as_("indb_source", quoted=True)
    except InvalidNameError:
        return userquery.subquery(source, backend.dialect, "indb_source", what)


def new_rows_query(backend: Backend, fs: FeatureSet, source: str) -> str:
    """The source's rows whose keys and event time (as stored) are not in the history table."""
    what = f"stored source of feature set {fs.name!r}"
    relation = _source_tree(backend, source, what)
    columns = backend.query_columns(exp.select(exp.Star()).from_(relation.copy()).sql(backend.dialect))
    if fs.event_time not in columns:
        raise FeatureStoreError(f"the {what} no longer has the event time column {fs.event_time!r}")
    event = trees.column(fs.event_time, "indb_source")
    if times.kind(columns[fs.event_time]) is not None:
        event = times.convert(event, columns[fs.event_time], fs.time_type)
    same = [exp.EQ(this=trees.column(fs.event_time, "h"), expression=event)]
    same += [exp.EQ(this=trees.column(k, "h"), expression=trees.column(k, "indb_source")) for k in fs.keys]
    stored = exp.select(exp.Literal.number(1)).from_(trees.table_node(fs.table).as_("h", quoted=True))
    query = (
        exp.select(exp.Star()).from_(relation).where(exp.not_(exp.Exists(this=stored.where(exp.and_(*same)))))
    )
    return query.sql(backend.dialect)


def refresh(backend: Backend, name: str) -> tuple[FeatureSet, int]:
    """Append the new rows of the newest version's stored source; (the version, rows added)."""
    fs = sets.get(backend, name)
    query = new_rows_query(backend, fs, stored_source(backend, fs))
    count = exp.select(exp.func("count", exp.Star())).from_(trees.table_node(fs.table)).sql(backend.dialect)
    # ingest counts its source after loading it, when this query finds nothing new any more
    with backend.transaction():
        ((before,),) = backend.rows(count)
        sets.ingest(backend, fs.name, query, version=fs.version)
        ((after,),) = backend.rows(count)
    return fs, int(after) - int(before)
