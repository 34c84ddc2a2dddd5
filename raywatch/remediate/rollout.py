"""The remediation state machine, and the shadow and canary verdicts.

One decision moves through these states; each step is an audit event (its ``kind``) and
:func:`advance` is the only way from one state to the next::

    triggered ─┬─ approval_required ─▶ awaiting_approval ─┬─ approved ─▶ approved ─┐
               │                                          ├─ rejected ─▶ rejected ▪ │
               │                                          └─ approval_expired ─▶ expired ▪
               ├─ skipped ─▶ skipped ▪                                               │
               └─ retrain_started ─▶ retraining ◀────────── retrain_started ─────────┘
    retraining ─┬─ candidate ─▶ validating ─┬─ validation_failed ─▶ not_deployed ▪
                ├─ retrain_failed ─▶ failed ▪ ├─ dry_run_done ─▶ dry_run ▪ (dry_run: nothing deployed)
                └─ skipped ─▶ skipped ▪       └─ shadow_started ─▶ shadow
    shadow ─┬─ canary_started ─▶ canary ─┬─ promoted ─▶ promoted ▪
            └─ rolled_back ─▶ rolled_back ▪ └─ rolled_back ─▶ rolled_back ▪

Any state that is not final also goes to ``failed`` on ``failed``; some steps only add
evidence and keep the state (``data_window``, ``validation_passed``, ``shadow_figures``,
``canary_figures``, ``promoting``). Final states are marked ▪.

>>> s = advance("triggered", "retrain_started"); s
'retraining'
>>> [s := advance(s, k) for k in ("candidate", "validation_passed", "shadow_started", "canary_started", "promoted")][-1]
'promoted'
>>> advance("promoted", "rolled_back")
Traceback (most recent call last):
...
ValueError: no step 'rolled_back' from state 'promoted' (final)

:func:`shadow_verdict` and :func:`canary_verdict` read the figures the router reports
(:class:`ArmFigures`) and say ``wait``, ``pass``/``promote`` or ``fail``/``rollback``;
:func:`realized_verdict` is the canary's guard on realized performance (labelled requests).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Optional, Sequence, Tuple

from raywatch.remediate.gate import LOWER_IS_BETTER, metric

__all__ = ["FINAL", "TRANSITIONS", "EVIDENCE_ONLY", "advance", "is_final", "ArmFigures", "Verdict",
           "shadow_verdict", "canary_verdict", "realized_verdict"]

FINAL = frozenset(("skipped", "rejected", "expired", "failed", "not_deployed", "dry_run", "promoted", "rolled_back"))

TRANSITIONS: Dict[Tuple[str, str], str] = {
    ("triggered", "approval_required"): "awaiting_approval",
    ("triggered", "skipped"): "skipped",
    ("triggered", "retrain_started"): "retraining",
    ("awaiting_approval", "approved"): "approved",
    ("awaiting_approval", "rejected"): "rejected",
    ("awaiting_approval", "approval_expired"): "expired",
    ("approved", "retrain_started"): "retraining",
    ("approved", "skipped"): "skipped",
    ("retraining", "candidate"): "validating",
    ("retraining", "retrain_failed"): "failed",
    ("retraining", "skipped"): "skipped",
    ("validating", "validation_failed"): "not_deployed",
    ("validating", "dry_run_done"): "dry_run",
    ("validating", "shadow_started"): "shadow",
    ("validating", "canary_started"): "canary",  # shadow disabled
    ("validating", "promoted"): "promoted",  # shadow and canary disabled
    ("shadow", "canary_started"): "canary",
    ("shadow", "promoted"): "promoted",  # canary disabled
    ("shadow", "rolled_back"): "rolled_back",
    ("canary", "promoted"): "promoted",
    ("canary", "rolled_back"): "rolled_back",
}

EVIDENCE_ONLY = frozenset(("data_window", "validation_passed", "shadow_figures", "canary_figures", "promoting",
                           "notified", "note"))


def is_final(state: str) -> bool:
    return state in FINAL


def advance(state: str, kind: str) -> str:
    """The state after step ``kind`` from ``state`` (ValueError for a step that cannot happen)."""
    if kind in EVIDENCE_ONLY and state not in FINAL:
        return state
    if kind == "failed" and state not in FINAL:
        return "failed"
    nxt = TRANSITIONS.get((state, kind))
    if nxt is None:
        raise ValueError(f"no step {kind!r} from state {state!r}" + (" (final)" if state in FINAL else ""))
    return nxt


@dataclass
class ArmFigures:
    """What one arm of the router (champion, canary or shadow) did: calls, failures,
    abandoned calls (timeouts), calls not made (``dropped``, the in-flight bound),
    agreement with the champion (shadow) and latency p95 in seconds."""

    requests: int = 0
    errors: int = 0
    timeouts: int = 0
    dropped: int = 0
    compared: int = 0
    agreed: int = 0
    p95: Optional[float] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def error_rate(self) -> float:
        return (self.errors + self.timeouts) / self.requests if self.requests else 0.0

    @property
    def agreement(self) -> Optional[float]:
        return self.agreed / self.compared if self.compared else None

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["failure_share"] = self.error_rate
        d["agreement"] = self.agreement
        return d

    @classmethod
    def from_dict(cls, d: Optional[Dict[str, Any]]) -> "ArmFigures":
        d = dict(d or {})
        names = ("requests", "errors", "timeouts", "dropped", "compared", "agreed", "p95", "extra")
        return cls(**{k: d[k] for k in names if k in d})


@dataclass
class Verdict:
    action: str  # "wait", "pass", "fail" (shadow); "wait", "promote", "rollback" (canary)
    reason: str


def shadow_verdict(cfg: Any, fig: ArmFigures, elapsed: float) -> Verdict:
    """The shadow phase (``cfg``: :class:`~raywatch.config.remediate.ShadowConfig`).

    >>> from raywatch.config.remediate import ShadowConfig
    >>> cfg = ShadowConfig(duration=60, min_requests=100, min_agreement=0.8)
    >>> shadow_verdict(cfg, ArmFigures(requests=50, compared=50, agreed=50), 70).action
    'wait'
    >>> shadow_verdict(cfg, ArmFigures(requests=200, compared=200, agreed=190), 70)
    Verdict(action='pass', reason='200 mirrored requests in 70s: agreement 95%, failures 0%')
    >>> shadow_verdict(cfg, ArmFigures(requests=40, errors=20), 10).reason
    'the shadow failed 20 of 40 mirrored requests (50%; at most 5%)'
    """
    n = fig.requests
    if n >= 20 and fig.error_rate > cfg.max_error_rate:
        return Verdict("fail", f"the shadow failed {fig.errors + fig.timeouts} of {n} mirrored requests "
                               f"({fig.error_rate:.0%}; at most {cfg.max_error_rate:.0%})")
    if elapsed < cfg.duration or n < cfg.min_requests:
        if elapsed >= 4 * cfg.duration:
            return Verdict("fail", f"only {n} mirrored requests in {elapsed:.0f}s (at least {cfg.min_requests} needed)")
        return Verdict("wait", f"{n} mirrored requests in {elapsed:.0f}s")
    if fig.error_rate > cfg.max_error_rate:
        return Verdict("fail", f"the shadow failed {fig.errors + fig.timeouts} of {n} mirrored requests "
                               f"({fig.error_rate:.0%}; at most {cfg.max_error_rate:.0%})")
    agreement = fig.agreement
    if cfg.min_agreement > 0 and (agreement is None or agreement < cfg.min_agreement):
        shown = "none compared" if agreement is None else f"{agreement:.0%}"
        return Verdict("fail", f"agreement with the champion {shown} (at least {cfg.min_agreement:.0%})")
    shown = "n/a" if agreement is None else f"{agreement:.0%}"
    return Verdict("pass", f"{n} mirrored requests in {elapsed:.0f}s: agreement {shown}, failures {fig.error_rate:.0%}")


def canary_verdict(cfg: Any, cand: ArmFigures, champ: ArmFigures, elapsed: float) -> Verdict:
    """The canary phase (``cfg``: :class:`~raywatch.config.remediate.CanaryConfig`): a guard
    breach rolls back at once; holding the guards for ``duration`` (and ``min_requests``)
    promotes.

    >>> from raywatch.config.remediate import CanaryConfig
    >>> cfg = CanaryConfig(duration=60, min_requests=50)
    >>> canary_verdict(cfg, ArmFigures(requests=30, errors=6), ArmFigures(requests=300), 5).action
    'rollback'
    >>> canary_verdict(cfg, ArmFigures(requests=60, p95=0.02), ArmFigures(requests=600, p95=0.01), 61)
    Verdict(action='promote', reason='60 requests in 61s within the guards (errors 0%, p95 20ms vs 10ms)')
    >>> canary_verdict(cfg, ArmFigures(requests=60, p95=0.2), ArmFigures(requests=600, p95=0.01), 30).reason
    'latency p95 200ms is 20.0× the champion (10ms; at most 3×)'
    """
    g = cfg.guards
    n = cand.requests
    fails = cand.errors + cand.timeouts
    if (n >= 10 or fails >= 5) and cand.error_rate > g.max_error_rate:
        return Verdict("rollback", f"the candidate failed {fails} of {n} requests "
                                   f"({cand.error_rate:.0%}; at most {g.max_error_rate:.0%})")
    if n >= g.min_requests_for_latency and cand.p95 is not None:
        if g.max_latency_p95 is not None and cand.p95 > g.max_latency_p95:
            return Verdict("rollback", f"latency p95 {cand.p95 * 1000:.0f}ms (at most {g.max_latency_p95 * 1000:.0f}ms)")
        if (g.max_latency_p95_ratio is not None and champ.p95 and champ.requests >= g.min_requests_for_latency
                and cand.p95 / champ.p95 > g.max_latency_p95_ratio):
            return Verdict("rollback", f"latency p95 {cand.p95 * 1000:.0f}ms is {cand.p95 / champ.p95:.1f}× the champion "
                                       f"({champ.p95 * 1000:.0f}ms; at most {g.max_latency_p95_ratio:g}×)")
    if elapsed < cfg.duration or n < cfg.min_requests:
        return Verdict("wait", f"{n} requests in {elapsed:.0f}s")
    p = (f", p95 {cand.p95 * 1000:.0f}ms vs {champ.p95 * 1000:.0f}ms" if cand.p95 is not None and champ.p95 else "")
    return Verdict("promote", f"{n} requests in {elapsed:.0f}s within the guards (errors {cand.error_rate:.0%}{p})")


def realized_verdict(guards: Any, metric_name: str, cand_y: Sequence[Any], cand_pred: Sequence[Any],
                     champ_y: Sequence[Any], champ_pred: Sequence[Any]) -> Tuple[Optional[Verdict], Dict[str, Any]]:
    """The canary's guard on realized performance (``guards``:
    :class:`~raywatch.config.remediate.CanaryGuardsConfig`): ``metric_name`` on the labelled
    requests each arm answered (labels and predictions, or scores for ``roc_auc``/``log_loss``).
    Returns ``(rollback verdict or None, figures)``; None also while either arm has fewer
    than ``min_labelled_for_realized`` labelled requests, or with the guard off.

    >>> from raywatch.config.remediate import CanaryGuardsConfig
    >>> g = CanaryGuardsConfig(max_realized_drop=0.05, min_labelled_for_realized=4)
    >>> v, figs = realized_verdict(g, "accuracy", [1, 0, 1, 0], [0, 1, 1, 0], [1, 0, 1, 0, 1], [1, 0, 1, 0, 1])
    >>> v.reason, figs["candidate"], figs["champion"]
    ('realized accuracy 0.500 on 4 labelled requests is 0.500 below the champion (1.000 on 5; at most 0.05 below)', 0.5, 1.0)
    >>> realized_verdict(g, "accuracy", [1], [1], [1], [1])[0] is None
    True
    """
    n_c, n_h = len(cand_y), len(champ_y)
    figs: Dict[str, Any] = {"metric": metric_name, "candidate_rows": n_c, "champion_rows": n_h, "candidate": None,
                            "champion": None, "drop": None}
    if n_c:
        figs["candidate"] = metric(metric_name, cand_y, cand_pred)
    if n_h:
        figs["champion"] = metric(metric_name, champ_y, champ_pred)
    need = guards.min_labelled_for_realized
    if guards.max_realized_drop is None or n_c < need or n_h < need:
        return None, figs
    c, h = figs["candidate"], figs["champion"]
    if c != c or h != h:  # nan: the metric is undefined on these rows (one class only)
        return None, figs
    drop = (c - h) if metric_name in LOWER_IS_BETTER else (h - c)
    figs["drop"] = drop
    if drop > guards.max_realized_drop:
        return Verdict("rollback", f"realized {metric_name} {c:.3f} on {n_c} labelled requests is {drop:.3f} "
                                   f"{'above' if metric_name in LOWER_IS_BETTER else 'below'} the champion "
                                   f"({h:.3f} on {n_h}; at most {guards.max_realized_drop:g} "
                                   f"{'above' if metric_name in LOWER_IS_BETTER else 'below'})"), figs
    return None, figs
