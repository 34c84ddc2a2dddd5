"""The report's issue-13 section of a model: estimation, multivariate drift, exact figures, false alarms.

From the history (:func:`raywatch.aggregate.query.history`) and its stored windows:

* **estimated against realized performance** over time — per metric the label-free estimate,
  its band and, once labels arrive, the realized figure (the estimate assumes no concept
  drift: a realized value outside the band is what concept drift looks like);
* **calibration** — the profile's reliability curve (observed frequency against calibrated
  probability, per score column) and its expected calibration error (ECE);
* **multivariate drift** — mean PCA reconstruction error against its band, the largest
  correlation change, and the embeddings' verdicts, per window;
* **exact or bound** — per feature, what the newest drift figures are (``exact``: equal to
  scipy's on the raw values, or exact counts; ``bound``: binned KS, the raw statistic lies in
  the stated interval and the p-value is conservative; ``approximate``; ``binned``), and what
  the estimates are (estimates with a sampling-error band; the realized ROC AUC is binned,
  within its stated error bound);
* **false alarms in time** — the drift tests' level per evaluation and the least mean time
  between false alarms it gives, and each calibrated streaming detector's.

>>> w = {"start": 0, "end": 60, "estimation": {"sigmas": 3, "metrics": {"accuracy": {"value": 0.8, "lower": 0.75, "upper": 0.85}}},
...      "performance": {"accuracy": 0.7}}
>>> html = estimation_section({"windows": [w]}, [w], [])
>>> "Estimated against realized performance" in html and "<script" not in html
True
>>> estimation_section({"windows": []}, [], [])
''
"""

from __future__ import annotations

import math
from html import escape
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from raywatch import series as S
from raywatch.aggregate.estimate_eval import CORRELATION as _CORR
from raywatch.aggregate.estimate_eval import DISAGREEMENT as _DIS
from raywatch.aggregate.estimate_eval import EMBEDDINGS as _EMB
from raywatch.aggregate.estimate_eval import ESTIMATION as _EST
from raywatch.aggregate.estimate_eval import FALSE_ALARMS as _FA
from raywatch.aggregate.estimate_eval import RECONSTRUCTION as _REC
from raywatch.aggregate.estimate_eval import finite_number as _num
from raywatch.report import svg

__all__ = ["estimation_section", "reliability_chart"]

_FIGURES = {
    "exact": "exact: computed from every raw value (equal to scipy's) or from exact counts",
    "bound": "bound: binned KS; the raw-data statistic lies in the interval shown, the p-value is conservative",
    "approximate": "approximate: binned Wasserstein distance (within about 1.5 % of a std of the raw value)",
    "binned": "binned: a distance defined on the profile's bins",
}


def _t(w: Mapping[str, Any]) -> Optional[float]:
    return _num(w.get("end", w.get("start")))


def _card(chart: str) -> str:
    return f'<div class="card">{chart}</div>'


