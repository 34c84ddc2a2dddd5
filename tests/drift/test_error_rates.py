"""False-alarm rate and power of the default drift test (slow: ~1,400 windows).

Reference: 100,000 rows × 20 standard-normal features. Windows: 5,000 rows.

* 1,000 stationary windows: the share of windows with any column flagged must stay at or
  below 5 % (what Bonferroni at α = 0.05 promises) — with the defaults, and with the
  effect-size floor switched off (p-values alone).
* 400 windows with a 0.25 σ mean shift in one feature: it must be flagged in ≥ 95 %.

The measured figures are printed (run with ``-s``) and quoted in the README.
"""

import numpy as np
import pytest

from raywatch.config import DriftConfig
from raywatch.drift import detect_drift
from raywatch.stats import Profile

FEATURES, ROWS = 20, 5000


@pytest.fixture(scope="module")
def profile():
    rng = np.random.default_rng(2024)
    return Profile.fit({f"f{i}": rng.normal(size=100_000) for i in range(FEATURES)}, seed=0)


def _window(rng, shift=0.0):
    x = rng.normal(size=(FEATURES, ROWS))
    x[7] += shift
    return {f"f{i}": x[i] for i in range(FEATURES)}


@pytest.mark.slow
def test_false_alarm_rate_over_1000_stationary_windows(profile):
    rng = np.random.default_rng(1)
    p_only = DriftConfig(min_effect_numerical=0.0)
    alarms = alarms_p_only = 0
    windows = 1000
    for _ in range(windows):
        summary = profile.summarize(_window(rng))
        alarms += bool(detect_drift(profile, summary).drifted_columns)
        alarms_p_only += bool(detect_drift(profile, summary, p_only).drifted_columns)
    print(f"\nfalse-alarm rate: defaults {alarms / windows:.3f}, p-values only {alarms_p_only / windows:.3f}")
    assert alarms / windows <= 0.05
    assert alarms_p_only / windows <= 0.05


@pytest.mark.slow
def test_power_for_a_quarter_sigma_shift(profile):
    rng = np.random.default_rng(2)
    windows = 400
    caught = wrong = 0
    for _ in range(windows):
        drifted = detect_drift(profile, profile.summarize(_window(rng, shift=0.25))).drifted_columns
        caught += "f7" in drifted
        wrong += any(c != "f7" for c in drifted)
    print(f"\npower at 0.25 sigma: {caught / windows:.3f} (other columns flagged in {wrong} windows)")
    assert caught / windows >= 0.95
