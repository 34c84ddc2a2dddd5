"""``raywatch status``: what the stats actor sees now."""

from __future__ import annotations

import json
from typing import Any, List, Mapping, Optional

import click

from raywatch import series
from raywatch.cli.audit import status_block as remediation_block
from raywatch.cli.common import (ADDRESS_HELP, CONFIG_HELP, CONNECT_TIMEOUT, TIMEOUT_HELP, ask, connect, fail, fmt,
                                 load_monitor_config, no_such_model)
from raywatch.cli.summary import paged

__all__ = ["status", "status_lines", "drift_lines", "quality_parts", "segment_lines", "estimation_lines"]


def _traffic_line(m: Mapping[str, Any]) -> str:
    roll = m.get("rolling") or {}
    totals = m.get("totals") or {}
    latency = "  ".join(f"p{round(q * 100)} {fmt(roll.get(metric.name), 's')}" for metric, q in series.LATENCY_QUANTILES)
    return (
        f"  requests {totals.get('requests', roll.get('requests', 0)):,}  "
        f"throughput {fmt(roll.get(series.THROUGHPUT_RPS.name))}/s  "
        f"errors {fmt((roll.get(series.ERROR_RATE.name) or 0) * 100, '%')}  "
        f"latency {latency}  replicas {len(m.get('replicas') or {})}"
    )


def _alert_line(a: Mapping[str, Any]) -> str:
    lab = a.get("labels") or {}
    summary = (a.get("annotations") or {}).get("summary")
    return (
        "  " + click.style("FIRING", fg="red", bold=True) + f" {lab.get('alertname', a.get('alertname', '?'))}"
        f" [{lab.get('severity', a.get('severity', ''))}]" + (f" feature={lab['feature']}" if lab.get("feature") else "")
        + (f" — {summary}" if summary else "")
    )


P_ADJ_LEGEND = "p_adj: the p-value adjusted across columns (drift.correction), the one compared with drift.alpha"


def _verdict(d: Mapping[str, Any]) -> str:
    """``DRIFT (p_adj=3e-12)`` / ``ok (p_adj=0.41)``; a distance method shows its statistic
    against its threshold."""
    mark = click.style("DRIFT", fg="red", bold=True) if d.get("drifted") else "ok"
    p_adj, stat, thr = d.get("p_value_adjusted"), d.get("statistic"), d.get("threshold")
    if _is_num(p_adj):
        return f"{mark} (p_adj={p_adj:.2g})"
    if _is_num(stat) and _is_num(thr):
        return f"{mark} ({d.get('method', 'score')}={stat:.3g}, threshold {thr:.3g})"
    return mark


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def quality_parts(quality: Mapping[str, Any]) -> List[str]:
    """``zip wrong_type_share 100% (reference 0%)`` for each data-quality issue."""
    parts = []
    for f, q in quality.items():
        for issue in q.get("issues") or []:
            ref = q.get(f"{issue}_reference")
            parts.append(f"{f} {issue} {fmt((q.get(issue) or 0) * 100, '%')}"
                         + (f" (reference {fmt(ref * 100, '%')})" if _is_num(ref) else ""))
    return parts


def drift_lines(m: Mapping[str, Any]) -> List[str]:
    """A model's drift verdicts (with the p-value that decides), why each untested column
    was not tested, and its data-quality issues."""
    cols = (m.get("drift") or {}).get("columns") or {}
    tested = {f: d for f, d in cols.items() if d.get("tested", True)}
    untested = {f: d for f, d in cols.items() if not d.get("tested", True)}
    lines: List[str] = []
    if tested:
        lines.append("  drift: " + ", ".join(f"{f} {_verdict(d)}" for f, d in tested.items()))
        if any(_is_num(d.get("p_value_adjusted")) for d in tested.values()):
            lines.append(click.style(f"         ({P_ADJ_LEGEND})", dim=True))
    elif not m.get("profile"):
        lines.append("  drift: not tested — no reference profile (give profile_path, or profile: in the serve config)")
    elif untested:
        lines.append("  drift: no column could be tested")
    else:
        note = (m.get("rolling") or {}).get("drift_note") or "no feature rows yet"
        lines.append(f"  drift: not tested — {note}")
    for f, d in untested.items():
        lines.append(f"    {f} " + click.style("untested", fg="yellow") + f": {d.get('why') or d.get('reason') or 'not tested'}")
    issues = quality_parts(m.get("quality") or {})
    if issues:
        lines.append("  quality: " + ", ".join(issues))
    return lines


