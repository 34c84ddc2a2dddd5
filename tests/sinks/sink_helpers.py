"""Small builders shared by the sink tests."""

from __future__ import annotations

from typing import Any, Dict, List

from raywatch.sinks.notification import Notification
from raywatch.config import RetryConfig

LABELS = {"app": "shop", "deployment": "Fraud", "model": "fraud", "version": "v3"}


def alert(name: str = "HighLatency", status: str = "firing", severity: str = "warning", fp: str = "f1",
          **labels: str) -> Dict[str, Any]:
    lab = dict(LABELS, alertname=name, severity=severity, **labels)
    return {
        "status": status,
        "labels": lab,
        "annotations": {"summary": f"{name} on fraud", "description": "p95 above 0.5 s"},
        "startsAt": "2026-01-01T00:00:00.000Z",
        "endsAt": "2026-01-01T00:05:00.000Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": fp,
        "value": 0.81,
    }


def notification(*alerts: Dict[str, Any], receiver: str = "sink", group: str = '{}:{alertname="HighLatency"}') -> Notification:
    alerts_list: List[Dict[str, Any]] = list(alerts) or [alert()]
    return Notification.build(receiver, group, {"alertname": alerts_list[0]["labels"]["alertname"]}, alerts_list,
                              created_at=1767225600.0)


FAST_RETRY = RetryConfig(max_attempts=4, initial_backoff=0.01, max_backoff=0.05, max_retry_after=5)
