"""The statistics behind the drift tests, as plain functions of arrays.

Each function computed from raw samples or probability vectors equals its scipy
counterpart (tested to 1e-9): :func:`ks_samples` ≙ ``scipy.stats.ks_2samp``,
:func:`wasserstein_samples` ≙ ``scipy.stats.wasserstein_distance``, :func:`chisquare` ≙
``scipy.stats.chisquare``, :func:`kl_divergence` ≙ ``scipy.stats.entropy(p, q)``,
:func:`js_distance` ≙ ``scipy.spatial.distance.jensenshannon`` (natural log),
:func:`ztest` ≙ ``scipy.stats.chi2_contingency(..., correction=False)`` (z² is its
statistic, same p-value).

Binned versions work on two histograms over the same bins, which is all a
:class:`~raywatch.stats.summary.WindowSummary` keeps.

KS from binned CDFs
-------------------
:func:`ks_binned` evaluates both empirical CDFs at the bin edges, where they are exact. The
statistic D of the raw data lies in ``[d_low, d_high]``: ``d_low`` is the largest CDF gap
at an edge, and inside a bin ``(e_i, e_{i+1}]`` each CDF stays between its values at the two
edges, so the gap there is at most ``max(F(e_{i+1}) - G(e_i), G(e_{i+1}) - F(e_i))``;
``d_high`` is the largest of these. Hence ``d_high - d_low`` is at most the largest mass of
one bin in either histogram — 1 % of the reference with the default 100 quantile bins. The
p-value is computed from ``d_low`` and so is never smaller than the raw-data p-value: binning
can cost power but never adds false alarms. (Its law, :mod:`raywatch.drift.kslaw`, is the
exact one up to 100,000 pairs of rows and above that a corrected limit law, vectorized over
columns, that never falls below the exact law and exceeds it by at most 10–25 % for windows
of a hundred rows or more: see its table.)

Zero bins
---------
PSI and KL divide by bin proportions. :func:`proportions` with ``smoothing=s`` adds ``s``
pseudo-counts to every bin before normalizing: ``(c_i + s) / (n + s·B)`` (``s = 0.5`` is the
Jeffreys prior, raywatch's default), so an empty bin gets a small positive probability and
the statistics stay finite; the effect vanishes as counts grow. JS distance, Hellinger
distance and total variation are finite on empty bins and take raw proportions. Chi-square
takes its expected counts from the smoothed reference proportions.

References
----------
Kolmogorov–Smirnov: Hodges, J. L. (1958). The significance probability of the Smirnov
two-sample test. Ark. Mat. 3. PSI: Yurdakul, B. (2018). Statistical properties of
population stability index. JS: Lin, J. (1991). Divergence measures based on the Shannon
entropy. IEEE Trans. Inf. Theory 37(1).

>>> import numpy as np
>>> d, p = ks_samples(np.array([1.0, 2.0, 3.0]), np.array([2.5, 3.5, 4.5]))
>>> round(d, 4), round(p, 4)
(0.6667, 0.6)
>>> round(psi(proportions([50, 50]), proportions([40, 60])), 4)
0.0405
"""

from __future__ import annotations

import math
import warnings
from typing import Optional, Sequence, Tuple

import numpy as np
from scipy import special
from scipy.stats import distributions

from raywatch.drift import kslaw

__all__ = [
    "proportions",
    "ks_statistic",
    "ks_pvalue",
    "ks_pvalues",
    "ks_samples",
    "ks_binned",
    "wasserstein_samples",
    "wasserstein_binned",
    "psi",
    "kl_divergence",
    "js_distance",
    "hellinger",
    "total_variation",
    "chisquare",
    "ztest",
]

_MAX_EXACT_N = 10_000  # scipy.stats.ks_2samp's 'auto' switches to the asymptotic law above this
_MAX_SCIPY_EN = 20_000  # above this effective size, Vrbik's corrected limit law (fast)

try:  # scipy's exact two-sample KS law (private; the asymptotic law is used if it moves)
    from scipy.stats._stats_py import _attempt_exact_2kssamp as _exact_2kssamp
except ImportError:  # pragma: no cover - depends on the scipy version
    _exact_2kssamp = None


