"""The compliance record of a model: what was monitored, which alerts fired, every
remediation decision with its evidence, and who approved what — one JSON document
(``raywatch.audit-record``, version 1) that ``raywatch audit`` writes and renders as HTML
(:mod:`raywatch.report.audit`).

>>> from raywatch.aggregate.audit import AuditEvent
>>> ev = [AuditEvent.new("a/fraud", "d1", "triggered", state="triggered", ts=10.0, evidence={"alert": {"labels": {"alertname": "FeatureDrift"}}}),
...       AuditEvent.new("a/fraud", "d1", "approval_required", state="awaiting_approval", ts=11.0),
...       AuditEvent.new("a/fraud", "d1", "approved", state="approved", ts=12.0, by="ann", evidence={"comment": "ok"})]
>>> r = compliance_record("a/fraud", ev, since=0.0, now=20.0)
>>> r["format"], r["decisions"][0]["state"], r["approvals"], r["alerts"][0]["alertname"]
('raywatch.audit-record', 'approved', [{'decision': 'd1', 'by': 'ann', 'ts': 12.0, 'answer': 'approved', 'comment': 'ok'}], 'FeatureDrift')
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, Optional

from raywatch.remediate.policy import fold

__all__ = ["compliance_record", "RECORD_FORMAT", "RECORD_VERSION"]

RECORD_FORMAT = "raywatch.audit-record"
RECORD_VERSION = 1


def compliance_record(model: str, events: Iterable[Any], *, since: Optional[float], now: float,
                      monitoring: Optional[Mapping[str, Any]] = None,
                      alerts: Optional[List[Mapping[str, Any]]] = None) -> Dict[str, Any]:
    """The record of ``model`` from its audit events (oldest first). ``monitoring``: what
    was monitored (the model's configuration as data, secrets as references); ``alerts``:
    the alert transitions of the stats actor's history (without it, the alerts that
    triggered decisions)."""
    events = [e for e in events if e.model == model]
    decisions = fold(events)
    by_decision: Dict[str, List[Dict[str, Any]]] = {}
    for e in events:
        by_decision.setdefault(e.decision, []).append(e.to_data())
    approvals = [{"decision": e.decision, "by": e.by, "ts": e.ts, "answer": e.kind,
                  "comment": (e.evidence or {}).get("comment", "")}
                 for e in events if e.kind in ("approved", "rejected")]
    if alerts is None:
        alerts = [{"ts": e.ts, "state": "firing", **{k: v for k, v in ((e.evidence or {}).get("alert") or {}).get("labels", {}).items()
                                                      if k in ("alertname", "severity")},
                   "labels": ((e.evidence or {}).get("alert") or {}).get("labels", {}), "source": "audit trail"}
                  for e in events if e.kind == "triggered"]
    return {
        "format": RECORD_FORMAT, "version": RECORD_VERSION, "model": model, "since": since, "generated_at": now,
        "monitoring": dict(monitoring or {}), "alerts": [dict(a) for a in alerts],
        "decisions": [{**d.to_dict(), "events": by_decision.get(d.id, [])} for d in decisions.values()],
        "approvals": approvals,
        "summary": _summary(decisions.values()),
    }


def _summary(decisions: Iterable[Any]) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for d in decisions:
        out[d.state] = out.get(d.state, 0) + 1
    return out
