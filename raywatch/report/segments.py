"""The report's "who is affected" part: segments worst first, fairness, attribution, replicas.

Read from the stored windows of the history (each closed window's results of
:mod:`raywatch.aggregate.segment_eval`): per segment column, the newest window's segments
worst first, with how many windows each segment drifted in, and the accuracy (or MAE) of the
worst segments over time; per protected attribute, the newest window whose cross-group
figures were tested (else the newest), its groups' rates and the cross-group figures with
their intervals; the newest attribution of a drifted prediction; the replicas named as
outliers. Every figure's name comes from the metric catalogue.

>>> w = {"end": 10, "segments": {"country": [{"segment": "fr", "rows": 40, "dataset_drift": True,
...      "drifted_columns": ["amount"], "performance": {"accuracy": 0.61}}]}}
>>> html = segment_section({"windows": [w]}, [])
>>> "country=fr" in html and "badge drift" in html
True
>>> segment_section({"windows": [{"end": 10}]}, [])
''
"""

from __future__ import annotations

import math
from html import escape
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from raywatch import series as S
from raywatch.report import svg

__all__ = ["segment_section"]

_FIGURES = tuple(field for _, field in S.FAIRNESS_FIGURES)  # the fields of a FairnessReport
_GROUP_FIGURES = tuple(field for _, field in S.FAIRNESS_GROUP_FIGURES)  # and of each group's


def _num(v: Any) -> Optional[float]:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _f(v: Any, unit: str = "") -> str:
    return escape(svg.format_value(_num(v), unit))


def _estimate(e: Mapping[str, Any]) -> str:
    if not e or not e.get("tested"):
        note = (e or {}).get("note") or ""
        return f'<span class="badge na">untested</span> {escape(note)}'
    lo, hi = _num(e.get("low")), _num(e.get("high"))
    ci = f" [{_f(lo)}, {_f(hi)}]" if lo is not None and hi is not None else ""
    return f"{_f(e.get('value'))}{ci}"


def _perf(e: Mapping[str, Any]) -> str:
    perf = e.get("performance") or {}
    for m in (S.ACCURACY, S.MAE):
        if _num(perf.get(m.name)) is not None:
            return f"{m.name} {_f(perf[m.name])}"
    return "–"


def _segments(windows: Sequence[Mapping[str, Any]], vlines: Sequence[Tuple[float, str]]) -> List[str]:
    cols: List[str] = []
    for w in windows:
        cols += [c for c in (w.get("segments") or {}) if c not in cols]
    out: List[str] = []
    for col in cols:
        having = [w for w in windows if (w.get("segments") or {}).get(col)]
        newest = having[-1]["segments"][col]
        drifted: Dict[str, int] = {}
        seen: Dict[str, int] = {}
        for w in having:
            for e in w["segments"][col]:
                seen[e["segment"]] = seen.get(e["segment"], 0) + 1
                drifted[e["segment"]] = drifted.get(e["segment"], 0) + bool(e.get(S.DATASET_DRIFT.name))
        rows = []
        for e in newest:
            seg = str(e.get("segment"))
            tested = S.DATASET_DRIFT.name in e
            badge = ('<span class="badge drift">DRIFT</span>' if e.get(S.DATASET_DRIFT.name) else
                     '<span class="badge ok">ok</span>' if tested else '<span class="badge na">untested</span>')
            missed = f" ({e['missed_rows']:,} may be in __other__)" if e.get("missed_rows") else ""
            rows.append(
                f"<tr><td><b>{escape(col)}={escape(seg)}</b></td><td>{badge}</td>"
                f"<td>{escape(', '.join(e.get('drifted_columns') or [])) or '–'}</td><td>{_perf(e)}</td>"
                f"<td>{_f(100 * rate, '%') if (rate := _num(e.get(S.ERROR_RATE.name))) is not None else '–'}</td>"
                f"<td>{_f(e.get(S.LATENCY_P95_SECONDS.name), 's')}</td><td>{int(e.get('rows') or 0):,}{missed}</td>"
                f"<td>{drifted.get(seg, 0)} of {seen.get(seg, 0)}</td></tr>")
        out.append(f"<h4>{escape(col)} — newest window, worst first</h4>"
                   "<table><tr><th>segment</th><th>drift</th><th>drifted columns</th><th>performance</th>"
                   "<th>error rate</th><th>p95 latency</th><th>rows</th><th>windows drifted</th></tr>"
                   + "".join(rows) + "</table>")
        worst = [str(e.get("segment")) for e in newest[:6]]
        acc = {seg: [(w.get("end"), _num(((next((e for e in w["segments"][col] if e.get("segment") == seg), {})
                                           .get("performance") or {}).get(S.ACCURACY.name))))
                     for w in having] for seg in worst}
        acc = {k: [(t, v) for t, v in pts if v is not None] for k, pts in acc.items()}
        if any(acc.values()):
            out.append('<div class="card">' + svg.line_chart(
                {k: v for k, v in acc.items() if v}, title=f"accuracy per {col} (the six worst segments)", width=940,
                height=240, y_min=0.0, y_max=1.0, vlines=vlines) + "</div>")
    return out


