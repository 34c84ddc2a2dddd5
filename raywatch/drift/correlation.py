"""Correlation change: do the numerical columns still move together as in the reference?

A change in how columns move together — two sensors that tracked each other no longer do,
income and spending decouple — can leave every column's own distribution as it was, so every
univariate test misses it. This test compares the window's correlation matrix, read from its
mergeable co-moments (:class:`~raywatch.stats.comoments.CoMoments`), with the reference's,
pair by pair:

* statistic: Fisher's ``z = atanh(r)`` of each pair in the window and in the reference;
* null variance: ``κ / (n − 3)`` for each, where ``κ = τ² / (1 − ρ²)²`` and ``τ²`` is the
  asymptotic variance of ``√n · r`` under the reference's own law, from its fourth moments
  (``κ = 1`` for normal data; heavier tails give larger ``κ``, so the test keeps its level on
  non-normal data, where the textbook ``1 / (n − 3)`` would raise false alarms);
* p-value: two-sided normal, corrected across the ``d(d − 1)/2`` pairs (Bonferroni by
  default: the chance that any pair of a stationary window is flagged stays below α).

A pair drifts when its corrected p-value is below ``alpha`` (0.05) **and** its correlation
moved by at least ``min_change`` (0.1, the documented threshold: a 0.1 change of a correlation
is where a model relying on the pair starts to notice; smaller ones pass however significant).
Windows with fewer than ``min_rows`` complete rows are not tested.

The correlation is that of the columns' normal scores under the reference's marginals (see
:mod:`raywatch.stats.comoments`): Pearson's for normal data, robust to heavy tails.

False-alarm rate, measured: at α = 0.05, 140 of 3,000 stationary windows of 300 normal rows ×
6 columns (4.7 %) had a pair flagged, the Bonferroni level, family-wise
(``tests/drift/test_multivariate_error_rates.py``, slow); 18 of 300 with lognormal and
Student-t columns, and none of 20 windows of 5,000 rows, where the 0.1 floor binds
(``tests/drift/test_correlation.py``).

>>> import numpy as np
>>> from raywatch.stats.comoments import CorrelationExtension
>>> from raywatch.stats.sections import Batch
>>> rng = np.random.default_rng(0)
>>> ref = rng.normal(size=(20_000, 3))
>>> ext = CorrelationExtension.fit(["a", "b", "c"], ref)
>>> x = rng.normal(size=5000); y = 0.6 * x + 0.8 * rng.normal(size=5000)    # both still N(0, 1)
>>> window = {"a": x, "b": y, "c": rng.normal(size=5000)}
>>> result = correlation_change(ext, ext.summarize(Batch(window, 5000)))
>>> result.drifted, result.drifted_pairs, round(result.max_change, 1)
(True, [('a', 'b')], 0.6)

References
----------
Fisher, R. A. (1915). Frequency distribution of the values of the correlation coefficient.
Hotelling, H. (1953). New light on the correlation coefficient and its transforms.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Tuple

import numpy as np
from scipy.special import ndtr, ndtri

from raywatch.drift.correction import adjust
from raywatch.stats.comoments import CoMoments, CorrelationExtension

__all__ = ["PairChange", "CorrelationChange", "correlation_change"]

_CLIP = 1.0 - 1e-9


@dataclass
class PairChange:
    """One pair of columns: reference and window correlation and the test's verdict."""

    a: str
    b: str
    reference: float
    current: float
    change: float
    p_value: float
    p_value_adjusted: float
    drifted: bool


@dataclass
class CorrelationChange:
    """The correlation test of one window: the ``pairs`` that moved most (at most ``top``,
    largest change first), every drifted pair in ``drifted_pairs``."""

    rows: int
    skipped: int
    tested: bool
    drifted: bool
    max_change: float
    alpha: float
    min_change: float
    drifted_pairs: List[Tuple[str, str]] = field(default_factory=list)
    pairs: List[PairChange] = field(default_factory=list)
    note: str = ""

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def _reference(ext: CorrelationExtension) -> Tuple[np.ndarray, ...]:
    """The pairs ``(i, j)`` and the reference's correlations, ``√κ`` and Fisher z there, kept
    on the extension after the first window (they never change)."""
    cached = getattr(ext, "_pairs", None)
    if cached is None:
        i, j = np.triu_indices(len(ext.columns), k=1)
        ref = ext.reference_corr[i, j]
        root_kappa = np.sqrt(ext.tau2[i, j] / np.maximum((1.0 - ref * ref) ** 2, 1e-12))
        cached = ext._pairs = (i, j, ref, root_kappa, np.arctanh(np.clip(ref, -_CLIP, _CLIP)))
    return cached


