import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from raywatch.drift import kslaw, statistics as rs
from raywatch.drift.correction import adjust, benjamini_hochberg, bonferroni

TOL = 1e-9


def _samples(seed, n1, n2, shift=0.0, ties=False):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n1), rng.normal(shift, 1.0, size=n2)
    if ties:
        a, b = np.round(a, 1), np.round(b, 1)
    return a, b


@pytest.mark.parametrize(
    "n1,n2,shift,ties",
    [
        (5, 7, 0.0, False),
        (50, 80, 0.5, False),
        (300, 300, 0.2, True),
        (1000, 10_000, 0.05, False),  # exact law
        (3000, 12_000, 0.1, True),  # asymptotic law
        (25_000, 30_000, 0.02, False),  # asymptotic, en just below 20,000
    ],
)
def test_ks_equals_scipy(n1, n2, shift, ties):
    a, b = _samples(n1 + n2, n1, n2, shift, ties)
    d, p = rs.ks_samples(a, b)
    ref = stats.ks_2samp(a, b)
    assert abs(d - ref.statistic) <= TOL
    assert abs(p - ref.pvalue) <= TOL


def test_ks_pvalue_large_windows_stays_close_to_scipy():
    # above en = 20,000 the Vrbik-corrected limit law stands in for scipy's slow evaluation
    for n1, n2 in ((60_000, 60_000), (45_000, 1_000_000)):
        en = round(n1 * n2 / (n1 + n2))
        for z in (0.5, 1.0, 1.4, 2.0, 3.0):
            d = z / math.sqrt(en)
            assert abs(rs.ks_pvalue(d, n1, n2) - stats.kstwo.sf(d, en)) <= 1.1e-6


