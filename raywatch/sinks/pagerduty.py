"""PagerDuty Events API v2: one event per notification.

``event_action`` is ``trigger`` while any alert of the group fires and ``resolve`` when
all have resolved; ``dedup_key`` is a hash of the group key, stable across restarts, so
PagerDuty folds repeats into one incident and the resolve closes it. Severities map to
PagerDuty's ``critical``/``error``/``warning``/``info``. The routing key is a secret.
PagerDuty answers 202; 400 (invalid event) is not retried; 429 and 5xx are.

>>> from raywatch.sinks.notification import Notification
>>> n = Notification.build("pd", 'k', {"model": "fraud"}, [
...     {"status": "firing", "labels": {"alertname": "Down", "model": "fraud", "severity": "critical"},
...      "annotations": {"summary": "errors"}, "startsAt": "2026-01-01T00:00:00.000Z", "fingerprint": "f"}])
>>> e = event(n, "R" * 32, source="raywatch")
>>> e["event_action"], e["payload"]["severity"], len(e["dedup_key"])
('trigger', 'critical', 32)
"""

from __future__ import annotations

from typing import Any, Dict

from raywatch.sinks.notification import iso
from raywatch.sinks.base import Sink, http_post_json

__all__ = ["PagerDutySink", "event"]

_SEVERITY = {"critical": "critical", "error": "error", "warning": "warning", "info": "info"}


def event(n: Any, routing_key: str, *, source: str = "raywatch", client: str = "raywatch",
          client_url: str | None = None) -> Dict[str, Any]:
    """The Events API v2 body for one notification."""
    action = "trigger" if n.status == "firing" else "resolve"
    body: Dict[str, Any] = {"routing_key": routing_key, "event_action": action, "dedup_key": n.group_hash}
    if action == "trigger":
        labels = n.common_labels
        body["payload"] = {
            "summary": n.title()[:1024],
            "source": labels.get("model") or labels.get("deployment") or source,
            "severity": _SEVERITY.get(n.severity, "error"),
            "timestamp": iso(n.created_at),
            "component": labels.get("model") or n.group_labels.get("model"),
            "group": "/".join(x for x in (labels.get("app"), labels.get("deployment")) if x),
            "class": labels.get("alertname") or n.group_labels.get("alertname"),
            "custom_details": {
                "firing": len(n.firing),
                "resolved": len(n.resolved),
                "alerts": n.summary_lines(),
                "common_labels": dict(labels),
            },
        }
        body["payload"] = {k: v for k, v in body["payload"].items() if v not in (None, "")}  # optional fields
        body["client"] = client
        if client_url:
            body["client_url"] = client_url
    return body


class PagerDutySink(Sink):
    type = "pagerduty"

    def send(self, notification) -> None:
        c = self.cfg
        http_post_json(c.url, event(notification, c.routing_key.get_secret_value(), source=c.source,
                                    client=c.client, client_url=c.client_url),
                       timeout=float(c.timeout))
