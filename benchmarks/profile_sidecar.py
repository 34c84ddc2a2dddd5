"""Where a monitored replica's CPU goes: py-spy on a live Serve replica under load.

One local Ray cluster runs the benchmark's scorer (``sidecar_overhead._deployment``) twice,
``base`` unwrapped and ``mon`` wrapped with ``raywatch.monitor`` (same settings as
``sidecar_overhead.py``: every request sampled, a 22-column reference profile, a real stats
actor). The driver sends an open loop at ``--rate`` requests/s to each, alternating request
by request, while ``py-spy record --format raw`` samples the monitored replica (every
thread, idle frames left out, so a sample is a moment of CPU). The collapsed stacks are
sorted into the parts of monitoring (``gc`` only with ``--native``, which pauses the process
at each sample; the collector's own time is also measured directly in every replica with
``gc.callbacks``) — request path (``serve/methods.py``,
``serve/capture.py``), flusher: build (records → columns), summarize, serialize (summary
``to_bytes``, Ray's pickling of the batch), resource sampling, the actor call (submit,
``ray.wait`` on the reply), and garbage collection — and everything else (Serve, the model,
Ray's own threads). Each part's share of samples times the replica's measured CPU per
request gives µs a request. The base replica's CPU per request at the same moments is
measured too, so ``added_us`` (mon − base) can be set beside the parts.

With ``--legacy`` (default) a third app, ``mon_legacy``, flushes every ``flush_interval``
whatever the load (``shipping.flush_min_records: 1``, the cadence before issue 15) and is
profiled at the same time, for the before/after.

Run: ``python benchmarks/profile_sidecar.py [--quick] [--rate 100] [--seconds 20]``; the
last line printed is JSON. Needs ``py-spy`` on PATH and the right to ptrace (root here).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import os
import shutil
import subprocess
import sys
import time


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
logger = logging.getLogger("raywatch.benchmarks.profile_sidecar")

# (part, substrings of a frame); the first part whose substring is on a stack takes the
# sample, from the innermost frame out, so a GC pause inside the flusher counts as GC
PARTS = [
    ("gc", ("gc_collect", "collect_main", "(gc)", "_PyGC_", "gc_collect_main")),
    ("request_path", ("raywatch/serve/methods.py", "raywatch/serve/capture.py")),
    ("resources", ("raywatch/serve/resources.py", "psutil/")),
    ("serialize", ("to_bytes (raywatch", "raywatch/stats/codec.py", "serialization.py", "cloudpickle",
                   "_serialize", "serialize (")),
    ("actor_call", ("raywatch/serve/shipper.py",)),
    ("summarize", ("raywatch/stats/",)),
    ("build", ("raywatch/serve/buffer.py", "raywatch/serve/extract.py")),
    ("flusher_other", ("raywatch/serve/replica.py",)),
]


def categorize(stack: str) -> str:
    """The part of monitoring a collapsed stack (``frame;frame;…``, outermost first) is in."""
    frames = stack.split(";")
    if not any("raywatch/" in f for f in frames):  # Serve, the model, Ray: the same as unwrapped
        return "gc" if any(k in f for f in frames for k in PARTS[0][1]) else "other"
    for frame in reversed(frames):
        for part, keys in PARTS:
            if any(k in frame for k in keys):
                return part
    return "other"


def read_raw(path: str) -> collections.Counter:
    """py-spy's raw (collapsed) output: part → samples."""
    out: collections.Counter = collections.Counter()
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if stack and count.isdigit():
                out[categorize(stack)] += int(count)
    return out


async def _drive(handles, payloads, seconds: float, rate: float):
    loop = asyncio.get_running_loop()
    tasks = []
    start = time.perf_counter()
    total = int(seconds * rate * len(handles))

    async def one(h, payload):
        await h.remote(payload)

    for i in range(total):
        delay = start + i / (rate * len(handles)) - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(loop.create_task(one(handles[i % len(handles)], payloads[i % len(payloads)])))
    await asyncio.gather(*tasks)
    return total // len(handles)


