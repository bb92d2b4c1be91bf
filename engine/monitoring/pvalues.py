"""p-values of the drift tests from their statistics, with numpy and the standard library only.

SQL computes the statistics (KS D, chi-square); these functions turn them into p-values the
way scipy does, so that results equal ``scipy.stats.ks_2samp`` and ``chisquare``:

* ``ks_pvalue(d, n1, n2)``: two-sided. Exact when max(n1, n2) <= 10,000 (the probability
  that a uniformly random lattice path leaves the band |i/n1 - j/n2| < d, summed over exit
  steps so that small p-values keep their digits); otherwise ``kstwo.sf(d, round(n1 n2 /
  (n1 + n2)))``, the one-sample Kolmogorov distribution, computed as Simard and L'Ecuyer
  (2011) recommend: Ruben-Gambino at the ends, Durbin's matrix (Marsaglia-Tsang-Wang),
  twice the one-sided Birnbaum-Tingey sum where 2 n d^2 >= 2.2, Pelz-Good elsewhere.
* ``chi2_pvalue(x, dof)``: the regularized upper incomplete gamma Q(dof/2, x/2).

This file has no indb imports: on PostgreSQL it is also installed as PL/Python source, so
``CALL indb.run_monitor(...)`` computes the same p-values inside the server.
"""

from __future__ import annotations

import functools
import math

import numpy as np

EXACT_MAX_N = 10_000  # scipy's ks_2samp(method="auto") is exact up to this sample size


