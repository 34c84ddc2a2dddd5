import numpy as np
import pytest
from scipy.optimize import minimize

from raywatch.stats.calibration import (
    Calibration,
    expected_calibration_error,
    fit_calibrator,
    isotonic,
    platt,
    reliability,
)


@pytest.mark.parametrize("n,decimals", [(40, 2), (3000, 3), (20_000, None)])
def test_isotonic_equals_scikit_learn(n, decimals):
    sklearn = pytest.importorskip("sklearn.isotonic")
    rng = np.random.default_rng(n)
    s = rng.random(n)
    s = np.round(s, decimals) if decimals else s
    y = (rng.random(n) < s).astype(float)
    kx, ky = isotonic(s, y)
    ref = sklearn.IsotonicRegression(out_of_bounds="clip").fit(s, y)
    q = np.concatenate((s, rng.random(1000), [-1.0, 2.0]))
    np.testing.assert_allclose(np.interp(q, kx, ky), ref.predict(q), atol=1e-12)
    assert np.all(np.diff(kx) > 0) and np.all(np.diff(ky) >= -1e-12)


def test_platt_minimizes_the_smoothed_log_loss():
    rng = np.random.default_rng(1)
    s = rng.random(5000)
    y = (rng.random(5000) < s**2).astype(float)
    a, b = platt(s, y)
    z = np.log(np.clip(s, 1e-6, 1 - 1e-6)) - np.log1p(-np.clip(s, 1e-6, 1 - 1e-6))
    npos = y.sum()
    t = np.where(y > 0, (npos + 1) / (npos + 2), 1 / (5000 - npos + 2))

    def loss(w):
        p = 1 / (1 + np.exp(-(w[0] * z + w[1])))
        return -np.sum(t * np.log(p) + (1 - t) * np.log(1 - p))

    best = minimize(loss, [1.0, 0.0], method="Nelder-Mead", options={"xatol": 1e-9, "fatol": 1e-9, "maxiter": 4000})
    assert (a, b) == pytest.approx(tuple(best.x), abs=1e-4)


def test_auto_calibrates_miscalibrated_scores_and_reports_quality():
    rng = np.random.default_rng(2)
    s = rng.random(20_000)
    y = (rng.random(20_000) < s**3).astype(int)
    cal = fit_calibrator(s, y, seed=0)
    assert cal.method in ("isotonic", "platt") and cal.ok and not cal.warnings
    assert cal.ece < 0.02 < cal.candidates["identity"]
    grid = np.linspace(0.05, 0.95, 19)
    np.testing.assert_allclose(cal(grid), grid**3, atol=0.05)
    assert sum(cal.curve["count"]) == 20_000
    np.testing.assert_allclose(cal.curve["predicted"], cal.curve["observed"], atol=0.04)


def test_margins_outside_the_unit_interval_are_read_as_margins():
    rng = np.random.default_rng(3)
    m = rng.normal(0, 3, 5000)
    y = (rng.random(5000) < 1 / (1 + np.exp(-m / 2))).astype(int)
    cal = fit_calibrator(m, y)
    assert "identity" not in cal.candidates
    assert any("outside [0, 1]" in w for w in cal.warnings)
    assert cal(np.array([0.0]))[0] == pytest.approx(0.5, abs=0.05)
    with pytest.raises(ValueError, match="identity calibration needs scores within"):
        fit_calibrator(m, y, method="identity")


def test_what_cannot_be_calibrated_says_so():
    const = fit_calibrator(np.full(500, 0.3), np.r_[np.ones(100), np.zeros(400)])
    assert const.method == "constant" and not const.ok
    assert const(np.array([0.1, 0.9])).tolist() == [0.2, 0.2]
    assert any("constant" in w for w in const.warnings)
    few = fit_calibrator(np.array([0.1, 0.8, 0.4, 0.9, 0.2]), np.array([0, 1, 0, 1, 1]))
    assert not few.ok and any("too few labels" in w for w in few.warnings)
    missing = fit_calibrator(np.array([0.1, np.nan] * 100), np.array([0, 1] * 100))
    assert any("left out" in w for w in missing.warnings) and missing.rows == 100
    with pytest.raises(ValueError, match="0/1"):
        fit_calibrator(np.array([0.1, 0.2]), np.array([0, 2]))
    with pytest.raises(ValueError, match="must be one of"):
        fit_calibrator(np.array([0.1, 0.2]), np.array([0, 1]), method="beta")


def test_ece_and_reliability():
    p = np.array([0.1] * 10 + [0.9] * 10)
    y = np.array([0] * 9 + [1] + [1] * 9 + [0])
    assert expected_calibration_error(p, y, bins=2) == pytest.approx(0.0)
    assert expected_calibration_error(p, 1 - y, bins=2) == pytest.approx(0.8)
    curve = reliability(p, y, bins=2)
    assert curve == {"predicted": [0.1, 0.9], "observed": [0.1, 0.9], "count": [10, 10]}


def test_calibration_meta_round_trip_is_checked():
    rng = np.random.default_rng(4)
    s = rng.random(1000)
    cal = fit_calibrator(s, (rng.random(1000) < s).astype(int))
    again = Calibration.from_meta(cal.to_meta(), cal.x, cal.y)
    assert again.to_meta() == cal.to_meta()
    np.testing.assert_array_equal(again(s), cal(s))
    with pytest.raises(ValueError, match="monotone"):
        Calibration.from_meta(cal.to_meta(), np.array([0.0, 1.0]), np.array([0.9, 0.1]))
