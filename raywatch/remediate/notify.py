"""Decisions told to the sinks: one :class:`~raywatch.sinks.notification.Notification` per
audit event worth telling (a trigger, a pending approval, a failure, a validation verdict,
a promotion, a rollback, a skipped trigger).

The notification is shaped like an alert's (``alertname="RaywatchRemediation"``, with the
model, the decision id and the step as labels, the summary as annotation), so every sink
renders it without knowing about remediation. Severity: ``critical`` for a failure or a
rollback, ``warning`` for a candidate that did not pass or a decision waiting for approval,
``info`` otherwise.

>>> from raywatch.aggregate.audit import AuditEvent
>>> e = AuditEvent.new("app/fraud", "d1", "rolled_back", state="rolled_back", ts=0.0,
...                    summary="canary: the candidate failed 6 of 30 requests")
>>> n = notification(e)
>>> n.title(), n.severity, n.common_labels["step"]
('[FIRING:1] RaywatchRemediation (fraud)', 'critical', 'rolled_back')
>>> tells(e), tells(AuditEvent.new("app/fraud", "d1", "shadow_figures", ts=0.0))
(True, False)
"""

from __future__ import annotations

from typing import Any

from raywatch.sinks.notification import Notification, iso

__all__ = ["notification", "tells", "ALERTNAME", "TOLD"]

ALERTNAME = "RaywatchRemediation"
TOLD = frozenset(("triggered", "skipped", "approval_required", "approved", "rejected", "approval_expired",
                  "retrain_failed", "candidate", "validation_failed", "validation_passed", "dry_run_done",
                  "shadow_started", "canary_started", "promoted", "rolled_back", "failed"))
_CRITICAL = frozenset(("failed", "retrain_failed", "rolled_back"))
_WARNING = frozenset(("validation_failed", "approval_required", "approval_expired", "rejected"))


def tells(event: Any) -> bool:
    """Whether an audit event is told to the sinks (figures along the way are not)."""
    return event.kind in TOLD


def notification(event: Any, receiver: str = "remediation") -> Notification:
    sev = "critical" if event.kind in _CRITICAL else "warning" if event.kind in _WARNING else "info"
    app, _, deployment = event.model.partition("/")
    labels = {"alertname": ALERTNAME, "app": app, "deployment": deployment, "model": deployment or app,
              "decision": event.decision, "step": event.kind, "state": event.state, "severity": sev}
    alert = {"status": "firing", "labels": labels,
             "annotations": {"summary": event.summary or event.kind, "by": event.by},
             "startsAt": iso(event.ts), "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "",
             "fingerprint": event.id[:16], "value": None}
    return Notification.build(receiver, f"remediation/{event.model}/{event.decision}",
                              {"alertname": ALERTNAME, "model": labels["model"]}, [alert], created_at=event.ts)
