"""Calibrating a classifier's scores on labelled reference data.

A model's score is *calibrated* when, among rows scored ``s``, a share ``s`` is positive.
Label-free performance estimation (:mod:`raywatch.stats.confidence`) needs calibrated
probabilities, so :func:`fit_calibrator` learns a monotone map from scores to probabilities
on the reference and picks the method by cross-validation:

* ``"identity"`` — the scores as they are (only for scores within [0, 1]);
* ``"platt"`` — a logistic curve ``1 / (1 + exp(-(a·z + b)))`` of ``z = logit(score)``
  (of the score itself when scores leave [0, 1]), fitted by Newton's method;
* ``"isotonic"`` — the best non-decreasing step function, by pool-adjacent-violators (PAV),
  linear between the ends of its steps (as scikit-learn's ``IsotonicRegression``).

``method="auto"`` (the default) fits each candidate on ``folds - 1`` folds, predicts the
held-out fold, and keeps the candidate whose out-of-fold predictions have the smallest
expected calibration error (ECE: the mean gap between predicted and observed rates over
equal-mass bins, weighted by the bins' sizes). Candidates within the ECE's own noise
(``√(bins / n) / 4``, at least 0.001) of the best count as equal; among them isotonic,
which assumes nothing of the map's shape, comes first, then Platt, then the identity. (On
the benchmark's data sets isotonic was never worse than the others beyond noise; the
identity wins only when the scores are clearly calibrated already.)
The chosen map is then refitted on all rows. Every calibrator is stored the same way, as
knots of a piecewise-linear map, so applying one is a single ``np.interp`` per row (scores
beyond the knots take the end values).

The :class:`Calibration` report keeps the out-of-fold ECE of every candidate, the
reliability curve of the chosen one (mean predicted against observed rate per bin), and
warnings when scores cannot be calibrated well: constant scores, scores outside [0, 1], too
few labels, missing values.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> s = rng.random(4000)
>>> y = (rng.random(4000) < s ** 2).astype(int)    # the model is overconfident
>>> cal = fit_calibrator(s, y, seed=0)
>>> cal.method in ("isotonic", "platt"), cal.ece < cal.candidates["identity"]
(True, True)
>>> round(float(cal(np.array([0.7]))[0]), 1)   # 0.7 ** 2 = 0.49
0.5

References
----------
Platt, J. (1999). Probabilistic outputs for support vector machines. Zadrozny, B., Elkan, C.
(2002). Transforming classifier scores into accurate multiclass probability estimates.
Naeini, M. P., Cooper, G., Hauskrecht, M. (2015). Obtaining well calibrated probabilities
using Bayesian binning (ECE).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from raywatch.stats.linalg import dot

__all__ = ["Calibration", "fit_calibrator", "expected_calibration_error", "reliability", "isotonic", "platt"]

METHODS = ("auto", "identity", "platt", "isotonic")
MIN_LABELS = 100  # fewer labelled rows (or fewer than MIN_CLASS of a class) give a warning
MIN_CLASS = 10
_EPS = 1e-6
_MAX_KNOTS = 2048


@dataclass
class Calibration:
    """A fitted monotone map from scores to probabilities, with its quality.

    ``x``/``y`` are the knots (``x`` increasing, ``y`` non-decreasing in [0, 1]); calling
    the calibration applies it. ``ece`` is the out-of-fold expected calibration error of the
    chosen method (``candidates`` holds every candidate's), ``curve`` the reliability curve
    ``{"predicted": [...], "observed": [...], "count": [...]}``, ``warnings`` says why the
    estimate may be unreliable; ``ok`` is False when it cannot be trusted at all.
    """

    method: str
    x: np.ndarray
    y: np.ndarray
    ece: float = math.nan
    candidates: Dict[str, float] = field(default_factory=dict)
    curve: Dict[str, List[float]] = field(default_factory=dict)
    rows: int = 0
    positives: int = 0
    warnings: List[str] = field(default_factory=list)
    ok: bool = True

    def __call__(self, scores: Any) -> np.ndarray:
        return np.interp(np.asarray(scores, dtype=np.float64), self.x, self.y)

    def to_meta(self) -> Dict[str, Any]:
        """JSON-able fields besides the knots (see :meth:`from_meta`)."""
        return {
            "method": self.method, "ece": self.ece, "candidates": self.candidates, "curve": self.curve,
            "rows": self.rows, "positives": self.positives, "warnings": list(self.warnings), "ok": self.ok,
        }

    @classmethod
    def from_meta(cls, meta: Dict[str, Any], x: np.ndarray, y: np.ndarray) -> "Calibration":
        x, y = np.asarray(x, dtype=np.float64).reshape(-1), np.asarray(y, dtype=np.float64).reshape(-1)
        if x.size < 1 or x.size != y.size or x.size > 2 * _MAX_KNOTS + 4:
            raise ValueError("calibration knots do not fit")
        if np.any(np.diff(x) < 0) or np.any(np.diff(y) < -1e-12) or np.any((y < 0) | (y > 1)):
            raise ValueError("calibration knots are not a monotone map into [0, 1]")
        return cls(
            method=str(meta["method"]), x=x, y=y, ece=float(meta.get("ece", math.nan)),
            candidates={str(k): float(v) for k, v in dict(meta.get("candidates", {})).items()},
            curve={str(k): [int(v) if k == "count" else float(v) for v in vs]
                   for k, vs in dict(meta.get("curve", {})).items()},
            rows=int(meta.get("rows", 0)), positives=int(meta.get("positives", 0)),
            warnings=[str(w) for w in meta.get("warnings", [])], ok=bool(meta.get("ok", True)),
        )


# ------------------------------------------------------------------ the maps


def isotonic(scores: np.ndarray, labels: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Knots of the isotonic regression of ``labels`` on ``scores`` (weighted by ties).

    Pool-adjacent-violators, vectorized: adjacent blocks whose means do not increase always
    end up in one block of the solution, so every round pools all runs of them at once (one
    ``bincount`` per round; a dozen rounds for 200,000 random rows).
    """
    xs, inverse = np.unique(scores, return_inverse=True)
    w = np.bincount(inverse).astype(np.float64)
    means = np.bincount(inverse, weights=labels.astype(np.float64)) / w
    first = np.arange(xs.size)
    while means.size > 1:
        violating = means[:-1] >= means[1:]
        if not violating.any():
            break
        start = np.concatenate(([True], ~violating))
        block = np.cumsum(start) - 1
        total = np.bincount(block, weights=w)
        means = np.bincount(block, weights=w * means) / total
        w, first = total, first[start]
    ends = np.append(first[1:] - 1, xs.size - 1)
    kx = np.column_stack((xs[first], xs[ends])).reshape(-1)
    ky = np.repeat(means, 2)
    kx, keep = np.unique(kx, return_index=True)  # a one-score block has one knot
    return kx, np.clip(ky[keep], 0.0, 1.0)


def _logit(s: np.ndarray) -> np.ndarray:
    s = np.clip(s, _EPS, 1.0 - _EPS)
    return np.log(s) - np.log1p(-s)


def platt(scores: np.ndarray, labels: np.ndarray, probabilities: bool = True, iterations: int = 50) -> Tuple[float, float]:
    """``(a, b)`` of Platt scaling ``sigmoid(a·z + b)``, ``z`` the score's logit (or the score
    when ``probabilities`` is False), by Newton's method on the log-loss with Platt's
    smoothed targets ``(n₊ + 1) / (n₊ + 2)`` and ``1 / (n₋ + 2)``."""
    z = _logit(scores) if probabilities else scores.astype(np.float64)
    y = labels.astype(np.float64)
    npos, nneg = y.sum(), y.size - y.sum()
    t = np.where(y > 0, (npos + 1.0) / (npos + 2.0), 1.0 / (nneg + 2.0))
    a, b = 1.0, 0.0
    if not probabilities:  # start from a standardized slope
        sd = float(z.std()) or 1.0
        a, b = 1.0 / sd, -float(z.mean()) / sd
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(a * z + b, -500.0, 500.0)))
        g = p - t
        ww = np.maximum(p * (1.0 - p), 1e-12)
        h11, h12, h22 = dot(ww * z, z) + 1e-9, dot(ww, z), float(ww.sum()) + 1e-9
        g1, g2 = dot(g, z), float(g.sum())
        det = h11 * h22 - h12 * h12
        if det <= 0:
            break
        da, db = (h22 * g1 - h12 * g2) / det, (h11 * g2 - h12 * g1) / det
        a, b = a - da, b - db
        if abs(da) < 1e-7 * (1.0 + abs(a)) and abs(db) < 1e-7 * (1.0 + abs(b)):
            break
    return a, b


