"""Confidence intervals for proportions, their differences and ratios, and for group spreads.

Fairness figures are proportions (a group's selection rate, true positive rate…), their
differences and ratios between groups, and the spread of a rate across many groups. The
intervals here are score intervals, which keep their coverage near the nominal level for
small groups and rates near 0 or 1, where the textbook Wald interval fails:

* :func:`wilson` — Wilson's score interval for one proportion ``x / n``.
* :func:`difference` — Newcombe's hybrid score interval for ``p1 − p2`` (his method 10;
  the MOVER-D combination of two Wilson intervals).
* :func:`ratio` — the MOVER-R interval of Donner and Zou for ``p1 / p2`` from the same two
  Wilson intervals (upper limit infinite when ``p2``'s lower limit is 0).
* :func:`spread` — ``max p − min p`` over groups, and :func:`min_ratio` — ``min p / max p``:
  their intervals come from simultaneous intervals for every pair of groups (Bonferroni:
  each pair at level ``α / pairs``). The true spread is a monotone function of the pairwise
  differences, so it lies in the interval whenever every pairwise interval holds: coverage
  is at least ``1 − α`` whichever groups turn out to be the extremes. (A plain interval for
  the observed extreme pair would not be: picking the extremes from the data biases them.)
* :func:`mean_interval` — a normal interval for a mean from its count, sum and sum of
  squares (calibration gaps).

Every function returns ``(low, high)``; coverage is checked by simulation in the tests.

>>> tuple(round(v, 4) for v in wilson(8, 10))
(0.4902, 0.9433)
>>> tuple(round(v, 4) for v in difference(56, 70, 48, 80))  # Newcombe (1998), table II, example (a)
(0.0524, 0.3339)
>>> tuple(round(v, 4) for v in difference(9, 10, 3, 10))  # example (b)
(0.1705, 0.809)
>>> tuple(round(v, 3) for v in ratio(30, 100, 60, 100))
(0.355, 0.696)

References
----------
Wilson, E. B. (1927). Probable inference, the law of succession, and statistical
inference. JASA 22(158).
Newcombe, R. G. (1998). Interval estimation for the difference between independent
proportions: comparison of eleven methods. Statistics in Medicine 17(8).
Donner, A., Zou, G. Y. (2012). Closed-form confidence intervals for functions of the normal
mean and standard deviation. Statistical Methods in Medical Research 21(4) (MOVER-R).
"""

from __future__ import annotations

import math
from functools import lru_cache
from itertools import combinations
from typing import Optional, Sequence, Tuple

from scipy.stats import norm

__all__ = ["z_value", "wilson", "difference", "ratio", "spread", "min_ratio", "mean_interval"]

Interval = Tuple[float, float]


@lru_cache(maxsize=256)
def z_value(confidence: float) -> float:
    """The two-sided normal quantile for ``confidence`` (0.95 → 1.96)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    return float(norm.ppf(0.5 + confidence / 2.0))


def _rate(x: int, n: int) -> float:
    return x / n if n else 0.0


def wilson(x: int, n: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval for ``x`` successes in ``n`` trials (``(0, 1)`` when ``n == 0``)."""
    if n <= 0:
        return 0.0, 1.0
    z = z_value(confidence)
    z2 = z * z
    center = (x + z2 / 2.0) / (n + z2)
    half = z / (n + z2) * math.sqrt(x * (n - x) / n + z2 / 4.0)
    lo = 0.0 if x <= 0 else max(0.0, center - half)
    return lo, 1.0 if x >= n else min(1.0, center + half)


def difference(x1: int, n1: int, x2: int, n2: int, confidence: float = 0.95) -> Interval:
    """Newcombe's hybrid score interval for ``x1/n1 − x2/n2``."""
    p1, p2 = _rate(x1, n1), _rate(x2, n2)
    l1, u1 = wilson(x1, n1, confidence)
    l2, u2 = wilson(x2, n2, confidence)
    d = p1 - p2
    return d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2)


def ratio(x1: int, n1: int, x2: int, n2: int, confidence: float = 0.95) -> Optional[Interval]:
    """MOVER-R interval for ``(x1/n1) / (x2/n2)``; None when ``x2 == 0`` (no ratio)."""
    if x2 <= 0 or n1 <= 0:
        return None
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1, confidence)
    l2, u2 = wilson(x2, n2, confidence)
    pp = p1 * p2
    den_low = u2 * (2.0 * p2 - u2)
    den_high = l2 * (2.0 * p2 - l2)
    low = (pp - math.sqrt(max(0.0, pp * pp - l1 * u2 * (2.0 * p1 - l1) * (2.0 * p2 - u2)))) / den_low if den_low > 0 else 0.0
    high = (pp + math.sqrt(max(0.0, pp * pp - u1 * l2 * (2.0 * p1 - u1) * (2.0 * p2 - l2)))) / den_high if den_high > 0 else math.inf
    return max(0.0, low), high


def _pairs(groups: Sequence[Tuple[int, int]], confidence: float, tests: int) -> Tuple[list, float]:
    pairs = list(combinations(range(len(groups)), 2))
    level = 1.0 - (1.0 - confidence) / max(1, len(pairs) * tests)
    return pairs, level


def spread(groups: Sequence[Tuple[int, int]], confidence: float = 0.95, tests: int = 1) -> Optional[Interval]:
    """Simultaneous interval for ``max p − min p`` over groups given as ``(x, n)``.

    ``tests`` counts further spreads that share the same error budget (2 for equalized odds,
    whose figure is the larger of two spreads). None for fewer than two groups.
    """
    if len(groups) < 2:
        return None
    pairs, level = _pairs(groups, confidence, tests)
    low = high = 0.0
    for i, j in pairs:
        lo, hi = difference(*groups[i], *groups[j], confidence=level)
        a, b = (lo, hi) if lo > 0 else (-hi, -lo) if hi < 0 else (0.0, max(hi, -lo))
        low, high = max(low, a), max(high, b)
    return low, min(high, 1.0)


def min_ratio(groups: Sequence[Tuple[int, int]], confidence: float = 0.95) -> Optional[Interval]:
    """Simultaneous interval for ``min p / max p`` over groups given as ``(x, n)``."""
    if len(groups) < 2:
        return None
    pairs, level = _pairs(groups, confidence, 1)
    low = high = 1.0
    for i, j in pairs:
        a, b = sorted((groups[i], groups[j]), key=lambda g: _rate(*g))  # b has the larger rate
        r = ratio(*a, *b, confidence=level)
        if r is None:  # both rates 0: the ratio of the true rates can be anything in [0, 1]
            lo, hi = 0.0, 1.0
        else:
            lo, hi = r if r[1] <= 1.0 else (min(r[0], 1.0 / r[1]), 1.0)
        low, high = min(low, lo), min(high, hi)
    return low, high


def mean_interval(n: int, total: float, squares: float, confidence: float = 0.95) -> Optional[Interval]:
    """Normal interval for a mean from ``n``, the sum and the sum of squares (None if n < 2)."""
    if n < 2:
        return None
    mean = total / n
    var = max(0.0, (squares - n * mean * mean) / (n - 1))
    half = z_value(confidence) * math.sqrt(var / n)
    return mean - half, mean + half
