"""Sub-expressions computed once per row.

A tree ensemble's score feeds the label and every probability; an MLP's hidden unit feeds
every unit of the next layer. Written out in place, such values repeat many times and the SQL
grows with each use. The compiler binds them to names instead ("lets"), and rendering computes
each one once per row:

* DuckDB and Spark: a lambda over a one-element list per level of lets,
  ``list_transform([[a, b]], lambda indb_l1: ... indb_l1[1] ...)[1]``.
* PostgreSQL has no lambdas and does not share repeated sub-expressions, so a chain of
  PL/pgSQL functions carries them: level ``j`` is an array parameter of function ``j``,
  filled in by function ``j - 1``. (PL/pgSQL rather than SQL functions: PostgreSQL 15 plans a
  SQL function that is not inlined again in every query, which costs more than a tree
  ensemble's arithmetic for one row; PL/pgSQL keeps its plans for the session.)
  Where no functions can be installed (PostgreSQL text shown by a database of another kind,
  transforms' views), one expression carries them: a scalar subquery with one LATERAL
  subquery per level (:meth:`Levels.subqueries`).

A let is a numeric value of one row; lets used only once are written back in place.
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlglot import exp

from indb.udfs.compiler import sql
from indb.udfs.compiler.dialects import HelperCall, LetBody, LetLevel, LetRef, LevelRef, Planned
from indb.udfs.compiler.errors import ModelRefused

LET = "indb_let_"  # names of lets while compiling (LetRef nodes, never columns)
MIN_NODES = 12  # smaller expressions are cheaper to repeat than to share
INLINE_BYTES = 2_000  # DuckDB/Spark: lets shorter than this are written in place
INLINE_BYTES_POSTGRES = 600  # PostgreSQL repeats them (no shared sub-expressions) but skips a call
MAX_SQL_BYTES = 64_000_000  # compiled SQL beyond this is refused (ModelRefused)
RENDER_SECONDS = 120.0


@contextmanager
def paused_gc() -> Iterator[None]:
    """Python's cyclic garbage collector held off while a model's expression trees are built
    or rendered. sqlglot nodes point at their parents, so a forest is tens of thousands of
    cyclic objects that stay alive, and every collection rescans them all: on rf20d10
    (23,868 nodes) collections took 1-5 of a 1.2-6 s compile inside a process holding a
    deployment's other objects (benchmarks/RESULTS.md, issue 17 third pass). Nothing here
    leaves cyclic garbage worth collecting early; the collector runs again afterwards. Only
    the thread that paused it resumes it, and only if it was running."""
    running = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if running:
            gc.enable()


def _is_let(node: exp.Expression) -> bool:
    return isinstance(node, LetRef)


def _references(expression: exp.Expression) -> list[str]:
    """The names of the lets ``expression`` refers to, one per reference (in no set order). A
    plain stack over the nodes' arguments: sqlglot's ``find_all`` costs ~3x as much, and this
    walks every node of every forest."""
    found, stack = [], [expression]
    while stack:
        node = stack.pop()
        if isinstance(node, LetRef):
            found.append(node.name)
            continue
        for value in node.args.values():
            if isinstance(value, exp.Expression):
                stack.append(value)
            elif isinstance(value, list):
                stack.extend(v for v in value if isinstance(v, exp.Expression))
    return found


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
    if isinstance(e, LetRef):
        return True
    if isinstance(e, exp.Column):
        return False
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
        return LetRef(this=exp.to_identifier(name))  # as many nodes as the column it replaced

    def finish(self, outputs: list[exp.Expression]) -> tuple[list[exp.Expression], Levels]:
        """Write lets used once back in place; group the rest into levels."""
        refs = {name: _references(body) for name, body in self.bodies.items()}
        output_refs = [_references(o) for o in outputs]
        uses = Counter(name for names in [*refs.values(), *output_refs] for name in names)
        inline: dict[str, tuple[exp.Expression, list[str]]] = {}
        kept: dict[str, exp.Expression] = {}
        kept_refs: dict[str, list[str]] = {}
        for name, body in self.bodies.items():
            body, own = _substitute(body, refs[name], inline)
            if uses[name] == 1:
                inline[name] = (body, own)
            elif uses[name] > 1:
                kept[name], kept_refs[name] = body, own
        outputs = [_substitute(o, r, inline)[0] for o, r in zip(outputs, output_refs, strict=True)]
        return outputs, Levels(kept, kept_refs)


def _substitute(
    expression: exp.Expression, refs: list[str], values: dict[str, tuple[exp.Expression, list[str]]]
) -> tuple[exp.Expression, list[str]]:
    """``expression`` (whose let references are ``refs``) with ``values`` written in place; each
    value is used once, so it moves rather than being copied."""
    if not any(name in values for name in refs):
        return expression, refs

    def replace(node):
        if _is_let(node) and node.name in values:
            return sql.paren(values[node.name][0])
        return node

    new_refs = [r for r in refs if r not in values]
    for r in refs:
        if r in values:
            new_refs += values[r][1]
    return expression.transform(replace, copy=False), new_refs


@dataclass
class Helper:
    """One SQL function of a PostgreSQL chain."""

    name: str
    levels: int  # array parameters after the inputs
    returns: str  # "prediction" (the prediction's type) or "DOUBLE[]"
    body: str  # the expression it returns


class Levels:
    """The lets an output keeps, in binding order: each depends only on the inputs and on
    lets bound before it. Rendering groups them into levels (see :meth:`_plan`)."""

    def __init__(self, bodies: dict[str, exp.Expression], refs: dict[str, list[str]]):
        self.bodies = bodies
        self.uses = {name: set(refs[name]) for name in bodies}
        # (let, dialect, how its references are rendered) -> its text: tree ensembles take seconds
        self._rendered: dict[tuple, str] = {}

    def needed(self, *expressions: exp.Expression) -> list[str]:
        """The lets ``expressions`` depend on, in binding order."""
        seen: set[str] = set()
        stack = [name for e in expressions for name in _references(e)]
        while stack:
            name = stack.pop()
            if name not in seen:
                seen.add(name)
                stack += self.uses[name]
        return [name for name in self.bodies if name in seen]

    def inline(self, expression: exp.Expression) -> exp.Expression:
        """``expression`` with every let written out in place (no sharing), for SQL embedded
        in other SQL of either dialect (a linear explainer's contributions: small lets);
        ModelRefused when that would be larger than MAX_SQL_BYTES (estimated from the lets,
        not by expanding)."""
        nodes = self.inline_nodes(expression)
        if nodes * 8 > MAX_SQL_BYTES:  # a node renders to at least ~8 bytes
            raise ModelRefused(
                f"written out without shared sub-expressions the SQL would have about {nodes:,} "
                f"nodes (limit {MAX_SQL_BYTES // 8:,})"
            )
        done: dict[str, exp.Expression] = {}

        def replace(node):
            if _is_let(node) and node.name in done:
                return sql.paren(done[node.name].copy())
            return node

        for name, body in self.bodies.items():
            done[name] = body.copy().transform(replace, copy=False)
        return expression.copy().transform(replace, copy=False)

    def inline_nodes(self, expression: exp.Expression) -> int:
        """Nodes of ``expression`` with every let written out, counted from the lets."""
        sizes: dict[str, int] = {}

        def count(e):
            total = 0
            for node in e.walk():
                total += sizes[node.name] if _is_let(node) else 1
            return total

        for name in self.needed(expression):
            sizes[name] = count(self.bodies[name])
        return count(expression)

    # -- rendering ------------------------------------------------------------------------------
    def _plan(self, expression, generator, limit: int, base: int, *others) -> list[list[str]]:
        """The lets ``expression`` (and ``others``, planned together) needs: those whose text is
        at most ``limit`` bytes are written in place; the rest go into levels. Sets the plan on
        ``generator`` (whose LetRef nodes then render as their slot,
        ``indb_l<level>[<base + position>]``, or in place) and returns the names of the lets of
        each level."""
        slots: dict[str, exp.Expression | None] = {}
        texts: dict[str, str] = {}
        generator.indb_slots, generator.indb_bodies = slots, texts
        depth: dict[str, int] = {}
        levels: list[list[str]] = []
        dialect = type(generator).__qualname__
        total, deadline = 0, time.monotonic() + RENDER_SECONDS
        for name in self.needed(expression, *others):
            if time.monotonic() > deadline:
                raise ModelRefused(f"rendering the compiled SQL took longer than {RENDER_SECONDS:.0f} s")
            refs = sorted(self.uses[name])
            key = (
                name,
                dialect,
                *(texts[r] if slots[r] is None else (slots[r].this, slots[r].args["index"]) for r in refs),
            )
            text = self._rendered.get(key)
            if text is None:
                with paused_gc():
                    text = self._rendered[key] = generator.generate(self.bodies[name], copy=False)
            texts[name] = text
            total += len(text)
            if total > MAX_SQL_BYTES:
                raise ModelRefused(f"the compiled SQL is over {MAX_SQL_BYTES:,} bytes")
            below = max((depth[r] for r in refs), default=0)
            if len(text) <= limit:
                slots[name], depth[name] = None, below
                continue
            depth[name] = below + 1
            if len(levels) < depth[name]:
                levels.append([])
            levels[below].append(name)
            slots[name] = LevelRef(this=below + 1, index=base + len(levels[below]) - 1)
        return levels

    def lambdas(self, expression: exp.Expression, generator, spark: bool) -> exp.Expression:
        """DuckDB / Spark: one lambda per level for the big lets; small ones are written in
        place (DuckDB evaluates repeated sub-expressions once, and a lambda costs more than a
        short expression). ``generator`` then renders the tree returned."""
        levels = self._plan(expression, generator, INLINE_BYTES, 0 if spark else 1)
        for j in range(len(levels), 0, -1):
            items = [LetBody(this=name) for name in levels[j - 1]]
            expression = LetLevel(this=expression, expressions=items, level=j)
        return expression

    def subqueries(self, expression: exp.Expression, generator) -> exp.Expression:
        """PostgreSQL in one expression (no helper functions): a scalar subquery whose FROM
        computes one array per level, each level a LATERAL subquery over the levels before it,
        ``(SELECT <expression> FROM (SELECT ARRAY[..] AS indb_l1 OFFSET 0) AS indb_s1 CROSS JOIN
        LATERAL (SELECT ARRAY[.. indb_l1[1] ..] AS indb_l2 OFFSET 0) AS indb_s2 ...)``. OFFSET 0
        keeps the planner from pulling a level up into the references to it, which would write
        every let out again wherever it is used. Lets under ``INLINE_BYTES_POSTGRES`` are
        written in place, as in :meth:`chain`."""
        levels = self._plan(expression, generator, INLINE_BYTES_POSTGRES, 1)
        if not levels:
            return expression
        query = exp.Select(expressions=[expression])
        for j, names in enumerate(levels, 1):
            items = exp.Array(expressions=[LetBody(this=n) for n in names])
            array = exp.Cast(this=items, to=exp.DataType.build("DOUBLE PRECISION[]", dialect="postgres"))
            level = exp.Select(
                expressions=[exp.alias_(array, f"indb_l{j}", copy=False)],
                offset=exp.Offset(expression=exp.Literal.number(0)),
            )
            alias = exp.TableAlias(this=exp.to_identifier(f"indb_s{j}"))
            if j == 1:
                query.set("from_", exp.From(this=exp.Subquery(this=level, alias=alias)))
            else:
                lateral = exp.Lateral(this=exp.Subquery(this=level), alias=alias)
                query.append("joins", exp.Join(this=lateral, kind="CROSS"))
        return exp.Subquery(this=query)

    def columns(
        self, expressions: list[exp.Expression], generator, relation: exp.Expression, first
    ) -> tuple[exp.Expression, bool]:
        """PostgreSQL in one statement over ``relation`` (no helper functions): the rows of
        ``relation`` with one more column per level, ``indb_l<j>``, the array of that level's
        lets, computed once per row by a subquery per level,
        ``(SELECT *, ARRAY[.. indb_l1[1] ..] AS indb_l2 FROM (SELECT *, ARRAY[..] AS indb_l1
        FROM relation OFFSET 0) AS indb_s1 OFFSET 0) AS indb_s2``; ``expressions`` (planned
        together, rendered by ``generator``) then read the levels from that relation. OFFSET 0
        keeps the planner from pulling a level up into its references. ``first`` wraps the
        first level's array (the input guard: no let is computed for a row it refuses).
        Returns that relation and whether it has levels (without, ``first`` was not applied:
        the caller guards the expressions). Unlike :meth:`chain`, every output shares one
        computation of the levels (a forest's sum), and the executor reads the inputs as
        columns of the scan instead of PL/pgSQL parameters (benchmarks/RESULTS.md, issue 17
        second pass: trees)."""
        levels = self._plan(expressions[0], generator, INLINE_BYTES_POSTGRES, 1, *expressions[1:])
        array_type = exp.DataType.build("DOUBLE PRECISION[]", dialect="postgres")
        for j, names in enumerate(levels, 1):
            array = exp.Cast(this=exp.Array(expressions=[LetBody(this=n) for n in names]), to=array_type)
            planned = Planned(this=first(array) if j == 1 else array, plan=generator)
            level = exp.select(exp.Star(), exp.alias_(planned, f"indb_l{j}"))
            relation = level.from_(relation, copy=False).offset(0, copy=False).subquery(f"indb_s{j}")
        return relation, bool(levels)

    def chain(
        self,
        expression: exp.Expression,
        generator,
        *,
        schema: str,
        name: str,
        arguments: list[exp.Expression],
        returns: str,
        first=lambda tree: tree,
    ) -> tuple[exp.Expression, list[Helper]]:
        """PostgreSQL: the call that computes ``expression`` (rendered by ``generator``), and
        the functions it needs (``schema.name0``, ``schema.name1``, ...); ``first`` wraps the body
        of ``name0`` (the input guard). Function ``j`` fills
        level ``j + 1`` and passes it on; the last one computes ``expression``. Everything, the
        heavy first level included, lives in the functions, whose plans PL/pgSQL keeps for the
        session. Lets under ``INLINE_BYTES_POSTGRES`` are repeated in place: cheaper than a
        function call. A model without levels still gets one function: the statement calling it
        then holds no coefficients or categories, and neither do its errors (PostgreSQL quotes
        a failing statement in the error's context, but not a function's RETURN expression)."""
        levels = self._plan(expression, generator, INLINE_BYTES_POSTGRES, 1)
        array_type = exp.DataType.build("DOUBLE PRECISION[]", dialect="postgres")
        helpers = []
        for j in range(len(levels) + 1):
            passed = [*arguments, *(exp.column(f"indb_l{k}") for k in range(1, j + 1))]
            if j < len(levels):
                items = exp.Array(expressions=[LetBody(this=n) for n in levels[j]])
                body = HelperCall(
                    this=schema,
                    name=f"{name}{j + 1}",
                    expressions=[*passed, exp.Cast(this=items, to=array_type)],
                )
            else:
                body = expression
            if j == 0:
                body = first(body)
            helpers.append(Helper(f"{name}{j}", j, returns, generator.generate(body, copy=False)))
        return HelperCall(this=schema, name=f"{name}0", expressions=list(arguments)), helpers
