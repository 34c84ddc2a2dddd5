"""Benchmark: closing the loop — from the alert to a promoted model, and what users saw.

On a local Ray cluster, the remediable model (``deployments/remediable.py``) serves drifted
traffic through the rollout router, which logs it; the logged requests are labelled; then a
``FeatureDrift`` alert reaches the remediation controller, which retrains on the labelled
dataset (a Ray task), validates the candidate against the champion on held-back rows,
mirrors traffic to it (shadow), gives it a share of traffic (canary) and promotes it through
Serve's declarative config. Traffic runs throughout, from client threads.

Figures: seconds from the alert to the promotion; requests sent while the loop ran and how
many failed (target 0); users' latency p50 and p95 while the loop ran against the same
traffic before it (ratios); the champion's and the candidate's accuracy on the held-back rows. Baseline in the same run: the same promotion done by hand — the serve
config's ``user_config`` changed and applied with Serve (``serve deploy``), no router —
with its failed requests and latency ratio.

Timings on shared machines are noisy; compare the ratios. ``--quick`` ends within 60 s on
a 2-core machine. The last line of stdout is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Tuple

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

NS = "raywatch-bench"


class Clients:
    """``n`` client threads sending payloads through the app's handle; each answer kept as
    (wall time sent, ok, latency, prediction)."""

    def __init__(self, app: str, payloads: List[Dict[str, float]], rate: float, n: int = 4):
        from ray import serve

        self.handle = serve.get_app_handle(app)
        self.payloads, self.rate, self.n = payloads, rate, n
        self.out: List[Tuple[float, bool, float, Any]] = []
        self.stop_ev = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(k,), daemon=True) for k in range(n)]

    def __enter__(self) -> "Clients":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop_ev.set()
        for t in self.threads:
            t.join(40)

    def _run(self, k: int) -> None:
        period, i = self.n / self.rate, k
        while not self.stop_ev.is_set():
            w, t0 = time.time(), time.perf_counter()
            try:
                ans = self.handle.remote(self.payloads[i % len(self.payloads)]).result(timeout_s=30)
                self.out.append((w, True, time.perf_counter() - t0, ans.get("prediction")))
            except Exception:  # noqa: BLE001 - what a user would see
                self.out.append((w, False, time.perf_counter() - t0, None))
            i += self.n
            self.stop_ev.wait(max(0.0, period - (time.perf_counter() - t0)))

    def window(self, t0: float, t1: float) -> List[Tuple[float, bool, float, Any]]:
        return [r for r in self.out if t0 <= r[0] <= t1]


def _q(values: List[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def _figures(rows: List[Tuple[float, bool, float, Any]], before: List[Tuple[float, bool, float, Any]]) -> Dict[str, Any]:
    lat = [r[2] for r in rows if r[1]]
    base = [r[2] for r in before if r[1]]
    return {"requests": len(rows), "failed": sum(1 for r in rows if not r[1]),
            "p50_ms": round(statistics.median(lat) * 1000, 2) if lat else None,
            "p95_ms": round(_q(lat, 0.95) * 1000, 2) if lat else None,
            "p50_ratio": round(statistics.median(lat) / statistics.median(base), 3) if lat and base else None,
            "p95_ratio": round(_q(lat, 0.95) / _q(base, 0.95), 3) if lat and base else None}


def _wait(pred: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise TimeoutError(what)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short phases; ends within 60 s")
    args = ap.parse_args()
    phase = "1s" if args.quick else "10s"
    seed_rows = 300 if args.quick else 2000
    rate = 30.0 if args.quick else 100.0

    import ray
    from ray import serve

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    t_start = time.monotonic()
    ray.init(num_cpus=2, include_dashboard=False, namespace=NS, log_to_driver=False, configure_logging=False)
    tmp = tempfile.mkdtemp(prefix="rw-bench-rem-")
    os.environ["RAYWATCH_ARTIFACTS"] = tmp
    from deployments.remediable import initial_artifact, requests, truth
    from raywatch.config.remediate import PayloadLogConfig
    from raywatch.payload.log import PayloadLog
    from raywatch.remediate.shell import controller, serving
    from raywatch.serve import compat
    from raywatch.sinks.notification import Notification

    serve.start(http_options={"host": "127.0.0.1", "port": 0})
    payload_dir = os.path.join(tmp, "payload")
    v1 = initial_artifact()
    ctl = controller.get_or_create(os.path.join(tmp, "audit.sqlite"), name="rw-bench", namespace=NS)

    def app_cfg(name: str, with_router: bool) -> Dict[str, Any]:
        return {"name": name, "route_prefix": f"/{name}", "import_path": "deployments.remediable:build",
                "args": {"app": name, "controller": "rw-bench", "namespace": NS,
                         "payload_log": {"path": payload_dir, "flush_interval": 0.3} if with_router else None},
                "deployments": [{"name": "Scorer", "user_config": {"artifact": v1, "version": "v1"}}]}

    rem = {"trigger": {"alerts": ["FeatureDrift"]},
           "guardrails": {"min_interval": "1h", "min_labelled_rows": seed_rows // 2},
           "retrain": {"function": "deployments.remediable:retrain", "num_cpus": 0.5, "holdout": 0.3},
           "validation": {"predict": "deployments.remediable:predict", "min_improvement": 0.05, "min_holdout_rows": 60,
                          "bootstrap": 300},
           "rollout": {"shadow": {"duration": phase, "min_requests": 20, "timeout": "1s"},
                       "canary": {"share": 0.2, "duration": phase, "min_requests": 10}}}
    ray.get(ctl.register.remote("bench/Scorer", {"remediation": rem, "payload_log": {"path": payload_dir}}))
    t = time.time()
    compat.apply_app_configs([app_cfg("bench", True), app_cfg("manual", False)])
    for a in ("bench", "manual"):
        serving.wait_healthy(a, "Scorer", 120, since=t)
    payloads = requests(5000, drifted=True, seed=7)

    # seed: drifted traffic, logged by the router, then labelled from the true rule
    log = PayloadLog(PayloadLogConfig(path=payload_dir))
    with Clients("bench", payloads, rate=300, n=8) as seed:
        _wait(lambda: len(seed.out) >= seed_rows, 60, "seed traffic")
    tbl = _wait(lambda: (lambda t: t if t.num_rows >= seed_rows else None)(log.read("requests", "Scorer")), 30,
                "logged requests")
    log.add_labels("Scorer", [(rid, truth({"x1": a, "x2": b})) for rid, a, b in zip(
        tbl.column("request_id").to_pylist(), tbl.column("x1").to_pylist(), tbl.column("x2").to_pylist())])
    log.flush()

    alert = Notification.build("remediation", "g", {"alertname": "FeatureDrift"}, [
        {"status": "firing", "labels": {"alertname": "FeatureDrift", "app": "bench", "deployment": "Scorer",
                                        "severity": "warning"}, "annotations": {}, "fingerprint": "b"}]).to_dict()
    with Clients("bench", payloads, rate=rate, n=3) as users, Clients("manual", payloads, rate=rate, n=3) as manual_users:
        _wait(lambda: len(users.out) >= 30 and len(manual_users.out) >= 30, 30, "baseline traffic")
        t_before = time.time()
        t_alert = time.monotonic()
        (d,) = ray.get(ctl.notify.remote(alert))["started"]
        state = ray.get(ctl.wait.remote(d, 300))
        alert_to_promotion = time.monotonic() - t_alert
        t_loop_end = time.time()
        # baseline: the same promotion by hand (user_config changed, serve deploy), no router
        events = ray.get(ctl.events.remote("bench/Scorer"))
        promoted = next((e for e in events if e["kind"] == "promoted"), None)
        t_manual = time.time()
        if promoted is not None:
            serving.promote("manual", "Scorer", promoted["evidence"]["serve_config_patch"]["user_config"])
            serving.wait_healthy("manual", "Scorer", 120, since=t_manual)
        t_manual_end = time.time()
        _wait(lambda: len(users.window(t_manual_end, time.time())) >= 10, 30, "traffic after")
    loop = _figures(users.window(t_before, t_loop_end), users.window(0, t_before))
    manual = _figures(manual_users.window(t_manual, t_manual_end + 0.5), manual_users.window(0, t_before))
    by_step = {e["kind"]: e for e in events}
    gate = (by_step.get("validation_passed") or by_step.get("validation_failed") or {}).get("evidence", {}).get("gate", {})
    figures = {
        "benchmark": "remediation", "quick": args.quick, "final_state": state,
        "alert_to_promotion_s": round(alert_to_promotion, 2),
        "requests_during_loop": loop["requests"], "failed_during_loop": loop["failed"],
        "loop_latency_p50_ratio": loop["p50_ratio"], "loop_latency_p95_ratio": loop["p95_ratio"],
        "loop_latency_p50_ms": loop["p50_ms"], "loop_latency_p95_ms": loop["p95_ms"],
        "baseline_manual_promotion_requests": manual["requests"], "baseline_manual_promotion_failed": manual["failed"],
        "baseline_manual_latency_p95_ratio": manual["p95_ratio"],
        "holdout_accuracy_champion": round(gate.get("champion", float("nan")), 4),
        "holdout_accuracy_candidate": round(gate.get("candidate", float("nan")), 4),
        "steps_s": {e["kind"]: round(e["ts"] - events[0]["ts"], 2) for e in events},
        "wall_s": round(time.monotonic() - t_start, 1),
    }
    print(f"alert → promotion: {figures['alert_to_promotion_s']} s ({state}); requests during the loop: "
          f"{loop['requests']}, failed: {loop['failed']}; latency p50 ×{loop['p50_ratio']}, p95 ×{loop['p95_ratio']} "
          f"of before; by hand: {manual['failed']} failed of {manual['requests']}; held-back accuracy "
          f"{figures['holdout_accuracy_champion']} → {figures['holdout_accuracy_candidate']}")
    serve.shutdown()
    ray.shutdown()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
