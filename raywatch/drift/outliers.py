"""Outliers as a data-quality figure: the share of values beyond the reference's fences.

For every numerical column of the profile's :class:`~raywatch.stats.outliers.OutlierFences`
(Tukey's IQR fences or MAD fences), the window's share of finite values beyond them is put
beside the reference's own share. As with the other quality figures
(:mod:`raywatch.drift.quality`), the share is an *issue* when it exceeds the reference's rate
by at least ``tolerance`` (0.01, absolute) **and** a one-sided binomial test at level
``alpha`` (0.001) says the excess is not chance (the same rule as
:func:`raywatch.drift.quality.assess`, vectorized over the columns). Unlike ``out_of_range_share`` (beyond the
reference's minimum and maximum, which grow with the reference's size), the fences sit where
the bulk of the data ends, so the reference rate is a stable few per cent or less (0.7 % for
normal data with IQR fences) and a heavier tail shows early.

>>> import numpy as np
>>> from raywatch.stats.outliers import OutlierFences
>>> from raywatch.stats.sections import Batch
>>> rng = np.random.default_rng(0)
>>> fences = OutlierFences.fit({"x": rng.normal(size=20_000)})
>>> heavy = rng.standard_t(2, size=5000)                    # heavier tails
>>> q = outlier_quality(fences, fences.summarize(Batch({"x": heavy}, 5000)))["x"]
>>> q.issue, round(q.share, 2), round(q.reference_share, 3)
(True, 0.12, 0.007)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional

import numpy as np
from scipy.special import bdtrc

from raywatch.stats.outliers import OutlierCounts, OutlierFences

__all__ = ["OutlierQuality", "outlier_quality"]


@dataclass
class OutlierQuality:
    """One column: its share of values beyond the fences, the reference's, and the verdict."""

    column: str
    values: int
    beyond: int
    share: float
    reference_share: float
    low: float
    high: float
    p_value: Optional[float]  # None where the share does not exceed the reference rate by the tolerance
    issue: bool

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def outlier_quality(
    ext: OutlierFences, section: OutlierCounts, tolerance: float = 0.01, alpha: float = 0.001
) -> Dict[str, OutlierQuality]:
    """Per column of ``ext``: the window's outlier share and whether it is an issue.

    Parameters
    ----------
    ext, section
        ``profile.extensions["outliers"]`` and ``summary.sections["outliers"]``.
    tolerance, alpha
        The excess over the reference rate that may count, and the binomial test's level.
    """
    rate_l, low_l, high_l = _reference(ext)
    values, beyond = section.values, section.beyond
    rate = ext.reference_rate
    share = beyond / np.maximum(values, 1)  # counts: as floats, exactly
    # the binomial test runs only where the excess reaches the tolerance (stationary windows:
    # nowhere); P(X ≥ k) for X ~ Binomial(n, rate) as scipy.stats.binom.sf(k - 1, n, rate)
    candidate = (beyond > 0) & (share - rate >= tolerance)
    if candidate.any():
        p = np.full(share.size, np.nan)
        c = np.flatnonzero(candidate)
        r = rate[c]
        sf = bdtrc(np.maximum(beyond[c] - 1, 0), values[c], np.clip(r, 1e-300, 1.0))
        p[c] = np.where(r <= 0, 0.0, np.where(r >= 1, 1.0, sf))
        issue = (candidate & ((rate <= 0) | ((rate < 1) & (p < alpha)))).tolist()
        p_l = [None if v != v else v for v in p.tolist()]
    else:
        issue, p_l = [False] * share.size, [None] * share.size
    cols = zip(ext.columns, values.tolist(), beyond.tolist(), share.tolist(), rate_l, low_l, high_l, p_l, issue)
    return {c[0]: OutlierQuality(*c) for c in cols}


def _reference(ext: OutlierFences) -> tuple:
    """The reference's rates and fences as lists, kept on the extension after the first window
    (they never change)."""
    cached = getattr(ext, "_lists", None)
    if cached is None:
        cached = ext._lists = (ext.reference_rate.tolist(), ext.low.tolist(), ext.high.tolist())
    return cached
