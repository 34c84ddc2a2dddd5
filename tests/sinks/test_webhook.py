import time

from sink_helpers import alert, notification
from raywatch.config import WebhookSinkConfig
from raywatch.sinks.webhook import WebhookSink
from sink_fixtures import hook  # noqa: F401  (fixture)


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


def test_rate_limit_spaces_notifications(hook):
    """rate_limit: 5/s -> four requests span at least ~0.6 s from the first submit (a lower bound
    on when the last one can arrive, whatever the machine's load; gaps between arrivals are not
    one: a delayed arrival shortens the next gap)."""
    from prometheus_client import CollectorRegistry

    from raywatch.alerts.deadletter import DeadLetterFile
    from raywatch.alerts.delivery import SinkWorker
    from raywatch.alerts.metrics import AlertMetrics

    sink = WebhookSink(WebhookSinkConfig(name="hook", type="webhook", url=hook.url("/hook"), rate_limit=5))
    w = SinkWorker(sink, AlertMetrics.for_registry(CollectorRegistry()), DeadLetterFile(None))
    try:
        t0 = time.time()  # the receiver stamps arrivals with time.time()
        for i in range(4):
            assert w.submit(notification(alert(fp=str(i))))
        reqs = hook.wait_for(4, "/hook")
    finally:
        w.close(5)
    assert reqs[-1].t - t0 >= 3 * 0.2 * 0.95, [r.t - t0 for r in reqs]


def test_a_masked_secret_is_reported(caplog):
    """A config that went through model_dump_json carries '**********' instead of its secrets."""
    import logging

    from raywatch.config import AlertingConfig

    cfg = AlertingConfig.model_validate({"sinks": [{"name": "hook", "type": "webhook", "url": "https://x/tok"}]})
    masked = AlertingConfig.model_validate_json(cfg.model_dump_json())
    with caplog.at_level(logging.ERROR, logger="raywatch.sinks"):
        WebhookSink(masked.sinks[0])
    assert "serialized with its secrets masked" in caplog.text


def test_malformed_secret_url_is_not_shown(caplog):
    import logging

    from sink_helpers import FAST_RETRY

    from raywatch.alerts.delivery import deliver_with_retries

    sink = WebhookSink(WebhookSinkConfig(name="hook", type="webhook", url="htp:/tok-SECRET-9"))
    with caplog.at_level(logging.DEBUG):
        ok, err, attempts = deliver_with_retries(sink, notification(), FAST_RETRY)
    assert not ok and attempts == 1 and "invalid URL" in str(err)
    assert "tok-SECRET-9" not in caplog.text + str(err)
