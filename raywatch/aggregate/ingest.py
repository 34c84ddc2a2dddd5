"""Ingest: replica batches into windows, labels into the feedback join.

A batch is taken in two steps so that nothing is merged before it is durable:
:meth:`Ingestor.admit` decodes it, finds (or registers) its model, skips a batch already
seen (``(replica_id, seq)``; the seq is held while the batch's journal entry is written)
and returns an :class:`Admitted`; :meth:`Ingestor.apply` then merges it into its model's
tumbling window (``floor(end_ts / length)``), feeds the latency and error-rate streaming
detectors and records predictions for the ground-truth join. :meth:`Ingestor.abandon`
releases an admitted batch whose journal write failed (the replica sends it again).

:meth:`Ingestor.check_label` says why a label is refused (``None``: accepted): a request id
or label longer than ``feedback.max_label_bytes``, a label that is not a plain value, a
model the actor does not know, or a new value past ``feedback.max_label_values`` for a
classification model — checked again when a label without a model joins. Refusals are
counted by reason (``feedback_refused_total``); known labels are never evicted by new ones.
:meth:`Ingestor.feedback` joins a label to its prediction (either order), adds it to the
current window's performance accumulator and feeds the error indicator to the
concept-drift detector.

A bad value costs only itself: a window summary or latency sketch that fails its checks is
refused and counted (``summaries_refused``) and the rest of the batch is merged.

A batch too far in the future (a replica clock ahead) is filed under ``now``; one whose
window is already closed goes to the earliest open window. Both are counted.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Collection, Dict, List, NamedTuple, Optional, Sequence, Union

from raywatch.aggregate.data import scalar
from raywatch.aggregate.failures import Failures
from raywatch.aggregate.generations import NEW, STALE, classify, generation_key, start
from raywatch.aggregate.joiner import FeedbackJoiner, Joined, LabelRefused
from raywatch.aggregate.model import ModelState, ReplicaMemory
from raywatch.aggregate.models import for_batch
from raywatch.aggregate.segment_window import clean_tags, ingest_batch, ingest_label
from raywatch.aggregate.windows import Window
from raywatch.config import MonitorConfig
from raywatch.drift.performance import ClassificationMetrics, RegressionMetrics
from raywatch.drift.performance import _label_key as label_key  # the accumulators' own label equality
from raywatch.series import FEEDBACK_ROWS
from raywatch.stats.batch import DUPLICATE, REREGISTER, STORED, ReplicaBatch, check_abandoned
from raywatch.stats.codec import FormatError
from raywatch.stats.summary import WindowSummary, check_summaries

__all__ = ["Ingestor", "Admitted", "window_for", "OK", "DUPLICATE", "ERROR", "STALE_BATCH", "REFUSALS"]

OK, ERROR = STORED, "error"
STALE_BATCH = "stale"
"""The reply to a batch of a superseded deployment generation: acknowledged, not merged
(see :mod:`raywatch.aggregate.generations`)."""

_READ = object()  # apply's summary: read (and checked) from the batch's bytes there

REFUSALS = ("too_large", "not_plain", "unknown_model", "too_many_values", "pending_full", "not_allowed")
"""Why a label is refused (the ``reason`` of ``feedback_refused_total``)."""


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


class Admitted(NamedTuple):
    """A batch taken in, not merged yet (its journal entry is being written)."""

    ms: ModelState
    rep: ReplicaMemory
    batch: ReplicaBatch


def _too_long(value: Any, limit: int) -> bool:
    if isinstance(value, str):
        return len(value) > limit or len(value.encode("utf-8", "surrogatepass")) > limit
    if isinstance(value, int) and not isinstance(value, bool):
        return value.bit_length() > 4 * limit  # about limit decimal digits
    return False


class Ingestor:
    """Batches and labels into the models' state (see the module docstring).

    ``on_new_model`` is called with each model a batch registers (the core persists it);
    ``on_new_generation`` with each model whose figures a new generation cleared;
    ``refused`` counts refused labels by reason.
    """

    def __init__(self, config: MonitorConfig, models: Dict[str, ModelState], joiner: FeedbackJoiner, failures: Failures,
                 counters: Dict[str, int], *, on_new_model: Callable[[ModelState], None],
                 refused: Optional[Dict[str, int]] = None,
                 on_new_generation: Optional[Callable[[ModelState], None]] = None):
        self.on_new_generation = on_new_generation
        self.config = config
        self.models = models
        self.joiner = joiner
        self.failures = failures
        self.counters = counters
        self.on_new_model = on_new_model
        self.refused = refused if refused is not None else {}

    def is_duplicate(self, b: ReplicaBatch) -> bool:
        ms = self.models.get(b.model_key)
        r = ms.replicas.get(b.replica_id) if ms is not None else None
        return r is not None and r.seen(int(b.seq))

    # ------------------------------------------------------------------ batches
    def admit(self, b: Any, now: float) -> Union[str, Admitted]:
        """Take a batch in: an :class:`Admitted` to journal and :meth:`apply`, or the reply
        (``"duplicate"``, ``"stale"``, ``"error"``) when there is nothing to merge."""
        try:
            if not isinstance(b, ReplicaBatch):
                b = ReplicaBatch.from_dict(dict(b))
            seq = int(b.seq)
            known = self.models.get(b.model_key)
            version = known.labels.get("version") if known is not None else None  # before the batch updates it
            ms, new = for_batch(self.models, b, actor_config=self.config, failures=self.failures)
            if new:
                ms.registered = False
                self.on_new_model(ms)
            key = generation_key(b)
            kind = classify(ms, key, version)
            if kind == STALE:  # an old replica still draining: acknowledged, never merged
                ms.refused["stale_batches"] += 1
                return STALE_BATCH
            if kind == NEW:
                start(ms, key)  # type: ignore[arg-type]
                if self.on_new_generation is not None:
                    self.on_new_generation(ms)
            elif key is not None and ms.generation is None:
                ms.generation = key
            rep = ms.replicas.get(b.replica_id)
            if rep is None:
                rep = ms.replicas[b.replica_id] = ReplicaMemory(b.replica_id)
            if rep.seen(seq):
                ms.totals["duplicates"] += 1
                self.counters["duplicates"] += 1
                return DUPLICATE
            rep.mark(seq)  # held while the journal entry is written: a retry meanwhile is a duplicate
            if b.abandoned:
                try:
                    check_abandoned(b.abandoned)
                except ValueError as exc:  # refused before it is journaled; the batch itself still counts
                    b.abandoned = []
                    ms.refused["values"] += 1
                    self.failures.fail("ingest.abandoned", exc)
        except Exception as exc:
            self.failures.fail("ingest.decode", exc)
            return ERROR
        return Admitted(ms, rep, b)

    def abandon(self, a: Admitted) -> None:
        """Release a batch whose journal write failed (never merged: its retry is welcome)."""
        a.rep.unmark(int(a.batch.seq))

    def decode_summaries(self, admitted: Sequence[Admitted]) -> List[Any]:
        """The window summary of each admitted batch, read from its bytes and checked — the
        checks made once for the whole group (:func:`~raywatch.stats.summary.check_summaries`):
        a :class:`WindowSummary`, None (no summary), or the error that refuses it. For
        :meth:`apply`'s ``summary``."""
        out: List[Any] = []
        for a in admitted:
            blob = a.batch.summary
            if blob is None:
                out.append(None)
                continue
            try:
                out.append(WindowSummary.from_bytes(blob, check=False))
            except Exception as exc:
                out.append(exc)
        read = [i for i, s in enumerate(out) if isinstance(s, WindowSummary)]
        if read:
            try:
                problems: List[Any] = check_summaries([(out[i], None) for i in read])
            except Exception as exc:  # the group's check failed: each one alone, in apply
                self.failures.fail("ingest.summary", exc)
                problems = [_READ] * len(read)
            for i, problem in zip(read, problems):
                if problem is _READ:
                    out[i] = _READ
                elif problem is not None:
                    out[i] = FormatError(f"implausible window summary: {problem}")
        return out

    def apply(self, a: Admitted, now: float, *, model: bool = True, joiner: bool = True, summary: Any = None) -> str:
        """Merge an admitted batch: ``"ok"``, ``"error"``, or ``"reregister"`` (merged; the
        model has no usable configuration: its replicas are asked to register it again).
        ``model`` / ``joiner`` False leave out the part a checkpoint already holds (replay).
        ``summary``: the batch's summary as :meth:`decode_summaries` gave it (None: read here)."""
        if model:
            a = self._current(a)
        ms = a.ms
        try:
            if model:
                self._apply(ms, a.rep, a.batch, now, _READ if summary is None else summary)
            if joiner:
                self._predictions(ms, a.batch, now)
        except Exception as exc:
            self.failures.fail("ingest.merge", exc)
            return ERROR
        if model:
            self.counters["batches"] += 1
        return OK if ms.config_secrets == "ok" and ms.registered else REREGISTER

    def _current(self, a: Admitted) -> Admitted:
        """``a`` against the model's state as it is now. A state replaced while the batch's
        journal entry was written — a hand-over imported over the state that the batches a new
        shard took first had made (:func:`raywatch.aggregate.rebalance.import_model`, which
        folds that state in) — gets the batch, not the state it was admitted to, which
        nothing holds any more. Its seq was checked and marked at admission, and the fold
        carried the mark: it is merged, not refused as a duplicate."""
        ms = self.models.get(a.ms.key)
        if ms is None or ms is a.ms:
            return a
        rid = a.rep.replica_id
        rep = ms.replicas.get(rid)
        if rep is None:
            rep = ms.replicas[rid] = ReplicaMemory(rid)
        rep.mark(int(a.batch.seq))
        return Admitted(ms, rep, a.batch)

    def ingest(self, b: Any, now: float, *, model: bool = True, joiner: bool = True) -> str:
        """:meth:`admit` and :meth:`apply` at once (no journal: replay, tests)."""
        if not model:  # replay into the joiner only: the model's state already has this batch
            if not isinstance(b, ReplicaBatch):
                b = ReplicaBatch.from_dict(dict(b))
            ms = self.models.get(b.model_key)
            if ms is not None and joiner:
                self._predictions(ms, b, now)
            return OK
        a = self.admit(b, now)
        if isinstance(a, str):
            return a
        return self.apply(a, now, model=model, joiner=joiner)

    def _apply(self, ms: ModelState, rep: ReplicaMemory, b: ReplicaBatch, now: float, summary: Any = _READ) -> None:
        rep.last_seen = now
        rep.node_id = b.node_id or rep.node_id
        w = window_for(ms, float(b.end_ts), now, self.config.windows.length)
        if ms.first_seen is None or b.start_ts < ms.first_seen:
            ms.first_seen = float(b.start_ts)
        sketch = None
        if b.latency:
            try:
                sketch = b.latency_sketch()
            except Exception as exc:  # it costs only the latency figures of this batch
                ms.refused["summaries"] += 1
                self.failures.fail("ingest.sketch", exc)
        w.add_counts(requests=b.requests, errors=b.errors, statuses=b.statuses, latency=sketch, start_ts=b.start_ts,
                     end_ts=b.end_ts, routes=b.routes, methods=b.methods)
        if b.redacted or b.wrong_types:
            w.add_notes(b.redacted, b.wrong_types)
        errs = b.error_count
        ms.totals["requests"] += int(b.requests)
        rep.requests += int(b.requests)
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
        if b.abandoned:  # batches the replica gave up on after sending: dropped unless stored
            w.dropped += rep.abandon(b.abandoned)
        w.capture_errors += d_cap
        if b.resources:
            res = dict(b.resources)
            res.setdefault("node_id", b.node_id)
            res["ts"] = b.end_ts
            rep.resources = res
            w.resources[b.replica_id] = res
        s = None
        if b.summary is not None:
            try:
                s = WindowSummary.from_bytes(b.summary) if summary is _READ else summary
                if isinstance(s, Exception):
                    raise s
                w.add_summary(s)
                ms.totals["rows"] += int(s.rows)
            except Exception as exc:
                s = None
                ms.refused["summaries"] += 1
                self.failures.fail("ingest.summary", exc)
        ingest_batch(ms, w, b, s, sketch, self.failures.fail)  # segments, groups, replicas (issue 12)
        # streaming detectors on the batch's mean latency and error rate
        if b.requests > 0:
            if sketch is not None and sketch.count:
                self._detect(ms, "latency", sketch.sum / sketch.count, b.end_ts)
            self._detect(ms, "errors", errs / b.requests, b.end_ts)

    def _predictions(self, ms: ModelState, b: ReplicaBatch, now: float) -> None:
        for item in b.predictions or ():
            try:
                rid, pred, score, tags = (tuple(item) + (None, None, None))[:4]
                ms.totals["predictions"] += 1
                score = None if score is None else float(score)
                for j in self.joiner.add_prediction(rid, ms.key, scalar(pred), score, now=now, tags=clean_tags(tags)):
                    self._joined(j, now)
            except Exception as exc:
                self.failures.fail("ingest.predictions", exc)

    def _detect(self, ms: ModelState, which: str, x: float, ts: float) -> None:
        try:
            ms.detect(which, x, ts)
        except Exception as exc:
            self.failures.fail(f"detector.{which}", exc)

    # ------------------------------------------------------------------ labels
    def refuse(self, reason: str, n: int = 1) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + n

    def check_label(self, request_id: Any, label: Any, model_key: Optional[str],
                    reserved: Optional[Dict[str, set]] = None, expected: Collection[str] = ()) -> Optional[str]:
        """Why this label is refused (one of :data:`REFUSALS`), or None. ``reserved`` holds,
        per model, the new values of labels accepted earlier in the same call (they count
        against the cap before they join). ``expected``: models on their way to this shard
        (handed over, not imported yet): a label for one waits in the join like a label
        before its prediction, and its value is checked against the cap when it joins."""
        fb = self.config.feedback
        if _too_long(request_id, fb.max_label_bytes) or _too_long(label, fb.max_label_bytes):
            return "too_large"
        try:
            label = scalar(label)
        except TypeError:
            return "not_plain"
        if model_key is not None:
            ms = self.models.get(model_key)
            if ms is None:
                return None if model_key in expected else "unknown_model"
            if ms.config.feedback.task != "regression" and label is not None:
                try:
                    key = label_key(label)
                except TypeError:
                    return "not_plain"
                extra = reserved.setdefault(model_key, set()) if reserved is not None else set()
                if key not in ms.label_values and key not in extra:
                    if len(ms.label_values) + len(extra) >= ms.config.feedback.max_label_values:
                        return "too_many_values"
                    extra.add(key)
        return None

    def feedback(self, request_id: str, label: Any, model_key: Optional[str], now: float) -> bool:
        """Record one label. Returns True when it joined a known prediction now."""
        self.counters["feedback"] += 1
        try:
            joined = self.joiner.add_label(request_id, scalar(label), model_key, now=now)
        except LabelRefused as exc:
            self.refuse(exc.reason)
            return False
        except Exception as exc:
            self.failures.fail("feedback", exc)
            return False
        ok = False
        for j in joined:
            ok = self._joined(j, now) or ok
        return ok

    def joined(self, pairs: Sequence[Joined], now: float) -> int:
        """Score pairs the join made outside a batch or a label (a hand-over's entries met
        here); how many were scored."""
        return sum(1 for j in pairs if self._joined(j, now))

    def _joined(self, j: Joined, now: float) -> bool:
        ms = self.models.get(j.model_key)
        if ms is None:
            return False
        try:
            fb = ms.config.feedback
            if fb.task == "regression":
                acc = RegressionMetrics()
                acc.update(float(j.label), float(j.prediction))
                err = abs(float(j.prediction) - float(j.label))
            else:
                keys = {label_key(j.label), label_key(j.prediction)}
                new = keys - ms.label_values
                if new and len(ms.label_values) + len(new) > fb.max_label_values:
                    ms.refused["labels"] += 1
                    self.refuse("too_many_values")
                    return False
                ms.label_values |= new
                acc = ClassificationMetrics(positive=fb.positive_label)
                acc.update(j.label, j.prediction, score=j.score)
                err = 0.0 if label_key(j.label) == label_key(j.prediction) else 1.0
            w = window_for(ms, now, now, self.config.windows.length)
            w.add_perf(acc)
            ingest_label(ms, w, j.tags, acc, j.label)
            w.feedback_rows += 1
            ms.totals[FEEDBACK_ROWS.name] += 1
        except Exception as exc:
            self.failures.fail("feedback.score", exc)
            return False
        self._detect(ms, "concept", err, now)
        return True
