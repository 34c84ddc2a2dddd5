"""Model performance from ground truth: mergeable accumulators.

Feedback (the true label) arrives after the prediction, on any replica or in the stats
actor. The accumulators here hold only counts and sums, so two of them ``merge`` exactly
(associative and commutative) and serialize to a small JSON-able dict
(:meth:`ClassificationMetrics.to_dict`). Their size never depends on the number of rows.

* :class:`ClassificationMetrics` — a confusion matrix (accuracy, precision, recall, F1)
  and, for binary problems with scores, ROC-AUC from a per-class score histogram.
* :class:`RegressionMetrics` — MAE, RMSE, bias and R² from running sums and Chan's
  parallel moments of the true values.

ROC-AUC from binned scores
--------------------------
Scores (the predicted probability of the positive class) are counted in ``score_bins``
equal-width bins over ``score_range`` per true class. Pairs of a positive and a negative
whose scores fall in different bins are ordered exactly; pairs inside one bin are counted
as ties (½). The error against the exact (tie-aware, as scikit-learn's) AUC is therefore at
most ``½ · Σ_b P(b | positive) · P(b | negative)`` — reported as ``roc_auc_error_bound`` —
and at most ``½ · max_b P(b | negative)``. With the default 1000 bins over [0, 1] and
smooth score distributions this is below 0.001. Scores outside ``score_range`` are clipped
into the outermost bins.

References
----------
Fawcett, T. (2006). An introduction to ROC analysis. Pattern Recognition Letters 27(8).
Chan, T. F., Golub, G. H., LeVeque, R. J. (1979). Updating formulae and a pairwise
algorithm for computing sample variances.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Dict, Hashable, Iterable, List, Optional, Tuple

import numpy as np

from raywatch import series

__all__ = ["ClassificationMetrics", "RegressionMetrics"]

log = logging.getLogger("raywatch.drift.performance")

_BINARY_LABELS = (0, 1)


def _as_list(x: Any) -> List[Any]:
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (list, tuple)):
        return list(x)
    if isinstance(x, (str, bytes)) or not isinstance(x, Iterable):
        return [x]
    return list(x)


def _label_key(v: Any) -> Hashable:
    """Normalize a label so that ``1``, ``1.0``, ``True`` and ``np.int64(1)`` are one key."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if not isinstance(v, Hashable):
        raise TypeError(f"a label must be hashable (str, int, bool), got {type(v).__name__}")
    return v


def _div(a: float, b: float) -> Optional[float]:
    return a / b if b else None


