"""The canary's guard on estimated performance (CBPE), so that a worse canary can be rolled
back before its labels arrive.

Each arm is estimated from its own answers since the canary started (the payload log's
``score`` and ``prediction`` of the requests it answered), with its *own* calibration: the
champion's from the model's reference profile, the candidate's from the profile its retrain
returned (``Candidate.profile``, fitted with ``performance={...}``). A score means different
things for two models, so the champion's calibration is never used for the candidate: without
a CBPE estimator in the candidate's profile there is no estimate and no verdict from this
guard (said in the figures). The payload log keeps one score per request, so only binary
estimators (one score column) apply.

:func:`estimated_verdict` rolls back when the candidate's estimate of ``metric`` is more than
``max_estimated_drop`` worse than the champion's *and* the drop exceeds ``sigmas`` times the
two estimates' combined sampling error (a drop their noise explains is no evidence); before
each arm has ``min_rows_for_estimated`` estimated rows, or with an estimate missing, it gives
no verdict. Like every CBPE figure it assumes no concept drift; the realized guard
(``max_realized_drop``) is the check once labels come.

>>> import numpy as np
>>> from raywatch.config.remediate import CanaryGuardsConfig
>>> from raywatch.stats.confidence import ConfidenceEstimator
>>> rng = np.random.default_rng(0)
>>> s = rng.random(20_000)
>>> est = ConfidenceEstimator.fit((rng.random(20_000) < s).astype(int), s)   # calibrated scores
>>> sure, unsure = rng.choice([0.02, 0.98], 400), rng.uniform(0.4, 0.6, 400)
>>> g = CanaryGuardsConfig(max_estimated_drop=0.05, min_rows_for_estimated=100)
>>> v, figs = estimated_verdict(g, "accuracy", estimate_arm(est, unsure), estimate_arm(est, sure))
>>> v.action, round(figs["candidate"], 2), round(figs["champion"], 2)
('rollback', 0.56, 0.98)
>>> estimated_verdict(g, "accuracy", None, estimate_arm(est, sure), why={"candidate": "no estimator"})[0] is None
True
"""

from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from raywatch.drift.estimation import PerformanceEstimate, estimate_performance
from raywatch.remediate.rollout import Verdict
from raywatch.stats.sections import Batch

__all__ = ["estimator_of", "estimate_arm", "estimated_verdict"]


def estimator_of(profile: Any) -> Tuple[Any, Optional[str]]:
    """``(estimator, None)`` from a profile (a ``Profile`` or its bytes) with a binary CBPE
    extension, else ``(None, why)``."""
    if profile is None:
        return None, "no profile"
    if isinstance(profile, (bytes, bytearray, memoryview)):
        from raywatch.stats.profile import Profile

        profile = Profile.from_bytes(bytes(profile))
    est = (getattr(profile, "extensions", None) or {}).get("performance")
    if est is None or getattr(est, "kind", None) != "cbpe":
        return None, "its profile has no performance estimator (CBPE: Profile.fit(..., performance={...}))"
    if not est.binary:
        return None, "a multiclass estimator needs a score per class; the payload log keeps one score a request"
    return est, None


def estimate_arm(est: Any, scores: Sequence[Any], predictions: Optional[Sequence[Any]] = None,
                 sigmas: float = 3.0) -> PerformanceEstimate:
    """The CBPE estimate of one arm's answers: its ``scores`` (None or NaN: skipped) and,
    when the estimator reads a prediction column, its ``predictions``."""
    s = np.array([np.nan if v is None else v for v in scores], dtype=np.float64)
    cols: Dict[str, Any] = {est.scores[0]: s}
    if est.prediction and predictions is not None:
        cols[est.prediction] = np.asarray(predictions, dtype=object)
    return estimate_performance(est, est.summarize(Batch(cols, s.shape[0])), sigmas=sigmas)


def _num(v: Any) -> Optional[float]:
    return float(v) if v is not None and math.isfinite(v) else None


def estimated_verdict(guards: Any, metric_name: str, cand: Optional[PerformanceEstimate],
                      champ: Optional[PerformanceEstimate], *, sigmas: float = 3.0,
                      why: Optional[Mapping[str, str]] = None) -> Tuple[Optional[Verdict], Dict[str, Any]]:
    """The guard (``guards``: :class:`~raywatch.config.remediate.CanaryGuardsConfig`) on
    the two arms' estimates of ``metric_name`` (None: no estimate, ``why`` says why per arm).
    Returns ``(rollback verdict or None, figures)`` — see the module docstring."""
    figs: Dict[str, Any] = {"metric": metric_name, "method": "cbpe", "sigmas": sigmas, "drop": None, "band": None}
    for arm, e in (("candidate", cand), ("champion", champ)):
        m = None if e is None else e.metrics.get(metric_name)
        figs[f"{arm}_rows"] = 0 if e is None else int(e.rows)
        figs[arm] = None if m is None else _num(m.value)
        figs[f"{arm}_sampling_error"] = None if m is None else _num(m.sampling_error)
        if e is not None and not e.calibration_ok:
            figs[f"{arm}_warnings"] = list(e.warnings)
    if why:
        figs["no_estimate"] = dict(why)
    need = guards.min_rows_for_estimated
    c, h = figs["candidate"], figs["champion"]
    if guards.max_estimated_drop is None or c is None or h is None:
        return None, figs
    drop = h - c  # every CBPE metric: higher is better
    se_c, se_h = figs["candidate_sampling_error"], figs["champion_sampling_error"]
    band = sigmas * math.sqrt(se_c * se_c + se_h * se_h) if se_c is not None and se_h is not None else None
    figs["drop"], figs["band"] = drop, band
    if figs["candidate_rows"] < need or figs["champion_rows"] < need or band is None:
        return None, figs
    if drop > guards.max_estimated_drop and drop > band:
        return Verdict("rollback", f"estimated {metric_name} {c:.3f} on {figs['candidate_rows']} requests is {drop:.3f} "
                                   f"below the champion ({h:.3f} on {figs['champion_rows']}; at most "
                                   f"{guards.max_estimated_drop:g} below, noise ±{band:.3f}; no labels yet)"), figs
    return None, figs
