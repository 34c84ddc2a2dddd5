"""``raywatch.monitor``: a deployment keeps its name and options, settings are merged, a
deployment is monitored once."""

import pytest
from monitored_helpers import (  # noqa: F401 (no_ray_transport is an autouse fixture)
    no_ray_transport, stop,
)


def test_monitor_keeps_name_and_options_and_refuses_double_wrap():
    from ray import serve

    import raywatch

    @serve.deployment(num_replicas=3, max_ongoing_requests=7, user_config={"a": 1})
    class Clf:
        def __call__(self, x):
            return x

    d = raywatch.monitor(Clf, {"model": "clf"}, capture={"sample_rate": 0.5})
    assert d.name == "Clf" and d.num_replicas == 3 and d.max_ongoing_requests == 7 and d.user_config == {"a": 1}
    assert d.func_or_class._raywatch_config.capture.sample_rate == 0.5
    assert d.func_or_class._raywatch_config.model == "clf"
    with pytest.raises(TypeError, match="already monitored"):
        raywatch.monitor(d)

    class Plain:
        def __call__(self):
            return 1

    assert raywatch.monitor(Plain).name == "Plain"

    def fn(x):
        return x

    f = raywatch.monitor(fn)
    assert f.name == "fn"
    obj = f.func_or_class()
    try:
        assert obj(4) == 4
    finally:
        stop(obj)
    from raywatch.config import ConfigError

    with pytest.raises(ConfigError, match="sample_rate"):
        raywatch.monitor(Plain, capture={"sample_rate": 3})


def test_resolve_config_merges_overrides_over_any_source(tmp_path, monkeypatch):
    from raywatch.config import ConfigError, MonitorConfig
    from raywatch.serve.wrap import resolve_config

    monkeypatch.setenv("RW_TEST_HOOK", "https://hooks.example/s3cr3t")
    path = tmp_path / "monitor.yaml"
    path.write_text("model: fraud\ncapture: {sample_rate: 0.5, methods: [predict]}\n"
                    "alerting:\n  sinks: [{name: hook, type: webhook, url: '${RW_TEST_HOOK}'}]\n")
    for source in (str(path), path, MonitorConfig.from_data({"model": "fraud", "capture": {"sample_rate": 0.5, "methods": ["predict"]}})):
        cfg = resolve_config(source, {"capture": {"sample_rate": 0.1}, "version": "v2"})
        assert (cfg.model, cfg.version, cfg.capture.sample_rate, cfg.capture.methods) == ("fraud", "v2", 0.1, ["predict"])
    cfg = resolve_config(path, {"capture": {"sample_rate": 0.1}})
    assert cfg.to_data()["alerting"]["sinks"][0]["url"] == "${RW_TEST_HOOK}"  # the reference survives the merge
    assert cfg.alerting.sinks[0].url.get_secret_value() == "https://hooks.example/s3cr3t"
    assert resolve_config(None).capture.sample_rate == 1.0
    with pytest.raises(ConfigError, match=r"monitor\(\*\*overrides\): capture.sample_rate"):
        resolve_config({"model": "fraud"}, {"capture": {"sample_rate": 3}})
    with pytest.raises(ConfigError, match=r"monitor\(config=\.\.\.\): drift.alpah: unknown field"):
        resolve_config({"drift": {"alpah": 0.1}})


def test_a_profile_that_cannot_be_read_fails_monitor_unless_not_required(tmp_path, caplog):
    """The README's ``profile_path="fraud.profile"`` before the file exists: the wrap (the
    deploy) fails, saying what to do, instead of a replica log line nobody reads."""
    import logging

    import numpy as np

    import raywatch
    from raywatch.config import ConfigError
    from raywatch.stats.profile import Profile

    class Fraud:
        def __call__(self, tx):
            return 1

    missing = tmp_path / "fraud.profile"
    with pytest.raises(ConfigError) as err:
        raywatch.monitor(Fraud, model="fraud", profile_path=str(missing))
    text = str(err.value)
    assert "profile_path" in text and "fraud.profile" in text and "No such file" in text
    assert "raywatch profile build" in text and "profile_required: false" in text
    damaged = tmp_path / "damaged.profile"
    damaged.write_bytes(b"RWATCH" + b"\0" * 40)
    with pytest.raises(ConfigError, match="damaged.profile"):
        raywatch.monitor(Fraud, {"profile_path": str(damaged)})
    with caplog.at_level(logging.WARNING, logger="raywatch.serve.replica"):
        d = raywatch.monitor(Fraud, profile_path=str(missing), profile_required=False)
    assert d.name == "Fraud" and any("without a reference profile" in r.getMessage() for r in caplog.records)
    Profile.fit({"amount": np.arange(50.0)}, seed=0).save(missing)
    assert raywatch.monitor(Fraud, profile_path=str(missing)).func_or_class._raywatch_config.profile_path == str(missing)
