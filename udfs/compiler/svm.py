"""SVMClassifier and SVMRegressor, step for step as onnxruntime computes them in float32.

onnxruntime rounds the input to float32 and computes every kernel value in float32: RBF as
a running float sum of squared differences, the other kernels through its float GEMM, which
accumulates with fused multiply-adds (one rounding per step) and applies gamma and coef0 in
one more. Each step here is a double expression rounded to float32 (exact: a double holds
the product of two float32 values, so one rounding to float32 is what the FMA does). The
sigmoid kernel's tanh is MLAS's rational approximation, not the exact tanh. Class pair
scores are then summed in double, as onnxruntime does.
"""

from __future__ import annotations

import math

import numpy as np
from sqlglot import exp

from indb.udfs.compiler import sql, svm_coupling
from indb.udfs.compiler.dialects import LetRef
from indb.udfs.compiler.values import Value, materialize

_FLOAT = exp.DataType.build("FLOAT")
_DOUBLE = exp.DataType.build("DOUBLE")

# exp() below this gives float32 values so small that a coefficient times them could round
# to zero, which PostgreSQL refuses ("value out of range: underflow"); the difference to
# onnxruntime's value is below 1e-30.
_EXP_FLOOR = -69.0
# Coefficients below this are multiplied in double: their product could underflow float32.
_TINY = 1e-14
# SVMRegressor sums coefficient x kernel one by one in float32; SQL reproduces that as a
# nested expression, which engines limit in depth (DuckDB: 1,000 levels).
MAX_REGRESSOR_VECTORS = 200
_SATURATED = 1e30  # decision values beyond this give a probability of 1e-7 or 1 - 1e-7

# MLAS's tanh (the same rational approximation as Eigen's), in float32 with FMA steps.
_TANH_P = (
    -2.76076847742355e-16,
    2.00018790482477e-13,
    -8.60467152213735e-11,
    5.12229709037114e-08,
    1.48572235717979e-05,
    6.37261928875436e-04,
    4.89352455891786e-03,
)
_TANH_Q = (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03)


def _unsupported(message: str):
    from indb.udfs.compiler.compile import UnsupportedOperator

    return UnsupportedOperator(message)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


def real(x):
    """A float32 constant as a SQL REAL; expressions pass through (they already are REAL)."""
    if sql.is_const(x):
        return exp.Cast(this=sql.lit(float(np.float32(x))), to=_FLOAT)
    return x


def single(x):
    """A double expression rounded to a SQL REAL (float32)."""
    if sql.is_const(x):
        return float(np.float32(x))
    return exp.Cast(this=x, to=_FLOAT)


def double(x):
    return x if sql.is_const(x) else exp.Cast(this=x, to=_DOUBLE)


def _real_op(node, a, b, fold):
    """float32 arithmetic: REAL op REAL is REAL in every engine, rounded once per step."""
    if sql.is_const(a) and sql.is_const(b):
        return float(np.float32(fold(np.float32(a), np.float32(b))))
    return node(this=sql.paren(real(a)), expression=sql.paren(real(b)))


def sub32(a, b):
    return a if sql.is_const(b) and b == 0 else _real_op(exp.Sub, a, b, lambda x, y: x - y)


def add32(a, b):
    if sql.is_const(a) and a == 0:
        return b
    return _real_op(exp.Add, a, b, lambda x, y: x + y)


def mul32(a, b):
    return _real_op(exp.Mul, a, b, lambda x, y: x * y)


def div32(a, b):
    return _real_op(exp.Div, a, b, lambda x, y: x / y)


def square32(a):
    """float32(a * a) with ``a`` written once: the square of a float32 is exact in double."""
    if sql.is_const(a):
        return float(np.float32(a) * np.float32(a))
    return single(exp.Pow(this=double(a), expression=sql.lit(2.0)))


def _clamp(x, low=None, high=None):
    # GREATEST/LEAST by name: sqlglot spells them for DuckDB as a CASE that repeats x.
    if low is not None:
        x = exp.Anonymous(this="GREATEST", expressions=[x, low])
    if high is not None:
        x = exp.Anonymous(this="LEAST", expressions=[x, high])
    return x


def fma(a, b, c):
    """float32 fused multiply-add: exact in double, then one rounding."""
    if sql.is_const(a) and sql.is_const(b) and sql.is_const(c):
        return float(np.float32(float(a) * float(b) + float(c)))
    return single(sql.add(sql.mul(double(a), double(b)), double(c)))


def _floats(values) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=np.float32)]


def tanh32(x):
    x = _clamp(x, real(-9.0), real(9.0))
    square = square32(x)
    p = fma(square, _floats(_TANH_P[:1])[0], _floats(_TANH_P[1:2])[0])
    for c in _floats(_TANH_P[2:]):
        p = fma(p, square, c)
    p = mul32(p, x)
    q = fma(square, _floats(_TANH_Q[:1])[0], _floats(_TANH_Q[1:2])[0])
    for c in _floats(_TANH_Q[2:]):
        q = fma(q, square, c)
    return div32(p, q)


