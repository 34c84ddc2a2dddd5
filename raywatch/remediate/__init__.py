"""raywatch.remediate — closing the loop: alert → retrain → validate → shadow → canary →
promote or roll back, every decision in the audit trail.

The decision logic is here, Ray-free and doctested: trigger matching and guardrails
(:mod:`~raywatch.remediate.policy`), the validation gate (:mod:`~raywatch.remediate.gate`),
the state machine and the shadow/canary verdicts (:mod:`~raywatch.remediate.rollout`), what
the retrain function receives and returns (:mod:`~raywatch.remediate.context`) and the
notifications of decisions (:mod:`~raywatch.remediate.notify`). The execution on Ray and
Serve — the controller actor, the retrain task, the rollout router, Serve's declarative
config — is the shell, :mod:`raywatch.remediate.shell`.

Public names (imported lazily): :class:`RetrainContext`, :class:`Candidate`, :func:`compare`,
:func:`residual_drift`, :func:`advance`, :func:`triggers`, :func:`admit`, :func:`fold`.
"""

from __future__ import annotations

from raywatch._lazy import lazy_exports

_EXPORTS = {
    "RetrainContext": "raywatch.remediate.context:RetrainContext",
    "Candidate": "raywatch.remediate.context:Candidate",
    "compare": "raywatch.remediate.gate:compare",
    "residual_drift": "raywatch.remediate.gate:residual_drift",
    "advance": "raywatch.remediate.rollout:advance",
    "triggers": "raywatch.remediate.policy:triggers",
    "admit": "raywatch.remediate.policy:admit",
    "fold": "raywatch.remediate.policy:fold",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
