"""Probabilities of a two-class SVMClassifier, step for step as onnxruntime computes them.

onnxruntime turns the decision value into libsvm's Platt probability in float32,
``1 - logistic(score * prob_a + prob_b)`` clamped into [1e-7, 1 - 1e-7], and then, even for two
classes, runs libsvm's pairwise coupling (Wu, Lin and Weng's second method) in float32: rounds
of two coordinate steps from (0.5, 0.5) until the largest error is below 0.005 / k. For two
classes its answer is not the Platt value: within 0.005 of 0.5 the coupling stops before its first
round and answers exactly (0.5, 0.5); elsewhere it stops after one or two rounds, up to 0.004 away.
scikit-learn's bundled libsvm runs the same coupling for two classes, in double: it agrees with
onnxruntime to float32 rounding except where that rounding moves a probability across a boundary
between rounds.

The rounds are unrolled here with at most ``ROUNDS`` of them: for every float32 probability in
[1e-7, 1 - 1e-7] the coupling has converged after two rounds (checked over all of them by
``benchmarks/svc_probability.py``, with this module's own arithmetic run in numpy), so a third
round never changes anything. The same code builds the SQL and the numpy check: ``ops`` is
either float32 SQL (``svm.SqlOps``, each step one rounding) or float32 numpy arrays.

The one difference left is the exponential: onnxruntime calls the C library's ``expf``, which
is not correctly rounded (glibc 2.36 on x86-64: one unit in the last place off for 85,892 float32
arguments in [-20, 0]); SQL rounds the double ``exp`` to float32. Over every one of those
arguments the coupling still takes the same number of rounds and the probabilities differ by at
most 4.2e-7.
"""

from __future__ import annotations

import numpy as np

ROUNDS = 2
_F = np.float32
LOW = float(_F(1e-7))  # libsvm's min_prob, as onnxruntime rounds it
HIGH = float(_F(1) - _F(1e-7))
EPSILON = float(_F(0.005) / _F(2))  # 0.005 / k for k = 2


class NumpyOps:
    """The same arithmetic on float32 numpy arrays (the check that ROUNDS suffice)."""

    @staticmethod
    def keep(x):
        return x

    add, sub = staticmethod(lambda a, b: _F(a) + _F(b)), staticmethod(lambda a, b: _F(a) - _F(b))
    mul, div = staticmethod(lambda a, b: _F(a) * _F(b)), staticmethod(lambda a, b: _F(a) / _F(b))
    abs = staticmethod(np.abs)
    greatest = staticmethod(lambda a, b: np.maximum(a, _F(b)))
    clamp = staticmethod(lambda x, low, high: np.minimum(np.maximum(x, _F(low)), _F(high)))
    below = staticmethod(lambda a, b: a < _F(b))
    choose = staticmethod(lambda c, then, otherwise: np.where(c, _F(then), _F(otherwise)).astype(_F))

    @staticmethod
    def exp_minus_abs(x):
        # no floor needed: 1 + exp(-|x|) is 1 in float32 long before exp underflows
        with np.errstate(under="ignore"):
            return np.exp(-np.abs(np.asarray(x, dtype=np.float64))).astype(_F)


def platt(score, a: float, b: float, ops):
    """libsvm's probability of the first class, clamped into [LOW, HIGH], in float32."""
    value = ops.keep(ops.add(ops.mul(score, a), b))
    v = ops.keep(ops.div(1.0, ops.add(1.0, ops.exp_minus_abs(value))))
    logistic = ops.choose(ops.below(value, 0.0), ops.sub(1.0, v), v)
    return ops.clamp(ops.sub(1.0, logistic), LOW, HIGH)


def couple(r, ops, rounds: int = ROUNDS):
    """onnxruntime's coupling of one pairwise probability ``r`` (first class over the second):
    ``(p0, p1, settled)``, ``settled`` telling whether a further round would stop at once."""
    r = ops.keep(r)
    s = ops.keep(ops.sub(1.0, r))
    q = [[ops.keep(ops.mul(s, s)), None], [None, ops.keep(ops.mul(r, r))]]
    q[0][1] = q[1][0] = ops.keep(ops.mul(ops.sub(0.0, s), r))  # -s * r: the sign is exact
    p = [0.5, 0.5]
    for _ in range(rounds):
        done, stepped = _round(p, q, ops)
        p = [ops.keep(ops.choose(done, old, new)) for old, new in zip(p, stepped, strict=True)]
    done, _ = _round(p, q, ops, step=False)
    return p[0], p[1], done


def _round(p, q, ops, step: bool = True):
    """Whether the coupling stops before this round, and ``p`` after its two steps."""
    qp = [ops.keep(ops.add(ops.mul(q[i][0], p[0]), ops.mul(q[i][1], p[1]))) for i in range(2)]
    pqp = ops.keep(ops.add(ops.mul(p[0], qp[0]), ops.mul(p[1], qp[1])))
    error = ops.greatest(ops.abs(ops.sub(qp[0], pqp)), ops.abs(ops.sub(qp[1], pqp)))
    done = ops.below(error, EPSILON)
    if not step:
        return done, p
    p = list(p)
    for i in range(2):
        d = ops.keep(ops.div(ops.sub(pqp, qp[i]), q[i][i]))
        one = ops.keep(ops.add(1.0, d))
        p[i] = ops.add(p[i], d)
        if i == 0:  # the second step's pQp and Qp are not read again: the next round recomputes them
            inner = ops.add(ops.mul(d, q[i][i]), ops.mul(2.0, qp[i]))
            pqp = ops.keep(ops.div(ops.div(ops.add(pqp, ops.mul(d, inner)), one), one))
            qp = [ops.keep(ops.div(ops.add(qp[j], ops.mul(d, q[i][j])), one)) for j in range(2)]
        p = [ops.keep(ops.div(x, one)) for x in p]
    return done, p
