"""A Grafana dashboard over raywatch's Prometheus metrics, built from the metric catalogue:
every query names its series through :mod:`raywatch.series`, and each panel's unit follows
the catalogue's unit of the series it draws (a panel that mixes units or draws rates says
its own). Rule thresholds are drawn as dashed lines, as the same floats the rules hold.

>>> dash = grafana_dashboard()
>>> dash["panels"][0]["targets"][0]["expr"]
'sum by (model, version) (raywatch_throughput_rps{app=~"$app", deployment=~"$deployment", model=~"$model"})'
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from raywatch import series as S
from raywatch.export.base import rules_of
from raywatch.series import Metric

__all__ = ["grafana_dashboard"]

_SEL = 'app=~"$app", deployment=~"$deployment", model=~"$model"'
_DS = {"type": "prometheus", "uid": "${datasource}"}

# Grafana's unit of each catalogue unit (anything else: "short")
_UNITS = {"requests per second": "reqps", "ratio": "percentunit", "seconds": "s", "percent": "percent",
          "percent of a core": "percent", "bytes": "bytes"}


def _q(agg: str, m: Metric, by: str = "model", segments: bool = False) -> str:
    """``agg by (by) (raywatch_<name>{<dashboard variables>})``: a metric also computed per
    segment reads its model-wide series (``segment=""``), or with ``segments`` the
    per-segment ones of the chosen segment columns."""
    sel = _SEL
    if segments:
        sel += f', {S.SEGMENT_COLUMN}=~"${S.SEGMENT_COLUMN}", {S.SEGMENT}!=""'
    elif m.name in S.SEGMENTED:
        sel += f', {S.SEGMENT}=""'
    return f"{agg} by ({by}) ({m.prometheus}{{{sel}}})"


def _segment_panels(g: "_Layout") -> None:
    """Segments (worst first), fairness, replica outliers and drift attribution (issue 12)."""
    seg = f"model, {S.SEGMENT_COLUMN}, {S.SEGMENT}"
    legend = f"{{{{model}}}} {{{{{S.SEGMENT_COLUMN}}}}}={{{{{S.SEGMENT}}}}}"
    g.add("Worst segments: accuracy", [(f"bottomk(10, {_q('min', S.ACCURACY, seg, True)})", legend)], S.ACCURACY)
    g.add("Segments: drifted features share", [(f"topk(10, {_q('max', S.DRIFTED_FEATURES_SHARE, seg, True)})", legend)],
          S.DRIFTED_FEATURES_SHARE)
    g.add("Segments: error rate", [(f"topk(10, {_q('max', S.ERROR_RATE, seg, True)})", legend)], S.ERROR_RATE)
    g.add("Segments: latency p95", [(f"topk(10, {_q('max', S.LATENCY_P95_SECONDS, seg, True)})", legend)],
          S.LATENCY_P95_SECONDS)
    g.add("Fairness: disparate impact", [(_q("min", S.FAIRNESS_DISPARATE_IMPACT, "model, attribute"),
                                          "{{model}} {{attribute}}")], S.FAIRNESS_DISPARATE_IMPACT)
    g.add("Fairness: equalized odds difference", [(_q("max", S.FAIRNESS_EQUALIZED_ODDS_DIFFERENCE, "model, attribute"),
                                                   "{{model}} {{attribute}}")], S.FAIRNESS_EQUALIZED_ODDS_DIFFERENCE)
    g.add("Replica outliers", [(_q("max", S.REPLICA_OUTLIER_SCORE, "model, replica"), "{{model}} {{replica}}")],
          S.REPLICA_OUTLIER_SCORE)
    g.add("Drift attribution", [(_q("max", S.DRIFT_ATTRIBUTION_SHARE, "model, prediction, feature"),
                                 "{{prediction}} ← {{feature}}")], S.DRIFT_ATTRIBUTION_SHARE)


def _rate(m: Metric, by: str, sel: str = _SEL) -> str:
    inner = f"{m.prometheus}{{{sel}}}" if sel else m.prometheus
    return f"sum by ({by}) (rate({inner}[$__rate_interval]))"


class _Layout:
    """Panels placed left to right on Grafana's 24-column grid, wrapping into rows."""

    def __init__(self, thresholds: Dict[str, List[float]]):
        self.panels: List[Dict[str, Any]] = []
        self.thresholds = thresholds
        self.x = self.y = self.h = 0

    def add(self, title: str, targets: Sequence[Tuple[str, str]], metric: Optional[Metric] = None,
            unit: Optional[str] = None, kind: str = "timeseries", w: int = 12, h: int = 8) -> None:
        if self.x + w > 24:  # next row
            self.x, self.y, self.h = 0, self.y + self.h, 0
        x, y = self.x, self.y
        self.x += w
        self.h = max(self.h, h)
        if unit is None:
            unit = _UNITS.get(metric.unit, "short") if metric is not None else "short"
        p: Dict[str, Any] = {
            "id": len(self.panels) + 1, "type": kind, "title": title, "datasource": dict(_DS),
            "gridPos": {"h": h, "w": w, "x": x, "y": y},
            "targets": [{"refId": chr(65 + i), "expr": e, "legendFormat": lf, "datasource": dict(_DS)}
                        for i, (e, lf) in enumerate(targets)],
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom"}} if kind == "timeseries" else {},
        }
        lines = self.thresholds.get(metric.name) if metric is not None else None
        if lines:
            steps = [{"color": "green", "value": None}] + [{"color": "red", "value": t} for t in sorted(lines)]
            p["fieldConfig"]["defaults"]["thresholds"] = {"mode": "absolute", "steps": steps}
            p["fieldConfig"]["defaults"]["custom"] = {"thresholdsStyle": {"mode": "dashed"}}
        self.panels.append(p)


