import math

from hypothesis import given, settings
from hypothesis import strategies as st

from raywatch.alerts.alert import FIRING, PENDING, RESOLVED, Series, fingerprint
from raywatch.alerts.rules import RuleSet
from raywatch.config import AlertRuleConfig

M = {"app": "shop", "deployment": "Fraud", "model": "fraud", "version": "v1"}


def rule(**kw):
    kw.setdefault("name", "R")
    return AlertRuleConfig.model_validate(kw)


def states(changed):
    return [(a.labels.get("feature", a.name), a.state) for a in changed]


def test_one_alert_per_matching_series_with_labels_and_fingerprint():
    rs = RuleSet([rule(name="Drift", expr='drift_score{feature=~"age|income"} > 0.2', severity="critical",
                       labels={"team": "ml"})])
    series = [Series("drift_score", dict(M, feature=f, method="psi"), v)
              for f, v in (("age", 0.5), ("income", 0.3), ("zip", 0.9), ("height", 0.1))]
    changed = rs.evaluate(series, now=0)
    assert sorted(states(changed)) == [("age", FIRING), ("income", FIRING)]
    a = next(a for a in changed if a.labels["feature"] == "age")
    assert a.labels == dict(M, feature="age", method="psi", alertname="Drift", severity="critical", team="ml")
    assert a.fingerprint == fingerprint(a.labels) and a.value == 0.5


def test_for_pending_then_firing_and_pending_dropped_silently():
    rs = RuleSet([rule(expr="error_rate > 0.1", **{"for": "60s"})])
    hot = [Series("error_rate", M, 0.5)]
    assert states(rs.evaluate(hot, 0)) == [("R", PENDING)]
    assert rs.evaluate(hot, 30) == []
    assert rs.evaluate([Series("error_rate", M, 0.0)], 40) == []   # pending → inactive: no notice
    assert rs.alerts() == []
    assert states(rs.evaluate(hot, 50)) == [("R", PENDING)]        # starts over
    assert rs.evaluate(hot, 100) == []
    assert states(rs.evaluate(hot, 110)) == [("R", FIRING)]
    a = rs.alerts()[0]
    assert (a.active_at, a.fired_at) == (50, 110)


def test_keep_firing_for_holds_a_firing_alert():
    rs = RuleSet([rule(expr="error_rate > 0.1", keep_firing_for="30s")])
    hot, cold = [Series("error_rate", M, 0.5)], [Series("error_rate", M, 0.0)]
    assert states(rs.evaluate(hot, 0)) == [("R", FIRING)]
    assert rs.evaluate(cold, 10) == [] and rs.alerts()[0].state == FIRING
    assert rs.evaluate(hot, 20) == []            # true again: keeps firing, same alert
    assert rs.evaluate(cold, 45) == []           # 25 s since last true
    changed = rs.evaluate(cold, 50)              # 30 s: resolves
    assert states(changed) == [("R", RESOLVED)] and changed[0].resolved_at == 50 and changed[0].fired_at == 0


def test_absent_series_resolves_and_resolved_alerts_are_forgotten_after_retention():
    rs = RuleSet([rule(expr="error_rate > 0.1")], resolved_retention=100)
    rs.evaluate([Series("error_rate", M, 0.5)], 0)
    assert states(rs.evaluate([], 10)) == [("R", RESOLVED)]
    rs.evaluate([], 50)
    assert [a.state for a in rs.alerts()] == [RESOLVED]
    rs.evaluate([], 110)
    assert rs.alerts() == [] and [a.state for a in rs.removed] == [RESOLVED]


def test_refiring_after_resolve_is_a_new_alert_with_the_same_fingerprint():
    rs = RuleSet([rule(expr="error_rate > 0.1")])
    a1 = rs.evaluate([Series("error_rate", M, 0.5)], 0)[0]
    rs.evaluate([], 10)
    a2 = rs.evaluate([Series("error_rate", M, 0.7)], 20)[0]
    assert a2 is not a1 and a2.fingerprint == a1.fingerprint and a2.state == FIRING and a2.active_at == 20


