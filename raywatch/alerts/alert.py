"""The data model: a :class:`~raywatch.series.Series` sample in (the catalogue's sample
type, re-exported here), an :class:`Alert` per rule and label set.

An alert's identity is the fingerprint of its label set (name and value pairs, sorted),
as in Alertmanager: the same labels always give the same fingerprint, in any process.

>>> fingerprint({"alertname": "HighLatency", "model": "fraud"})
'728acb7a7154c6a7'
>>> fingerprint({"model": "fraud", "alertname": "HighLatency"}) == '728acb7a7154c6a7'
True
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional

from raywatch.series import Series
from raywatch.sinks.notification import iso

__all__ = ["Series", "Alert", "fingerprint", "PENDING", "FIRING", "RESOLVED"]

PENDING = "pending"
FIRING = "firing"
RESOLVED = "resolved"


def fingerprint(labels: Mapping[str, str]) -> str:
    """A stable 64-bit hex fingerprint of a label set (order does not matter)."""
    h = hashlib.blake2b(digest_size=8)
    for k in sorted(labels):
        h.update(k.encode())
        h.update(b"\xff")
        h.update(str(labels[k]).encode())
        h.update(b"\xff")
    return h.hexdigest()


@dataclass
class Alert:
    """One rule's alert for one label set.

    ``state`` is ``pending``, ``firing`` or ``resolved`` (an inactive alert is not kept).
    Timestamps are UTC epoch seconds: ``active_at`` when the condition first held,
    ``fired_at`` when it started firing, ``resolved_at`` when it stopped.
    """

    labels: Dict[str, str]
    annotations: Dict[str, str]
    state: str
    value: float
    active_at: float
    fingerprint: str = ""
    fired_at: Optional[float] = None
    resolved_at: Optional[float] = None
    last_true_at: float = 0.0
    rule: str = ""
    extra: Dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if not self.fingerprint:
            self.fingerprint = fingerprint(self.labels)

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "")

    @property
    def starts_at(self) -> float:
        return self.fired_at if self.fired_at is not None else self.active_at

    def to_dict(self) -> Dict[str, Any]:
        """JSON-able form (also what ``AlertEngine.alerts()`` returns)."""
        return {
            "fingerprint": self.fingerprint,
            "alertname": self.name,
            "state": self.state,
            "severity": self.severity,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "value": self.value,
            "active_at": self.active_at,
            "fired_at": self.fired_at,
            "resolved_at": self.resolved_at,
            "last_true_at": self.last_true_at,
            "rule": self.rule,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Alert":
        return cls(
            labels=dict(d["labels"]),
            annotations=dict(d.get("annotations") or {}),
            state=d["state"],
            value=float(d.get("value", 0.0)),
            active_at=float(d["active_at"]),
            fingerprint=d.get("fingerprint") or "",
            fired_at=d.get("fired_at"),
            resolved_at=d.get("resolved_at"),
            last_true_at=float(d.get("last_true_at") or d["active_at"]),
            rule=d.get("rule", ""),
        )

    def notification_entry(self, generator_url: str = "") -> Dict[str, Any]:
        """This alert as one entry of a notification (Alertmanager's webhook fields)."""
        resolved = self.state == RESOLVED
        return {
            "status": "resolved" if resolved else "firing",
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": iso(self.starts_at),
            "endsAt": iso(self.resolved_at) if resolved else "0001-01-01T00:00:00Z",
            "generatorURL": generator_url,
            "fingerprint": self.fingerprint,
            "value": self.value,
        }
