"""Per-model window aggregates: what the stats actor merges from replica batches.

A :class:`Window` is one tumbling window (``[start, end)`` in UTC epoch seconds, by the
batches' event time) of one model: request and error counters, HTTP statuses, the merged
:class:`~raywatch.stats.sketch.LatencySketch`, the merged ``WindowSummary`` of features and
predictions, the latest resource figures of each replica, and — once ground truth is
joined — a performance accumulator. :meth:`Window.merged` folds several windows into one
(the rolling view); nothing here depends on Ray.

>>> from raywatch.stats.sketch import LatencySketch
>>> w = Window(0.0, 10.0)
>>> sk = LatencySketch(); sk.add_many([0.010, 0.020, 0.030, 0.040])
>>> w.add_counts(requests=4, errors={"ValueError": 1}, statuses={}, latency=sk)
>>> f = w.figures(seconds=10.0)
>>> f["requests"], f["errors"], f["error_rate"], f["throughput_rps"], round(f["latency_p50_seconds"], 3)
(4, 1, 0.25, 0.4, 0.02)
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Iterable, List, Optional


from raywatch import series
from raywatch.aggregate.data import b64, unb64
from raywatch.aggregate.segment_window import SegmentWindow
from raywatch.drift.performance import ClassificationMetrics, RegressionMetrics
from raywatch.stats.sketch import LatencySketch
from raywatch.stats.summary import WindowSummary

__all__ = ["Window", "aggregate_resources", "perf_from_dict", "merge_summaries"]

_PENDING_MAX = 64  # summaries held back before one merge_summaries call
_MAX_KEYS = 200  # distinct routes / methods kept per window; the rest count as "other"

log = logging.getLogger("raywatch.aggregate.windows")


def perf_from_dict(d: Optional[Dict[str, Any]]):
    """A performance accumulator from its ``to_dict`` (classification or regression)."""
    if not d:
        return None
    return ClassificationMetrics.from_dict(d) if d.get("kind") == "classification" else RegressionMetrics.from_dict(d)


class Window:
    """One model's aggregates over ``[start, end)``."""

    def __init__(self, start: float, end: float):
        self.start = float(start)
        self.end = float(end)
        self.requests = 0
        self.errors = 0
        self.error_types: Dict[str, int] = {}
        self.statuses: Dict[str, int] = {}
        self.routes: Dict[str, int] = {}  # route template -> requests (bounded by the replicas)
        self.methods: Dict[str, int] = {}  # deployment method -> requests
        self.latency = LatencySketch()
        self._summary = None  # WindowSummary (features + predictions), merged
        self._pending: list = []  # summaries not merged yet (merged k-way, on read or when many)
        self.batches = 0
        self.dropped = 0  # records dropped by replicas, reported in this window
        self.capture_errors = 0
        self.perf = None  # ClassificationMetrics | RegressionMetrics
        self.feedback_rows = 0
        self.resources: Dict[str, Dict[str, Any]] = {}  # replica_id -> latest figures
        self.first_ts: Optional[float] = None
        self.last_ts: Optional[float] = None
        # what the replicas said about columns: column -> capture.redact pattern that removed
        # it; column -> observed wrong type name -> batches that saw it (bounded)
        self.redacted: Dict[str, str] = {}
        self.wrong_types: Dict[str, Dict[str, int]] = {}
        self.segments: Optional[SegmentWindow] = None  # per segment, group and replica (issue 12)

    # ------------------------------------------------------------------ adding
    def add_notes(self, redacted: Optional[Dict[str, str]], wrong_types: Optional[Dict[str, Any]]) -> None:
        """Add a batch's column notes (``redacted``: column → pattern; ``wrong_types``: column →
        the type names it saw, or → name → count), bounded to :data:`_MAX_KEYS` columns and 8
        type names a column.

        >>> w = Window(0, 10)
        >>> w.add_notes({"card_present": "card_*"}, {"zip": ["str"]}); w.add_notes(None, {"zip": ["str", "int"]})
        >>> w.redacted, w.wrong_types
        ({'card_present': 'card_*'}, {'zip': {'str': 2, 'int': 1}})
        """
        for col, pattern in (redacted or {}).items():
            if col in self.redacted or len(self.redacted) < _MAX_KEYS:
                self.redacted[str(col)] = str(pattern)[:200]
        for col, types in (wrong_types or {}).items():
            if col not in self.wrong_types and len(self.wrong_types) >= _MAX_KEYS:
                continue
            dst = self.wrong_types.setdefault(str(col), {})
            counts = types.items() if isinstance(types, dict) else ((t, 1) for t in types or ())
            for name, n in counts:
                name = str(name)[:64]
                if name in dst or len(dst) < 8:
                    dst[name] = dst.get(name, 0) + int(n)

    def add_counts(
        self,
        *,
        requests: int,
        errors: Dict[str, int],
        statuses: Dict[str, int],
        latency: Optional[LatencySketch],
        start_ts: Optional[float] = None,
        end_ts: Optional[float] = None,
        routes: Optional[Dict[str, int]] = None,
        methods: Optional[Dict[str, int]] = None,
    ) -> None:
        self.batches += 1
        for src, dst in ((routes, self.routes), (methods, self.methods)):
            if src:
                for k, v in src.items():
                    if k in dst or len(dst) < _MAX_KEYS:
                        dst[k] = dst.get(k, 0) + int(v)
                    else:
                        dst["other"] = dst.get("other", 0) + int(v)
        self.requests += int(requests)
        for k, v in errors.items():
            v = int(v)
            self.errors += v
            self.error_types[k] = self.error_types.get(k, 0) + v
        for k, v in statuses.items():
            self.statuses[str(k)] = self.statuses.get(str(k), 0) + int(v)
        if latency is not None and (latency.count or latency.invalid):
            self.latency.merge(latency)
        if start_ts is not None:
            self.first_ts = start_ts if self.first_ts is None else min(self.first_ts, start_ts)
        if end_ts is not None:
            self.last_ts = end_ts if self.last_ts is None else max(self.last_ts, end_ts)

    def add_summary(self, summary) -> None:
        """Add a replica's WindowSummary. Merging is deferred to the next read (or to 64
        pending summaries) and done with one ``merge_all`` call, off the ingest call."""
        self._pending.append(summary)
        if len(self._pending) >= _PENDING_MAX:
            self._materialize()

    def _materialize(self) -> None:
        if self._pending:
            parts = ([self._summary] if self._summary is not None else []) + self._pending
            self._pending = []
            self._summary = merge_summaries(parts)

    @property
    def summary(self):
        """The merged WindowSummary of every batch added (None when none had one)."""
        self._materialize()
        return self._summary

    @summary.setter
    def summary(self, value) -> None:
        self._pending = []
        self._summary = value

    def add_perf(self, acc) -> None:
        """Merge a performance accumulator (one or more joined labels)."""
        self.perf = acc if self.perf is None else self.perf.merge(acc)

    @property
    def rows(self) -> int:
        s = self.summary
        return int(s.rows) if s is not None else 0

    # ------------------------------------------------------------------ folding
    @classmethod
    def merged(cls, windows: Iterable["Window"]) -> "Window":
        """A new window holding all of ``windows`` (the rolling view)."""
        ws = list(windows)
        out = cls(min((w.start for w in ws), default=0.0), max((w.end for w in ws), default=0.0))
        for w in ws:
            out.add_counts(
                requests=w.requests, errors=w.error_types, statuses=w.statuses, latency=w.latency,
                start_ts=w.first_ts, end_ts=w.last_ts, routes=w.routes, methods=w.methods,
            )
            out.batches += w.batches - 1
            out.errors += w.errors - sum(w.error_types.values())  # errors without a type (none today)
            if w.summary is not None:
                out._pending.append(w.summary)
            if w.perf is not None:
                out.add_perf(w.perf)
            out.feedback_rows += w.feedback_rows
            out.dropped += w.dropped
            out.capture_errors += w.capture_errors
            out.resources.update(w.resources)  # later windows win per replica
            out.add_notes(w.redacted, w.wrong_types)
        out.segments = SegmentWindow.merged(w.segments for w in ws)
        return out

    # ------------------------------------------------------------------ reading
    def figures(self, seconds: float) -> Dict[str, Any]:
        """Counts, rates and latency percentiles; ``seconds`` is the time the window covers."""
        out: Dict[str, Any] = {
            "start": self.start,
            "end": self.end,
            "requests": self.requests,
            "errors": self.errors,
            "error_types": dict(self.error_types),
            "statuses": dict(self.statuses),
            "routes": dict(self.routes),
            "methods": dict(self.methods),
            series.ERROR_RATE.name: (self.errors / self.requests) if self.requests else 0.0,
            series.THROUGHPUT_RPS.name: (self.requests / seconds) if seconds > 0 else 0.0,
            "rows": self.rows,
            "batches": self.batches,
            "dropped": self.dropped,
            "capture_errors": self.capture_errors,
            series.FEEDBACK_ROWS.name: self.feedback_rows,
            "latency_mean_seconds": self.latency.mean,
        }
        values = self.latency.quantiles(q for _, q in series.LATENCY_QUANTILES)
        for (metric, _), value in zip(series.LATENCY_QUANTILES, values):
            out[metric.name] = value
        return out

    # ------------------------------------------------------------------ persistence
    def state(self) -> Dict[str, Any]:
        """The window as JSON-able data (the merged summary as base64 of its codec bytes)."""
        return {
            "start": self.start,
            "end": self.end,
            "requests": self.requests,
            "errors": self.errors,
            "error_types": self.error_types,
            "statuses": self.statuses,
            "routes": self.routes,
            "methods": self.methods,
            "latency": self.latency.to_dict(),
            "summary": b64(self.summary.to_bytes()) if self.summary is not None else None,  # materializes
            "batches": self.batches,
            "dropped": self.dropped,
            "capture_errors": self.capture_errors,
            "perf": self.perf.to_dict() if self.perf is not None else None,
            series.FEEDBACK_ROWS.name: self.feedback_rows,
            "resources": self.resources,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "redacted": self.redacted,
            "wrong_types": self.wrong_types,
            "segments": self.segments.state() if self.segments is not None else None,
        }

    @classmethod
    def from_state(cls, s: Dict[str, Any]) -> "Window":
        w = cls(s["start"], s["end"])
        w.requests, w.errors, w.batches = int(s.get("requests", 0)), int(s.get("errors", 0)), int(s.get("batches", 0))
        w.dropped, w.capture_errors = int(s.get("dropped", 0)), int(s.get("capture_errors", 0))
        w.feedback_rows = int(s.get(series.FEEDBACK_ROWS.name, 0))
        w.first_ts, w.last_ts = s.get("first_ts"), s.get("last_ts")
        w.error_types = dict(s.get("error_types") or {})
        w.statuses = dict(s.get("statuses") or {})
        w.routes = dict(s.get("routes") or {})
        w.methods = dict(s.get("methods") or {})
        w.latency = LatencySketch.from_dict(s["latency"]) if s.get("latency") else LatencySketch()
        blob = unb64(s.get("summary"))
        w.summary = WindowSummary.from_bytes(blob) if blob is not None else None
        w.perf = perf_from_dict(s.get("perf"))
        w.resources = dict(s.get("resources") or {})
        w.add_notes(s.get("redacted"), s.get("wrong_types"))
        w.segments = SegmentWindow.from_state(s["segments"]) if s.get("segments") else None
        return w


