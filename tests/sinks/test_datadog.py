import pytest

from alert_receivers import Answer, HTTPReceiver, check_datadog_event, parse_dogstatsd
from sink_helpers import FAST_RETRY, alert, notification
from raywatch.alerts.delivery import deliver_with_retries
from raywatch.config import DatadogSinkConfig
from raywatch.sinks.base import PermanentError
from raywatch.sinks.datadog import DatadogSink
from sink_fixtures import statsd  # noqa: F401  (fixture)


def sink_for(statsd_port, **kw):
    return DatadogSink(DatadogSinkConfig(name="dd", type="datadog", statsd_port=statsd_port, tags=["env:test"],
                                         timeout=1, **kw))


def test_grammar_parser_reads_documented_examples():
    assert parse_dogstatsd("page.views:1|c|@0.5|#env:prod,role:web") == {
        "kind": "metric", "name": "page.views", "value": 1.0, "type": "c", "sample_rate": 0.5, "tags": ["env:prod", "role:web"]}
    e = parse_dogstatsd("_e{5,4}:title|text|k:agg|t:warning|#a:b")
    assert (e["title"], e["text"], e["aggregation_key"], e["alert_type"], e["tags"]) == ("title", "text", "agg", "warning", ["a:b"])
    sc = parse_dogstatsd("_sc|app.is_up|2|#env:dev|m:down")
    assert (sc["name"], sc["status"], sc["tags"], sc["message"]) == ("app.is_up", 2, ["env:dev"], "down")
    with pytest.raises(ValueError):
        parse_dogstatsd("_e{9,4}:title|text")


def test_dogstatsd_metric_event_and_service_check_per_alert(statsd):
    sink = sink_for(statsd.port)
    try:
        sink.send(notification(alert(severity="critical", fp="fp-crit"), alert("Drift", fp="fp-drift", status="resolved")))
        items = statsd.wait_for(lambda it: len(it) >= 7)
    finally:
        sink.close()
    assert statsd.errors == []
    metrics = [i for i in items if i["kind"] == "metric"]
    events = [i for i in items if i["kind"] == "event"]
    checks = [i for i in items if i["kind"] == "service_check"]
    assert {(m["name"], m["type"], m["value"]) for m in metrics} == {("raywatch.alert.firing", "g", 1.0),
                                                                     ("raywatch.alert.firing", "g", 0.0),
                                                                     ("raywatch.alert.value", "g", 0.81)}
    assert all("env:test" in m["tags"] and "model:fraud" in m["tags"] for m in metrics)
    fire = next(e for e in events if e["aggregation_key"] == "fp-crit")
    assert fire["alert_type"] == "error" and fire["title"].startswith("[FIRING] HighLatency")
    assert fire["source_type_name"] == "raywatch" and "severity:critical" in fire["tags"]
    done = next(e for e in events if e["aggregation_key"] == "fp-drift")
    assert done["alert_type"] == "success"
    by_rule = {next(t for t in c["tags"] if t.startswith("alertname:")): c for c in checks}
    assert by_rule["alertname:highlatency"]["status"] == 2 and by_rule["alertname:drift"]["status"] == 0
    assert all(c["name"] == "raywatch.alert" for c in checks)


@pytest.fixture
def ddapi():
    r = HTTPReceiver(validators={"/api/v1/events": check_datadog_event})
    r.defaults["/api/v1/events"] = Answer(202, {"status": "ok", "event": {"id": 1}})
    try:
        yield r
    finally:
        r.close()


def test_http_api_events_with_keys_and_429(statsd, ddapi):
    ddapi.script("/api/v1/events", Answer(429, {"errors": ["Rate limit exceeded"]}, {"Retry-After": "0.2"}))
    sink = sink_for(statsd.port, api_key="api-KEY-123", app_key="app-KEY-456", api_host=ddapi.url(""))
    try:
        ok, err, attempts = deliver_with_retries(sink, notification(alert(fp="fpx")), FAST_RETRY)
    finally:
        sink.close()
    assert ok and attempts == 2, err
    first, second = ddapi.wait_for(2, "/api/v1/events")
    assert ddapi.invalid == [] and (first.status, second.status) == (429, 202)
    assert second.headers["DD-API-KEY"] == "api-KEY-123" and second.headers["DD-APPLICATION-KEY"] == "app-KEY-456"
    assert second.body["aggregation_key"] == "fpx" and "env:test" in second.body["tags"]


def test_long_titles_are_cut_to_datadogs_limit(statsd, ddapi):
    sink = sink_for(statsd.port, api_key="k", api_host=ddapi.url(""))
    try:
        sink.send(notification(alert(fp="long", feature="f" * 80, method="psi")))
    finally:
        sink.close()
    (req,) = ddapi.wait_for(1, "/api/v1/events")
    assert ddapi.invalid == [] and req.status == 202 and len(req.body["title"]) == 100


def test_http_api_403_is_permanent_and_keys_stay_secret(statsd, ddapi):
    ddapi.script("/api/v1/events", Answer(403, {"errors": ["Forbidden"]}))
    sink = sink_for(statsd.port, api_key="api-KEY-123", api_host=ddapi.url(""))
    try:
        with pytest.raises(PermanentError) as exc:
            sink.send(notification())
    finally:
        sink.close()
    assert exc.value.status == 403 and "Forbidden" in exc.value.answer
    assert "api-KEY-123" not in str(exc.value) + exc.value.answer


def test_sync_monitors_creates_then_updates(statsd, ddapi):
    from raywatch.export import datadog_monitors, sync_monitors
    from raywatch.config import AlertingConfig

    cfg = AlertingConfig.model_validate({"rules": [{"name": "HighLatency", "expr": "latency_p95_seconds > 0.5"}]})
    monitors = datadog_monitors(cfg)
    state = {"existing": []}

    def get_all(req):
        return Answer(200, state["existing"])

    def create(req):
        state["existing"].append({"id": 42, "name": req.body["name"]})
        return Answer(200, dict(req.body, id=42))

    ddapi.routes[("GET", "/api/v1/monitor")] = get_all
    ddapi.routes[("POST", "/api/v1/monitor")] = create
    ddapi.routes[("PUT", "/api/v1/monitor/42")] = lambda req: Answer(200, dict(req.body, id=42))
    sink = sink_for(statsd.port, api_key="k" * 32, app_key="a" * 40, api_host=ddapi.url(""))
    try:
        assert sink.sync_monitors(monitors) == {"created": 1, "updated": 0}
    finally:
        sink.close()
    full = AlertingConfig.model_validate({"rules": cfg.model_dump(by_alias=True)["rules"], "sinks": [
        {"name": "dd", "type": "datadog", "statsd_port": statsd.port, "api_key": "k" * 32, "app_key": "a" * 40,
         "api_host": ddapi.url("")}]})
    assert sync_monitors(full) == {"created": 0, "updated": 1}
    with pytest.raises(ValueError, match="no single datadog sink"):
        sync_monitors(cfg)
    post = next(r for r in ddapi.requests if r.method == "POST")
    assert post.body["type"] == "metric alert" and "raywatch.latency_p95_seconds" in post.body["query"]
