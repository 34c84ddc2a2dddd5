"""The validation gate: a candidate against the champion, before it meets any traffic.

Two checks, both required:

1. **Better on data it did not train on.** Both models are scored with the configured
   metric on the held-back slice of recent labelled rows (the newest share of the data
   window; the retrain function never saw it). The improvement (candidate − champion, or
   champion − candidate for ``log_loss``, ``mae``, ``rmse``) must reach ``min_improvement``,
   and the paired bootstrap interval of the improvement (rows resampled with replacement,
   the same rows for both models) must exclude zero: a lucky slice does not promote a model.
2. **No residual drift.** Recent production is tested against the candidate's training
   profile (:func:`raywatch.drift.detect.detect_drift`): the share of drifted features must
   be at most ``max_residual_drift_share`` — a candidate trained on data that no longer
   looks like production is not a fix.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> y = rng.integers(0, 2, 2000)
>>> champion = np.where(rng.random(2000) < 0.70, y, 1 - y)    # right 70% of the time
>>> candidate = np.where(rng.random(2000) < 0.85, y, 1 - y)   # right 85% of the time
>>> r = compare("accuracy", y, champion, candidate, min_improvement=0.05)
>>> r.passed, r.champion < 0.75 < 0.8 < r.candidate, r.low > 0
(True, True, True)
>>> compare("accuracy", y, champion, champion, min_improvement=0.0).reason
'improvement 0 is not above zero with 95% confidence (interval [0, 0])'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from raywatch import series

__all__ = ["GateResult", "DriftCheck", "compare", "metric", "residual_drift", "LOWER_IS_BETTER", "SCORED", "METRICS"]

LOWER_IS_BETTER = frozenset(("log_loss", series.MAE.name, series.RMSE.name))
SCORED = frozenset((series.ROC_AUC.name, "log_loss"))
"""Metrics computed on scores (the others on predictions)."""
_POSITIVE = frozenset((series.F1.name,)) | SCORED


def _accuracy(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(y == p))


def _f1(y: np.ndarray, p: np.ndarray, positive: Any = 1.0) -> float:
    tp = float(np.sum((p == positive) & (y == positive)))
    fp = float(np.sum((p == positive) & (y != positive)))
    fn = float(np.sum((p != positive) & (y == positive)))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def _roc_auc(y: np.ndarray, s: np.ndarray, positive: Any = 1.0) -> float:
    pos = y == positive
    n_pos = int(pos.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    # average ranks of ties
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _log_loss(y: np.ndarray, s: np.ndarray, positive: Any = 1.0) -> float:
    s = np.clip(s.astype(np.float64), 1e-15, 1 - 1e-15)
    t = (y == positive).astype(np.float64)
    return float(-np.mean(t * np.log(s) + (1 - t) * np.log(1 - s)))


def _mae(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(np.abs(y.astype(np.float64) - p.astype(np.float64))))


def _rmse(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y.astype(np.float64) - p.astype(np.float64)) ** 2)))


METRICS: Dict[str, Callable[..., float]] = {
    series.ACCURACY.name: _accuracy, series.F1.name: _f1, series.ROC_AUC.name: _roc_auc, "log_loss": _log_loss,
    series.MAE.name: _mae, series.RMSE.name: _rmse,
}


def metric(name: str, y: Any, pred: Any, positive: Any = 1.0) -> float:
    """One metric on arrays of labels and predictions (scores for ``roc_auc``/``log_loss``).

    >>> metric("roc_auc", [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]), metric("mae", [1.0, 2.0], [1.5, 2.5])
    (0.75, 0.5)
    """
    fn = METRICS[name]
    y, pred = _coerce(y), _coerce(pred)
    if name in _POSITIVE:
        return fn(y, pred, _coerce([positive])[0])
    return fn(y, pred)


def _coerce(values: Any) -> np.ndarray:
    """Labels and predictions as comparable arrays: booleans and numbers as float64."""
    arr = np.asarray(values)
    if arr.dtype.kind in "biuf":
        return arr.astype(np.float64)
    if arr.dtype.kind == "O":
        try:
            return arr.astype(np.float64)
        except (TypeError, ValueError):
            return arr.astype(str)
    return arr


@dataclass
class GateResult:
    """What the comparison found; ``improvement`` is oriented so that larger is better."""

    passed: bool
    metric: str
    rows: int
    champion: float
    candidate: float
    improvement: float
    low: float
    high: float
    confidence: float
    min_improvement: float
    reason: str

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def _fmt(x: float) -> str:
    return f"{x:.4g}" if x == x else "nan"


def compare(name: str, y: Any, champion: Any, candidate: Any, *, min_improvement: float = 0.0,
            confidence: float = 0.95, n_boot: int = 1000, seed: int = 0, positive: Any = 1.0) -> GateResult:
    """Score both models on the same rows and bootstrap the paired improvement."""
    y, a, b = _coerce(y), _coerce(champion), _coerce(candidate)
    n = len(y)
    if not (len(a) == len(b) == n) or n == 0:
        raise ValueError(f"compare needs equal, non-empty arrays (labels {n}, champion {len(a)}, candidate {len(b)})")
    pos = _coerce([positive])[0]
    fn = METRICS[name]
    args = (pos,) if name in _POSITIVE else ()
    sign = -1.0 if name in LOWER_IS_BETTER else 1.0
    m_a, m_b = fn(y, a, *args), fn(y, b, *args)
    imp = sign * (m_b - m_a)
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_boot)
    for i in range(n_boot):
        idx = rng.integers(0, n, n)
        diffs[i] = sign * (fn(y[idx], b[idx], *args) - fn(y[idx], a[idx], *args))
    diffs = diffs[np.isfinite(diffs)]
    alpha = (1.0 - confidence) / 2.0
    low, high = (float(np.quantile(diffs, alpha)), float(np.quantile(diffs, 1 - alpha))) if len(diffs) else (float("nan"),) * 2
    pct = f"{confidence:.0%}"
    if not np.isfinite(imp):
        passed, reason = False, f"{name} is undefined on the held-back rows (one class only?)"
    elif imp < min_improvement:
        passed, reason = False, (f"improvement {_fmt(imp)} in {name} ({_fmt(m_a)} → {_fmt(m_b)}) is below the "
                                 f"minimum {_fmt(min_improvement)}")
    elif not low > 0:
        passed, reason = False, (f"improvement {_fmt(imp)} is not above zero with {pct} confidence "
                                 f"(interval [{_fmt(low)}, {_fmt(high)}])")
    else:
        passed, reason = True, (f"{name} {_fmt(m_a)} → {_fmt(m_b)}: improvement {_fmt(imp)}, {pct} interval "
                                f"[{_fmt(low)}, {_fmt(high)}]")
    return GateResult(passed, name, n, m_a, m_b, imp, low, high, confidence, min_improvement, reason)


@dataclass
class DriftCheck:
    """Recent production against the candidate's training profile."""

    passed: bool
    drift_share: float
    max_share: float
    drifted: List[str]
    tested: List[str]
    rows: int
    reason: str

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def residual_drift(profile: Any, recent: Any, max_share: float, drift_config: Optional[Any] = None) -> DriftCheck:
    """Test ``recent`` production columns (a mapping of arrays, or anything
    ``profile.summarize`` reads) against the candidate's training ``profile``.

    >>> import numpy as np
    >>> from raywatch.stats.profile import Profile
    >>> rng = np.random.default_rng(2)
    >>> prof = Profile.fit({"a": rng.normal(size=5000), "b": rng.normal(size=5000)}, seed=2)
    >>> residual_drift(prof, {"a": rng.normal(size=800), "b": rng.normal(size=800)}, 0.25).passed
    True
    >>> c = residual_drift(prof, {"a": rng.normal(2, 1, 800), "b": rng.normal(size=800)}, 0.25)
    >>> c.passed, c.drifted, c.reason
    (False, ['a'], 'recent production drifts from the training data in 1 of 2 features (50%; at most 25%): a')
    """
    from raywatch.drift.detect import detect_drift

    cols = {k: v for k, v in dict(recent).items() if k in set(profile.columns)}
    report = detect_drift(profile, cols, drift_config)
    drifted, tested = report.drifted_columns, report.tested_columns
    share = float(report.drift_share)
    if not tested:
        return DriftCheck(False, share, max_share, drifted, tested, report.rows_current,
                          "no feature of recent production could be tested against the training profile")
    ok = share <= max_share
    reason = (f"recent production drifts from the training data in {len(drifted)} of {len(tested)} features "
              f"({share:.0%}; at most {max_share:.0%})" + (f": {', '.join(drifted)}" if drifted else ""))
    return DriftCheck(ok, share, max_share, drifted, tested, report.rows_current, reason)