class SqlOps:
    """float32 arithmetic as SQL REAL expressions for :mod:`svm_coupling`; ``keep`` names a
    value used again (``share``: the compiler's lets)."""

    add, sub, mul, div = staticmethod(add32), staticmethod(sub32), staticmethod(mul32), staticmethod(div32)

    def __init__(self, share):
        self.share = share

    def keep(self, x):
        named = self.share(x)
        # lets travel as DOUBLE: back to REAL (exact) so the next step stays float32
        return single(named) if isinstance(named, LetRef) else named

    @staticmethod
    def abs(x):
        return exp.Abs(this=x)

    @staticmethod
    def greatest(a, b):
        return _clamp(a, low=b)

    @staticmethod
    def clamp(x, low, high):
        return _clamp(x, real(low), real(high))

    @staticmethod
    def below(a, b):
        return sql.compare("<", a, real(b))

    @staticmethod
    def choose(condition, then, otherwise):
        return sql.case(condition, real(then), real(otherwise))

    @staticmethod
    def exp_minus_abs(x):
        """float32(exp(-|x|)) from the double exp, floored (no float32 underflow)."""
        power = _clamp(sql.neg(double(exp.Abs(this=x))), low=sql.lit(_EXP_FLOOR))
        return single(exp.Exp(this=power))


class Kernel:
    def __init__(self, attrs: dict):
        self.kind = _text(attrs.get("kernel_type", "LINEAR"))
        params = _floats(attrs.get("kernel_params", [0.0, 0.0, 0.0]))
        self.gamma, self.coef0, self.degree = (params + [0.0, 0.0, 0.0])[:3]
        if self.kind not in ("LINEAR", "POLY", "RBF", "SIGMOID"):
            raise _unsupported(f"SVM kernel_type {self.kind}")

    def __call__(self, row: list, vector: list[float]):
        """The kernel of a row of REAL expressions and a support vector, as a REAL."""
        if self.kind == "RBF":
            total = 0.0
            for x, s in zip(row, vector, strict=True):
                d = sub32(x, s)
                total = add32(total, square32(d))
            power = mul32(-self.gamma, total)
            if sql.is_const(power):
                return float(np.float32(math.exp(max(power, _EXP_FLOOR))))
            return single(exp.Exp(this=_clamp(double(power), low=sql.lit(_EXP_FLOOR))))
        total = 0.0
        for x, s in zip(row, vector, strict=True):
            if s != 0:
                total = fma(x, s, total)
        if self.kind == "LINEAR":
            return total
        line = fma(self.gamma, total, self.coef0)
        if self.kind == "SIGMOID":
            return tanh32(line)
        if self.degree == 2:
            return square32(line)
        if self.degree == 3:
            return mul32(square32(line), line)
        if sql.is_const(line):
            return float(np.float32(line**self.degree))
        return single(exp.Pow(this=double(line), expression=sql.lit(self.degree)))


def _row(value: Value) -> list:
    if not value.batched or value.data.ndim != 1:
        raise _unsupported("SVM over anything but one row of features")
    # A float input is rounded once; materialize() would round it to a double first.
    return [single(x) for x in (value.data if value.rounded32 else materialize(value).data)]


def _vectors(attrs: dict, count: int, width: int) -> np.ndarray:
    vectors = np.asarray(attrs.get("support_vectors", []), dtype=np.float32).astype(np.float64)
    if vectors.size != count * width:
        raise _unsupported(f"SVM with {vectors.size} support vector values for {count} x {width}")
    return vectors.reshape(count, width)


def _product(coefficient: float, kernel):
    if coefficient == 0:
        return 0.0
    if abs(coefficient) < _TINY:
        return sql.mul(coefficient, double(kernel))
    return double(mul32(coefficient, kernel))


