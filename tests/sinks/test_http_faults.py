"""Receivers that misbehave: trickle, redirect, answer garbage, hang up, echo the secret URL.

Every sink that speaks HTTP goes through one function (``raywatch.sinks.base.http_post_json``);
these tests hold it to Alertmanager's rules: each attempt has an overall deadline (connect,
send and the whole answer), protocol errors are transient, redirects are never followed (3xx
is a permanent error and no credential reaches another host), and nothing the receiver echoes
puts a secret into logs, errors or dead letters.
"""

import logging
import time

import pytest

from alert_receivers import Answer, HTTPReceiver, check_slack
from sink_helpers import FAST_RETRY, notification
from raywatch.alerts.delivery import deliver_with_retries
from raywatch.config import AlertmanagerSinkConfig, DatadogSinkConfig, SlackSinkConfig, WebhookSinkConfig
from raywatch.sinks.alertmanager import AlertmanagerSink
from raywatch.sinks.base import PermanentError, TransientError
from raywatch.sinks.slack import SlackSink
from raywatch.sinks.webhook import WebhookSink
from sink_fixtures import hook  # noqa: F401  (fixture)


@pytest.fixture
def elsewhere():
    """Another server (another port): where a redirect points."""
    r = HTTPReceiver()
    try:
        yield r
    finally:
        r.close()


def webhook(r, path="/hook", **kw):
    return WebhookSink(WebhookSinkConfig(name="hook", type="webhook", url=r.url(path), **kw))


# --------------------------------------------------------------------------- overall deadline


def test_a_trickling_receiver_cannot_hold_a_worker_past_the_timeout(hook):
    """One byte every 0.2 s: each read returns in time, the whole answer would take ~30 s."""
    hook.script("/hook", Answer(200, "ok" * 40, trickle=0.2, max_seconds=30))
    sink = webhook(hook, timeout=1)
    t0 = time.monotonic()
    with pytest.raises(TransientError, match="1s"):
        sink.send(notification())
    assert time.monotonic() - t0 < 3.5  # the deadline covers the whole answer, not each read


def test_a_silent_receiver_times_out_as_before(hook):
    hook.script("/hook", Answer(200, "ok", delay=2.0))
    with pytest.raises(TransientError, match="timed out"):
        webhook(hook, timeout=0.5).send(notification())


# --------------------------------------------------------------------------- protocol errors


