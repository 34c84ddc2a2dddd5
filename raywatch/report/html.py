"""The HTML report: one self-contained, offline file built from the stats actor's
``history()`` dict (see ``raywatch.actor``). Charts are inline SVG drawn in Python
(:mod:`raywatch.report.svg`); there is no script and nothing is fetched.

Per model: summary figures; per feature the reference and current distributions side by
side with the latest drift test; drift p-values over time (heat strip) and drift
statistics per feature (lines); latency percentiles; throughput and errors; resource use;
performance from feedback. Then the alert timeline and the alert log for all models.

A window's figures are keyed by the names of the metric catalogue (:mod:`raywatch.series`),
and each chart's axis labels use the catalogue's unit of what it draws.

>>> h = {"models": {"fraud/FraudModel": {"labels": {"app": "fraud"}, "features": {},
...      "windows": [{"start": 0, "end": 60, "requests": 10, "errors": 0,
...                   "latency_p95_seconds": 0.01, "drift": {}}]}}, "alerts": []}
>>> page = render_report(h, title="demo")
>>> page.startswith("<!DOCTYPE html>") and "<script" not in page and "fraud/FraudModel" in page
True
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
from html import escape
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from raywatch import series as S
from raywatch.report import svg
from raywatch.report.bins import display_hist
from raywatch.report.segments import segment_section
from raywatch.report.estimation import estimation_section
from raywatch.report.audit import decision_marks, remediation_section
from raywatch.report.models_table import TOP, models_table, worst_models
from raywatch.report.strips import heat_strip, timeline
from raywatch.report.style import CSS
from raywatch.series import Metric

logger = logging.getLogger("raywatch.report")

__all__ = ["render_report", "write_report"]

Event = Tuple[float, str]

# what the performance charts draw (a window's performance dict also holds counts and bounds):
# the catalogue's performance metrics, and two regression figures that are not series
_PERF_KEYS = tuple(m.name for m in S.PERFORMANCE) + ("mape", "r2")
_CLASSIFICATION_KEYS = frozenset(m.name for m in S.PERFORMANCE if m.unit == "ratio")

# the chart unit (svg.format_value's) of a catalogue unit
_UNITS = {"seconds": "s", "bytes": "B", "percent": "%", "percent of a core": "%"}


def _unit(m: Metric) -> str:
    return _UNITS.get(m.unit, "")


def _num(v: Any) -> Optional[float]:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)) and math.isfinite(v):
        return float(v)
    return None


def _neglog10(p: Any) -> Optional[float]:
    v = _num(p)
    if v is None or v < 0:
        return None
    return min(30.0, -math.log10(max(v, 1e-30)))


def _utc(ts: Optional[float]) -> str:
    if _num(ts) is None:
        return "–"
    return _dt.datetime.fromtimestamp(float(ts), _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _t(w: Mapping[str, Any]) -> Optional[float]:
    """A window's position on the time axis: its end (when its figures are complete)."""
    return _num(w.get("end", w.get("start")))


def _series(windows: Sequence[Mapping[str, Any]], key: str, scale: float = 1.0) -> List[Tuple[float, Optional[float]]]:
    out = []
    for w in windows:
        x = _t(w)
        if x is None:
            continue
        v = _num(w.get(key))
        out.append((x, None if v is None else v * scale))
    return out


def _has(series: Iterable[Tuple[float, Optional[float]]]) -> bool:
    return any(v is not None for _, v in series)


def _latest(windows: Sequence[Mapping[str, Any]], part: str, feature: str) -> Optional[Mapping[str, Any]]:
    """The newest window's ``part`` (``drift``, ``quality``) entry of ``feature``."""
    for w in reversed(windows):
        d = (w.get(part) or {}).get(feature)
        if d:
            return d
    return None


def _tested(d: Mapping[str, Any]) -> bool:
    return bool(d.get("tested", True))


def _badge(d: Optional[Mapping[str, Any]]) -> str:
    if not d:
        return '<span class="badge na">not tested yet</span>'
    if not _tested(d):
        return '<span class="badge na">not tested</span>'
    if d.get("drifted"):
        return '<span class="badge drift">drift</span>'
    return '<span class="badge ok">no drift</span>'


