"""Ingest: replica batches into windows, labels into the feedback join.

:meth:`Ingestor.ingest` merges a :class:`~raywatch.stats.batch.ReplicaBatch` into its
model's tumbling window (``floor(end_ts / length)``), skipping a batch already seen
(``(replica_id, seq)``), feeding the latency and error-rate streaming detectors and
recording predictions for the ground-truth join. :meth:`Ingestor.feedback` joins a label
to its prediction (either order), adds it to the current window's performance accumulator
and feeds the error indicator to the concept-drift detector.

A batch too far in the future (a replica clock ahead) is filed under ``now``; one whose
window is already closed goes to the earliest open window. Both are counted.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, Optional

from raywatch.aggregate.data import scalar
from raywatch.aggregate.failures import Failures
from raywatch.aggregate.joiner import FeedbackJoiner, Joined
from raywatch.aggregate.model import ModelState, ReplicaMemory
from raywatch.aggregate.models import for_batch
from raywatch.stats.batch import REREGISTER
from raywatch.aggregate.windows import Window
from raywatch.config import MonitorConfig
from raywatch.drift.performance import ClassificationMetrics, RegressionMetrics
from raywatch.drift.performance import _label_key as label_key  # the accumulators' own label equality
from raywatch.series import FEEDBACK_ROWS
from raywatch.stats.batch import ReplicaBatch
from raywatch.stats.summary import WindowSummary

__all__ = ["Ingestor", "window_for", "OK", "DUPLICATE", "ERROR"]

OK, DUPLICATE, ERROR = "ok", "duplicate", "error"


def window_for(ms: ModelState, ts: float, now: float, length: float) -> Window:
    """The open window of ``ms`` that data at ``ts`` belongs to (created when needed)."""
    if ts > now + length:  # a replica clock far ahead: file it under now
        ms.totals["future_batches"] += 1
        ts = now
    start = math.floor(ts / length) * length
    if start < ms.closed_until:  # its window is already closed: the earliest open one
        ms.totals["late_batches"] += 1
        start = ms.closed_until
    w = ms.open.get(start)
    if w is None:
        w = ms.open[start] = Window(start, start + length)
    return w


class Ingestor:
    """Batches and labels into the models' state (see the module docstring).

    ``on_new_model`` is called with each model a batch registers (the core persists it);
    ``journal_batch`` with each batch accepted, before it is merged.
    """

    def __init__(self, config: MonitorConfig, models: Dict[str, ModelState], joiner: FeedbackJoiner, failures: Failures,
                 counters: Dict[str, int], *, on_new_model: Callable[[ModelState], None],
                 journal_batch: Callable[[ReplicaBatch, float], None]):
        self.config = config
        self.models = models
        self.joiner = joiner
        self.failures = failures
        self.counters = counters
        self.on_new_model = on_new_model
        self.journal_batch = journal_batch

    def is_duplicate(self, b: ReplicaBatch) -> bool:
        ms = self.models.get(b.model_key)
        r = ms.replicas.get(b.replica_id) if ms is not None else None
        return r is not None and r.seen(int(b.seq))

    def ingest(self, b: Any, now: float, *, journal: bool = True) -> str:
        """Merge one replica batch: ``"ok"``, ``"duplicate"``, ``"error"``, or
        ``"reregister"`` (merged; the model's configuration lacks its secrets)."""
        try:
            if not isinstance(b, ReplicaBatch):
                b = ReplicaBatch.from_dict(dict(b))
            ms, new = for_batch(self.models, b, actor_config=self.config, failures=self.failures)
            if new:
                self.on_new_model(ms)
            rep = ms.replicas.get(b.replica_id)
            if rep is None:
                rep = ms.replicas[b.replica_id] = ReplicaMemory(b.replica_id)
            if rep.seen(int(b.seq)):
                ms.totals["duplicates"] += 1
                self.counters["duplicates"] += 1
                return DUPLICATE
            if journal:
                self.journal_batch(b, now)
            rep.mark(int(b.seq))
        except Exception as exc:
            self.failures.fail("ingest.decode", exc)
            return ERROR
        try:
            self._apply(ms, rep, b, now)
        except Exception as exc:
            self.failures.fail("ingest.merge", exc)
            return ERROR
        self.counters["batches"] += 1
        return OK if ms.config_secrets == "ok" else REREGISTER

    def _apply(self, ms: ModelState, rep: ReplicaMemory, b: ReplicaBatch, now: float) -> None:
        rep.last_seen = now
        rep.node_id = b.node_id or rep.node_id
        w = window_for(ms, float(b.end_ts), now, self.config.windows.length)
        if ms.first_seen is None or b.start_ts < ms.first_seen:
            ms.first_seen = float(b.start_ts)
        sketch = b.latency_sketch() if b.latency else None
        w.add_counts(requests=b.requests, errors=b.errors, statuses=b.statuses, latency=sketch, start_ts=b.start_ts,
                     end_ts=b.end_ts, routes=b.routes, methods=b.methods)
        errs = b.error_count
        ms.totals["requests"] += int(b.requests)
        ms.totals["errors"] += errs
        ms.totals["batches"] += 1
        for k, v in b.errors.items():
            ms.error_types[k] = ms.error_types.get(k, 0) + int(v)
        # cumulative replica counters: the actor keeps the largest value it has seen
        d_drop = max(0, int(b.dropped_total) - rep.dropped_total)
        d_cap = max(0, int(b.capture_errors_total) - rep.capture_errors_total)
        rep.dropped_total += d_drop
        rep.capture_errors_total += d_cap
        w.dropped += d_drop
        w.capture_errors += d_cap
        if b.resources:
            res = dict(b.resources)
            res.setdefault("node_id", b.node_id)
            res["ts"] = b.end_ts
            rep.resources = res
            w.resources[b.replica_id] = res
        if b.summary is not None:
            try:
                s = WindowSummary.from_bytes(b.summary)
                w.add_summary(s)
                ms.totals["rows"] += int(s.rows)
            except Exception as exc:
                self.failures.fail("ingest.summary", exc)
        # streaming detectors on the batch's mean latency and error rate
        if b.requests > 0:
            if sketch is not None and sketch.count:
                self._detect(ms, "latency", sketch.sum / sketch.count, b.end_ts)
            self._detect(ms, "errors", errs / b.requests, b.end_ts)
        for item in b.predictions or ():
            try:
                rid, pred, score = (tuple(item) + (None, None))[:3]
                ms.totals["predictions"] += 1
                score = None if score is None else float(score)
                for j in self.joiner.add_prediction(rid, ms.key, scalar(pred), score, now=now):
                    self._joined(j, now)
            except Exception as exc:
                self.failures.fail("ingest.predictions", exc)

    def _detect(self, ms: ModelState, which: str, x: float, ts: float) -> None:
        try:
            ms.detect(which, x, ts)
        except Exception as exc:
            self.failures.fail(f"detector.{which}", exc)

    def feedback(self, request_id: str, label: Any, model_key: Optional[str], now: float) -> bool:
        """Record one label. Returns True when it joined a known prediction now."""
        self.counters["feedback"] += 1
        try:
            joined = self.joiner.add_label(request_id, scalar(label), model_key, now=now)
            for j in joined:
                self._joined(j, now)
            return bool(joined)
        except Exception as exc:
            self.failures.fail("feedback", exc)
            return False

    def _joined(self, j: Joined, now: float) -> None:
        ms = self.models.get(j.model_key)
        if ms is None:
            return
        try:
            fb = ms.config.feedback
            w = window_for(ms, now, now, self.config.windows.length)
            if fb.task == "regression":
                acc = RegressionMetrics()
                acc.update(float(j.label), float(j.prediction))
                err = abs(float(j.prediction) - float(j.label))
            else:
                acc = ClassificationMetrics(positive=fb.positive_label)
                acc.update(j.label, j.prediction, score=j.score)
                err = 0.0 if label_key(j.label) == label_key(j.prediction) else 1.0
            w.add_perf(acc)
            w.feedback_rows += 1
            ms.totals[FEEDBACK_ROWS.name] += 1
        except Exception as exc:
            self.failures.fail("feedback.score", exc)
            return
        self._detect(ms, "concept", err, now)
