"""``raywatch demo``: the whole product on one machine, in under three minutes.

1. starts a local Ray cluster and a tiny local alert receiver that speaks Alertmanager's v2
   API (and its webhook format), the alerts' destination;
2. deploys the fraud model from ``configs/serve-demo.yaml`` — monitoring switched on in the
   YAML; an ``alertmanager`` sink pointing at the receiver, the SQLite file and the /metrics
   port filled in at run time;
3. sends transactions over HTTP at a steady rate, with ground truth sent back as feedback;
4. at announced times injects a data drift (``amount`` ×3, ``distance_km`` ×5) and then a
   latency regression (a rollout of the same YAML with ``simulated_latency_ms: 400`` in the
   deployment's ``user_config``: reconfigured in place, no restart);
5. shows a progress bar and live status (requests, p95, drift per feature, firing alerts),
   prints each alert notification as the receiver gets it and appends it to ``alerts.jsonl``;
6. writes ``report.html`` and ``summary.json``, shuts everything down and exits 0.

Printing is the CLI's job, so this module uses ``click.echo``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import click

DRIFT = {"amount": 3.0, "distance_km": 5.0}
SLOW_MS = 400.0
LATENCY_ALERT = "LatencyRegression"
APP = "fraud"
DEPLOYMENT = "FraudModel"
MODEL_KEY = f"{APP}/{DEPLOYMENT}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def repo_root() -> Optional[Path]:
    """The checkout that holds ``deployments/`` and ``configs/`` (the demo needs both)."""
    import raywatch

    here = Path(raywatch.__file__).resolve().parents[1]
    for cand in (here, Path.cwd()):
        if (cand / "deployments" / "fraud.py").exists() and (cand / "configs").is_dir():
            return cand
    return None


# ----------------------------------------------------------------------------- alert receiver


class AlertReceiver:
    """A local webhook endpoint (Alertmanager's webhook format, version 4): prints each alert
    and appends it to a JSONL file."""

    def __init__(self, path: Path, echo: Any):
        self.path = path
        self.echo = echo
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.base_url}/alerts"
        self.count = 0
        self.events: List[Dict[str, Any]] = []
        self._state: Dict[Tuple[Tuple[str, str], ...], str] = {}
        self._lock = threading.Lock()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._runner: Any = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="raywatch-demo-alerts", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("the demo's alert receiver did not start")

    def _run(self) -> None:
        from aiohttp import web

        async def webhook(request: "web.Request") -> "web.Response":
            # Alertmanager's webhook payload (version 4): what raywatch's webhook sink sends
            try:
                body = await request.json()
            except Exception:
                return web.Response(status=400, text="expected JSON")
            alerts = body.get("alerts") if isinstance(body, dict) else None
            if not isinstance(alerts, list):
                return web.Response(status=400, text="expected Alertmanager's webhook payload")
            self._record(alerts, str(body.get("receiver") or "webhook"), lambda a: str(a.get("status") or "firing"))
            return web.Response(status=200, text="ok")

        async def am_api(request: "web.Request") -> "web.Response":
            # Alertmanager's v2 API (POST /api/v2/alerts): what raywatch's alertmanager sink sends;
            # an alert whose endsAt has passed is resolved, as Alertmanager reads it
            try:
                alerts = await request.json()
            except Exception:
                return web.Response(status=400, text="expected JSON")
            if not isinstance(alerts, list) or not all(isinstance(a, dict) and isinstance(a.get("labels"), dict) for a in alerts):
                return web.Response(status=400, text="expected a list of postable alerts")
            now = time.time()
            self._record(alerts, "alertmanager-api", lambda a: "resolved" if _ts(a.get("endsAt")) <= now else "firing")
            return web.Response(status=200)

        async def main() -> None:
            app = web.Application()
            app.router.add_post("/alerts", webhook)
            app.router.add_post("/api/v2/alerts", am_api)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
            self._started.set()

        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(main())
        self._loop.run_forever()

    def _record(self, alerts: List[Dict[str, Any]], receiver: str, status_of: Any) -> None:
        """Write and print each alert whose state changed (Alertmanager re-sends firing
        alerts; the console and the file get each transition once)."""
        received = time.time()
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            for a in alerts:
                labels = {str(k): str(v) for k, v in (a.get("labels") or {}).items()}
                status = status_of(a)
                key = tuple(sorted(labels.items()))
                if self._state.get(key) == status:
                    continue
                self._state[key] = status
                rec = {
                    "received_at": received,
                    "status": status,
                    "labels": labels,
                    "annotations": a.get("annotations") or {},
                    "startsAt": a.get("startsAt"),
                    "endsAt": a.get("endsAt"),
                    "receiver": receiver,
                }
                fh.write(json.dumps(rec, sort_keys=True) + "\n")
                self.count += 1
                self.events.append(rec)
                self.echo(_alert_line(rec))

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        fut = asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
        try:
            fut.result(5)
        except Exception:
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def _ts(value: Any) -> float:
    """UTC epoch seconds of an RFC 3339 time (Alertmanager's zero time is long past)."""
    import datetime as dt

    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except (TypeError, ValueError):
        return float("inf")


def _alert_line(rec: Dict[str, Any]) -> str:
    labels = rec.get("labels") or {}
    status = str(rec.get("status", "")).upper()
    colour = "red" if status == "FIRING" else "green"
    feature = f" feature={labels['feature']}" if labels.get("feature") else ""
    summary = (rec.get("annotations") or {}).get("summary") or ""
    return (
        click.style(f"  ALERT {status:<8}", fg=colour, bold=True)
        + f" {labels.get('alertname', '?')} [{labels.get('severity', '')}]{feature} — {summary}"
    )


# ----------------------------------------------------------------------------- traffic


class Traffic:
    """Steady-rate HTTP client in its own thread: one transaction per request; the ground
    truth of each answered request is sent back as feedback a little later."""

    def __init__(self, url: str, rps: float, seed: int, feedback_url: Optional[str]):
        self.url = url
        self.rps = rps
        self.seed = seed
        self.feedback_url = feedback_url
        self.drift = False
        self.sent = 0
        self.ok = 0
        self.failed = 0
        self.latencies: List[Tuple[float, float]] = []  # (monotonic time, seconds)
        self.feedback_sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="raywatch-demo-traffic", daemon=True)
        self._pending_feedback: List[Dict[str, Any]] = []

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _rows(self, drift: bool, chunk: int, k: int) -> Tuple[List[Dict[str, Any]], List[int]]:
        from deployments.fraud_data import generate_transactions, to_rows

        cols, y = generate_transactions(chunk, seed=self.seed * 1000 + k, drift=DRIFT if drift else None)
        return to_rows(cols), y.tolist()

    async def _main(self) -> None:
        import aiohttp

        interval = 1.0 / max(self.rps, 0.1)
        sem = asyncio.Semaphore(32)
        chunk, k = 500, 0
        rows, labels, drifted = self._rows(False, chunk, k) + (False,)
        i = 0
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            fb_task = asyncio.create_task(self._feedback_loop(session))
            next_t = time.monotonic()
            tasks = set()
            while not self._stop.is_set():
                if i >= len(rows) or drifted != self.drift:
                    k += 1
                    drifted = self.drift
                    rows, labels = self._rows(drifted, chunk, k)
                    i = 0
                row, label = rows[i], labels[i]
                i += 1
                await sem.acquire()
                t = asyncio.create_task(self._one(session, row, label, sem))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
                next_t += interval
                delay = next_t - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -1.0:  # fell behind (machine busy): do not burst to catch up
                    next_t = time.monotonic()
            if tasks:
                await asyncio.wait(tasks, timeout=10)
            fb_task.cancel()
            await self._flush_feedback(session)

    async def _one(self, session: Any, row: Dict[str, Any], label: int, sem: asyncio.Semaphore) -> None:
        t0 = time.monotonic()
        self.sent += 1
        try:
            async with session.post(self.url, json=row) as resp:
                await resp.read()
                if resp.status == 200:
                    self.ok += 1
                    rid = resp.headers.get("x-request-id")
                    if rid and self.feedback_url:
                        self._pending_feedback.append({"request_id": rid, "label": bool(label), "model": MODEL_KEY})
                else:
                    self.failed += 1
        except Exception:
            self.failed += 1
        finally:
            self.latencies.append((t0, time.monotonic() - t0))
            sem.release()

    async def _feedback_loop(self, session: Any) -> None:
        while True:
            await asyncio.sleep(2.0)
            await self._flush_feedback(session)

    async def _flush_feedback(self, session: Any) -> None:
        if not self.feedback_url or not self._pending_feedback:
            return
        items, self._pending_feedback = self._pending_feedback, []
        try:
            async with session.post(self.feedback_url, json={"items": items}) as resp:
                await resp.read()
                if resp.status < 300:
                    self.feedback_sent += len(items)
        except Exception:
            pass

    def client_p95(self, since: float, until: float) -> Optional[float]:
        xs = sorted(d for t, d in self.latencies if since <= t < until)
        if not xs:
            return None
        return xs[min(len(xs) - 1, int(0.95 * len(xs)))]


# ----------------------------------------------------------------------------- status display


def _drift_summary(st: Dict[str, Any]) -> Tuple[List[str], Dict[str, Any]]:
    m = (st.get("models") or {}).get(MODEL_KEY) or {}
    cols = (m.get("drift") or {}).get("columns") or {}
    return sorted(f for f, d in cols.items() if d.get("drifted")), m


def _firing(m: Dict[str, Any]) -> List[str]:
    out = []
    for a in m.get("alerts") or []:
        if str(a.get("state", "firing")) != "firing":
            continue
        lab = a.get("labels") or {}
        name = lab.get("alertname") or a.get("alertname") or "?"
        out.append(name + (f"({lab['feature']})" if lab.get("feature") else ""))
    return sorted(out)


def _status_block(t: float, st: Dict[str, Any], traffic: Traffic) -> List[str]:
    drifted, m = _drift_summary(st)
    roll = m.get("rolling") or {}
    cols = (m.get("drift") or {}).get("columns") or {}
    from raywatch.report.svg import format_value

    lines = [
        click.style(f"[t={t:5.0f}s] status", bold=True)
        + f"  requests {((m.get('totals') or {}).get('requests') or 0):,} (sent {traffic.sent:,})"
        + f"  rps {format_value(roll.get('throughput_rps'))}"
        + f"  p50 {format_value(roll.get('latency_p50_seconds'), 's')}  p95 {format_value(roll.get('latency_p95_seconds'), 's')}"
        + f"  errors {traffic.failed}"
    ]
    if cols:
        parts = []
        for f, d in cols.items():
            p = d.get("p_value")
            tag = click.style("DRIFT", fg="red", bold=True) if d.get("drifted") else "ok"
            parts.append(f"{f}={tag}" + (f"(p={p:.1g})" if isinstance(p, (int, float)) and d.get("drifted") else ""))
        lines.append("           drift: " + " ".join(parts))
    else:
        lines.append("           drift: waiting for the first window with enough rows")
    perf = {k: v for k, v in (m.get("performance") or {}).items() if k in ("accuracy", "roc_auc", "f1") and isinstance(v, (int, float))}
    if perf:
        lines.append("           performance: " + "  ".join(f"{k} {v:.3f}" for k, v in perf.items()))
    firing = _firing(m)
    lines.append("           firing: " + (click.style(", ".join(firing), fg="red") if firing else "none"))
    return lines


def _bar(frac: float, width: int = 30) -> str:
    n = int(round(max(0.0, min(1.0, frac)) * width))
    return "█" * n + "·" * (width - n)


# ----------------------------------------------------------------------------- the demo


def run_demo(*, duration: float = 100.0, rps: float = 40.0, out_dir: str = "raywatch-demo", serve_config: Optional[str] = None,
             seed: int = 7, progress: bool = True) -> int:
    echo = click.echo
    root = repo_root()
    if root is None:
        echo("raywatch demo needs the repository checkout (deployments/ and configs/); run it from the clone.", err=True)
        return 2
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    # Ray's workers (replicas, Serve's controller) import deployments/ too
    os.environ["PYTHONPATH"] = os.pathsep.join([str(root)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    config_path = Path(serve_config) if serve_config else root / "configs" / "serve-demo.yaml"
    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    sqlite_path = out / "raywatch-stats.sqlite"
    for stale in (out / "alerts.jsonl", out / "report.html", out / "summary.json", sqlite_path,
                  Path(str(sqlite_path) + "-wal"), Path(str(sqlite_path) + "-shm")):
        if stale.exists():
            stale.unlink()
    duration = max(float(duration), 30.0)
    drift_at, slow_at = round(duration * 0.3), round(duration * 0.5)
    tty = progress and sys.stdout.isatty()

    echo(click.style("raywatch demo", bold=True) + f" — {duration:.0f} s of traffic at {rps:g} requests/s to a fraud model")
    echo(f"  serve config : {config_path}")
    echo(f"  output       : {out}")
    echo("  schedule     : t=0 s baseline traffic")
    echo(f"                 t={drift_at} s DATA DRIFT injected: " + ", ".join(f"{k} ×{v:g}" for k, v in DRIFT.items()))
    echo(f"                 t={slow_at} s LATENCY REGRESSION: rollout with simulated_latency_ms {SLOW_MS:g} (user_config, no restart)")
    echo(f"                 t={duration:.0f} s stop, write the report, shut down")

    receiver = AlertReceiver(out / "alerts.jsonl", echo)
    receiver.start()
    http_port = 8000 if _port_free(8000) else _free_port()
    metrics_port = _free_port()

    def patch(data: Dict[str, Any], latency_ms: float = 0.0) -> None:
        data.setdefault("http_options", {})["port"] = http_port
        data["http_options"]["host"] = "127.0.0.1"
        for app in data["applications"]:
            if app.get("name") != APP:
                continue
            mon = app["args"].setdefault("monitor", {})
            if isinstance(mon, str):
                from raywatch.config import load_config

                mon = app["args"]["monitor"] = load_config(mon).model_dump(mode="json", by_alias=True, exclude_unset=True)
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

    import logging

    import ray

    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    ray_tmp = tempfile.mkdtemp(prefix="raywatch-demo-ray-")
    t_start = time.monotonic()
    code = 0
    traffic: Optional[Traffic] = None
    try:
        echo("starting a local Ray cluster …")
        os.environ.pop("RAY_ADDRESS", None)  # always a fresh local cluster, never someone else's
        ray.init(address="local", num_cpus=2, include_dashboard=False, namespace="raywatch-demo", _temp_dir=ray_tmp,
                 log_to_driver=False, configure_logging=False)
        from raywatch.cli import deploy_serve_config

        echo(f"deploying {config_path.name} (trains the model and its reference profile) …")
        deploy_serve_config(str(config_path), patch=patch, echo=echo)
        url = f"http://127.0.0.1:{http_port}/fraud"
        import raywatch.actor.api as api

        actor_cfg = {"actor": {"sqlite_path": str(sqlite_path), "metrics_port": metrics_port}}
        metrics = None
        deadline = time.monotonic() + 60
        while metrics is None and time.monotonic() < deadline:  # the first replica creates the stats actor
            st = api.status(config=actor_cfg)
            metrics = ((st.get("actors") or [{}])[0] or {}).get("metrics_address")
            if metrics is None:
                time.sleep(0.5)
        echo(f"model at {url}; raywatch metrics at {metrics}/metrics" if metrics else f"model at {url}")
        feedback_url = f"{metrics}/feedback" if metrics else None

        traffic = Traffic(url, rps, seed, feedback_url)
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
                echo(click.style(f">>> t={t:.0f}s injecting DATA DRIFT: " + ", ".join(f"{k} ×{v:g}" for k, v in DRIFT.items()), fg="magenta", bold=True))
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
                    for line in _status_block(t, st, traffic):
                        echo(line)
                except Exception as exc:
                    echo(f"    (status unavailable: {type(exc).__name__}: {exc})")
            if tty:
                drifted, m = _drift_summary(st)
                sys.stdout.write(
                    f"\r  {_bar(t / duration)} {t:4.0f}/{duration:.0f}s  {traffic.sent:,} requests  "
                    f"{len(_firing(m))} firing  drift: {', '.join(drifted) or '-'}\x1b[K"
                )
                sys.stdout.flush()
            elif progress and int(t) // 5 != last_tick:  # not a terminal: a plain line every 5 s
                last_tick = int(t) // 5
                echo(f"  progress {_bar(t / duration)} {t:4.0f}/{duration:.0f}s  {traffic.sent:,} requests")
            time.sleep(0.25)
        _clear(tty)
        echo("traffic stopped; final evaluation …")
        traffic.stop()
        time.sleep(2.5)  # the replicas' last flush
        handles = api.actors(actor_cfg)
        for _, h in handles:
            ray.get(h.evaluate.remote(), timeout=30)
        st = api.status(MODEL_KEY, config=actor_cfg)
        for line in _status_block(time.monotonic() - t0, st, traffic):
            echo(line)
        hist = api.history(MODEL_KEY, config=actor_cfg)
        from raywatch.report import write_report

        report = write_report(hist, out / "report.html", title="raywatch demo — fraud model", events=events)
        time.sleep(2.0)  # let the last notifications reach the receiver
        code = _summary(out, hist, st, traffic, receiver, report, t0_wall, events, drift_at, slow_at, echo)
    except KeyboardInterrupt:
        echo("interrupted", err=True)
        code = 130
    except Exception as exc:
        echo(click.style(f"demo failed: {type(exc).__name__}: {exc}", fg="red"), err=True)
        code = 1
    finally:
        if traffic is not None and traffic._thread.is_alive():
            traffic.stop()
        echo("shutting down …")
        _shutdown(ray)
        receiver.stop()
        shutil.rmtree(ray_tmp, ignore_errors=True)
        echo(f"done in {time.monotonic() - t_start:.0f} s")
    return code


def _clear(tty: bool) -> None:
    if tty:
        sys.stdout.write("\r\x1b[K")
        sys.stdout.flush()


def _shutdown(ray: Any) -> None:
    """Flush the stats actor's deliveries, then stop the demo's own local cluster (Serve,
    replicas and the detached stats actor go with it)."""
    if not ray.is_initialized():
        return
    try:
        import raywatch.actor.api as api

        for _, h in api.actors():
            try:
                ray.get(h.close.remote(), timeout=15)
            except Exception:
                pass
            ray.kill(h)
    except Exception:
        pass
    ray.shutdown()


def _summary(out: Path, hist: Dict[str, Any], st: Dict[str, Any], traffic: Traffic, receiver: AlertReceiver, report: Path,
             t0_wall: float, events: List[Tuple[float, str]], drift_at: float, slow_at: float, echo: Any) -> int:
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
    firing_events = [e for e in receiver.events if e.get("status") == "firing"]
    alert_names = sorted({e["labels"].get("alertname", "?") for e in firing_events})
    t_drift = t0_wall + drift_at
    t_slow = t0_wall + slow_at
    mono0 = min((t for t, _ in traffic.latencies), default=0.0)
    p95_before = traffic.client_p95(mono0, mono0 + slow_at)
    p95_after = traffic.client_p95(mono0 + slow_at + 5, float("inf"))
    first_drift_alert = min((e["received_at"] for e in firing_events if e["labels"].get("alertname") == "FeatureDrift"), default=None)
    first_latency_alert = min((e["received_at"] for e in firing_events
                               if e["labels"].get("alertname") == LATENCY_ALERT and e["received_at"] >= t_slow), default=None)
    summary = {
        "requests_sent": traffic.sent,
        "requests_ok": traffic.ok,
        "requests_failed": traffic.failed,
        "feedback_sent": traffic.feedback_sent,
        "windows": len(windows),
        "features": features,
        "drift_injected": injected,
        "drift_detected": detected,
        "drift_false_alarms": false_alarms,
        "prediction_drift": prediction_drift,
        "alert_notifications": receiver.count,
        "alerts_fired": alert_names,
        "seconds_to_drift_alert": None if first_drift_alert is None else round(first_drift_alert - t_drift, 1),
        "seconds_to_latency_alert": None if first_latency_alert is None else round(first_latency_alert - t_slow, 1),
        "client_p95_seconds_before": p95_before,
        "client_p95_seconds_after": p95_after,
        "alerts_file": str(out / "alerts.jsonl"),
        "report": str(report),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
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
    if summary["seconds_to_drift_alert"] is not None:
        echo(f"  drift alert      {summary['seconds_to_drift_alert']:.0f} s after the injection")
    from raywatch.report.svg import format_value

    echo(f"  client p95       {format_value(p95_before, 's')} before the regression, {format_value(p95_after, 's')} after"
         + (f"; alert {summary['seconds_to_latency_alert']:.0f} s after the rollout" if summary["seconds_to_latency_alert"] is not None else ""))
    echo(f"  alerts           {receiver.count} notification(s) ({', '.join(alert_names) or 'none'}) → {out / 'alerts.jsonl'}")
    echo(f"  report           {report}")
    echo(f"  summary          {out / 'summary.json'}")
    return 0
