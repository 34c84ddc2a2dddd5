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

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
from scipy.special import ndtr, ndtri

from raywatch.drift.correction import adjust
from raywatch.stats.comoments import CoMoments, CorrelationExtension, largest_magnitude

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


_PAIR_FIELDS = tuple(f.name for f in fields(PairChange))


class CorrelationChange:
    """The correlation test of one window: the ``pairs`` that moved most (at most ``top``,
    largest change first), every drifted pair in ``drifted_pairs``.

    The verdict (``tested``, ``drifted``, ``max_change``, ``drifted_pairs``) is made with the
    result; the listed pairs' objects and their p-values when first read (most windows are
    judged by the verdict alone)."""

    __slots__ = ("rows", "skipped", "tested", "drifted", "max_change", "alpha", "min_change", "drifted_pairs", "note",
                 "_pairs", "_listing")
    _FIELDS = ("rows", "skipped", "tested", "drifted", "max_change", "alpha", "min_change", "drifted_pairs", "pairs",
               "note")

    def __init__(self, rows: int, skipped: int, tested: bool, drifted: bool, max_change: float, alpha: float,
                 min_change: float, drifted_pairs: Optional[List[Tuple[str, str]]] = None,
                 pairs: Optional[List[PairChange]] = None, note: str = "",
                 listing: Optional[Callable[[Optional[int]], Tuple[list, ...]]] = None):
        self.rows, self.skipped, self.tested, self.drifted = rows, skipped, tested, drifted
        self.max_change, self.alpha, self.min_change = max_change, alpha, min_change
        self.drifted_pairs = [] if drifted_pairs is None else drifted_pairs
        self.note = note
        self._pairs = pairs if pairs is not None or listing is not None else []
        self._listing = listing  # listing(count): the first count listed pairs' columns (None: all)

    @property
    def pairs(self) -> List[PairChange]:
        if self._pairs is None:
            self._pairs = [PairChange(*row) for row in zip(*self._listing(None))]
            self._listing = None
        return self._pairs

    @pairs.setter
    def pairs(self, value: List[PairChange]) -> None:
        self._pairs, self._listing = value, None

    def pair_columns(self, count: Optional[int] = None) -> Tuple[list, ...]:
        """The first ``count`` listed pairs (None: all of them) as columns, one list per field of
        :class:`PairChange` in its order (``a``, ``b``, ``reference``, ... ``drifted``), made
        without the pairs' objects when these are not made yet."""
        if self._pairs is None:
            return self._listing(count)
        pairs = self._pairs[:count]
        return tuple([getattr(p, f) for p in pairs] for f in _PAIR_FIELDS)

    def to_dict(self) -> Dict[str, Any]:
        """As ``dataclasses.asdict`` would give it: the pairs as dicts."""
        out = {k: getattr(self, k) for k in self._FIELDS}
        out["drifted_pairs"] = [tuple(p) for p in self.drifted_pairs]
        out["pairs"] = [asdict(p) for p in self.pairs]
        return out

    def __eq__(self, other: Any) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, k) == getattr(other, k) for k in self._FIELDS)

    __hash__ = None  # type: ignore[assignment]  # mutable, as a dataclass

    def __getstate__(self) -> Dict[str, Any]:  # pickled with its pairs made (the listing is a closure)
        return {k: getattr(self, k) for k in self._FIELDS}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__init__(**state)

    def __repr__(self) -> str:
        return f"CorrelationChange({', '.join(f'{k}={getattr(self, k)!r}' for k in self._FIELDS)})"


def _reference(ext: CorrelationExtension) -> Tuple[Any, ...]:
    """What the test reads of the reference, kept on the extension after the first window (it
    never changes): the pairs' flat indices into a ``d × d`` matrix and their column names; the
    reference's correlations, Fisher z and ``√κ`` per pair."""
    cached = getattr(ext, "_pairs", None)
    if cached is None:
        d = len(ext.columns)
        i, j = np.triu_indices(d, k=1)
        ref = ext.reference_corr[i, j]
        root_kappa = np.sqrt(ext.tau2[i, j] / np.maximum((1.0 - ref * ref) ** 2, 1e-12))
        z_ref = np.arctanh(np.clip(ref, -_CLIP, _CLIP))
        names = ext.columns
        cached = ext._pairs = (i * d + j, [names[k] for k in i.tolist()], [names[k] for k in j.tolist()],
                               ref, z_ref, root_kappa)
    return cached


