"""The binned KS test and Wasserstein effect size of many numerical columns in one pass.

:func:`~raywatch.drift.detect_drift` tests every numerical column of a window; a stats actor
does so for every model, window and segment at each evaluation. Column by column that is ~25
numpy calls and a p-value law per column. Here the window's histograms of all the columns
that take the binned ``ks`` test are gathered into one matrix per bin count (the profile's
columns mostly share the default 100 bins) and every figure is a row-wise numpy operation:

* the two CDFs at the bin edges, ``d_low`` and ``d_high``
  (:func:`~raywatch.drift.statistics.ks_binned`, same formulas);
* the p-values of ``d_low``, all in one call of the bounded law
  (:func:`~raywatch.drift.statistics.ks_pvalues`);
* the Wasserstein distance from the histograms and the tail sums
  (:func:`~raywatch.drift.statistics.wasserstein_binned`, same formulas), in reference
  standard deviations: the effect size.

Each figure equals the column-by-column one to rounding (the tests compare them). What depends
on the reference alone — its CDFs, tail terms, bin widths, the gather indices — is computed
once per profile (:func:`plan_for`, cached while the profile lives).

>>> import numpy as np
>>> from raywatch.stats.profile import Profile
>>> rng = np.random.default_rng(0)
>>> profile = Profile.fit({"a": rng.normal(size=5000), "b": rng.normal(size=5000)}, seed=0)
>>> window = profile.summarize({"a": rng.normal(0.3, 1, 800), "b": rng.normal(size=800)})
>>> res = binned_tests(plan_for(profile), window, np.array([0, 1]))
>>> [round(float(v), 3) for v in res.d_low], bool(res.p_value[0] < 1e-6 < res.p_value[1])
([0.13, 0.024], True)
"""

from __future__ import annotations

import weakref
from typing import Any, Dict, List, NamedTuple, Tuple

import numpy as np

from raywatch.drift.methods import default_method
from raywatch.drift.statistics import ks_pvalues
from raywatch.stats.summary import FLOAT_FIELDS, INT_FIELDS, WindowSummary

__all__ = ["Plan", "Against", "BinnedResults", "plan_for", "against", "binned_tests"]

_COUNT = INT_FIELDS.index("count")
_M2, _LOW_SUM, _HIGH_SUM = FLOAT_FIELDS.index("m2"), FLOAT_FIELDS.index("low_sum"), FLOAT_FIELDS.index("high_sum")


class _Group(NamedTuple):
    """Columns of one bin count ``B``: where their counts sit in a summary's flat array."""

    columns: np.ndarray  # (C,) column indexes in the profile
    gather: np.ndarray  # (C, B) positions of their bins in the flat counts
    ref_n: np.ndarray  # (C,) the reference's histogram totals
    ref_cdf: np.ndarray  # (C, B + 1) the reference's CDF at the edges, from 0 to 1
    widths: np.ndarray  # (C, B - 2) interior bin widths
    first: np.ndarray  # (C,) lowest and highest edge
    last: np.ndarray
    ref_low: np.ndarray  # (C,) the reference's lower and upper tail terms (c0·e0 − S0)/n ...
    ref_high: np.ndarray


class Plan(NamedTuple):
    """What :func:`binned_tests` and ``detect_drift`` need of one profile (see :func:`plan_for`)."""

    reference: WindowSummary  # the profile's reference summary this plan was made from
    groups: Tuple[_Group, ...]
    where: Dict[int, Tuple[int, int]]  # column index -> (group, row in the group)
    scale: np.ndarray  # per profile column: the reference std (1.0 when 0), for the effect size
    default_methods: Tuple[str, ...]  # per profile column: raywatch's default rule (methods.default_method)
    columns: Tuple[Any, ...]  # per profile column: the reference's ColumnSummary (read-only views)
    quality_rates: np.ndarray  # (5, columns): the reference rates of raywatch.drift.quality's shares


class BinnedResults(NamedTuple):
    """Per requested column, in the order requested."""

    d_low: np.ndarray
    d_high: np.ndarray
    p_value: np.ndarray
    effect: np.ndarray  # Wasserstein distance in reference standard deviations


_PLANS: "weakref.WeakKeyDictionary[object, Plan]" = weakref.WeakKeyDictionary()