def svm_classifier(value: Value, attrs: dict, share=lambda e: e) -> tuple:
    """(label expression, score expressions) of onnxruntime's SVMClassifier; ``share`` names
    values used more than once (the compiler's lets)."""
    from indb.udfs.compiler.compile import argmax

    labels = list(attrs.get("classlabels_ints") or [_text(s) for s in attrs.get("classlabels_strings", [])])
    if attrs.get("prob_a") and len(labels) != 2:
        raise _unsupported(
            f"SVMClassifier with probabilities (prob_a/prob_b) over {len(labels)} classes: onnxruntime "
            "couples the pairwise probabilities by an iteration whose number of rounds depends on "
            "the row and is bounded only by its cap of 100 (each round updates every class); SQL "
            "unrolls the rounds, so only two classes are compiled, whose coupling is proven to stop "
            "within two rounds"
        )
    per_class = [int(v) for v in attrs.get("vectors_per_class", [])]
    if not per_class or sum(per_class) == 0:
        raise _unsupported("SVMClassifier without support vectors (liblinear mode)")
    if len(per_class) != len(labels) or len(labels) < 2:
        raise _unsupported("SVMClassifier whose vectors_per_class do not match its labels")
    kind = _text(attrs.get("post_transform", "NONE"))
    row = _row(value)
    count = sum(per_class)
    kernel = Kernel(attrs)
    vectors = _vectors(attrs, count, len(row))
    kernels = [kernel(row, list(v)) for v in vectors]
    coefficients = np.asarray(attrs["coefficients"], dtype=np.float32).astype(np.float64)
    coefficients = coefficients.reshape(len(labels) - 1, count)
    rho = _floats(attrs["rho"])
    start = np.concatenate([[0], np.cumsum(per_class)]).astype(int)
    sums, scores, pairs = [], [], []
    for i in range(len(labels) - 1):
        for j in range(i + 1, len(labels)):
            terms = [_product(coefficients[j - 1, m], kernels[m]) for m in range(start[i], start[i + 1])]
            terms += [_product(coefficients[i, m], kernels[m]) for m in range(start[j], start[j + 1])]
            total = sql.add(sql.total(terms), rho[len(sums)])
            sums.append(total)
            scores.append(double(single(total)))
            pairs.append((i, j))
    if attrs.get("prob_a"):
        return _with_probabilities(sums[0], labels, attrs, kind, SqlOps(share))
    if len(labels) == 2:
        if kind == "PROBIT":
            raise _unsupported("SVMClassifier post_transform PROBIT")
        label = sql.case(_positive(sums[0]), labels[0], labels[1])
        score = scores[0]
        # onnxruntime writes (-s, s) without a transform, else (1 - s, s) untransformed.
        return label, [sql.neg(score) if kind == "NONE" else sql.sub(1.0, score), score]
    if kind != "NONE":
        raise _unsupported(f"SVMClassifier over {len(labels)} classes with post_transform {kind}")
    votes = []
    for c in range(len(labels)):
        # A pair (i, j) is a vote for i when its sum is positive, else for j.
        wins = [
            sql.case(_positive(total), 1 if c == i else 0, 0 if c == i else 1)
            for (i, j), total in zip(pairs, sums, strict=True)
            if c in (i, j)
        ]
        votes.append(sql.total(wins))
    index = argmax(votes)
    return _label(index, labels), scores


def _with_probabilities(total, labels, attrs, kind, ops):
    """Two classes with prob_a/prob_b: the label by the decision value's sign (onnxruntime
    labels by the pair's vote, not by the probabilities), the probabilities coupled."""
    if kind != "NONE":
        raise _unsupported(f"SVMClassifier with probabilities and post_transform {kind}")
    total = ops.share(total)
    a, b = _floats(attrs["prob_a"])[0], _floats(attrs["prob_b"])[0]
    score = total
    if 100 + abs(b) <= abs(a) * _SATURATED <= 1e37:
        # Beyond +-1e30 the decision value saturates the probability (|score * prob_a + prob_b|
        # > 100): clamped there, PostgreSQL's float4 never overflows where onnxruntime goes on
        # with infinity, and the answer is the same.
        score = _clamp(total, sql.lit(-_SATURATED), sql.lit(_SATURATED))
    first = svm_coupling.platt(single(score), a, b, ops)
    p0, p1, _ = svm_coupling.couple(first, ops)
    return sql.case(_positive(total), labels[0], labels[1]), [double(p0), double(p1)]


def _positive(total):
    """total > 0 as IEEE says: DuckDB and PostgreSQL order NaN above every number, so a NaN
    sum (float32 overflow in onnxruntime) would win its pair; SIGN(NaN) is 0 or NaN."""
    return exp.EQ(this=exp.Anonymous(this="SIGN", expressions=[total]), expression=sql.lit(1))


def _label(index, labels):
    from indb.udfs.compiler.ml import MLOperators

    return MLOperators._label(index, labels)


def svm_regressor(value: Value, attrs: dict):
    """The prediction expression of onnxruntime's SVMRegressor."""
    if _text(attrs.get("post_transform", "NONE")) != "NONE":
        raise _unsupported(f"SVMRegressor post_transform {_text(attrs['post_transform'])}")
    row = _row(value)
    count = int(attrs.get("n_supports", 0))
    coefficients = _floats(attrs["coefficients"])
    rho = _floats(attrs["rho"])[0]
    if count == 0:  # liblinear mode: one float GEMM row plus rho
        total = 0.0
        for x, c in zip(row, coefficients, strict=True):
            if c != 0:
                total = fma(x, c, total)
        result = fma(total, 1.0, rho)
    else:
        if count > MAX_REGRESSOR_VECTORS:
            raise _unsupported(
                f"SVMRegressor with {count} support vectors: onnxruntime sums them one by one in "
                f"float32, which SQL reproduces as an expression nested {count} deep (at most "
                f"{MAX_REGRESSOR_VECTORS})"
            )
        kernel = Kernel(attrs)
        vectors = _vectors(attrs, count, len(row))
        total = 0.0
        for vector, c in zip(vectors, coefficients, strict=True):
            if c != 0:
                total = fma(kernel(row, list(vector)), c, total)
        result = fma(total, 1.0, rho)
    result = double(result)
    if attrs.get("one_class", 0):
        result = sql.case(sql.compare(">", result, 0.0), 1.0, -1.0)
    return result
