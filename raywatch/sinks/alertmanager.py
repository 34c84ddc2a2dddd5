"""Alertmanager: alerts pushed to its v2 API (``POST /api/v2/alerts``).

Alertmanager groups, inhibits, silences and routes on its own, so this sink is *direct*:
the engine gives it every alert that starts firing or resolves, and re-sends firing
alerts every ``resend_delay`` (as Prometheus does). A firing alert carries
``endsAt = now + 4 × resend_delay``, so Alertmanager resolves it by itself if raywatch stops
sending; a resolved alert carries the time it resolved.

>>> from raywatch.sinks.notification import Notification
>>> n = Notification.build("am", "direct", {}, [
...     {"status": "firing", "labels": {"alertname": "Down", "severity": "critical"}, "annotations": {},
...      "startsAt": "2026-01-01T00:00:00.000Z", "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "f"}],
...     created_at=1767225600.0)
>>> postable_alerts(n, resend_delay=60)[0]["endsAt"]
'2026-01-01T00:04:00.000Z'
"""

from __future__ import annotations

from typing import Any, Dict, List

from raywatch.sinks.notification import iso
from raywatch.sinks.base import Sink, http_post_json

__all__ = ["AlertmanagerSink", "postable_alerts"]


def postable_alerts(n: Any, *, resend_delay: float, generator_url: str = "") -> List[Dict[str, Any]]:
    out = []
    for a in n.alerts:
        item: Dict[str, Any] = {
            "labels": {k: str(v) for k, v in a["labels"].items()},
            "annotations": {k: str(v) for k, v in (a.get("annotations") or {}).items()},
            "startsAt": a.get("startsAt") or iso(n.created_at),
        }
        if a["status"] == "firing":
            item["endsAt"] = iso(n.created_at + 4 * resend_delay)
        else:
            item["endsAt"] = a.get("endsAt") or iso(n.created_at)
        url = a.get("generatorURL") or generator_url
        if url:
            item["generatorURL"] = url
        out.append(item)
    return out


class AlertmanagerSink(Sink):
    type = "alertmanager"
    direct = True

    def send(self, notification) -> None:
        c = self.cfg
        headers = {}
        if c.bearer_token is not None:
            headers["Authorization"] = "Bearer " + c.bearer_token.get_secret_value()
        body = postable_alerts(notification, resend_delay=float(c.resend_delay), generator_url=c.generator_url or "")
        http_post_json(c.url.rstrip("/") + "/api/v2/alerts", body, timeout=float(c.timeout), headers=headers)
