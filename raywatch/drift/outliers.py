"""Outliers as a data-quality figure: the share of values beyond the reference's fences.

For every numerical column of the profile's :class:`~raywatch.stats.outliers.OutlierFences`
(Tukey's IQR fences or MAD fences), the window's share of finite values beyond them is put
beside the reference's own share. As with the other quality figures
(:mod:`raywatch.drift.quality`), the share is an *issue* when it exceeds the reference's rate
by at least ``tolerance`` (0.01, absolute) **and** a one-sided binomial test at level
``alpha`` (0.001) says the excess is not chance. Unlike ``out_of_range_share`` (beyond the
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
from typing import Any, Dict

from scipy.stats import binom

from raywatch.drift.quality import _flag
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
    p_value: float
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
    out: Dict[str, OutlierQuality] = {}
    for i, name in enumerate(ext.columns):
        n, k = int(section.values[i]), int(section.beyond[i])
        rate = float(ext.reference_rate[i])
        p = float(binom.sf(k - 1, n, rate)) if n and k and 0.0 < rate < 1.0 else (1.0 if not k or rate >= 1 else 0.0)
        out[name] = OutlierQuality(name, n, k, k / n if n else 0.0, rate, float(ext.low[i]), float(ext.high[i]), p,
                                   bool(_flag(k, n, rate, tolerance, alpha)))
    return out
