"""``raywatch status``: what the stats actor sees now."""

from __future__ import annotations

import json
from typing import Any, List, Mapping, Optional

import click

from raywatch import series
from raywatch.cli.audit import status_block as remediation_block
from raywatch.cli.common import (ADDRESS_HELP, CONFIG_HELP, CONNECT_TIMEOUT, TIMEOUT_HELP, ask, connect, fail, fmt,
                                 load_monitor_config, no_such_model)

__all__ = ["status", "status_lines", "drift_lines", "quality_parts"]


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
def status(model: Optional[str], address: Optional[str], config_path: Optional[str], timeout: float, as_json: bool) -> None:
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
    for line in status_lines(st):
        click.echo(line)
