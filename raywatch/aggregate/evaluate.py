"""Evaluation: close due windows, compute the rolling view, drift, quality and performance.

:meth:`Evaluator.evaluate_model` closes the windows of a model whose end (+ ``grace``) has
passed — handing each result to ``on_closed`` (the history) — and computes the rolling
view (the last ``windows.rolling`` windows, the open one included): traffic figures,
latency percentiles, drift against the reference profile, data quality, performance from
joined ground truth, resources of the live replicas and the streaming detectors' state.
The result is the model's ``view``; its series (:func:`~raywatch.aggregate.model_series.model_series`)
go to the alert rules and the exposition.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from raywatch import series
from raywatch.aggregate.detectors import NAMES
from raywatch.aggregate.failures import Failures
from raywatch.aggregate.model import ModelState
from raywatch.aggregate.model_series import model_series
from raywatch.aggregate.windows import Window, aggregate_resources
from raywatch.config import WindowConfig
from raywatch.drift import detect_drift
from raywatch.drift.report import DriftReport

__all__ = ["Evaluator", "rolling_horizon"]

_RESOURCE_FIELDS = tuple(m.name for m in series.MODEL_RESOURCES) + (series.GPU_UTILIZATION.name,)
_QUALITY_FIELDS = tuple(m.name for m in series.QUALITY_SHARES) + ("wrong_type_share",)


def rolling_horizon(now: float, wc: WindowConfig) -> float:
    """Start of the oldest window in the rolling view at ``now``."""
    return math.floor(now / wc.length) * wc.length - (wc.rolling - 1) * wc.length


def _resource_fields(res: Mapping[str, Any]) -> Dict[str, Any]:
    return {k: res.get(k) for k in _RESOURCE_FIELDS}


def _drift_fields(report: DriftReport) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Per-feature drift and dataset-level fields from a DriftReport."""
    cols = {}
    for name, c in report.columns.items():
        if not c.tested:
            continue  # skipped column (too few rows, ...): no verdict to report
        cols[name] = {"method": c.method, "statistic": c.statistic, "p_value": c.p_value,
                      "p_value_adjusted": c.p_value_adjusted, "threshold": c.threshold, "drifted": bool(c.drifted)}
    quality = {}
    for name, q in report.quality.items():
        entry = {k: getattr(q, k) for k in _QUALITY_FIELDS}  # the fields of ColumnQuality
        entry["issues"] = list(q.issues or [])
        quality[name] = entry
    extra = {
        series.DATASET_DRIFT.name: bool(report.dataset_drift),
        series.DRIFTED_FEATURES_SHARE.name: report.drift_share,
        "quality": quality,
    }
    return cols, extra