def _drift_meta(d: Optional[Mapping[str, Any]]) -> str:
    if not d:
        return "no drift test in this period"
    if not _tested(d):
        return escape(str(d.get("why") or d.get("reason") or "not tested"))
    parts = [f"method {escape(str(d.get('method', '?')))}"]
    if _num(d.get("statistic")) is not None:
        parts.append(f"statistic {svg.format_value(d['statistic'])}")
    if _num(d.get("p_value_adjusted")) is not None:  # the p-value that decides
        parts.append(f"p_adj {svg.format_value(d['p_value_adjusted'])} (after the correction across features)")
    elif _num(d.get("p_value")) is not None:
        parts.append(f"p-value {svg.format_value(d['p_value'])}")
    return " · ".join(parts)


def _quality_meta(q: Optional[Mapping[str, Any]]) -> str:
    """The data-quality issues of a feature, each share beside the reference's rate."""
    issues = list((q or {}).get("issues") or [])
    if not issues:
        return ""
    parts = []
    for issue in issues:
        v, ref = _num(q.get(issue)), _num(q.get(f"{issue}_reference"))
        parts.append(f"{escape(issue)} {svg.format_value(None if v is None else v * 100, '%')}"
                     + (f" (reference {svg.format_value(ref * 100, '%')})" if ref is not None else ""))
    return '<div class="quality">data quality: ' + ", ".join(parts) + "</div>"


def _tile(key: str, value: str, bad: bool = False) -> str:
    return f'<div class="tile{" bad" if bad else ""}"><div class="v">{escape(value)}</div><div class="k">{escape(key)}</div></div>'


def _alert_spans(alerts: Sequence[Mapping[str, Any]]):
    """Pair firing and resolved events per alert (name + labels) into timeline spans."""
    open_: Dict[Tuple[str, str], Tuple[float, Mapping[str, Any]]] = {}
    spans: List[Tuple[str, float, Optional[float], str, str]] = []
    lanes: List[str] = []

    def lane_of(a: Mapping[str, Any]) -> str:
        labels = a.get("labels") or {}
        extra = [str(labels[k]) for k in ("feature", "deployment", "model") if labels.get(k)]
        name = str(a.get("alertname") or labels.get("alertname") or "alert")
        return name + (f" ({', '.join(extra[:2])})" if extra else "")

    for a in sorted(alerts, key=lambda a: _num(a.get("ts")) or 0.0):
        ts = _num(a.get("ts"))
        if ts is None:
            continue
        lane = lane_of(a)
        if lane not in lanes:
            lanes.append(lane)
        key = (lane, repr(sorted((a.get("labels") or {}).items())))
        state = str(a.get("state", "firing")).lower()
        summary = (a.get("annotations") or {}).get("summary") or ""
        if state == "firing":
            if key not in open_:
                open_[key] = (ts, a)
        elif state == "resolved":
            start, first = open_.pop(key, (ts, a))
            spans.append((lane, start, ts, str(first.get("severity", "")), f"{lane}: {_utc(start)} → {_utc(ts)} {summary}"))
    for (lane, _), (start, a) in open_.items():
        summary = (a.get("annotations") or {}).get("summary") or ""
        spans.append((lane, start, None, str(a.get("severity", "")), f"{lane}: firing since {_utc(start)} {summary}"))
    return lanes, spans


