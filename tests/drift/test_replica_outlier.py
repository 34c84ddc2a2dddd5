import json

import numpy as np
import pytest

from raywatch.drift.replica_outlier import LATENCY, find_outlier_replicas
from raywatch.stats.profile import Profile
from raywatch.stats.sketch import LatencySketch


def _model(x, bias=0.0):
    return 1.0 / (1.0 + np.exp(-(x["x1"] - 0.5 * x["x2"] + bias)))


def _rows(rng, n, shift=0.0):
    x = {"x1": rng.normal(shift, 1.0, n), "x2": rng.normal(size=n), "x3": rng.exponential(size=n),
         "plan": rng.choice(["free", "pro", "team"], n, p=[0.5, 0.3, 0.2])}
    return x


@pytest.fixture(scope="module")
def profile():
    rng = np.random.default_rng(0)
    ref = _rows(rng, 20_000)
    ref["prediction"] = _model(ref)
    return Profile.fit(ref, seed=0)


def _window(profile, rng, n=2000, shifts=None, biases=None, replicas=("r1", "r2", "r3"), seed=0):
    out = {}
    for i, r in enumerate(replicas):
        x = _rows(rng, n, (shifts or {}).get(r, 0.0))
        x["prediction"] = _model(x, (biases or {}).get(r, 0.0))
        out[r] = profile.summarize(x, seed=seed * 10 + i)
    return out


def test_one_replica_with_shifted_inputs_is_named_and_no_other(profile):
    rng = np.random.default_rng(1)
    report = find_outlier_replicas(_window(profile, rng, shifts={"r2": 0.5}), profile)
    assert report.outliers == ["r2"]
    assert "x1" in report.replicas["r2"].differing and report.replicas["r2"].round == 1
    assert not report.replicas["r1"].outlier and not report.replicas["r3"].outlier
    assert report.replicas["r1"].differing == [] and report.replicas["r3"].differing == []
    json.dumps(report.to_dict())


def test_a_replica_serving_another_model_is_named_by_its_predictions(profile):
    rng = np.random.default_rng(2)
    report = find_outlier_replicas(_window(profile, rng, biases={"r3": 0.6}), profile)
    assert report.outliers == ["r3"] and report.replicas["r3"].differing == ["prediction"]


def test_a_slow_replica_is_named_by_its_latency(profile):
    rng = np.random.default_rng(3)
    summaries = _window(profile, rng)
    latency = {}
    for r in summaries:
        sk = LatencySketch()
        sk.add_many(rng.lognormal(np.log(0.02 * (1.6 if r == "r1" else 1.0)), 0.3, 2000))
        latency[r] = sk
    before = {r: s.to_dict() for r, s in latency.items()}
    report = find_outlier_replicas(summaries, profile, latency=latency)
    assert report.outliers == ["r1"] and report.replicas["r1"].differing == [LATENCY]
    assert {r: s.to_dict() for r, s in latency.items()} == before  # the sketches were not merged in place


def test_a_harmless_shift_in_a_large_window_is_significant_but_not_flagged(profile):
    rng = np.random.default_rng(4)
    summaries = _window(profile, rng, n=60_000, shifts={"r2": 0.05})
    report = find_outlier_replicas(summaries, profile)
    t = report.replicas["r2"].tests["x1"]
    assert t.p_value_adjusted < 0.01 and t.effect_size < t.effect_floor  # real, but below the floor
    assert report.outliers == []
    assert find_outlier_replicas(summaries, profile, min_effect_numerical=0.0).outliers == ["r2"]


def test_two_of_five_replicas_are_named_but_never_a_majority(profile):
    rng = np.random.default_rng(5)
    reps = ("a", "b", "c", "d", "e")
    summaries = _window(profile, rng, replicas=reps, shifts={"b": 0.6, "d": -0.6})
    report = find_outlier_replicas(summaries, profile)
    assert report.outliers == ["b", "d"] and report.rounds == 3
    three_bad = _window(profile, rng, replicas=reps, shifts={"a": 0.6, "b": 0.6, "c": 0.6})
    assert len(find_outlier_replicas(three_bad, profile).outliers) <= 2


def test_two_replicas_or_small_ones_are_not_judged(profile):
    rng = np.random.default_rng(6)
    two = _window(profile, rng, replicas=("r1", "r2"), shifts={"r2": 1.0})
    report = find_outlier_replicas(two, profile)
    assert report.outliers == [] and "three" in report.notes[0]
    assert report.replicas["r2"].differing  # they differ; which one is off cannot be told
    small = _window(profile, rng, n=50, shifts={"r2": 1.0})
    report = find_outlier_replicas(small, profile)
    assert report.outliers == [] and not report.replicas["r2"].tested and "min_rows" in report.replicas["r2"].note
    other = Profile.fit({"x1": rng.normal(size=100)}, seed=0)
    with pytest.raises(ValueError, match="profile"):
        find_outlier_replicas(two, other)


