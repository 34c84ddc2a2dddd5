"""What wrapping a deployment with raywatch costs under load: throughput and latency.

One local Ray cluster runs two Serve applications with the *same* deployment: ``base``
unwrapped and ``mon`` wrapped with ``raywatch.monitor`` (sampling every request, shipping
to a real stats actor once per second). A closed-loop load generator (``--concurrency``
requests in flight, through deployment handles) drives them in interleaved rounds —
base, mon, base, mon, … — so that the machine's drift (other work on a shared box)
falls on both alike. Per round it records throughput and the client-side latency of each
request. Figures: the median over rounds of each variant's throughput, their ratio, and
the added p50 / p99 latency (medians of per-round percentiles, monitored minus base), and
— steadier on a shared machine than wall-clock figures — the replica process's CPU time per
request (Serve's work, the model's and, for ``mon``, raywatch's capture, flusher and shipping).

Run: ``python benchmarks/sidecar_overhead.py [--quick]``; the last line printed is JSON.
Targets: ``throughput_ratio`` >= 0.97, ``p50_added_ms`` <= 0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np

logger = logging.getLogger("raywatch.benchmarks.sidecar_overhead")


def _deployment():
    from ray import serve

    @serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=64)
    class Scorer:
        """A small model: a 20-feature dict in, a logistic score out (~tens of µs of work)."""

        def __init__(self):
            rng = np.random.default_rng(0)
            self.w = rng.normal(size=20)
            self.names = [f"f{j}" for j in range(20)]

        def __call__(self, payload):
            x = np.fromiter((payload[n] for n in self.names), dtype=np.float64, count=20)
            p = 1.0 / (1.0 + np.exp(-float(x @ self.w)))
            return {"prediction": int(p > 0.5), "score": p}

        def cpu_seconds(self):
            """CPU time of this replica process (all threads: Serve's, the model's, raywatch's)."""
            import time as _t

            return _t.process_time()

    return Scorer


async def _round(handle, payloads, seconds: float, concurrency: int):
    lat: list = []
    stop = time.perf_counter() + seconds
    n = len(payloads)

    async def worker(k: int):
        i = k
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            await handle.remote(payloads[i % n])
            lat.append(time.perf_counter() - t0)
            i += concurrency

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    elapsed = time.perf_counter() - t0
    return len(lat) / elapsed, np.asarray(lat)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short rounds; ends within 60 s")
    ap.add_argument("--rounds", type=int, default=None, help="rounds per variant")
    ap.add_argument("--seconds", type=float, default=None, help="seconds per round")
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args(argv)
    rounds = args.rounds or (4 if args.quick else 10)
    seconds = args.seconds or (1.5 if args.quick else 6.0)

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    logging.basicConfig(level=logging.WARNING)
    import ray
    from ray import serve

    import raywatch

    tmp = tempfile.mkdtemp(prefix="rw-bench-")
    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=tmp, log_to_driver=False,
             configure_logging=False, namespace="raywatch-bench")
    try:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        Scorer = _deployment()
        cfg = {
            "actor": {"name": "rw-bench-stats", "sqlite_path": None, "metrics_port": None},
            "resources": {"interval": 5},
        }
        base = serve.run(Scorer.bind(), name="base", route_prefix="/base")
        mon = serve.run(raywatch.monitor(Scorer, cfg).bind(), name="mon", route_prefix="/mon")
        rng = np.random.default_rng(1)
        payloads = [{f"f{j}": float(v) for j, v in enumerate(row)} for row in rng.normal(size=(512, 20))]

        async def run():
            # warm-up: both paths, the stats actor created and connected
            warm = 0.5 if args.quick else 2.0
            await _round(base, payloads, warm, args.concurrency)
            await _round(mon, payloads, warm, args.concurrency)
            out = {"base": [], "mon": []}
            cpu = {"base": [], "mon": []}
            for r in range(rounds):
                order = [("base", base), ("mon", mon)] if r % 2 == 0 else [("mon", mon), ("base", base)]
                for name, h in order:
                    c0 = await h.cpu_seconds.remote()
                    rps, lat = await _round(h, payloads, seconds, args.concurrency)
                    c1 = await h.cpu_seconds.remote()
                    out[name].append((rps, lat))
                    cpu[name].append((c1 - c0) / max(1, lat.size) * 1e6)
            return out, cpu

        res, cpu = asyncio.run(run())
        status = mon._raywatch_status.remote().result() if hasattr(mon, "_raywatch_status") else {}
    finally:
        try:
            serve.shutdown()
        except Exception:
            pass
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)

    def pct(rounds_, q):
        return [float(np.percentile(lat, q)) * 1e3 for _, lat in rounds_]

    base_rps = statistics.median(r for r, _ in res["base"])
    mon_rps = statistics.median(r for r, _ in res["mon"])
    ratios = [m / b for (m, _), (b, _) in zip(res["mon"], res["base"])]
    p50_added = statistics.median(m - b for m, b in zip(pct(res["mon"], 50), pct(res["base"], 50)))
    p99_added = statistics.median(m - b for m, b in zip(pct(res["mon"], 99), pct(res["base"], 99)))
    result = {
        "benchmark": "sidecar_overhead",
        "rounds": rounds,
        "seconds_per_round": seconds,
        "concurrency": args.concurrency,
        "baseline_rps": round(base_rps, 1),
        "monitored_rps": round(mon_rps, 1),
        "throughput_ratio": round(mon_rps / base_rps, 4),
        "throughput_ratio_paired_median": round(statistics.median(ratios), 4),
        "baseline_p50_ms": round(statistics.median(pct(res["base"], 50)), 3),
        "baseline_p99_ms": round(statistics.median(pct(res["base"], 99)), 3),
        "p50_added_ms": round(p50_added, 4),
        "p99_added_ms": round(p99_added, 4),
        "replica_cpu_us_per_request_base": round(statistics.median(cpu["base"]), 1),
        "replica_cpu_us_per_request_mon": round(statistics.median(cpu["mon"]), 1),
        "replica_cpu_added_us": round(statistics.median(m - b for m, b in zip(cpu["mon"], cpu["base"])), 1),
        "monitor_dropped_total": status.get("dropped_total"),
        "monitor_batches_acked": (status.get("shipper") or {}).get("acked_batches"),
        "meets_targets": (mon_rps / base_rps) >= 0.97 and p50_added <= 0.1,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result))
    sys.stdout.flush()
    return result


if __name__ == "__main__":
    main()
