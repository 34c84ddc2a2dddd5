"""The two-sample Kolmogorov–Smirnov law at a bounded cost: many p-values in one call.

A stats actor tests every numerical column of every model (and every segment) against its
reference at each evaluation. scipy's exact two-sample law costs ~0.2–8 ms a column for a
5,000-row reference against a window of a few hundred rows (it walks the ``n1 × n2``
lattice), and its one-sample law at the effective size ``kstwo.sf(d, en)`` ~0.2 ms: 75 % of a
model's evaluation. :func:`pvalues` takes scipy's exact law where it is cheap and a corrected
limit law, vectorized over columns, everywhere else:

* **exact** (``scipy.stats``' own two-sample law, as ``ks_2samp(method="exact")``) when
  ``n1·n2 ≤ 100,000`` pairs of rows (≤ ~0.1 ms) and both sizes are at most 10,000;
* **limit law** otherwise:
  ``p = min(1, 1.03 · Q(z + 1/(6√en) + (z − 1)/(4·en)))`` with ``Q`` Kolmogorov's limit
  distribution (``scipy.special.kolmogorov``), ``en = n1·n2/(n1 + n2)`` and
  ``z = √en · (h − ½)/L``, where ``d = h/L`` on the lattice of the statistic
  (``L = lcm(n1, n2)``). That is Vrbik's finite-size correction of the limit law evaluated
  half a lattice step below ``d`` (a continuity correction: the exact law is a step
  function of ``d``), times a safety factor.

Error bound (measured against scipy's exact law on 35,772 cases: about 1,000 pairs of sizes
with ``n1·n2`` from 100,000 to 50M — log-uniform random pairs, sizes near a multiple of each
other, which make the lattice coarse, equal sizes, and windows of 10–60 rows against
references of up to 50,000 — at 24–31 values of ``d`` each, exact ``p`` from 1e-8 to 1;
``tests/drift/test_kslaw.py`` holds the law to these bounds on a grid of the same kinds every
run and on a larger one in its slow test):

* **never below the exact law**: before the safety factor the limit law was at least 0.979 of
  the exact p-value (the worst cases are sizes one apart from a multiple of each other); with
  it, at least 1.008 of it (wherever it is below 1). A Bonferroni or BH decision at level α
  therefore flags no more than the exact law would: the false-alarm guarantee stands;
* **above it by at most** (the ratio ``p / p_exact``; the largest ratio measured in each cell
  is a few % below its bound), by effective size ``en``:

  ==========  ==========  ==================  ================
  en          p ≥ 1e-3    1e-5 ≤ p < 1e-3     1e-8 ≤ p < 1e-5
  ==========  ==========  ==================  ================
  ≥ 1,000     1.10        1.12                1.15
  300–1,000   1.15        1.20                1.30
  100–300     1.18        1.25                1.40
  50–100      1.12        1.30                2.0
  20–50       1.20        1.60                4.0
  5–20        1.35        3.3                 32
  ==========  ==========  ==================  ================

  and by at most 0.03 in absolute terms. A p-value that overstates the exact one costs power
  only, and only near a decision threshold: a column whose exact p-value is 1e-4 reads at most
  1.2e-4–1.25e-4 here for windows of a hundred rows or more. (Windows of fewer than
  ``min_rows`` = 30 values are not tested at all.)

Cost: one vectorized call for all columns, ~1 µs a column, against 0.2–8 ms for the exact law.

>>> import math
>>> p = pvalues([0.08, 0.12], 5000, 300)
>>> [round(float(v), 4) for v in p]
[0.0522, 0.0005]
>>> float(pvalues([0.5], 30, 40)[0]) == exact_pvalue(0.5, 30, 40)  # 1,200 pairs: exact
True

References
----------
Vrbik, J. (2018). Small-sample corrections to Kolmogorov–Smirnov test statistic. Pioneer J.
Theor. Appl. Statistics 15. Hodges, J. L. (1958). The significance probability of the Smirnov
two-sample test. Ark. Mat. 3.
"""

from __future__ import annotations

import math
import warnings
from typing import Optional, Sequence, Union

import numpy as np
from scipy import special

__all__ = ["pvalues", "limit_pvalues", "exact_pvalue", "max_ratio", "EXACT_WORK", "SAFETY"]