class ClassificationMetrics:
    """Mergeable classification metrics: confusion counts plus a score histogram per class.

    Parameters
    ----------
    positive
        The positive label for binary precision/recall/F1 and ROC-AUC (default ``1``;
        ``True`` and ``1.0`` count as ``1``).
    average
        ``"auto"`` (binary when every label seen is ``positive`` or one other label,
        macro-average over labels otherwise), ``"binary"``, ``"macro"`` or ``"micro"``.
    score_bins, score_range
        Histogram of positive-class scores for ROC-AUC (see the module docstring for the
        error bound).

    Examples
    --------
    >>> m = ClassificationMetrics()
    >>> m.update([1, 0, 1, 1], [1, 0, 0, 1], score=[0.9, 0.2, 0.4, 0.8])
    >>> other = ClassificationMetrics()
    >>> other.update(0, 1, score=0.6)
    >>> r = m.merge(other).result()
    >>> r["rows"], r["accuracy"], round(r["precision"], 3), round(r["recall"], 3)
    (5, 0.6, 0.667, 0.667)
    >>> round(r["roc_auc"], 3)
    0.833
    """

    def __init__(
        self,
        positive: Hashable = 1,
        average: str = "auto",
        score_bins: int = 1000,
        score_range: Tuple[float, float] = (0.0, 1.0),
    ):
        if average not in ("auto", "binary", "macro", "micro"):
            raise ValueError(f"average must be 'auto', 'binary', 'macro' or 'micro', got {average!r}")
        if int(score_bins) < 2:
            raise ValueError(f"score_bins must be at least 2, got {score_bins!r}")
        lo, hi = float(score_range[0]), float(score_range[1])
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise ValueError(f"score_range must be two finite numbers lo < hi, got {score_range!r}")
        self.positive = _label_key(positive)
        self.average = average
        self.score_bins = int(score_bins)
        self.score_range = (lo, hi)
        self._confusion: Dict[Tuple[Hashable, Hashable], int] = {}
        self._pos_scores = np.zeros(self.score_bins, dtype=np.int64)
        self._neg_scores = np.zeros(self.score_bins, dtype=np.int64)
        self.skipped = 0  # rows with a missing label or a non-finite score

    # ------------------------------------------------------------------ updating
    def update(self, y_true: Any, y_pred: Any, score: Any = None) -> None:
        """Add one row (scalars) or many (equal-length sequences).

        Rows whose true or predicted label is ``None`` are skipped and counted in
        :attr:`skipped`; a ``None`` or non-finite score only leaves that row out of ROC-AUC.
        """
        yt, yp = _as_list(y_true), _as_list(y_pred)
        if len(yt) != len(yp):
            raise ValueError(f"y_true and y_pred differ in length ({len(yt)} != {len(yp)})")
        sc: Optional[List[Any]] = None
        if score is not None:
            sc = _as_list(score)
            if len(sc) != len(yt):
                raise ValueError(f"score and y_true differ in length ({len(sc)} != {len(yt)})")
        pos_scores: List[float] = []
        neg_scores: List[float] = []
        for i, (t, p) in enumerate(zip(yt, yp)):
            if t is None or p is None:
                self.skipped += 1
                continue
            kt, kp = _label_key(t), _label_key(p)
            self._confusion[(kt, kp)] = self._confusion.get((kt, kp), 0) + 1
            if sc is not None and sc[i] is not None:
                try:
                    s = float(sc[i])
                except (TypeError, ValueError):
                    raise TypeError(f"a score must be a number, got {type(sc[i]).__name__}") from None
                if math.isfinite(s):
                    (pos_scores if kt == self.positive else neg_scores).append(s)
        if pos_scores:
            self._pos_scores += self._histogram(pos_scores)
        if neg_scores:
            self._neg_scores += self._histogram(neg_scores)

    def _histogram(self, scores: List[float]) -> np.ndarray:
        lo, hi = self.score_range
        s = np.asarray(scores, dtype=np.float64)
        idx = np.floor((s - lo) * (self.score_bins / (hi - lo))).astype(np.int64)
        np.clip(idx, 0, self.score_bins - 1, out=idx)
        return np.bincount(idx, minlength=self.score_bins).astype(np.int64)

    # ------------------------------------------------------------------- merging
    def _check_compatible(self, other: "ClassificationMetrics") -> None:
        if not isinstance(other, ClassificationMetrics):
            raise TypeError(f"cannot merge ClassificationMetrics with {type(other).__name__}")
        if (other.positive, other.score_bins, other.score_range) != (self.positive, self.score_bins, self.score_range):
            raise ValueError(
                "cannot merge ClassificationMetrics with different positive label, score_bins or score_range"
            )

    def merge(self, other: "ClassificationMetrics") -> "ClassificationMetrics":
        """A new accumulator holding both; exact, associative and commutative."""
        self._check_compatible(other)
        out = ClassificationMetrics(self.positive, self.average, self.score_bins, self.score_range)
        out._confusion = dict(self._confusion)
        for k, v in other._confusion.items():
            out._confusion[k] = out._confusion.get(k, 0) + v
        out._pos_scores = self._pos_scores + other._pos_scores
        out._neg_scores = self._neg_scores + other._neg_scores
        out.skipped = self.skipped + other.skipped
        return out

    # ------------------------------------------------------------------- results
    @property
    def rows(self) -> int:
        return sum(self._confusion.values())

    @property
    def labels(self) -> List[Hashable]:
        seen = {k for pair in self._confusion for k in pair}
        return sorted(seen, key=lambda v: (type(v).__name__, v))

    def _mode(self) -> str:
        if self.average != "auto":
            return self.average
        others = [k for k in self.labels if k != self.positive]
        return "binary" if len(others) <= 1 else "macro"

    def _margins(self) -> Tuple[Dict[Hashable, int], Dict[Hashable, int], Dict[Hashable, int]]:
        """``(true positives, row sums, column sums)`` per label, in one pass over the
        confusion counts: every per-label figure is then O(1), so the cost of
        :meth:`result` is linear in the pairs seen (not labels × pairs)."""
        tp: Dict[Hashable, int] = {}
        by_true: Dict[Hashable, int] = {}
        by_pred: Dict[Hashable, int] = {}
        for (t, p), v in self._confusion.items():
            by_true[t] = by_true.get(t, 0) + v
            by_pred[p] = by_pred.get(p, 0) + v
            if t == p:
                tp[t] = tp.get(t, 0) + v
        return tp, by_true, by_pred

    def _prf(self, label: Hashable, margins: Optional[Tuple[Dict, Dict, Dict]] = None
             ) -> Tuple[Optional[float], Optional[float], Optional[float], int, int, int]:
        tps, by_true, by_pred = margins if margins is not None else self._margins()
        tp = tps.get(label, 0)
        fp = by_pred.get(label, 0) - tp
        fn = by_true.get(label, 0) - tp
        precision = _div(tp, tp + fp)
        recall = _div(tp, tp + fn)
        f1 = _div(2 * tp, 2 * tp + fp + fn)
        return precision, recall, f1, tp, fp, fn

    def accuracy(self) -> Optional[float]:
        n = self.rows
        correct = sum(v for (t, p), v in self._confusion.items() if t == p)
        return _div(correct, n)

    def precision_recall_f1(self) -> Tuple[Optional[float], Optional[float], Optional[float]]:
        """Precision, recall and F1 by :attr:`average`; ``None`` where undefined (0/0)."""
        if not self._confusion:
            return None, None, None
        mode = self._mode()
        margins = self._margins()
        if mode == "binary":
            p, r, f, *_ = self._prf(self.positive, margins)
            return p, r, f
        labels = self.labels
        if mode == "micro":
            tp = fp = fn = 0
            for lab in labels:
                _, _, _, a, b, c = self._prf(lab, margins)
                tp, fp, fn = tp + a, fp + b, fn + c
            return _div(tp, tp + fp), _div(tp, tp + fn), _div(2 * tp, 2 * tp + fp + fn)
        per = [self._prf(lab, margins)[:3] for lab in labels]
        # macro: undefined per-label values count as 0, as scikit-learn's zero_division=0
        return tuple(sum((v[i] or 0.0) for v in per) / len(per) for i in range(3))  # type: ignore[return-value]

    def roc_auc(self) -> Tuple[Optional[float], Optional[float]]:
        """``(auc, error_bound)`` from the binned scores; ``(None, None)`` without both classes."""
        npos, nneg = int(self._pos_scores.sum()), int(self._neg_scores.sum())
        if npos == 0 or nneg == 0:
            return None, None
        pos = self._pos_scores.astype(np.float64) / npos
        neg = self._neg_scores.astype(np.float64) / nneg
        neg_below = np.concatenate(([0.0], np.cumsum(neg)[:-1]))
        tie = float(np.dot(pos, neg))
        auc = float(np.dot(pos, neg_below)) + 0.5 * tie
        return min(max(auc, 0.0), 1.0), 0.5 * tie

    def result(self) -> Dict[str, Any]:
        """``rows``, ``accuracy``, ``precision``, ``recall``, ``f1``, ``roc_auc`` and
        ``roc_auc_error_bound`` (``None`` where undefined), plus ``skipped``."""
        p, r, f = self.precision_recall_f1()
        auc, err = self.roc_auc()
        return {
            "rows": self.rows,
            series.ACCURACY.name: self.accuracy(),
            series.PRECISION.name: p,
            series.RECALL.name: r,
            series.F1.name: f,
            series.ROC_AUC.name: auc,
            "roc_auc_error_bound": err,
            "skipped": self.skipped,
        }

    # ------------------------------------------------------------- serialization
    def to_dict(self) -> Dict[str, Any]:
        """A JSON-able dict (sparse histograms); :meth:`from_dict` restores it exactly."""

        def sparse(h: np.ndarray) -> List[List[int]]:
            nz = np.flatnonzero(h)
            return [[int(i), int(h[i])] for i in nz]

        return {
            "kind": "classification",
            "version": 1,
            "positive": self.positive,
            "average": self.average,
            "score_bins": self.score_bins,
            "score_range": list(self.score_range),
            "confusion": [[t, p, c] for (t, p), c in self._confusion.items()],
            "pos_scores": sparse(self._pos_scores),
            "neg_scores": sparse(self._neg_scores),
            "skipped": self.skipped,
        }

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "ClassificationMetrics":
        if not isinstance(d, dict) or d.get("kind") != "classification":
            raise ValueError("not a ClassificationMetrics dict (missing kind='classification')")
        if d.get("version") != 1:
            raise ValueError(f"unsupported ClassificationMetrics version {d.get('version')!r} (expected 1)")
        out = cls(d["positive"], d["average"], d["score_bins"], tuple(d["score_range"]))
        for t, p, c in d["confusion"]:
            out._confusion[(_label_key(t), _label_key(p))] = int(c)
        for i, c in d["pos_scores"]:
            out._pos_scores[int(i)] = int(c)
        for i, c in d["neg_scores"]:
            out._neg_scores[int(i)] = int(c)
        out.skipped = int(d.get("skipped", 0))
        return out

    def __repr__(self) -> str:
        return f"ClassificationMetrics(rows={self.rows}, labels={self.labels!r})"


