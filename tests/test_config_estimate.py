"""Issue 13's settings (raywatch/config/estimate.py and its fields in DriftConfig,
StreamDetectorConfig and MonitorConfig): defaults that change nothing, the mapping onto
Profile.fit, and errors that name the file, the field and what was expected."""

from __future__ import annotations

import pytest

from raywatch.config import ConfigError, DriftConfig, MonitorConfig, ProfileConfig, parse_config
from raywatch.drift.extensions import option_values


def test_defaults_fit_no_extension_and_keep_the_drift_tests_as_they_were():
    cfg = MonitorConfig()
    assert cfg.profile_options.fit_options() == {"performance": None, "correlation": False, "pca": False,
                                                 "outliers": False, "vectors": {}}
    assert cfg.drift.expected_run_time is None and cfg.drift.exact_max_rows == 10_000
    assert all(cfg.detectors.__getattribute__(n).expected_run_time is None for n in ("latency", "errors", "concept"))
    # the extension tests read the drift config: correlation and embeddings at drift.alpha, the
    # reconstruction band at its own default (3 sigmas), outliers at the quality settings
    d = DriftConfig(alpha=0.01)
    assert option_values("correlation", d, None)["alpha"] == 0.01 and option_values("embeddings", d, None)["alpha"] == 0.01
    assert "sigmas" not in option_values("reconstruction", d, None)
    assert option_values("outliers", d, None) == {"tolerance": d.quality_tolerance, "alpha": d.quality_alpha}
    assert option_values("correlation", DriftConfig(alpha=0.01, correlation={"alpha": 0.2}), None)["alpha"] == 0.2


def test_profile_options_map_onto_profile_fit():
    p = ProfileConfig(performance={"target": "y", "scores": {"a": "pa", "b": "pb"}, "calibration": "platt"},
                      correlation=["x1", "x2"], pca={"variance": 0.8}, outliers={"method": "mad"},
                      vectors={"emb": {"dims": 8}})
    assert p.fit_options() == {
        "performance": {"target": "y", "scores": {"a": "pa", "b": "pb"}, "prediction": None, "positive": 1,
                        "threshold": 0.5, "calibration": "platt"},
        "correlation": ["x1", "x2"], "pca": {"variance": 0.8}, "outliers": {"method": "mad"},
        "vectors": {"emb": {"dims": 8}}}


def test_errors_name_the_field_and_what_was_expected():
    with pytest.raises(ConfigError, match=r"m.yaml: .*drift.expected_run_time \(5 s\) must be at least twice "
                                          r"windows.evaluation_interval \(10 s\)"):
        parse_config({"drift": {"expected_run_time": "5s"}}, source="m.yaml")
    with pytest.raises(ConfigError, match=r"m.yaml: detectors.latency: method kswin cannot be calibrated"):
        parse_config({"detectors": {"latency": {"method": "kswin", "expected_run_time": "1d"}}}, source="m.yaml")
    with pytest.raises(ConfigError, match=r"m.yaml: profile_options.performance.scores: required field is missing"):
        parse_config({"profile_options": {"performance": {"target": "y"}}}, source="m.yaml")
    with pytest.raises(ConfigError, match=r"m.yaml: drift.estimation.sigmas"):
        parse_config({"drift": {"estimation": {"sigmas": 0}}}, source="m.yaml")
    with pytest.raises(ConfigError, match=r"m.yaml: profile_options.vectors.emb.dims"):
        parse_config({"profile_options": {"vectors": {"emb": {"dims": 1000}}}}, source="m.yaml")
    # durations as everywhere: 30d is seconds
    assert parse_config({"drift": {"expected_run_time": "30d"}}).drift.expected_run_time == 30 * 86400


def test_settings_survive_to_data_and_back():
    cfg = parse_config({"profile_options": {"performance": {"target": "y", "scores": "s"}, "pca": True},
                        "drift": {"expected_run_time": "30d", "correlation": {"min_change": 0.2}},
                        "detectors": {"concept": {"method": "ddm", "expected_run_time": "7d", "reference_values": 100}}})
    again = MonitorConfig.from_data(cfg.to_data())
    assert again == cfg
