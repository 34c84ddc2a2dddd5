"""Alertmanager's routing semantics, driven with explicit time (background=False)."""

from alert_helpers import got
from raywatch.alerts import Series
from alert_helpers import make_engine  # noqa: F401  (fixture)

M = {"app": "shop", "deployment": "Fraud", "model": "fraud", "version": "v1"}


def S(name, value, **labels):
    return Series(name, dict(M, **labels), value)


def cfg(route, rules=None, inhibit=None, sinks=("a", "b", "c"), silences=None):
    c = {
        "rules": rules or [
            {"name": "HighLatency", "expr": "latency_p95_seconds > 0.5", "severity": "warning"},
            {"name": "HighErrors", "expr": "error_rate > 0.1", "severity": "critical"},
            {"name": "Drift", "expr": 'drift_score{feature=~".+"} > 0.2', "severity": "warning", "labels": {"team": "ml"}},
        ],
        "route": route,
        "sinks": [{"name": n, "type": "log"} for n in sinks],
    }
    if inhibit is not None:
        c["inhibit_rules"] = inhibit
    if silences is not None:
        c["silences"] = silences
    return c


def names(n):
    return sorted((a["labels"]["alertname"], a["labels"].get("feature", ""), a["status"]) for a in n.alerts)


def test_group_wait_batches_alerts_then_group_interval_spaces_updates(make_engine):
    e = make_engine(cfg({"receiver": "a", "group_by": ["alertname", "model"], "group_wait": "30s",
                         "group_interval": "5m", "repeat_interval": "4h"}))
    e.evaluate([S("drift_score", 0.5, feature="age")], now=0)
    e.evaluate([S("drift_score", 0.5, feature="age"), S("drift_score", 0.4, feature="income")], now=10)
    e.tick(29)
    assert got(e, "a") == []
    e.tick(30)
    (n,) = got(e, "a")
    assert names(n) == [("Drift", "age", "firing"), ("Drift", "income", "firing")]
    assert n.group_labels == {"alertname": "Drift", "model": "fraud"}
    # a new alert in the group waits for group_interval, not group_wait
    hot3 = [S("drift_score", 0.5, feature=f) for f in ("age", "income", "zip")]
    e.evaluate(hot3, now=60)
    e.tick(329)
    assert len(got(e, "a")) == 1
    e.evaluate(hot3, now=330)
    assert names(got(e, "a")[1]) == [("Drift", "age", "firing"), ("Drift", "income", "firing"), ("Drift", "zip", "firing")]


def test_dedup_and_repeat_interval(make_engine):
    e = make_engine(cfg({"receiver": "a", "group_wait": "0s", "group_interval": "1m", "repeat_interval": "1h"}))
    hot = [S("error_rate", 0.5)]
    for t in range(0, 3600, 30):  # one evaluation every 30 s for an hour, the alert firing throughout
        e.evaluate(hot, now=t)
    assert len(got(e, "a")) == 1
    for t in range(3600, 3700, 30):
        e.evaluate(hot, now=t)
    assert len(got(e, "a")) == 2  # repeated once repeat_interval passed
    assert got(e, "a")[1].alerts[0]["status"] == "firing"


def test_resolved_notification_and_send_resolved_false(make_engine):
    c = cfg({"receiver": ["a", "b"], "group_wait": "0s", "group_interval": "1m"})
    c["sinks"][1]["send_resolved"] = False
    e = make_engine(c)
    e.evaluate([S("error_rate", 0.5)], now=0)
    e.evaluate([S("error_rate", 0.0)], now=30)
    e.tick(60)
    a, b = got(e, "a"), got(e, "b")
    assert [n.status for n in a] == ["firing", "resolved"]
    assert names(a[1]) == [("HighErrors", "", "resolved")]
    assert [n.status for n in b] == ["firing"]  # told nothing of the resolution


def test_alert_resolved_before_group_wait_is_never_announced(make_engine):
    e = make_engine(cfg({"receiver": "a", "group_wait": "30s"}))
    e.evaluate([S("error_rate", 0.5)], now=0)
    e.evaluate([S("error_rate", 0.0)], now=10)
    e.tick(31)
    e.tick(400)
    assert got(e, "a") == []


def test_route_tree_by_severity_and_labels_with_continue(make_engine):
    e = make_engine(cfg({
        "receiver": "c", "group_wait": "0s",
        "routes": [
            {"matchers": ['severity="critical"'], "receiver": "a", "continue": True},
            {"matchers": ['team="ml"'], "receiver": "b"},
            {"matchers": ['severity=~"critical|warning"'], "receiver": "c", "group_by": ["severity"]},
        ]}, inhibit=[]))
    e.evaluate([S("error_rate", 0.5), S("drift_score", 0.5, feature="age"), S("latency_p95_seconds", 0.9)], now=0)
    assert [names(n) for n in got(e, "a")] == [[("HighErrors", "", "firing")]]
    # Drift stops at the first route that matches it (no continue)
    assert [names(n) for n in got(e, "b")] == [[("Drift", "age", "firing")]]
    # critical continued past its route to the next matching sibling
    assert sorted(names(n)[0][0] for n in got(e, "c")) == ["HighErrors", "HighLatency"]
    assert sorted(n.group_labels["severity"] for n in got(e, "c")) == ["critical", "warning"]


