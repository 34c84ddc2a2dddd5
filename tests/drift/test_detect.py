import json
import warnings

import numpy as np
import pytest
from scipy import stats

from raywatch.config import ConfigError, DriftConfig
from raywatch.drift import METHODS, detect_drift
from raywatch.stats import Profile


@pytest.fixture(scope="module")
def ref():
    rng = np.random.default_rng(21)
    n = 20_000
    return {
        "a": rng.normal(size=n),
        "b": rng.normal(5, 2, size=n),
        "c": rng.choice(["x", "y", "z"], n, p=[0.5, 0.3, 0.2]),
        "two": rng.choice(["yes", "no"], n),
        "flag": rng.random(n) < 0.2,
    }


@pytest.fixture(scope="module")
def profile(ref):
    return Profile.fit(ref, seed=0)


def window(seed, n=5000, shift_a=0.0, c_probs=(0.5, 0.3, 0.2), flag_p=0.2):
    rng = np.random.default_rng(seed)
    return {
        "a": rng.normal(shift_a, 1, size=n),
        "b": rng.normal(5, 2, size=n),
        "c": rng.choice(["x", "y", "z"], n, p=list(c_probs)),
        "two": rng.choice(["yes", "no"], n),
        "flag": rng.random(n) < flag_p,
    }


def test_default_methods_by_kind(profile):
    report = detect_drift(profile, window(1))
    methods = {name: c.method for name, c in report.columns.items()}
    assert methods == {"a": "ks", "b": "ks", "c": "chisquare", "two": "ztest", "flag": "ztest"}
    assert not report.dataset_drift and report.drifted_columns == []
    for c in report.columns.values():
        assert c.tested and c.threshold == 0.05 and c.p_value_adjusted >= c.p_value
        assert c.effect_floor == (0.1 if c.kind == "numerical" else 0.05)
    assert report.columns["a"].exact is False and report.columns["a"].statistic_bounds is not None


def test_shift_is_detected_and_reported(profile):
    report = detect_drift(profile, window(2, shift_a=0.5, c_probs=(0.2, 0.3, 0.5), flag_p=0.5))
    assert report.drifted_columns == ["a", "c", "flag"]
    assert report.drift_share == pytest.approx(3 / 5)
    assert report.dataset_drift  # 3/5 >= 0.5
    a = report.columns["a"]
    assert a.effect_size == pytest.approx(0.5, abs=0.05)
    assert a.statistic_bounds[0] <= a.statistic_bounds[1]
    d = report.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["columns"]["a"]["drifted"] is True and d["drifted_columns"] == ["a", "c", "flag"]
    assert json.loads(report.to_json())["dataset_drift"] is True


def test_binned_ks_brackets_scipy_on_the_raw_data(ref, profile):
    cur = window(3, shift_a=0.05)
    report = detect_drift(profile, cur)
    for name in ("a", "b"):
        lo, hi = report.columns[name].statistic_bounds
        d = stats.ks_2samp(ref[name], cur[name]).statistic
        assert lo - 1e-12 <= d <= hi + 1e-12
        assert report.columns[name].p_value >= stats.ks_2samp(ref[name], cur[name]).pvalue - 1e-9


def test_exact_path_equals_scipy_for_small_data():
    rng = np.random.default_rng(5)
    ref = rng.normal(size=800)
    profile = Profile.fit({"x": ref}, seed=0)  # the reference fits in its sample
    cur = rng.normal(0.4, 1, size=60)  # and the window in its sample (100)
    report = detect_drift(profile, {"x": cur})
    col = report.columns["x"]
    scipy_ks = stats.ks_2samp(ref, cur)
    assert col.exact
    assert abs(col.statistic - scipy_ks.statistic) <= 1e-9
    assert abs(col.p_value - scipy_ks.pvalue) <= 1e-9
    assert abs(col.effect_size - stats.wasserstein_distance(ref, cur) / ref.std()) <= 1e-9


def test_effect_floor_keeps_tiny_shifts_in_huge_windows_quiet(profile):
    # 0.06 sigma on 1M rows: highly significant, practically irrelevant
    rng = np.random.default_rng(9)
    big = {"a": rng.normal(0.06, 1, size=1_000_000)}
    summary = profile.summarize(big)
    report = detect_drift(profile, summary)
    a = report.columns["a"]
    assert a.p_value_adjusted < 1e-4 and a.effect_size < 0.1 and not a.drifted
    loud = detect_drift(profile, summary, DriftConfig(min_effect_numerical=0))
    assert loud.columns["a"].drifted