def _platt_knots(scores: np.ndarray, labels: np.ndarray, probabilities: bool) -> Tuple[np.ndarray, np.ndarray]:
    a, b = platt(scores, labels, probabilities)
    grid = np.unique(np.concatenate((
        np.quantile(scores, np.linspace(0.0, 1.0, 513)),
        np.linspace(0.0, 1.0, 257) if probabilities else np.empty(0),
    )))
    z = _logit(grid) if probabilities else grid
    y = 1.0 / (1.0 + np.exp(-(a * z + b)))
    return grid, np.maximum.accumulate(y) if a >= 0 else np.full_like(y, float(labels.mean()))


def _fit(method: str, scores: np.ndarray, labels: np.ndarray, probabilities: bool) -> Tuple[np.ndarray, np.ndarray]:
    if method == "identity":
        return np.array([0.0, 1.0]), np.array([0.0, 1.0])
    if method == "platt":
        return _platt_knots(scores, labels, probabilities)
    x, y = isotonic(scores, labels)
    if x.size > _MAX_KNOTS:  # bound what the profile stores: keep the steps' ends on a grid
        idx = np.unique(np.linspace(0, x.size - 1, _MAX_KNOTS).round().astype(np.intp))
        x, y = x[idx], y[idx]
    return x, y


# ----------------------------------------------------------------- quality