def _newest(windows: Sequence[Mapping[str, Any]], key: str, name: str, good: Any = None) -> Optional[Mapping[str, Any]]:
    having = [w[key][name] for w in windows if (w.get(key) or {}).get(name)]
    if good is not None:
        tested = [x for x in having if good(x)]
        having = tested or having
    return having[-1] if having else None


def _fairness(windows: Sequence[Mapping[str, Any]]) -> List[str]:
    attrs: List[str] = []
    for w in windows:
        attrs += [a for a in (w.get("fairness") or {}) if a not in attrs]
    out: List[str] = []
    for attr in attrs:
        f = _newest(windows, "fairness", attr, good=lambda x: (x.get("disparate_impact") or {}).get("tested"))
        if f is None:
            continue
        cross = "".join(f"<tr><td>{escape(name.replace('_', ' '))}</td><td>{_estimate(f.get(name) or {})}</td></tr>"
                        for name in _FIGURES)
        adverse = f.get("adverse_impact") or []
        head = (f"<h4>fairness: {escape(attr)} (reference group {escape(str(f.get('reference') or '–'))}, "
                f"{int(100 * (f.get('confidence') or 0.95))} % intervals, groups below "
                f"{f.get('min_group_size')} rows untested)</h4>")
        if adverse:
            head += (f'<p class="note"><b>Below the four-fifths rule:</b> {escape(", ".join(adverse))}.</p>')
        groups = f.get("groups") or {}
        rows_of = f.get("group_rows") or {}
        grows = "".join(
            f"<tr><td><b>{escape(g)}</b></td><td>{int(rows_of.get(g) or 0):,}</td>"
            + "".join(f"<td>{_estimate(gf.get(k) or {})}</td>" for k in _GROUP_FIGURES) + "</tr>"
            for g, gf in groups.items())
        out.append(head + "<table><tr><th>across groups</th><th>value [interval]</th></tr>" + cross + "</table>"
                   + "<table><tr><th>group</th><th>predictions</th>"
                   + "".join(f"<th>{escape(k.replace('_', ' '))}</th>" for k in _GROUP_FIGURES) + "</tr>"
                   + grows + "</table>"
                   + "".join(f'<p class="note">{escape(n)}</p>' for n in f.get("notes") or []))
    return out


def _attribution(windows: Sequence[Mapping[str, Any]]) -> List[str]:
    preds: List[str] = []
    for w in windows:
        preds += [p for p in (w.get("attribution") or {}) if p not in preds]
    out = []
    for pred in preds:
        a = _newest(windows, "attribution", pred)
        rows = "".join(
            f"<tr><td><b>{escape(str(f.get('feature')))}</b></td><td>{_f(f.get('explained'))}</td>"
            f"<td>{_f(100 * f['share'], '%') if _num(f.get('share')) is not None else '–'}</td><td>{_f(f.get('z'))}</td>"
            f"<td>{'yes' if f.get('explains') else 'no'}</td></tr>" for f in a.get("features") or [])
        out.append(f"<h4>why {escape(pred)} drifted (newest drifted window): its mean moved {_f(a.get('shift'))} "
                   f"(from {_f(a.get('reference_mean'))} to {_f(a.get('window_mean'))})</h4>"
                   "<table><tr><th>feature</th><th>explained shift</th><th>share of the shift</th><th>z</th>"
                   "<th>explains it</th></tr>" + rows + "</table>"
                   '<p class="note">Each feature\'s share: how far the mean prediction would have moved had only this '
                   "feature's distribution changed, the reference's response to its bins kept "
                   "(a shift-share decomposition; raywatch.drift.attribution).</p>")
    return out


def _replicas(windows: Sequence[Mapping[str, Any]]) -> List[str]:
    named = [(w.get("end"), v, r) for w in windows for v, r in (w.get("replica_outliers") or {}).items() if r.get("outliers")]
    if not named:
        return []
    rows = []
    for end, version, rep in named[-10:]:
        for rid in rep["outliers"]:
            v = (rep.get("replicas") or {}).get(rid) or {}
            rows.append(f"<tr><td>{escape(svg.format_value(_num(end)))}</td><td>{escape(version or '–')}</td>"
                        f"<td><b>{escape(rid)}</b></td><td>{_f(v.get('score'))}</td>"
                        f"<td>{escape(', '.join(v.get('differing') or []))}</td></tr>")
    return ["<h4>replicas that differed from their peers</h4><table><tr><th>window end</th><th>version</th>"
            "<th>replica</th><th>score</th><th>differing columns</th></tr>" + "".join(rows) + "</table>"]


def segment_section(model: Mapping[str, Any], vlines: Sequence[Tuple[float, str]]) -> str:
    """The HTML of a model's segment, fairness, attribution and replica results ("" when its
    windows hold none)."""
    windows = sorted(model.get("windows") or [], key=lambda w: _num(w.get("end")) or 0.0)
    parts = _segments(windows, vlines) + _fairness(windows) + _attribution(windows) + _replicas(windows)
    if not parts:
        return ""
    return "<h3>Who is affected: segments, fairness, attribution</h3>" + "".join(parts)
