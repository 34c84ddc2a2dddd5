"""Generic JSON webhook: POSTs Alertmanager's webhook payload (version 4).

Any tool that reads Alertmanager webhooks reads raywatch's. The URL and header values are
secrets (URLs often carry tokens). 2xx is success; see :mod:`raywatch.sinks.base` for how
other answers are retried.
"""

from __future__ import annotations

from raywatch.sinks.base import Sink, http_post_json

__all__ = ["WebhookSink", "payload"]


def payload(notification, max_alerts: int = 0) -> dict:
    """The JSON body: Alertmanager's webhook format, truncated to ``max_alerts`` (0 = all).

    >>> from raywatch.sinks.notification import Notification
    >>> n = Notification.build("hook", "g", {"model": "m"}, [
    ...     {"status": "firing", "labels": {"alertname": "A", "model": "m"}, "annotations": {}, "fingerprint": str(i)}
    ...     for i in range(3)])
    >>> p = payload(n, max_alerts=2)
    >>> p["version"], len(p["alerts"]), p["truncatedAlerts"], p["status"]
    ('4', 2, 1, 'firing')
    """
    body = notification.webhook_payload()
    if max_alerts and len(body["alerts"]) > max_alerts:
        body["truncatedAlerts"] = body.get("truncatedAlerts", 0) + len(body["alerts"]) - max_alerts
        body["alerts"] = body["alerts"][:max_alerts]
    return body


class WebhookSink(Sink):
    type = "webhook"

    def send(self, notification) -> None:
        headers = {k: v.get_secret_value() for k, v in self.cfg.headers.items()}
        http_post_json(self.cfg.url.get_secret_value(), payload(notification, self.cfg.max_alerts),
                       timeout=float(self.cfg.timeout), headers=headers)