def test_route_options_are_inherited_and_overridden(make_engine):
    e = make_engine(cfg({"receiver": "a", "group_wait": "1m", "group_by": ["model"],
                         "routes": [{"matchers": ['severity="critical"'], "group_wait": "0s"}]}, inhibit=[]))
    e.evaluate([S("error_rate", 0.5), S("latency_p95_seconds", 0.9)], now=0)
    (n,) = got(e, "a")
    assert names(n) == [("HighErrors", "", "firing")]  # critical: no wait
    e.tick(60)
    assert names(got(e, "a")[1]) == [("HighLatency", "", "firing")]
    assert got(e, "a")[1].group_labels == {"model": "fraud"}


def test_inhibition_critical_mutes_warnings_of_the_same_model(make_engine):
    e = make_engine(cfg({"receiver": "a", "group_wait": "0s", "group_interval": "1m", "group_by": ["alertname"]}))
    other = dict(model="churn")
    e.evaluate([S("error_rate", 0.5), S("latency_p95_seconds", 0.9), Series("latency_p95_seconds", dict(M, **other), 0.9)], now=0)
    sent = [names(n) for n in got(e, "a")]
    assert [("HighErrors", "", "firing")] in sent
    latency = [n for n in got(e, "a") if n.group_labels["alertname"] == "HighLatency"]
    assert [a["labels"]["model"] for a in latency[0].alerts] == ["churn"]  # fraud's warning is muted
    muted = {a["labels"]["model"]: a["muted"] for a in e.alerts() if a["alertname"] == "HighLatency"}
    assert muted == {"fraud": "inhibited", "churn": None}
    # the critical alert resolves: the warning is no longer muted and is announced
    e.evaluate([S("latency_p95_seconds", 0.9), Series("latency_p95_seconds", dict(M, **other), 0.9)], now=30)
    e.tick(60)
    latency = [n for n in got(e, "a") if n.group_labels["alertname"] == "HighLatency"]
    assert sorted(a["labels"]["model"] for a in latency[-1].alerts) == ["churn", "fraud"]


def test_inhibition_can_be_turned_off(make_engine):
    e = make_engine(cfg({"receiver": "a", "group_wait": "0s", "group_by": ["alertname"]}, inhibit=[]))
    e.evaluate([S("error_rate", 0.5), S("latency_p95_seconds", 0.9)], now=0)
    assert len(got(e, "a")) == 2


def test_silences_are_time_bounded(make_engine):
    e = make_engine(cfg({"receiver": "a", "group_wait": "0s", "group_interval": "1m"}))
    sid = e.silence(['alertname="HighLatency"', 'model="fraud"'], starts_at=0, ends_at=100, comment="deploy")
    e.evaluate([S("latency_p95_seconds", 0.9)], now=10)
    e.tick(70)
    assert got(e, "a") == []
    e.tick(130)  # the silence has ended: the next flush announces the alert
    assert names(got(e, "a")[0]) == [("HighLatency", "", "firing")]
    assert e.expire_silence(sid) is False  # already expired and removed


def test_alerts_show_which_are_silenced(make_engine):
    e = make_engine(cfg({"receiver": "a"}))
    e.silence(['alertname="HighLatency"'], duration=3600, comment="deploy", created_by="me")
    e.evaluate([S("latency_p95_seconds", 0.9), S("error_rate", 0.5)])
    assert {a["alertname"]: a["muted"] for a in e.alerts()} == {"HighLatency": "silenced", "HighErrors": None}
    (s,) = e.list_silences()
    assert s["matchers"] == ['alertname="HighLatency"'] and s["created_by"] == "me"


def test_silence_from_config(make_engine):
    e = make_engine(cfg({"receiver": "a", "group_wait": "0s"},
                        silences=[{"matchers": ['severity="warning"'], "starts_at": "1970-01-01T00:00:00Z",
                                   "ends_at": "1970-01-01T01:00:00Z"}]))
    e.evaluate([S("latency_p95_seconds", 0.9), S("error_rate", 0.5)], now=60)
    assert [names(n) for n in got(e, "a")] == [[("HighErrors", "", "firing")]]


def test_default_route_sends_everything_to_every_routed_sink(make_engine):
    c = cfg(None, sinks=("a", "b"))
    del c["route"]
    e = make_engine(c)
    e.evaluate([S("error_rate", 0.5)], now=0)
    e.tick(30)  # default group_wait 30s
    assert len(got(e, "a")) == len(got(e, "b")) == 1


def test_groups_and_notification_log_do_not_grow_without_bound(make_engine):
    e = make_engine(cfg({"receiver": "a", "group_wait": "0s", "group_interval": "1m",
                         "group_by": ["alertname", "feature"]}))
    for i in range(50):   # 50 short-lived alerts, each on its own feature
        e.evaluate([S("drift_score", 0.5, feature=f"f{i}")], now=i * 120)
        e.evaluate([], now=i * 120 + 30)
        e.tick(i * 120 + 60)
    assert len(got(e, "a")) == 100  # each fired and resolved once
    assert e.dispatcher.groups == {} and e.dispatcher.nflog == {}
