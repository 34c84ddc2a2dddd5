"""Correlation change: caught where every univariate test is blind, quiet on stationary data."""

import numpy as np
import pytest
from scipy.stats import norm

from raywatch.drift import detect_drift
from raywatch.drift.correlation import correlation_change
from raywatch.stats import Profile
from raywatch.stats.comoments import CoMoments, CorrelationExtension
from raywatch.stats.sections import Batch

NAMES = ["a", "b", "c", "d", "e", "f"]


def draw(rng, n, rho=0.0):
    """Six columns: a Gaussian copula with correlation ``rho`` between a and b, mapped to fixed
    marginals (normal, exponential, Student t, uniform, lognormal, normal). The marginals never
    change with ``rho``."""
    z = rng.normal(size=(n, 6))
    z[:, 1] = rho * z[:, 0] + np.sqrt(1 - rho * rho) * z[:, 1]
    u = norm.cdf(z)
    return {
        "a": z[:, 0], "b": -np.log1p(-u[:, 1]), "c": rng.standard_t(4, n), "d": u[:, 3],
        "e": np.exp(z[:, 4]), "f": z[:, 5] + 0.5 * z[:, 2],
    }


@pytest.fixture(scope="module")
def profile():
    return Profile.fit(draw(np.random.default_rng(1), 50_000), seed=0, correlation=True)


def test_a_correlation_only_shift_is_caught_where_univariate_tests_are_blind(profile):
    rng = np.random.default_rng(2)
    window = draw(rng, 5000, rho=0.5)
    report = detect_drift(profile, window)
    assert report.drifted_columns == []  # every marginal is unchanged: KS sees nothing
    result = report.extensions["correlation"]
    assert result.drifted and result.drifted_pairs == [("a", "b")]
    assert report.multivariate_drift
    top = result.pairs[0]
    assert (top.a, top.b) == ("a", "b") and top.change > 0.3 and top.p_value_adjusted < 1e-10


def test_stationary_windows_are_not_flagged():
    # small windows (300 rows) so the p-value, not the 0.1 floor, is what keeps them quiet;
    # heavy tails (t4, lognormal) are where Pearson's correlation lost its level (7 %)
    rng = np.random.default_rng(3)
    data = draw(rng, 50_000)
    ext = CorrelationExtension.fit(NAMES, np.column_stack([data[k] for k in NAMES]))
    flagged = 0
    for _ in range(300):
        flagged += correlation_change(ext, ext.summarize(Batch(draw(rng, 300), 300))).drifted
    print(f"\nstationary, 300 rows: {flagged} of 300 windows flagged (alpha 0.05, family-wise)")
    assert flagged <= 0.05 * 300 + 2.33 * np.sqrt(0.05 * 0.95 * 300)  # the level, within sampling error
    big = sum(correlation_change(ext, ext.summarize(Batch(draw(rng, 5000), 5000))).drifted for _ in range(20))
    assert big == 0  # large windows: the 0.1 floor keeps significant but tiny changes quiet


def test_the_null_variance_follows_the_dependence_not_the_textbook():
    rng = np.random.default_rng(4)

    def t3(n):  # a t copula: heavier joint tails than the normal one with the same correlation
        z = rng.normal(size=(n, 2))
        z[:, 1] = 0.6 * z[:, 0] + 0.8 * z[:, 1]
        return z / np.sqrt(rng.chisquare(3, size=(n, 1)) / 3)

    normal = rng.normal(size=(200_000, 2))
    normal[:, 1] = 0.5 * normal[:, 0] + np.sqrt(0.75) * normal[:, 1]
    assert CorrelationExtension.fit(["x", "y"], normal).tau2[0, 1] == pytest.approx(0.75**2, rel=0.05)
    ext = CorrelationExtension.fit(["x", "y"], t3(200_000))
    rho = ext.reference_corr[0, 1]
    kappa = ext.tau2[0, 1] / (1 - rho**2) ** 2
    z = []
    for _ in range(400):
        w = t3(500)
        r = ext.summarize(Batch({"x": w[:, 0], "y": w[:, 1]}, 500)).correlation()[0, 1]
        z.append((np.arctanh(r) - np.arctanh(rho)) * np.sqrt(497))
    assert kappa > 1.4  # the textbook variance 1/(n - 3) would be too narrow here
    assert np.std(z) / np.sqrt(kappa) == pytest.approx(1.0, abs=0.12)


def test_co_moments_merge_exactly_and_match_numpy():
    rng = np.random.default_rng(5)
    x = rng.normal(3.0, 2.0, size=(3000, 4)) @ rng.normal(size=(4, 4))
    parts = [CoMoments.of(x[i:i + 700]) for i in range(0, 3000, 700)]
    merged = parts[0]
    for p in parts[1:]:
        merged = merged.merge(p)
    np.testing.assert_allclose(merged.mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(merged.m2, np.cov(x.T, bias=True) * 3000, rtol=1e-9)
    np.testing.assert_allclose(merged.correlation(), np.corrcoef(x.T), atol=1e-12)


def test_missing_values_skip_rows_and_small_windows_are_not_tested(profile):
    ext = profile.extensions["correlation"]
    rng = np.random.default_rng(6)
    w = draw(rng, 100)
    w["c"] = np.where(np.arange(100) < 80, np.nan, w["c"])
    sec = profile.summarize(w).sections["correlation"]
    assert (sec.n, sec.skipped) == (20, 80)
    r = correlation_change(ext, sec)
    assert not r.tested and "fewer than min_rows" in r.note
    constant = {k: np.ones(100) if k == "d" else v for k, v in draw(rng, 100).items()}
    r = correlation_change(ext, profile.summarize(constant).sections["correlation"])
    assert r.tested and "constant column" in r.note


def test_options_and_config_thresholds(profile):
    window = draw(np.random.default_rng(7), 5000, rho=0.15)
    assert detect_drift(profile, window).extensions["correlation"].drifted
    quiet = detect_drift(profile, window, options={"correlation": {"min_change": 0.2}})
    assert not quiet.extensions["correlation"].drifted
    off = detect_drift(profile, window, options={"correlation": {"enabled": False}})
    assert "correlation" not in off.extensions