class Evaluator:
    """Closes windows and computes views (see the module docstring)."""

    def __init__(self, windows: WindowConfig, replica_ttl: float, failures: Failures, *,
                 on_closed: Callable[[ModelState, Window, Dict[str, Any]], None]):
        self.wc = windows
        self.replica_ttl = replica_ttl
        self.failures = failures
        self.on_closed = on_closed

    def close_windows(self, ms: ModelState, now: float) -> List[Dict[str, Any]]:
        results = []
        for start in sorted(ms.open):
            w = ms.open[start]
            if w.end + self.wc.grace > now:
                break
            del ms.open[start]
            ms.closed_until = max(ms.closed_until, w.end)
            try:
                res = self.window_result(ms, w, seconds=w.end - w.start)
                results.append(res)
                self.on_closed(ms, w, res)
            except Exception as exc:
                self.failures.fail("window.close", exc)
            ms.closed.append(w)
        horizon = rolling_horizon(now, self.wc)
        while ms.closed and ms.closed[0].start < horizon:
            ms.closed.popleft()
        return results

    def _drift(self, ms: ModelState, w: Window) -> Optional[DriftReport]:
        if ms.profile is None or w.summary is None or w.rows == 0:
            return None
        return detect_drift(ms.profile, w.summary, ms.config.drift)

    def window_result(self, ms: ModelState, w: Window, seconds: float) -> Dict[str, Any]:
        res = w.figures(seconds)
        res.update(_resource_fields(aggregate_resources(w.resources)))
        res[series.DATASET_DRIFT.name] = False
        res[series.DRIFTED_FEATURES_SHARE.name] = None
        res["quality"] = {}
        drift: Dict[str, Any] = {}
        try:
            report = self._drift(ms, w)
        except Exception as exc:
            self.failures.fail("drift", exc)
            report = None
        if report is not None:
            drift, extra = _drift_fields(report)
            res.update(extra)
        res["drift"] = drift
        perf: Dict[str, Any] = {}
        if w.perf is not None:
            try:
                perf = dict(w.perf.result())
            except Exception as exc:
                self.failures.fail("performance", exc)
        res["performance"] = perf
        return res

    def rolling(self, ms: ModelState, now: float) -> Tuple[Window, float]:
        """The rolling view at ``now`` and the seconds it covers."""
        wc = self.wc
        horizon = rolling_horizon(now, wc)
        done = tuple(w for w in ms.closed if w.start >= horizon)
        ws = list(done[-1:]) + [ms.open[s] for s in sorted(ms.open) if s >= horizon]
        if len(done) > 1:  # closed windows never change: their merge is kept until the view moves on
            cached = ms.closed_view
            if cached is None or len(cached[0]) != len(done) or any(a is not b for a, b in zip(cached[0], done)):
                cached = ms.closed_view = (done, Window.merged(done))
            ws[0] = cached[1]  # merging it with the open windows equals merging them all, in order
        view = Window.merged(ws) if ws else Window(horizon, horizon + wc.rolling * wc.length)
        begin = max(horizon, ms.first_seen if ms.first_seen is not None else horizon)
        # up to the newest data, which lags ``now`` by the replicas' flush delay; but never
        # further back than ``grace`` so that a model whose traffic stopped decays to 0 rps
        end = max(min(now, view.last_ts), now - wc.grace) if view.last_ts is not None else now
        return view, max(end - begin, 1e-9)

    def live_resources(self, ms: ModelState, now: float) -> Dict[str, Dict[str, Any]]:
        """The latest resources of each live replica; long-gone replicas are retired
        (their counters kept in the model's ``retired``)."""
        ttl = self.replica_ttl
        out = {}
        for rid, r in list(ms.replicas.items()):
            if now - r.last_seen > ttl and r.last_seen > 0:
                if now - r.last_seen > max(ttl * 10, 3600.0):
                    ms.retired["dropped"] += r.dropped_total
                    ms.retired["capture_errors"] += r.capture_errors_total
                    del ms.replicas[rid]
                continue
            if r.resources:
                out[rid] = r.resources
        return out

    def evaluate_model(self, ms: ModelState, now: float) -> Dict[str, Any]:
        closed = self.close_windows(ms, now)
        view, seconds = self.rolling(ms, now)
        res = self.window_result(ms, view, seconds)
        resources = aggregate_resources(self.live_resources(ms, now))
        res.update(_resource_fields(resources))
        res["resources"] = resources
        span = self.wc.rolling * self.wc.length
        res["detectors"] = {
            name: {
                "method": ms.detector_config(name).method,
                "drift": bool(ms.detector_hits.get(name) is not None and now - ms.detector_hits[name] <= span),
                "last_detected": ms.detector_hits.get(name),
                "detections": ms.detector_counts.get(name, 0),
                "restarts": ms.detector_restarts.get(name, 0),
            }
            for name in NAMES
        }
        current = max(ms.open.values(), key=lambda w: w.start) if ms.open else (ms.closed[-1] if ms.closed else None)
        ms.view = {
            "evaluated_at": now,
            "rolling": res,
            "window": current.figures(current.end - current.start) if current is not None else None,
            "closed": closed,
        }
        try:
            ms.series = model_series(ms, res)
        except Exception as exc:
            self.failures.fail("series", exc)
            ms.series = []
        return ms.view
