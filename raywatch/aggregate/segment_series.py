"""A model's per-segment, fairness, replica and attribution series (issue 12).

From the rolling view's results of :mod:`raywatch.aggregate.segment_eval`, as catalogue
samples (:mod:`raywatch.series`), each with the model's labels:

* per segment, with ``segment_column`` and ``segment``: ``segment_rows``,
  ``segment_requests``, ``segment_missed_rows``, the error rate and latency percentiles, the
  drift test of each feature (``drift_score``, ``drift_p_value``, ``drift_detected``),
  ``dataset_drift`` and ``drifted_features_share``, the data-quality shares, the performance
  from joined labels and ``feedback_rows`` — the names of the model-wide series, so that
  ``accuracy{segment_column="country"} < 0.8`` is one alert per country;
* per protected attribute (``attribute``) the cross-group figures, per group (``group``) its
  rates and rows, and the bounds of each figure's interval (``fairness_ci_low`` /
  ``fairness_ci_high``, ``figure`` naming it) — only figures that were *tested* (enough rows);
* per replica, ``replica_outlier`` (0/1) and ``replica_outlier_score``;
* per prediction and feature, ``drift_attribution_share`` when the prediction drifted.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping

from raywatch import series as catalogue
from raywatch.aggregate.model import ModelState
from raywatch.aggregate.segment_eval import ATTRIBUTION, FAIRNESS, REPLICA_OUTLIERS, SEGMENTS
from raywatch.series import Metric, Series

__all__ = ["segment_series"]

_FIGURE_PREFIX = "fairness_"


class _Out:
    """Samples with the model's labels; a value that is missing or not a number gives none."""

    def __init__(self, labels: Mapping[str, Any]):
        self.base = {k: str(v) for k, v in labels.items()}
        self.samples: List[Series] = []

    def __call__(self, metric: Metric, value: Any, **labels: str) -> None:
        if value is None or isinstance(value, str):
            return
        try:
            v = float(value)
        except (TypeError, ValueError):
            return
        if v == v:
            self.samples.append(Series(metric.name, dict(self.base, **labels), v))


def _segment(out: _Out, col: str, e: Mapping[str, Any]) -> None:
    seg = {catalogue.SEGMENT_COLUMN: col, catalogue.SEGMENT: str(e.get("segment"))}
    out(catalogue.SEGMENT_ROWS, e.get("rows"), **seg)
    out(catalogue.SEGMENT_REQUESTS, e.get("requests"), **seg)
    out(catalogue.SEGMENT_MISSED_ROWS, e.get("missed_rows"), **seg)
    for m in (catalogue.ERROR_RATE,) + tuple(m for m, _ in catalogue.LATENCY_QUANTILES):
        out(m, e.get(m.name), **seg)
    drift = e.get("drift") or {}
    for feat, d in drift.items():
        method = str(d.get("method"))
        out(catalogue.DRIFT_SCORE, d.get("statistic"), feature=feat, method=method, **seg)
        out(catalogue.DRIFT_P_VALUE, d.get("p_value"), feature=feat, method=method, **seg)
        out(catalogue.DRIFT_DETECTED, 1.0 if d.get("drifted") else 0.0, feature=feat, **seg)
    if catalogue.DATASET_DRIFT.name in e:
        out(catalogue.DATASET_DRIFT, 1.0 if e[catalogue.DATASET_DRIFT.name] else 0.0, **seg)
        out(catalogue.DRIFTED_FEATURES_SHARE, e.get(catalogue.DRIFTED_FEATURES_SHARE.name), **seg)
    for feat, q in (e.get("quality") or {}).items():
        for m in catalogue.QUALITY_SHARES:
            out(m, q.get(m.name), feature=feat, **seg)
    perf = e.get("performance") or {}
    for m in catalogue.PERFORMANCE:
        out(m, perf.get(m.name), **seg)
    out(catalogue.FEEDBACK_ROWS, e.get(catalogue.FEEDBACK_ROWS.name), **seg)


def _interval(out: _Out, attr: str, group: str, figure: str, est: Mapping[str, Any]) -> None:
    out(catalogue.FAIRNESS_CI_LOW, est.get("low"), attribute=attr, group=group, figure=figure)
    out(catalogue.FAIRNESS_CI_HIGH, est.get("high"), attribute=attr, group=group, figure=figure)


def _fairness(out: _Out, attr: str, rep: Mapping[str, Any]) -> None:
    for m, field in catalogue.FAIRNESS_FIGURES:
        est = rep.get(field) or {}
        if est.get("tested"):
            out(m, est.get("value"), attribute=attr)
            _interval(out, attr, "", m.name[len(_FIGURE_PREFIX):], est)
    rows = rep.get("group_rows") or {}
    for group, g in (rep.get("groups") or {}).items():
        out(catalogue.FAIRNESS_GROUP_ROWS, rows.get(group), attribute=attr, group=group)
        for m, field in catalogue.FAIRNESS_GROUP_FIGURES:
            est = g.get(field) or {}
            if est.get("tested"):
                out(m, est.get("value"), attribute=attr, group=group)
                _interval(out, attr, group, field, est)


def segment_series(ms: ModelState, r: Mapping[str, Any]) -> List[Series]:
    """The issue-12 series of ``ms`` from its rolling view ``r`` (see the module docstring)."""
    out = _Out(ms.labels)
    for col, entries in (r.get(SEGMENTS) or {}).items():
        for e in entries:
            _segment(out, col, e)
    for attr, rep in (r.get(FAIRNESS) or {}).items():
        _fairness(out, attr, rep)
    seen: Dict[str, bool] = {}
    for rep in (r.get(REPLICA_OUTLIERS) or {}).values():
        for rid, v in (rep.get("replicas") or {}).items():
            if v.get("tested") and rid not in seen:
                seen[rid] = True
                out(catalogue.REPLICA_OUTLIER, 1.0 if v.get("outlier") else 0.0, replica=rid)
                out(catalogue.REPLICA_OUTLIER_SCORE, v.get("score"), replica=rid)
    for pred, a in (r.get(ATTRIBUTION) or {}).items():
        for f in a.get("features") or []:
            out(catalogue.DRIFT_ATTRIBUTION_SHARE, f.get("share"), prediction=pred, feature=str(f.get("feature")))
    return out.samples
