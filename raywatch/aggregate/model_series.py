"""A model's series: its evaluated view as catalogue samples for rules and exposition.

Every name comes from :mod:`raywatch.series`; every series carries the model's labels
(``app``, ``deployment``, ``model``, ``version``) and the catalogue's extra labels
(``feature``, ``method``, ``gpu``). A column that was not tested gives no drift series
(its entry in the view says why). Counters are the model's live totals; gauges come from
the rolling view. A value that is missing or not a number gives no sample.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping

from raywatch import series as catalogue
from raywatch.aggregate.estimate_eval import extension_series
from raywatch.aggregate.model import ModelState
from raywatch.aggregate.segment_series import segment_series
from raywatch.series import Metric, Series

__all__ = ["model_series"]


def model_series(ms: ModelState, r: Mapping[str, Any]) -> List[Series]:
    """The series of ``ms`` from its rolling view ``r`` (see the module docstring)."""
    base = {k: str(v) for k, v in ms.labels.items()}
    out: List[Series] = []

    def add(metric: Metric, value: Any, **extra: str) -> None:
        if type(value) is not float:  # most values are floats already
            if value is None:
                return
            try:
                value = float(value)
            except (TypeError, ValueError):
                return
        if value != value:
            return
        out.append(Series(metric.name, {**base, **extra} if extra else base, value))

    add(catalogue.REQUESTS_TOTAL, ms.totals["requests"])
    add(catalogue.ERRORS_TOTAL, ms.totals["errors"])
    add(catalogue.DROPPED_RECORDS_TOTAL, ms.dropped_total)
    add(catalogue.CAPTURE_ERRORS_TOTAL, ms.capture_errors_total)
    for m in (catalogue.THROUGHPUT_RPS, catalogue.ERROR_RATE) + tuple(m for m, _ in catalogue.LATENCY_QUANTILES):
        add(m, r.get(m.name))
    # columns that were not tested (their entry says why) have no verdict: no drift series
    drift: Dict[str, Any] = {f: d for f, d in (r.get("drift") or {}).items() if d.get("tested", True)}
    for feat, d in drift.items():
        method = str(d.get("method"))
        add(catalogue.DRIFT_SCORE, d.get("statistic"), feature=feat, method=method)
        add(catalogue.DRIFT_P_VALUE, d.get("p_value"), feature=feat, method=method)
        add(catalogue.DRIFT_DETECTED, 1.0 if d.get("drifted") else 0.0, feature=feat)
    if drift:
        add(catalogue.DATASET_DRIFT, 1.0 if r.get(catalogue.DATASET_DRIFT.name) else 0.0)
        add(catalogue.DRIFTED_FEATURES_SHARE, r.get(catalogue.DRIFTED_FEATURES_SHARE.name))
    for feat, q in (r.get("quality") or {}).items():
        for m in catalogue.QUALITY_SHARES:
            add(m, q.get(m.name), feature=feat)
    perf = r.get("performance") or {}
    for m in catalogue.PERFORMANCE:
        add(m, perf.get(m.name))
    add(catalogue.FEEDBACK_ROWS, r.get(catalogue.FEEDBACK_ROWS.name))
    dets = r.get("detectors") or {}
    for name, m in catalogue.DETECTOR_SERIES.items():
        if name in dets and ms.detectors.get(name) is not None:
            add(m, 1.0 if dets[name]["drift"] else 0.0)
    out.extend(extension_series(base, r))  # estimated performance, multivariate drift, outlier shares (issue 13)
    res = r.get("resources") or {}
    for m in catalogue.MODEL_RESOURCES:
        add(m, res.get(m.name))
    for gpu, g in (res.get("gpus") or {}).items():
        for m, key in catalogue.GPU_SERIES:
            add(m, g.get(key), gpu=gpu)
    out.extend(segment_series(ms, r))  # per segment, group, replica and feature (issue 12)
    return out
