"""What the demo shows: the live status block, the progress bar and the closing summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Tuple

import click

from raywatch import series
from raywatch.cli.common import fmt
from raywatch.cli.demo.receiver import AlertReceiver
from raywatch.cli.demo.traffic import DRIFT, MODEL_KEY, SEGMENT, SEGMENT_COLUMN, Traffic
from raywatch.cli.status import segment_lines
from raywatch.config import WATCHDOG_ALERTNAME

__all__ = ["status_block", "drift_summary", "firing", "bar", "summary", "LATENCY_ALERT"]

LATENCY_ALERT = "LatencyRegression"
SHOWN_PERFORMANCE = (series.ACCURACY, series.ROC_AUC, series.F1)
"""The performance figures the live status shows."""


def drift_summary(st: Dict[str, Any], model_key: str = MODEL_KEY) -> Tuple[List[str], Dict[str, Any]]:
    """The drifted features of the demo's model, and its status."""
    m = (st.get("models") or {}).get(model_key) or {}
    cols = (m.get("drift") or {}).get("columns") or {}
    return sorted(f for f, d in cols.items() if d.get("drifted")), m


def firing(m: Dict[str, Any]) -> List[str]:
    """The firing alerts of a model's status, as ``Name(feature)`` (``Name(segment/feature)``
    for a per-segment alert)."""
    out = []
    for a in m.get("alerts") or []:
        if str(a.get("state", "firing")) != "firing":
            continue
        lab = a.get("labels") or {}
        name = lab.get("alertname") or a.get("alertname") or "?"
        where = "/".join(str(lab[k]) for k in (series.SEGMENT, "feature") if lab.get(k))
        out.append(name + (f"({where})" if where else ""))
    return sorted(out)


def status_block(t: float, st: Dict[str, Any], traffic: Traffic, model_key: str = MODEL_KEY) -> List[str]:
    """The live status lines at ``t`` seconds into the traffic."""
    m = drift_summary(st, model_key)[1]
    roll = m.get("rolling") or {}
    cols = (m.get("drift") or {}).get("columns") or {}
    lines = [
        click.style(f"[t={t:5.0f}s] status", bold=True)
        + f"  requests {((m.get('totals') or {}).get('requests') or 0):,} (sent {traffic.sent:,})"
        + f"  rps {fmt(roll.get(series.THROUGHPUT_RPS.name))}"
        + f"  p50 {fmt(roll.get(series.LATENCY_P50_SECONDS.name), 's')}  p95 {fmt(roll.get(series.LATENCY_P95_SECONDS.name), 's')}"
        + f"  errors {traffic.failed}"
    ]
    if cols:
        parts = []
        for f, d in cols.items():
            p = d.get("p_value_adjusted")  # the p-value that decides
            if not d.get("tested", True):
                parts.append(f"{f}=" + click.style("untested", fg="yellow") + f"({d.get('reason', '?')})")
                continue
            tag = click.style("DRIFT", fg="red", bold=True) if d.get("drifted") else "ok"
            parts.append(f"{f}={tag}" + (f"(p_adj={p:.1g})" if isinstance(p, (int, float)) and d.get("drifted") else ""))
        lines.append("           drift: " + " ".join(parts))
    else:
        lines.append("           drift: waiting for the first window with enough rows")
    shown = {metric.name for metric in SHOWN_PERFORMANCE}
    perf = {k: v for k, v in (m.get("performance") or {}).items() if k in shown and isinstance(v, (int, float))}
    if perf:
        lines.append("           performance: " + "  ".join(f"{k} {v:.3f}" for k, v in perf.items()))
    for line in segment_lines(m, worst=2):  # the worst segments, and what moved the predictions
        if line.startswith(("  worst segments", "  attribution")):
            lines.append("           " + line.strip())
    names = firing(m)
    lines.append("           firing: " + (click.style(", ".join(names), fg="red") if names else "none"))
    return lines


def _segment_figures(windows: List[Dict[str, Any]], firing_events: List[Dict[str, Any]], drift_ts: float,
                     features: set) -> Dict[str, Any]:
    """What the demo's segment story shows: the segments whose features drifted after the
    injection, each segment's lowest accuracy after it, and the per-segment alerts."""
    drifted, accuracy = set(), {}
    for w in windows:
        if float(w.get("end") or 0) <= drift_ts:
            continue
        for e in ((w.get("segments") or {}).get(SEGMENT_COLUMN) or []):
            if set(e.get("drifted_columns") or []) & features:
                drifted.add(e["segment"])
            acc = (e.get("performance") or {}).get(series.ACCURACY.name)
            if isinstance(acc, (int, float)) and (e.get("performance") or {}).get("rows", 0) >= 30:
                accuracy[e["segment"]] = min(acc, accuracy.get(e["segment"], 1.0))
    alerts = sorted({f"{e['labels']['alertname']}({e['labels'][series.SEGMENT]})" for e in firing_events
                     if e["labels"].get(series.SEGMENT_COLUMN) == SEGMENT_COLUMN})
    return {"segment_injected": f"{SEGMENT_COLUMN}={SEGMENT}", "segments_drifted": sorted(drifted),
            "segment_accuracy_after": accuracy, "segment_alerts": alerts}


def bar(frac: float, width: int = 30) -> str:
    n = int(round(max(0.0, min(1.0, frac)) * width))
    return "█" * n + "·" * (width - n)