def test_overrides(profile):
    cfg = {
        "columns": {
            "a": {"method": "psi", "threshold": 0.05},
            "c": {"method": "js"},
            "b": {"enabled": False},
            "two": {"method": "tvd", "threshold": 0.01},
        },
        "categorical_method": "hellinger",
        "thresholds": {"hellinger": 0.001},
    }
    report = detect_drift(profile, window(4, shift_a=0.3), cfg)
    cols = report.columns
    assert (cols["a"].method, cols["a"].threshold, cols["a"].drifted) == ("psi", 0.05, True)
    assert cols["a"].p_value is None and cols["a"].effect_floor is None
    assert cols["c"].method == "js" and cols["c"].threshold == METHODS["js"].default_threshold
    assert not cols["b"].tested and "disabled" in cols["b"].note
    assert cols["flag"].method == "hellinger" and cols["flag"].threshold == 0.001
    assert cols["two"].method == "tvd"
    numerical = detect_drift(profile, window(4), {"numerical_method": "wasserstein"})
    assert numerical.columns["a"].method == "wasserstein" and numerical.columns["a"].threshold == 0.1


def test_every_method_runs_on_every_kind_it_claims(profile):
    cur = window(6, shift_a=0.3)
    for name, method in METHODS.items():
        cols = {"numerical": ["a"], "categorical": ["c", "two"], "boolean": ["flag"]}
        for kind in method.kinds:
            for col in cols[kind]:
                r = detect_drift(profile, cur, {"columns": {col: {"method": name}}}).columns[col]
                assert r.method == name and np.isfinite(r.statistic)
                assert (r.p_value is not None) == method.p_value


