import logging

import pytest

from alert_receivers import Answer, HTTPReceiver, check_slack
from sink_helpers import FAST_RETRY, alert, notification
from raywatch.alerts.delivery import deliver_with_retries
from raywatch.config import SlackSinkConfig
from raywatch.sinks.base import PermanentError, RetryAfter, TransientError
from raywatch.sinks.slack import MAX_ALERTS, SlackSink, message


@pytest.fixture
def slack():
    r = HTTPReceiver(validators={"/services/": check_slack},
                     bad_request={"/services/": Answer(400, "invalid_blocks")})
    try:
        yield r
    finally:
        r.close()


def sink_for(r, path="/services/T000/B000/XXXX", **kw):
    return SlackSink(SlackSinkConfig(name="slack", type="slack", webhook_url=r.url(path), timeout=0.5, **kw))


def test_firing_message_is_valid_block_kit_with_fallback_and_severity(slack):
    sink = sink_for(slack, channel="#ml-alerts")
    sink.send(notification(alert(severity="critical"), alert("DriftDetected", fp="f2", feature="age")))
    (req,) = slack.wait_for(1)
    assert slack.invalid == [] and req.status == 200
    body = req.body
    assert body["channel"] == "#ml-alerts"
    assert body["text"].startswith("[FIRING:2]")  # plain-text fallback
    assert body["blocks"][0]["type"] == "header"
    sections = [b["text"]["text"] for b in body["blocks"] if b["type"] == "section"]
    assert "*CRITICAL*" in sections[0] and ":red_circle:" in sections[0]
    assert "*WARNING*" in sections[1] and "feature=`age`" in sections[1]
    assert "severity critical" in body["blocks"][-1]["elements"][0]["text"]


def test_resolved_message_says_resolved(slack):
    sink_for(slack).send(notification(alert(status="resolved")))
    (req,) = slack.wait_for(1)
    assert req.body["blocks"][0]["text"]["text"].startswith("[RESOLVED:1]")
    assert ":white_check_mark: *RESOLVED*" in req.body["blocks"][1]["text"]["text"]


def test_many_alerts_stay_within_slack_limits():
    alerts = [alert(fp=str(i), feature="x" * 400) for i in range(200)]
    body = message(notification(*alerts))
    assert check_slack(body) == []
    assert len([b for b in body["blocks"] if b["type"] == "section"]) == MAX_ALERTS + 1
    assert "and 180 more" in body["blocks"][-2]["text"]["text"]


def test_mrkdwn_is_escaped():
    body = message(notification(alert(model="<!channel> & co")))
    assert "&lt;!channel&gt; &amp; co" in body["blocks"][1]["text"]["text"]


def test_400_is_not_retried_and_answer_is_logged(slack, caplog):
    slack.script("/services/T000/B000/XXXX", Answer(400, "invalid_payload"))
    sink = sink_for(slack)
    with caplog.at_level(logging.ERROR, logger="raywatch.alerts.delivery"):
        ok, err, attempts = deliver_with_retries(sink, notification(), FAST_RETRY)
    assert not ok and attempts == 1 and isinstance(err, PermanentError) and err.status == 400
    assert "invalid_payload" in caplog.text
    assert len(slack.requests) == 1


def test_429_waits_for_retry_after(slack):
    slack.script("/services/T000/B000/XXXX", Answer(429, "rate_limited", {"Retry-After": "0.3"}))
    ok, err, attempts = deliver_with_retries(sink_for(slack), notification(), FAST_RETRY)
    assert ok and attempts == 2
    first, second = slack.requests
    assert first.status == 429 and second.status == 200
    assert second.t - first.t >= 0.28  # honoured Retry-After (a lower bound: never flaky)


def test_500_and_timeout_are_retried_then_delivered(slack):
    path = "/services/T000/B000/XXXX"
    slack.script(path, Answer(500, "rollup_error"), Answer(200, "ok", delay=1.5), Answer(200, "ok"))
    ok, err, attempts = deliver_with_retries(sink_for(slack), notification(), FAST_RETRY)
    assert ok and attempts == 3
    assert [r.status for r in slack.wait_for(3)] == [500, 200, 200]


def test_connection_refused_is_transient():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    sink = SlackSink(SlackSinkConfig(name="slack", type="slack", webhook_url=f"http://127.0.0.1:{port}/x", timeout=0.5))
    with pytest.raises(TransientError, match="connection error"):
        sink.send(notification())


def test_errors_never_show_the_webhook_url(slack):
    secret = "/services/T000/B000/SECRETTOKEN"
    slack.script(secret, Answer(404, "no_service"))
    sink = sink_for(slack, path=secret)
    with pytest.raises(PermanentError) as exc:
        sink.send(notification())
    assert "SECRETTOKEN" not in str(exc.value) and "no_service" in str(exc.value)
    assert "SECRETTOKEN" not in repr(sink) and "SECRETTOKEN" not in repr(sink.cfg)


def test_retry_after_error_type(slack):
    slack.script("/services/T000/B000/XXXX", Answer(429, "rate_limited", {"Retry-After": "7"}))
    with pytest.raises(RetryAfter) as exc:
        sink_for(slack).send(notification())
    assert exc.value.retry_after == 7.0