_GPU_KEYS = tuple(key for _, key in series.GPU_SERIES) + ("memory_total_bytes",)  # keys of a replica's GPU sample


def merge_summaries(summaries: List[Any]):
    """Merge WindowSummaries at once: ``WindowSummary.merge_all`` (equal to merging them
    pairwise in order; every column's and part's sample in one pass).

    >>> import numpy as np
    >>> from raywatch.stats.profile import Profile
    >>> p = Profile.fit({"x": np.arange(100.0)}, seed=0)
    >>> parts = [p.summarize({"x": np.arange(i, i + 10.0)}, seed=i) for i in range(5)]
    >>> merged = merge_summaries(parts)
    >>> merged.rows, merged == parts[0].merge(parts[1]).merge(parts[2]).merge(parts[3]).merge(parts[4])
    (50, True)
    """
    if not summaries:
        raise ValueError("merge_summaries needs at least one summary")
    return type(summaries[0]).merge_all(summaries)


def _num(v: Any) -> Optional[float]:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f else None


def aggregate_resources(per_replica: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    """Model-level resource figures from each replica's latest sample.

    ``cpu_percent`` and ``rss_bytes`` are the busiest replica's (what an alert wants),
    ``rss_bytes_total`` the sum; node figures are the busiest node's; GPUs are keyed
    ``"<node id prefix>:<index>"`` so two nodes' GPU 0 stay apart.

    >>> r = aggregate_resources({"a": {"cpu_percent": 10, "rss_bytes": 100, "node_id": "n1", "gpus": []},
    ...                          "b": {"cpu_percent": 30, "rss_bytes": 50, "node_id": "n1",
    ...                                "gpus": [{"index": 0, "utilization": 55.0}]}})
    >>> r["cpu_percent"], r["rss_bytes"], r["rss_bytes_total"], r["replicas"], r["gpu_utilization"]
    (30.0, 100.0, 150.0, 2, 55.0)
    """
    cpu_key, rss_key = series.CPU_PERCENT.name, series.RSS_BYTES.name  # the replica's sample keys
    out: Dict[str, Any] = {"replicas": len(per_replica)}
    cpu = [_num(r.get(cpu_key)) for r in per_replica.values()]
    rss = [_num(r.get(rss_key)) for r in per_replica.values()]
    cpu = [c for c in cpu if c is not None]
    rss = [c for c in rss if c is not None]
    out[cpu_key] = max(cpu) if cpu else None
    out[cpu_key + "_total"] = sum(cpu) if cpu else None
    out[rss_key] = max(rss) if rss else None
    out[rss_key + "_total"] = sum(rss) if rss else None
    for key in (series.NODE_CPU_PERCENT.name, series.NODE_MEMORY_PERCENT.name, "num_threads", "open_files"):
        vals = [_num(r.get(key)) for r in per_replica.values()]
        vals = [v for v in vals if v is not None]
        out[key] = max(vals) if vals else None
    gpus: Dict[str, Dict[str, Any]] = {}
    for rid, r in per_replica.items():
        node = str(r.get("node_id") or rid)[:8]
        for g in r.get("gpus") or []:
            if not isinstance(g, dict):
                continue
            gpus[f"{node}:{g.get('index', 0)}"] = {k: _num(g.get(k)) for k in _GPU_KEYS}
    out["gpus"] = gpus
    util = [g["utilization"] for g in gpus.values() if g.get("utilization") is not None]
    out[series.GPU_UTILIZATION.name] = max(util) if util else None
    if not gpus:
        statuses = {str(r.get("gpu_status")) for r in per_replica.values() if r.get("gpu_status")}
        out["gpu_status"] = ", ".join(sorted(statuses)) if statuses else None
    return out