def test_bad_config_is_rejected(profile):
    with pytest.raises(ValueError, match="columns the profile does not have: nope"):
        detect_drift(profile, window(1), {"columns": {"nope": {"method": "ks"}}})
    with pytest.raises(ValueError, match="ks does not apply to a categorical column"):
        detect_drift(profile, window(1), {"columns": {"c": {"method": "ks"}}})
    with pytest.raises(ValueError, match="ztest does not apply to numerical"):
        detect_drift(profile, window(1), {"numerical_method": "ztest"})
    with pytest.raises(ConfigError, match="columns.a.method"):
        detect_drift(profile, window(1), {"columns": {"a": {"method": "magic"}}})
    with pytest.raises(TypeError, match="needs a Profile"):
        detect_drift(window(1), profile)
    other = Profile.fit({"a": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="different profile"):
        detect_drift(profile, other.empty_summary())


def test_corrections_differ_as_documented(profile):
    cur = window(7, shift_a=0.08)
    kw = {"min_effect_numerical": 0}
    bonf = detect_drift(profile, cur, {"correction": "bonferroni", **kw}).columns["a"]
    bh = detect_drift(profile, cur, {"correction": "bh", **kw}).columns["a"]
    none = detect_drift(profile, cur, {"correction": "none", **kw}).columns["a"]
    assert none.p_value_adjusted == none.p_value
    assert bonf.p_value_adjusted == pytest.approx(min(1.0, 5 * bonf.p_value))
    assert none.p_value_adjusted <= bh.p_value_adjusted <= bonf.p_value_adjusted


def test_drift_share_threshold(profile):
    cur = window(8, shift_a=0.5)
    assert not detect_drift(profile, cur).dataset_drift  # 1 of 5
    assert detect_drift(profile, cur, {"drift_share": 0.2}).dataset_drift


def test_empty_and_small_windows(profile):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for current in ({}, [], profile.empty_summary(), {"a": [1.0] * 10}):
            report = detect_drift(profile, current)
            assert not report.dataset_drift and report.drift_share == 0.0
            assert report.drifted_columns == []
            assert all(not c.tested for c in report.columns.values())
            json.dumps(report.to_dict(), allow_nan=False)
    assert detect_drift(profile, {}).notes == ["empty window: nothing to test"]
    small = detect_drift(profile, {"a": [1.0] * 10}).columns["a"]
    assert "fewer than min_rows=30" in small.note
    assert detect_drift(profile, {"a": [1.0] * 10}, {"min_rows": 5}).columns["a"].tested


def test_constant_reference_and_single_category():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        profile = Profile.fit({"k": np.full(1000, 2.0), "one": ["a"] * 1000}, seed=0)
        same = detect_drift(profile, {"k": np.full(200, 2.0), "one": ["a"] * 200})
        assert same.drifted_columns == []
        assert same.columns["one"].note.startswith("a single category")
        moved = detect_drift(profile, {"k": np.full(200, 2.5), "one": ["a"] * 100 + ["b"] * 100})
        assert moved.drifted_columns == ["k", "one"]
        assert moved.columns["k"].effect_size == pytest.approx(0.5)  # own units: std is 0
        assert moved.quality["k"].issues == ["out_of_range_share"]
        assert moved.quality["one"].unseen_category_share == 0.5
        assert "unseen_category_share" in moved.quality["one"].issues
        w = detect_drift(profile, {"k": np.full(200, 2.5)}, {"columns": {"k": {"method": "wasserstein"}}})
        assert "constant reference" in w.columns["k"].note


def test_quality_in_report(profile):
    cur = window(10, n=2000)
    cur["a"] = cur["a"].astype(object)
    cur["a"][:300] = None
    cur["a"][300:320] = "n/a"
    cur["b"][:50] = np.inf
    cur["b"][50:100] = 1e6
    cur["extra"] = np.zeros(2000)
    report = detect_drift(profile, cur)
    qa, qb, qc = report.quality["a"], report.quality["b"], report.quality["c"]
    assert qa.missing_share == pytest.approx(0.15) and qa.missing_share_reference == 0.0
    assert qa.wrong_type_share == pytest.approx(0.01)
    assert qa.issues == ["missing_share", "wrong_type_share"]
    assert qb.nonfinite_share == pytest.approx(0.025) and qb.out_of_range_share == pytest.approx(50 / 1950)
    assert qb.issues == ["nonfinite_share", "out_of_range_share"]
    assert qb.out_of_range_share_reference == pytest.approx(2 / 20_001)
    assert qc.issues == []
    assert report.unknown_columns == ["extra"]


def test_raw_columns_and_summary_agree(profile):
    cur = window(11, shift_a=0.2)
    a = detect_drift(profile, cur).to_dict()
    b = detect_drift(profile, profile.summarize(cur)).to_dict()
    assert a == b


def test_raw_columns_small_enough_to_hold_are_tested_exactly():
    rng = np.random.default_rng(31)
    ref = rng.normal(size=800)
    profile = Profile.fit({"x": ref, "c": rng.choice(["u", "v"], 800)}, seed=0)
    worst = 0.0
    for shift in (0.0, 0.1, 0.2, 0.4):
        cur = rng.normal(shift, 1, size=600)
        col = detect_drift(profile, {"x": cur, "c": rng.choice(["u", "v"], 600)}).columns["x"]
        scipy_ks = stats.ks_2samp(ref, cur)
        assert col.exact and col.figures == "exact" and col.statistic_bounds is None
        worst = max(worst, abs(col.p_value - scipy_ks.pvalue), abs(col.statistic - scipy_ks.statistic))
    assert worst <= 1e-12
    # the same window as a summary (its sample bounded at 100): binned, a bound, conservative
    summary = profile.summarize({"x": cur})
    binned = detect_drift(profile, summary).columns["x"]
    assert not binned.exact and binned.figures == "bound" and binned.p_value >= scipy_ks.pvalue - 1e-12
    assert detect_drift(profile, {"x": cur}, exact_max_rows=100).columns["x"].figures == "bound"
    assert detect_drift(profile, {"x": cur}).columns["c"].figures == "exact"


def test_figures_say_what_each_statistic_is(profile):
    cur = window(12)
    cfg = DriftConfig(columns={"a": {"method": "wasserstein"}, "b": {"method": "psi"}})
    report = detect_drift(profile, profile.summarize(cur), cfg)
    figures = {name: c.figures for name, c in report.columns.items()}
    assert figures == {"a": "approximate", "b": "binned", "c": "exact", "two": "exact", "flag": "exact"}
    assert report.to_dict()["columns"]["a"]["figures"] == "approximate"