def test_nan_never_satisfies_a_comparison():
    rs = RuleSet([rule(expr="accuracy < 0.9"), rule(name="N", expr="accuracy != 0.9")])
    assert rs.evaluate([Series("accuracy", M, math.nan)], 0) == []


def test_annotations_render_value_and_labels_and_follow_the_value():
    rs = RuleSet([rule(expr="latency_p95_seconds > 0.5",
                       annotations={"summary": "{{ $labels.model }} p95 {{ $value | humanizeDuration }}"})])
    a = rs.evaluate([Series("latency_p95_seconds", M, 0.75)], 0)[0]
    assert a.annotations["summary"] == "fraud p95 750ms"
    rs.evaluate([Series("latency_p95_seconds", M, 90.0)], 10)
    assert rs.alerts()[0].annotations["summary"] == "fraud p95 1m 30s"


def test_state_round_trip_keeps_pending_timers():
    cfg = [rule(expr="error_rate > 0.1", **{"for": "60s"})]
    rs = RuleSet(cfg)
    rs.evaluate([Series("error_rate", M, 0.5)], 0)
    import json

    saved = json.loads(json.dumps(rs.state()))
    rs2 = RuleSet(cfg)
    assert rs2.restore(saved) == 1
    assert rs2.evaluate([Series("error_rate", M, 0.5)], 30) == []
    assert states(rs2.evaluate([Series("error_rate", M, 0.5)], 60)) == [("R", FIRING)]


def naive(rules, series):
    return sorted((r.name, tuple(sorted(s.labels.items()))) for r in RuleSet(rules).rules for s in series
                  if r.holds(s.name, s.labels, s.value))


label_values = st.sampled_from(["a", "b", "ab", "", "fraud", "x.y"])
ops = st.sampled_from([">", ">=", "<", "<=", "==", "!="])
mops = st.sampled_from(["=", "!=", "=~", "!~"])
mvals = st.sampled_from(["a", "b", "a|b", ".*", ".+", "", "fr.*", "x\\.y"])


@settings(max_examples=60, deadline=None)
@given(
    series=st.lists(st.tuples(st.sampled_from(["error_rate", "accuracy"]), label_values, label_values,
                              st.sampled_from([0.0, 0.5, 1.0, 2.0, math.nan])), max_size=25),
    rules=st.lists(st.tuples(st.sampled_from(["error_rate", "accuracy", "recall"]), ops, st.sampled_from([0.0, 0.5, 1.0]),
                             st.lists(st.tuples(st.sampled_from(["model", "version", "app"]), mops, mvals), max_size=2)),
                   min_size=1, max_size=6),
)
def test_columnar_evaluation_equals_the_naive_loop(series, rules):
    ser = [Series(n, {k: v for k, v in (("model", x), ("version", y)) if v != ""}, val) for n, x, y, val in series]
    cfgs = [AlertRuleConfig(name=f"R{i}", metric=m, op=op, threshold=t,
                            matchers=[f'{l}{mo}"{mv}"' for l, mo, mv in ms])
            for i, (m, op, t, ms) in enumerate(rules)]
    rs = RuleSet(cfgs)
    got = sorted((a.name, tuple(sorted((k, v) for k, v in a.labels.items() if k not in ("alertname", "severity"))))
                 for a in rs.evaluate(ser, 0))
    # duplicate series (same name and labels) collapse into one alert, as in Prometheus
    assert sorted(set(got)) == sorted(set(naive(cfgs, ser)))


def test_non_string_label_values_are_matched_as_strings():
    rs = RuleSet([rule(name="Hot", expr='gpu_utilization{gpu=~"0|1"} > 90')])
    changed = rs.evaluate([Series("gpu_utilization", dict(M, gpu=0), 95.0),
                           Series("gpu_utilization", dict(M, gpu=2), 95.0)], 0)
    assert [a.labels["gpu"] for a in changed] == ["0"]
