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
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

import numpy as np
from scipy.special import bdtrc

from raywatch.stats.outliers import OutlierCounts, OutlierFences

__all__ = ["OutlierQuality", "OutlierResults", "outlier_quality"]


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


class OutlierResults(Mapping[str, OutlierQuality]):
    """:func:`outlier_quality`'s ``{column: OutlierQuality}`` of one window, read only. It holds
    the window's figures as lists; the per-column objects are made when first read (the
    drift report reads only the shares and issues, :meth:`shares`). Compares equal to the plain
    dict it reads as."""

    __slots__ = ("columns", "_ref", "_values", "_beyond", "_share", "_p", "_issue", "_items")

    def __init__(self, columns: List[str], ref: tuple, values: List[float], beyond: List[float], share: List[float],
                 p: Optional[np.ndarray], issue: Optional[List[bool]]):
        self.columns = columns
        self._ref, self._values, self._beyond, self._share, self._p, self._issue = ref, values, beyond, share, p, issue
        self._items: Optional[Dict[str, OutlierQuality]] = None

    def share_list(self) -> List[float]:
        """Each column's share, in :attr:`columns` order (finite: shares of counts). Read only."""
        return self._share

    def shares(self) -> Iterator[Tuple[str, float, float, bool]]:
        """``(column, share, reference share, issue)`` per column."""
        issue = self._issue if self._issue is not None else [False] * len(self.columns)
        return zip(self.columns, self._share, self._ref[0], issue)

    def _made(self) -> Dict[str, OutlierQuality]:
        items = self._items
        if items is None:
            n = len(self.columns)
            rate_l, low_l, high_l = self._ref
            p_l = [None] * n if self._p is None else [None if v != v else v for v in self._p.tolist()]
            issue = self._issue if self._issue is not None else [False] * n
            cols = zip(self.columns, self._values, self._beyond, self._share, rate_l, low_l,
                       high_l, p_l, issue)
            items = self._items = {c[0]: OutlierQuality(*c) for c in cols}
        return items

    def __getitem__(self, column: str) -> OutlierQuality:
        return self._made()[column]

    def __iter__(self) -> Iterator[str]:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)

    def to_dict(self) -> Dict[str, Dict[str, Any]]:
        return {c: q.to_dict() for c, q in self._made().items()}

    def __repr__(self) -> str:
        return repr(self._made())


def outlier_quality(
    ext: OutlierFences, section: OutlierCounts, tolerance: float = 0.01, alpha: float = 0.001
) -> OutlierResults:
    """Per column of ``ext``: the window's outlier share and whether it is an issue.

    Parameters
    ----------
    ext, section
        ``profile.extensions["outliers"]`` and ``summary.sections["outliers"]``.
    tolerance, alpha
        The excess over the reference rate that may count, and the binomial test's level.
    """
    ref = _reference(ext)
    values_l, beyond_l = section.values.tolist(), section.beyond.tolist()
    # counts: as floats, exactly (b / max(v, 1) as numpy divides them). A window's columns are
    # few (at most MAX_COLUMNS), and this runs every window: Python's arithmetic on the lists
    # costs less than numpy's calls on tiny arrays, whose code is cold between windows
    share = [b / (v or 1) for b, v in zip(beyond_l, values_l)]
    p = issue = None
    tol = float(tolerance)
    if not all(map(tol.__gt__, map(float.__sub__, share, ref[0]))):  # some share may exceed its rate (or a NaN)
        # the binomial test where the excess reaches the tolerance (stationary windows: nowhere);
        # P(X ≥ k) for X ~ Binomial(n, rate) as scipy.stats.binom.sf(k - 1, n, rate)
        values, beyond, rate = section.values, section.beyond, ext.reference_rate
        over = np.array(share) - rate
        candidate = (over >= tolerance) & (beyond > 0)
        p = np.full(over.size, np.nan)
        c = np.flatnonzero(candidate)
        r = rate[c]
        sf = bdtrc(np.maximum(beyond[c] - 1, 0), values[c], np.clip(r, 1e-300, 1.0))
        p[c] = np.where(r <= 0, 0.0, np.where(r >= 1, 1.0, sf))
        issue = (candidate & ((rate <= 0) | ((rate < 1) & (p < alpha)))).tolist()
    return OutlierResults(ext.columns, ref, values_l, beyond_l, share, p, issue)


def _reference(ext: OutlierFences) -> tuple:
    """The reference's rates and fences as lists, kept on the extension after the first window
    (they never change)."""
    cached = getattr(ext, "_lists", None)
    if cached is None:
        cached = ext._lists = (ext.reference_rate.tolist(), ext.low.tolist(), ext.high.tolist())
    return cached
