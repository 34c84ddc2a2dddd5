"""The batched binned KS and Wasserstein figures equal the column-by-column ones."""

import numpy as np
import pytest

from raywatch.config import DriftConfig
from raywatch.drift import detect_drift
from raywatch.drift.batched import binned_tests, plan_for
from raywatch.drift.methods import METHODS, ColumnPair, effect_size
from raywatch.stats.profile import Profile


def _reference(rng, n=6000):
    return {
        "normal": rng.normal(size=n),
        "skewed": rng.lognormal(1.0, 1.0, n),
        "discrete": rng.integers(0, 7, n).astype(float),  # ties: fewer bins than 100
        "coarse": rng.integers(0, 2, n).astype(float) * 3.0,  # two values: one interior edge
        "gappy": np.where(rng.random(n) < 0.2, np.nan, rng.normal(5, 2, n)),
        "label": rng.choice(["x", "y", "z"], n),
    }


def _window(rng, n, shift):
    w = _reference(rng, n)
    w["normal"] = w["normal"] + shift
    w["skewed"] = w["skewed"] * (1 + shift)
    w["gappy"][:5] = np.inf
    return w


@pytest.fixture(scope="module")
def profile():
    return Profile.fit(_reference(np.random.default_rng(0)), seed=0)


def _one_by_one(profile, summary, name):
    pair = ColumnPair(ref=profile.reference.column(name), cur=summary.column(name), edges=profile.specs[name].edges,
                      ref_complete=False, cur_complete=False)
    res = METHODS["ks"].compute(pair)
    return res.bounds[0], res.bounds[1], res.p_value, effect_size(pair)


@pytest.mark.parametrize("rows,shift", [(150, 0.0), (900, 0.2), (20_000, 0.05), (3000, 1.5)])
def test_batched_figures_equal_the_column_by_column_ones(profile, rows, shift):
    summary = profile.summarize(_window(np.random.default_rng(rows), rows, shift))
    plan = plan_for(profile)
    names = [n for i, n in enumerate(profile.columns) if i in plan.where]
    assert names == ["normal", "skewed", "discrete", "coarse", "gappy"]
    assert len({g.gather.shape[1] for g in plan.groups}) == 3  # 100, 7 and 2 bins
    res = binned_tests(plan, summary, np.array([profile.columns.index(n) for n in names]))
    for j, name in enumerate(names):
        d_low, d_high, p, effect = _one_by_one(profile, summary, name)
        assert res.d_low[j] == d_low and res.d_high[j] == d_high and res.p_value[j] == p
        assert res.effect[j] == effect


def test_detect_drift_reports_what_the_column_methods_give(profile):
    rng = np.random.default_rng(5)
    summary = profile.summarize(_window(rng, 2500, 0.3))
    for cfg in (None, DriftConfig(correction="bh"), DriftConfig(columns={"skewed": {"method": "psi"}})):
        report = detect_drift(profile, summary, cfg)
        for name in ("normal", "discrete", "gappy"):
            col = report.columns[name]
            d_low, d_high, p, effect = _one_by_one(profile, summary, name)
            assert (col.statistic, col.statistic_bounds, col.p_value) == (d_low, (d_low, d_high), p)
            assert col.effect_size == effect and col.figures == "bound" and not col.exact
            assert isinstance(col.statistic, float) and isinstance(col.p_value, float)
        assert report.columns["normal"].drifted and not report.columns["discrete"].drifted
    assert detect_drift(profile, summary, DriftConfig(columns={"skewed": {"method": "psi"}})).columns["skewed"].method == "psi"


def test_the_plan_is_made_once_per_profile(profile):
    assert plan_for(profile) is plan_for(profile)
    other = Profile.fit(_reference(np.random.default_rng(1)), seed=0)
    assert plan_for(other) is not plan_for(profile)