def grafana_dashboard(cfg: Any = None, *, title: str = "raywatch: model monitoring", uid: str = "raywatch-models") -> Dict[str, Any]:
    """A Grafana dashboard (JSON model, schemaVersion 39) over raywatch's Prometheus metrics,
    with ``datasource``, ``app``, ``deployment`` and ``model`` variables. When ``cfg`` has
    rules, thresholds appear as dashed lines on the matching panels."""
    thresholds: Dict[str, List[float]] = {}
    if cfg is not None:
        for r in rules_of(cfg).rules:
            thresholds.setdefault(r.metric, []).append(r.threshold)
    g = _Layout(thresholds)
    g.add("Throughput", [(_q("sum", S.THROUGHPUT_RPS, "model, version"), "{{model}} {{version}}")], S.THROUGHPUT_RPS)
    g.add("Error rate", [(_q("max", S.ERROR_RATE, "model, version"), "{{model}} {{version}}")], S.ERROR_RATE)
    g.add("Latency", [(_q("max", m), f"p{round(q * 100)} {{{{model}}}}") for m, q in S.LATENCY_QUANTILES],
          S.LATENCY_P95_SECONDS)
    g.add("Drift score by feature", [(_q("max", S.DRIFT_SCORE, "model, feature"), "{{model}} {{feature}}")], S.DRIFT_SCORE)
    g.add("Drifted features share", [(_q("max", S.DRIFTED_FEATURES_SHARE), "{{model}}"),
                                     (_q("max", S.DATASET_DRIFT), "dataset drift {{model}}")], S.DRIFTED_FEATURES_SHARE)
    g.add("Data quality", [(_q("max", m, "model, feature"), f"{legend} {{{{feature}}}}") for m, legend in
                           ((S.MISSING_SHARE, "missing"), (S.OUT_OF_RANGE_SHARE, "out of range"),
                            (S.UNSEEN_CATEGORY_SHARE, "unseen"))], S.MISSING_SHARE)
    classification = [m for m in S.PERFORMANCE if m.unit == "ratio"]
    regression = [m for m in S.PERFORMANCE if m.unit != "ratio"]
    g.add("Model performance", [(_q("max", m), f"{m.name} {{{{model}}}}") for m in classification], classification[0])
    g.add("Regression error", [(_q("max", m), f"{m.name} {{{{model}}}}") for m in regression], regression[0])
    # ---- issue 13: estimated against realized performance, the concept-drift signal, multivariate drift, outliers
    g.add("Estimated vs realized performance", [(_q("max", m), f"estimated {m.name.split('_', 1)[1]} {{{{model}}}}")
                                                for m in (S.ESTIMATED_ACCURACY, S.ESTIMATED_ROC_AUC)]
          + [(_q("max", m), f"realized {m.name} {{{{model}}}}") for m in (S.ACCURACY, S.ROC_AUC)]
          + [(_q("max", b, "model, metric"), f"{side} {{{{metric}}}} {{{{model}}}}")
             for b, side in ((S.ESTIMATED_PERFORMANCE_LOWER, "band low"), (S.ESTIMATED_PERFORMANCE_UPPER, "band high"))],
          S.ESTIMATED_ACCURACY)
    g.add("Estimation disagreement (concept drift)", [(_q("max", S.ESTIMATION_DISAGREEMENT, "model, metric"),
                                                       "{{metric}} {{model}}")], S.ESTIMATION_DISAGREEMENT)
    g.add("Multivariate drift", [(_q("max", S.RECONSTRUCTION_ERROR), "reconstruction error {{model}}"),
                                 (_q("max", S.RECONSTRUCTION_ERROR_UPPER), "band high {{model}}"),
                                 (_q("max", S.CORRELATION_CHANGE_MAX), "largest correlation change {{model}}"),
                                 (_q("max", S.MULTIVARIATE_DRIFT), "multivariate drift {{model}}")], unit="short")
    g.add("Outlier share", [(_q("max", S.OUTLIER_SHARE, "model, feature"), "{{feature}} {{model}}")], S.OUTLIER_SHARE)
    g.add("CPU and memory", [(_q("max", S.CPU_PERCENT), "cpu % {{model}}"),
                             (_q("max", S.NODE_MEMORY_PERCENT), "node memory % {{model}}")], S.CPU_PERCENT)
    g.add("GPU", [(_q("max", S.GPU_UTILIZATION, "model, gpu"), "util {{gpu}}"),
                  (_q("max", S.GPU_MEMORY_USED_BYTES, "model, gpu") + " / 1e9", "memory GB {{gpu}}")],
          S.GPU_UTILIZATION, unit="short")  # percent and GB on one axis
    g.add("Records dropped by replicas", [(_rate(S.DROPPED_RECORDS_TOTAL, "model"), "{{model}}")], unit="ops")
    g.add("Notifications", [(_rate(m, "sink", ""), f"{legend} {{{{sink}}}}") for m, legend in
                            ((S.NOTIFICATIONS_SENT_TOTAL, "sent"), (S.NOTIFICATIONS_FAILED_TOTAL, "failed"),
                             (S.NOTIFICATIONS_DEAD_LETTERED_TOTAL, "dead-lettered"))], unit="ops")
    _segment_panels(g)
    firing = f"{S.ALERT_STATE.prometheus}{{{_SEL}}} == 2"
    g.add("Firing alerts", [(firing, "{{alertname}} {{severity}} {{model}} {{feature}}")], kind="table", w=24)

    def var(name: str, query: str) -> Dict[str, Any]:
        return {"name": name, "type": "query", "datasource": dict(_DS),
                "definition": query, "query": {"query": query, "refId": f"var-{name}"}, "refresh": 2,
                "includeAll": True, "multi": True, "allValue": ".*", "current": {}, "sort": 1}

    requests = S.REQUESTS_TOTAL.prometheus
    return {
        "title": title,
        "uid": uid,
        "tags": ["raywatch", "ray-serve", "ml"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus", "current": {}, "hide": 0},
            var("app", f"label_values({requests}, app)"),
            var("deployment", f'label_values({requests}{{app=~"$app"}}, deployment)'),
            var("model", f'label_values({requests}{{app=~"$app", deployment=~"$deployment"}}, model)'),
            var(S.SEGMENT_COLUMN, f"label_values({S.SEGMENT_ROWS.prometheus}, {S.SEGMENT_COLUMN})"),
        ]},
        "annotations": {"list": [{
            "name": "raywatch alerts", "enable": True, "iconColor": "red", "datasource": dict(_DS),
            "expr": firing, "titleFormat": "{{alertname}}", "textFormat": "{{model}} {{severity}}",
        }]},
        "panels": g.panels,
    }
