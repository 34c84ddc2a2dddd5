"""Per-request cost of raywatch's capture, in microseconds of CPU, against a bare call.

The same trivial model method (a 20-feature dict in, a dict out) is called bare and through
raywatch's method wrapper with a live :class:`~raywatch.serve.capture.Capture` (sampling
every request, the worst case), in interleaved rounds (bare, monitored, bare, ...) so the
machine's drift cancels; each round's CPU time comes from ``time.thread_time``. The
difference of the medians is the *on-path* cost a request pays. The *off-path* cost — the
flusher thread's work per record: feature extraction, the window summary against a
20-column reference profile, the latency sketch, building the batch — is measured too and
reported separately (it is not on the request path, but it is CPU the replica spends).

A third arm (issue 14) is the same monitor with ``payload_log:`` on (a local folder): its
request path must cost what the plain monitor's does (``payload_log_added_us``, the paired
difference, ~0), since the payload log is written by the flusher; what the flusher spends on it
per record (rows, Parquet, the file write) is ``offpath_payload_log_us_per_record``.

Run: ``python benchmarks/capture_path.py [--quick]``; the last line printed is JSON.
Target: ``capture_us`` <= 15.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np


def _payload(i: int) -> dict:
    return {f"f{j}": float((i * 31 + j) % 97) / 7.0 for j in range(20)}


class Model:
    def __call__(self, payload):
        return {"prediction": 1 if payload["f0"] > 5 else 0, "score": 0.5}


def _round(fn, payloads) -> float:
    t0 = time.thread_time()
    for p in payloads:
        fn(p)
    return time.thread_time() - t0


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds (well under 60 s)")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--calls", type=int, default=None, help="calls per round")
    args = ap.parse_args(argv)
    rounds = args.rounds or (7 if args.quick else 21)
    calls = args.calls or (20_000 if args.quick else 50_000)

    from raywatch.config import MonitorConfig
    from raywatch.serve.buffer import BatchBuilder, Labels
    from raywatch.serve.extract import Extractor
    from raywatch.serve.replica import ReplicaMonitor
    from raywatch.serve.methods import MONITOR_ATTR as _MONITOR_ATTR, method_wrapper as _method_wrapper
    from raywatch.stats.profile import Profile

    class NullTransport:
        def resolve(self):
            return None

        def send(self, handle, batch):
            return None

        def done(self, refs):
            return list(refs)

        def check(self, ref):
            return None

        def call(self, *a):
            return None

    # a round's records wait whole (no flush between calls): buffer, flush trigger and byte budget hold them all
    cfg = MonitorConfig(resources={"enabled": False}, shipping={"buffer_size": calls + 10, "flush_max_records": 10 * calls,
                                                                "max_buffer_bytes": 1 << 40})
    rng = np.random.default_rng(0)
    profile = Profile.fit({**{f"f{j}": rng.uniform(0, 14, 2000) for j in range(20)},
                           "prediction": rng.integers(0, 2, 2000), "score": rng.random(2000)})
    mon = ReplicaMonitor(cfg, Labels("bench", "Model", "r0"), transport=NullTransport(), profile=profile)
    log_dir = tempfile.mkdtemp(prefix="rw-bench-payload-")
    cfg_log = cfg.merged({"payload_log": {"path": log_dir, "max_pending_rows": calls + 10, "max_rows_per_file": calls + 10}})
    mon_log = ReplicaMonitor(cfg_log, Labels("bench", "Model", "r1"), transport=NullTransport(), profile=profile)

    class _Ctx:
        __slots__ = ("request_id",)

        def __init__(self, rid):
            self.request_id = rid

    ids = iter(range(10**9))
    for m in (mon, mon_log):  # a request id per call, as Serve's request context gives one
        m.capture._ctx = lambda: _Ctx(f"r{next(ids)}")

    bare_obj = Model()
    Wrapped = type("Model", (Model,), {"__call__": _method_wrapper("__call__", Model.__call__)})
    mon_obj = Wrapped()
    mon_obj.__dict__[_MONITOR_ATTR] = mon
    log_obj = Wrapped()
    log_obj.__dict__[_MONITOR_ATTR] = mon_log

    payloads = [_payload(i) for i in range(calls)]
    bare_fn, mon_fn, log_fn = bare_obj.__call__, mon_obj.__call__, log_obj.__call__
    # warm up every path
    _round(bare_fn, payloads[:2000])
    _round(mon_fn, payloads[:2000])
    _round(log_fn, payloads[:2000])
    mon.capture.drain()
    mon_log.capture.drain()

    bare, monitored, logged, offpath, offpath_log = [], [], [], [], []
    gc_was = gc.isenabled()
    for _ in range(rounds):
        gc.collect()
        gc.disable()
        try:
            bare.append(_round(bare_fn, payloads) / calls * 1e6)
            monitored.append(_round(mon_fn, payloads) / calls * 1e6)
            logged.append(_round(log_fn, payloads) / calls * 1e6)
        finally:
            if gc_was:
                gc.enable()
        records_log = mon_log.capture.drain()
        t0 = time.thread_time()
        for k in range(0, len(records_log), 1000):  # the flusher's payload-log work, in flush-sized slices
            mon_log.payload_log.add(records_log[k:k + 1000], mon_log.builder)
        mon_log.payload_log.flush()
        offpath_log.append((time.thread_time() - t0) / max(1, len(records_log)) * 1e6)
        records = mon.capture.drain()
        t0 = time.thread_time()
        # the flusher's work, in flush-sized slices (1000 records per slice)
        for k in range(0, len(records), 1000):
            mon.builder.build(records[k:k + 1000])
        offpath.append((time.thread_time() - t0) / max(1, len(records)) * 1e6)

    bare_us = statistics.median(bare)
    mon_us = statistics.median(monitored)
    # per-round differences (paired), then their median: robust to drift across rounds
    diffs = [m - b for m, b in zip(monitored, bare)]
    capture_us = statistics.median(diffs)
    log_diffs = [x - m for x, m in zip(logged, monitored)]
    result = {
        "benchmark": "capture_path",
        "features": 20,
        "rounds": rounds,
        "calls_per_round": calls,
        "bare_us": round(bare_us, 3),
        "monitored_us": round(mon_us, 3),
        "capture_us": round(capture_us, 3),
        "capture_us_min": round(min(diffs), 3),
        "capture_us_max": round(max(diffs), 3),
        "offpath_us_per_record": round(statistics.median(offpath), 3),
        "payload_log_monitored_us": round(statistics.median(logged), 3),
        "payload_log_added_us": round(statistics.median(log_diffs), 3),
        "payload_log_rows_written": mon_log.payload_log.counters["rows_written"],
        "offpath_payload_log_us_per_record": round(statistics.median(offpath_log), 3),
        "sampled": 1.0,
        "target_capture_us": 15.0,
        "meets_target": capture_us <= 15.0,
        "capture_errors": mon.capture.errors + mon.builder.capture_errors,
    }
    shutil.rmtree(log_dir, ignore_errors=True)
    print(json.dumps(result))
    sys.stdout.flush()
    return result


if __name__ == "__main__":
    main()