def _breakdown(parts: collections.Counter, us_per_request: float) -> dict:
    total = sum(parts.values()) or 1
    return {part: round(parts.get(part, 0) / total * us_per_request, 1) for part in [p for p, _ in PARTS] + ["other"]}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a short profile (under 60 s)")
    ap.add_argument("--rate", type=float, default=100.0, help="requests/s to each app")
    ap.add_argument("--seconds", type=float, default=None, help="seconds profiled")
    ap.add_argument("--native", action="store_true", help="py-spy --native (C frames too: GC, numpy)")
    ap.add_argument("--rate-hz", type=int, default=100, help="py-spy samples per second")
    ap.add_argument("--keep", default=None, help="keep py-spy's raw output in this folder")
    ap.add_argument("--legacy", action=argparse.BooleanOptionalAction, default=True,
                    help="also profile a replica that flushes every flush_interval whatever the load "
                         "(flush_min_records 1: the cadence before issue 15)")
    args = ap.parse_args(argv)
    seconds = args.seconds or (15.0 if args.quick else 40.0)
    from ray import serve

    import raywatch
    from sidecar_overhead import _deployment, _first_ship, _monitor_config, payloads, serve_session

    started = time.perf_counter()
    with serve_session("rw-prof-") as tmp:
        Scorer = _deployment()
        cfg = _monitor_config(tmp)
        handles = {"base": serve.run(Scorer.bind(), name="base", route_prefix="/base"),
                   "mon": serve.run(raywatch.monitor(Scorer, cfg).bind(), name="mon", route_prefix="/mon")}
        if args.legacy:
            legacy = {**cfg, "shipping": {"flush_min_records": 1}}
            handles["mon_legacy"] = serve.run(raywatch.monitor(Scorer, legacy).bind(), name="mon_legacy",
                                              route_prefix="/mon_legacy")
        watched = [n for n in handles if n != "base"]
        reqs = payloads()

        async def run():
            hs = list(handles.values())
            await _drive(hs, reqs, 3.0, args.rate)  # warm-up
            for name in watched:  # past each replica's first connect (one-off imports)
                await _first_ship(handles[name])
            await _drive(hs, reqs, 2.0, args.rate)
            spies, raws = {}, {}
            c0 = {n: await h.cpu_seconds.remote() for n, h in handles.items()}
            g0 = {n: await h.gc_seconds.remote() for n, h in handles.items()}
            s0 = {n: await handles[n]._raywatch_status.remote() for n in watched}
            for name in watched:
                pid = await handles[name].pid.remote()
                raws[name] = os.path.join(tmp, f"{name}.raw")
                cmd = ["py-spy", "record", "--pid", str(pid), "--format", "raw", "--output", raws[name],
                       "--duration", str(int(seconds)), "--rate", str(args.rate_hz), "--threads"]
                # native stacks need the process paused at each sample; Python stacks do not
                cmd.append("--native" if args.native else "--nonblocking")
                spies[name] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            n = await _drive(hs, reqs, seconds, args.rate)
            c1 = {n_: await h.cpu_seconds.remote() for n_, h in handles.items()}
            g1 = {n_: await h.gc_seconds.remote() for n_, h in handles.items()}
            s1 = {n_: await handles[n_]._raywatch_status.remote() for n_ in watched}
            parts = {}
            for name, spy in spies.items():
                _, err = spy.communicate(timeout=120)
                if not os.path.exists(raws[name]):
                    raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')[-500:]}")
                if args.keep:
                    os.makedirs(args.keep, exist_ok=True)
                    shutil.copy(raws[name], args.keep)
                parts[name] = read_raw(raws[name])
            return n, c0, c1, parts, s0, s1, g0, g1

        n, c0, c1, parts, s0, s1, g0, g1 = asyncio.run(run())
    per_req = {name: (c1[name] - c0[name]) / n * 1e6 for name in c0}
    gc_us = {name: (g1[name] - g0[name]) / n * 1e6 for name in g0}
    result = {
        "benchmark": "profile_sidecar",
        "rate_per_app": args.rate,
        "seconds": seconds,
        "requests_per_app": n,
        "replica_cpu_us_per_request_base": round(per_req["base"], 1),
        "gc_us_per_request_base": round(gc_us["base"], 2),
    }
    for name in parts:
        drained = (s1[name].get("records_drained") or 0) - (s0[name].get("records_drained") or 0)
        flushes = (s1[name].get("flushes") or s1[name].get("batches_built") or 0) - (
            s0[name].get("flushes") or s0[name].get("batches_built") or 0)
        result[name] = {
            "samples": sum(parts[name].values()),
            "replica_cpu_us_per_request": round(per_req[name], 1),
            "added_us": round(per_req[name] - per_req["base"], 1),
            "us_per_request": _breakdown(parts[name], per_req[name]),
            # the collector's own time (gc.callbacks, start to stop), every generation
            "gc_us_per_request": round(gc_us[name], 2),
            "gc_added_us": round(gc_us[name] - gc_us["base"], 2),
            "flusher_cpu_us_per_request": round(((s1[name].get("flusher_cpu_s") or 0.0) - (s0[name].get("flusher_cpu_s") or 0.0))
                                                / max(1, drained) * 1e6, 1),
            "records_per_flush": round(drained / flushes, 1) if flushes else None,
        }
    result["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result))
    sys.stdout.flush()
    return result


if __name__ == "__main__":
    main()
