"""``db.insert``: rows into a table, scored as any INSERT into it is, by the fastest way the
backend has.

A deployed table scores every INSERT through its trigger. On DuckDB (2.0) an INSERT into a
table with a statement trigger runs as INSERT ... RETURNING, on one thread, even when the
trigger is skipped; the backend's :meth:`~indb.backends.base.Backend.insert_rows` may instead
drop the table's triggers in db.insert's own transaction, insert in parallel, run the
triggers' own statements over the inserted rows and make the triggers again before the commit
(other connections see them throughout; inside a caller's transaction, or while another
db.insert or a deploy holds them, they are skipped instead: ``DuckDBBackend.insert_rows``).
Either way the rows and their predictions commit together or not at all, scored by the
version deployed when the insert ran. A deploy, switch or undeploy that meets the dropped
triggers waits for the insert to commit (``DuckDBBackend.retrying``).
"""

from __future__ import annotations

import difflib
from typing import Any

from sqlglot import exp

from indb import deployments, identifiers
from indb.backends.base import Backend
from indb.errors import NotFoundError, ScoringError
from indb.sqltypes import COMPATIBLE, base_type

# Set by the database on every row of a request table (README, "Request tables").
SERVER_COLUMNS = ("id", "created_at")


def insert(backend: Backend, table: str, data: Any) -> int:
    """Insert ``data`` into ``table`` in one transaction and return the number of rows.

    ``data``: a pandas DataFrame or pyarrow Table (read where it is, not copied), a list of
    dicts (one per row), a table or view name, or a SELECT query (whose rows never reach
    Python; checked to be one read-only query). Columns are matched
    to the table's by name; the table's other columns take their defaults. A deployed table's
    rows are scored as by ``INSERT INTO table ... SELECT``: exactly one prediction per row, by
    the version deployed when the insert ran, rolled back with the rows on any error.
    """
    from indb.feature_store.sets import Source

    table = identifiers.table_name(table)
    columns = backend.table_columns(table)
    if columns is None:
        raise NotFoundError("table", table, deployments.deployed_tables(backend))
    if isinstance(data, list):
        data = _frame_of(data, table)
    with Source(backend, data, f"rows for table {table!r}") as source:
        pairs = _matched(table, columns, source.columns)
        target = exp.Schema(
            this=exp.Table(this=exp.to_identifier(table, quoted=True)),
            expressions=[exp.to_identifier(ours, quoted=True) for ours, _ in pairs],
        )
        # the source is the only relation read: its columns need no qualifier
        rows = exp.select(*(exp.column(theirs, quoted=True) for _, theirs in pairs)).from_(source.tree.copy())
        text = exp.insert(rows, target).sql(dialect=backend.dialect)
        with backend.transaction():
            return backend.insert_rows(table, text, rows=_length(source.data))


def _length(data: Any) -> int | None:
    """The number of rows of a DataFrame or Arrow table (None for a query or table name)."""
    return None if isinstance(data, str) else len(data)


def _frame_of(rows: list, table: str):
    import pandas as pd

    if not rows or not all(isinstance(r, dict) for r in rows):
        raise ScoringError(f"rows for table {table!r}: a list must hold one dict per row (and at least one)")
    return pd.DataFrame.from_records(rows)


def _matched(table: str, columns: dict[str, str], given: dict[str, str]) -> list[tuple[str, str]]:
    """(table column, source column) pairs, matched by name without regard to case; every
    problem named at once (the table's and the source's column and type)."""
    lowered = {c.lower(): c for c in columns}
    pairs, problems = [], []
    for name, kind in given.items():
        ours = lowered.get(name.lower())
        if name.lower() in SERVER_COLUMNS and ours is not None:
            problems.append(f"{table}.{ours} is set by the database: leave column {name!r} out")
        elif ours is None:
            near = difflib.get_close_matches(name.lower(), list(lowered), n=1)
            hint = f"; did you mean {lowered[near[0]]!r}?" if near else ""
            problems.append(f"table {table!r} has no column {name!r}{hint}")
        elif not _fits(kind, columns[ours]):
            problems.append(f"{table}.{ours} is {columns[ours]}; the rows give {name!r} as {kind}")
        else:
            pairs.append((ours, name))
    if not pairs and not problems:
        problems.append(f"the rows have no columns (table {table!r} takes {', '.join(columns)})")
    if problems:
        takes = ", ".join(f"{c} {t}" for c, t in columns.items() if c.lower() not in SERVER_COLUMNS)
        raise ScoringError("; ".join(problems) + f" (nothing was inserted; {table!r} takes: {takes})")
    return pairs


def _fits(given: str, wanted: str) -> bool:
    """Whether a source column of type ``given`` may fill a column of type ``wanted`` without a
    lossy or surprising cast (text into numbers, fractions into integers); types indb does
    not score (times, ...) are left to the database's own casts."""
    got, want = base_type(given), base_type(wanted)
    if got in ("NULL", '"NULL"', want):
        return True
    if want in COMPATIBLE:
        return got in COMPATIBLE[want]
    return True
