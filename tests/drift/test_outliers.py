"""Outlier shares beside the reference's rate, as a data-quality figure."""

import numpy as np
import pytest

from raywatch.drift import detect_drift
from raywatch.drift.outliers import outlier_quality
from raywatch.stats import Profile
from raywatch.stats.outliers import OutlierFences
from raywatch.stats.sections import Batch


@pytest.fixture(scope="module")
def profile():
    rng = np.random.default_rng(1)
    return Profile.fit({"x": rng.normal(size=20_000), "y": rng.exponential(size=20_000),
                        "c": rng.choice(["a", "b"], 20_000)}, seed=0, outliers=True)


def test_fences_and_reference_rates_match_their_definitions():
    rng = np.random.default_rng(2)
    x = rng.normal(size=50_000)
    iqr = OutlierFences.fit({"x": x})
    q1, q3 = np.quantile(x, [0.25, 0.75])
    assert (iqr.low[0], iqr.high[0]) == pytest.approx((q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)))
    assert iqr.reference_rate[0] == pytest.approx(0.007, abs=0.0015)  # 2·Φ(−2.698) for normal data
    mad = OutlierFences.fit({"x": x}, method="mad")
    assert mad.high[0] == pytest.approx(np.median(x) + 3.5 * 1.4826 * np.median(np.abs(x - np.median(x))))
    with pytest.raises(ValueError, match="method"):
        OutlierFences.fit({"x": x}, method="zscore")


def test_heavier_tails_are_an_issue_and_stationary_data_is_not(profile):
    rng = np.random.default_rng(3)
    quiet = sum(bool(detect_drift(profile, {"x": rng.normal(size=2000), "y": rng.exponential(size=2000)})
                     .quality["x"].issues) for _ in range(50))
    assert quiet == 0
    report = detect_drift(profile, {"x": rng.standard_t(2, size=2000), "y": rng.exponential(size=2000)})
    q = report.quality["x"]
    assert "outlier_share" in q.issues and q.outlier_share > 0.05
    assert q.outlier_share_reference == pytest.approx(0.007, abs=0.002)
    assert report.quality["y"].outlier_share is not None and "outlier_share" not in report.quality["y"].issues
    assert report.quality["c"].outlier_share is None  # categorical: no fences
    assert report.extensions["outliers"]["x"].issue


def test_counts_merge_and_ignore_non_finite_values(profile):
    ext = profile.extensions["outliers"]
    a = ext.summarize(Batch({"x": np.array([0.0, 9.0, np.inf, np.nan])}, 4))
    b = ext.summarize(Batch({"x": np.array([-9.0, 1.0])}, 2))
    m = a.merge(b)
    assert m.values.tolist() == [4, 0] and m.beyond.tolist() == [2, 0]
    q = outlier_quality(ext, m, tolerance=0.01, alpha=0.001)["x"]
    assert (q.values, q.beyond, q.share) == (4, 2, 0.5)


def test_the_result_reads_as_its_dict_and_the_join_leaves_the_drift_verdict_alone(profile):
    """outlier_quality's result is a read-only mapping whose column objects are made when read;
    joining its shares into the quality figures changes nothing of the drift verdict."""
    rng = np.random.default_rng(4)
    window = {"x": rng.standard_t(2, size=2000) + 0.5, "y": rng.exponential(size=2000)}
    report = detect_drift(profile, window)
    result = report.extensions["outliers"]
    plain = {c: result[c] for c in result}
    assert list(result) == ["x", "y"] and len(result) == 2 and result == plain and dict(result.items()) == plain
    assert result.to_dict() == {c: q.to_dict() for c, q in plain.items()}
    assert report.to_dict()["extensions"]["outliers"]["x"]["issue"] is True
    for c, q in plain.items():
        assert (report.quality[c].outlier_share, report.quality[c].outlier_share_reference) == (q.share, q.reference_share)
    tested = [c for c in report.columns.values() if c.tested]
    assert report.drift_share == sum(c.drifted for c in tested) / len(tested) == 0.5
    with pytest.raises(KeyError):
        result["c"]
