"""Segments benchmark: what 20 segments cost against the segment-less path, in the same run.

Data: a reference of 20,000 rows × 20 features (16 numerical, 4 categorical) and a binary
prediction; production flushes of ``--rows`` rows (default 10,000) with a segment column of
``--segments`` values (default 20, the default top K).

1. **Summarize** (a replica's flush). Baseline: ``profile.summarize(flush)``, the
   segment-less path. raywatch: ``summarize_segments(profile, flush, {segment: values})``,
   which groups the rows and summarizes every segment plus ``__other__`` in one pass
   (:mod:`raywatch.stats.grouped`) and derives the model's segment-less summary from them in
   the same pass (``segments.whole``: the replica need not summarize twice).
   Also shown: one ``profile.summarize`` per segment (the naive way). Target: ≤ 2×.
2. **Evaluation** (the stats actor's work for one model and window, pure core). Three
   replicas' flush containers are merged into the window, then per segment (20 + ``__other__``)
   ``detect_drift`` over 20 features (data quality included) and the performance of the
   feedback joined per segment, plus a fairness report over a protected attribute. Baseline:
   the segment-less evaluation (one ``detect_drift`` and one performance result). Target:
   ≤ 50 ms. The integrated figure will add what the stats actor does around this core:
   decoding the replicas' bytes, building the per-segment series (labels ``segment_column``,
   ``segment``), evaluating the rules over them and journaling the window.

Times are medians of interleaved repetitions (baseline and raywatch alternate, so both see
the same load on a shared machine). The last line of stdout is one JSON object.

    python benchmarks/segments.py            # 10,000-row flushes, 30 repetitions
    python benchmarks/segments.py --quick    # ends well within 60 s
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from raywatch.drift.detect import detect_drift  # noqa: E402
from raywatch.drift.fairness import GroupRates, assess_fairness  # noqa: E402
from raywatch.drift.performance import ClassificationMetrics  # noqa: E402
from raywatch.drift.segmented import evaluate_segments  # noqa: E402
from raywatch.stats.profile import Profile  # noqa: E402
from raywatch.stats.grouped import summarize_segments  # noqa: E402
from raywatch.stats.segments import Segments  # noqa: E402

LABELS = np.array(["a", "b", "c", "d", "e"])


def make_rows(rng: np.random.Generator, n: int) -> dict:
    cols = {f"num{j}": rng.normal(j, 1.0 + j / 10, n) for j in range(16)}
    cols.update({f"cat{j}": LABELS[rng.integers(0, 5, n)] for j in range(4)})
    return cols


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions; well under 60 s on 2 cores")
    ap.add_argument("--rows", type=int, default=10_000, help="rows per flush")
    ap.add_argument("--segments", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=None)
    args = ap.parse_args(argv)
    repeat = args.repeat or (10 if args.quick else 30)
    rng = np.random.default_rng(0)
    reference = make_rows(rng, 20_000)
    reference["prediction"] = (reference["num0"] > 0).astype(int)
    profile = Profile.fit(reference, seed=0)
    values = np.array([f"seg{i:02d}" for i in range(args.segments)], dtype=object)

    def flush(seed: int):
        r = np.random.default_rng(seed)
        rows = make_rows(r, args.rows)
        rows["prediction"] = (rows["num0"] > 0).astype(int)
        return rows, values[r.integers(0, args.segments, args.rows)]

    # ---------------------------------------------------------------- 1. summarize
    batch, seg = flush(1)
    groups = [np.flatnonzero(seg == lab) for lab in values]  # for the naive way, grouped beforehand
    base_t, seg_t, naive_t = [], [], []
    segments = None
    for i in range(repeat + 1):
        b = timed(lambda: profile.summarize(batch, seed=i))

        def segmented():
            nonlocal segments
            segments = summarize_segments(profile, batch, {"segment": seg}, k=args.segments, seed=i)
            assert segments.whole.rows == args.rows  # the segment-less summary comes with them

        s = timed(segmented)
        naive = timed(lambda: [profile.summarize({k: v[rows] for k, v in batch.items()}, seed=i) for rows in groups])
        if i:  # the first round warms caches
            base_t.append(b)
            seg_t.append(s)
            naive_t.append(naive)
    whole = profile.summarize(batch, seed=0)
    summarize_base, summarize_seg = statistics.median(base_t), statistics.median(seg_t)

    # --------------------------------------------------------------- 2. evaluation
    def replica_flush(seed: int):
        rows, s = flush(seed)
        r = np.random.default_rng(seed + 1)
        y = r.integers(0, 2, args.rows)
        pred = rows["prediction"]
        group = np.array(["f", "m", "x"], dtype=object)[r.integers(0, 3, args.rows)]

        def metrics(idx):
            m = ClassificationMetrics()
            m.update(y[idx], pred[idx])
            return m

        def rates(idx):
            g = GroupRates()
            g.add_predictions(pred[idx])
            g.add_outcomes(y[idx], pred[idx])
            return g

        return (summarize_segments(profile, rows, {"segment": s}, k=args.segments, seed=seed),
                Segments.build({"segment": s}, metrics, k=args.segments),
                Segments.build({"sex": group}, rates),
                profile.summarize(rows, seed=seed), metrics(np.arange(args.rows)))

    flushes = [replica_flush(100 + r) for r in range(3)]
    eval_base_t, eval_seg_t, merge_t, fair_t = [], [], [], []
    report = None
    for i in range(max(3, repeat // 3) + 1):
        def baseline():
            summary = flushes[0][3].merge(flushes[1][3]).merge(flushes[2][3])
            detect_drift(profile, summary)
            flushes[0][4].merge(flushes[1][4]).merge(flushes[2][4]).result()

        window = []
        parts = {}

        def segmented_eval():
            nonlocal report
            t0 = time.perf_counter()
            window[:] = [flushes[0][j].merge(flushes[1][j]).merge(flushes[2][j]) for j in range(3)]
            t1 = time.perf_counter()
            report = evaluate_segments(profile, window[0], performance=window[1])
            t2 = time.perf_counter()
            assess_fairness({lab: acc for lab, acc, _ in window[2].items("sex")}, attribute="sex")
            parts.update(merge=t1 - t0, fairness=time.perf_counter() - t2)

        b, s = timed(baseline), timed(segmented_eval)
        if i:
            eval_base_t.append(b)
            eval_seg_t.append(s)
            merge_t.append(parts["merge"])
            fair_t.append(parts["fairness"])
    eval_base, eval_seg = statistics.median(eval_base_t), statistics.median(eval_seg_t)
    result = {
        "benchmark": "segments",
        "rows_per_flush": args.rows,
        "segments": args.segments,
        "features": 20,
        "summarize_ms": round(summarize_base * 1e3, 2),
        "summarize_segments_ms": round(summarize_seg * 1e3, 2),
        "summarize_ratio": round(summarize_seg / summarize_base, 2),
        "summarize_ratio_target": 2.0,
        "naive_per_segment_ratio": round(statistics.median(naive_t) / summarize_base, 2),
        "summary_bytes": len(whole.to_bytes()),
        "segments_summary_bytes": sum(len(acc.to_bytes()) for _, acc, _ in segments.items("segment")),
        "segments_json_bytes": len(json.dumps(segments.to_dict())),
        "evaluation_ms": round(eval_seg * 1e3, 1),
        "evaluation_merge_ms": round(statistics.median(merge_t) * 1e3, 1),
        "evaluation_fairness_ms": round(statistics.median(fair_t) * 1e3, 2),
        "evaluation_segmentless_ms": round(eval_base * 1e3, 2),
        "evaluation_ratio": round(eval_seg / eval_base, 1),
        "evaluation_target_ms": 50,
        "segments_evaluated": len(report["segment"]),
        "repeat": repeat,
        "quick": bool(args.quick),
    }
    print(f"summarize: {result['summarize_ms']} ms segment-less, {result['summarize_segments_ms']} ms with "
          f"{args.segments} segments ({result['summarize_ratio']}x; one summarize per segment: "
          f"{result['naive_per_segment_ratio']}x); evaluation: {result['evaluation_ms']} ms for "
          f"{result['segments_evaluated']} segments x 20 features ({result['evaluation_segmentless_ms']} ms without)",
          file=sys.stderr)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
