"""Label-free performance estimates (CBPE) of a window, each with its sampling-error band.

:func:`estimate_performance` reads a window's CBPE section
(:class:`~raywatch.stats.confidence.ConfidenceSection`, sums made in the replicas and
merged by the actor) against the profile's
:class:`~raywatch.stats.confidence.ConfidenceEstimator`:

* from the expected confusion matrix ``C[true, predicted]`` (sums of calibrated
  probabilities): accuracy ``tr C / n``; binary precision ``TP / (TP + FP)``, recall
  ``TP / (TP + FN)`` and F1 ``2TP / (2TP + FP + FN)`` for the positive class; for multiclass
  models their macro averages over the classes (an undefined class value counts as 0, as
  scikit-learn's ``zero_division=0``);
* ROC AUC from the calibrated probability (weight of a positive) and its complement (weight
  of a negative) per raw-score bin: pairs in different bins are ordered, pairs in one bin
  count ½, as NannyML's estimate on sorted rows but binned; ``roc_auc_error_bound``
  (½ Σ_b P_b·N_b / (P·N)) bounds what the binning changes. Multiclass: the macro average of
  the one-vs-rest areas.

Sampling error follows NannyML: per metric and class a standard deviation from the
reference's labelled rows, divided by ``√(n · share)`` where ``share`` is the share of the
window's rows the metric is about (predicted positives for precision, expected positives
for recall, ...; read from the window itself, so the band follows a shift in class balance);
macro averages combine classes as ``√(Σ SE_k²) / K``. ROC AUC adds DeLong's second term (the
negatives' placements among the positives), which NannyML leaves out: with one term the band
was 1.5 times narrower than the spread of realized AUCs. The band is ``value ± sigmas · SE``
(3 by default, as NannyML's confidence band), clipped to [0, 1].

The estimate assumes **no concept drift**: the calibration ``P(y | score)`` learned on the
reference still holds. When labels arrive, :func:`disagreement` compares the realized figures
with the estimate: a difference beyond ``sigmas · √(SE(m)² + SE(n)²)`` (``m`` labelled rows,
``n`` estimated rows; conservative when they are the same rows) is what concept drift looks
like, and is what the disagreement alert fires on.

>>> import numpy as np
>>> from raywatch.stats.confidence import ConfidenceEstimator
>>> from raywatch.stats.sections import Batch
>>> rng = np.random.default_rng(0)
>>> s = rng.random(20_000)
>>> est = ConfidenceEstimator.fit((rng.random(20_000) < s).astype(int), s)
>>> window = rng.random(5000) ** 0.5                     # covariate shift: higher scores
>>> e = estimate_performance(est, est.summarize(Batch({"score": window}, 5000)))
>>> round(e.metrics["accuracy"].value, 2), round(e.metrics["roc_auc"].value, 2)
(0.75, 0.8)
>>> y = (rng.random(5000) < window).astype(int)            # labels arrive: no concept drift
>>> realized = {"accuracy": float(np.mean(y == (window >= 0.5)))}
>>> disagreement(est, e, realized, labelled_rows=5000)["accuracy"].disagree
False

References
----------
NannyML (2022). Confidence-based Performance Estimation; Estimation of standard error.
https://nannyml.readthedocs.io.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from raywatch import series
from raywatch.stats.confidence import METRICS, ConfidenceEstimator, ConfidenceSection

__all__ = ["MetricEstimate", "PerformanceEstimate", "Disagreement", "estimate_performance", "disagreement",
           "sampling_error"]

# the performance metrics by their catalogue names
_ACCURACY, _PRECISION, _RECALL, _F1, _ROC_AUC = (m.name for m in (series.ACCURACY, series.PRECISION, series.RECALL, series.F1, series.ROC_AUC))


@dataclass(slots=True)
class MetricEstimate:
    """One estimated metric: ``value`` and its band ``[lower, upper]`` (``None`` where undefined)."""

    value: Optional[float]
    sampling_error: Optional[float]
    lower: Optional[float]
    upper: Optional[float]


@dataclass
class PerformanceEstimate:
    """Estimated accuracy, precision, recall, F1 and ROC AUC of one window."""

    rows: int
    skipped: int
    average: str  # "binary" or "macro"
    metrics: Dict[str, MetricEstimate]
    shares: Dict[str, List[float]] = field(default_factory=dict)  # the window's shares behind each SE
    roc_auc_error_bound: Optional[float] = None
    calibration_ok: bool = True
    warnings: List[str] = field(default_factory=list)

    def value(self, metric: str) -> Optional[float]:
        m = self.metrics.get(metric)
        return None if m is None else m.value

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def _div(a: float, b: float) -> Optional[float]:
    return float(a) / float(b) if b > 0 else None


_ZERO = np.zeros(())  # a 0-d array: np.maximum without converting a Python scalar each call
_ONES: Dict[int, np.ndarray] = {}  # length → a read-only vector of ones (a sum as one ddot)


def _ones(n: int) -> np.ndarray:
    v = _ONES.get(n)
    if v is None:
        v = np.ones(n)
        v.flags.writeable = False
        if len(_ONES) >= 64:
            _ONES.clear()
        _ONES[n] = v
    return v


def _auc(pos: np.ndarray, count: np.ndarray):
    neg = np.subtract(count, pos)
    np.maximum(neg, _ZERO, out=neg)
    upto = np.add.accumulate(neg)  # negatives in each bin and the bins below it (np.cumsum without its wrapper)
    N = float(upto[-1])
    P = float(pos.dot(_ones(pos.shape[0])))  # Σ pos (ndarray.dot of a few hundred values: one ddot, no threads)
    if P <= 0 or N <= 0:
        return None, None
    # a bin's positives are above the negatives of the bins below it, tied with its own (½):
    # Σ pos·(upto − neg) + ½ Σ pos·neg = Σ pos·upto − ½ Σ pos·neg. The bins are few (ndarray.dot
    # of a few hundred values never threads; see raywatch.stats.linalg)
    tie = float(pos.dot(neg))
    auc = (float(pos.dot(upto)) - 0.5 * tie) / (P * N)
    auc = 0.0 if auc < 0.0 else auc  # clipped to [0, 1] as min(max(auc, 0), 1), without their calls
    return (1.0 if auc > 1.0 else auc), 0.5 * tie / (P * N)


def _values(est: ConfidenceEstimator, sec: ConfidenceSection):
    """``(values, shares, auc_bound)``: each metric's value and the window's share of rows
    per class behind its sampling error."""
    C = sec.confusion
    if C.shape == (2, 2):  # the sums numpy makes of two terms, without three calls
        (tn, fp), (fn, tp) = C.tolist()
        pred, true, diag = [tn + fn, fp + tp], [tn + fp, fn + tp], [tn, tp]
    else:
        pred, true, diag = C.sum(axis=0).tolist(), C.sum(axis=1).tolist(), C.diagonal().tolist()
    n = float(sum(pred))
    binary = est.binary
    classes = [1] if binary else list(range(len(pred)))
    vals: Dict[str, Optional[float]] = {_ACCURACY: _div(sum(diag), n)}
    shares: Dict[str, List[float]] = {_ACCURACY: [1.0]}
    per: Dict[str, List[Optional[float]]] = {_PRECISION: [], _RECALL: [], _F1: []}
    for k in classes:
        per[_PRECISION].append(_div(diag[k], pred[k]))
        per[_RECALL].append(_div(diag[k], true[k]))
        per[_F1].append(_div(2 * diag[k], pred[k] + true[k]))
        shares.setdefault(_PRECISION, []).append(pred[k] / n if n else 0.0)
        shares.setdefault(_RECALL, []).append(true[k] / n if n else 0.0)
        shares.setdefault(_F1, []).append((pred[k] + true[k] - diag[k]) / n if n else 0.0)
        shares.setdefault(_ROC_AUC, []).append(true[k] / n if n else 0.0)
    for name, vs in per.items():
        if binary:
            vals[name] = vs[0]
        else:  # macro: an undefined class counts as 0 (scikit-learn's zero_division=0)
            vals[name] = float(np.mean([v or 0.0 for v in vs])) if n else None
    aucs, bounds = [], []
    for j in range(len(est.scores)):
        a, b = _auc(sec.bin_p[j], sec.bin_n[j])
        if a is not None:
            aucs.append(a)
            bounds.append(b)
    vals[_ROC_AUC] = sum(aucs) / len(aucs) if aucs and (binary or len(aucs) == len(classes)) else None
    bound = sum(bounds) / len(bounds) if vals[_ROC_AUC] is not None else None
    return vals, shares, bound


def sampling_error(est: ConfidenceEstimator, metric: str, rows: float, shares: List[float]) -> Optional[float]:
    """NannyML's standard error of ``metric`` for ``rows`` rows whose per-class shares are
    ``shares`` (see the module docstring); ``None`` where it cannot be formed."""
    comps = est.components.get(metric)
    if not comps or rows <= 0:
        return None
    if metric == _ACCURACY:
        std = comps[0][0]
        return None if not math.isfinite(std) else std / math.sqrt(rows)
    var = 0.0
    for comp, share in zip(comps, shares):
        v = _variance(comp, share, rows)
        if v is None:
            return None
        var += v
    return math.sqrt(var) / len(comps)


def _variance(comp: Sequence[float], share: float, rows: float) -> Optional[float]:
    """One class's term of :func:`sampling_error`: ``std² / (rows · share)`` (the reference's
    share when the window's is 0 or 1), plus DeLong's second term for ROC AUC (``comp`` of
    three: the negatives' placements); None where it cannot be formed."""
    std = comp[0]
    share = share if 0 < share < 1 or (share == 1 and len(comp) < 3) else comp[1]
    if not (math.isfinite(std) and share > 0):
        return None
    var = std * std / (rows * share)
    if len(comp) > 2:
        if not (math.isfinite(comp[2]) and share < 1):
            return None
        var += comp[2] * comp[2] / (rows * (1.0 - share))
    return var


def estimate_performance(est: ConfidenceEstimator, sec: ConfidenceSection, sigmas: float = 3.0) -> PerformanceEstimate:
    """The estimated metrics of the window ``sec`` (see the module docstring).

    Parameters
    ----------
    est
        The profile's estimator (``profile.extensions["performance"]``).
    sec
        The window's section (``summary.sections["performance"]``).
    sigmas
        Half-width of the band in sampling errors.
    """
    table = _binary_table(est)
    if table and sec.confusion.shape == (2, 2):
        return _estimate_binary(est, sec, sigmas, table)
    vals, shares, bound = _values(est, sec)
    rows = sec.rows
    metrics = {}
    for name in METRICS:
        v = vals[name]
        se = None if v is None else sampling_error(est, name, rows, shares[name])
        if se is None:
            metrics[name] = MetricEstimate(v, None, None, None)
        else:
            width = sigmas * se
            lo, hi = v - width, v + width  # clipped to [0, 1] as max(0, lo), min(1, hi), without their calls
            metrics[name] = MetricEstimate(v, se, lo if lo > 0.0 else 0.0, hi if hi < 1.0 else 1.0)
    average, calibration_ok, warnings = _calibration(est)
    return PerformanceEstimate(rows, sec.skipped, average, metrics, shares, bound, calibration_ok, list(warnings))


def _binary_table(est: ConfidenceEstimator):
    """The sampling-error components ``(std, reference share[, std of the negatives'
    placements])`` of each metric in :data:`METRICS` order when ``est`` is a binary estimator of
    one score whose metrics each have one component, else ``False``; kept on the estimator
    (it never changes)."""
    cached = getattr(est, "_binary", None)
    if cached is None:
        comps = est.components
        ok = est.binary and len(est.scores) == 1 and all(len(comps.get(m) or ()) == 1 for m in METRICS)
        cached = est._binary = tuple(tuple(float(v) for v in comps[m][0]) for m in METRICS) if ok else False
    return cached


def _estimate_binary(est: ConfidenceEstimator, sec: ConfidenceSection, sigmas: float, table: tuple) -> PerformanceEstimate:
    """:func:`estimate_performance` of a binary model of one score, the same arithmetic as
    :func:`_values` and :func:`sampling_error` on scalars (a window is evaluated every cycle:
    this is the common case, kept to one pass without per-class lists)."""
    (tn, fp), (fn, tp) = sec.confusion.tolist()
    pp, ap = fp + tp, fn + tp  # predicted and expected positives
    n = (tn + fn) + pp
    auc, bound = _auc(sec.bin_p[0], sec.bin_n[0])
    if n > 0:
        values = ((tn + tp) / n, tp / pp if pp > 0 else None, tp / ap if ap > 0 else None,
                  2 * tp / (pp + ap) if pp + ap > 0 else None, auc)
        shares = {_ACCURACY: [1.0], _PRECISION: [pp / n], _RECALL: [ap / n], _F1: [(pp + ap - tp) / n],
                  _ROC_AUC: [ap / n]}
    else:
        values = (None, None, None, None, auc)
        shares = {_ACCURACY: [1.0], _PRECISION: [0.0], _RECALL: [0.0], _F1: [0.0], _ROC_AUC: [0.0]}
    rows = sec.rows
    metrics = {}
    for name, v, comp in zip(METRICS, values, table):
        se = None
        if v is not None and rows > 0:
            std = comp[0]
            if name == _ACCURACY:
                se = std / math.sqrt(rows) if math.isfinite(std) else None
            else:  # sampling_error of one component
                var = _variance(comp, shares[name][0], rows)
                se = None if var is None else math.sqrt(var)
        if se is None:
            metrics[name] = MetricEstimate(v, None, None, None)
        else:
            width = sigmas * se
            lo, hi = v - width, v + width
            metrics[name] = MetricEstimate(v, se, lo if lo > 0.0 else 0.0, hi if hi < 1.0 else 1.0)
    average, calibration_ok, warnings = _calibration(est)
    return PerformanceEstimate(rows, sec.skipped, average, metrics, shares, bound if auc is not None else None,
                               calibration_ok, list(warnings))


def _calibration(est: ConfidenceEstimator) -> tuple:
    """``(average, calibration_ok, warnings)`` of the estimator, kept on it after the first
    window (they never change)."""
    cached = getattr(est, "_calibration", None)
    if cached is None:
        warnings = [w for c in est.calibrations for w in c.warnings]
        cached = est._calibration = ("binary" if est.binary else "macro", all(c.ok for c in est.calibrations),
                                     tuple(dict.fromkeys(warnings)))
    return cached


@dataclass
class Disagreement:
    """Realized against estimated for one metric: ``disagree`` when ``|difference| > band``."""

    metric: str
    estimated: Optional[float]
    realized: Optional[float]
    difference: Optional[float]
    band: Optional[float]
    disagree: bool


def disagreement(
    est: ConfidenceEstimator,
    estimate: PerformanceEstimate,
    realized: Mapping[str, Optional[float]],
    labelled_rows: int,
    sigmas: float = 3.0,
) -> Dict[str, Disagreement]:
    """Per metric of ``realized`` (``ClassificationMetrics.result()`` or any mapping of metric
    → value, over ``labelled_rows`` labelled rows of the same window): whether it left the
    estimate's band. A metric without an estimate, a realized value or a sampling error is
    reported with ``disagree=False``."""
    out: Dict[str, Disagreement] = {}
    for name in METRICS:
        if name not in realized:
            continue
        r, e = realized.get(name), estimate.value(name)
        band = None
        if r is not None and e is not None and labelled_rows > 0:
            se_m = sampling_error(est, name, labelled_rows, estimate.shares.get(name, []))
            se_n = sampling_error(est, name, estimate.rows, estimate.shares.get(name, []))
            if se_m is not None and se_n is not None:
                band = sigmas * math.sqrt(se_m * se_m + se_n * se_n)
        diff = None if r is None or e is None else float(r) - float(e)
        out[name] = Disagreement(name, e, None if r is None else float(r), diff, band,
                                 bool(band is not None and diff is not None and abs(diff) > band))
    return out