def _bins(predicted: np.ndarray, bins: int) -> np.ndarray:
    edges = np.unique(np.quantile(predicted, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    return np.searchsorted(edges, predicted, side="right")


def expected_calibration_error(predicted: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE over ``bins`` equal-mass bins of the predictions: Σ (n_b / n)·|mean p_b − rate_b|.

    >>> expected_calibration_error(np.array([0.2, 0.2, 0.8, 0.8]), np.array([0, 0, 1, 1]), bins=2)
    0.2
    """
    p = np.asarray(predicted, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if p.size == 0:
        return math.nan
    b = _bins(p, bins)
    n = np.bincount(b).astype(np.float64)
    gap = np.abs(np.bincount(b, weights=p) - np.bincount(b, weights=y))
    return float(round(gap[n > 0].sum() / p.size, 12))


def reliability(predicted: np.ndarray, labels: np.ndarray, bins: int = 10) -> Dict[str, List[float]]:
    """The reliability curve over equal-mass bins: mean predicted probability, observed
    positive rate and row count per bin."""
    p = np.asarray(predicted, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if p.size == 0:
        return {"predicted": [], "observed": [], "count": []}
    b = _bins(p, bins)
    n = np.bincount(b).astype(np.float64)
    keep = n > 0
    return {
        "predicted": (np.bincount(b, weights=p)[keep] / n[keep]).round(6).tolist(),
        "observed": (np.bincount(b, weights=y)[keep] / n[keep]).round(6).tolist(),
        "count": n[keep].astype(int).tolist(),
    }


def fit_calibrator(
    scores: Any,
    labels: Any,
    method: str = "auto",
    folds: int = 5,
    bins: int = 15,
    seed: Optional[int] = 0,
) -> Calibration:
    """Fit a :class:`Calibration` of ``scores`` to binary ``labels`` (1 = positive).

    Parameters
    ----------
    scores
        The model's scores for the positive class (probabilities, or any real margin).
    labels
        0/1 (or boolean) labels of the same rows; rows where either is missing are dropped.
    method
        ``"auto"`` (cross-validated choice), ``"identity"``, ``"platt"`` or ``"isotonic"``.
    folds, bins, seed
        Cross-validation folds, ECE bins (equal mass) and the fold assignment's seed.
    """
    if method not in METHODS:
        raise ValueError(f"calibration method must be one of {', '.join(METHODS)}, got {method!r}")
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    if s.size != y.size:
        raise ValueError(f"scores and labels differ in length ({s.size} != {y.size})")
    warnings: List[str] = []
    ok = np.isfinite(s) & np.isfinite(y)
    if not ok.all():
        warnings.append(f"{int((~ok).sum())} rows with a missing or non-finite score or label were left out")
        s, y = s[ok], y[ok]
    if np.any((y != 0) & (y != 1)):
        raise ValueError("labels must be 0/1 (1 = the positive class)")
    n, npos = int(y.size), int(y.sum())
    if n == 0:
        return Calibration("identity", np.array([0.0, 1.0]), np.array([0.0, 1.0]), rows=0,
                           warnings=warnings + ["no labelled rows: nothing to calibrate"], ok=False)
    probabilities = bool(s.min() >= 0.0 and s.max() <= 1.0)
    if not probabilities:
        warnings.append(f"scores outside [0, 1] (from {s.min():.4g} to {s.max():.4g}): read as margins, not "
                        "probabilities; only platt and isotonic apply")
    if s.min() == s.max():
        rate = npos / n
        return Calibration("constant", np.array([s[0]]), np.array([rate]), ece=0.0, rows=n, positives=npos,
                           warnings=warnings + [f"the scores are constant ({s[0]:.4g}): every estimate is the "
                                                f"reference's base rate {rate:.4g}; ROC AUC cannot be estimated"],
                           ok=False)
    few = n < MIN_LABELS or min(npos, n - npos) < MIN_CLASS
    if few:
        warnings.append(f"too few labels to calibrate reliably ({n} rows, {npos} positive; want at least "
                        f"{MIN_LABELS} rows and {MIN_CLASS} of each class)")
    if method == "identity" and not probabilities:
        raise ValueError("the identity calibration needs scores within [0, 1]")
    candidates = [m for m in ("identity", "platt", "isotonic") if m != "identity" or probabilities]
    if method != "auto":
        candidates = [method]
    elif few:  # too few labels to choose: the simplest map that reads the scores
        candidates = ["identity"] if probabilities else ["platt"]
    # out-of-fold predictions of every candidate
    k = max(2, min(int(folds), n // 2)) if n >= 4 else 1
    fold = np.random.default_rng(seed).permutation(n) % k
    oof = {m: np.empty(n) for m in candidates}
    for f in range(k):
        test = fold == f
        train = ~test if k > 1 else test
        for m in candidates:
            kx, ky = _fit(m, s[train], y[train], probabilities)
            oof[m][test] = np.interp(s[test], kx, ky)
    ece = {m: expected_calibration_error(oof[m], y, bins) for m in candidates}
    best = min(ece.values())
    # the ECE of a perfectly calibrated map is itself noisy (about ½·√(bins / n)): within a
    # quarter of that of the best, the candidates are as good, and isotonic (which assumes
    # nothing of the map's shape) is preferred, then Platt, then the scores as they are
    tolerance = max(1e-3, math.sqrt(bins / n) / 4.0)
    chosen = next(m for m in ("isotonic", "platt", "identity") if m in ece and ece[m] <= best + tolerance)
    x, yk = _fit(chosen, s, y, probabilities)
    return Calibration(
        chosen, x, yk, ece=ece[chosen], candidates=ece, curve=reliability(oof[chosen], y), rows=n, positives=npos,
        warnings=warnings, ok=not few,
    )