def summary(out: Path, hist: Dict[str, Any], st: Dict[str, Any], traffic: Traffic, receiver: AlertReceiver, report: Path,
            t0_wall: float, events: List[Tuple[float, str]], drift_at: float, slow_at: float, echo: Any) -> int:
    """Write ``summary.json`` (what was injected, detected and alerted, and when) and print it."""
    from deployments.fraud import PREDICTIONS
    from deployments.fraud_data import FEATURES

    model = (hist.get("models") or {}).get(MODEL_KEY) or {}
    windows = model.get("windows") or []
    drift_ts = events[0][0] if events else float("inf")
    before, after = set(), set()
    for w in windows:
        for f, d in (w.get("drift") or {}).items():
            if d and d.get("drifted"):
                (after if float(w.get("end") or 0) > drift_ts else before).add(f)
    injected = sorted(DRIFT)
    features = list(FEATURES)
    detected = sorted(f for f in after if f in FEATURES)
    false_alarms = sorted(f for f in (before | after) if f in FEATURES and f not in DRIFT)
    prediction_drift = sorted(f for f in after if f in PREDICTIONS)
    heartbeats = [e for e in receiver.events if e["labels"].get("alertname") == WATCHDOG_ALERTNAME]
    firing_events = [e for e in receiver.events if e.get("status") == "firing" and e not in heartbeats]
    alert_names = sorted({e["labels"].get("alertname", "?") for e in firing_events})
    t_drift = t0_wall + drift_at
    t_slow = t0_wall + slow_at
    mono0 = min((t for t, _ in traffic.latencies), default=0.0)
    p95_before = traffic.client_p95(mono0, mono0 + slow_at)
    p95_after = traffic.client_p95(mono0 + slow_at + 5, float("inf"))
    first_drift_alert = min((e["received_at"] for e in firing_events if e["labels"].get("alertname") == "FeatureDrift"), default=None)
    seg = _segment_figures(windows, firing_events, drift_ts, set(FEATURES))
    first_latency_alert = min((e["received_at"] for e in firing_events
                               if e["labels"].get("alertname") == LATENCY_ALERT and e["received_at"] >= t_slow), default=None)
    figures = {
        "requests_sent": traffic.sent,
        "requests_ok": traffic.ok,
        "requests_failed": traffic.failed,
        "feedback_sent": traffic.feedback_sent,
        "windows": len(windows),
        "features": features,
        "drift_injected": injected,
        series.DRIFT_DETECTED.name: detected,  # the features whose drift_detected series went to 1
        "drift_false_alarms": false_alarms,
        "prediction_drift": prediction_drift,
        "alert_notifications": receiver.count,
        "alerts_fired": alert_names,
        "heartbeats": len(heartbeats),
        "seconds_to_drift_alert": None if first_drift_alert is None else round(first_drift_alert - t_drift, 1),
        "seconds_to_latency_alert": None if first_latency_alert is None else round(first_latency_alert - t_slow, 1),
        **seg,
        "client_p95_seconds_before": p95_before,
        "client_p95_seconds_after": p95_after,
        "alerts_file": str(out / "alerts.jsonl"),
        "report": str(report),
    }
    (out / "summary.json").write_text(json.dumps(figures, indent=2) + "\n")
    ok = click.style("✓", fg="green", bold=True)
    bad = click.style("✗", fg="red", bold=True)
    echo("")
    echo(click.style("summary", bold=True))
    echo(f"  requests         {traffic.sent:,} sent, {traffic.failed} failed; {traffic.feedback_sent:,} labels sent back as feedback")
    echo(f"  drift injected   {', '.join(injected)}")
    echo(f"  drift detected   {', '.join(detected) or 'none'}  {ok if detected == injected else bad}")
    echo(f"  false alarms     {', '.join(false_alarms) or 'none'} (on {', '.join(f for f in features if f not in DRIFT)})  {ok if not false_alarms else bad}")
    if prediction_drift:
        echo(f"  prediction drift {', '.join(prediction_drift)} (the model's output moved with its inputs)")
    others = f"other {SEGMENT_COLUMN} segments healthy" if seg["segments_drifted"] == [SEGMENT] else \
        f"drifted: {', '.join(seg['segments_drifted']) or 'none'}"
    accuracy = seg["segment_accuracy_after"].get(SEGMENT)
    echo(f"  segment          {SEGMENT_COLUMN}={SEGMENT} got the drift and the fraud wave: "
         + (f"lowest accuracy {accuracy:.3f}; " if accuracy is not None else "")
         + f"{others}; segment alerts: {', '.join(seg['segment_alerts']) or 'none'}  "
         + (ok if seg["segments_drifted"] == [SEGMENT] and seg["segment_alerts"] else bad))
    if figures["seconds_to_drift_alert"] is not None:
        echo(f"  drift alert      {figures['seconds_to_drift_alert']:.0f} s after the injection")
    to_latency_alert = figures["seconds_to_latency_alert"]
    echo(f"  client p95       {fmt(p95_before, 's')} before the regression, {fmt(p95_after, 's')} after"
         + (f"; alert {to_latency_alert:.0f} s after the rollout" if to_latency_alert is not None else ""))
    echo(f"  alerts           {len(firing_events)} firing notification(s) ({', '.join(alert_names) or 'none'}) → {out / 'alerts.jsonl'}")
    echo(f"  heartbeat        {WATCHDOG_ALERTNAME} received {len(heartbeats)} time(s): raywatch's own pipeline was alive throughout")
    echo(f"  report           {report}")
    echo(f"  summary          {out / 'summary.json'}")
    return 0