def _model_section(key: str, model: Mapping[str, Any], events: Sequence[Event], anchor: str) -> str:
    windows = sorted(model.get("windows") or [], key=lambda w: _t(w) or 0.0)
    features = model.get("features") or {}
    labels = model.get("labels") or {}
    out = [f'<h2 id="{anchor}">{escape(key)}</h2>']
    if labels:
        out.append('<p class="note">' + " · ".join(f"{escape(str(k))}={escape(str(v))}" for k, v in labels.items()) + "</p>")

    # ---- summary tiles
    requests = sum(_num(w.get("requests")) or 0 for w in windows)
    errors = sum(_num(w.get("errors")) or 0 for w in windows)
    p95 = [v for _, v in _series(windows, S.LATENCY_P95_SECONDS.name) if v is not None]
    last = windows[-1] if windows else {}
    drifted_now = sorted(f for f, d in (last.get("drift") or {}).items() if d and d.get("drifted"))
    ever = sorted({f for w in windows for f, d in (w.get("drift") or {}).items() if d and d.get("drifted")})
    tiles = [
        _tile("requests", f"{requests:,.0f}"),
        _tile("error rate", f"{(errors / requests if requests else 0):.2%}", bad=errors > 0),
        _tile("p95 latency (last window)", svg.format_value(p95[-1] if p95 else None, _unit(S.LATENCY_P95_SECONDS))),
        _tile("p95 latency (worst window)", svg.format_value(max(p95) if p95 else None, _unit(S.LATENCY_P95_SECONDS))),
        _tile("features drifted (last window)", f"{len(drifted_now)} / {len(features)}", bad=bool(drifted_now)),
        _tile("windows", str(len(windows))),
    ]
    out.append('<div class="tiles">' + "".join(tiles) + "</div>")
    if ever:
        out.append(f'<p class="note">Drift detected at some point on: <b>{escape(", ".join(ever))}</b>.</p>')
    if windows:
        out.append(f'<p class="note">From {_utc(_num(windows[0].get("start")))} to {_utc(_t(windows[-1]))}.</p>')
    vlines = list(events)

    # ---- distributions
    out.append("<h3>Feature distributions: reference vs current</h3>")
    note = last.get("drift_note")
    if features:
        cards = []
        for name, f in features.items():
            ref = f.get("reference") or {}
            cur = f.get("current") or {}
            rl, rc, cc = display_hist(ref, cur)
            d = _latest(windows, "drift", name)
            chart = svg.histogram_pair(rl, rc, cc or None, title=name, subtitle=str(f.get("kind", "")))
            meta = f"{_badge(d)} {_drift_meta(d)}{_quality_meta(_latest(windows, 'quality', name))}"
            cards.append(f'<div class="card feat">{chart}<div class="meta">{meta}</div></div>')
        out.append('<div class="grid2">' + "".join(cards) + "</div>")
    else:
        out.append('<p class="note">No reference profile registered for this model, so no distributions or drift tests'
                   + (f" ({escape(str(note))})" if note and "profile" not in str(note) else "") + ".</p>")

    # ---- drift over time
    tested = [{f: d for f, d in (w.get("drift") or {}).items() if d and _tested(d)} for w in windows]
    drift_feats = [f for f in features if any(t.get(f) for t in tested)]
    drift_feats += sorted({f for t in tested for f in t if f not in features})
    if drift_feats:
        out.append("<h3>Drift over time</h3>")
        starts = [_t(w) or 0.0 for w in windows]
        pv = {f: [_num(((w.get("drift") or {}).get(f) or {}).get("p_value")) for w in windows] for f in drift_feats}
        fl = {f: [bool(((w.get("drift") or {}).get(f) or {}).get("drifted")) for w in windows] for f in drift_feats}
        out.append('<div class="card">' + heat_strip(drift_feats, starts, pv, fl, title="drift test p-value per feature and window") + "</div>")
        marks = {f: [_t(w) for w, flag in zip(windows, fl[f]) if flag] for f in drift_feats}
        # one scale for every test: -log10(p-value), capped (p < 1e-30 is "certain")
        score = {f: [(_t(w), _neglog10(((w.get("drift") or {}).get(f) or {}).get("p_value"))) for w in windows] for f in drift_feats}
        with_p = {f: v for f, v in score.items() if _has(v)}
        if with_p:
            out.append(
                '<div class="card">'
                + svg.line_chart(with_p, title="drift score per feature: −log10 p-value, capped at 30 (red ring = drift)", width=940, height=260,
                                 markers=marks, vlines=vlines, y_min=0.0, hline=(-math.log10(0.05), "p = 0.05"))
                + "</div>"
            )
        distance = {f: [(_t(w), _num(((w.get("drift") or {}).get(f) or {}).get("statistic"))) for w in windows]
                    for f in drift_feats if f not in with_p}
        if distance:
            out.append(
                '<div class="card">'
                + svg.line_chart(distance, title="drift distance per feature (red ring = drift)", width=940, height=240, markers=marks, vlines=vlines)
                + "</div>"
            )

    # ---- operations
    out.append("<h3>Latency, traffic, errors and resources</h3>")
    charts = []
    lat = {f"p{round(q * 100)}": _series(windows, m.name) for m, q in S.LATENCY_QUANTILES}
    charts.append(svg.line_chart(lat, title="latency percentiles", unit=_unit(S.LATENCY_P95_SECONDS), vlines=vlines))
    rps = _series(windows, S.THROUGHPUT_RPS.name)
    if not _has(rps):  # derive from requests / window length
        rps = []
        for w in windows:
            s, e, r = _num(w.get("start")), _num(w.get("end")), _num(w.get("requests"))
            rps.append((_t(w), r / (e - s) if None not in (s, e, r) and e > s else None))
    charts.append(svg.line_chart({"requests/s": rps}, title="throughput", vlines=vlines))
    err = _series(windows, S.ERROR_RATE.name, 100.0)
    if not _has(err):
        err = [(_t(w), 100.0 * (_num(w.get("errors")) or 0) / r if (r := _num(w.get("requests"))) else None) for w in windows]
    charts.append(svg.line_chart({"errors %": err}, title="error rate", unit="%", y_min=0.0, vlines=vlines))
    res = {"process CPU %": _series(windows, S.CPU_PERCENT.name)}
    gpu = _series(windows, S.GPU_UTILIZATION.name)
    if _has(gpu):
        res["GPU utilization %"] = gpu
    charts.append(svg.line_chart(res, title="CPU use", unit=_unit(S.CPU_PERCENT), y_min=0.0, vlines=vlines))
    charts.append(svg.line_chart({"RSS": _series(windows, S.RSS_BYTES.name)}, title="replica memory (RSS, sum over replicas)",
                                 unit=_unit(S.RSS_BYTES), vlines=vlines))
    gpu_mem = _series(windows, S.GPU_MEMORY_USED_BYTES.name)
    if _has(gpu_mem):
        charts.append(svg.line_chart({"GPU memory": gpu_mem}, title="GPU memory used", unit=_unit(S.GPU_MEMORY_USED_BYTES),
                                     vlines=vlines))
    out.append('<div class="grid2">' + "".join(f'<div class="card">{c}</div>' for c in charts) + "</div>")

    # ---- performance
    perf_keys: List[str] = []
    for w in windows:
        for k in (w.get("performance") or {}):
            if k in _PERF_KEYS and k not in perf_keys and _num((w.get("performance") or {}).get(k)) is not None:
                perf_keys.append(k)
    out.append("<h3>Model performance from feedback</h3>")
    if perf_keys:
        cls = [k for k in perf_keys if k in _CLASSIFICATION_KEYS]
        reg = [k for k in perf_keys if k not in cls]
        perf_charts = []
        for group, title in ((cls, "classification metrics"), (reg, "regression metrics")):
            if not group:
                continue
            # feedback arrives in some windows only: join the windows that have it
            series = {
                k: [(_t(w), v) for w in windows if (v := _num((w.get("performance") or {}).get(k))) is not None]
                for k in group
                if k != S.FEEDBACK_ROWS.name
            }
            if series:
                perf_charts.append(svg.line_chart(series, title=title, vlines=vlines, y_min=0.0 if group is cls else None, y_max=1.0 if group is cls else None))
        out.append('<div class="grid2">' + "".join(f'<div class="card">{c}</div>' for c in perf_charts) + "</div>")
    else:
        out.append('<p class="note">No ground truth received in this period (send it with <code>raywatch.feedback(request_id, label)</code>).</p>')
    out.append(segment_section(model, vlines))  # segments, fairness, attribution, replicas (issue 12)
    out.append(estimation_section(model, windows, vlines))  # estimation, multivariate drift, exact figures (issue 13)
    return "".join(out)


