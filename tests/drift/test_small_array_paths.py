"""The per-window paths that read a few values without numpy's reductions give what the
reductions gave, NaN and infinity included.

Every window's correlation and outlier tests read extremes of a few dozen or a few hundred
values (``ndarray.argmax``/``argmin``, which return a NaN's index where there is one) and the
outlier shares as Python floats. These tests hold them to the plain numpy formulas they replace.
"""

import math

import numpy as np
import pytest

from raywatch.drift.outliers import outlier_quality
from raywatch.stats.comoments import CoMoments, largest_magnitude
from raywatch.stats.outliers import OutlierCounts, OutlierFences
from raywatch.stats.sections import Batch

NAN, INF = float("nan"), float("inf")


def _deviations_by_reductions(c: CoMoments) -> np.ndarray:
    """The documented rule with numpy's reductions: √M2[i, i], NaN where the column's spread is
    within rounding of its mean (M2[i, i] ≤ max(|mean_i|, 1)² · 1e-20 · n)."""
    diag = c.m2.diagonal()
    scale = np.maximum(np.abs(c.mean), 1.0) ** 2 * (1e-20 * max(c.n, 1))
    with np.errstate(invalid="ignore"):
        return np.sqrt(np.where(diag > scale, diag, np.nan))


def _comoments(mean, var, n=1000):
    return CoMoments(n, np.array(mean, dtype=float), np.diag(np.array(var, dtype=float) * n))


@pytest.mark.parametrize(
    "mean, var",
    [
        ([0.0, 1.0, -2.0], [1.0, 4.0, 0.25]),  # the common case
        ([0.0, 5.0, 1.0], [1.0, 0.0, 2.0]),  # a constant column
        ([1e12, 0.0], [1e-9, 1.0]),  # spread within rounding of a large mean
        ([-1e12, 0.0], [1.0, 1.0]),  # a large negative mean with real spread (1e-20 · 1e24 · n > 1 · n)
        ([NAN, 0.0], [1.0, 1.0]),  # a NaN mean
        ([0.0, 1.0], [NAN, 1.0]),  # a NaN variance
        ([INF, 0.0], [1.0, 1.0]),
        ([INF, -INF], [1.0, 1.0]),
        ([], []),
    ],
)
def test_deviations_follow_the_documented_rule(mean, var):
    c = _comoments(mean, var)
    with np.errstate(invalid="ignore"):
        got = c.deviations()
    np.testing.assert_array_equal(got, _deviations_by_reductions(c))


@pytest.mark.parametrize(
    "values",
    [
        [0.1, -0.3, 0.2],
        [-0.5, 0.5],  # a tie of the two signs
        [0.0],
        [0.2, NAN, -0.9],
        [NAN, 0.4],
        [0.3, -INF],
        [INF, -INF],
        list(np.random.default_rng(0).normal(scale=0.05, size=190)),
    ],
)
def test_the_largest_change_is_the_reduction_of_its_size(values):
    x = np.array(values, dtype=float)
    expected = float(np.maximum.reduce(np.abs(x)))
    got = largest_magnitude(x)
    assert type(got) is float
    assert (math.isnan(got) and math.isnan(expected)) or got == expected


def _fences(rng, columns=4):
    return OutlierFences.fit({f"c{k}": rng.normal(size=20_000) for k in range(columns)})


def test_outlier_shares_are_numpys_quotients_of_the_counts():
    rng = np.random.default_rng(1)
    ext = _fences(rng)
    section = OutlierCounts(np.array([1000, 0, 7, 3]), np.array([13, 0, 1, 3]))
    r = outlier_quality(ext, section)
    expected = (section.beyond / np.maximum(section.values, 1)).tolist()
    assert r.share_list() == expected and all(type(v) is float for v in r.share_list())
    assert [s for _, s, _, _ in r.shares()] == expected
    assert [r[c].share for c in ext.columns] == expected
    assert [r[c].values for c in ext.columns] == [1000, 0, 7, 3]
    assert r[ext.columns[3]].issue  # 3 of 3 beyond the fences: a share far above the reference's


def test_a_stationary_window_has_no_p_values_and_a_heavy_tail_has_its_binomial_test():
    rng = np.random.default_rng(2)
    ext = _fences(rng, columns=2)
    calm = ext.summarize(Batch({"c0": rng.normal(size=5000), "c1": rng.normal(size=5000)}, 5000))
    r = outlier_quality(ext, calm)
    assert [r[c].p_value for c in ext.columns] == [None, None] and not any(r[c].issue for c in ext.columns)
    heavy = ext.summarize(Batch({"c0": rng.standard_t(2, size=5000), "c1": rng.normal(size=5000)}, 5000))
    r = outlier_quality(ext, heavy)
    assert r["c0"].issue and r["c0"].p_value is not None and r["c0"].p_value < 1e-10
    assert not r["c1"].issue


def test_a_nan_reference_rate_goes_to_the_binomial_branch_and_is_not_an_issue():
    rng = np.random.default_rng(3)
    ext = _fences(rng, columns=2)
    ext.reference_rate = np.array([NAN, ext.reference_rate[1]])  # as a damaged or hand-made state could carry
    ext.__dict__.pop("_lists", None)
    r = outlier_quality(ext, OutlierCounts(np.array([100, 100]), np.array([0, 0])))
    # the NaN rate fails "every share below its rate + tolerance": the binomial branch runs, and a
    # NaN excess is no candidate (no p-value, no issue), as with numpy's comparisons before
    assert [r[c].p_value for c in ext.columns] == [None, None]
    assert not any(r[c].issue for c in ext.columns)
    assert r._p is not None  # the branch ran
