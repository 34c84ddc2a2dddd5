import pytest

from alert_receivers import Answer, HTTPReceiver, check_pagerduty
from sink_helpers import FAST_RETRY, alert, notification
from raywatch.alerts.delivery import deliver_with_retries
from raywatch.config import PagerDutySinkConfig
from raywatch.sinks.base import PermanentError
from raywatch.sinks.pagerduty import PagerDutySink

KEY = "R0UT1NGKEY0123456789abcdef012345"


@pytest.fixture
def pd():
    r = HTTPReceiver(validators={"/v2/enqueue": check_pagerduty},
                     bad_request={"/v2/enqueue": Answer(400, {"status": "invalid event", "message": "Event object is invalid"})})
    r.defaults["/v2/enqueue"] = Answer(202, {"status": "success", "message": "Event processed"})
    try:
        yield r
    finally:
        r.close()


def sink_for(r, key=KEY):
    return PagerDutySink(PagerDutySinkConfig(name="pd", type="pagerduty", routing_key=key,
                                             url=r.url("/v2/enqueue"), timeout=0.5))


def test_trigger_then_resolve_share_a_stable_dedup_key(pd):
    sink = sink_for(pd)
    sink.send(notification(alert(severity="critical")))
    sink.send(notification(alert(severity="critical", status="resolved")))
    trig, res = pd.wait_for(2)
    assert pd.invalid == [] and trig.status == res.status == 202
    assert trig.body["event_action"] == "trigger" and res.body["event_action"] == "resolve"
    assert trig.body["dedup_key"] == res.body["dedup_key"]
    # the key depends on the group only: a later notification of the same group maps to the same incident
    assert sink_for(pd) and notification().group_hash == trig.body["dedup_key"]
    p = trig.body["payload"]
    assert p["severity"] == "critical" and p["source"] == "fraud" and p["class"] == "HighLatency"
    assert p["custom_details"]["firing"] == 1


def test_invalid_event_is_refused_not_retried(pd):
    sink = sink_for(pd, key="short")  # PagerDuty rejects routing keys that are not 32 characters
    ok, err, attempts = deliver_with_retries(sink, notification(), FAST_RETRY)
    assert not ok and attempts == 1 and isinstance(err, PermanentError)
    assert "Event object is invalid" in err.answer
    assert "short" not in str(err)


def test_429_and_500_are_retried(pd):
    pd.script("/v2/enqueue", Answer(429, {"status": "throttle"}, {"Retry-After": "0.1"}), Answer(500, "oops"))
    ok, err, attempts = deliver_with_retries(sink_for(pd), notification(), FAST_RETRY)
    assert ok and attempts == 3
    assert [r.status for r in pd.requests] == [429, 500, 202]
