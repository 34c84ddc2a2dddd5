"""The compliance record as a self-contained HTML page (``raywatch audit``), and the
remediation decisions in the report (:func:`decision_marks`, :func:`remediation_section`).

A header with the model and the period, tiles with the decisions by outcome, the alerts
that fired, one section per decision (its timeline: each step with its time, who took it,
its summary and its evidence as a table of figures) and the approvals. Every text is
escaped; nothing is fetched.

>>> html = render({"format": "raywatch.audit-record", "model": "a/fraud", "since": 0.0, "generated_at": 60.0,
...                "summary": {"promoted": 1}, "alerts": [], "approvals": [], "monitoring": {},
...                "decisions": [{"id": "d1", "state": "promoted", "started": 1.0, "events": [
...                    {"ts": 1.0, "kind": "triggered", "by": "raywatch", "summary": "<FeatureDrift>", "evidence": {}}]}]})
>>> "&lt;FeatureDrift&gt;" in html and "<svg" not in html and "promoted" in html
True
"""

from __future__ import annotations

import html as _html
import json
from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Optional

from raywatch.report.style import CSS

__all__ = ["render", "timeline_rows", "decision_marks", "remediation_section", "MARKED"]

_BAD = frozenset(("failed", "retrain_failed", "rolled_back", "validation_failed", "rejected", "approval_expired"))


def _e(x: Any) -> str:
    return _html.escape(str(x), quote=True)