EXACT_WORK = 100_000  # n1·n2 up to which the exact law is used (its cost grows with n1·n2)
MAX_EXACT_N = 10_000  # scipy's exact law is used for sizes up to this (as ks_2samp's 'auto')
SAFETY = 1.03  # the limit law's factor: it keeps the law at or above the exact one

# the measured bound of the module docstring's table: (smallest en, (ratio for p ≥ 1e-3,
# 1e-5 ≤ p < 1e-3, 1e-8 ≤ p < 1e-5)), largest en first; tests/drift/test_kslaw.py holds the
# law to it
MAX_RATIO = (
    (1000.0, (1.10, 1.12, 1.15)),
    (300.0, (1.15, 1.20, 1.30)),
    (100.0, (1.18, 1.25, 1.40)),
    (50.0, (1.12, 1.30, 2.0)),
    (20.0, (1.20, 1.60, 4.0)),
    (5.0, (1.35, 3.3, 32.0)),
)


def max_ratio(en: float, p_exact: float) -> float:
    """The documented bound on ``p / p_exact`` of the limit law at effective size ``en``."""
    for lowest, ratios in MAX_RATIO:
        if en >= lowest:
            return ratios[0] if p_exact >= 1e-3 else ratios[1] if p_exact >= 1e-5 else ratios[2]
    return math.inf

try:  # scipy's exact two-sample KS law (private; the limit law is used if it moves)
    from scipy.stats._stats_py import _attempt_exact_2kssamp as _exact_2kssamp
except ImportError:  # pragma: no cover - depends on the scipy version
    _exact_2kssamp = None

Sizes = Union[int, Sequence[int], np.ndarray]


def exact_pvalue(d: float, n1: int, n2: int) -> Optional[float]:
    """scipy's exact two-sided two-sample law ``P(D ≥ d)``, or None when it cannot be had
    (sizes beyond 10,000, overflow, or a scipy without it)."""
    n1, n2 = int(n1), int(n2)
    if _exact_2kssamp is None or max(n1, n2) > MAX_EXACT_N:
        return None
    g = math.gcd(n1, n2)
    if n1 // g >= np.iinfo(np.int32).max / (n2 // g):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        success, _, prob = _exact_2kssamp(n1, n2, g, float(d), "two-sided")
    return float(min(max(prob, 0.0), 1.0)) if success else None


def limit_pvalues(d: np.ndarray, n1: np.ndarray, n2: np.ndarray) -> np.ndarray:
    """The corrected limit law of the module docstring, elementwise (arrays of one shape)."""
    d = np.clip(np.asarray(d, dtype=np.float64), 0.0, 1.0)
    n1 = np.asarray(n1, dtype=np.int64)
    n2 = np.asarray(n2, dtype=np.int64)
    lattice = (n1 // np.gcd(n1, n2)) * n2  # lcm: the statistic is a multiple of 1/lattice
    lat = lattice.astype(np.float64)
    h = np.rint(d * lat)
    en = n1 * n2 / (n1 + n2).astype(np.float64)
    s = np.sqrt(en)
    z = np.maximum(h - 0.5, 0.0) / lat * s
    p = SAFETY * special.kolmogorov(z + 1.0 / (6.0 * s) + (z - 1.0) / (4.0 * en))
    return np.where(h > 0, np.minimum(p, 1.0), 1.0)


def pvalues(d: Union[float, Sequence[float], np.ndarray], n1: Sizes, n2: Sizes) -> np.ndarray:
    """Two-sided p-values of KS statistics ``d`` for sizes ``n1``, ``n2`` (scalars or arrays
    broadcast together): scipy's exact law where ``n1·n2 ≤ 100,000``, the corrected limit law
    elsewhere (see the module docstring for its error bound)."""
    d, n1, n2 = np.broadcast_arrays(np.asarray(d, dtype=np.float64), np.asarray(n1), np.asarray(n2))
    if np.any(n1 <= 0) or np.any(n2 <= 0):
        raise ValueError("the KS test needs two non-empty samples")
    shape = d.shape
    d, n1, n2 = d.ravel(), n1.ravel().astype(np.int64), n2.ravel().astype(np.int64)
    out = limit_pvalues(d, n1, n2)
    for i in np.flatnonzero((n1 * n2 <= EXACT_WORK) & (d > 0)).tolist():
        p = exact_pvalue(float(d[i]), int(n1[i]), int(n2[i]))
        if p is not None:
            out[i] = p
    return out.reshape(shape)