def proportions(counts: Sequence[float], smoothing: float = 0.0) -> np.ndarray:
    """Bin proportions with ``smoothing`` pseudo-counts per bin (see "Zero bins").

    >>> proportions([0, 2, 2], smoothing=0.5).round(4).tolist()
    [0.0909, 0.4545, 0.4545]
    """
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum() + smoothing * c.size
    if total <= 0:
        raise ValueError("cannot take proportions of an empty histogram")
    return (c + smoothing) / total


# ------------------------------------------------------------------------- KS


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov–Smirnov statistic: the largest gap between the empirical CDFs."""
    a = np.sort(np.asarray(a, dtype=np.float64))
    b = np.sort(np.asarray(b, dtype=np.float64))
    if a.size == 0 or b.size == 0:
        raise ValueError("the KS test needs two non-empty samples")
    both = np.concatenate((a, b))
    diff = np.searchsorted(a, both, side="right") / a.size - np.searchsorted(b, both, side="right") / b.size
    return float(max(diff.max(), -diff.min(), 0.0))


def ks_pvalue(d: float, n1: int, n2: int, *, bounded: bool = False) -> float:
    """Two-sided p-value of a KS statistic ``d`` for sample sizes ``n1``, ``n2``.

    The same law as ``scipy.stats.ks_2samp(method="auto")``: exact when both sizes are at
    most 10,000, otherwise the distribution of the one-sample statistic for
    ``en = n1·n2/(n1+n2)`` rows. Above ``en`` = 20,000, where scipy's evaluation takes up to
    a second per call, Vrbik's finite-n correction of the Kolmogorov limit,
    ``Q(z + 1/(6√en) + (z − 1)/(4·en))`` with ``z = d·√en``, stands in for it; it stays
    within 1.1e-6 of scipy's value (absolute).

    ``bounded=True`` caps the cost, for the binned test a stats actor runs on every column
    of every evaluation: the law of :func:`raywatch.drift.kslaw.pvalues` — scipy's exact law
    up to 100,000 pairs of rows (``n1·n2``), above that a corrected limit law (~1 µs) that is
    never below the exact law and above it by at most the factors tabled in
    :mod:`raywatch.drift.kslaw` (≤ 1.25 for p ≥ 1e-5 and effective sizes of 100 or more).
    :func:`ks_pvalues` computes many at once.

    References: Vrbik, J. (2018). Small-sample corrections to Kolmogorov–Smirnov test
    statistic. Pioneer J. Theor. Appl. Statistics 15.
    """
    n1, n2 = int(n1), int(n2)
    if n1 <= 0 or n2 <= 0:
        raise ValueError("the KS test needs two non-empty samples")
    d = float(min(max(d, 0.0), 1.0))
    if bounded:
        return float(kslaw.pvalues(d, n1, n2))
    g = math.gcd(n1, n2)
    if max(n1, n2) <= _MAX_EXACT_N and _exact_2kssamp is not None and n1 // g < np.iinfo(np.int32).max / (n2 // g):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            success, _, prob = _exact_2kssamp(n1, n2, g, d, "two-sided")
        if success:
            return float(np.clip(prob, 0.0, 1.0))
    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = float(np.round(m * n / (m + n)))
    if en <= _MAX_SCIPY_EN:
        return float(np.clip(distributions.kstwo.sf(d, en), 0.0, 1.0))
    # scipy's kstwo.sf costs O(en) per call here (up to a second); Vrbik's corrected limit
    # law is within 1.1e-6 of it (absolute) for en > 20,000.
    return _vrbik_sf(d, en)


def ks_pvalues(d: np.ndarray, n1: np.ndarray, n2: np.ndarray) -> np.ndarray:
    """:func:`ks_pvalue` with ``bounded=True`` for many statistics at once (arrays, or
    scalars broadcast against them): one vectorized call (:func:`raywatch.drift.kslaw.pvalues`).

    >>> ks_pvalues(np.array([0.0, 0.3]), 40, np.array([50, 60])).round(4).tolist()
    [1.0, 0.0225]
    """
    return kslaw.pvalues(d, n1, n2)


def _vrbik_sf(d: float, en: float) -> float:
    """Vrbik's finite-n corrected Kolmogorov limit law at ``d`` for effective size ``en``."""
    z = d * math.sqrt(en)
    return float(np.clip(distributions.kstwobign.sf(z + 1.0 / (6.0 * math.sqrt(en)) + (z - 1.0) / (4.0 * en)), 0.0, 1.0))


def ks_samples(a: np.ndarray, b: np.ndarray) -> Tuple[float, float]:
    """``(statistic, p_value)`` of the two-sample KS test on raw samples."""
    d = ks_statistic(a, b)
    return d, ks_pvalue(d, len(a), len(b))


