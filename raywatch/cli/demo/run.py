"""The demo's run: cluster, deploy, traffic, injections, live status, report, shutdown
(see :mod:`raywatch.cli.demo` for what the user sees)."""

from __future__ import annotations

import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import click

from raywatch.cli.demo.cluster import LocalCluster, use_checkout, wait_for_actor
from raywatch.cli.demo.display import bar, drift_summary, firing, status_block, summary
from raywatch.cli.demo.receiver import AlertReceiver, free_port, port_free
from raywatch.cli.demo.traffic import (APP, DEPLOYMENT, DRIFT, FRAUD_WAVE, MIN_DURATION, MODEL_KEY, SEGMENT,
                                       SEGMENT_COLUMN, Traffic)

__all__ = ["run_demo"]

SLOW_MS = 400.0


def run_demo(*, duration: float = 100.0, rps: float = 40.0, out_dir: str = "raywatch-demo", serve_config: Optional[str] = None,
             seed: int = 7, progress: bool = True) -> int:
    echo = click.echo
    root = use_checkout(echo)
    if root is None:
        return 2
    config_path = Path(serve_config) if serve_config else root / "configs" / "serve-demo.yaml"
    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    sqlite_path = out / "raywatch-stats.sqlite"
    for stale in (out / "alerts.jsonl", out / "report.html", out / "summary.json", sqlite_path,
                  Path(str(sqlite_path) + "-wal"), Path(str(sqlite_path) + "-shm")):
        if stale.exists():
            stale.unlink()
    shutil.rmtree(str(sqlite_path) + ".blobs", ignore_errors=True)  # the journal's summary files
    if float(duration) < MIN_DURATION:  # the command refuses it first; a caller in Python gets told too
        raise ValueError(f"the demo needs a duration of at least {MIN_DURATION:g} s, got {duration:g}")
    duration = float(duration)
    drift_at, slow_at = round(duration * 0.3), round(duration * 0.5)
    tty = progress and sys.stdout.isatty()

    echo(click.style("raywatch demo", bold=True) + f" — {duration:.0f} s of traffic at {rps:g} requests/s to a fraud model")
    echo(f"  serve config : {config_path}")
    echo(f"  output       : {out}")
    echo("  schedule     : t=0 s baseline traffic")
    echo(f"                 t={drift_at} s DATA DRIFT injected: " + ", ".join(f"{k} ×{v:g}" for k, v in DRIFT.items())
         + f" in {SEGMENT_COLUMN}={SEGMENT} only, with a fraud wave ({FRAUD_WAVE:.0%} of its transactions)")
    echo(f"                 t={slow_at} s LATENCY REGRESSION: rollout with simulated_latency_ms {SLOW_MS:g} (user_config, no restart)")
    echo(f"                 t={duration:.0f} s stop, write the report, shut down")

    receiver = AlertReceiver(out / "alerts.jsonl", echo)
    receiver.start()
    http_port = 8000 if port_free(8000) else free_port()
    metrics_port = free_port()

    def patch(data: Dict[str, Any], latency_ms: float = 0.0) -> None:
        data.setdefault("http_options", {})["port"] = http_port
        data["http_options"]["host"] = "127.0.0.1"
        for app in data["applications"]:
            if app.get("name") != APP:
                continue
            mon = app["args"].setdefault("monitor", {})
            if isinstance(mon, str):
                from raywatch.config import load_config

                mon = app["args"]["monitor"] = load_config(mon).to_data()
            actor = mon.setdefault("actor", {})
            actor.update({"sqlite_path": str(sqlite_path), "metrics_port": metrics_port, "metrics_host": "127.0.0.1"})
            alerting = mon.setdefault("alerting", {})
            sinks = alerting.setdefault("sinks", [])
            # an Alertmanager-API sink gets every alert directly (no route needed); the demo's
            # receiver speaks that API, prints each alert and appends it to alerts.jsonl
            sinks.append({"name": "demo-receiver", "type": "alertmanager", "url": receiver.base_url, "timeout": "5s",
                          "resend_delay": "30s"})
            for d in app.get("deployments") or []:
                if d.get("name") == DEPLOYMENT:
                    uc = d.setdefault("user_config", {})
                    uc["simulated_latency_ms"] = latency_ms

    import ray

    with LocalCluster(echo, receiver) as run:
        run.start()
        from raywatch.cli.deploy import print_states
        from raywatch.serve.deploy import deploy_serve_config

        echo(f"deploying {config_path.name} (trains the model and its reference profile) …")
        deploy_serve_config(str(config_path), patch=patch, on_change=print_states)
        url = f"http://127.0.0.1:{http_port}/fraud"
        import raywatch.actor.api as api

        actor_cfg = {"actor": {"sqlite_path": str(sqlite_path), "metrics_port": metrics_port}}
        metrics, feedback_api = wait_for_actor(api, actor_cfg)
        echo(f"model at {url}; raywatch metrics at {metrics}/metrics" if metrics else f"model at {url}")
        feedback_url = f"{feedback_api}/feedback" if metrics and feedback_api else None  # the API listener, not /metrics

        traffic = run.traffic = Traffic(url, rps, seed, feedback_url)
        traffic.start()
        t0 = time.monotonic()
        t0_wall = time.time()
        events: List[Tuple[float, str]] = []
        drift_done = slow_done = False
        last_status = 0.0
        last_tick = -1
        st: Dict[str, Any] = {}
        while True:
            t = time.monotonic() - t0
            if t >= duration:
                break
            if not drift_done and t >= drift_at:
                drift_done = True
                traffic.drift = True
                events.append((time.time(), "data drift injected"))
                _clear(tty)
                echo(click.style(f">>> t={t:.0f}s injecting DATA DRIFT: " + ", ".join(f"{k} ×{v:g}" for k, v in DRIFT.items())
                                 + f" in {SEGMENT_COLUMN}={SEGMENT}, and a fraud wave there", fg="magenta", bold=True))
            if not slow_done and t >= slow_at:
                slow_done = True
                _clear(tty)
                echo(click.style(f">>> t={t:.0f}s rolling out simulated_latency_ms={SLOW_MS:g} (LATENCY REGRESSION)", fg="magenta", bold=True))
                events.append((time.time(), "latency regression rolled out"))
                logging.getLogger("ray.serve").setLevel(logging.WARNING)
                try:
                    deploy_serve_config(str(config_path), patch=lambda d: patch(d, SLOW_MS), timeout=60)
                except Exception as exc:  # the demo goes on; say what happened
                    echo(f"    rollout failed: {exc}", err=True)
            if t - last_status >= 10.0 or last_status == 0.0:
                last_status = t if t > 0 else 0.001
                try:
                    st = api.status(MODEL_KEY, config=actor_cfg, timeout=10)
                    _clear(tty)
                    for line in status_block(t, st, traffic):
                        echo(line)
                except Exception as exc:
                    echo(f"    (status unavailable: {type(exc).__name__}: {exc})")
            if tty:
                drifted, m = drift_summary(st)
                sys.stdout.write(
                    f"\r  {bar(t / duration)} {t:4.0f}/{duration:.0f}s  {traffic.sent:,} requests  "
                    f"{len(firing(m))} firing  drift: {', '.join(drifted) or '-'}\x1b[K"
                )
                sys.stdout.flush()
            elif progress and int(t) // 5 != last_tick:  # not a terminal: a plain line every 5 s
                last_tick = int(t) // 5
                echo(f"  progress {bar(t / duration)} {t:4.0f}/{duration:.0f}s  {traffic.sent:,} requests")
            time.sleep(0.25)
        _clear(tty)
        echo("traffic stopped; final evaluation …")
        traffic.stop()
        time.sleep(2.5)  # the replicas' last flush
        handles = api.actors(actor_cfg)
        for _, h in handles:
            ray.get(h.evaluate.remote(), timeout=30)
        st = api.status(MODEL_KEY, config=actor_cfg)
        for line in status_block(time.monotonic() - t0, st, traffic):
            echo(line)
        hist = api.history(MODEL_KEY, config=actor_cfg)
        from raywatch.report import write_report

        report = write_report(hist, out / "report.html", title="raywatch demo — fraud model", events=events)
        time.sleep(2.0)  # let the last notifications reach the receiver
        run.code = summary(out, hist, st, traffic, receiver, report, t0_wall, events, drift_at, slow_at, echo)
    return run.code


def _clear(tty: bool) -> None:
    if tty:
        sys.stdout.write("\r\x1b[K")
        sys.stdout.flush()
