"""A value crossing its threshold at every evaluation must not cause a notification storm."""

from alert_helpers import got
from raywatch.alerts import Series
from alert_helpers import make_engine  # noqa: F401  (fixture)

M = {"app": "shop", "deployment": "Fraud", "model": "fraud", "version": "v1"}


def flap(e, n=720, every=5):
    """Evaluate every ``every`` s for n evaluations, the value alternating above and below."""
    for i in range(n):
        e.evaluate([Series("error_rate", M, 0.5 if i % 2 == 0 else 0.0)], now=i * every)


def test_flapping_without_for_is_throttled_by_group_interval(make_engine):
    e = make_engine({"rules": [{"name": "Errors", "expr": "error_rate > 0.1", "severity": "critical"}],
                     "route": {"receiver": "a", "group_wait": "30s", "group_interval": "5m"},
                     "sinks": [{"name": "a", "type": "log"}]})
    flap(e)  # one hour, 360 crossings up and 360 down
    n = got(e, "a")
    # at most one notification per group_interval (plus the first after group_wait)
    assert 1 <= len(n) <= 3600 / 300 + 1
    assert len(n) < 720 / 10


def test_for_suppresses_flapping_entirely(make_engine):
    e = make_engine({"rules": [{"name": "Errors", "expr": "error_rate > 0.1", "for": "1m"}],
                     "route": {"receiver": "a", "group_wait": "0s"},
                     "sinks": [{"name": "a", "type": "log"}]})
    flap(e)
    assert got(e, "a") == []
    assert e.alerts() == [] or e.alerts()[0]["state"] == "pending"


def test_keep_firing_for_gives_one_firing_notification(make_engine):
    e = make_engine({"rules": [{"name": "Errors", "expr": "error_rate > 0.1", "keep_firing_for": "1m"}],
                     "route": {"receiver": "a", "group_wait": "0s", "group_interval": "1m"},
                     "sinks": [{"name": "a", "type": "log"}]})
    flap(e)
    assert [x.status for x in got(e, "a")] == ["firing"]
