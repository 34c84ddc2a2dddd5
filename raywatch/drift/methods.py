"""Drift methods: which statistic compares a column of the window with the reference.

Every method takes the reference's and the window's
:class:`~raywatch.stats.summary.ColumnSummary` and returns a :class:`MethodResult`.
Methods with a p-value (``ks``, ``chisquare``, ``ztest``) flag drift when the p-value,
corrected across columns, falls below the threshold (α) *and* the effect size reaches its
floor; distance methods flag drift when the distance reaches the threshold.

======================  =========================  =======================  =========
method                  kinds                      statistic                threshold
======================  =========================  =======================  =========
``ks``                  numerical                  KS D (p-value)           α
``wasserstein``         numerical                  W₁ / reference std       0.1
``psi``                 numerical, categorical     PSI                      0.2
``kl``                  numerical, categorical     KL(reference ‖ window)   0.1
``js``                  numerical, categorical     Jensen–Shannon distance  0.1
``hellinger``           numerical, categorical     Hellinger distance       0.1
``chisquare``           categorical, boolean       Pearson χ² (p-value)     α
``ztest``               categorical, boolean       two-proportion z         α
``tvd``                 categorical, boolean       total variation          0.1
======================  =========================  =======================  =========

Numerical distances other than Wasserstein use the profile's quantile bins. ``ks`` and
``wasserstein`` are exact (from the samples, as scipy computes them) when the reference and
the window are both held entirely in their bounded samples, and binned otherwise (see
:mod:`raywatch.drift.statistics` for the KS bound). Bins empty in both histograms are
dropped before any category statistic. Chi-square pools the categories whose expected count
is below 5 into one cell (Cochran's rule).

The *effect size* beside every p-value: the Wasserstein distance in reference standard
deviations for numerical columns (a constant reference column, std 0, is measured in its own
units), and the total variation distance for categorical and boolean ones.

>>> sorted(METHODS)
['chisquare', 'hellinger', 'js', 'kl', 'ks', 'psi', 'tvd', 'wasserstein', 'ztest']
>>> METHODS["ks"].p_value, METHODS["psi"].default_threshold
(True, 0.2)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, FrozenSet, Optional, Tuple

import numpy as np

from raywatch.drift import statistics as st
from raywatch.stats.summary import ColumnSummary

__all__ = ["METHODS", "Method", "MethodResult", "ColumnPair", "default_method", "effect_size"]


@dataclass(frozen=True)
class ColumnPair:
    """What a method sees of one column: both summaries and how to read them."""

    ref: ColumnSummary
    cur: ColumnSummary
    edges: np.ndarray
    ref_complete: bool  # the reference's sample holds every value
    cur_complete: bool  # the window's sample holds every value
    smoothing: float = 0.5

    @property
    def exact(self) -> bool:
        return self.ref_complete and self.cur_complete and self.ref.sample.size > 0 and self.cur.sample.size > 0

    def histograms(self) -> Tuple[np.ndarray, np.ndarray]:
        """Both histograms without the bins that are empty in both."""
        r, c = self.ref.counts, self.cur.counts
        keep = (r > 0) | (c > 0)
        return r[keep], c[keep]


@dataclass(frozen=True)
class MethodResult:
    statistic: float
    p_value: Optional[float] = None
    exact: bool = True
    bounds: Optional[Tuple[float, float]] = None  # where the raw-data statistic lies, when binned
    note: str = ""


@dataclass(frozen=True)
class Method:
    name: str
    kinds: FrozenSet[str]
    p_value: bool
    default_threshold: Optional[float]  # None: the configured alpha
    compute: Callable[[ColumnPair], MethodResult]
    description: str


def _scale(ref: ColumnSummary) -> float:
    return ref.std if ref.std > 0 else 1.0


def _wasserstein_norm(pair: ColumnPair) -> Tuple[float, bool]:
    if pair.exact:
        return st.wasserstein_samples(pair.ref.sample, pair.cur.sample) / _scale(pair.ref), True
    lo, hi = min(pair.ref.min, pair.cur.min), max(pair.ref.max, pair.cur.max)
    w = st.wasserstein_binned(
        pair.edges, pair.ref.counts, pair.cur.counts, lo, hi, pair.ref.tail_sums, pair.cur.tail_sums
    )
    return w / _scale(pair.ref), False


def effect_size(pair: ColumnPair) -> float:
    """Normed Wasserstein distance (numerical) or total variation distance (categorical)."""
    if pair.ref.kind == "numerical":
        return _wasserstein_norm(pair)[0]
    r, c = pair.histograms()
    return st.total_variation(st.proportions(r), st.proportions(c))


# ----------------------------------------------------------------- numerical


def _ks(pair: ColumnPair) -> MethodResult:
    if pair.exact:
        d, p = st.ks_samples(pair.ref.sample, pair.cur.sample)
        return MethodResult(d, p, exact=True)
    d_low, d_high, p = st.ks_binned(pair.ref.counts, pair.cur.counts)
    return MethodResult(d_low, p, exact=False, bounds=(d_low, d_high))


def _wasserstein(pair: ColumnPair) -> MethodResult:
    w, exact = _wasserstein_norm(pair)
    note = "" if pair.ref.std > 0 else "constant reference column: distance in the column's own units"
    return MethodResult(w, None, exact=exact, note=note)


def _distance(fn: Callable, smooth: bool) -> Callable[[ColumnPair], MethodResult]:
    def compute(pair: ColumnPair) -> MethodResult:
        r, c = pair.histograms()
        s = pair.smoothing if smooth else 0.0
        return MethodResult(fn(st.proportions(r, s), st.proportions(c, s)), None, exact=False)

    return compute


# --------------------------------------------------------------- categorical


def _pool(observed: np.ndarray, expected: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    small = expected < 5.0
    if small.sum() < 2 or small.all():
        return observed, expected
    o = np.append(observed[~small], observed[small].sum())
    e = np.append(expected[~small], expected[small].sum())
    return o, e


def _chisquare(pair: ColumnPair) -> MethodResult:
    r, c = pair.histograms()
    if r.size < 2:
        return MethodResult(0.0, 1.0, note="a single category in both reference and window")
    expected = c.sum() * st.proportions(r, pair.smoothing)
    o, e = _pool(c.astype(np.float64), expected)
    if o.size < 2:  # pragma: no cover - _pool keeps at least two cells
        return MethodResult(0.0, 1.0)
    stat, p = st.chisquare(o, e)
    return MethodResult(stat, p)


def _ztest(pair: ColumnPair) -> MethodResult:
    r, c = pair.histograms()
    if r.size < 2:
        return MethodResult(0.0, 1.0, note="a single category in both reference and window")
    if r.size > 2:
        res = _chisquare(pair)
        return MethodResult(res.statistic, res.p_value, note="more than two categories: chi-square used instead")
    z, p = st.ztest(int(r[1]), int(r.sum()), int(c[1]), int(c.sum()))
    return MethodResult(abs(z), p)


_NUM = frozenset({"numerical"})
_CAT = frozenset({"categorical", "boolean"})
_ANY = _NUM | _CAT

METHODS: Dict[str, Method] = {
    m.name: m
    for m in (
        Method("ks", _NUM, True, None, _ks, "two-sample Kolmogorov–Smirnov test"),
        Method("wasserstein", _NUM, False, 0.1, _wasserstein, "Wasserstein-1 distance in reference std units"),
        Method("psi", _ANY, False, 0.2, _distance(st.psi, True), "population stability index"),
        Method("kl", _ANY, False, 0.1, _distance(st.kl_divergence, True), "Kullback–Leibler divergence"),
        Method("js", _ANY, False, 0.1, _distance(st.js_distance, False), "Jensen–Shannon distance"),
        Method("hellinger", _ANY, False, 0.1, _distance(st.hellinger, False), "Hellinger distance"),
        Method("chisquare", _CAT, True, None, _chisquare, "Pearson chi-square goodness of fit"),
        Method("ztest", _CAT, True, None, _ztest, "two-proportion z-test"),
        Method("tvd", _CAT, False, 0.1, _distance(st.total_variation, False), "total variation distance"),
    )
}


def default_method(kind: str, ref: ColumnSummary) -> str:
    """raywatch's default rule: ``ks`` for numerical columns; ``ztest`` for boolean columns
    and categorical columns whose reference holds exactly two labels; ``chisquare`` for
    other categorical columns."""
    if kind == "numerical":
        return "ks"
    if kind == "boolean":
        return "ztest"
    return "ztest" if int(np.count_nonzero(ref.counts)) == 2 and ref.counts[-1] == 0 else "chisquare"