def reliability_chart(curve: Mapping[str, Sequence[float]], *, title: str, width: int = 460, height: int = 260) -> str:
    """Observed frequency against calibrated probability (dots sized by count) and the diagonal."""
    pred = [_num(v) for v in curve.get("predicted") or []]
    obs = [_num(v) for v in curve.get("observed") or []]
    count = [_num(v) or 0.0 for v in curve.get("count") or []]
    pts = [(p, o, c) for p, o, c in zip(pred, obs, count) if p is not None and o is not None]
    if not pts:
        return svg.empty_chart(title, "no reliability curve", width=width, height=height)
    left, right, top, bottom = 48, 20, 26, 36
    pw, ph = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + x * pw

    def sy(y: float) -> float:
        return top + ph - y * ph

    most = max(c for _, _, c in pts) or 1.0
    out = [svg._svg_open(width, height, title), f'<text class="ctitle" x="8" y="16">{escape(title)}</text>',
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" class="frame"/>']
    for t in (0.0, 0.25, 0.5, 0.75, 1.0):
        out.append(f'<line class="grid" x1="{left}" x2="{left + pw}" y1="{sy(t):.1f}" y2="{sy(t):.1f}"/>')
        out.append(f'<text class="tick" x="{left - 4}" y="{sy(t) + 3:.1f}" text-anchor="end">{t:g}</text>')
        out.append(f'<text class="tick" x="{sx(t):.1f}" y="{top + ph + 13}" text-anchor="middle">{t:g}</text>')
    out.append(f'<line class="threshold" x1="{sx(0):.1f}" y1="{sy(0):.1f}" x2="{sx(1):.1f}" y2="{sy(1):.1f}">'
               "<title>perfect calibration</title></line>")
    d = " ".join(f"{'M' if i == 0 else 'L'}{sx(p):.1f},{sy(o):.1f}" for i, (p, o, _) in enumerate(pts))
    out.append(f'<path d="{d}" fill="none" stroke="{svg.PALETTE[0]}" stroke-width="2" class="series"/>')
    for p, o, c in pts:
        r = 2.0 + 4.0 * math.sqrt(c / most)
        out.append(f'<circle cx="{sx(p):.1f}" cy="{sy(o):.1f}" r="{r:.1f}" fill="{svg.PALETTE[0]}">'
                   f"<title>calibrated {p:.3f}: observed {o:.3f} ({c:.0f} rows)</title></circle>")
    out.append(f'<text class="muted" x="{left + pw:.0f}" y="{top + ph + 28}" text-anchor="end">calibrated probability → '
               "observed frequency ↑</text></svg>")
    return "".join(out)


def _performance(windows: Sequence[Mapping[str, Any]], vlines: Sequence[Tuple[float, str]]) -> List[str]:
    metrics: List[str] = []
    for w in windows:
        for k in ((w.get(_EST) or {}).get("metrics") or {}):
            if k not in metrics:
                metrics.append(k)
    if not metrics:
        return []
    charts = []
    for m in metrics:
        est = [(_t(w), _num((((w.get(_EST) or {}).get("metrics") or {}).get(m) or {}).get("value"))) for w in windows]
        lo = [(_t(w), _num((((w.get(_EST) or {}).get("metrics") or {}).get(m) or {}).get("lower"))) for w in windows]
        hi = [(_t(w), _num((((w.get(_EST) or {}).get("metrics") or {}).get(m) or {}).get("upper"))) for w in windows]
        real = [(_t(w), v) for w in windows if (v := _num((w.get("performance") or {}).get(m))) is not None]
        marks = [_t(w) for w in windows if ((w.get(_DIS) or {}).get(m) or {}).get("disagree")]
        series = {"estimated": est, "band low": lo, "band high": hi}
        colors = {"estimated": svg.PALETTE[0], "band low": "#9fc5e8", "band high": "#9fc5e8"}
        if real:
            series["realized"] = real
            colors["realized"] = svg.PALETTE[1]
        charts.append(svg.line_chart(series, title=f"{m}: estimated (band) vs realized (red ring: disagree)", colors=colors,
                                     y_min=0.0, y_max=1.0, vlines=vlines, markers={"realized": marks} if real else None))
    last = next((w for w in reversed(windows) if w.get(_EST)), {})
    est = last.get(_EST) or {}
    note = (f"Estimated from calibrated scores without labels (CBPE), band ±{_num(est.get('sigmas')) or 3:g} sampling errors. "
            "The estimate assumes no concept drift (P(label | score) as in the reference): where the realized figure "
            "leaves the band, the labels no longer follow the reference's law — concept drift "
            f"(series <code>{S.ESTIMATION_DISAGREEMENT.name}</code>).")
    if est.get("warnings"):
        note += " Warnings: " + escape("; ".join(est["warnings"])) + "."
    return ["<h3>Estimated against realized performance</h3>", f'<p class="note">{note}</p>',
            '<div class="grid2">' + "".join(_card(c) for c in charts) + "</div>"]


def _calibration(prof: Mapping[str, Any]) -> List[str]:
    cals = prof.get("calibrations") or []
    if not cals:
        return []
    charts, rows = [], []
    for c in cals:
        ece = _num(c.get("ece"))
        charts.append(reliability_chart(c.get("curve") or {}, title=f"reliability of {c.get('score')} ({c.get('method')}, "
                                        f"ECE {svg.format_value(ece)})"))
        rows.append(f"<tr><td>{escape(str(c.get('score')))}</td><td>{escape(str(c.get('method')))}</td>"
                    f"<td>{escape(svg.format_value(ece))}</td><td>{'yes' if c.get('ok') else '<b>no</b>'}</td>"
                    f"<td>{escape('; '.join(c.get('warnings') or []))}</td></tr>")
    return ["<h3>Calibration of the scores (reference)</h3>",
            '<p class="note">Expected calibration error (ECE), out of fold on the labelled reference; the method '
            "(isotonic, Platt or the scores as they are) was chosen by it.</p>",
            "<table><tr><th>score</th><th>method</th><th>ECE</th><th>usable</th><th>warnings</th></tr>" + "".join(rows)
            + "</table>", '<div class="grid2">' + "".join(_card(c) for c in charts) + "</div>"]


def _multivariate(windows: Sequence[Mapping[str, Any]], vlines: Sequence[Tuple[float, str]]) -> List[str]:
    charts = []
    rec = [(w, w.get(_REC) or {}) for w in windows]
    if any(r.get("tested") for _, r in rec):
        marks = [_t(w) for w, r in rec if r.get("drifted")]
        charts.append(svg.line_chart(
            {"mean error": [(_t(w), _num(r.get("mean_error"))) for w, r in rec],
             "band high": [(_t(w), _num(r.get("upper"))) for w, r in rec],
             "band low": [(_t(w), _num(r.get("lower"))) for w, r in rec]},
            title="PCA reconstruction error (red ring: multivariate drift)", vlines=vlines, markers={"mean error": marks},
            colors={"band high": "#9fc5e8", "band low": "#9fc5e8"}))
    corr = [(w, w.get(_CORR) or {}) for w in windows]
    if any(c.get("tested") for _, c in corr):
        marks = [_t(w) for w, c in corr if c.get("drifted")]
        floor = next((_num(c.get("min_change")) for _, c in reversed(corr) if c.get("tested")), None)
        charts.append(svg.line_chart({"largest change": [(_t(w), _num(c.get("max_change"))) for w, c in corr]},
                                     title="largest correlation change (red ring: drift)", y_min=0.0, vlines=vlines,
                                     markers={"largest change": marks},
                                     hline=(floor, "min_change") if floor is not None else None))
    feats: List[str] = []
    for w in windows:
        feats += [f for f in (w.get(_EMB) or {}) if f not in feats]
    if feats:
        series = {f: [(_t(w), _num(((w.get(_EMB) or {}).get(f) or {}).get("mean_effect"))) for w in windows] for f in feats}
        marks = {f: [_t(w) for w in windows if ((w.get(_EMB) or {}).get(f) or {}).get("drifted")] for f in feats}
        charts.append(svg.line_chart(series, title="embeddings: mean shift (Mahalanobis; red ring: drift)", y_min=0.0,
                                     vlines=vlines, markers=marks))
    if not charts:
        return []
    out = ["<h3>Multivariate drift</h3>"]
    last = next((w.get(_CORR) for w in reversed(windows) if (w.get(_CORR) or {}).get("drifted_pairs")), None)
    if last:
        pairs = ", ".join(f"{escape(a)}–{escape(b)}" for a, b in last["drifted_pairs"])
        out.append(f'<p class="note">Pairs whose correlation changed (newest such window): <b>{pairs}</b>.</p>')
    out.append('<div class="grid2">' + "".join(_card(c) for c in charts) + "</div>")
    return out


def _figures(windows: Sequence[Mapping[str, Any]]) -> List[str]:
    latest: Dict[str, Mapping[str, Any]] = {}
    for w in windows:
        for f, d in (w.get("drift") or {}).items():
            if d and d.get("figures"):
                latest[f] = d
    est = next((w.get(_EST) for w in reversed(windows) if w.get(_EST)), None)
    if not latest and not est:
        return []
    rows = []
    for f, d in latest.items():
        b = d.get("statistic_bounds")
        bounds = (f"[{svg.format_value(_num(b[0]))}, {svg.format_value(_num(b[1]))}]"
                  if isinstance(b, (list, tuple)) and len(b) == 2 else "")
        rows.append(f"<tr><td>{escape(f)}</td><td>{escape(str(d.get('method')))}</td>"
                    f"<td>{escape(svg.format_value(_num(d.get('statistic'))))}</td><td>{escape(bounds)}</td>"
                    f"<td>{escape(_FIGURES.get(str(d.get('figures')), str(d.get('figures'))))}</td></tr>")
    out = ["<h3>Which figures are exact and which are bounds</h3>"]
    if rows:
        out.append("<table><tr><th>feature</th><th>method</th><th>statistic</th><th>raw statistic within</th>"
                   "<th>figures</th></tr>" + "".join(rows) + "</table>")
    notes = []
    if est:
        bound = _num(est.get("roc_auc_error_bound"))
        notes.append("Estimated metrics are estimates, each with a band of ±"
                     f"{_num(est.get('sigmas')) or 3:g} sampling errors (exact sums merged across replicas; the error is "
                     "the sampling error and the calibration's)"
                     + (f"; the estimated ROC AUC is binned by score, within {svg.format_value(bound)} of the unbinned one"
                        if bound is not None else "") + ".")
    notes.append("Realized performance from feedback is exact for accuracy, precision, recall and F1; its ROC AUC is "
                 "binned, within the error bound it reports.")
    out.append('<p class="note">' + " ".join(notes) + "</p>")
    return out


def _false_alarms(model: Mapping[str, Any], windows: Sequence[Mapping[str, Any]]) -> List[str]:
    fa = model.get(_FA) or next((w.get(_FA) for w in reversed(windows) if w.get(_FA)), None)
    if not fa:
        return []
    items = [f"<li>drift tests (per column with the correction, correlation, reconstruction, embeddings): "
             f"{escape(str(fa.get('text')))}"
             + (" — set by <code>drift.expected_run_time</code>" if fa.get("expected_run_time") else "") + "</li>"]
    for name, d in (fa.get("detectors") or {}).items():
        items.append(f"<li>streaming detector {escape(name)}: {escape(str(d.get('text')))}</li>")
    return ["<h3>False alarms in time</h3>",
            '<p class="note">On stationary data a test at level α evaluated every interval raises a false alarm at most '
            "once per interval / α on average (fewer with the effect-size floors and a rule's <code>for:</code>).</p>",
            "<ul>" + "".join(items) + "</ul>"]


def estimation_section(model: Mapping[str, Any], windows: Sequence[Mapping[str, Any]],
                       vlines: Sequence[Tuple[float, str]]) -> str:
    """The section's HTML for one model ('' when it has nothing to show); ``windows`` sorted by time."""
    parts: List[str] = []
    parts += _performance(windows, vlines)
    parts += _calibration(model.get(_EST) or {})
    parts += _multivariate(windows, vlines)
    parts += _figures(windows)
    parts += _false_alarms(model, windows)
    return "".join(parts)
