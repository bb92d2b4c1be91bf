"""What a page reads: named statements of ``sql/ui.sql`` run with bound values, each kept with
the text a person can copy ("show SQL": the same statement with its values as literals, made
by sqlglot from the statement's tree) and its rows ("show data")."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

import pandas as pd
import sqlglot
from sqlglot import exp

from indb.backends.base import Backend
from indb.errors import DatabaseError, PermissionDeniedError


@dataclass
class Shown:
    """One query of a page: its rows, the SQL that produced them, or why it could not run."""

    title: str
    sql: str
    frame: pd.DataFrame = field(default_factory=pd.DataFrame)
    refused: str | None = None  # the role may not read this (PostgreSQL); the page says so

    @property
    def empty(self) -> bool:
        return self.frame.empty

    def records(self) -> list[dict]:
        return self.frame.to_dict("records")


def _literal(value) -> exp.Expression:
    if value is None or (isinstance(value, float) and value != value):
        return exp.null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float | Decimal):
        return exp.Literal.number(value)
    if isinstance(value, pd.Timestamp | dt.datetime):
        text = pd.Timestamp(value).isoformat(sep=" ")
        return exp.cast(exp.Literal.string(text), exp.DataType.build("TIMESTAMP"))
    if isinstance(value, dt.date):
        return exp.cast(exp.Literal.string(value.isoformat()), exp.DataType.build("DATE"))
    return exp.Literal.string(str(value))


def literal_sql(text: str, params: dict, dialect: str) -> str:
    """``text`` (with ``$name`` parameters) with each parameter replaced by its value as a SQL
    literal node, rendered by sqlglot for ``dialect``: runnable as it is in a SQL client."""

    def substitute(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Placeholder | exp.Parameter):
            name = node.name
            if name in params:
                return _literal(params[name])
        return node

    trees = sqlglot.parse(text, read=dialect)
    return ";\n".join(tree.transform(substitute).sql(dialect=dialect, pretty=True) for tree in trees if tree)


def run(
    backend: Backend, title: str, name: str, params: dict | None = None, *, file: str = "ui", **slots
) -> Shown:
    """Run the statement ``name`` of ``sql/<file>.sql``; a refusal by the database (the role
    may not read the table) comes back as ``Shown.refused`` instead of an error."""
    params = dict(params or {})
    text = backend.render(file, name, **slots)
    shown = Shown(title, literal_sql(text, params, backend.dialect))
    try:
        shown.frame = backend.query(text, params)
    except Exception as e:  # noqa: BLE001 - translated below; anything else is re-raised
        error = backend.translate(e)
        if isinstance(error, PermissionDeniedError):
            shown.refused = _first_line(error)  # names the user, the table and what to grant
        elif isinstance(error, DatabaseError) and "does not exist" in str(error):
            shown.refused = f"not there (yet): {_first_line(error)}"
        else:
            raise error from None
    return shown


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0]
