"""Confidence-based performance estimation (CBPE): what a profile keeps and a window sums.

Before labels arrive, a classifier's performance can be estimated from its own scores once
they are calibrated: a row predicted positive with calibrated probability ``p`` of being
positive is a true positive with probability ``p`` and a false positive with ``1 − p``.
Summed over a window, these give the *expected confusion matrix*, from which accuracy,
precision, recall and F1 follow; summing ``p`` and ``1 − p`` per bin of the raw score gives
the expected ROC curve and its area (:mod:`raywatch.drift.estimation` turns a section into
estimates with sampling-error bands).

Where each piece runs:

* fit (once, on labelled reference data): :meth:`ConfidenceEstimator.fit` calibrates every
  score column (:func:`raywatch.stats.calibration.fit_calibrator`), places the score bins
  (the union of 256 reference quantiles and 256 even steps; fewer per class beyond 8
  classes) and keeps NannyML's sampling-error components of every metric from the
  reference's labels. All of it is stored in the profile.
* replica (every flush, cheap): :meth:`ConfidenceEstimator.summarize` applies the
  calibration map (one ``np.interp`` per score column), renormalizes multiclass rows, and
  adds per predicted class the calibrated probabilities (``K`` weighted ``bincount``\\ s) and
  per score bin the probabilities and row counts (``searchsorted`` + two ``bincount``\\ s).
* actor (per window): :class:`ConfidenceSection` merges by addition, exactly, across
  replicas and windows; the estimates are read from the sums.

Binary models give one score column, the probability of ``positive``; multiclass models one
column per class (``{"cat": "p_cat", ...}``), calibrated one-vs-rest and renormalized to sum
to one as NannyML does. The predicted label comes from a prediction column, or else from
``score ≥ threshold`` (binary) or the highest score (multiclass).

The estimate assumes **no concept drift**: the calibration learned on the reference,
``P(y | score)``, still holds. Covariate shift (inputs move, the relation stays) is what it
follows; when labels arrive, :func:`raywatch.drift.estimation.disagreement` says whether the
realized figures left the band, which is how concept drift shows.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> s = rng.random(5000)
>>> y = (rng.random(5000) < s).astype(int)
>>> est = ConfidenceEstimator.fit(y, s, seed=0)
>>> est.classes, est.calibrations[0].method
([0, 1], 'isotonic')
>>> part = est.summarize(Batch({"score": s[:100]}, 100)).merge(est.summarize(Batch({"score": s[100:]}, 4900)))
>>> part.rows, round(float(np.trace(part.confusion)) / part.rows, 2)   # expected accuracy
(5000, 0.75)

References
----------
NannyML (2022). Confidence-based Performance Estimation. https://nannyml.readthedocs.io.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Dict, Hashable, List, Mapping, Optional, Sequence, Union

import numpy as np

from raywatch import series
from raywatch.stats.calibration import Calibration, fit_calibrator
from raywatch.stats.columns import normalize_label
from raywatch.stats.sections import Batch, Extension, Section, checked_kind, need, register

__all__ = ["ConfidenceEstimator", "ConfidenceSection", "MAX_CLASSES"]

# the performance metrics by their catalogue names
_ACCURACY, _PRECISION, _RECALL, _F1, _ROC_AUC = (m.name for m in (series.ACCURACY, series.PRECISION, series.RECALL, series.F1, series.ROC_AUC))

log = logging.getLogger("raywatch.stats.confidence")

MAX_CLASSES = 50
_EDGE_BUDGET = 4096  # score-bin edges over all classes
METRICS = (_ACCURACY, _PRECISION, _RECALL, _F1, _ROC_AUC)


def _sort_key(v: Hashable) -> Any:
    return (type(v).__name__, v)


@register
class ConfidenceSection(Section):
    """Per-window sums for CBPE: the expected confusion matrix ``[true, predicted]``, the
    calibrated probability and the row count per score bin (one row of bins per score
    column), the rows used and the rows left out (missing score, unknown predicted label)."""

    kind = "cbpe"

    def __init__(self, confusion: np.ndarray, bin_p: np.ndarray, bin_n: np.ndarray, rows: int = 0, skipped: int = 0):
        self.confusion = confusion
        self.bin_p = bin_p
        self.bin_n = bin_n
        self.rows = int(rows)
        self.skipped = int(skipped)

    def merge(self, other: "ConfidenceSection") -> "ConfidenceSection":
        checked_kind(self, other)
        if other.confusion.shape != self.confusion.shape or other.bin_p.shape != self.bin_p.shape:
            raise ValueError("cannot merge CBPE sections of different shapes (different profiles)")
        return ConfidenceSection(self.confusion + other.confusion, self.bin_p + other.bin_p, self.bin_n + other.bin_n,
                                 self.rows + other.rows, self.skipped + other.skipped)

    def state(self):
        return ({"rows": self.rows, "skipped": self.skipped},
                {"confusion": self.confusion, "bin_p": self.bin_p, "bin_n": self.bin_n})

    @classmethod
    def from_state(cls, meta, arrays):
        conf = need(arrays, "confusion").astype(np.float64)
        p, n = need(arrays, "bin_p").astype(np.float64), need(arrays, "bin_n").astype(np.float64)
        if conf.ndim != 2 or conf.shape[0] != conf.shape[1] or p.shape != n.shape or p.ndim != 2:
            raise ValueError("CBPE arrays have inconsistent shapes")
        if conf.shape[0] > MAX_CLASSES or np.any(conf < 0) or np.any(n < 0):
            raise ValueError("CBPE sums out of range")
        return cls(conf, p, n, int(meta["rows"]), int(meta["skipped"]))


def _edges(scores: np.ndarray, per_half: int) -> np.ndarray:
    lo, hi = float(scores.min()), float(scores.max())
    q = np.quantile(scores, np.linspace(0.0, 1.0, per_half + 1)[1:-1])
    even = np.linspace(lo, hi, per_half + 1)[1:-1] if hi > lo else np.empty(0)
    return np.unique(np.concatenate((q, even)))


def _placements(y: np.ndarray, s: np.ndarray) -> List[float]:
    """ROC AUC's sampling-error components (DeLong): the standard deviation of each
    positive's share of negatives scored below it, the share of positives, and the standard
    deviation of each negative's share of positives scored above it. (NannyML keeps the
    first term only, for the minority class; with both terms the band matches the spread of
    realized AUCs, see ``tests/drift/test_estimation.py``.)"""
    order = np.argsort(s, kind="stable")
    ys = y[order]
    npos, nneg = int(ys.sum()), int(ys.size - ys.sum())
    if npos == 0 or nneg == 0:
        return [math.nan, npos / max(ys.size, 1), math.nan]
    below = np.cumsum(1 - ys)[ys == 1] / nneg
    above = (npos - np.cumsum(ys))[ys == 0] / npos
    return [float(np.std(below)), npos / ys.size, float(np.std(above))]


def _components(y: np.ndarray, pred: np.ndarray, scores: np.ndarray, k: int) -> Dict[str, List[List[float]]]:
    """Per metric and class, ``[std, fraction]``: the sampling error of a window of ``n``
    rows is ``std / √(n · fraction)`` (NannyML's formulas; macro averages combine the
    classes as ``√Σ SE_k² / K``); ROC AUC keeps ``[std₊, fraction₊, std₋]`` (DeLong's two
    terms, see :func:`_placements`)."""
    correct = (y == pred).astype(np.float64)
    out: Dict[str, List[List[float]]] = {_ACCURACY: [[float(np.std(correct)), 1.0]]}
    classes = [1] if k == 2 else list(range(k))
    for name in (_PRECISION, _RECALL, _F1, _ROC_AUC):
        out[name] = []
    for c in classes:
        pc, tc = pred == c, y == c
        out[_PRECISION].append([float(np.std(correct[pc])) if pc.any() else math.nan, float(pc.mean())])
        out[_RECALL].append([float(np.std(correct[tc])) if tc.any() else math.nan, float(tc.mean())])
        tp, fp, fn = int((pc & tc).sum()), int((pc & ~tc).sum()), int((~pc & tc).sum())
        rel = tp + fp + fn
        if rel and tp + 0.5 * (fp + fn) > 0:
            obs = np.concatenate((np.ones(tp), np.zeros(fp + fn))) * (rel / (tp + 0.5 * (fp + fn)))
            out[_F1].append([float(np.std(obs)), rel / y.size])
        else:
            out[_F1].append([math.nan, 0.0])
        sc = scores[:, 0] if k == 2 else scores[:, c]
        out[_ROC_AUC].append(_placements(tc.astype(np.float64), sc))
    return out


@register
class ConfidenceEstimator(Extension):
    """The fitted half of CBPE, kept in the profile (see the module docstring).

    Build it with :meth:`fit`; ``Profile.fit(..., performance={...})`` does that for you.
    """

    kind = "cbpe"
    name = "performance"

    def __init__(self, classes: Sequence[Hashable], scores: Sequence[str], calibrations: Sequence[Calibration],
                 edges: Sequence[np.ndarray], prediction: Optional[str] = None, positive: Hashable = 1,
                 threshold: float = 0.5, components: Optional[Dict[str, List[List[float]]]] = None,
                 reference: Optional[Dict[str, Any]] = None):
        self.classes = list(classes)
        self.scores = list(scores)
        self.calibrations = list(calibrations)
        self.edges = [np.asarray(e, dtype=np.float64) for e in edges]
        self.prediction = prediction
        self.positive = positive
        self.threshold = float(threshold)
        self.components = dict(components or {})
        self.reference = dict(reference or {})
        self._lookup = {c: i for i, c in enumerate(self.classes)}
        if len(self.scores) != len(self.calibrations) or len(self.scores) != len(self.edges):
            raise ValueError("one calibration and one set of score bins per score column")
        if not (len(self.scores) == 1 and len(self.classes) == 2) and len(self.scores) != len(self.classes):
            raise ValueError("a binary model has one score column, a multiclass one a column per class")

    @property
    def binary(self) -> bool:
        return len(self.classes) == 2 and len(self.scores) == 1

    def reads(self):
        return tuple(self.scores) + ((self.prediction,) if self.prediction else ())

    # ------------------------------------------------------------------ fit
    @classmethod
    def fit(
        cls,
        target: Any,
        scores: Union[Any, Mapping[Hashable, Any]],
        prediction: Any = None,
        *,
        positive: Hashable = 1,
        threshold: float = 0.5,
        calibration: str = "auto",
        score_columns: Optional[Sequence[str]] = None,
        prediction_column: Optional[str] = None,
        seed: Optional[int] = 0,
    ) -> "ConfidenceEstimator":
        """Fit on the reference's labels.

        Parameters
        ----------
        target
            The reference's true labels.
        scores
            Binary: the probability of ``positive`` per row. Multiclass: ``{label: scores}``.
        prediction
            The model's predicted labels on the reference (None: from the scores).
        positive, threshold
            The positive label (binary), and the score from which a row is predicted
            positive when there is no prediction column.
        calibration
            ``"auto"``, ``"identity"``, ``"platt"`` or ``"isotonic"``.
        score_columns, prediction_column
            The names of these columns in the served data (default ``"score"`` or the
            class labels as strings; ``None``).
        """
        labels = [normalize_label(v) for v in np.asarray(target, dtype=object).tolist()]
        if isinstance(scores, Mapping):
            classes = sorted((normalize_label(c) for c in scores), key=_sort_key)
            missing = sorted({v for v in labels if v is not None} - set(classes), key=_sort_key)
            if missing:
                raise ValueError(f"target labels without a score column: {missing[:5]}")
            by = {normalize_label(c): v for c, v in scores.items()}
            S = np.column_stack([np.asarray(by[c], dtype=np.float64) for c in classes])
            names = list(score_columns) if score_columns else [str(c) for c in classes]
        else:
            found = sorted({v for v in labels if v is not None}, key=_sort_key)
            positive = normalize_label(positive)
            if len(found) > 2 or (len(found) == 2 and positive not in found):
                raise ValueError(f"one score column needs a binary target with positive label {positive!r}; "
                                 f"the target holds {found[:5]}")
            others = [v for v in found if v != positive]
            classes = [others[0] if others else (0 if positive != 0 else 1), positive]
            S = np.asarray(scores, dtype=np.float64).reshape(-1, 1)
            names = list(score_columns) if score_columns else ["score"]
        if len(classes) > MAX_CLASSES:
            raise ValueError(f"at most {MAX_CLASSES} classes, got {len(classes)}")
        if S.shape[0] != len(labels):
            raise ValueError(f"scores have {S.shape[0]} rows, the target {len(labels)}")
        lookup = {c: i for i, c in enumerate(classes)}
        y = np.array([lookup.get(v, -1) if v is not None else -1 for v in labels], dtype=np.int64)
        per_half = max(16, min(256, _EDGE_BUDGET // (2 * S.shape[1])))
        cals, edges = [], []
        for j in range(S.shape[1]):
            yj = (y == (1 if S.shape[1] == 1 else j)).astype(np.float64)
            yj[y < 0] = np.nan
            cals.append(fit_calibrator(S[:, j], yj, method=calibration, seed=seed))
            finite = S[:, j][np.isfinite(S[:, j])]
            edges.append(_edges(finite, per_half) if finite.size else np.empty(0))
        est = cls(classes, names, cals, edges, prediction_column, classes[1] if S.shape[1] == 1 else None,
                  threshold)
        ok = (y >= 0) & np.all(np.isfinite(S), axis=1)
        pred = est._predicted(S, None if prediction is None else np.asarray(prediction, dtype=object))
        ok &= pred >= 0
        if ok.any():
            est.components = _components(y[ok], pred[ok], S[ok], len(classes))
            est.reference = {"rows": int(ok.sum()), _ACCURACY: float(np.mean(y[ok] == pred[ok]))}
        return est

    # ---------------------------------------------------------------- replica
    def _predicted(self, S: np.ndarray, labels: Optional[np.ndarray]) -> np.ndarray:
        """Class index per row (-1: unknown label or missing score)."""
        if labels is not None:
            uniq = None
            if labels.dtype.kind in "iufbUSO":
                try:  # an object column of one comparable type sorts too
                    uniq, inv = np.unique(labels, return_inverse=True)
                except TypeError:
                    uniq = None
            if uniq is not None:
                codes = np.array([self._code(u) for u in uniq.tolist()], dtype=np.int64)
                return codes[inv.reshape(-1)] if codes.size else np.full(labels.shape[0], -1, dtype=np.int64)
            return np.fromiter((self._code(v) for v in labels), dtype=np.int64, count=labels.shape[0])
        with np.errstate(invalid="ignore"):
            if self.binary:
                return np.where(np.isfinite(S[:, 0]), (S[:, 0] >= self.threshold).astype(np.int64), -1)
            finite = np.all(np.isfinite(S), axis=1)
            return np.where(finite, np.argmax(np.where(np.isfinite(S), S, -np.inf), axis=1), -1)

    def _code(self, v: Any) -> int:
        if v is None or (isinstance(v, float) and v != v):
            return -1
        try:
            return self._lookup.get(normalize_label(v), -1)
        except TypeError:
            return -1

    def probabilities(self, S: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities ``(rows, classes)`` from raw scores ``(rows, columns)``."""
        if self.binary:
            p = self.calibrations[0](S[:, 0])
            return np.column_stack((1.0 - p, p))
        Q = np.column_stack([c(S[:, j]) for j, c in enumerate(self.calibrations)])
        total = Q.sum(axis=1, keepdims=True)
        k = Q.shape[1]
        return np.divide(Q, total, out=np.full_like(Q, 1.0 / k), where=total > 0)

    def empty(self) -> ConfidenceSection:
        k = len(self.classes)
        width = max(e.size for e in self.edges) + 1
        return ConfidenceSection(np.zeros((k, k)), np.zeros((len(self.scores), width)),
                                 np.zeros((len(self.scores), width)))

    def summarize(self, batch: Batch) -> ConfidenceSection:
        out = self.empty()
        S = batch.matrix(self.scores)
        labels = batch.columns.get(self.prediction) if self.prediction else None
        pred = self._predicted(S, None if labels is None else np.asarray(labels))
        ok = (pred >= 0) & np.all(np.isfinite(S), axis=1)
        n = int(ok.sum())
        out.skipped = batch.rows - n
        if n == 0:
            return out
        if n < batch.rows:
            S, pred = S[ok], pred[ok]
        P = self.probabilities(S)
        k = len(self.classes)
        for t in range(k):
            out.confusion[t] = np.bincount(pred, weights=P[:, t], minlength=k)
        width = out.bin_p.shape[1]
        for j, e in enumerate(self.edges):
            b = np.searchsorted(e, S[:, j], side="left")
            p = P[:, 1] if self.binary else P[:, j]
            out.bin_p[j] = np.bincount(b, weights=p, minlength=width)
            out.bin_n[j] = np.bincount(b, minlength=width)
        out.rows = n
        return out

    # ------------------------------------------------------------ state
    def state(self):
        meta = {
            "classes": self.classes, "scores": self.scores, "prediction": self.prediction,
            "positive": self.positive, "threshold": self.threshold, "components": self.components,
            "reference": self.reference, "calibrations": [c.to_meta() for c in self.calibrations],
        }
        arrays: Dict[str, np.ndarray] = {}
        for j, (c, e) in enumerate(zip(self.calibrations, self.edges)):
            arrays[f"x{j}"], arrays[f"y{j}"], arrays[f"e{j}"] = c.x, c.y, e
        return meta, arrays

    @classmethod
    def from_state(cls, meta, arrays):
        cals = meta["calibrations"]
        m = len(cals)
        calibrations = [Calibration.from_meta(cals[j], need(arrays, f"x{j}"), need(arrays, f"y{j}")) for j in range(m)]
        edges = [need(arrays, f"e{j}").astype(np.float64).reshape(-1) for j in range(m)]
        if any(np.any(np.diff(e) <= 0) for e in edges):
            raise ValueError("score bin edges are not increasing")
        classes = [normalize_label(c) for c in meta["classes"]]
        if len(classes) > MAX_CLASSES:
            raise ValueError("too many classes")
        return cls(classes, [str(s) for s in meta["scores"]], calibrations, edges, meta.get("prediction"),
                   meta.get("positive"), float(meta.get("threshold", 0.5)), meta.get("components"),
                   meta.get("reference"))
