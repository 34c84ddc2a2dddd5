"""How many summarized rows per second one stats actor absorbs, against a bare counting actor, at each batch size.

Several "replica" actors (``--replicas``) each hold pre-built :class:`ReplicaBatch` es —
real window summaries of ``--batch-rows`` rows against a 20-feature reference profile,
real latency sketches, resources — and ship them to one stats actor exactly as replicas
do: fire-and-forget ``ingest.remote(batch)`` calls, at most ``--in-flight`` outstanding per
replica, each batch with its own ``seq`` and current timestamps (so windows open and
close as in production: 1 s windows, evaluated every 0.5 s).

For each batch size (``--batch-rows``, 1,000 and 10,000 rows by default), measured in the
same run, in alternating phases (bare, stats, bare, stats, …, bare; ``--rounds`` stats
phases of ``--batches-per-phase`` batches per replica each):

* ``bare_rows_per_second`` — the same batches into a bare actor that only counts rows
  (the Ray transport's ceiling for this batch size on this machine);
* ``rows_per_second`` — into raywatch's stats actor (journal on, as by default: rows in
  SQLite, window summaries in the store's append-only files):
  journal write before the reply, decode + merge of summaries and sketches, dedupe,
  detectors, windows, rules;
* ``ratio_vs_bare`` — each stats phase's rate over the mean of the bare phases either side
  of it: the median over the rounds, with the lowest and highest (``ratio_spread``);
* ``memory_growth`` — the stats actor's RSS at the end against after its first phase.

Once per run, ``raw_rows_per_second``: the naive design, one actor call per request record
(a 20-feature dict) into the bare actor.

``--controls`` measures, after each batch size's main phases and against the same bare actor,
the same stats actor three more ways (each a configuration users have): its batches without
a window summary (a deployment monitored without a reference profile: counts, latency,
errors), the journal off (``actor.journal: false``), and both: ``controls`` in the batch
size's result, each with its ``ratio_vs_bare`` and spread. They say where the main figure's
distance to the bare actor goes (the summaries, the journal, the rest).

Run: ``python benchmarks/stats_ingest.py [--quick]``; the last line printed is JSON.
Targets: ``ratio_vs_bare`` >= 0.9 at every batch size, ``memory_growth`` <= 0.10.
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
    ap.add_argument("--quick", action="store_true", help="under 60 s on 2 cores")
    ap.add_argument("--replicas", type=int, default=4)
    ap.add_argument("--batch-rows", type=int, nargs="+", default=[1_000, 10_000], help="rows per batch, one run each")
    ap.add_argument("--rows-per-batch", type=int, default=None, help="one batch size only (same as --batch-rows N)")
    ap.add_argument("--rounds", type=int, default=None, help="stats phases per batch size (default 4, quick 3)")
    ap.add_argument("--batches-per-phase", type=int, default=None, help="per replica and phase (default 600, quick 120)")
    ap.add_argument("--in-flight", type=int, default=8)
    ap.add_argument("--no-journal", action="store_true", help="turn the SQLite ingest journal off (checkpoints only)")
    ap.add_argument("--controls", action="store_true",
                    help="also measure without summaries, without the journal, and without both (about 4x as long)")
    args = ap.parse_args(argv)
    if args.rows_per_batch:
        args.batch_rows = [args.rows_per_batch]
    args.rounds = args.rounds or (3 if args.quick else 4)
    args.batches_per_phase = args.batches_per_phase or (120 if args.quick else 600)

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


def _actors(ray):
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

        def ship(self, target, n_batches, in_flight, summaries=True):
            refs = []
            for i in range(n_batches):
                self.seq += 1
                now = time.time()
                b = dataclasses.replace(self.batches[i % len(self.batches)], seq=self.seq, start_ts=now - 1.0, end_ts=now)
                if not summaries:
                    b.summary = None
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

    return Replica, BareActor


def _spread(values: list) -> dict:
    v = sorted(values)
    mid = len(v) // 2
    median = v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2
    return {"median": round(median, 3), "min": round(v[0], 3), "max": round(v[-1], 3), "n": len(v)}


def _one_size(args, ray, get_or_create, MonitorConfig, Replica, bare, pb: bytes, rpb: int, tmp: str) -> dict:
    distinct = 4 if args.quick else 8
    replicas = [Replica.remote(f"replica-{i}", pb, rpb, i + 1, distinct) for i in range(args.replicas)]
    ray.get([r.ready.remote() for r in replicas])
    out = _phases(args, ray, get_or_create, MonitorConfig, replicas, bare, pb, rpb, tmp, journal=not args.no_journal,
                  summaries=True)
    print(f"{rpb:>6}-row batches: ratio_vs_bare {out['ratio_vs_bare']:.3f} (rounds {out['ratio_spread'][0]:.3f}-"
          f"{out['ratio_spread'][1]:.3f}, median of {args.rounds}); stats {out['rows_per_second']:,} rows/s, "
          f"bare {out['bare_rows_per_second']:,} rows/s", flush=True)
    if args.controls:
        out["controls"] = {}
        for label, journal, summaries in (("no_summaries", not args.no_journal, False), ("no_journal", False, True),
                                          ("neither", False, False)):
            c = _phases(args, ray, get_or_create, MonitorConfig, replicas, bare, pb, rpb, tmp, journal=journal,
                        summaries=summaries)
            out["controls"][label] = {k: c[k] for k in ("ratio_vs_bare", "ratio_spread", "ratios", "rows_per_second",
                                                        "bare_rows_per_second", "actor_failures")}
            print(f"{rpb:>6}-row batches, control {label}: ratio_vs_bare {c['ratio_vs_bare']:.3f} "
                  f"(rounds {c['ratio_spread'][0]:.3f}-{c['ratio_spread'][1]:.3f})", flush=True)
    for r in replicas:
        ray.kill(r)
    return out


def _phases(args, ray, get_or_create, MonitorConfig, replicas, bare, pb: bytes, rpb: int, tmp: str, *, journal: bool,
            summaries: bool) -> dict:
    """A new stats actor (``journal`` on or off) fed by ``replicas`` (their batches with or
    without ``summaries``) in phases alternating with the bare actor's."""
    per = args.batches_per_phase

    def ship(target):
        t0 = time.perf_counter()
        n = sum(ray.get([r.ship.remote(target, per, args.in_flight, summaries) for r in replicas]))
        return n * rpb, time.perf_counter() - t0

    name = f"rw-bench-{uuid.uuid4().hex[:6]}"
    cfg = MonitorConfig(
        model="m",
        actor={"name": name, "sqlite_path": os.path.join(tmp, f"stats-{name}.sqlite"), "metrics_port": 0,
               "journal": journal},
        windows={"length": 1.0, "rolling": 5, "grace": 0.0, "evaluation_interval": 0.5},
    )
    stats = get_or_create(cfg)
    ray.get(stats.register_model.remote("bench/Model", cfg, pb))
    ship(bare)  # warm-up of both: detectors, windows, engine, the replicas' first calls
    ship(stats)
    base_rows = ray.get(stats.status.remote("bench/Model"))["models"]["bench/Model"]["totals"]["requests"]
    bare_rates, stats_rates = [], []
    rows, secs = ship(bare)
    bare_rates.append(rows / secs)
    shipped, rss_first = 0, None
    for _ in range(args.rounds):
        rows, secs = ship(stats)
        shipped += rows
        stats_rates.append(rows / secs)
        if rss_first is None:
            ray.get(stats.evaluate.remote())
            rss_first = ray.get(stats.info.remote())["rss_bytes"]
        rows, secs = ship(bare)
        bare_rates.append(rows / secs)
    ray.get(stats.evaluate.remote())
    info = ray.get(stats.info.remote())
    st = ray.get(stats.status.remote("bench/Model"))["models"]["bench/Model"]
    ingested = st["totals"]["requests"] - base_rows
    ray.kill(stats)
    ratios = [s / ((bare_rates[i] + bare_rates[i + 1]) / 2) for i, s in enumerate(stats_rates)]
    spread = _spread(ratios)
    out = {
        "rows_per_batch": rpb,
        "rows_ingested": int(ingested),
        "rows_per_second": round(sum(stats_rates) / len(stats_rates)),
        "batches_per_second": round(sum(stats_rates) / len(stats_rates) / rpb, 1),
        "bare_rows_per_second": round(sum(bare_rates) / len(bare_rates)),
        "ratio_vs_bare": spread["median"],
        "ratio_spread": [spread["min"], spread["max"]],
        "ratios": [round(r, 3) for r in ratios],
        "rss_after_first_phase_bytes": int(rss_first),
        "rss_at_end_bytes": int(info["rss_bytes"]),
        "memory_growth": round((info["rss_bytes"] - rss_first) / rss_first, 4),
        "actor_failures": sum(info["failures"].values()),
    }
    if ingested != shipped:
        out["note"] = f"rows shipped {shipped} != rows ingested {ingested}"
    return out


