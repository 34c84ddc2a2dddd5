"""Helpers of the remediation tests: a webhook receiver, a traffic generator that counts
what users saw, the remediable app deployed from a serve config, labels for logged traffic."""

from __future__ import annotations

import json
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional

from rw_test_support import wait_until


class Receiver:
    """A local webhook receiver that keeps each JSON body it accepts (200)."""

    def __init__(self) -> None:
        bodies: List[Dict[str, Any]] = []

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                bodies.append(json.loads(self.rfile.read(n)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *a: Any) -> None:
                pass

        self.bodies = bodies
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def steps(self) -> List[str]:
        return [a["labels"]["step"] for b in self.bodies for a in b.get("alerts", [])]

    def close(self) -> None:
        self.server.shutdown()


class Traffic:
    """Requests to the app through its handle from a thread, ``rate`` a second, each
    answer (or failure) and its latency kept with the time it was sent."""

    def __init__(self, app: str, *, drifted: bool = True, rate: float = 40.0, concurrency: int = 4):
        from ray import serve

        from deployments.remediable import requests

        self.handle = serve.get_app_handle(app)
        self.payloads = requests(5000, drifted=drifted, seed=11)
        self.rate = rate
        self.concurrency = concurrency
        self.results: List[tuple] = []  # (t_sent, ok, latency, error, wall time sent)
        self._stop = threading.Event()
        self._threads: List[threading.Thread] = []

    def start(self) -> "Traffic":
        for k in range(self.concurrency):
            t = threading.Thread(target=self._run, args=(k,), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def _run(self, k: int) -> None:
        i = k
        period = self.concurrency / self.rate
        while not self._stop.is_set():
            t0 = time.monotonic()
            w0 = time.time()
            p = self.payloads[i % len(self.payloads)]
            i += self.concurrency
            try:
                out = self.handle.remote(p).result(timeout_s=30)
                self.results.append((t0, "prediction" in out, time.monotonic() - t0, None, w0))
            except Exception as exc:  # noqa: BLE001 - what a user would see
                self.results.append((t0, False, time.monotonic() - t0, f"{type(exc).__name__}: {exc}"[:300], w0))
            self._stop.wait(max(0.0, period - (time.monotonic() - t0)))

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(40)

    def failed(self, since: float = 0.0, until: float = float("inf")) -> List[tuple]:
        return [r for r in self.results if not r[1] and since <= r[0] <= until]

    def count(self, since: float = 0.0, until: float = float("inf")) -> int:
        return sum(1 for r in self.results if since <= r[0] <= until)

    def latencies(self, since: float = 0.0, until: float = float("inf")) -> List[float]:
        return [r[2] for r in self.results if r[1] and since <= r[0] <= until]


def p(values: List[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def median(values: List[float]) -> float:
    return statistics.median(values) if values else float("nan")


def app_config(app: str, artifact: str, payload_dir: str, controller: str, namespace: str) -> Dict[str, Any]:
    return {"name": app, "route_prefix": f"/{app}", "import_path": "deployments.remediable:build",
            "args": {"app": app, "controller": controller, "namespace": namespace,
                     "payload_log": {"path": payload_dir, "flush_interval": 0.3}},
            "deployments": [{"name": "Scorer", "user_config": {"artifact": artifact, "version": "v1"}}]}


def deploy(configs: List[Dict[str, Any]], timeout: float = 120.0) -> None:
    from raywatch.remediate.shell import serving
    from raywatch.serve import compat

    t0 = time.time()
    compat.apply_app_configs(configs)
    for c in configs:
        serving.wait_healthy(c["name"], "Scorer", timeout, since=t0)


def label_logged(log: Any, model: str, *, drifted: bool = True, min_rows: int = 1) -> int:
    """Labels (from the true rule) for every logged request of ``model``; returns how many."""
    from deployments.remediable import truth

    def rows():
        t = log.read("requests", model)
        return t if t.num_rows >= min_rows else None

    t = wait_until(rows, timeout=60, interval=0.3, what=f"{min_rows} logged requests", retry_errors=True)
    items = [(rid, truth({"x1": a, "x2": b}, drifted)) for rid, a, b in
             zip(t.column("request_id").to_pylist(), t.column("x1").to_pylist(), t.column("x2").to_pylist())]
    log.add_labels(model, items)
    log.flush()
    return len(items)


def alert(app: str, deployment: str = "Scorer", name: str = "FeatureDrift") -> Dict[str, Any]:
    from raywatch.sinks.notification import Notification

    return Notification.build("remediation", "g", {"alertname": name}, [
        {"status": "firing", "labels": {"alertname": name, "app": app, "deployment": deployment, "model": deployment,
                                        "severity": "warning"},
         "annotations": {"summary": "drift"}, "startsAt": "2026-01-01T00:00:00.000Z", "endsAt": "0001-01-01T00:00:00Z",
         "generatorURL": "", "fingerprint": "f", "value": 0.4}]).to_dict()


def settings(payload_dir: str, receiver_url: Optional[str] = None, **remediation: Any) -> Dict[str, Any]:
    base: Dict[str, Any] = {
        "trigger": {"alerts": ["FeatureDrift", "AccuracyDrop"]},
        "guardrails": {"min_interval": "1h", "min_labelled_rows": 200},
        "retrain": {"function": "deployments.remediable:retrain", "num_cpus": 0.5, "timeout": "120s", "holdout": 0.3},
        "validation": {"predict": "deployments.remediable:predict", "metric": "accuracy", "min_improvement": 0.05,
                       "min_holdout_rows": 60, "bootstrap": 300},
        "rollout": {"shadow": {"duration": "1.5s", "min_requests": 20, "timeout": "1s"},
                    "canary": {"share": 0.3, "duration": "1.5s", "min_requests": 10}},
    }
    for k, v in remediation.items():
        base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) else v
    out: Dict[str, Any] = {"remediation": base, "payload_log": {"path": payload_dir, "flush_interval": 0.3}}
    if receiver_url:
        out["sinks"] = [{"name": "hook", "type": "webhook", "url": receiver_url, "retry": {"max_attempts": 2}}]
    return out
