"""Queries users hand to indb: feature-set sources, training-set spines, monitor references.

Such text is untrusted. It is parsed once with sqlglot and must be exactly one read-only
query (SELECT, UNION, ...); anything else is refused with the reason. The tree, not the
text, is what indb puts into its own statements, so a query cannot close a parenthesis and
append a statement of its own.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from indb.errors import QueryError

# Nodes that write, change the schema or reach outside the query: never in a user's query.
_FORBIDDEN = (
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Merge,
    exp.Create,
    exp.Drop,
    exp.Alter,
    exp.Command,
    exp.Copy,
    exp.Set,
    exp.Use,
    exp.Transaction,
    exp.Commit,
    exp.Rollback,
    exp.Pragma,
    exp.Into,
)


def select_query(text: str, dialect: str, what: str = "query") -> exp.Query:
    """``text`` parsed as one read-only query in ``dialect``; QueryError naming ``what``
    when it does not parse, holds several statements, or is not a plain SELECT."""
    if not isinstance(text, str) or not text.strip():
        raise QueryError(f"{what} must be a non-empty SELECT query, got {text!r}")
    try:
        trees = [t for t in sqlglot.parse(text, dialect=dialect) if t is not None]
    except sqlglot.errors.SqlglotError as e:
        raise QueryError(f"{what} does not parse as SQL: {str(e).splitlines()[0]}") from None
    if len(trees) != 1:
        raise QueryError(f"{what} must be one SELECT statement; found {len(trees)} statements")
    tree = trees[0]
    if not isinstance(tree, exp.Query):
        raise QueryError(f"{what} must be a SELECT query; found {tree.key.upper()}")
    for node in tree.walk():
        if isinstance(node, _FORBIDDEN):
            raise QueryError(f"{what} may only read: it contains {node.key.upper()}")
    return tree


def subquery(text: str, dialect: str, alias: str, what: str = "query") -> exp.Subquery:
    """``(<query>) AS alias`` as a tree, after :func:`select_query` checked it."""
    return select_query(text, dialect, what).subquery(alias)


def sql(text: str, dialect: str, alias: str | None = None, what: str = "query") -> str:
    """The checked query rendered once for ``dialect`` (as a subquery when ``alias`` is given),
    for statements still assembled from rendered parts."""
    tree = subquery(text, dialect, alias, what) if alias else select_query(text, dialect, what)
    return tree.sql(dialect=dialect)
