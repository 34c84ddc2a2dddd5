"""``raywatch status``: what the stats actor sees now."""

from __future__ import annotations

import json
from typing import Any, List, Mapping, Optional

import click

from raywatch import series
from raywatch.cli.common import ADDRESS_HELP, CONFIG_HELP, connect, fail, fmt, load_monitor_config
from raywatch.cli.summary import paged

__all__ = ["status", "status_lines"]


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


def status_lines(st: Mapping[str, Any]) -> List[str]:
    """Human-readable lines for ``raywatch.status()``'s answer."""
    lines: List[str] = []
    models = st.get("models") or {}
    if not models:
        return ["no model has reported to the stats actor yet"]
    for key, m in models.items():
        lines.append(click.style(key, bold=True) + "  " + " ".join(f"{k}={v}" for k, v in (m.get("labels") or {}).items() if v))
        lines.append(_traffic_line(m))
        drift = (m.get("drift") or {}).get("columns") or {}
        if drift:
            parts = []
            for f, d in drift.items():
                p = d.get("p_value")
                mark = click.style("DRIFT", fg="red", bold=True) if d.get("drifted") else "ok"
                parts.append(f"{f} {mark}" + (f" (p={p:.2g})" if isinstance(p, (int, float)) else ""))
            lines.append("  drift: " + ", ".join(parts))
        elif not m.get("profile"):
            lines.append("  drift: no reference profile")
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
    return lines


@click.command()
@click.option("--model", help="A model key (app/deployment) or model name; all models by default.")
@click.option("--address", help=ADDRESS_HELP)
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), help=CONFIG_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the raw status as JSON.")
@click.option("--limit", type=int, default=20, show_default=True,
              help="With more models than this: a summary table, worst first, and the details of one page.")
@click.option("--page", type=click.IntRange(min=1), default=1, show_default=True, help="Which page of --limit models.")
def status(model: Optional[str], address: Optional[str], config_path: Optional[str], as_json: bool,
           limit: int, page: int) -> None:
    """What the stats actor sees now: traffic, latency, drift, performance, alerts."""
    cfg = load_monitor_config(config_path) if config_path else None
    connect(address)
    from raywatch.actor.api import status as get_status

    st = get_status(model, config=cfg)
    if as_json:
        click.echo(json.dumps(st, indent=2, default=str))
        return
    if not st.get("actors"):
        fail("no raywatch stats actor is running on this cluster (is a monitored deployment up?)")
    table, st = paged(st, limit, page)  # many models: the summary table, worst first (cli/summary.py)
    for line in table + status_lines(st):
        click.echo(line)
