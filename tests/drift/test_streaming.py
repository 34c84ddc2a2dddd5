import math

import numpy as np
import pytest

from raywatch.drift.streaming import BINARY_DETECTORS, DETECTORS, make_detector


def _continuous(seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate((rng.normal(0, 1, 1500), rng.normal(4, 1, 1500)))


def _errors(seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate((rng.random(1500) < 0.05, rng.random(1500) < 0.6)).astype(int)


@pytest.mark.parametrize("name", DETECTORS)
def test_each_detector_catches_an_obvious_change(name):
    det = make_detector(name, seed=1) if name == "kswin" else make_detector(name)
    stream = _errors() if name in BINARY_DETECTORS else _continuous()
    hits = [i for i, x in enumerate(stream) if det.update(x)]
    assert hits, f"{name} missed the change"
    assert any(1500 <= i < 1800 for i in hits), f"{name} detected at {hits[:5]}"
    assert det.detections == len(hits) and det.n == len(stream)


@pytest.mark.parametrize("name", DETECTORS)
def test_update_returns_drift_detected(name):
    det = make_detector(name)
    stream = _errors(2) if name in BINARY_DETECTORS else _continuous(2)
    for x in stream[:1700]:
        assert det.update(x) == det.drift_detected


def test_missing_values_are_skipped_and_reset_starts_over():
    det = make_detector("adwin", delta=0.01)
    assert det.update(None) is False and det.update(math.nan) is False
    assert det.skipped == 2 and det.n == 0
    for x in _continuous():
        det.update(x)
    det.reset()
    assert (det.n, det.skipped, det.detections, det.drift_detected) == (0, 0, 0, False)
    assert det.params == {"delta": 0.01} and "adwin" in repr(det)


def test_bad_values_and_names():
    with pytest.raises(ValueError, match="unknown detector 'cusum'"):
        make_detector("cusum")
    with pytest.raises(ValueError, match="bad parameters for detector 'adwin'"):
        make_detector("adwin", window=3)
    ddm = make_detector("ddm")
    with pytest.raises(ValueError, match="0/1 error indicators"):
        ddm.update(0.5)
    assert ddm.update(True) is False and ddm.warning_detected is False
    with pytest.raises(TypeError, match="takes numbers"):
        make_detector("page_hinkley").update("fast")
    with pytest.raises(ValueError, match="finite numbers"):
        make_detector("page_hinkley").update(float("inf"))