def ks_pvalue(d: float, n1: int, n2: int) -> float | None:
    if d is None or n1 is None or n2 is None or n1 <= 0 or n2 <= 0:
        return None
    n1, n2 = int(n1), int(n2)
    if max(n1, n2) <= EXACT_MAX_N:
        g = math.gcd(n1, n2)
        lcm = (n1 // g) * n2
        h = int(round(d * lcm))
        if h == 0:
            return 1.0
        return _clip(_ks_exact_outside(n1, n2, g, h))
    m, n = float(max(n1, n2)), float(min(n1, n2))
    return _clip(kolmogorov_sf(int(np.round(m * n / (m + n))), float(d)))


def _clip(p: float) -> float:
    return float(min(1.0, max(0.0, p)))


def _ks_exact_outside(n1: int, n2: int, g: int, h: int) -> float:
    """P(D >= h g / (n1 n2)): a path i steps of sample 1, j of sample 2 leaves the band once
    |i n2 - j n1| >= h g. Walks anti-diagonals k = i + j, keeping only cells inside."""
    total, band = n1 + n2, h * g
    lo = hi = 0
    p = np.ones(1)
    outside = 0.0
    for k in range(total):
        cells = np.arange(lo, hi + 1, dtype=np.float64)
        left = total - k
        step_i = p * (n1 - cells) / left  # to (i + 1, k + 1 - i - 1)
        step_j = p * (n2 - (k - cells)) / left  # to (i, k + 1 - i)
        nxt = np.zeros(hi - lo + 2)
        nxt[1:] += step_i
        nxt[:-1] += step_j
        # Inside on diagonal k + 1: (k+1) n1 - band < i (n1 + n2) < (k+1) n1 + band.
        b_lo = ((k + 1) * n1 - band) // total + 1
        b_hi = -((-((k + 1) * n1 + band)) // total) - 1
        new_lo, new_hi = max(lo, b_lo), min(hi + 1, b_hi)
        if new_lo > new_hi:
            return outside + float(nxt.sum())
        outside += float(nxt[: new_lo - lo].sum()) + float(nxt[new_hi - lo + 1 :].sum())
        p = nxt[new_lo - lo : new_hi - lo + 1]
        lo, hi = new_lo, new_hi
    return outside


# -- the one-sample Kolmogorov distribution ---------------------------------------------------
def kolmogorov_sf(n: int, x: float) -> float:
    """P(D_n >= x) for the two-sided one-sample statistic (scipy's ``kstwo.sf(x, n)``)."""
    if x >= 1.0:
        return 0.0
    if x <= 0.0:
        return 1.0
    t = n * x
    if t <= 1.0:
        if t <= 0.5:
            return 1.0
        return 1.0 - math.exp(_log_factorial_over_power(n) + n * math.log(2 * t - 1))
    if t >= n - 1:
        return 2 * (1.0 - x) ** n
    if x >= 0.5:
        return 2 * smirnov_sf(n, x)
    nxx = t * x
    if n <= 140:
        if nxx <= 4:
            return 1.0 - _durbin_cdf(n, x)
        return 2 * smirnov_sf(n, x)
    if nxx >= 370.0:
        return 0.0
    if nxx >= 2.2:
        return 2 * smirnov_sf(n, x)
    if n <= 100_000 and n * x**1.5 <= 1.4:
        return 1.0 - _durbin_cdf(n, x)
    return 1.0 - _pelz_good_cdf(n, x)


def _log_factorial_over_power(n: int) -> float:
    """log(n! / n^n), summed exactly rounded."""
    return math.fsum(np.log(np.arange(1, n + 1, dtype=np.float64) / n))


def smirnov_sf(n: int, x: float) -> float:
    """One-sided P(D+_n >= x), the Birnbaum-Tingey sum in logarithms (all terms positive)."""
    top = int(math.floor(n * (1.0 - x)))
    log_factorial = _log_factorials(n)
    j = np.arange(top + 1)
    shift = x + j / n
    keep = 1.0 - shift > 0.0
    j, shift = j[keep], shift[keep]
    if not j.size:
        return 0.0
    with np.errstate(divide="ignore"):
        logs = (
            log_factorial[n]
            - log_factorial[j]
            - log_factorial[n - j]
            + (n - j) * np.log1p(-shift)
            + (j - 1) * np.log(shift)
        )
    peak = logs.max()
    terms = np.exp(logs - peak)
    # The sum is >= 1 (the peak term); terms under 2^-120 add less than n 2^-120, far below
    # half its last bit: drop them. The rest (all positive) are summed pairwise in extended
    # precision (a 64-bit mantissa where numpy has one): within ~1e-18 relative of the exact sum,
    # so its double is math.fsum's but where the sum lies that close to a rounding boundary.
    # fsum over a Python list of ~200k-500k terms took 20-25 ms of a run's ~45 ms p-value.
    kept = terms[terms >= 2.0**-120]
    return float(x * math.exp(peak) * float(np.sum(kept, dtype=np.longdouble)))


@functools.lru_cache(maxsize=4)
def _log_factorials(n: int) -> np.ndarray:
    """log(k!) for k = 0..n (math.lgamma), kept: every numeric column of a window has the same
    sample sizes, so a run builds the table once (n lgamma calls, ~0.3 s at n = 500,000)."""
    table = np.fromiter(map(math.lgamma, range(1, n + 2)), dtype=np.float64, count=n + 1)
    table.flags.writeable = False
    return table


def _durbin_cdf(n: int, d: float) -> float:
    """P(D_n < d) by Durbin's matrix, powered with rescaling (Marsaglia, Tsang, Wang 2003)."""
    nd = n * d
    if nd <= 0.5:
        return 0.0
    k = int(math.ceil(nd))
    h = k - nd
    m = 2 * k - 1
    j = np.arange(1, m + 1)
    inverse_factorial = np.array([1.0 / math.factorial(int(i)) for i in range(m + 1)])
    first = (1.0 - h**j) * inverse_factorial[1:]
    first[-1] = (1.0 + max(2 * h - 1.0, 0.0) ** m - 2 * h**m) * inverse_factorial[m]
    matrix = np.zeros((m, m))
    for column in range(1, m):
        matrix[column - 1 :, column] = inverse_factorial[: m - column + 1]
    matrix[:, 0] = first
    matrix[-1, :] = first[::-1]
    power, power_exp, base_exp, remaining = np.eye(m), 0, 0, n
    while remaining:
        if remaining % 2:
            power = power @ matrix
            power_exp += base_exp
        matrix = matrix @ matrix
        base_exp *= 2
        if abs(matrix[k - 1, k - 1]) > 1e128:
            matrix /= 2.0**425
            base_exp += 425
        remaining //= 2
    value = power[k - 1, k - 1]
    if value <= 0:
        return 0.0
    return math.exp(math.log(value) + power_exp * math.log(2.0) + _log_factorial_over_power(n))


def _pelz_good_cdf(n: int, x: float) -> float:
    """The Pelz-Good (1976) expansion K0 + K1/sqrt(n) + K2/n + K3/n^1.5 of P(D_n <= x)."""
    z = math.sqrt(n) * x
    z2 = z * z
    pi2 = math.pi**2
    q_log = -pi2 / 8 / z2
    if q_log < math.log(np.finfo(float).tiny):
        return 0.0
    q = math.exp(q_log)
    coefficients = (
        (-z2, pi2 / 4),
        (6 * z**6 + 2 * z**4, (2 * z**4 - 5 * z2) * pi2 / 4, pi2**2 * (1 - 2 * z2) / 16),
        (
            -30 * z**6 - 90 * z**8,
            pi2 * (135 * z**4 - 96 * z**6) / 4,
            pi2**2 * (-60 * z2 + 212 * z**4) / 16,
            pi2**3 * (5 - 30 * z2) / 64,
        ),
    )
    sums = np.zeros(4)
    top = int(math.ceil(16 * z / math.pi))
    for k in range(top, 0, -1):  # Horner over odd m = 2k - 1 in powers of q^(m^2)
        m2 = float((2 * k - 1) ** 2)
        terms = np.array(
            [
                1.0,
                coefficients[0][0] + coefficients[0][1] * m2,
                coefficients[1][0] + coefficients[1][1] * m2 + coefficients[1][2] * m2**2,
                coefficients[2][0]
                + coefficients[2][1] * m2
                + coefficients[2][2] * m2**2
                + coefficients[2][3] * m2**3,
            ]
        )
        sums = sums * q ** (8 * k) + terms
    sums *= q * math.sqrt(2 * math.pi)
    sums /= np.array([z, 6 * z**4, 72 * z**7, 6480 * z**10])
    q = math.exp(-pi2 / 2 / z2)
    ks = np.arange(top, 0, -1, dtype=np.float64)
    weights = ks**2 * q ** (ks**2)
    sums[2] += float(np.sum(weights)) * pi2 * math.sqrt(2 * math.pi) / (-36 * z**3)
    root3z = math.sqrt(3) * z
    sums[3] += (
        float(np.sum((root3z + math.pi * ks) * (root3z - math.pi * ks) * weights))
        * pi2
        * math.sqrt(2 * math.pi)
        / (216 * z**6)
    )
    sums /= np.power(float(n), np.arange(4) / 2.0)
    return float(sums.sum())


# -- chi-square -------------------------------------------------------------------------------
def chi2_pvalue(x: float, dof: int) -> float | None:
    """P(X >= x) for X ~ chi-square(dof): Q(dof / 2, x / 2)."""
    if x is None or dof is None or dof <= 0:
        return None
    if math.isinf(x):
        return 0.0
    return _clip(_gamma_q(dof / 2.0, x / 2.0))


def _gamma_q(a: float, x: float) -> float:
    if x <= 0:
        return 1.0
    log_prefix = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:  # series for P, then Q = 1 - P
        term = total = 1.0 / a
        ap = a
        for _ in range(10_000):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-17:
                break
        return 1.0 - total * math.exp(log_prefix)
    # Continued fraction for Q (modified Lentz).
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    dd = 1 / b
    f = dd
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        dd = an * dd + b
        dd = tiny if abs(dd) < tiny else dd
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        dd = 1 / dd
        delta = dd * c
        f *= delta
        if abs(delta - 1) < 1e-16:
            break
    return math.exp(log_prefix) * f