def _cdf(counts: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``(totals, CDF at the edges)`` of each row of ``counts`` (as ``statistics._binned_cdfs``)."""
    n = counts.sum(axis=1)
    safe = np.where(n > 0, n, 1.0)
    f = np.zeros((counts.shape[0], counts.shape[1] + 1))
    np.cumsum(counts, axis=1, out=f[:, 1:])
    f[:, 1:] /= safe[:, None]
    f[:, -1] = 1.0
    return n, f


def plan_for(profile) -> Plan:
    """The batched tests' plan of ``profile``'s numerical columns with at least one interior
    edge (made once, cached while the profile and its reference summary live)."""
    plan = _PLANS.get(profile)
    ref = profile.reference
    if plan is not None and plan.reference is ref:
        return plan
    specs = list(profile.specs.values())
    tests = against(profile, ref)
    columns = tuple(ref.column(s.name) for s in specs)
    defaults = tuple(default_method(s.kind, col) for s, col in zip(specs, columns))
    plan = Plan(ref, tests.groups, tests.where, tests.scale, defaults, columns, _quality_rates(specs, ref))
    _PLANS[profile] = plan
    return plan


class Against(NamedTuple):
    """What :func:`binned_tests` needs of a reference: a :class:`Plan` is one too."""

    groups: Tuple[_Group, ...]
    where: Dict[int, Tuple[int, int]]
    scale: np.ndarray


def against(profile, ref: WindowSummary) -> Against:
    """The batched tests of ``profile``'s numerical columns (those with an interior edge)
    against ``ref``, any summary made with the profile: its reference (:func:`plan_for`
    keeps that one), or a pool of replicas that the others are compared with
    (:mod:`raywatch.drift.replica_outlier`; made afresh, a few numpy calls)."""
    specs = list(profile.specs.values())
    offsets = ref._offsets
    by_bins: Dict[int, List[int]] = {}
    for i, spec in enumerate(specs):
        if spec.kind == "numerical" and spec.edges.size >= 1:
            by_bins.setdefault(int(ref.n_bins[i]), []).append(i)
    groups, where = [], {}
    counts = ref.counts.astype(np.float64)
    for b, cols in sorted(by_bins.items()):
        idx = np.asarray(cols, dtype=np.intp)
        gather = offsets[idx][:, None] + np.arange(b)[None, :]
        r = counts[gather]
        n, f = _cdf(r)
        edges = np.stack([specs[i].edges for i in cols])  # (C, B - 1)
        first, last = edges[:, 0], edges[:, -1]
        safe = np.where(n > 0, n, 1.0)
        low = (r[:, 0] * first - ref.floats[idx, _LOW_SUM]) / safe
        high = (ref.floats[idx, _HIGH_SUM] - r[:, -1] * last) / safe
        for row, i in enumerate(cols):
            where[i] = (len(groups), row)
        groups.append(_Group(idx, gather, n, f, np.diff(edges, axis=1), first, last, low, high))
    count = ref.ints[:, _COUNT].astype(np.float64)
    var = np.where(count > 0, ref.floats[:, _M2] / np.where(count > 0, count, 1.0), 0.0)
    std = np.sqrt(np.maximum(var, 0.0))
    return Against(tuple(groups), where, np.where(std > 0, std, 1.0))


def shares(k: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``k / n`` where ``n > 0``, else 0 (elementwise)."""
    return np.divide(k, n, out=np.zeros(np.shape(k)), where=n > 0)


def _quality_rates(specs: List[Any], ref: WindowSummary) -> np.ndarray:
    """The reference rate of each data-quality share (see :mod:`raywatch.drift.quality`), in
    its order: missing, non-finite and wrong-type shares of the reference's rows; out of range
    ``2 / (n + 1)`` for numerical columns; unseen labels ``singletons / n`` for categorical ones."""
    r = ref.ints.astype(np.float64)
    rows, count = r[:, INT_FIELDS.index("rows")], r[:, _COUNT]
    numerical = np.array([s.kind == "numerical" for s in specs], dtype=bool)
    categorical = np.array([s.kind == "categorical" for s in specs], dtype=bool)
    singletons = np.array([float(s.singletons) if s.kind == "categorical" else 0.0 for s in specs])
    return np.stack([
        shares(r[:, INT_FIELDS.index("missing")], rows),
        shares(r[:, INT_FIELDS.index("nonfinite")], rows),
        shares(r[:, INT_FIELDS.index("wrong_type")], rows),
        np.where(numerical, 2.0 / (count + 1.0), 0.0),
        np.where(categorical, shares(singletons, count), 0.0),
    ])


def _abs_linear_integral(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """∫ |linear from a to b| over widths w (as ``statistics._abs_linear_integral``)."""
    same = a * b >= 0
    s = np.abs(a) + np.abs(b)
    crossing = np.divide(a * a + b * b, 2.0 * s, out=np.zeros_like(s), where=s > 0)
    return w * np.where(same, 0.5 * s, crossing)


def binned_tests(plan: Any, summary: WindowSummary, columns: np.ndarray) -> BinnedResults:
    """Binned KS (``d_low``, ``d_high``, p-value of ``d_low``) and the normed Wasserstein
    distance of ``columns`` (profile column indexes, each in ``plan.where``) of ``summary``,
    against the reference of ``plan`` (a :class:`Plan` or an :class:`Against`).
    Every requested column must have values in the reference and the window."""
    columns = np.asarray(columns, dtype=np.intp)
    out = np.zeros((4, columns.size))
    cur_counts = summary.counts.astype(np.float64)
    rows_of: Dict[int, List[Tuple[int, int]]] = {}
    for pos, i in enumerate(columns.tolist()):
        g, row = plan.where[i]
        rows_of.setdefault(g, []).append((pos, row))
    for g, items in rows_of.items():
        grp = plan.groups[g]
        pos = np.array([p for p, _ in items], dtype=np.intp)
        rows = np.array([r for _, r in items], dtype=np.intp)
        f = grp.ref_cdf[rows]
        c = cur_counts[grp.gather[rows]]
        nc, gcdf = _cdf(c)
        diff = f - gcdf
        d_low = np.abs(diff).max(axis=1)
        d_high = np.maximum(np.maximum((f[:, 1:] - gcdf[:, :-1]).max(axis=1), (gcdf[:, 1:] - f[:, :-1]).max(axis=1)),
                            d_low)
        idx = grp.columns[rows]
        inner = _abs_linear_integral(diff[:, 1:-2], diff[:, 2:-1], grp.widths[rows]).sum(axis=1)
        first, last = grp.first[rows], grp.last[rows]
        cur_low = (c[:, 0] * first - summary.floats[idx, _LOW_SUM]) / nc
        cur_high = (summary.floats[idx, _HIGH_SUM] - c[:, -1] * last) / nc
        w = inner + np.abs(grp.ref_low[rows] - cur_low) + np.abs(grp.ref_high[rows] - cur_high)
        out[0, pos] = d_low
        out[1, pos] = d_high
        out[2, pos] = ks_pvalues(d_low, np.rint(grp.ref_n[rows]).astype(np.int64), np.rint(nc).astype(np.int64))
        out[3, pos] = w / plan.scale[idx]
    return BinnedResults(out[0], out[1], out[2], out[3])
