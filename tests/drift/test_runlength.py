"""False alarms stated in time: measured run lengths on stationary streams reach the target."""

import math

import numpy as np
import pytest

from raywatch.config import DriftConfig
from raywatch.drift import detect_drift
from raywatch.drift.runlength import (
    alpha_for_run_length,
    calibrate_detector,
    describe_run_length,
    measure_run_length,
    run_length_of_alpha,
)
from raywatch.drift.streaming import make_detector
from raywatch.stats import Profile


def at_least(measured: float, alarms: int, target: float) -> bool:
    """Measured ERT at least the target, within sampling error (one-sided 99 %)."""
    return measured >= target * (1.0 - 2.33 / math.sqrt(max(alarms, 1)))


@pytest.mark.parametrize("name,reference", [
    ("page_hinkley", np.random.default_rng(1).normal(10.0, 2.0, size=5000)),
    ("page_hinkley", np.random.default_rng(2).exponential(0.05, size=5000)),  # latency-like, skewed
    ("adwin", np.random.default_rng(3).normal(size=5000)),
    ("hddm_a", (np.random.default_rng(4).random(20_000) < 0.1).astype(float)),  # error indicators
])
def test_calibrated_detectors_reach_the_run_length_on_stationary_streams(name, reference):
    target = 1000.0  # updates: 1,000 s at one update a second
    cal = calibrate_detector(name, reference, run_length=target, interval=1.0, budget=300_000, seed=5)
    assert not cal.extrapolated and cal.measured >= target
    alarms, updates = measure_run_length(name, cal.params, reference, 300_000, seed=77)  # fresh streams
    measured = updates / alarms if alarms else math.inf
    print(f"\n{name}: {cal.parameter}={cal.value:.4g}, target {target:.0f}, measured {measured:.0f} ({alarms} alarms)")
    assert at_least(measured, alarms, target)


def test_the_calibrated_parameters_drive_raywatchs_own_detector():
    ref = np.random.default_rng(6).normal(size=5000)
    cal = calibrate_detector("page_hinkley", ref, run_length=500, interval=2.0, budget=60_000, seed=1)
    assert cal.target == 250 and cal.describe() == "one false alarm per 8.3 minutes"
    det = make_detector("page_hinkley", **cal.params)
    stream = np.random.default_rng(7).choice(ref, 50_000)
    alarms = sum(det.update(v) for v in stream.tolist())
    assert at_least(50_000 / max(alarms, 1), alarms, 250)
    shifted = sum(det.update(v) for v in (stream[:2000] + 1.0).tolist())  # and it still sees a real shift
    assert shifted >= 1


def test_extrapolated_targets_err_long():
    ref = np.random.default_rng(8).normal(size=5000)
    cal = calibrate_detector("page_hinkley", ref, run_length=20_000, budget=100_000, seed=2)
    assert cal.extrapolated and cal.measured is None
    alarms, updates = measure_run_length("page_hinkley", cal.params, ref, 1_000_000, seed=78)
    assert at_least(updates / max(alarms, 1), alarms, 20_000)


def test_window_tests_at_the_level_from_a_run_length_alarm_no_more_often():
    # rolling views of three 200-row windows, evaluated at every window: overlapping, correlated
    rng = np.random.default_rng(9)
    cols = [f"x{i}" for i in range(5)]
    profile = Profile.fit({c: rng.normal(size=20_000) for c in cols}, seed=0)
    target = 40  # evaluations between false alarms
    alpha = alpha_for_run_length(target * 60.0, 60.0)
    assert alpha == pytest.approx(0.025)
    cfg = DriftConfig(alpha=alpha, min_effect_numerical=0.0)  # the p-values alone
    windows, alarms, evaluations = [], 0, 600
    for _ in range(evaluations):
        windows = (windows + [profile.summarize({c: rng.normal(size=200) for c in cols})])[-3:]
        view = windows[0]
        for w in windows[1:]:
            view = view.merge(w)
        alarms += bool(detect_drift(profile, view, cfg).drifted_columns)
    print(f"\nwindow tests at alpha {alpha}: {alarms} alarms in {evaluations} evaluations (target: at most 1 per {target})")
    assert at_least(evaluations / max(alarms, 1), alarms, target)


def test_conversions_and_refusals():
    assert alpha_for_run_length(30 * 86400, 10) == pytest.approx(10 / (30 * 86400))
    assert run_length_of_alpha(alpha_for_run_length(3600, 10), 10) == pytest.approx(3600)
    assert describe_run_length(30 * 86400) == "one false alarm per 30 days"
    assert describe_run_length(86400) == "one false alarm per 1 day"
    assert describe_run_length(90) == "one false alarm per 1.5 minutes"
    with pytest.raises(ValueError, match="positive"):
        alpha_for_run_length(0, 10)
    with pytest.raises(ValueError, match="cannot be calibrated"):
        calibrate_detector("kswin", np.arange(10.0), 1000)
    with pytest.raises(ValueError, match="0/1"):
        calibrate_detector("ddm", np.array([0.0, 0.5, 1.0]), 1000)
    with pytest.raises(ValueError, match="too short"):
        calibrate_detector("adwin", np.arange(10.0), 5)
    bern = calibrate_detector("ddm", np.array([0.1]), 300, budget=40_000)  # a rate stands for Bernoulli values
    assert bern.parameter == "drift_threshold" and bern.value > 0
