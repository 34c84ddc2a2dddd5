"""raywatch pushes to a real Alertmanager, which groups the alerts, notifies its own
webhook receiver, and shows them resolved."""

import json
import time
import urllib.request

import pytest
from prometheus_client import CollectorRegistry

from alert_receivers import HTTPReceiver, check_am_webhook
from raywatch.alerts import AlertEngine, Series
from raywatch.config import AlertingConfig
from sink_fixtures import alertmanager  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def until(pred, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_push_group_resend_and_resolve(alertmanager):
    hook = HTTPReceiver(validators={"/am": check_am_webhook})
    engine = None
    try:
        am = alertmanager(f"""
route:
  receiver: hook
  group_by: [alertname, model]
  group_wait: 200ms
  group_interval: 500ms
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: {hook.url('/am')}
        send_resolved: true
""")
        cfg = AlertingConfig.model_validate({"watchdog": False,
            "rules": [{"name": "HighLatency", "expr": "latency_p95_seconds > 0.5", "severity": "warning",
                       "annotations": {"summary": "{{ $labels.model }} {{ $labels.version }} p95 {{ $value }}s"}}],
            "sinks": [{"name": "am", "type": "alertmanager", "url": am, "resend_delay": "300ms", "timeout": 2}],
        })
        engine = AlertEngine.from_config(cfg, registry=CollectorRegistry())
        base = {"app": "shop", "deployment": "Fraud", "model": "fraud"}
        hot = [Series("latency_p95_seconds", dict(base, version=v), 0.9) for v in ("v1", "v2")]
        changed = engine.evaluate(hot)
        assert [a.state for a in changed] == ["firing", "firing"]

        groups = until(lambda: [g for g in get(am + "/api/v2/alerts/groups") if len(g["alerts"]) == 2],
                       what="Alertmanager to group both alerts")
        (g,) = groups
        assert g["labels"] == {"alertname": "HighLatency", "model": "fraud"}
        alerts = sorted(g["alerts"], key=lambda a: a["labels"]["version"])
        assert [a["status"]["state"] for a in alerts] == ["active", "active"]
        assert alerts[0]["annotations"]["summary"] == "fraud v1 p95 0.9s"
        assert alerts[0]["labels"]["severity"] == "warning"

        # Alertmanager's own notification: one grouped message with both alerts
        (note,) = hook.wait_for(1, "/am")
        assert hook.invalid == [] and note.body["status"] == "firing" and len(note.body["alerts"]) == 2

        # while firing, raywatch re-sends (Alertmanager's updatedAt moves on)
        first = {a["fingerprint"]: a["updatedAt"] for a in alerts}
        time.sleep(0.35)
        engine.evaluate(hot)
        until(lambda: all(a["updatedAt"] != first[a["fingerprint"]] for a in get(am + "/api/v2/alerts")),
              what="re-sent alerts to update Alertmanager")

        # resolved: raywatch sends endsAt; Alertmanager drops them from its active list and notifies resolved
        changed = engine.evaluate([Series("latency_p95_seconds", dict(base, version=v), 0.1) for v in ("v1", "v2")])
        assert [a.state for a in changed] == ["resolved", "resolved"]
        until(lambda: get(am + "/api/v2/alerts") == [], what="Alertmanager to show the alerts resolved")
        resolved = hook.wait_for(1, "/am", timeout=10) and until(
            lambda: [r for r in hook.requests if r.body and r.body["status"] == "resolved"], what="resolved webhook")
        assert {a["labels"]["version"] for a in resolved[0].body["alerts"]} == {"v1", "v2"}
        assert engine.wait_idle(5)
        sent = engine.metrics.sent.labels(sink="am")._value.get()
        assert sent >= 3
    finally:
        if engine is not None:
            engine.close(5)
        hook.close()


def test_the_watchdog_is_a_dead_mans_switch_through_a_real_alertmanager(alertmanager):
    """The Prometheus convention end to end: Alertmanager routes the always-firing Watchdog to
    a heartbeat receiver; when raywatch stops evaluating, the Watchdog's endsAt passes and
    the receiver is told it resolved: raywatch went silent, and someone notices."""
    hook = HTTPReceiver(validators={"/": check_am_webhook})
    engine = None
    try:
        am = alertmanager(f"""
route:
  receiver: team
  group_wait: 100ms
  group_interval: 300ms
  repeat_interval: 1h
  routes:
    - matchers: ['alertname="Watchdog"']
      receiver: deadman
receivers:
  - name: team
    webhook_configs: [{{url: {hook.url('/team')}}}]
  - name: deadman
    webhook_configs: [{{url: {hook.url('/deadman')}, send_resolved: true}}]
""")
        cfg = AlertingConfig.model_validate({
            "rules": [{"name": "HighLatency", "expr": "latency_p95_seconds > 0.5"}],
            "sinks": [{"name": "am", "type": "alertmanager", "url": am, "resend_delay": "300ms", "timeout": 2}],
        })
        engine = AlertEngine.from_config(cfg, registry=CollectorRegistry())
        quiet = [Series("latency_p95_seconds", {"app": "shop", "deployment": "Fraud", "model": "fraud"}, 0.1)]
        assert engine.evaluate(quiet) == []      # nothing of the models fires...
        (beat,) = hook.wait_for(1, "/deadman")   # ...and yet the heartbeat arrives
        assert beat.body["status"] == "firing"
        assert beat.body["alerts"][0]["labels"] == {"alertname": "Watchdog", "severity": "none"}
        for _ in range(3):                       # raywatch keeps evaluating: the Watchdog stays active
            time.sleep(0.3)
            engine.evaluate(quiet)
        assert [a["labels"]["alertname"] for a in get(am + "/api/v2/alerts")] == ["Watchdog"]
        engine.close(5)                          # raywatch goes silent
        engine = None
        gone = until(lambda: [r for r in hook.requests if r.path == "/deadman" and r.body["status"] == "resolved"],
                     timeout=20, what="the Watchdog to resolve once raywatch stopped")
        assert gone[0].body["alerts"][0]["labels"]["alertname"] == "Watchdog"
        assert hook.invalid == [] and not [r for r in hook.requests if r.path == "/team"]
    finally:
        if engine is not None:
            engine.close(5)
        hook.close()