def _binned_cdfs(ref_counts: np.ndarray, cur_counts: np.ndarray, what: str) -> Tuple[np.ndarray, ...]:
    """``(r, c, n_r, n_c, F, G)``: the two histograms as float arrays, their totals, and their
    CDFs at the bin edges (from 0 to exactly 1); ValueError naming ``what`` when either
    histogram is empty."""
    r = np.asarray(ref_counts, dtype=np.float64)
    c = np.asarray(cur_counts, dtype=np.float64)
    nr, nc = r.sum(), c.sum()
    if nr <= 0 or nc <= 0:
        raise ValueError(f"{what} needs two non-empty histograms")
    f = np.concatenate(([0.0], np.cumsum(r) / nr))
    g = np.concatenate(([0.0], np.cumsum(c) / nc))
    f[-1] = g[-1] = 1.0
    return r, c, nr, nc, f, g


def ks_binned(ref_counts: np.ndarray, cur_counts: np.ndarray) -> Tuple[float, float, float]:
    """``(d_low, d_high, p_value)`` from two histograms over the same bins.

    The raw-data statistic lies in ``[d_low, d_high]``; the p-value is that of ``d_low``
    (see "KS from binned CDFs" above).

    >>> ks_binned(np.array([50, 50]), np.array([20, 80]))[:2]
    (0.3, 0.8)
    """
    _, _, nr, nc, f, g = _binned_cdfs(ref_counts, cur_counts, "the KS test")
    d_low = float(np.max(np.abs(f - g)))
    d_high = float(max(np.max(f[1:] - g[:-1]), np.max(g[1:] - f[:-1]), d_low))
    return d_low, d_high, ks_pvalue(d_low, int(round(nr)), int(round(nc)), bounded=True)


# ----------------------------------------------------------------- Wasserstein


def wasserstein_samples(a: np.ndarray, b: np.ndarray) -> float:
    """First Wasserstein distance between two samples (area between the empirical CDFs)."""
    a = np.sort(np.asarray(a, dtype=np.float64))
    b = np.sort(np.asarray(b, dtype=np.float64))
    if a.size == 0 or b.size == 0:
        raise ValueError("the Wasserstein distance needs two non-empty samples")
    allv = np.sort(np.concatenate((a, b)))
    deltas = np.diff(allv)
    fa = np.searchsorted(a, allv[:-1], side="right") / a.size
    fb = np.searchsorted(b, allv[:-1], side="right") / b.size
    return float(np.sum(np.abs(fa - fb) * deltas))