@pytest.mark.parametrize("answer", [
    Answer(raw=b"HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n"),           # malformed status line
    Answer(raw=b"SMTP 220 hello\r\n\r\n"),                                   # not HTTP at all
    Answer(hang_up=True),                                                    # RemoteDisconnected
    Answer(raw=b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"),     # IncompleteRead
    Answer(raw=b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc"),  # a chunk cut short
], ids=["bad-status-line", "not-http", "remote-disconnected", "incomplete-read", "incomplete-chunk"])
def test_protocol_errors_are_transient_and_retried(hook, answer):
    hook.script("/hook", answer)
    ok, err, attempts = deliver_with_retries(webhook(hook, timeout=2), notification(), FAST_RETRY)
    assert ok and attempts == 2, err
    assert [r.status for r in hook.wait_for(2, "/hook")][-1] == 200


# --------------------------------------------------------------------------- redirects


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_permanent_errors_and_no_credential_leaves(hook, elsewhere, status, caplog):
    secret_path = "/hook/T0-SECRET-IN-PATH"
    hook.script(secret_path, Answer(status, "moved", {"Location": elsewhere.url("/landing")}))
    sink = webhook(hook, path=secret_path, headers={"Authorization": "Bearer T0KEN-SECRET"}, timeout=2)
    with caplog.at_level(logging.DEBUG):
        ok, err, attempts = deliver_with_retries(sink, notification(), FAST_RETRY)
    assert not ok and attempts == 1 and isinstance(err, PermanentError) and err.status == status
    assert "redirect" in str(err) and "not followed" in str(err)
    assert elsewhere.requests == []                         # nothing reached the other host
    assert len(hook.requests) == 1 and hook.requests[0].method == "POST"
    for text in (str(err), caplog.text):
        assert "T0KEN-SECRET" not in text and "SECRET-IN-PATH" not in text


def test_slack_and_alertmanager_redirects_are_not_followed(elsewhere):
    slack = HTTPReceiver(validators={"/services/": check_slack})
    try:
        slack.script("/services/T0/B0/XYZ", Answer(302, "", {"Location": elsewhere.url("/services/T0/B0/XYZ")}))
        s = SlackSink(SlackSinkConfig(name="slack", type="slack", webhook_url=slack.url("/services/T0/B0/XYZ")))
        with pytest.raises(PermanentError, match="redirect"):
            s.send(notification())
        slack.script("/api/v2/alerts", Answer(301, "", {"Location": elsewhere.url("/api/v2/alerts")}))
        am = AlertmanagerSink(AlertmanagerSinkConfig(name="am", type="alertmanager", url=slack.url(""),
                                                     bearer_token="AM-BEARER-SECRET"))
        with pytest.raises(PermanentError, match="redirect"):
            am.send(notification())
    finally:
        slack.close()
    assert elsewhere.requests == []


def test_datadog_api_redirects_are_not_followed(elsewhere):
    from sink_fixtures import DogStatsDReceiver

    from raywatch.sinks.datadog import DatadogSink

    api = HTTPReceiver()
    statsd = DogStatsDReceiver()
    try:
        api.script("/api/v1/events", Answer(302, "", {"Location": elsewhere.url("/api/v1/events")}))
        sink = DatadogSink(DatadogSinkConfig(name="dd", type="datadog", statsd_port=statsd.port,
                                             api_key="DD-API-SECRET", api_host=api.url(""), timeout=2))
        try:
            with pytest.raises(PermanentError, match="redirect"):
                sink.send(notification())
        finally:
            sink.close()
    finally:
        api.close()
        statsd.close()
    assert elsewhere.requests == []


# --------------------------------------------------------------------------- redaction of what receivers echo


@pytest.mark.parametrize("url_tail", ["/services/T000/B000/SECRETTOKEN123", "/hook?token=SECRETQUERY99&x=1"])
def test_an_echoed_secret_path_or_query_never_reaches_logs_errors_or_dead_letters(hook, url_tail, caplog, tmp_path):
    """The receiver answers 404 and echoes the path (and query) it was called on, as many do."""
    from prometheus_client import CollectorRegistry, generate_latest

    from raywatch.alerts.deadletter import DeadLetterFile, read_dead_letters
    from raywatch.alerts.delivery import SinkWorker
    from raywatch.alerts.metrics import AlertMetrics

    path, _, query = url_tail.partition("?")
    hook.routes[("POST", path)] = lambda req: Answer(404, f"no such hook: {req.raw_path}")
    sink = webhook(hook, path=url_tail, timeout=2, retry={"max_attempts": 1})
    reg = CollectorRegistry()
    dl = DeadLetterFile(tmp_path / "dl.jsonl")
    with caplog.at_level(logging.DEBUG):
        w = SinkWorker(sink, AlertMetrics.for_registry(reg), dl)
        w.submit(notification())
        assert w.idle(10)
        w.close(2)
    (req,) = hook.wait_for(1)
    assert "SECRET" in req.raw_path      # the receiver did echo it
    (rec,) = read_dead_letters(tmp_path / "dl.jsonl")
    for text in (caplog.text, (tmp_path / "dl.jsonl").read_text(), generate_latest(reg).decode()):
        assert "SECRETTOKEN123" not in text and "SECRETQUERY99" not in text
        assert "T000/B000" not in text   # the path as a whole is masked too
    assert rec["status"] == 404 and "no such hook" in rec["reason"]


def test_redact_masks_the_url_path_query_and_their_encodings():
    sink = webhook(HTTPReceiverStub(), path="/services/T000/B000/SECRETTOKEN123?sig=QUERYSIG42&v=1")
    text = ("got /services/T000/B000/SECRETTOKEN123, token SECRETTOKEN123, encoded "
            "%2Fservices%2FT000%2FB000%2FSECRETTOKEN123, query sig=QUERYSIG42&v=1 and QUERYSIG42")
    out = sink.redact(text)
    for leak in ("SECRETTOKEN123", "QUERYSIG42", "T000/B000", "T000%2FB000"):
        assert leak not in out, out
    assert sink.redact("services are up") == "services are up"  # words of the path alone stay


class HTTPReceiverStub:
    def url(self, path):
        return "https://hooks.example.com" + path


# --------------------------------------------------------------------------- best effort (UDP)


def test_dogstatsd_only_is_best_effort_never_sent():
    """DogStatsD is UDP: with no agent listening the datagrams vanish. That is counted apart."""
    import socket

    from prometheus_client import CollectorRegistry

    from raywatch.alerts.deadletter import DeadLetterFile
    from raywatch.alerts.delivery import SinkWorker
    from raywatch.alerts.metrics import AlertMetrics
    from raywatch.sinks.datadog import DatadogSink

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens there
    sink = DatadogSink(DatadogSinkConfig(name="dd", type="datadog", statsd_port=port))
    assert not sink.acknowledged
    m = AlertMetrics.for_registry(CollectorRegistry())
    w = SinkWorker(sink, m, DeadLetterFile(None))
    try:
        w.submit(notification())
        assert w.idle(5)
    finally:
        w.close(2)
    assert m.sent.labels(sink="dd")._value.get() == 0
    assert m.best_effort.labels(sink="dd")._value.get() == 1
