"""``raywatch demo --remediate``: the loop closed, on one machine, in a few minutes.

1. starts a local Ray cluster and the demo's alert receiver, trains version v1 of a small
   model (:mod:`deployments.remediable`) and deploys it from
   ``configs/serve-remediation-demo.yaml`` — monitored, with a payload log and a
   ``remediation:`` policy, so the serve-app builder puts the rollout router in front of it;
2. sends requests over HTTP and their ground truth back as feedback; the requests are logged
   with their labels (the labelled dataset);
3. at an announced time the world changes: a feature drifts and the rule that makes the label
   changes, so accuracy drops; ``AccuracyDrop`` fires and reaches the remediation controller
   through the ``remediation`` sink;
4. the controller retrains on the logged, labelled requests (a Ray task), validates the
   candidate on held-back rows, mirrors traffic to it (shadow), gives it a share of traffic
   (canary, guarded by error rate, latency and realized accuracy) and promotes it through
   Serve's declarative config — every step printed as it is recorded in the audit trail;
5. traffic goes on after the promotion; then it prints the timeline, the accuracy before the
   drift, after it and after the promotion, the requests that failed (0), writes the report
   (decisions on its timeline), the compliance record (``raywatch audit``'s JSON and HTML)
   and ``summary.json``, and shuts everything down.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import click

from raywatch import series
from raywatch.cli.demo.cluster import LocalCluster, use_checkout, wait_for_actor
from raywatch.cli.demo.display import status_block
from raywatch.cli.demo.receiver import AlertReceiver, free_port, port_free
from raywatch.cli.demo.traffic import Traffic

__all__ = ["run_remediation_demo", "APP", "DEPLOYMENT", "MODEL_KEY", "phase_accuracy"]

APP = "shop"
DEPLOYMENT = "Scorer"
MODEL_KEY = f"{APP}/{DEPLOYMENT}"
CONTROLLER_NAMESPACE = "raywatch"
FINAL = ("promoted", "rolled_back", "failed", "not_deployed", "skipped", "rejected", "expired", "dry_run")


def _rows(drifted: bool, chunk: int, seed: int) -> Tuple[List[Dict[str, Any]], List[int]]:
    from deployments.remediable import FEATURES, sample

    X, y = sample(chunk, drifted=drifted, seed=seed)
    return [dict(zip(FEATURES, map(float, r))) for r in X], [int(v) for v in y]


def phase_accuracy(windows: List[Dict[str, Any]], t_drift: float, t_alert: Optional[float],
                   t_promoted: Optional[float], settle: float = 12.0) -> Dict[str, Optional[float]]:
    """Accuracy from feedback, averaged over the closed windows of each phase: before the
    drift, from the drift to the promotion (once the drift is in: windows starting after it),
    and after the promotion (windows starting ``settle`` seconds after it, labels joined).

    >>> w = [{"start": s, "end": s + 10, "performance": {"accuracy": a}} for s, a in
    ...      [(0, 0.95), (10, 0.97), (20, 0.6), (30, 0.5), (40, 0.55), (60, 0.96), (70, 0.98)]]
    >>> phase_accuracy(w, t_drift=20, t_alert=35, t_promoted=45)
    {'before': 0.96, 'drifted': 0.55, 'after_promotion': 0.97}
    """
    def mean(ws: List[Dict[str, Any]]) -> Optional[float]:
        vals = [(w.get("performance") or {}).get(series.ACCURACY.name) for w in ws]
        vals = [float(v) for v in vals if isinstance(v, (int, float))]
        return round(statistics.fmean(vals), 4) if vals else None

    end = t_promoted if t_promoted is not None else float("inf")
    return {
        "before": mean([w for w in windows if float(w["end"]) <= t_drift]),
        "drifted": mean([w for w in windows if float(w["start"]) >= t_drift and float(w["end"]) <= end]),
        "after_promotion": None if t_promoted is None else mean(
            [w for w in windows if float(w["start"]) >= t_promoted + settle]),
    }


def run_remediation_demo(*, rps: float = 40.0, out_dir: str = "raywatch-demo-remediate", seed: int = 7,
                         baseline: float = 30.0, after: float = 40.0, max_loop: float = 180.0,
                         serve_config: Optional[str] = None, progress: bool = True) -> int:
    # ``after``: the accuracy after the promotion is read from closed windows that start 12 s
    # after it (labels joined); with 10 s windows and 2 s of grace the first such window can
    # close 12 + 10 + 10 + 2 s after the promotion, so 40 s leave room for the labels' lag
    echo = click.echo
    root = use_checkout(echo)
    if root is None:
        return 2
    source = Path(serve_config) if serve_config else root / "configs" / "serve-remediation-demo.yaml"
    out = Path(out_dir).expanduser().resolve()
    if out.exists():
        for stale in ("payload", "artifacts"):
            shutil.rmtree(out / stale, ignore_errors=True)
        for f in out.glob("*"):
            if f.is_file():
                f.unlink()
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(out, 0o700)  # the payload log and the state file hold request data
    os.environ["RAYWATCH_ARTIFACTS"] = str(out / "artifacts")  # where v1 and the candidates are written (workers too)
    sqlite_path = out / "raywatch-stats.sqlite"
    deployed = out / "serve-remediation.yaml"  # what was deployed: the promotion writes the new user_config back here

    echo(click.style("raywatch demo --remediate", bold=True) + f" — a model that fixes itself, {rps:g} requests/s")
    echo(f"  serve config : {source} (deployed as {deployed})")
    echo(f"  output       : {out}")
    echo("  schedule     : t=0 s traffic from the world v1 was trained on; labels sent back as feedback")
    echo(f"                 t={baseline:.0f} s THE WORLD CHANGES: x2 drifts and the rule behind the label changes")
    echo("                 then: AccuracyDrop → retrain on the logged, labelled requests → validate → shadow → canary → promote")
    echo(f"                 {after:.0f} s of traffic after the promotion, then the timeline, the report, shut down")

    receiver = AlertReceiver(out / "alerts.jsonl", echo)
    receiver.start()
    http_port = 8000 if port_free(8000) else free_port()
    metrics_port, api_port = free_port(), free_port()

    import ray

    with LocalCluster(echo, receiver) as run:
        run.start()
        from deployments.remediable import initial_artifact
        from raywatch.config import read_yaml
        from raywatch.remediate.shell import controller as ctl
        from raywatch.serve.deploy import deploy_serve_config

        v1 = initial_artifact(seed)
        data = read_yaml(source)
        _patch(data, http_port=http_port, metrics_port=metrics_port, api_port=api_port, sqlite=str(sqlite_path),
               payload=str(out / "payload"),
               receiver=receiver.base_url, artifact=v1, serve_config=str(deployed))
        _write_yaml(deployed, data)
        # the controller, created here so that its own fallback file stays in the demo's folder
        handle = ctl.get_or_create(str(out / "raywatch-remediation.sqlite"), namespace=CONTROLLER_NAMESPACE)
        echo(f"deploying {deployed.name}: v1 trained on the world before the drift, the rollout router in front …")
        from raywatch.cli.deploy import print_states

        deploy_serve_config(str(deployed), on_change=print_states)
        import raywatch.actor.api as api

        actor_cfg = {"actor": {"sqlite_path": str(sqlite_path), "metrics_port": metrics_port, "api_port": api_port}}
        metrics, feedback_api = wait_for_actor(api, actor_cfg)
        url = f"http://127.0.0.1:{http_port}/score"
        echo(f"model at {url}; raywatch metrics at {metrics}/metrics, feedback to {feedback_api}/feedback"
             if metrics else f"model at {url}")
        traffic = run.traffic = Traffic(url, rps, seed, f"{feedback_api}/feedback" if feedback_api else None,
                                        model_key=MODEL_KEY, rows=_rows, label=int)
        traffic.start()
        t0, t0_wall = time.monotonic(), time.time()
        t_drift: Optional[float] = None
        shown: set = set()
        decision: Dict[str, Any] = {}
        last_status = -10.0
        t_final: Optional[float] = None
        code = 0
        while True:
            t = time.monotonic() - t0
            if t_drift is None and t >= baseline:
                t_drift = time.time()
                traffic.drift = True
                echo(click.style(f">>> t={t:.0f}s THE WORLD CHANGES: x2 drifts (mean 0 → 0.8) and the label's rule changes",
                                 fg="magenta", bold=True))
            for ev in _new_events(ray, handle, shown):
                echo(_event_line(ev, t0_wall))
                if ev["kind"] == "triggered":
                    decision["id"] = ev["decision"]
                if ev["decision"] == decision.get("id") and ev.get("state") in FINAL:
                    decision["state"] = ev["state"]
                    t_final = time.monotonic()
            if t - last_status >= 10.0:
                last_status = t
                try:
                    st = api.status(MODEL_KEY, config=actor_cfg, timeout=10)
                    for line in status_block(t, st, traffic, MODEL_KEY):
                        echo(line)
                except Exception as exc:
                    echo(f"    (status unavailable: {type(exc).__name__}: {exc})")
            if t_final is not None and (decision.get("state") != "promoted" or time.monotonic() - t_final >= after):
                break
            if t_drift is not None and time.time() - t_drift > max_loop and t_final is None:
                echo(click.style(f"no decision finished {max_loop:.0f} s after the drift", fg="red"), err=True)
                code = 1
                break
            time.sleep(0.5)
        echo("traffic stopped; final evaluation …")
        traffic.stop()
        time.sleep(2.5)  # the replicas' last flush
        for _, h in api.actors(actor_cfg):
            ray.get(h.evaluate.remote(), timeout=30)
        events = ray.get(handle.events.remote(MODEL_KEY), timeout=30)
        hist = api.history(MODEL_KEY, config=actor_cfg)
        from raywatch.report import write_report

        report = write_report(hist, out / "report.html", title="raywatch demo — closing the loop",
                              events=[(t_drift, "the world changes")] if t_drift else [])
        run.code = _summary(out, hist, events, traffic, receiver, report, t_drift or t0_wall, deployed, code, echo)
    return run.code


def _patch(data: Dict[str, Any], *, http_port: int, metrics_port: int, api_port: int, sqlite: str, payload: str,
           receiver: str, artifact: str, serve_config: str) -> None:
    data.setdefault("http_options", {}).update({"port": http_port, "host": "127.0.0.1"})
    for app in data["applications"]:
        if app.get("name") != APP:
            continue
        mon = app["args"]["monitor"]
        mon.setdefault("actor", {}).update({"sqlite_path": sqlite, "metrics_port": metrics_port, "metrics_host": "127.0.0.1",
                                            "api_port": api_port})
        mon["payload_log"]["path"] = payload
        mon["remediation"].setdefault("rollout", {})["serve_config"] = serve_config
        # an Alertmanager-API sink gets every alert directly; the demo's receiver prints them
        mon["alerting"]["sinks"].append({"name": "demo-receiver", "type": "alertmanager", "url": receiver,
                                         "timeout": "5s", "resend_delay": "30s"})
        for d in app.get("deployments") or []:
            if d.get("name") == DEPLOYMENT:
                d.setdefault("user_config", {})["artifact"] = artifact


def _write_yaml(path: Path, data: Dict[str, Any]) -> None:
    import yaml

    fd = os.open(str(path), os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)


def _new_events(ray: Any, handle: Any, shown: set) -> List[Dict[str, Any]]:
    try:
        events = ray.get(handle.events.remote(MODEL_KEY), timeout=10)
    except Exception:  # the controller busy or restarting: next time
        return []
    out = [e for e in events if e["id"] not in shown]
    shown.update(e["id"] for e in out)
    return out


_COLOURS = {"promoted": "green", "rolled_back": "red", "failed": "red", "retrain_failed": "red",
            "validation_failed": "red", "triggered": "yellow"}


def _event_line(ev: Dict[str, Any], t0_wall: float) -> str:
    kind = ev["kind"]
    return (click.style(f"  REMEDIATION   {kind:<17}", fg=_COLOURS.get(kind, "cyan"), bold=True)
            + f" t={ev['ts'] - t0_wall:5.1f}s  {ev.get('summary', '')}")


def _summary(out: Path, hist: Dict[str, Any], events: List[Dict[str, Any]], traffic: Traffic, receiver: AlertReceiver,
             report: Path, t_drift: float, deployed: Path, code: int, echo: Any) -> int:
    from raywatch.config import read_yaml
    from raywatch.remediate.record import compliance_record
    from raywatch.report.audit import render

    by = {e["kind"]: e for e in events}
    windows = sorted((hist.get("models") or {}).get(MODEL_KEY, {}).get("windows") or [], key=lambda w: w["start"])
    alerts = [a for a in hist.get("alerts") or [] if a.get("alertname") == "AccuracyDrop" and a.get("state") == "firing"]
    t_alert = min((float(a["ts"]) for a in alerts), default=None)
    promoted = by.get("promoted")
    t_promoted = float(promoted["ts"]) if promoted else None
    acc = phase_accuracy(windows, t_drift, t_alert, t_promoted)
    gate = ((by.get("validation_passed") or by.get("validation_failed") or {}).get("evidence") or {}).get("gate") or {}
    canary = ((by.get("canary_figures") or {}).get("evidence") or {})
    realized = canary.get("realized") or {}
    shadow = (((by.get("shadow_figures") or {}).get("evidence") or {}).get("realized")) or {}
    record = compliance_record(MODEL_KEY, _events(events), since=None, now=time.time(),
                               alerts=[{**a, "model_key": MODEL_KEY} for a in hist.get("alerts") or []])
    for path, body in ((out / "audit.json", json.dumps(record, indent=2, sort_keys=True, default=str)),
                       (out / "audit.html", render(record))):
        fd = os.open(str(path), os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(body)
    uc = {}
    for app in (read_yaml(deployed) or {}).get("applications") or []:
        for d in app.get("deployments") or []:
            if app.get("name") == APP and d.get("name") == DEPLOYMENT:
                uc = {k: v for k, v in (d.get("user_config") or {}).items() if k != "raywatch"}
    figures = {
        "requests_sent": traffic.sent, "requests_ok": traffic.ok, "requests_failed": traffic.failed,
        "feedback_sent": traffic.feedback_sent,
        "final_state": (promoted or by.get("rolled_back") or by.get("failed") or {}).get("state"),
        "steps": [e["kind"] for e in events],
        "seconds_alert_to_promotion": round(t_promoted - t_alert, 1) if t_promoted and t_alert else None,
        "seconds_trigger_to_promotion": round((promoted.get("evidence") or {}).get("seconds_since_trigger") or 0, 1)
        if promoted else None,
        series.ACCURACY.name: acc,  # the validation metric of the demo's policy
        "holdout_accuracy": {"champion": gate.get("champion"), "candidate": gate.get("candidate")},
        "shadow_realized_accuracy": {"candidate": shadow.get("candidate"), "champion": shadow.get("champion"),
                                     "labelled": shadow.get("candidate_rows")},
        "canary_realized_accuracy": {"candidate": realized.get("candidate"), "champion": realized.get("champion"),
                                     "labelled": [realized.get("candidate_rows"), realized.get("champion_rows")]},
        "serve_config_user_config": uc,
        "report": str(report), "audit": [str(out / "audit.json"), str(out / "audit.html")],
    }
    (out / "summary.json").write_text(json.dumps(figures, indent=2, default=str) + "\n")
    ok = click.style("✓", fg="green", bold=True)
    bad = click.style("✗", fg="red", bold=True)

    def f(x: Any) -> str:
        return "—" if x is None else f"{x:.3f}"

    echo("")
    echo(click.style("timeline", bold=True) + " (seconds after the world changed)")
    if t_alert is not None:
        echo(f"  {t_alert - t_drift:6.1f}s  AccuracyDrop firing")
    for e in events:
        echo(f"  {e['ts'] - t_drift:6.1f}s  {e['kind']:<18} {e.get('summary', '')}")
    echo("")
    echo(click.style("summary", bold=True))
    recovered = (acc["after_promotion"] is not None and acc["drifted"] is not None
                 and acc["after_promotion"] > acc["drifted"] + 0.1)
    echo(f"  requests         {traffic.sent:,} sent, {traffic.failed} failed  {ok if traffic.failed == 0 else bad}; "
         f"{traffic.feedback_sent:,} labels sent back")
    echo(f"  decision         {figures['final_state'] or 'none'}  {ok if promoted else bad}")
    if figures["seconds_alert_to_promotion"] is not None:
        echo(f"  alert → promoted {figures['seconds_alert_to_promotion']:.0f} s (retrain, validation, shadow, canary, promotion)")
    echo(f"  accuracy         {f(acc['before'])} before the drift → {f(acc['drifted'])} after it → "
         f"{f(acc['after_promotion'])} after the promotion  {ok if recovered else bad}")
    if gate:
        echo(f"  validation gate  held-back accuracy: v1 {f(gate.get('champion'))}, candidate {f(gate.get('candidate'))}")
    if shadow.get("candidate") is not None:
        echo(f"  shadow           realized accuracy {f(shadow.get('candidate'))} on {shadow.get('candidate_rows')} mirrored, "
             f"labelled requests (v1 on the same requests: {f(shadow.get('champion'))})")
    if realized.get("candidate") is not None:
        echo(f"  canary           realized accuracy {f(realized.get('candidate'))} on {realized.get('candidate_rows')} labelled "
             f"requests (v1: {f(realized.get('champion'))} on {realized.get('champion_rows')})")
    if uc and promoted:
        echo(f"  serve config     {deployed.name}: {DEPLOYMENT}.user_config version {uc.get('version')} "
             "(the promotion wrote it back)")
    echo(f"  report           {report} (decisions on the accuracy and drift charts, remediation timeline)")
    echo(f"  audit record     {out / 'audit.json'}, {out / 'audit.html'}")
    echo(f"  summary          {out / 'summary.json'}")
    if code == 0 and not (promoted and traffic.failed == 0 and recovered):
        code = 1
    return code


def _events(data: List[Dict[str, Any]]) -> List[Any]:
    from raywatch.aggregate.audit import AuditEvent

    return [AuditEvent.from_data(d) for d in data]