def test_a_replica_with_too_few_rows_is_no_judge_of_its_peers(profile):
    # r4 served another model (far off) but has too few rows to be tested; its rows must not sit
    # in the pools its healthy peers are compared with, where they would make one of them look off
    rng = np.random.default_rng(11)
    window = _window(profile, rng, n=300, replicas=("r1", "r2", "r3"))
    x = _rows(rng, 99, 20.0)
    x["prediction"] = _model(x, 20.0)
    window["r4"] = profile.summarize(x, seed=99)
    report = find_outlier_replicas(window, profile)
    assert report.outliers == [] and not report.replicas["r4"].tested
    assert all(report.replicas[r].differing == [] for r in ("r1", "r2", "r3"))
    window["r3"] = _window(profile, rng, n=300, replicas=("r3",), biases={"r3": 3.0})["r3"]
    assert find_outlier_replicas(window, profile).outliers == ["r3"]
    two = {r: window[r] for r in ("r1", "r2", "r4")}
    assert any("three" in n for n in find_outlier_replicas(two, profile).notes)


def test_versions_are_peers_too(profile):
    rng = np.random.default_rng(7)
    report = find_outlier_replicas(_window(profile, rng, replicas=("v1", "v2", "v3"), biases={"v3": -0.8}), profile)
    assert report.outliers == ["v3"]


def _false_alarm_rate(profile, windows, **kw):
    rng = np.random.default_rng(8)
    alarms = 0
    for w in range(windows):
        summaries = _window(profile, rng, n=1000, seed=w)
        alarms += bool(find_outlier_replicas(summaries, profile, **kw).outliers)
    return alarms / windows


def test_identical_replicas_flag_nothing_in_most_windows(profile):
    # Bonferroni over replicas x columns: at most alpha = 0.01 of stationary windows name a
    # replica (the slow test below measures it over 400 windows)
    assert _false_alarm_rate(profile, 60) <= 0.01 + 2 * (0.01 * 0.99 / 60) ** 0.5


@pytest.mark.slow
def test_false_alarm_rate_of_identical_replicas_is_at_most_alpha(profile):
    bound = 0.01 + 2 * (0.01 * 0.99 / 400) ** 0.5
    with_floors = _false_alarm_rate(profile, 400)
    p_values_only = _false_alarm_rate(profile, 400, min_effect_numerical=0.0, min_effect_categorical=0.0)
    print(f"false-alarm rate over 400 stationary windows: {with_floors} (default floors), {p_values_only} (no floor)")
    assert with_floors <= p_values_only <= bound, (with_floors, p_values_only)


def test_homogeneity_is_scipys_chi2_contingency():
    from scipy.stats import chi2_contingency

    from raywatch.drift.replica_outlier import _homogeneity

    rng = np.random.default_rng(7)
    for k in (2, 3, 5, 20, 101):
        for _ in range(20):
            p = rng.dirichlet(np.ones(k))
            a = rng.multinomial(int(rng.integers(50, 5000)), p).astype(np.int64)
            b = rng.multinomial(int(rng.integers(50, 5000)), rng.dirichlet(np.ones(k)) if rng.random() < 0.5 else p)
            keep = (a > 0) | (b > 0)
            a, b = a[keep], b[keep]
            if a.size < 2:
                continue
            want = chi2_contingency(np.vstack((a, b)), correction=False)
            got = _homogeneity(a, b)
            assert got[0] == pytest.approx(float(want[0]), rel=1e-12, abs=1e-12)
            assert got[1] == pytest.approx(float(want[1]), rel=1e-9, abs=1e-15)
    assert _homogeneity(np.array([5]), np.array([7])) == (0.0, 1.0)


def test_binned_tests_of_a_round_are_the_column_by_column_ones(profile):
    """The numerical columns of a round are tested together against each leave-one-out pool
    (raywatch.drift.batched.against); each figure is drift's column-by-column one."""
    from raywatch.drift.methods import METHODS, ColumnPair, effect_size
    from raywatch.stats.summary import WindowSummary

    rng = np.random.default_rng(11)
    windows = _window(profile, rng, n=3000, shifts={"r3": 0.4}, replicas=("r1", "r2", "r3", "r4"))
    small = _rows(rng, 150)
    windows["r5"] = profile.summarize(dict(small, prediction=_model(small)), seed=5)  # a small replica
    report = find_outlier_replicas(windows, profile, max_outliers=0)  # one round: every replica against the rest
    checked = 0
    for r, verdict in report.replicas.items():
        pool = WindowSummary.merge_all([w for o, w in windows.items() if o != r])
        for name, t in verdict.tests.items():
            if name == LATENCY or profile.specs[name].kind != "numerical":
                continue
            pair = ColumnPair(ref=pool.column(name), cur=windows[r].column(name), edges=profile.specs[name].edges,
                              ref_complete=pool.sample_complete(name), cur_complete=windows[r].sample_complete(name))
            res = METHODS["ks"].compute(pair)
            assert t.statistic == pytest.approx(res.statistic, rel=1e-9, abs=1e-12), (r, name)
            assert t.p_value == pytest.approx(res.p_value, rel=1e-6, abs=1e-300), (r, name)
            assert t.effect_size == pytest.approx(effect_size(pair), rel=1e-9, abs=1e-12), (r, name)
            checked += 1
    assert checked == 5 * 4  # five replicas, four numerical columns (x1, x2, x3, prediction)
    assert report.replicas["r3"].tests["x1"].p_value < 1e-6
