"""Properties of routing under arbitrary alert histories (hypothesis), time driven explicitly."""

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from alert_helpers import RecordingSink
from raywatch.alerts import AlertEngine, Series, fingerprint
from raywatch.config import AlertingConfig

GW, GI, RI = 30.0, 60.0, 600.0
CFG = AlertingConfig.model_validate({"watchdog": False,
    "rules": [{"name": "Hot", "expr": "error_rate > 0.5"}],
    "route": {"receiver": "r", "group_by": ["alertname"], "group_wait": "30s", "group_interval": "60s",
              "repeat_interval": "10m"},
    "inhibit_rules": [],
    "sinks": [{"name": "r", "type": "log"}],
})


def fp(k):
    return fingerprint({"alertname": "Hot", "severity": "warning", "k": str(k)})


steps = st.lists(st.tuples(st.sampled_from([5, 10, 30, 45, 60, 200]), st.frozensets(st.integers(0, 3))),
                 min_size=1, max_size=30)


@settings(max_examples=80, deadline=None)
@given(history=steps, final=st.frozensets(st.integers(0, 3)))
def test_notifications_are_spaced_consistent_and_converge(history, final):
    sink = RecordingSink(CFG.sinks[0])
    e = AlertEngine.from_config(CFG, registry=CollectorRegistry(), background=False, sinks={"r": sink})
    try:
        t = 0.0

        def step(active):
            e.evaluate([Series("error_rate", {"k": str(k)}, 1.0 if k in active else 0.0) for k in range(4)], now=t)

        for dt, active in history:
            t += dt
            step(active)
        for _ in range(int((RI + GI) // 30) + 2):   # hold the final state past repeat_interval
            t += 30
            step(final)
        assert e.wait_idle(5)
        got = sink.got
    finally:
        e.close(1)

    told = set()
    last_t = None
    for n in got:
        assert n.alerts, "empty notification"
        firing = {a["fingerprint"] for a in n.alerts if a["status"] == "firing"}
        resolved = {a["fingerprint"] for a in n.alerts if a["status"] == "resolved"}
        assert (n.status == "firing") == bool(firing)
        assert resolved <= told, "resolved an alert the receiver was never told about"
        if last_t is not None:
            assert n.created_at - last_t >= min(GW, GI), "notifications closer than the group timers allow"
        last_t = n.created_at
        told = firing
    # the receiver's view converges on the truth
    assert told == {fp(k) for k in final}
    if not final and got:
        assert got[-1].status == "resolved"