def status_lines(st: Mapping[str, Any]) -> List[str]:
    """Human-readable lines for ``raywatch.status()``'s answer."""
    lines: List[str] = []
    models = st.get("models") or {}
    if not models:
        return ["no model has reported to the stats actor yet"]
    for key, m in models.items():
        lines.append(click.style(key, bold=True) + "  " + " ".join(f"{k}={v}" for k, v in (m.get("labels") or {}).items() if v))
        lines.append(_traffic_line(m))
        lines.extend(drift_lines(m))
        perf = {k: v for k, v in (m.get("performance") or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if perf:
            lines.append("  performance: " + ", ".join(f"{k} {fmt(v)}" for k, v in perf.items()))
        lines.extend(segment_lines(m))  # segments, fairness, replicas, attribution (issue 12)
        lines.extend(estimation_lines(m))  # (issue 13)
        res = m.get("resources") or {}
        if res:
            cpu, rss = res.get(series.CPU_PERCENT.name), res.get(series.RSS_BYTES.name)
            gpu = f"  gpu {res.get('gpu_status')}" if res.get("gpu_status") else ""
            lines.append(f"  resources: cpu {fmt(cpu, '%')}  rss {fmt(rss, 'B')}{gpu}")
        firing = [a for a in (m.get("alerts") or []) if str(a.get("state", "firing")) == "firing"]
        lines.extend(_alert_line(a) for a in firing)
        if not firing:
            lines.append("  alerts: none firing")
    lines.extend(remediation_block(st))  # (issue 14) open decisions, pending approvals first
    return lines


# ---- issue 12: who is affected


def _segment_text(col: str, e: Mapping[str, Any]) -> str:
    """``merchant_category=grocery DRIFT (amount, distance_km) accuracy 0.74 errors 0% rows 310``."""
    parts = [click.style(f"{col}={e.get('segment')}", bold=True)]
    if e.get(series.DATASET_DRIFT.name):
        parts.append(click.style("DRIFT", fg="red", bold=True) + f" ({', '.join(e.get('drifted_columns') or [])})")
    elif e.get("drifted_columns"):
        parts.append("drifted: " + ", ".join(e["drifted_columns"]))
    perf = e.get("performance") or {}
    for m in (series.ACCURACY, series.MAE):
        if _is_num(perf.get(m.name)):
            parts.append(f"{m.name} {fmt(perf[m.name])}")
    if _is_num(e.get(series.ERROR_RATE.name)):
        parts.append(f"errors {fmt(e[series.ERROR_RATE.name] * 100, '%')}")
    if e.get("quality_issues"):
        parts.append(f"quality issues {e['quality_issues']}")
    parts.append(f"rows {e.get('rows') or 0:,}" + (f" ({e['missed_rows']:,} may be in __other__)" if e.get("missed_rows") else ""))
    return " ".join(parts)


def _estimate(e: Mapping[str, Any]) -> str:
    if not e.get("tested"):
        return "untested" + (f" ({e['note']})" if e.get("note") else "")
    ci = f" [{fmt(e.get('low'))}, {fmt(e.get('high'))}]" if _is_num(e.get("low")) and _is_num(e.get("high")) else ""
    return f"{fmt(e.get('value'))}{ci}"


def segment_lines(m: Mapping[str, Any], worst: int = 3) -> List[str]:
    """A model's worst segments, its fairness figures per protected attribute, the replicas
    that differ from their peers and the features that explain a prediction's drift."""
    roll = m.get("rolling") or {}
    lines: List[str] = []
    segs = [(col, e) for col, es in (roll.get("segments") or {}).items() for e in es]
    if segs:
        from raywatch.aggregate.segment_eval import worst_segments

        shown = worst_segments(roll, worst)
        lines.append("  worst segments: " + "; ".join(_segment_text(col, e) for col, e in shown))
    for attr, f in (roll.get("fairness") or {}).items():
        di, dpd, eo = (f.get(k) or {} for k in ("disparate_impact", "demographic_parity_difference",
                                                 "equalized_odds_difference"))
        adverse = f.get("adverse_impact") or []
        lines.append(
            f"  fairness {attr}: disparate impact {_estimate(di)} (reference {f.get('reference') or '-'}), "
            f"demographic parity difference {_estimate(dpd)}, equalized odds difference {_estimate(eo)}"
            + (click.style(f"  below four-fifths: {', '.join(adverse)}", fg="red") if adverse else ""))
    for version, rep in (roll.get("replica_outliers") or {}).items():
        named = rep.get("outliers") or []
        reps = rep.get("replicas") or {}
        text = ", ".join(f"{r} ({', '.join(reps.get(r, {}).get('differing') or [])})" for r in named) or "none"
        lines.append(f"  replica outliers{f' (version {version})' if version else ''}: "
                     + (click.style(text, fg="red") if named else text) + f" among {len(reps)} replicas")
    for pred, a in (roll.get("attribution") or {}).items():
        feats = [f for f in a.get("features") or [] if f.get("explains")] or (a.get("features") or [])[:3]
        shares = ", ".join(f"{f['feature']} {fmt((f.get('share') or 0) * 100, '%')}" for f in feats)
        lines.append(f"  attribution: {pred} mean moved {fmt(a.get('shift'))}; explained by {shares or 'no feature'}")
    return lines


# ---- issue 13: estimated performance, calibration, multivariate verdicts, false alarms in time


def _band(m: Mapping[str, Any]) -> str:
    v, lo, hi = m.get("value"), m.get("lower"), m.get("upper")
    if not _is_num(v):
        return "–"
    return f"{v:.3f}" + (f" [{lo:.3f}, {hi:.3f}]" if _is_num(lo) and _is_num(hi) else "")


def estimation_lines(m: Mapping[str, Any]) -> List[str]:
    """A model's estimated performance with its band, the calibration's quality, realized
    against estimated, the multivariate verdicts, and its false-alarm rates stated in time."""
    roll = m.get("rolling") or {}
    lines: List[str] = []
    est = roll.get("estimation") or {}
    if est:
        metrics = est.get("metrics") or {}
        parts = [f"{k} {_band(v)}" for k, v in metrics.items() if _is_num(v.get("value"))]
        lines.append(f"  estimated ({est.get('rows', 0):,} rows, no labels; band ±{est.get('sigmas', 3):g} SE; "
                     "assumes no concept drift): " + (", ".join(parts) or "not enough rows yet"))
        ece = est.get(series.CALIBRATION_ERROR.name)
        cal = f"  calibration: ECE {ece:.3f}" if _is_num(ece) else "  calibration: ECE –"
        if not est.get("calibration_ok", True):
            cal += " " + click.style("NOT usable", fg="red", bold=True)
        warnings = est.get("warnings") or []
        lines.append(cal + (" — " + "; ".join(warnings) if warnings else ""))
        dis = roll.get("disagreement") or {}
        if dis:
            bad = [k for k, d in dis.items() if d.get("disagree")]
            shown = ", ".join(f"{k} {fmt(d.get('realized'))} vs {fmt(d.get('estimated'))} (±{fmt(d.get('band'))})"
                              for k, d in dis.items() if k in (bad or list(dis)[:2]))
            mark = click.style("DISAGREE", fg="red", bold=True) + " (concept drift?)" if bad else "agree"
            lines.append(f"  realized vs estimated ({next(iter(dis.values())).get('labels', 0):,} labels): {mark}: {shown}")
    verdicts = []
    corr = roll.get("correlation") or {}
    if corr.get("tested"):
        pairs = ", ".join("-".join(p) for p in corr.get("drifted_pairs") or [])
        verdicts.append(("correlation " + click.style("DRIFT", fg="red", bold=True) + f" ({pairs})" if corr.get("drifted")
                         else "correlation ok") + f" (max change {fmt(corr.get('max_change'))})")
    rec = roll.get("reconstruction") or {}
    if rec.get("tested"):
        verdicts.append(("reconstruction " + click.style("DRIFT", fg="red", bold=True) if rec.get("drifted")
                         else "reconstruction ok") + f" (error {fmt(rec.get('mean_error'))}, band ≤ {fmt(rec.get('upper'))})")
    for feat, e in (roll.get("embeddings") or {}).items():
        if e.get("tested"):
            verdicts.append(f"{feat} " + (click.style("DRIFT", fg="red", bold=True) if e.get("drifted") else "ok")
                            + f" (mean shift {fmt(e.get('mean_effect'))})")
    if verdicts:
        lines.append("  multivariate: " + ", ".join(verdicts))
    fa = roll.get("false_alarms") or {}
    dets = [f"{name} {d['calibration']['text']}" for name, d in (m.get("detectors") or {}).items()
            if (d.get("calibration") or {}).get("text")]
    if fa.get("expected_run_time") is not None or dets or est or verdicts:
        lines.append(f"  false alarms: drift tests {fa.get('text', '–')}" + ("; detectors: " + "; ".join(dets) if dets else ""))
    return lines


def _controller_status(timeout: float) -> Optional[Mapping[str, Any]]:
    """The remediation controller's own status (None when there is none on this cluster)."""
    import ray

    from raywatch.remediate.shell.controller import DEFAULT_NAME, DEFAULT_NAMESPACE

    try:
        handle = ray.get_actor(DEFAULT_NAME, namespace=DEFAULT_NAMESPACE)
        return ray.get(handle.status.remote(), timeout=timeout)
    except Exception:  # none, or not answering: the stats actors' last word stands
        return None


OFFLINE_HINT = "Without Ray, the stored history is in the report: raywatch report --sqlite ~/.raywatch/raywatch-stats.sqlite"


@click.command(short_help="What the stats actor sees now, and why.")
@click.option("--model", help="A model key (app/deployment) or model name; all models by default.")
@click.option("--address", help=ADDRESS_HELP)
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), help=CONFIG_HELP)
@click.option("--timeout", default=CONNECT_TIMEOUT, show_default=True, help=TIMEOUT_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the raw status as JSON.")
@click.option("--limit", type=int, default=20, show_default=True,
              help="With more models than this: a summary table, worst first, and the details of one page.")
@click.option("--page", type=click.IntRange(min=1), default=1, show_default=True, help="Which page of --limit models.")
def status(model: Optional[str], address: Optional[str], config_path: Optional[str], timeout: float, as_json: bool,
           limit: int, page: int) -> None:
    """What the stats actor sees now: traffic, latency, drift (and why a column was not
    tested), data quality, performance, alerts."""
    cfg = load_monitor_config(config_path) if config_path else None
    connect(address, timeout, offline_hint=OFFLINE_HINT)
    from raywatch.actor import api

    st = ask("status", lambda: api.status(model, config=cfg, timeout=timeout), timeout)
    if not st.get("actors"):
        fail("no raywatch stats actor is running on this cluster (is a monitored deployment up?)")
    if model is not None and not st.get("models"):
        everything = ask("status", lambda: api.status(None, config=cfg, timeout=timeout), timeout)
        no_such_model(model, everything.get("models") or {})
    st["remediation"] = _controller_status(timeout)
    if as_json:
        click.echo(json.dumps(st, indent=2, default=str))
        return
    table, st = paged(st, limit, page)  # many models: the summary table, worst first (cli/summary.py)
    for line in table + status_lines(st):
        click.echo(line)
