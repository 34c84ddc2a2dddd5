"""The extension tests' settings are read once per configuration object (raywatch.drift.extensions)."""

import numpy as np

from raywatch.config import DriftConfig
from raywatch.drift import extensions
from raywatch.drift.detect import detect_drift
from raywatch.stats.profile import Profile


def _profile_and_window():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 3))
    ref = {"a": x[:, 0], "b": x[:, 0] * 0.9 + x[:, 1] * 0.3, "c": x[:, 2]}
    prof = Profile.fit(ref, seed=0, correlation=True)
    y = rng.normal(size=(1000, 3))
    cur = {"a": y[:, 0], "b": -y[:, 0] * 0.9 + y[:, 1] * 0.3, "c": y[:, 2]}  # the correlation flips
    return prof, prof.summarize(cur, seed=1)


def test_settings_are_made_once_per_config_and_options_still_apply():
    prof, window = _profile_and_window()
    cfg = DriftConfig()
    first = detect_drift(prof, window, cfg)
    assert first.extensions["correlation"].drifted
    hit = extensions._SETTINGS.get((cfg,))  # every test's settings for this config, by extension kind
    assert hit is not None and hit["correlation"][0] == "correlation"
    assert detect_drift(prof, window, cfg).extensions["correlation"].drifted
    assert extensions._SETTINGS.get((cfg,)) is hit  # the same entry: made once
    prepared = extensions._prepared(prof, cfg, None)  # the profile's tests under cfg, kept on the profile
    assert [p[0] for p in prepared] == ["correlation"] and extensions._prepared(prof, cfg, None) is prepared
    off = DriftConfig.model_validate({"correlation": {"enabled": False}})
    assert "correlation" not in detect_drift(prof, window, off).extensions  # another config: its own settings
    huge = detect_drift(prof, window, cfg, options={"correlation": {"min_change": 5.0}})
    assert not huge.extensions["correlation"].drifted  # options given per call are never cached
    assert extensions._SETTINGS.get((cfg,)) is hit
    calls = []
    real = extensions._call
    extensions._call = lambda *a: calls.append(a) or real(*a)
    try:  # options for another test leave this test's cached settings in use
        assert detect_drift(prof, window, cfg, options={"reconstruction": {"sigmas": 4.0}}).extensions["correlation"].drifted
    finally:
        extensions._call = real
    assert calls == []