def _fisher(cur: np.ndarray, z_ref: np.ndarray, root_kappa: np.ndarray, root_n: float) -> np.ndarray:
    """``|atanh(clip(cur)) − z_ref| / (√κ · root_n)``: each pair's change of Fisher z in standard errors."""
    scale = root_kappa * root_n
    z = np.maximum(cur, -_CLIP)
    np.minimum(z, _CLIP, out=z)
    np.arctanh(z, out=z)
    z -= z_ref
    np.abs(z, out=z)
    z /= scale
    return z


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
    alpha, min_change = float(alpha), float(min_change)
    if section.n < max(int(min_rows), 4):
        return _untested(section, alpha, min_change, f"{section.n} complete rows, fewer than min_rows={min_rows}")
    flat, names_a, names_b, ref, z_ref, root_kappa = _reference(ext)
    sd = section.deviations()  # NaN where a column has no spread
    cur = (section.m2 / (sd[:, None] * sd)).take(flat)
    change = cur - ref
    max_change = largest_magnitude(change)  # NaN where a reference correlation is
    size = None  # |change|, made where a pair may be flagged or listed
    m, ok = len(cur), None
    # a finite largest change: every correlation is finite (a NaN or infinity would carry into it)
    if max_change - max_change != 0.0:
        ok = np.isfinite(cur)
        if ok.all():  # the NaN is a reference correlation's
            ok = None
        elif not ok.any():
            return _untested(section, alpha, min_change, "every column is constant in the window")
        else:
            np.copyto(cur, ref, where=~ok)  # untested pairs: no change
            m = int(ok.sum())
            change = cur - ref
            max_change = largest_magnitude(change)
    root_n = math.sqrt(1.0 / (section.n - 3) + 1.0 / max(ext.reference_rows - 3, 1))
    z = p_adj = flagged = order = None
    if correction != "bonferroni" or not max_change < min_change:
        size = np.abs(change)
    if correction == "bonferroni":  # p·m < α  ⟺  z > Φ⁻¹(1 − α/(2m)): no p-value for every pair
        if not max_change < min_change:  # else no pair can be flagged (a stationary window): z of the listed ones only
            z = _fisher(cur, z_ref, root_kappa, root_n)
            flagged = (z > ndtri(1.0 - alpha / (2.0 * m))) & (size >= min_change)
            if ok is not None:
                flagged &= ok
    else:
        tested = np.isfinite(cur) if ok is None else ok
        z = _fisher(cur, z_ref, root_kappa, root_n)
        p = np.where(tested, 2.0 * ndtr(-z), 1.0)
        p_adj = np.ones_like(p)
        p_adj[tested] = adjust(p[tested], correction)
        flagged = tested & (p_adj < alpha) & (size >= min_change)
    hits: List[int] = []
    if flagged is not None:
        order = (-size).argsort(kind="stable")  # largest change first
        hits = order[flagged[order]].tolist()
    listed = (cur, change, size, order, flagged, z, p_adj, root_n, m, ok, max(int(top), len(hits)))
    return CorrelationChange(
        section.n, section.skipped, True, bool(hits), max_change, alpha, min_change,
        [(names_a[k], names_b[k]) for k in hits], None,
        "" if ok is None else f"{len(ok) - m} pairs with a constant column were not tested",
        lambda count: _listed(ext, *listed, count),
    )


def _untested(section: CoMoments, alpha: float, min_change: float, note: str) -> CorrelationChange:
    return CorrelationChange(section.n, section.skipped, False, False, 0.0, alpha, min_change, note=note)


def _listed(ext: CorrelationExtension, cur: np.ndarray, change: np.ndarray, size: Optional[np.ndarray],
            order: Optional[np.ndarray], flagged: Optional[np.ndarray], z: Optional[np.ndarray],
            p_adj: Optional[np.ndarray], root_n: float, m: int, ok: Optional[np.ndarray], top: int,
            count: Optional[int]) -> Tuple[list, ...]:
    """The columns of :class:`PairChange` for the first ``count`` (None: all ``top``) pairs of
    largest change (``order``; None: not sorted yet), with their p-values: from each pair's
    Fisher ``z`` when the test made it for every pair, else for these pairs alone; adjusted as
    the test did (``p_adj``), else by Bonferroni's ``m``. ``flagged``: the verdict per pair
    (None: none flagged); ``ok``: the pairs tested (None: all) — an untested pair's window
    correlation reads NaN."""
    _, names_a, names_b, ref, z_ref, root_kappa = _reference(ext)
    if size is None:
        size = np.abs(change)
    if order is None:
        order = (-size).argsort(kind="stable")
    shown_a = order[:top if count is None else min(int(count), top)]
    shown = shown_a.tolist()
    cur_s, change_s = cur.take(shown_a).tolist(), change.take(shown_a).tolist()
    if z is None:
        z = _fisher(cur.take(shown_a), z_ref.take(shown_a), root_kappa.take(shown_a), root_n)
    else:
        z = z.take(shown_a)
    z_s = z.tolist()
    p_s = [2.0 * q for q in ndtr([-v for v in z_s]).tolist()]
    pa_s = [1.0 if q > 1.0 else q for q in (p * m for p in p_s)] if p_adj is None else p_adj.take(shown_a).tolist()
    flagged_s = [False] * len(shown) if flagged is None else flagged.take(shown_a).tolist()
    if ok is not None:
        nan = float("nan")
        cur_s = [c if o else nan for c, o in zip(cur_s, ok.take(shown_a).tolist())]
    return ([names_a[k] for k in shown], [names_b[k] for k in shown], ref.take(shown_a).tolist(), cur_s, change_s,
            p_s, pa_s, flagged_s)