def _abs_linear_integral(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """∫ |linear from a to b| over widths w, exactly (handles a sign change)."""
    same = a * b >= 0
    s = np.abs(a) + np.abs(b)
    crossing = np.divide(a * a + b * b, 2.0 * s, out=np.zeros_like(s), where=s > 0)
    return w * np.where(same, 0.5 * s, crossing)


def wasserstein_binned(
    edges: np.ndarray,
    ref_counts: np.ndarray,
    cur_counts: np.ndarray,
    lo: float,
    hi: float,
    ref_tails: Optional[Tuple[float, float]] = None,
    cur_tails: Optional[Tuple[float, float]] = None,
) -> float:
    """First Wasserstein distance ∫|F − G| from two histograms over ``edges`` (interior
    edges; the outer bins are open).

    Inside the interior bins both CDFs are taken as linear (values spread evenly in a
    bin). For the open outer bins, ``*_tails`` — the sums of the values in the lowest and
    highest bin — give ``∫_{-∞}^{e_0} F = (c_0·e_0 − S_0)/n`` and its upper twin exactly,
    so the tails are exact unless the CDFs cross inside them; without tails, the outer
    bins are closed at ``lo``/``hi`` (the smallest and largest value of either data set)
    and taken as linear too. For smooth distributions and 100 quantile bins the result is
    within about 1.5 % of the reference standard deviation of scipy's raw-data value
    (tested for shifts and scale changes).
    """
    e = np.asarray(edges, dtype=np.float64)
    r, c, nr, nc, f, g = _binned_cdfs(ref_counts, cur_counts, "the Wasserstein distance")
    diff = f - g
    if ref_tails is None or cur_tails is None or e.size == 0:
        lo = min(float(lo), float(e[0])) if e.size else float(lo)
        hi = max(float(hi), float(e[-1])) if e.size else float(hi)
        points = np.concatenate(([lo], e, [hi]))
        return float(np.sum(_abs_linear_integral(diff[:-1], diff[1:], np.diff(points))))
    inner = float(np.sum(_abs_linear_integral(diff[1:-2], diff[2:-1], np.diff(e)))) if e.size > 1 else 0.0
    low = abs((r[0] * e[0] - ref_tails[0]) / nr - (c[0] * e[0] - cur_tails[0]) / nc)
    high = abs((ref_tails[1] - r[-1] * e[-1]) / nr - (cur_tails[1] - c[-1] * e[-1]) / nc)
    return float(inner + low + high)


# -------------------------------------------------------------- divergences


def _pair(p: Sequence[float], q: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.shape != q.shape or p.ndim != 1 or p.size == 0:
        raise ValueError("expected two probability vectors of the same length")
    return p, q


def psi(p: Sequence[float], q: Sequence[float]) -> float:
    """Population stability index Σ (q − p)·ln(q / p); needs no zero entries (smooth first)."""
    p, q = _pair(p, q)
    if np.any(p <= 0) or np.any(q <= 0):
        raise ValueError("PSI needs positive proportions; smooth the histograms first")
    return float(np.sum((q - p) * np.log(q / p)))


def kl_divergence(p: Sequence[float], q: Sequence[float]) -> float:
    """Kullback–Leibler divergence KL(p ‖ q) = Σ p·ln(p / q) (reference p, current q);
    ``q`` must be positive where ``p`` is (smooth first)."""
    p, q = _pair(p, q)
    if np.any((q <= 0) & (p > 0)):
        raise ValueError("KL divergence is infinite where q is 0 and p is not; smooth the histograms first")
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum(special.rel_entr(p, q)))


def js_distance(p: Sequence[float], q: Sequence[float]) -> float:
    """Jensen–Shannon distance (square root of the JS divergence, natural log), in [0, √ln 2]."""
    p, q = _pair(p, q)
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)
    js = 0.5 * (np.sum(special.rel_entr(p, m)) + np.sum(special.rel_entr(q, m)))
    return float(math.sqrt(max(js, 0.0)))


def hellinger(p: Sequence[float], q: Sequence[float]) -> float:
    """Hellinger distance ‖√p − √q‖₂ / √2, in [0, 1]."""
    p, q = _pair(p, q)
    p, q = p / p.sum(), q / q.sum()
    return float(np.linalg.norm(np.sqrt(p) - np.sqrt(q)) / math.sqrt(2.0))


def total_variation(p: Sequence[float], q: Sequence[float]) -> float:
    """Total variation distance ½·Σ|p − q|, in [0, 1]: the share of mass that moved."""
    p, q = _pair(p, q)
    p, q = p / p.sum(), q / q.sum()
    return float(0.5 * np.sum(np.abs(p - q)))


# ------------------------------------------------------------- category tests


def chisquare(observed: Sequence[float], expected: Sequence[float]) -> Tuple[float, float]:
    """Pearson's chi-square goodness of fit: ``(statistic, p_value)`` with k − 1 degrees of
    freedom. ``expected`` must be positive and sum to the observed total."""
    o = np.asarray(observed, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if o.shape != e.shape or o.size < 2:
        raise ValueError("chi-square needs at least two categories, observed and expected alike")
    if np.any(e <= 0):
        raise ValueError("chi-square needs positive expected counts; smooth the reference first")
    stat = float(np.sum((o - e) ** 2 / e))
    return stat, float(special.chdtrc(o.size - 1, stat))  # chi2.sf without its per-call overhead


def ztest(x1: int, n1: int, x2: int, n2: int) -> Tuple[float, float]:
    """Two-proportion z-test (pooled): ``(z, p_value)`` for ``x1/n1`` against ``x2/n2``.

    When both samples hold one category only, there is no evidence of change: ``(0, 1)``.
    """
    if n1 <= 0 or n2 <= 0:
        raise ValueError("the z-test needs two non-empty samples")
    p1, p2 = x1 / n1, x2 / n2
    pooled = (x1 + x2) / (n1 + n2)
    var = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)
    if var <= 0:
        return 0.0, 1.0
    z = (p2 - p1) / math.sqrt(var)
    return float(z), float(2.0 * special.ndtr(-abs(z)))  # 2·norm.sf(|z|)