class RegressionMetrics:
    """Mergeable regression metrics: MAE, RMSE, bias (mean of prediction − truth) and R².

    R² uses Chan's parallel update of the true values' mean and sum of squared deviations,
    so merged results equal those computed on the concatenated rows (to rounding).

    Examples
    --------
    >>> a, b = RegressionMetrics(), RegressionMetrics()
    >>> a.update([1.0, 2.0], [1.5, 2.0])
    >>> b.update(3.0, 2.0)
    >>> r = a.merge(b).result()
    >>> r["rows"], r["mae"], round(r["rmse"], 4), r["bias"]
    (3, 0.5, 0.6455, -0.16666666666666666)
    """

    def __init__(self) -> None:
        self.rows = 0
        self.abs_err = 0.0
        self.sq_err = 0.0
        self.err = 0.0
        self.mean_true = 0.0
        self.m2_true = 0.0
        self.skipped = 0  # rows with a missing or non-finite value

    def update(self, y_true: Any, y_pred: Any) -> None:
        """Add one row (scalars) or many (equal-length sequences). ``None``/NaN/inf rows
        are skipped and counted in :attr:`skipped`."""
        yt, yp = _as_list(y_true), _as_list(y_pred)
        if len(yt) != len(yp):
            raise ValueError(f"y_true and y_pred differ in length ({len(yt)} != {len(yp)})")
        if not yt:
            return
        try:
            t = np.array([np.nan if v is None else v for v in yt], dtype=np.float64)
            p = np.array([np.nan if v is None else v for v in yp], dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError("regression labels and predictions must be numbers") from None
        ok = np.isfinite(t) & np.isfinite(p)
        self.skipped += int(ok.size - ok.sum())
        t, p = t[ok], p[ok]
        n = int(t.size)
        if n == 0:
            return
        e = p - t
        batch = RegressionMetrics()
        batch.rows = n
        batch.abs_err = float(np.abs(e).sum())
        batch.sq_err = float(np.dot(e, e))
        batch.err = float(e.sum())
        batch.mean_true = float(t.mean())
        d = t - batch.mean_true
        batch.m2_true = float(np.dot(d, d))
        self._absorb(batch)

    def _absorb(self, o: "RegressionMetrics") -> None:
        n = self.rows + o.rows
        if n == 0:
            return
        delta = o.mean_true - self.mean_true
        self.m2_true = self.m2_true + o.m2_true + delta * delta * self.rows * o.rows / n
        self.mean_true = self.mean_true + delta * o.rows / n
        self.rows = n
        self.abs_err += o.abs_err
        self.sq_err += o.sq_err
        self.err += o.err

    def merge(self, other: "RegressionMetrics") -> "RegressionMetrics":
        """A new accumulator holding both (Chan et al. for the moments)."""
        if not isinstance(other, RegressionMetrics):
            raise TypeError(f"cannot merge RegressionMetrics with {type(other).__name__}")
        out = RegressionMetrics.from_dict(self.to_dict())
        out._absorb(other)
        out.skipped += other.skipped
        return out

    def result(self) -> Dict[str, Any]:
        """``rows``, ``mae``, ``rmse``, ``bias``, ``r2`` (``None`` where undefined), ``skipped``."""
        n = self.rows
        r2 = None
        # a spread at the level of rounding (identical true values summed in another order) is none
        if n and self.m2_true > n * (1e-14 * self.mean_true) ** 2:
            r2 = 1.0 - self.sq_err / self.m2_true
        return {
            "rows": n,
            series.MAE.name: _div(self.abs_err, n),
            series.RMSE.name: math.sqrt(self.sq_err / n) if n else None,
            "bias": _div(self.err, n),
            "r2": r2,
            "skipped": self.skipped,
        }

    def to_dict(self) -> Dict[str, Any]:
        return {
            "kind": "regression",
            "version": 1,
            "rows": self.rows,
            "abs_err": self.abs_err,
            "sq_err": self.sq_err,
            "err": self.err,
            "mean_true": self.mean_true,
            "m2_true": self.m2_true,
            "skipped": self.skipped,
        }

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "RegressionMetrics":
        if not isinstance(d, dict) or d.get("kind") != "regression":
            raise ValueError("not a RegressionMetrics dict (missing kind='regression')")
        if d.get("version") != 1:
            raise ValueError(f"unsupported RegressionMetrics version {d.get('version')!r} (expected 1)")
        out = cls()
        out.rows = int(d["rows"])
        for k in ("abs_err", "sq_err", "err", "mean_true", "m2_true"):
            setattr(out, k, float(d[k]))
        out.skipped = int(d.get("skipped", 0))
        return out

    def __repr__(self) -> str:
        return f"RegressionMetrics(rows={self.rows})"
