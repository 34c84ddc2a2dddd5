"""Remediation policy: which alerts trigger, and the guardrails that may hold a trigger back.

The state of every decision is folded from the audit trail (:func:`fold`), never kept
apart from it: a restarted controller reads the trail and knows which decisions are open,
when the model was last retrained and how often today — so the guardrails hold across
restarts.

>>> from raywatch.config.remediate import GuardrailsConfig, TriggerConfig
>>> trig = TriggerConfig(alerts=["FeatureDrift", "Accuracy*"], matchers=['severity=~"warning|critical"'])
>>> triggers(trig, {"alertname": "AccuracyDrop", "severity": "critical", "model": "fraud"})
True
>>> triggers(trig, {"alertname": "HighLatency", "severity": "critical"})
False
>>> from raywatch.aggregate.audit import AuditEvent
>>> ev = [AuditEvent.new("a/m", "d1", "triggered", state="triggered", ts=0.0),
...       AuditEvent.new("a/m", "d1", "retrain_started", state="retraining", ts=10.0),
...       AuditEvent.new("a/m", "d1", "retrain_failed", state="failed", ts=20.0)]
>>> admit(GuardrailsConfig(min_interval="1h"), fold(ev).values(), now=1000.0)
Admission(allowed=False, reason='min_interval', detail='last retrain started 990s ago; the minimum interval is 3600s')
>>> admit(GuardrailsConfig(min_interval="1h"), fold(ev).values(), now=5000.0).allowed
True
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional

from raywatch.expr.matchers import matches_all, parse_matchers
from raywatch.remediate.rollout import is_final

__all__ = ["triggers", "firing_alerts", "Decision", "fold", "Admission", "admit", "DAY"]

DAY = 86400.0


def triggers(cfg: Any, labels: Mapping[str, str]) -> bool:
    """Whether a firing alert with ``labels`` starts remediation under ``cfg``
    (:class:`~raywatch.config.remediate.TriggerConfig`)."""
    name = str(labels.get("alertname", ""))
    if not any(fnmatch.fnmatchcase(name, pat) for pat in cfg.alerts):
        return False
    return matches_all(parse_matchers(cfg.matchers), labels) if cfg.matchers else True


def firing_alerts(notification: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """The firing alerts of a notification (:meth:`raywatch.sinks.notification.Notification.to_dict`,
    or Alertmanager's webhook payload)."""
    return [dict(a) for a in notification.get("alerts") or [] if a.get("status") == "firing"]


@dataclass
class Decision:
    """One remediation decision as the audit trail tells it."""

    id: str
    model: str
    state: str = "triggered"
    started: float = 0.0
    updated: float = 0.0
    trigger: Dict[str, Any] = field(default_factory=dict)
    retrain_started: Optional[float] = None
    dry_run: bool = False
    require_approval: bool = False
    candidate: Dict[str, Any] = field(default_factory=dict)
    approvals: List[Dict[str, Any]] = field(default_factory=list)
    steps: List[str] = field(default_factory=list)

    @property
    def final(self) -> bool:
        return is_final(self.state)

    def to_dict(self) -> Dict[str, Any]:
        return {"id": self.id, "model": self.model, "state": self.state, "started": self.started,
                "updated": self.updated, "trigger": self.trigger, "retrain_started": self.retrain_started,
                "dry_run": self.dry_run, "require_approval": self.require_approval, "candidate": self.candidate,
                "approvals": self.approvals, "steps": self.steps}


def fold(events: Iterable[Any]) -> Dict[str, Decision]:
    """Decisions by id from audit events (oldest first)."""
    out: Dict[str, Decision] = {}
    for e in events:
        d = out.get(e.decision)
        if d is None:
            d = out[e.decision] = Decision(e.decision, e.model, started=e.ts)
        d.updated = e.ts
        if e.state:
            d.state = e.state
        d.steps.append(e.kind)
        ev = e.evidence or {}
        if e.kind == "triggered":
            d.trigger = dict(ev.get("alert") or {})
            d.dry_run = bool(ev.get("dry_run"))
            d.require_approval = bool(ev.get("require_approval"))
        elif e.kind == "retrain_started":
            d.retrain_started = e.ts
        elif e.kind == "candidate":
            d.candidate = {k: ev.get(k) for k in ("artifact", "version")}
        elif e.kind in ("approved", "rejected"):
            d.approvals.append({"by": e.by, "ts": e.ts, "decision": e.kind, "comment": ev.get("comment", "")})
    return out


class Admission(NamedTuple):
    allowed: bool
    reason: str = ""
    detail: str = ""


def admit(cfg: Any, decisions: Iterable[Decision], now: float) -> Admission:
    """Whether a new trigger of a model may start a decision, given the model's decisions
    so far (``cfg``: :class:`~raywatch.config.remediate.GuardrailsConfig`): one decision at a
    time, ``min_interval`` since the last retrain started, ``max_per_day`` retrains in any
    24 hours."""
    decisions = list(decisions)
    open_ = [d for d in decisions if not d.final]
    if open_:
        d = open_[0]
        return Admission(False, "in_progress", f"decision {d.id} is {d.state}")
    starts = sorted(d.retrain_started for d in decisions if d.retrain_started is not None)
    if starts and now - starts[-1] < cfg.min_interval:
        return Admission(False, "min_interval", f"last retrain started {now - starts[-1]:.0f}s ago; "
                                                f"the minimum interval is {cfg.min_interval:.0f}s")
    today = [t for t in starts if now - t < DAY]
    if len(today) >= cfg.max_per_day:
        return Admission(False, "max_per_day", f"{len(today)} retrains in the last 24 hours (at most {cfg.max_per_day})")
    return Admission(True)
