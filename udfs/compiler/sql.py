"""sqlglot expressions for one row's arithmetic, folding constants as it goes.

An element is either a Python number (a constant) or a sqlglot expression.
"""

from __future__ import annotations

import math

import numpy as np
from sqlglot import exp

from indb.udfs.compiler.dialects import LetRef

Element = float | int | str | bool | exp.Expression


def is_const(x: Element) -> bool:
    return not isinstance(x, exp.Expression)


def lit(x: Element) -> exp.Expression:
    """A constant as SQL; floats in exponent form so every engine reads them as DOUBLE."""
    if isinstance(x, exp.Expression):
        return x
    if isinstance(x, bool | np.bool_):
        return exp.Boolean(this=bool(x))
    if isinstance(x, str | bytes):
        return exp.Literal.string(x.decode() if isinstance(x, bytes) else x)
    if isinstance(x, int | np.integer):
        node = exp.Literal.number(str(abs(int(x))))
        return node if x >= 0 else exp.Neg(this=node)
    value = float(x)
    if math.isnan(value) or math.isinf(value):
        text = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        return exp.Cast(this=exp.Literal.string(text), to=exp.DataType.build("DOUBLE"))
    text = repr(abs(value))
    node = exp.Literal(this=text if "e" in text else text + "e0", is_string=False)
    return node if value >= 0 else exp.Neg(this=node)


def paren(x: exp.Expression) -> exp.Expression:
    return (
        x
        if isinstance(x, exp.Column | exp.Literal | exp.Paren | exp.Anonymous | exp.Func | LetRef)
        else exp.Paren(this=x)
    )


def add(a: Element, b: Element) -> Element:
    if is_const(a) and is_const(b):
        return a + b
    if is_const(b) and b == 0:
        return a
    if is_const(a) and a == 0:
        return b
    return exp.Add(this=lit(a), expression=lit(b))


def sub(a: Element, b: Element) -> Element:
    if is_const(a) and is_const(b):
        return a - b
    if is_const(b) and b == 0:
        return a
    return exp.Sub(this=lit(a), expression=paren(lit(b)))


def mul(a: Element, b: Element) -> Element:
    if is_const(a) and is_const(b):
        return a * b
    if is_const(b) and b == 1:
        return a
    if is_const(a) and a == 1:
        return b
    return exp.Mul(this=paren(lit(a)), expression=paren(lit(b)))


def div(a: Element, b: Element) -> Element:
    if is_const(a) and is_const(b):
        return a / b
    if is_const(b) and b == 1:
        return a
    return exp.Div(this=paren(lit(a)), expression=paren(lit(b)))


def neg(a: Element) -> Element:
    return -a if is_const(a) else exp.Neg(this=paren(a))


def total(terms: list[Element], *, grouped: bool = False) -> Element:
    """A sum as a balanced tree, so thousands of terms stay shallow for every SQL generator.

    ``grouped``: each partial sum in parentheses, so the engines parse the same balanced tree.
    Without them the text reads ``a + b + c + d``, which every engine parses as a left-deep
    chain; DuckDB's optimizer passes (common sub-expressions, statistics propagation,
    expression rewriting) then cost quadratically in the terms: a 300-tree forest planned in
    9.6 s as a chain against 1.5 s grouped (benchmarks/RESULTS.md, issue 17 third pass). The
    additions then happen in another order, so the sum can differ in its last bits."""
    constant = sum(t for t in terms if is_const(t))
    parts = [t for t in terms if not is_const(t)]
    if not parts:
        return constant
    while len(parts) > 1:
        parts = [
            _pair(parts[i], parts[i + 1], grouped) if i + 1 < len(parts) else parts[i]
            for i in range(0, len(parts), 2)
        ]
    return add(parts[0], constant)


def _pair(a: Element, b: Element, grouped: bool) -> Element:
    both = add(a, b)
    return exp.Paren(this=both) if grouped and isinstance(both, exp.Add) else both


EXP_LIMIT = 700.0  # exp() of more overflows a double; PostgreSQL raises instead of giving infinity


def func(name: str, a: Element, numeric) -> Element:
    """A one-argument math function, folded for constants."""
    if is_const(a):
        if name == "exp":
            return numeric(min(max(a, -EXP_LIMIT), EXP_LIMIT))
        return numeric(a)
    if name == "exp":  # clamped: within 1e-300 of the true value, and no overflow error
        a = exp.Least(
            this=exp.Greatest(this=lit(a), expressions=[lit(-EXP_LIMIT)], ignore_nulls=True),
            expressions=[lit(EXP_LIMIT)],
            ignore_nulls=True,
        )
    node = {
        "exp": exp.Exp,
        "ln": exp.Ln,
        "sqrt": exp.Sqrt,
        "abs": exp.Abs,
    }[name]
    return node(this=lit(a))


def sigmoid(a: Element) -> Element:
    if is_const(a):
        return 1.0 / (1.0 + math.exp(-a))
    return div(1.0, add(1.0, func("exp", neg(a), math.exp)))


def case(condition: exp.Expression, then: Element, otherwise: Element) -> Element:
    if is_const(then) and is_const(otherwise) and then == otherwise:
        return then
    # Built directly: Case().when() copies its arguments, which is quadratic for deep trees.
    return exp.Case(ifs=[exp.If(this=condition, true=lit(then))], default=lit(otherwise))


def compare(kind: str, a: Element, b: Element) -> Element:
    if is_const(a) and is_const(b):
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "=": a == b}[kind]
    node = {"<": exp.LT, "<=": exp.LTE, ">": exp.GT, ">=": exp.GTE, "=": exp.EQ}[kind]
    return node(this=lit(a), expression=lit(b))