def correlation_change(
    ext: CorrelationExtension,
    section: CoMoments,
    alpha: float = 0.05,
    min_change: float = 0.1,
    min_rows: int = 30,
    correction: str = "bonferroni",
    top: int = 20,
) -> CorrelationChange:
    """Test the window ``section`` against the reference ``ext`` (see the module docstring).

    Parameters
    ----------
    ext, section
        ``profile.extensions["correlation"]`` and ``summary.sections["correlation"]``.
    alpha
        Level of the test, after ``correction`` across pairs.
    min_change
        The smallest absolute change of a correlation that may be flagged.
    min_rows
        Fewer complete rows in the window: not tested.
    top
        How many pairs (largest change first) the result lists.
    """
    base = dict(rows=section.n, skipped=section.skipped, alpha=float(alpha), min_change=float(min_change))
    if section.n < max(int(min_rows), 4):
        return CorrelationChange(tested=False, drifted=False, max_change=0.0,
                                 note=f"{section.n} complete rows, fewer than min_rows={min_rows}", **base)
    i, j, ref, root_kappa, z_ref = _reference(ext)
    sd = section.deviations()  # NaN where a column has no spread
    cur = section.m2[i, j] / (sd[i] * sd[j])
    ok = np.isfinite(cur)
    every = bool(ok.all())
    if not every:
        if not ok.any():
            return CorrelationChange(tested=False, drifted=False, max_change=0.0,
                                     note="every column is constant in the window", **base)
        cur = np.where(ok, cur, ref)  # untested pairs: no change
    scale = root_kappa * np.sqrt(1.0 / (section.n - 3) + 1.0 / max(ext.reference_rows - 3, 1))
    z = np.abs(np.arctanh(np.clip(cur, -_CLIP, _CLIP)) - z_ref) / scale
    change = cur - ref
    size = np.abs(change)
    m = int(ok.sum())
    if correction == "bonferroni":  # p·m < α  ⟺  z > Φ⁻¹(1 − α/(2m)): no p-value for every pair
        flagged = (z > ndtri(1.0 - alpha / (2.0 * m))) & (size >= min_change) & ok
        p_adj = None
    else:
        p = np.where(ok, 2.0 * ndtr(-z), 1.0)
        p_adj = np.ones_like(p)
        p_adj[ok] = adjust(p[ok], correction)
        flagged = ok & (p_adj < alpha) & (size >= min_change)
    names = ext.columns
    order = np.argsort(-size, kind="stable")
    hits = order[flagged[order]].tolist()
    shown = order[: max(int(top), len(hits))]
    p_shown = 2.0 * ndtr(-z[shown])
    pa_shown = np.minimum(p_shown * m, 1.0) if p_adj is None else p_adj[shown]
    i_l, j_l = i.tolist(), j.tolist()
    pairs = [PairChange(names[i_l[k]], names[j_l[k]], r, c if o else float("nan"), ch, pv, pa, f)
             for k, r, c, o, ch, pv, pa, f in zip(shown.tolist(), ref[shown].tolist(), cur[shown].tolist(),
                                                  ok[shown].tolist(), change[shown].tolist(), p_shown.tolist(),
                                                  pa_shown.tolist(), flagged[shown].tolist())]
    return CorrelationChange(
        tested=True, drifted=bool(hits), max_change=float(size.max()),
        drifted_pairs=[(names[i_l[k]], names[j_l[k]]) for k in hits], pairs=pairs,
        note="" if every else f"{len(ok) - m} pairs with a constant column were not tested", **base,
    )
