"""indb's SQL layer: its own expression nodes and one sqlglot dialect per backend rendering them.

Compiled models hold a few things no SQL dialect has a node for: an error raised from inside an
expression, truncation toward zero, a shared sub-expression ("let", :mod:`shared`), the
lambdas or PL/pgSQL helper calls that compute lets once per row, and (PostgreSQL) floats that
must stay DOUBLE PRECISION. Each is an :class:`~sqlglot.exp.Expression` subclass here, and each
backend's dialect renders it in its ``Generator.TRANSFORMS``, as sqlglot's own dialects do for
theirs. SQL text is produced once, from the tree; nothing searches or rewrites rendered text, so
a model's strings (categories, labels) can only ever be string literals.

>>> render(Fail(this=exp.Literal.string("boom")), "postgres")
"indb.fail('boom')"
"""

from __future__ import annotations

import re

from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.dialects.postgres import Postgres
from sqlglot.dialects.spark import Spark


class Fail(exp.Expression):
    """Raise ``this`` (a string literal) as an error when evaluated."""

    arg_types = {"this": True}


class Trunc(exp.Expression):
    """Truncation toward zero (before a cast to an integer type)."""

    arg_types = {"this": True}


class LetRef(exp.Expression):
    """A shared sub-expression, by name (``this``, an Identifier); see :mod:`shared`. Rendered through
    the generator's plan: in place, or as a slot of a level of lets."""

    arg_types = {"this": True}


class LetBody(exp.Expression):
    """A let's own expression, as the generator rendered it for the current plan."""

    arg_types = {"this": True}


class LevelRef(exp.Expression):
    """Item ``index`` of the level-``this`` array of lets (``indb_l<level>[<index>]``)."""

    arg_types = {"this": True, "index": True}


class LetLevel(exp.Expression):
    """``this`` computed with the lets ``expressions`` (LetBody nodes) bound once per row as
    level ``level``: a lambda over a one-element list (DuckDB, Spark)."""

    arg_types = {"this": True, "expressions": True, "level": True}


class HelperCall(exp.Expression):
    """A call of the PL/pgSQL helper ``"<this>"."<name>"`` (a compiled model's chain)."""

    arg_types = {"this": True, "name": True, "expressions": False}


class Pick(exp.Expression):
    """Element ``index`` (already in the dialect's index base) of the array ``this``."""

    arg_types = {"this": True, "index": True}


class Planned(exp.Expression):
    """``this`` rendered by ``plan``, the generator holding its plan of lets: a compiled output
    that can sit in a larger statement (e.g. a SELECT of the prediction and probabilities, whose
    plans differ) rendered in one pass."""

    arg_types = {"this": True, "plan": True}


class _Lets:
    """Rendering of lets: the state of one plan (:meth:`shared.Levels._plan`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.indb_slots: dict[str, exp.Expression | None] = {}  # None: written in place
        self.indb_bodies: dict[str, str] = {}

    def _let(self, e: LetRef) -> str:
        slot = self.indb_slots[e.name]
        return f"({self.indb_bodies[e.name]})" if slot is None else self.sql(slot)

    def _body(self, e: LetBody) -> str:
        return self.indb_bodies[e.name]

    def _level_ref(self, e: LevelRef) -> str:
        return f"indb_l{int(e.this)}[{int(e.args['index'])}]"

    def _helper_call(self, e: HelperCall) -> str:
        name = self.sql(
            exp.Dot(
                this=exp.to_identifier(e.this, quoted=True),
                expression=exp.to_identifier(e.args["name"], quoted=True),
            )
        )
        return f"{name}({self.expressions(e, flat=True)})"

    def _planned(self, e: Planned) -> str:
        plan = e.args["plan"]
        if type(plan).__qualname__ != type(self).__qualname__:
            raise ValueError("a compiled output rendered in another dialect than it was planned for")
        return plan.sql(e.this)

    def _pick(self, e: Pick) -> str:
        return f"({self.sql(e, 'this')})[{int(e.args['index'])}]"


def _transforms(base: dict, fail: str, trunc) -> dict:
    return {
        **base,
        Fail: lambda self, e: self.func(fail, e.this, normalize=False),
        Trunc: trunc,
        LetRef: _Lets._let,
        LetBody: _Lets._body,
        LevelRef: _Lets._level_ref,
        HelperCall: _Lets._helper_call,
        Pick: _Lets._pick,
        Planned: _Lets._planned,
    }


def _duckdb_level(self, e: LetLevel) -> str:
    j = int(e.args["level"])
    return f"list_transform([[{self.expressions(e, flat=True)}]], lambda indb_l{j}: {self.sql(e, 'this')})[1]"


def _spark_level(self, e: LetLevel) -> str:
    j = int(e.args["level"])
    return f"transform(array(array({self.expressions(e, flat=True)})), indb_l{j} -> {self.sql(e, 'this')})[0]"


def _unsupported_level(self, e: LetLevel) -> str:
    raise NotImplementedError("PostgreSQL computes lets through helper functions, not lambdas")


class IndbDuckDB(DuckDB):
    class Generator(_Lets, DuckDB.Generator):
        TRANSFORMS = {
            **_transforms(DuckDB.Generator.TRANSFORMS, "error", lambda self, e: self.func("TRUNC", e.this)),
            LetLevel: _duckdb_level,
        }


class IndbSpark(Spark):
    class Generator(_Lets, Spark.Generator):
        # Spark's TRUNC is for dates only, and its CAST to an integral type truncates already.
        TRANSFORMS = {
            **_transforms(
                Spark.Generator.TRANSFORMS, "raise_error", lambda self, e: f"({self.sql(e, 'this')})"
            ),
            LetLevel: _spark_level,
        }


_FLOAT = re.compile(r"\d+(?:\.\d+)?e[-+]?\d+|\d+\.\d+")


class IndbPostgres(Postgres):
    class Generator(_Lets, Postgres.Generator):
        TRANSFORMS = {
            **_transforms(
                Postgres.Generator.TRANSFORMS, "indb.fail", lambda self, e: self.func("TRUNC", e.this)
            ),
            LetLevel: _unsupported_level,
        }

        def literal_sql(self, expression: exp.Literal) -> str:
            text = expression.this or ""
            if expression.is_string:
                if "\\" in text:
                    # E'' reads the same whatever standard_conforming_strings is; a plain '' with
                    # a backslash does not (off: the backslash escapes the next character).
                    return "E'" + text.replace("\\", "\\\\").replace("'", "''") + "'"
                return super().literal_sql(expression)
            if _FLOAT.fullmatch(text):  # 1.5e0 is NUMERIC there, and NUMERIC arithmetic is ~4x slower
                return f"{text}::float8"
            return text


DIALECTS = {"duckdb": IndbDuckDB, "postgres": IndbPostgres, "spark": IndbSpark}


def generator(dialect: str):
    """A fresh generator for ``dialect`` (it holds the plan of lets being rendered)."""
    try:
        return DIALECTS[dialect]().generator()
    except KeyError:
        raise ValueError(f"unknown SQL dialect {dialect!r}; expected one of {', '.join(DIALECTS)}") from None


def render(expression: exp.Expression, dialect: str, using=None) -> str:
    """``expression`` as ``dialect`` SQL (``using``: a generator holding a plan of lets).
    copy=False: the generator's defensive copy costs as much as generating a big model."""
    return (using or generator(dialect)).generate(expression, copy=False)
