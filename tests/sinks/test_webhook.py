import pytest

from alert_receivers import HTTPReceiver, check_am_webhook
from sink_helpers import alert, notification
from raywatch.config import WebhookSinkConfig
from raywatch.sinks.webhook import WebhookSink


@pytest.fixture
def hook():
    r = HTTPReceiver(validators={"/hook": check_am_webhook})
    try:
        yield r
    finally:
        r.close()


def test_body_is_alertmanager_webhook_v4_with_secret_headers(hook):
    sink = WebhookSink(WebhookSinkConfig(name="hook", type="webhook", url=hook.url("/hook"),
                                         headers={"Authorization": "Bearer s3cret"}, max_alerts=2))
    sink.send(notification(alert(fp="a"), alert(fp="b", status="resolved"), alert(fp="c")))
    (req,) = hook.wait_for(1)
    assert hook.invalid == [] and req.status == 200
    assert req.headers["Authorization"] == "Bearer s3cret"
    assert req.body["status"] == "firing" and req.body["truncatedAlerts"] == 1
    assert [a["fingerprint"] for a in req.body["alerts"]] == ["a", "c"]  # firing first
    assert req.body["commonLabels"]["model"] == "fraud"