def _t(ts: Optional[float]) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(float(ts), tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _flat(d: Any, prefix: str = "", out: Optional[List[tuple]] = None, depth: int = 0) -> List[tuple]:
    out = [] if out is None else out
    if isinstance(d, Mapping) and depth < 4:
        for k, v in d.items():
            _flat(v, f"{prefix}.{k}" if prefix else str(k), out, depth + 1)
    else:
        text = json.dumps(d, default=str) if isinstance(d, (list, dict)) else d
        if isinstance(text, float):
            text = f"{text:.6g}"
        out.append((prefix, str(text)[:300]))
    return out


def timeline_rows(record: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """Every step of every decision, oldest first: what a report's timeline shows
    (``ts``, ``model``, ``decision``, ``kind``, ``state``, ``by``, ``summary``)."""
    rows = [{"ts": e["ts"], "model": record.get("model"), "decision": d["id"], "kind": e["kind"],
             "state": e.get("state", ""), "by": e.get("by", ""), "summary": e.get("summary", "")}
            for d in record.get("decisions") or [] for e in d.get("events") or []]
    return sorted(rows, key=lambda r: r["ts"])


MARKED = {"triggered": "remediation triggered", "promoted": "promoted", "rolled_back": "rolled back",
          "failed": "remediation failed", "retrain_failed": "retrain failed", "validation_failed": "candidate refused"}
"""The steps drawn as events on a model's charts in the report (step → label)."""


def _of(events: Any, model: str) -> List[Mapping[str, Any]]:
    return sorted((e for e in events or [] if e.get("model") == model), key=lambda e: float(e.get("ts") or 0.0))


def decision_marks(events: Any, model: str, limit: int = 20) -> List[tuple]:
    """``(ts, label)`` of a model's decisive steps (:data:`MARKED`), the newest ``limit``:
    the report draws them on the model's accuracy and drift charts.

    >>> ev = [{"model": "a/m", "ts": 5.0, "kind": "promoted", "evidence": {"version": "v2"}},
    ...       {"model": "a/m", "ts": 2.0, "kind": "shadow_figures"}, {"model": "b/x", "ts": 1.0, "kind": "failed"}]
    >>> decision_marks(ev, "a/m")
    [(5.0, 'v2 promoted')]
    """
    out = []
    for e in _of(events, model):
        label = MARKED.get(str(e.get("kind")))
        if label is None:
            continue
        version = (e.get("evidence") or {}).get("version")
        out.append((float(e["ts"]), f"{version} {label}" if version and e.get("kind") == "promoted" else label))
    return out[-limit:]


def remediation_section(events: Any, model: str, limit: int = 200) -> str:
    """A model's remediation timeline for the report: every step of its decisions in this
    period (time, decision, step, state, who, summary); empty when there is none."""
    rows = _of(events, model)[-limit:]
    if not rows:
        return ""
    body = "".join(
        f"<tr><td>{_e(_t(e.get('ts')))}</td><td>{_e(str(e.get('decision', ''))[:12])}</td>"
        f"<td{' class=firing' if e.get('kind') in _BAD else ''}>{_e(e.get('kind'))}</td><td>{_e(e.get('state', ''))}</td>"
        f"<td>{_e(e.get('by', ''))}</td><td>{_e(e.get('summary', ''))}</td></tr>" for e in rows)
    return ("<h3>Remediation timeline</h3><p class='note'>Every step of the remediation decisions (audit trail); "
            "<code>raywatch audit</code> writes the compliance record with the evidence.</p>"
            "<table><tr><th>time</th><th>decision</th><th>step</th><th>state</th><th>by</th><th>summary</th></tr>"
            + body + "</table>")


def render(record: Mapping[str, Any]) -> str:
    parts: List[str] = []
    model = record.get("model", "")
    parts.append(f"<header><h1>Audit record — {_e(model)}</h1><div class='sub'>from {_e(_t(record.get('since')))} "
                 f"to {_e(_t(record.get('generated_at')))} · {_e(record.get('format'))} v{_e(record.get('version', 1))}</div></header><main>")
    tiles = "".join(f"<div class='tile{' bad' if k in _BAD else ''}'><div class='v'>{_e(v)}</div><div class='k'>{_e(k)}</div></div>"
                    for k, v in sorted((record.get("summary") or {}).items()))
    parts.append(f"<h2>Decisions</h2><div class='tiles'>{tiles or '<p class=note>no decision in this period</p>'}</div>")
    mon = record.get("monitoring") or {}
    if mon:
        parts.append("<h2>What was monitored</h2><table><tr><th>setting</th><th>value</th></tr>"
                     + "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in _flat(mon)) + "</table>")
    alerts = record.get("alerts") or []
    parts.append("<h2>Alerts</h2>")
    if alerts:
        parts.append("<table><tr><th>time</th><th>alert</th><th>state</th><th>severity</th></tr>" + "".join(
            f"<tr><td>{_e(_t(a.get('ts')))}</td><td>{_e(a.get('alertname', ''))}</td>"
            f"<td class='{_e(a.get('state', ''))}'>{_e(a.get('state', ''))}</td><td>{_e(a.get('severity', ''))}</td></tr>"
            for a in alerts) + "</table>")
    else:
        parts.append("<p class='note'>no alert fired in this period</p>")
    for d in record.get("decisions") or []:
        parts.append(f"<h3>Decision {_e(d.get('id', '')[:12])} — {_e(d.get('state'))}</h3>"
                     "<table><tr><th>time</th><th>step</th><th>by</th><th>summary</th><th>evidence</th></tr>")
        for e in d.get("events") or []:
            ev = "".join(f"{_e(k)} = {_e(v)}<br>" for k, v in _flat(e.get("evidence") or {}))
            cls = " class='firing'" if e.get("kind") in _BAD else ""
            parts.append(f"<tr><td>{_e(_t(e.get('ts')))}</td><td{cls}>{_e(e.get('kind'))}</td><td>{_e(e.get('by', ''))}</td>"
                         f"<td>{_e(e.get('summary', ''))}</td><td style='font-size:11px'>{ev}</td></tr>")
        parts.append("</table>")
    appr = record.get("approvals") or []
    parts.append("<h2>Approvals</h2>")
    parts.append("<table><tr><th>time</th><th>decision</th><th>answer</th><th>by</th><th>comment</th></tr>" + "".join(
        f"<tr><td>{_e(_t(a.get('ts')))}</td><td>{_e(str(a.get('decision', ''))[:12])}</td><td>{_e(a.get('answer'))}</td>"
        f"<td>{_e(a.get('by'))}</td><td>{_e(a.get('comment', ''))}</td></tr>" for a in appr) + "</table>"
                 if appr else "<p class='note'>no approval asked or given in this period</p>")
    parts.append("</main>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>raywatch audit — {_e(model)}</title>"
            f"<style>{CSS}</style></head><body>" + "".join(parts) + "</body></html>")