def render_report(
    history: Mapping[str, Any],
    *,
    title: str = "raywatch report",
    events: Sequence[Event] = (),
    generated_at: Optional[float] = None,
    top: int = TOP,
) -> str:
    """The report as one HTML string. ``events`` are (UTC epoch seconds, label) pairs drawn
    as dashed vertical lines on the time charts (e.g. a rollout, or the demo's injections).
    With more than ``top`` models, a table of all of them (worst first) opens the report and
    the ``top`` worst get a section (report/models_table.py)."""
    import time as _time

    from raywatch import __version__

    models = history.get("models") or {}
    alerts = list(history.get("alerts") or [])
    generated_at = _time.time() if generated_at is None else generated_at
    all_models, many = models, 0 < top < len(models)
    if many:  # the worst ``top`` get a section, in that order; every model is a row of the table
        models = {k: models[k] for k in worst_models(history, top)}
    anchors = {key: f"m{i}" for i, key in enumerate(models)}
    nav = ('<a href="#models">models</a>' if many else "") + "".join(
        f'<a href="#{anchors[k]}">{escape(k)}</a>' for k in models) + '<a href="#alerts">alerts</a>'
    body = []
    firing_now = set()
    lanes, spans = _alert_spans(alerts)
    for lane, _, end, _, _ in spans:
        if end is None:
            firing_now.add(lane)
    total_requests = sum(_num(w.get("requests")) or 0 for m in all_models.values() for w in (m.get("windows") or []))
    body.append(
        '<div class="tiles">'
        + _tile("models", str(len(all_models)))
        + _tile("requests", f"{total_requests:,.0f}")
        + _tile("alert notifications", str(sum(1 for a in alerts if str(a.get("state")) == "firing")))
        + _tile("alerts firing at the end", str(len(firing_now)), bad=bool(firing_now))
        + "</div>"
    )
    if events:
        body.append(
            '<p class="note">Events (dashed purple lines on the charts): '
            + "; ".join(f"{escape(label)} at {_utc(ts)}" for ts, label in events)
            + "</p>"
        )
    if many:
        body.append(models_table(history, anchors))
    if not models:
        body.append('<p class="note">No model has reported to the stats actor in this period.</p>')
    for key, model in models.items():
        marks = decision_marks(history.get("audit"), key)  # (issue 14) remediation steps on the charts
        body.append(_model_section(key, model, sorted(list(events) + marks), anchors[key]))
        body.append(remediation_section(history.get("audit"), key))

    # ---- alerts
    body.append('<h2 id="alerts">Alerts</h2>')
    times = [_num(a.get("ts")) for a in alerts] + [
        _num(w.get(k)) for m in all_models.values() for w in (m.get("windows") or []) for k in ("start", "end")
    ]
    times = [t for t in times if t is not None]
    t0, t1 = (min(times), max(times)) if times else (generated_at - 60, generated_at)
    body.append('<div class="card">' + timeline(lanes, spans, t0=t0, t1=t1, title="alert timeline (bar = firing)") + "</div>")
    if alerts:
        rows = []
        for a in sorted(alerts, key=lambda a: _num(a.get("ts")) or 0.0):
            labels = a.get("labels") or {}
            ann = a.get("annotations") or {}
            state = escape(str(a.get("state", "")))
            rows.append(
                f"<tr><td>{_utc(_num(a.get('ts')))}</td><td class=\"{state}\">{state}</td>"
                f"<td>{escape(str(a.get('alertname', '')))}</td><td>{escape(str(a.get('severity', '')))}</td>"
                f"<td>{escape(', '.join(f'{k}={v}' for k, v in labels.items() if k != 'alertname'))}</td>"
                f"<td>{escape(svg.format_value(_num(a.get('value'))))}</td>"
                f"<td>{escape(str(ann.get('summary') or ann.get('description') or ''))}</td></tr>"
            )
        body.append(
            "<h3>Alert log</h3><table><tr><th>time</th><th>state</th><th>alert</th><th>severity</th>"
            "<th>labels</th><th>value</th><th>summary</th></tr>" + "".join(rows) + "</table>"
        )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{escape(title)}</h1>"
        f'<div class="sub">generated {_utc(generated_at)} by raywatch {escape(__version__)} · '
        f"{len(all_models)} model(s) · {len(alerts)} alert event(s)</div><nav>{nav}</nav></header>"
        f"<main>{''.join(body)}</main>"
        "<footer>Self-contained: inline SVG and CSS, no scripts, nothing fetched. Times are UTC. "
        "Drift: a feature is marked drifted when its test's p-value is below the corrected threshold "
        "(or its distance above its threshold).</footer>"
        "</body></html>\n"
    )


def write_report(history: Mapping[str, Any], path: Union[str, Path], **kwargs: Any) -> Path:
    """Render and write the report atomically; returns the path written."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render_report(history, **kwargs), encoding="utf-8")
    tmp.replace(path)
    logger.info("report written to %s", path)
    return path
