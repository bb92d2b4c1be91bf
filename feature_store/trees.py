"""Small sqlglot builders the feature store's statements share: quoted names, bound
parameters, and the order that says which row of an entity is the latest.

Names reach these only after :mod:`indb.identifiers` validated them; they become quoted
identifier nodes, values become placeholders, and text is produced once per statement with
``.sql(dialect=...)``.
"""

from __future__ import annotations

from sqlglot import exp

SEQ = "_indb_seq"


def column(name: str, table: str | None = None) -> exp.Column:
    """A quoted column reference (``"table"."name"``)."""
    return exp.column(name, table, quoted=True)


def table_node(name: str) -> exp.Table:
    """A quoted table name."""
    return exp.Table(this=exp.to_identifier(name, quoted=True))


def param(name: str) -> exp.Placeholder:
    """A bound parameter (``$name``; psycopg's ``%(name)s`` on PostgreSQL)."""
    return exp.Placeholder(this=name)


def desc(value: exp.Expression) -> exp.Ordered:
    # NULLS FIRST is PostgreSQL's default for DESC: ORDER BY matches the history index
    return exp.Ordered(this=value, desc=True, nulls_first=True)


def order_by(fs, table: str | None = None) -> list[exp.Expression]:
    """Which row of an entity is the latest: event time, then created time (a NULL one counts
    as the event time), then ingestion order."""
    order: list[exp.Expression] = [column(fs.event_time, table)]
    if fs.created_time:
        created = column(fs.created_time, table)
        order.append(exp.Coalesce(this=created, expressions=[column(fs.event_time, table)]))
    order.append(column(SEQ, table))
    return order
