"""Sub-expressions computed once per row.

A tree ensemble's score feeds the label and every probability; an MLP's hidden unit feeds
every unit of the next layer. Written out in place, such values repeat many times and the SQL
grows with each use. The compiler binds them to names instead ("lets"), and rendering computes
each one once per row:

* DuckDB and Spark: a lambda over a one-element list per level of lets,
  ``list_transform([[a, b]], lambda indb_l1: ... indb_l1[1] ...)[1]``.
* PostgreSQL has no lambdas and does not share repeated sub-expressions, so a chain of SQL
  functions carries them: level ``j`` is an array parameter of function ``j``, filled in by
  the caller. A SQL function whose parameter is used twice is called rather than inlined,
  so the array is computed once.

A let is a numeric value of one row; lets used only once are written back in place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlglot import exp

from indb.udfs.compiler import sql

LET = "indb_let_"  # column names standing for lets while compiling
MIN_NODES = 12  # smaller expressions are cheaper to repeat than to share
_REFERENCE = re.compile(r"\bindb_l(\d+)_(\d+)\b")


def _is_let(node: exp.Expression) -> bool:
    return isinstance(node, exp.Column) and node.name.startswith(LET) and not node.table


def _references(expression: exp.Expression) -> list[str]:
    return [node.name for node in expression.find_all(exp.Column) if _is_let(node)]


def numeric(e: exp.Expression) -> bool:
    """Whether ``e`` is a number (lets travel in DOUBLE arrays)."""
    if isinstance(e, exp.Predicate | exp.Boolean | exp.Not | exp.Connector):
        return False
    if isinstance(e, exp.Literal):  # integers stay exact where they are (labels, big counts)
        return not e.is_string and not e.is_int
    if isinstance(e, exp.Paren):
        return numeric(e.this)
    if isinstance(e, exp.Cast):
        return e.to.is_type(*exp.DataType.REAL_TYPES)
    if isinstance(e, exp.Case):
        results = [i.args["true"] for i in e.args["ifs"]] + [e.args.get("default")]
        return all(r is not None and numeric(r) for r in results)
    if isinstance(e, exp.Column):
        return _is_let(e)
    return True


class Lets:
    """The named sub-expressions of one compiled model, in the order they were bound."""

    def __init__(self):
        self.bodies: dict[str, exp.Expression] = {}

    def bind(self, element: sql.Element) -> sql.Element:
        """A name for ``element`` when it is a number worth sharing, else ``element`` itself."""
        if sql.is_const(element) or not numeric(element):
            return element
        size = 0
        for _ in element.walk():
            size += 1
            if size >= MIN_NODES:
                break
        else:
            return element
        name = f"{LET}{len(self.bodies) + 1}"
        self.bodies[name] = element
        return exp.column(name)

    def finish(self, outputs: list[exp.Expression]) -> tuple[list[exp.Expression], Levels]:
        """Write lets used once back in place; group the rest into levels."""
        uses: dict[str, int] = dict.fromkeys(self.bodies, 0)
        for expression in [*outputs, *self.bodies.values()]:
            for name in _references(expression):
                uses[name] += 1
        inline: dict[str, exp.Expression] = {}
        kept: dict[str, exp.Expression] = {}
        for name, body in self.bodies.items():
            body = _substitute(body, inline)
            if uses[name] == 1:
                inline[name] = body
            elif uses[name] > 1:
                kept[name] = body
        outputs = [_substitute(o, inline) for o in outputs]
        return outputs, Levels(kept)


def _substitute(expression: exp.Expression, values: dict[str, exp.Expression]) -> exp.Expression:
    if not values or not any(name in values for name in _references(expression)):
        return expression

    def replace(node):
        if _is_let(node) and node.name in values:
            return sql.paren(values[node.name].copy())
        return node

    return expression.transform(replace)


@dataclass
class Helper:
    """One SQL function of a PostgreSQL chain."""

    name: str
    levels: int  # array parameters after the inputs
    returns: str  # "prediction" (the prediction's type) or "DOUBLE[]"
    body: str  # SELECT ...


class Levels:
    """Lets grouped so that each level depends only on the inputs and earlier levels."""

    def __init__(self, bodies: dict[str, exp.Expression]):
        self.bodies = bodies
        self.level: dict[str, int] = {}
        for name, body in bodies.items():
            self.level[name] = 1 + max((self.level[r] for r in _references(body)), default=0)

    def needed(self, expression: exp.Expression) -> list[list[str]]:
        """The lets ``expression`` depends on, level by level (empty levels dropped)."""
        seen: set[str] = set()
        stack = _references(expression)
        while stack:
            name = stack.pop()
            if name not in seen:
                seen.add(name)
                stack += _references(self.bodies[name])
        by_level: dict[int, list[str]] = {}
        for name in self.bodies:  # binding order, so positions are stable
            if name in seen:
                by_level.setdefault(self.level[name], []).append(name)
        return [by_level[k] for k in sorted(by_level)]

    def inline(self, expression: exp.Expression) -> exp.Expression:
        """``expression`` with every let written out in place (no sharing)."""
        done: dict[str, exp.Expression] = {}
        for name, body in self.bodies.items():
            done[name] = _substitute(body, done)
        return _substitute(expression, done)

    # -- rendering ------------------------------------------------------------------------------
    def _text(self, expression, slots, render) -> str:
        placeholders = {name: exp.column(f"indb_l{j}_{i}") for name, (j, i) in slots.items()}
        return render(_substitute(expression, placeholders))

    def lambdas(self, expression: exp.Expression, dialect: str, render) -> str:
        """DuckDB / Spark: one lambda per level."""
        levels = self.needed(expression)
        slots = {name: (j, i) for j, names in enumerate(levels, 1) for i, name in enumerate(names, 1)}
        spark = dialect == "spark"

        def reference(match):
            j, i = match.groups()
            return f"indb_l{j}[{int(i) - 1}]" if spark else f"indb_l{j}[{i}]"

        text = _REFERENCE.sub(reference, self._text(expression, slots, render))
        for j in range(len(levels), 0, -1):
            items = ", ".join(
                _REFERENCE.sub(reference, self._text(self.bodies[n], slots, render)) for n in levels[j - 1]
            )
            if spark:
                text = f"transform(array(array({items})), indb_l{j} -> {text})[0]"
            else:
                text = f"list_transform([[{items}]], lambda indb_l{j}: {text})[1]"
        return text

    def chain(
        self,
        expression: exp.Expression,
        render,
        *,
        schema: str,
        name: str,
        arguments: list[str],
        returns: str,
    ) -> tuple[str, list[Helper]]:
        """PostgreSQL: the call that computes ``expression``, and the functions it needs
        (``schema.name1``, ``schema.name2``, ...)."""
        levels = self.needed(expression)
        if not levels:
            return render(expression), []
        slots = {name: (j, i) for j, names in enumerate(levels, 1) for i, name in enumerate(names, 1)}

        def text(e):
            return _REFERENCE.sub(r"indb_l\1[\2]", self._text(e, slots, render))

        def array(j):
            items = ", ".join(text(self.bodies[n]) for n in levels[j - 1])
            return f"CAST(ARRAY[{items}] AS DOUBLE PRECISION[])"

        helpers = []
        for j in range(1, len(levels) + 1):
            passed = ", ".join([*arguments, *(f"indb_l{k}" for k in range(1, j + 1))])
            if j < len(levels):
                body = f'SELECT "{schema}"."{name}{j + 1}"({passed}, {array(j + 1)})'
            else:
                body = f"SELECT {text(expression)}"
            helpers.append(Helper(f"{name}{j}", j, returns, body))
        # Last first: PostgreSQL checks a SQL function's body when it is created.
        return f'"{schema}"."{name}1"({", ".join([*arguments, array(1)])})', helpers[::-1]