def _run(args, ray, get_or_create, MonitorConfig, Profile, tmp) -> dict:
    t_start = time.perf_counter()
    profile = Profile.fit(_reference(10_000 if args.quick else 20_000), seed=0)
    pb = profile.to_bytes()
    Replica, BareActor = _actors(ray)
    bare = BareActor.remote()
    ray.get(bare.count.remote())

    # the naive design once: raw records, one call each
    probe = [Replica.remote(f"raw-{i}", pb, 10, i + 1, 1) for i in range(args.replicas)]
    ray.get([r.ready.remote() for r in probe])
    raw_seconds = 1.0 if args.quick else 4.0
    t0 = time.perf_counter()
    raw_rows = sum(ray.get([r.ship_raw.remote(bare, raw_seconds, args.in_flight) for r in probe]))
    raw_rps = raw_rows / (time.perf_counter() - t0)
    for r in probe:
        ray.kill(r)

    sizes = {str(rpb): _one_size(args, ray, get_or_create, MonitorConfig, Replica, bare, pb, rpb, tmp)
             for rpb in args.batch_rows}
    worst = min(sizes.values(), key=lambda s: s["ratio_vs_bare"])
    result = {
        "benchmark": "stats_ingest",
        "quick": bool(args.quick),
        "replicas": args.replicas,
        "features": N_FEATURES,
        "journal": not args.no_journal,
        "controls": bool(args.controls),
        "rounds": args.rounds,
        "batches_per_phase": args.batches_per_phase,
        "in_flight": args.in_flight,
        "raw_rows_per_second": round(raw_rps),
        "sizes": sizes,
        "ratio_vs_bare_min_over_sizes": worst["ratio_vs_bare"],
        "memory_growth": max(s["memory_growth"] for s in sizes.values()),
        "actor_failures": sum(s["actor_failures"] for s in sizes.values()),
        "wall_seconds": round(time.perf_counter() - t_start, 1),
        "target_ratio_vs_bare": 0.9,
        "target_memory_growth": 0.10,
    }
    for rpb, s in sizes.items():
        result[f"ratio_vs_bare_{rpb}"] = s["ratio_vs_bare"]
        result[f"ratio_spread_{rpb}"] = s["ratio_spread"]
    return result


if __name__ == "__main__":
    out = main()
    print(json.dumps(out))
    sys.exit(0)
