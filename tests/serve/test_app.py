"""The serve-app builder's profiles (no cluster): generated profiles are cached by their
content, not by the time they were made, in a bounded, owner-only folder."""

import os
import stat

import numpy as np
import pytest

from raywatch.config import ConfigError
from raywatch.serve import app as app_mod
from raywatch.stats.profile import Profile

SIZE = {"n": 50}


def make_profile():
    """A profile function as a user writes one: fitted afresh at every deploy."""
    return Profile.fit({"amount": np.arange(float(SIZE["n"]))}, seed=0)


def not_a_profile():
    return b"RWATCH-not-really"


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setattr(app_mod, "PROFILE_DIR", str(tmp_path / "profiles"))
    return tmp_path / "profiles"


def test_the_same_profile_built_again_reuses_its_file(folder, monkeypatch):
    spec = f"{__name__}:make_profile"
    first = app_mod._profile_file(spec, "args")
    # a later deploy fits the same data a second later: only created_at differs
    monkeypatch.setattr("time.gmtime", lambda *a: __import__("time").struct_time((2031, 1, 2, 3, 4, 5, 0, 2, 0)))
    assert Profile.load(first).meta["created_at"] != make_profile().meta["created_at"]
    assert app_mod._profile_file(spec, "args") == first
    assert len(list(folder.iterdir())) == 1
    SIZE["n"] = 60
    try:
        assert app_mod._profile_file(spec, "args") != first  # other content, another file
    finally:
        SIZE["n"] = 50
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in folder.iterdir())


def test_the_cache_keeps_the_most_recently_used_profiles(folder, monkeypatch):
    monkeypatch.setattr(app_mod, "MAX_CACHED_PROFILES", 3)
    spec = f"{__name__}:make_profile"
    made = []
    for n in range(10, 16):
        SIZE["n"] = n
        made.append(app_mod._profile_file(spec, "args"))
        os.utime(made[-1], (1000.0 + n, 1000.0 + n))  # (distinct times on a coarse clock)
    SIZE["n"] = 50
    assert sorted(os.listdir(folder)) == sorted(os.path.basename(p) for p in made[-3:])
    os.utime(made[-3], (2000.0, 2000.0))  # used again: not the oldest any more
    SIZE["n"] = 16
    try:
        newest = app_mod._profile_file(spec, "args")
    finally:
        SIZE["n"] = 50
    assert sorted(os.listdir(folder)) == sorted(os.path.basename(p) for p in (made[-3], made[-1], newest))
    monkeypatch.setattr(app_mod, "MAX_CACHED_BYTES", 1)  # over the byte bound: only the one in use stays
    kept = app_mod._profile_file(spec, "args")
    assert os.listdir(folder) == [os.path.basename(kept)]


def test_bytes_that_are_no_profile_fail_the_deploy(folder):
    with pytest.raises(ConfigError, match="no profile"):
        app_mod._profile_file(f"{__name__}:not_a_profile", "args")


def test_profile_key_ignores_only_the_creation_time():
    a = make_profile()
    b = make_profile()
    b.meta["created_at"] = "1999-01-01T00:00:00Z"
    assert app_mod.profile_key(a.to_bytes()) == app_mod.profile_key(b.to_bytes())
    b.meta["bins"] = 7
    assert app_mod.profile_key(a.to_bytes()) != app_mod.profile_key(b.to_bytes())


def build_echo(args):
    from ray import serve

    @serve.deployment
    class Echo:
        def __call__(self, x):
            return x

    return Echo.bind()


def test_a_monitor_profile_path_that_cannot_be_read_fails_the_build(tmp_path, monkeypatch):
    from raywatch.serve.app import build_monitored_app

    monkeypatch.setattr(app_mod, "PROFILE_DIR", str(tmp_path / "profiles"))
    missing = str(tmp_path / "fraud.profile")
    args = {"application": {"import_path": f"{__name__}:build_echo"}, "monitor": {"profile_path": missing}}
    with pytest.raises(ConfigError) as err:
        build_monitored_app(args)
    assert "raywatch.serve:app args: monitor (Echo): profile_path: cannot read the reference profile" in str(err.value)
    assert "fraud.profile" in str(err.value) and "profile_required: false" in str(err.value)
    args["monitor"]["profile_required"] = False
    built = build_monitored_app(args)  # explicitly without a profile: it builds
    assert built is not None


# --------------------------------------------------------------------------- issue 14: the rollout router


def build_pair(args=None):
    """An ingress composed with a second deployment (the ingress calls it)."""
    from ray import serve

    @serve.deployment(name="Inner")
    class Inner:
        def __call__(self, x):
            return x

    @serve.deployment(name="Front")
    class Front:
        def __init__(self, inner):
            self.inner = inner

        async def __call__(self, x):
            return await self.inner.remote(x)

    return Front.bind(Inner.bind())


REMEDIATES = {"payload_log": {"path": "/tmp/rw-unused-payload"}, "remediation": {"retrain": {"function": "m:f"}},
              "alerting": {"sinks": [{"name": "retrain", "type": "remediation", "controller": "ctl", "namespace": "ns"}]}}


def test_an_ingress_that_remediates_gets_the_rollout_router_in_front(tmp_path, monkeypatch):
    from raywatch.serve.app import build_monitored_app
    from raywatch.serve.compat import bound_deployment

    monkeypatch.setattr(app_mod, "PROFILE_DIR", str(tmp_path / "profiles"))
    built = build_monitored_app({"application": {"import_path": f"{__name__}:build_pair"},
                                 "monitor": {"model": "fraud", "version": "v3", **REMEDIATES}})
    router = bound_deployment(built)
    assert router.name == "RolloutRouter"
    (inner_app,) = router.init_args
    assert bound_deployment(inner_app).name == "Front"  # the user's ingress, monitored, behind it
    kw = router.init_kwargs
    assert (kw["deployment"], kw["model"], kw["version"], kw["controller"], kw["namespace"]) == ("Front", "fraud", "v3", "ctl", "ns")
    assert kw["payload_log"]["path"] == "/tmp/rw-unused-payload"
    inner = bound_deployment(bound_deployment(inner_app).init_args[0])
    inner_cfg = inner.func_or_class._raywatch_config  # monitored, without the ingress's remediation and payload log
    assert inner.name == "Inner" and inner_cfg.remediation is None and inner_cfg.payload_log is None
    assert bound_deployment(inner_app).func_or_class._raywatch_config.remediation is not None
    plain = build_monitored_app({"application": {"import_path": f"{__name__}:build_pair"}, "monitor": {"model": "fraud"}})
    assert bound_deployment(plain).name == "Front"  # without remediation: no router


def test_only_the_ingress_can_remediate(tmp_path, monkeypatch):
    from raywatch.serve.app import build_monitored_app

    monkeypatch.setattr(app_mod, "PROFILE_DIR", str(tmp_path / "profiles"))
    with pytest.raises(ConfigError) as err:
        build_monitored_app({"application": {"import_path": f"{__name__}:build_pair"}, "monitor": {},
                             "overrides": {"Inner": REMEDIATES}})
    assert "overrides.Inner.remediation: only the application's ingress (Front) can remediate" in str(err.value)
