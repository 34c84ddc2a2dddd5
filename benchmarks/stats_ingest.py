"""How many summarized rows per second one stats actor absorbs, and its memory from 1M to 10M rows.

Several "replica" actors (``--replicas``) each hold pre-built :class:`ReplicaBatch` es —
real window summaries of ``--rows-per-batch`` rows against a 20-feature reference profile,
real latency sketches, resources — and ship them to one stats actor exactly as replicas
do: fire-and-forget ``ingest.remote(batch)`` calls, at most ``--in-flight`` outstanding per
replica, each batch with its own ``seq`` and current timestamps (so windows open and
close as in production: 1 s windows, evaluated every 0.5 s).

Measured in the same run:

* ``raw_rows_per_second`` — the naive design: one actor call per request record (a
  20-feature dict) into an actor that only counts them;
* ``bare_rows_per_second`` — the same batches into a bare actor that only counts rows
  (the Ray transport's ceiling for this batch size);
* ``rows_per_second`` — into raywatch's stats actor (SQLite journal on, as by default):
  decode + merge of summaries and sketches, dedupe, detectors, windows, rules;
* ``memory_growth`` — the stats actor's RSS after 10M rows against after 1M rows.

Run: ``python benchmarks/stats_ingest.py [--quick]``; the last line printed is JSON.
Targets: ``rows_per_second`` >= 1,000,000 and ``memory_growth`` <= 0.10.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
import uuid

import numpy as np

N_FEATURES = 20


def _reference(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    cols = {f"num{j}": rng.normal(j, 1.0 + j / 10, n) for j in range(16)}
    cols.update({f"cat{j}": rng.choice(["a", "b", "c", "d", "e"], n) for j in range(4)})
    return cols


def _build_batches(profile_bytes: bytes, rows_per_batch: int, distinct: int, replica: str, seed: int) -> list:
    from raywatch.stats.batch import ReplicaBatch
    from raywatch.stats.profile import Profile
    from raywatch.stats.sketch import LatencySketch

    profile = Profile.from_bytes(profile_bytes)
    out = []
    for i in range(distinct):
        rng = np.random.default_rng(seed * 1000 + i)
        sk = LatencySketch()
        sk.add_many(rng.lognormal(-4.0, 0.4, rows_per_batch))
        out.append(
            ReplicaBatch(
                app="bench", deployment="Model", model="m", version="v1", replica_id=replica, node_id="n",
                start_ts=0.0, end_ts=0.0, requests=rows_per_batch, errors={"ValueError": rows_per_batch // 200},
                latency=sk.to_dict(), summary=profile.summarize(_reference(rows_per_batch, seed * 1000 + i + 1), seed=i).to_bytes(),
                resources={"cpu_percent": 50.0, "rss_bytes": 2e8, "gpus": [], "gpu_status": "no GPU"},
            )
        )
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="well under 60 s on 2 cores")
    ap.add_argument("--replicas", type=int, default=4)
    ap.add_argument("--rows-per-batch", type=int, default=10_000)
    ap.add_argument("--in-flight", type=int, default=8)
    ap.add_argument("--total-rows", type=int, default=10_000_000)
    ap.add_argument("--no-journal", action="store_true", help="turn the SQLite ingest journal off (checkpoints only)")
    args = ap.parse_args(argv)

    import logging

    logging.basicConfig(level=logging.WARNING)
    import ray

    from raywatch.actor.actor import get_or_create
    from raywatch.config import MonitorConfig
    from raywatch.stats.profile import Profile

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    tmp = tempfile.mkdtemp(prefix="rw-bench-")
    ray.init(num_cpus=max(2, os.cpu_count() or 2), include_dashboard=False, log_to_driver=False,
             configure_logging=False, _temp_dir=os.path.join(tmp, "ray"))
    try:
        return _run(args, ray, get_or_create, MonitorConfig, Profile, tmp)
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


def _run(args, ray, get_or_create, MonitorConfig, Profile, tmp) -> dict:
    t_start = time.perf_counter()
    rpb = args.rows_per_batch
    distinct = 4 if args.quick else 8
    profile = Profile.fit(_reference(10_000 if args.quick else 20_000), seed=0)
    pb = profile.to_bytes()

    @ray.remote(num_cpus=0)
    class Replica:
        def __init__(self, name, profile_bytes, rows_per_batch, seed, distinct):
            self.name = name
            self.batches = _build_batches(profile_bytes, rows_per_batch, distinct, name, seed)
            self.seq = 0
            self.record = {f"num{j}": float(j) for j in range(16)}
            self.record.update({f"cat{j}": "a" for j in range(4)})

        def ready(self):
            return len(self.batches)

        def ship(self, target, n_batches, in_flight):
            refs = []
            for i in range(n_batches):
                self.seq += 1
                now = time.time()
                b = dataclasses.replace(self.batches[i % len(self.batches)], seq=self.seq, start_ts=now - 1.0, end_ts=now)
                refs.append(target.ingest.remote(b))
                if len(refs) >= in_flight:
                    done, refs = ray.wait(refs, num_returns=1)
            ray.get(refs)
            return n_batches

        def ship_raw(self, target, seconds, in_flight):
            refs, n = [], 0
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                refs.append(target.record.remote(self.record))
                n += 1
                if len(refs) >= in_flight:
                    done, refs = ray.wait(refs, num_returns=1)
            ray.get(refs)
            return n

    @ray.remote(num_cpus=0)
    class BareActor:
        def __init__(self):
            self.rows = 0

        async def ingest(self, batch):
            self.rows += batch.requests
            return "ok"

        async def record(self, rec):
            self.rows += 1

        async def count(self):
            return self.rows

    replicas = [Replica.remote(f"replica-{i}", pb, rpb, i + 1, distinct) for i in range(args.replicas)]
    ray.get([r.ready.remote() for r in replicas])

    def ship(target, total_rows):
        per = max(1, total_rows // (rpb * len(replicas)))
        t0 = time.perf_counter()
        n = sum(ray.get([r.ship.remote(target, per, args.in_flight) for r in replicas]))
        return n * rpb, time.perf_counter() - t0

    # -- baseline 1: raw records, one call each
    bare = BareActor.remote()
    ray.get(bare.count.remote())
    raw_seconds = 1.0 if args.quick else 4.0
    t0 = time.perf_counter()
    raw_rows = sum(ray.get([r.ship_raw.remote(bare, raw_seconds, args.in_flight) for r in replicas]))
    raw_rps = raw_rows / (time.perf_counter() - t0)

    # -- baseline 2 / raywatch, interleaved: bare, raywatch (1M then 9M), bare
    warm = rpb * len(replicas) * 4
    bare_rates = []
    bare_rows = min(1_000_000, args.total_rows // 5) if args.quick else args.total_rows // 2
    rows, secs = ship(bare, bare_rows)
    bare_rates.append(rows / secs)

    name = f"rw-bench-{uuid.uuid4().hex[:6]}"
    cfg = MonitorConfig(
        model="m",
        actor={"name": name, "sqlite_path": os.path.join(tmp, "stats.sqlite"), "metrics_port": 0,
               "journal": not args.no_journal},
        windows={"length": 1.0, "rolling": 5, "grace": 0.0, "evaluation_interval": 0.5},
    )
    stats = get_or_create(cfg)
    ray.get(stats.register_model.remote("bench/Model", cfg, pb))
    ship(stats, warm)  # warm-up: detectors, windows, engine
    base_rows = ray.get(stats.status.remote("bench/Model"))["models"]["bench/Model"]["totals"]["requests"]
    r1, s1 = ship(stats, 1_000_000)
    ray.get(stats.evaluate.remote())
    rss_1m = ray.get(stats.info.remote())["rss_bytes"]
    r2, s2 = ship(stats, args.total_rows - r1)
    ray.get(stats.evaluate.remote())
    info = ray.get(stats.info.remote())
    rss_10m = info["rss_bytes"]
    st = ray.get(stats.status.remote("bench/Model"))["models"]["bench/Model"]
    ingested = st["totals"]["requests"] - base_rows
    rw_rps = (r1 + r2) / (s1 + s2)

    rows, secs = ship(bare, bare_rows)
    bare_rates.append(rows / secs)
    bare_rps = sum(bare_rates) / len(bare_rates)
    ray.kill(stats)

    result = {
        "benchmark": "stats_ingest",
        "quick": bool(args.quick),
        "replicas": args.replicas,
        "rows_per_batch": rpb,
        "features": N_FEATURES,
        "journal": not args.no_journal,
        "rows_ingested": int(ingested),
        "rows_per_second": round(rw_rps),
        "batches_per_second": round(rw_rps / rpb, 1),
        "bare_rows_per_second": round(bare_rps),
        "raw_rows_per_second": round(raw_rps),
        "ratio_vs_bare": round(rw_rps / bare_rps, 3),
        "speedup_vs_raw_rows": round(rw_rps / raw_rps, 1),
        "rss_at_1m_rows_bytes": int(rss_1m),
        "rss_at_end_bytes": int(rss_10m),
        "memory_growth": round((rss_10m - rss_1m) / rss_1m, 4),
        "actor_failures": sum(info["failures"].values()),
        "wall_seconds": round(time.perf_counter() - t_start, 1),
        "target_rows_per_second": 1_000_000,
        "target_memory_growth": 0.10,
    }
    if ingested != r1 + r2:
        result["note"] = f"rows shipped {r1 + r2} != rows ingested {ingested}"
    return result


if __name__ == "__main__":
    out = main()
    print(json.dumps(out))
    sys.exit(0)