def test_bounded_ks_pvalue_is_exact_when_cheap_and_conservative_when_not():
    from scipy.stats._stats_py import _attempt_exact_2kssamp

    rng = np.random.default_rng(11)
    # cheap (n1·n2 ≤ 100,000): the same exact law as scipy's 'auto'
    for n1, n2 in ((300, 300), (99, 1000), (20, 5000)):
        d = 1.1 / math.sqrt(n1 * n2 / (n1 + n2))
        assert rs.ks_pvalue(d, n1, n2, bounded=True) == rs.ks_pvalue(d, n1, n2)
    # larger: the corrected limit law, never below the exact law, within its documented bound
    worst = 1.0
    for _ in range(40):
        n1, n2 = (int(v) for v in rng.integers(2001, 10_001, 2))
        en = n1 * n2 / (n1 + n2)
        for z in (0.6, 1.0, 1.36, 1.8, 2.5):
            g = math.gcd(n1, n2)
            d = round(z / math.sqrt(en) * (n1 // g) * n2) / ((n1 // g) * n2)
            p = rs.ks_pvalue(d, n1, n2, bounded=True)
            _, _, exact = _attempt_exact_2kssamp(n1, n2, g, d, "two-sided")
            assert exact <= p <= exact * kslaw.max_ratio(en, exact) + 1e-12
            worst = max(worst, p / exact)
    assert worst > 1.0  # a limit law, not the exact one


def test_binned_ks_uses_the_bounded_law():
    ref = np.full(100, 20)  # 2,000 reference rows, 9,010 current ones: 18M pairs
    cur = np.full(100, 90)
    cur[:10] += 30
    cur[-10:] -= 29
    d_low, _, p = rs.ks_binned(ref, cur)
    assert cur.sum() == 9010
    assert p == rs.ks_pvalue(d_low, 2000, 9010, bounded=True) != rs.ks_pvalue(d_low, 2000, 9010)


@pytest.mark.parametrize("seed", range(4))
def test_wasserstein_equals_scipy(seed):
    a, b = _samples(seed, 40 + seed * 100, 70, shift=0.3, ties=seed % 2 == 0)
    assert abs(rs.wasserstein_samples(a, b) - stats.wasserstein_distance(a, b)) <= TOL


@pytest.mark.parametrize("seed", range(4))
def test_divergences_equal_scipy(seed):
    rng = np.random.default_rng(seed)
    p, q = rng.random(12) + 0.01, rng.random(12) + 0.01
    p, q = p / p.sum(), q / q.sum()
    assert abs(rs.kl_divergence(p, q) - stats.entropy(p, q)) <= TOL
    assert abs(rs.js_distance(p, q) - jensenshannon(p, q)) <= TOL
    assert abs(rs.psi(p, q) - (stats.entropy(p, q) + stats.entropy(q, p))) <= TOL  # PSI = symmetric KL
    assert abs(rs.hellinger(p, q) - math.sqrt(max(0.0, 1 - np.sum(np.sqrt(p * q))))) <= TOL
    assert abs(rs.total_variation(p, q) - 0.5 * np.abs(p - q).sum()) <= TOL


def test_js_distance_handles_zero_bins_like_scipy():
    p, q = np.array([0.5, 0.5, 0.0]), np.array([0.0, 0.5, 0.5])
    assert abs(rs.js_distance(p, q) - jensenshannon(p, q)) <= TOL
    assert rs.total_variation(p, q) == 0.5
    assert rs.js_distance(p, p) == 0.0


@pytest.mark.parametrize("seed", range(4))
def test_chisquare_equals_scipy(seed):
    rng = np.random.default_rng(seed)
    obs = rng.integers(5, 100, 6).astype(float)
    exp = rng.random(6) + 0.1
    exp = exp / exp.sum() * obs.sum()
    stat, p = rs.chisquare(obs, exp)
    ref = stats.chisquare(obs, exp)
    assert abs(stat - ref.statistic) <= TOL * max(1.0, ref.statistic)
    assert abs(p - ref.pvalue) <= TOL


@pytest.mark.parametrize("x1,n1,x2,n2", [(30, 100, 45, 120), (500, 1000, 480, 1000), (1, 50, 10, 60)])
def test_ztest_equals_two_by_two_chi_square(x1, n1, x2, n2):
    z, p = rs.ztest(x1, n1, x2, n2)
    table = np.array([[n1 - x1, x1], [n2 - x2, x2]])
    ref = stats.chi2_contingency(table, correction=False)
    assert abs(z * z - ref.statistic) <= 1e-9 * max(1.0, ref.statistic)
    assert abs(p - ref.pvalue) <= TOL
    assert rs.ztest(0, 10, 0, 20) == (0.0, 1.0)


def test_bh_equals_scipy_and_bonferroni_caps():
    rng = np.random.default_rng(3)
    p = rng.random(25) ** 3
    np.testing.assert_allclose(benjamini_hochberg(p), stats.false_discovery_control(p), atol=TOL)
    np.testing.assert_allclose(bonferroni(p), np.minimum(p * 25, 1))
    assert adjust([], "bh").size == 0
    np.testing.assert_array_equal(adjust(p, "none"), p)
    with pytest.raises(ValueError, match="correction must be one of"):
        adjust(p, "holm")


histograms = st.integers(2, 40).flatmap(
    lambda bins: st.tuples(
        st.lists(st.integers(0, 30), min_size=bins, max_size=bins).filter(lambda c: sum(c) > 0),
        st.lists(st.integers(0, 30), min_size=bins, max_size=bins).filter(lambda c: sum(c) > 0),
    )
)


@settings(max_examples=40, deadline=None)
@given(histograms, st.randoms(use_true_random=False))
def test_binned_ks_brackets_the_raw_statistic(hists, rnd):
    # raw data consistent with the histograms: any values inside each bin (edges 0, 1, 2, ...)
    ref_counts, cur_counts = hists

    def spread(counts):
        out = []
        for i, c in enumerate(counts):
            lo = i - 1 if i > 0 else -5.0
            out += [lo + rnd.uniform(0.001, 0.999) * (i - lo) for _ in range(c)]
        return np.array(out)

    a, b = spread(ref_counts), spread(cur_counts)
    d_low, d_high, p = rs.ks_binned(np.array(ref_counts), np.array(cur_counts))
    d = stats.ks_2samp(a, b).statistic
    assert d_low - 1e-12 <= d <= d_high + 1e-12
    max_mass = max(max(ref_counts) / sum(ref_counts), max(cur_counts) / sum(cur_counts))
    assert d_high - d_low <= max_mass + 1e-12
    assert p >= stats.ks_2samp(a, b).pvalue - 1e-9  # conservative


def test_binned_ks_on_quantile_bins_is_within_one_bin():
    a, b = _samples(9, 50_000, 20_000, shift=0.1)
    edges = np.quantile(a, np.arange(1, 100) / 100)

    def hist(x):
        return np.diff(np.searchsorted(np.sort(x), edges, side="right"), prepend=0, append=x.size)

    d_low, d_high, _ = rs.ks_binned(hist(a), hist(b))
    d = stats.ks_2samp(a, b).statistic
    assert d_low <= d <= d_high and d_high - d_low <= 0.012


def test_binned_wasserstein_is_close_to_raw():
    for shift, scale in ((0.0, 1.0), (0.3, 1.0), (0.0, 1.5)):
        a, b = _samples(4, 50_000, 20_000)
        b = shift + scale * b
        edges = np.quantile(a, np.arange(1, 100) / 100)

        def hist(x):
            return np.diff(np.searchsorted(np.sort(x), edges, side="right"), prepend=0, append=x.size)

        def tails(x):
            return float(x[x <= edges[0]].sum()), float(x[x > edges[-1]].sum())

        lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
        w = rs.wasserstein_binned(edges, hist(a), hist(b), lo, hi, tails(a), tails(b))
        exact = stats.wasserstein_distance(a, b)
        assert abs(w - exact) / a.std() <= 0.015
        if shift:  # without the tail sums, the outer bins are guessed: fine for a shift
            assert abs(rs.wasserstein_binned(edges, hist(a), hist(b), lo, hi) - exact) / a.std() <= 0.015


def test_smoothing_and_input_errors():
    assert rs.proportions([0, 2, 2]).tolist() == [0.0, 0.5, 0.5]
    sm = rs.proportions([0, 0, 10], smoothing=0.5)
    assert sm.sum() == pytest.approx(1.0) and sm.min() > 0
    assert math.isfinite(rs.psi(rs.proportions([10, 0], 0.5), rs.proportions([0, 10], 0.5)))
    with pytest.raises(ValueError, match="empty histogram"):
        rs.proportions([0, 0])
    with pytest.raises(ValueError, match="smooth"):
        rs.psi([0.5, 0.5], [1.0, 0.0])
    with pytest.raises(ValueError, match="smooth"):
        rs.kl_divergence([0.5, 0.5], [1.0, 0.0])
    with pytest.raises(ValueError, match="same length"):
        rs.js_distance([0.5, 0.5], [1.0])
    with pytest.raises(ValueError, match="positive expected"):
        rs.chisquare([1, 2], [0, 3])
    with pytest.raises(ValueError, match="at least two"):
        rs.chisquare([1], [1])
    with pytest.raises(ValueError, match="non-empty"):
        rs.ks_samples(np.array([]), np.array([1.0]))
    with pytest.raises(ValueError, match="non-empty"):
        rs.ks_binned(np.array([0, 0]), np.array([1, 2]))
    with pytest.raises(ValueError, match="non-empty"):
        rs.wasserstein_samples(np.array([1.0]), np.array([]))
    with pytest.raises(ValueError, match="non-empty"):
        rs.ztest(0, 0, 1, 2)
