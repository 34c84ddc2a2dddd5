"""What a sink receives: one :class:`Notification` per group flush (or per Alertmanager push).

Sinks depend on this module alone: a notification carries everything a destination
needs (status, labels, annotations, the alerts with their values and RFC 3339 times, see
:func:`iso`), so that sinks never reach into the alerting engine that builds it.

Its fields are Alertmanager's webhook payload (``status``, ``groupLabels``,
``commonLabels``, ``commonAnnotations``, ``alerts``) so that the generic webhook sink
speaks a format that existing tools already read, and so that a notification can be
written to the dead-letter file and sent again later unchanged.

>>> n = Notification.build("slack", "route0/{model=\\"fraud\\"}", {"model": "fraud"}, [
...     {"status": "firing", "labels": {"alertname": "HighLatency", "model": "fraud", "severity": "warning"},
...      "annotations": {"summary": "slow"}, "startsAt": "2026-01-01T00:00:00.000Z",
...      "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": "ab", "value": 0.7}])
>>> n.status, n.common_labels["severity"], n.title()
('firing', 'warning', '[FIRING:1] HighLatency (fraud)')
>>> Notification.from_dict(n.to_dict()) == n
True
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Optional, Sequence

__all__ = ["Notification", "SEVERITY_ORDER", "DIRECT", "iso", "from_iso"]

SEVERITY_ORDER = {"critical": 0, "error": 1, "warning": 2, "info": 3}
DIRECT = "direct"
"""The ``group_key`` of notifications pushed to a direct sink (Alertmanager): their alerts
are independent of each other, not the state of one routed group."""


def iso(ts: Optional[float]) -> Optional[str]:
    """RFC 3339 UTC timestamp (what Alertmanager and PagerDuty expect).

    >>> iso(0)
    '1970-01-01T00:00:00.000Z'
    """
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def from_iso(text: str) -> float:
    """UTC epoch seconds of an RFC 3339 timestamp (the inverse of :func:`iso`).

    >>> from_iso(iso(90061.5))
    90061.5
    """
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _common(dicts: Sequence[Mapping[str, str]]) -> Dict[str, str]:
    if not dicts:
        return {}
    out = dict(dicts[0])
    for d in dicts[1:]:
        for k in list(out):
            if d.get(k) != out[k]:
                del out[k]
    return out


@dataclass
class Notification:
    receiver: str
    status: str
    group_key: str
    group_labels: Dict[str, str]
    common_labels: Dict[str, str]
    common_annotations: Dict[str, str]
    alerts: List[Dict[str, Any]]
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: float = field(default_factory=time.time)
    truncated_alerts: int = 0

    @classmethod
    def build(cls, receiver: str, group_key: str, group_labels: Mapping[str, str],
              alerts: Sequence[Dict[str, Any]], *, created_at: float | None = None) -> "Notification":
        firing = any(a["status"] == "firing" for a in alerts)
        # firing first, most severe first: what a reader should see first
        ordered = sorted(alerts, key=lambda a: (a["status"] != "firing",
                                                 SEVERITY_ORDER.get(a["labels"].get("severity", ""), 9),
                                                 a["labels"].get("alertname", ""), a.get("fingerprint", "")))
        return cls(
            receiver=receiver,
            status="firing" if firing else "resolved",
            group_key=group_key,
            group_labels=dict(group_labels),
            common_labels=_common([a["labels"] for a in ordered]),
            common_annotations=_common([a.get("annotations") or {} for a in ordered]),
            alerts=list(ordered),
            created_at=time.time() if created_at is None else created_at,
        )

    @property
    def firing(self) -> List[Dict[str, Any]]:
        return [a for a in self.alerts if a["status"] == "firing"]

    @property
    def resolved(self) -> List[Dict[str, Any]]:
        return [a for a in self.alerts if a["status"] == "resolved"]

    @property
    def severity(self) -> str:
        """The most severe severity among firing alerts (or among all when resolved)."""
        pool = self.firing or self.alerts
        sev = [a["labels"].get("severity", "") for a in pool]
        return min(sev, key=lambda s: SEVERITY_ORDER.get(s, 9)) if sev else ""

    @property
    def group_hash(self) -> str:
        """A stable short hash of the group key (PagerDuty's dedup_key, e-mail threads)."""
        return hashlib.sha256(self.group_key.encode()).hexdigest()[:32]

    def title(self) -> str:
        """``[FIRING:2] HighLatency (fraud)``: Alertmanager's default title."""
        n = len(self.firing) if self.status == "firing" else len(self.alerts)
        head = f"[{self.status.upper()}:{n}]"
        pool = self.firing if self.status == "firing" else self.alerts
        name = (self.group_labels.get("alertname") or self.common_labels.get("alertname")
                or ", ".join(sorted({a["labels"].get("alertname", "") for a in pool})))
        rest = [v for k, v in sorted(self.group_labels.items()) if k != "alertname"]
        return f"{head} {name}" + (f" ({' '.join(rest)})" if rest else "")

    def summary_lines(self, limit: int = 10) -> List[str]:
        """One line per alert, firing first (at most ``limit``, then a count)."""
        lines = []
        for a in self.alerts[:limit]:
            labels = a["labels"]
            ann = a.get("annotations") or {}
            text = ann.get("summary") or ann.get("description") or labels.get("alertname", "")
            scope = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in ("alertname", "severity"))
            lines.append(f"{a['status'].upper()} [{labels.get('severity', '')}] {text}" + (f" ({scope})" if scope else ""))
        more = len(self.alerts) - limit + self.truncated_alerts
        if more > 0:
            lines.append(f"... and {more} more")
        return lines

    def text(self) -> str:
        """A plain-text rendering (fallbacks, e-mail, logs)."""
        return "\n".join([self.title()] + self.summary_lines())

    def webhook_payload(self, external_url: str = "") -> Dict[str, Any]:
        """Alertmanager's webhook payload, version 4."""
        return {
            "version": "4",
            "groupKey": self.group_key,
            "truncatedAlerts": self.truncated_alerts,
            "status": self.status,
            "receiver": self.receiver,
            "groupLabels": dict(self.group_labels),
            "commonLabels": dict(self.common_labels),
            "commonAnnotations": dict(self.common_annotations),
            "externalURL": external_url,
            "alerts": [dict(a) for a in self.alerts],
        }

    def to_dict(self) -> Dict[str, Any]:
        return {
            "id": self.id,
            "created_at": self.created_at,
            "receiver": self.receiver,
            "status": self.status,
            "group_key": self.group_key,
            "group_labels": self.group_labels,
            "common_labels": self.common_labels,
            "common_annotations": self.common_annotations,
            "truncated_alerts": self.truncated_alerts,
            "alerts": self.alerts,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Notification":
        return cls(
            receiver=d["receiver"],
            status=d["status"],
            group_key=d["group_key"],
            group_labels=dict(d.get("group_labels") or {}),
            common_labels=dict(d.get("common_labels") or {}),
            common_annotations=dict(d.get("common_annotations") or {}),
            alerts=[dict(a) for a in d["alerts"]],
            id=d.get("id") or uuid.uuid4().hex,
            created_at=float(d.get("created_at") or time.time()),
            truncated_alerts=int(d.get("truncated_alerts") or 0),
        )
