"""The stats actor's logic, without Ray: ingest, windows, detection, rules, persistence.

:class:`StatsCore` is what :class:`raywatch.actor.actor.StatsActor` wraps. It is a plain
object driven by method calls, so it is tested in-process and its timing is explicit (every
method takes ``now``, UTC epoch seconds):

* :meth:`StatsCore.ingest` merges a :class:`~raywatch.stats.batch.ReplicaBatch` into its
  model's tumbling window (``floor(end_ts / length)``), skipping a batch already seen
  (``(replica_id, seq)``), feeding the latency and error-rate streaming detectors and
  recording predictions for the ground-truth join.
* :meth:`StatsCore.feedback` joins a label to its prediction (either order), updates the
  current window's performance accumulator and the concept-drift detector (error stream).
* :meth:`StatsCore.evaluate` closes windows whose end (+ grace) has passed — writing each
  result to the history — computes the rolling view (the last ``windows.rolling``
  windows) of every model, its drift against the reference profile, quality and
  performance figures, turns them into :class:`raywatch.alerts.Series` and runs the alert
  engines. Notifications are delivered by the engines' own background workers.
* :meth:`StatsCore.checkpoint` / :meth:`StatsCore.recover` persist to and resume from a
  :class:`~raywatch.actor.store.Store` (checkpoint + journal replay).

Every failure inside these methods is caught, counted in :attr:`StatsCore.failures` by
stage and logged (at most once a minute per stage): the actor's own errors never stop
ingest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import pickle
import threading
import time
from collections import deque
from typing import Any, Callable, Deque, Dict, Iterable, List, Mapping, Optional, Tuple

from raywatch.actor.feedback import FeedbackJoiner, Joined
from raywatch.actor.store import Store
from raywatch.actor.windows import Window, aggregate_resources
from raywatch.config import AlertingConfig, MonitorConfig, parse_config
from raywatch.stats.batch import ReplicaBatch

__all__ = ["StatsCore", "ModelState", "history_from_sqlite"]

log = logging.getLogger("raywatch.actor.core")

_SEQ_MEMORY = 4096  # per replica: how far back out-of-order duplicates are recognised
_STATE_VERSION = 1


def _label_key(v: Any) -> Any:
    try:
        import numpy as np

        if isinstance(v, np.generic):
            v = v.item()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


class _Replica:
    """What the actor remembers about one replica: sequence numbers, counters, resources."""

    __slots__ = ("replica_id", "node_id", "max_seq", "seqs", "last_seen", "dropped_total", "capture_errors_total", "resources")

    def __init__(self, replica_id: str):
        self.replica_id = replica_id
        self.node_id: Optional[str] = None
        self.max_seq = -1
        self.seqs: set = set()
        self.last_seen = 0.0
        self.dropped_total = 0
        self.capture_errors_total = 0
        self.resources: Dict[str, Any] = {}

    def seen(self, seq: int) -> bool:
        if seq in self.seqs:
            return True
        return seq <= self.max_seq - _SEQ_MEMORY

    def mark(self, seq: int) -> None:
        self.seqs.add(seq)
        if seq > self.max_seq:
            self.max_seq = seq
        if len(self.seqs) > 2 * _SEQ_MEMORY:
            floor = self.max_seq - _SEQ_MEMORY
            self.seqs = {s for s in self.seqs if s > floor}

    def state(self) -> Dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}

    @classmethod
    def from_state(cls, s: Dict[str, Any]) -> "_Replica":
        r = cls(s["replica_id"])
        for k in cls.__slots__:
            if k in s:
                setattr(r, k, s[k])
        r.seqs = set(r.seqs)
        return r


class ModelState:
    """Everything the actor holds for one model (``"app/deployment"``)."""

    def __init__(self, key: str, labels: Dict[str, str], config: MonitorConfig, profile=None, profile_bytes=None):
        self.key = key
        self.labels = labels
        self.config = config
        self.profile = profile
        self.profile_bytes = profile_bytes
        self.open: Dict[float, Window] = {}
        self.closed: Deque[Window] = deque()
        self.closed_until = -math.inf  # end of the newest closed window
        self.first_seen: Optional[float] = None
        self.replicas: Dict[str, _Replica] = {}
        self.retired = {"dropped": 0, "capture_errors": 0}
        self.totals = {
            "requests": 0,
            "errors": 0,
            "rows": 0,
            "batches": 0,
            "duplicates": 0,
            "late_batches": 0,
            "future_batches": 0,
            "predictions": 0,
            "feedback_rows": 0,
        }
        self.error_types: Dict[str, int] = {}
        self.detectors: Dict[str, Any] = {}
        self.detector_hits: Dict[str, float] = {}  # detector -> UTC time it last fired
        self.detector_counts: Dict[str, int] = {}
        self.view: Dict[str, Any] = {}  # last evaluation (status, /metrics, rules)
        self.series: List[Any] = []

    # ------------------------------------------------------------------ counters
    @property
    def dropped_total(self) -> int:
        return self.retired["dropped"] + sum(r.dropped_total for r in self.replicas.values())

    @property
    def capture_errors_total(self) -> int:
        return self.retired["capture_errors"] + sum(r.capture_errors_total for r in self.replicas.values())

    # ------------------------------------------------------------------ persistence
    def state(self) -> Dict[str, Any]:
        dets = {}
        for name, det in self.detectors.items():
            try:
                dets[name] = pickle.dumps(det)
            except Exception as exc:  # a detector that cannot be pickled restarts fresh
                log.warning("model %s: detector %s not persisted: %s", self.key, name, exc)
        return {
            "version": _STATE_VERSION,
            "labels": dict(self.labels),
            "open": [w.state() for w in self.open.values()],
            "closed": [w.state() for w in self.closed],
            "closed_until": self.closed_until,
            "first_seen": self.first_seen,
            "replicas": [r.state() for r in self.replicas.values()],
            "retired": dict(self.retired),
            "totals": dict(self.totals),
            "error_types": dict(self.error_types),
            "detectors": dets,
            "detector_hits": dict(self.detector_hits),
            "detector_counts": dict(self.detector_counts),
        }

    def restore(self, s: Dict[str, Any]) -> None:
        if s.get("version") != _STATE_VERSION:
            raise ValueError(f"model {self.key}: state version {s.get('version')!r}, expected {_STATE_VERSION}")
        self.labels.update({k: v for k, v in (s.get("labels") or {}).items() if v})
        self.open = {w["start"]: Window.from_state(w) for w in s.get("open", [])}
        self.closed = deque(Window.from_state(w) for w in s.get("closed", []))
        self.closed_until = s.get("closed_until", -math.inf)
        self.first_seen = s.get("first_seen")
        self.replicas = {r["replica_id"]: _Replica.from_state(r) for r in s.get("replicas", [])}
        self.retired.update(s.get("retired") or {})
        self.totals.update(s.get("totals") or {})
        self.error_types = dict(s.get("error_types") or {})
        self.detectors = {}
        for name, blob in (s.get("detectors") or {}).items():
            try:
                self.detectors[name] = pickle.loads(blob)
            except Exception as exc:
                log.warning("model %s: detector %s not restored (starts fresh): %s", self.key, name, exc)
        self.detector_hits = dict(s.get("detector_hits") or {})
        self.detector_counts = dict(s.get("detector_counts") or {})


def _alerting_key(cfg: AlertingConfig) -> str:
    blob = json.dumps(cfg.model_dump(mode="json", by_alias=True), sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def _has_alerting(cfg: AlertingConfig) -> bool:
    return bool(getattr(cfg, "rules", None)) or bool(getattr(cfg, "sinks", None))


class StatsCore:
    """The stats actor's state and logic (see the module docstring).

    Parameters
    ----------
    config
        The actor-wide configuration (windows, actor, feedback TTL/size; alerting used for
        models that bring no alerting of their own).
    store
        SQLite persistence, or None for an in-memory core.
    shard
        This actor's shard number (reported in status).
    """

    def __init__(self, config: Optional[MonitorConfig] = None, store: Optional[Store] = None, *, shard: int = 0, name: str = "raywatch-stats"):
        self.config = parse_config(config) if config is not None else MonitorConfig()
        self.store = store
        self.shard = shard
        self.name = name
        self.models: Dict[str, ModelState] = {}
        fb = self.config.feedback
        self.joiner = FeedbackJoiner(ttl=fb.ttl, max_pending=fb.max_pending)
        self.engines: Dict[str, Any] = {}
        self._engine_states: Dict[str, Any] = {}  # restored states for engines not built yet
        self.transitions = 0
        self.failures: Dict[str, int] = {}
        self._last_log: Dict[str, float] = {}
        self.counters = {"batches": 0, "duplicates": 0, "feedback": 0, "evaluations": 0, "checkpoints": 0, "replayed": 0}
        self.journal_id = 0
        self.group_commit = False  # the actor turns it on: journal writes batched per loop turn
        self.journal_pending: List[Tuple[str, Optional[str], bytes, float]] = []
        self.on_series: List[Callable[[ModelState, List[Any]], None]] = []
        self.last_evaluation: Optional[float] = None
        self.registry = None  # prometheus CollectorRegistry handed to alert engines
        self.dead_letter_dir: Optional[str] = None

    # ================================================================== failures
    def fail(self, stage: str, exc: BaseException, now: Optional[float] = None) -> None:
        """Count and (rate-limited) log a failure of the actor's own ``stage``."""
        self.failures[stage] = self.failures.get(stage, 0) + 1
        t = time.monotonic()
        if t - self._last_log.get(stage, -1e9) >= 60.0:
            self._last_log[stage] = t
            log.error("stats actor %s failed (%d times so far): %s: %s", stage, self.failures[stage], type(exc).__name__, exc,
                      exc_info=exc if stage not in ("ingest.decode",) else None)

    # ================================================================== models
    def _parse_model_config(self, config: Any) -> MonitorConfig:
        cfg = self._parse_model_config_raw(config)
        if cfg is not self.config and _masked_secrets(cfg.alerting):
            # a config that went through JSON lost its secrets ("**********"); the actor's own
            # config (handed over pickled by the replica that created it) still has them
            if not _masked_secrets(self.config.alerting) and (
                [s.name for s in cfg.alerting.sinks] == [s.name for s in self.config.alerting.sinks]
            ):
                cfg = cfg.model_copy(update={"alerting": self.config.alerting})
            else:
                self.fail("register.secrets", ValueError(
                    "the model's alerting config has masked secrets ('**********'): send the MonitorConfig "
                    "object (it pickles with its secrets), not its JSON dump"))
        return cfg

    def _parse_model_config_raw(self, config: Any) -> MonitorConfig:
        if not config:
            return self.config
        if isinstance(config, MonitorConfig):
            return config
        data = dict(config)
        try:
            return parse_config(data)
        except Exception as first:
            # a dumped config carries a rule's ``expr`` *and* the metric/op/threshold parsed
            # from it; keep ``expr`` and validate again
            fixed = _undump_rules(data)
            if fixed is not None:
                try:
                    return parse_config(fixed)
                except Exception:
                    pass
            self.fail("register.config", first)
            return self.config

    def register_model(self, model_key: str, config_dict: Any = None, profile_bytes: Optional[bytes] = None,
                       *, labels: Optional[Mapping[str, str]] = None, persist: bool = True) -> Dict[str, Any]:
        """Create or update a model: its config and reference profile."""
        cfg = self._parse_model_config(config_dict)
        app, _, deployment = model_key.partition("/")
        lab = {
            "app": app,
            "deployment": deployment,
            "model": (labels or {}).get("model") or cfg.model or deployment,
            "version": (labels or {}).get("version") or cfg.version or "",
        }
        ms = self.models.get(model_key)
        profile = None
        if profile_bytes is not None:
            try:
                from raywatch.stats.profile import Profile

                profile = Profile.from_bytes(profile_bytes)
            except Exception as exc:
                self.fail("register.profile", exc)
                profile_bytes = None
        if ms is None:
            ms = ModelState(model_key, lab, cfg, profile, profile_bytes)
            self.models[model_key] = ms
        else:
            ms.config = cfg
            ms.labels.update({k: v for k, v in lab.items() if v})
            if profile is not None:
                ms.profile, ms.profile_bytes = profile, profile_bytes
        if persist and self.store is not None:
            try:
                self.store.save_model(model_key, ms.labels, cfg, ms.profile_bytes)
            except Exception as exc:
                self.fail("store.model", exc)
        return {"model_key": model_key, "labels": dict(ms.labels), "profile": ms.profile is not None}

    def _model_for_batch(self, b: ReplicaBatch) -> ModelState:
        key = b.model_key
        ms = self.models.get(key)
        if ms is None:
            self.register_model(key, None, None, labels={"model": b.model or "", "version": b.version or ""})
            ms = self.models[key]
        else:
            if b.model and ms.labels.get("model") != b.model and not ms.config.model:
                ms.labels["model"] = b.model
            if b.version and ms.labels.get("version") != b.version:
                ms.labels["version"] = b.version
        return ms

    # ================================================================== windows
    def _window(self, ms: ModelState, ts: float, now: float) -> Window:
        L = self.config.windows.length
        if ts > now + L:  # a replica clock far ahead: file it under now
            ms.totals["future_batches"] += 1
            ts = now
        start = math.floor(ts / L) * L
        if start < ms.closed_until:  # its window is already closed: the earliest open one
            ms.totals["late_batches"] += 1
            start = ms.closed_until
        w = ms.open.get(start)
        if w is None:
            w = ms.open[start] = Window(start, start + L)
        return w

    # ================================================================== ingest
    def is_duplicate(self, b: ReplicaBatch) -> bool:
        ms = self.models.get(b.model_key)
        if ms is None:
            return False
        r = ms.replicas.get(b.replica_id)
        return r is not None and r.seen(int(b.seq))

    def ingest(self, b: ReplicaBatch, now: Optional[float] = None, *, journal: Optional[Callable[[ReplicaBatch], None]] = None) -> str:
        """Merge one replica batch. Returns ``"ok"``, ``"duplicate"`` or ``"error"``."""
        now = time.time() if now is None else now
        try:
            if not isinstance(b, ReplicaBatch):
                b = ReplicaBatch.from_dict(dict(b))
            ms = self._model_for_batch(b)
            rep = ms.replicas.get(b.replica_id)
            if rep is None:
                rep = ms.replicas[b.replica_id] = _Replica(b.replica_id)
            if rep.seen(int(b.seq)):
                ms.totals["duplicates"] += 1
                self.counters["duplicates"] += 1
                return "duplicate"
            if journal is not None:
                journal(b)
            rep.mark(int(b.seq))
        except Exception as exc:
            self.fail("ingest.decode", exc)
            return "error"
        try:
            self._apply(ms, rep, b, now)
        except Exception as exc:
            self.fail("ingest.merge", exc)
            return "error"
        self.counters["batches"] += 1
        return "ok"

    def _apply(self, ms: ModelState, rep: _Replica, b: ReplicaBatch, now: float) -> None:
        rep.last_seen = now
        rep.node_id = b.node_id or rep.node_id
        w = self._window(ms, float(b.end_ts), now)
        if ms.first_seen is None or b.start_ts < ms.first_seen:
            ms.first_seen = float(b.start_ts)
        sketch = b.latency_sketch() if b.latency else None
        w.add_counts(requests=b.requests, errors=b.errors, statuses=b.statuses, latency=sketch, start_ts=b.start_ts, end_ts=b.end_ts,
                     routes=getattr(b, "routes", None), methods=getattr(b, "methods", None))
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
                from raywatch.stats.summary import WindowSummary

                s = WindowSummary.from_bytes(b.summary)
                w.add_summary(s)
                ms.totals["rows"] += int(s.rows)
            except Exception as exc:
                self.fail("ingest.summary", exc)
        # streaming detectors on the batch's mean latency and error rate
        if b.requests > 0:
            if sketch is not None and sketch.count:
                self._detect(ms, "latency", sketch.sum / sketch.count, b.end_ts)
            self._detect(ms, "errors", errs / b.requests, b.end_ts)
        if b.predictions:
            for item in b.predictions:
                try:
                    rid, pred, score = (tuple(item) + (None, None))[:3]
                    ms.totals["predictions"] += 1
                    for j in self.joiner.add_prediction(rid, ms.key, pred, score, now=now):
                        self._joined(j, now)
                except Exception as exc:
                    self.fail("ingest.predictions", exc)

    # ================================================================== detectors
    def _detector(self, ms: ModelState, which: str):
        det = ms.detectors.get(which)
        if det is not None:
            return det
        dcfg = getattr(ms.config.detectors, which)
        if not dcfg.enabled:
            return None
        from raywatch.drift.streaming import make_detector

        det = make_detector(dcfg.method, **dcfg.params)
        ms.detectors[which] = det
        return det

    def _detect(self, ms: ModelState, which: str, x: float, ts: float) -> None:
        try:
            det = self._detector(ms, which)
            if det is None or not math.isfinite(x):
                return
            if det.update(float(x)):
                ms.detector_hits[which] = float(ts)
                ms.detector_counts[which] = ms.detector_counts.get(which, 0) + 1
        except Exception as exc:
            self.fail(f"detector.{which}", exc)

    # ================================================================== feedback
    def feedback(self, request_id: str, label: Any, model_key: Optional[str] = None, now: Optional[float] = None) -> bool:
        """Record one label. Returns True when it joined a known prediction now."""
        now = time.time() if now is None else now
        self.counters["feedback"] += 1
        try:
            joined = self.joiner.add_label(request_id, label, model_key, now=now)
            for j in joined:
                self._joined(j, now)
            return bool(joined)
        except Exception as exc:
            self.fail("feedback", exc)
            return False

    def _joined(self, j: Joined, now: float) -> None:
        ms = self.models.get(j.model_key)
        if ms is None:
            return
        try:
            fb = ms.config.feedback
            w = self._window(ms, now, now)
            if fb.task == "regression":
                from raywatch.drift.performance import RegressionMetrics

                acc = RegressionMetrics()
                acc.update(float(j.label), float(j.prediction))
                err = abs(float(j.prediction) - float(j.label))
            else:
                from raywatch.drift.performance import ClassificationMetrics

                acc = ClassificationMetrics(positive=fb.positive_label)
                acc.update(j.label, j.prediction, score=j.score)
                err = 0.0 if _label_key(j.label) == _label_key(j.prediction) else 1.0
            w.add_perf(acc)
            w.feedback_rows += 1
            ms.totals["feedback_rows"] += 1
        except Exception as exc:
            self.fail("feedback.score", exc)
            return
        self._detect(ms, "concept", err, now)

    # ================================================================== evaluation
    def _close_windows(self, ms: ModelState, now: float) -> List[Dict[str, Any]]:
        wc = self.config.windows
        results = []
        for start in sorted(ms.open):
            w = ms.open[start]
            if w.end + wc.grace > now:
                break
            del ms.open[start]
            ms.closed_until = max(ms.closed_until, w.end)
            try:
                res = self._window_result(ms, w, seconds=w.end - w.start)
                results.append(res)
                if self.store is not None:
                    self.store.insert_window(ms.key, w.start, w.end, res)
            except Exception as exc:
                self.fail("window.close", exc)
            ms.closed.append(w)
        horizon = math.floor(now / wc.length) * wc.length - (wc.rolling - 1) * wc.length
        while ms.closed and ms.closed[0].start < horizon:
            ms.closed.popleft()
        return results

    def _drift(self, ms: ModelState, w: Window) -> Optional[Any]:
        if ms.profile is None or w.summary is None or w.rows == 0:
            return None
        from raywatch.drift import detect_drift

        return detect_drift(ms.profile, w.summary, ms.config.drift)

    def _window_result(self, ms: ModelState, w: Window, seconds: float, *, full: bool = False) -> Dict[str, Any]:
        res = w.figures(seconds)
        res.update(_resource_fields(aggregate_resources(w.resources)))
        drift: Dict[str, Any] = {}
        res["dataset_drift"] = False
        res["drifted_features_share"] = None
        res["quality"] = {}
        try:
            report = self._drift(ms, w)
        except Exception as exc:
            self.fail("drift", exc)
            report = None
        if report is not None:
            drift, extra = _drift_fields(report)
            res.update(extra)
        res["drift"] = drift
        perf = {}
        if w.perf is not None:
            try:
                perf = {k: v for k, v in w.perf.result().items()}
            except Exception as exc:
                self.fail("performance", exc)
        res["performance"] = perf
        if full:
            res["resources"] = aggregate_resources(w.resources)
        return res

    def _rolling(self, ms: ModelState, now: float) -> Tuple[Window, float]:
        wc = self.config.windows
        horizon = math.floor(now / wc.length) * wc.length - (wc.rolling - 1) * wc.length
        ws = [w for w in ms.closed if w.start >= horizon] + [ms.open[s] for s in sorted(ms.open) if s >= horizon]
        view = Window.merged(ws) if ws else Window(horizon, horizon + wc.rolling * wc.length)
        begin = max(horizon, ms.first_seen if ms.first_seen is not None else horizon)
        # up to the newest data, which lags ``now`` by the replicas' flush delay; but never
        # further back than ``grace`` so that a model whose traffic stopped decays to 0 rps
        end = max(min(now, view.last_ts), now - wc.grace) if view.last_ts is not None else now
        return view, max(end - begin, 1e-9)

    def _live_resources(self, ms: ModelState, now: float) -> Dict[str, Dict[str, Any]]:
        ttl = self.config.actor.replica_ttl
        out = {}
        for rid, r in list(ms.replicas.items()):
            if now - r.last_seen > ttl and r.last_seen > 0:
                # retire: keep its counters, forget the rest
                if now - r.last_seen > max(ttl * 10, 3600.0):
                    ms.retired["dropped"] += r.dropped_total
                    ms.retired["capture_errors"] += r.capture_errors_total
                    del ms.replicas[rid]
                continue
            if r.resources:
                out[rid] = r.resources
        return out

    def evaluate_model(self, ms: ModelState, now: float) -> Dict[str, Any]:
        closed = self._close_windows(ms, now)
        view, seconds = self._rolling(ms, now)
        res = self._window_result(ms, view, seconds)
        resources = aggregate_resources(self._live_resources(ms, now))
        res.update(_resource_fields(resources))
        res["resources"] = resources
        span = self.config.windows.rolling * self.config.windows.length
        res["detectors"] = {
            name: {
                "method": getattr(getattr(ms.config.detectors, name), "method", None),
                "drift": bool(ms.detector_hits.get(name) is not None and now - ms.detector_hits[name] <= span),
                "last_detected": ms.detector_hits.get(name),
                "detections": ms.detector_counts.get(name, 0),
            }
            for name in ("latency", "errors", "concept")
        }
        current = max(ms.open.values(), key=lambda w: w.start) if ms.open else (ms.closed[-1] if ms.closed else None)
        ms.view = {
            "evaluated_at": now,
            "rolling": res,
            "window": current.figures(current.end - current.start) if current is not None else None,
            "closed": closed,
        }
        try:
            ms.series = self._series(ms, res)
        except Exception as exc:
            self.fail("series", exc)
            ms.series = []
        return ms.view

    def evaluate(self, now: Optional[float] = None, *, want_status: bool = True) -> Optional[Dict[str, Any]]:
        """Close due windows, compute every model's view, run the alert rules; returns the
        status (unless ``want_status`` is False, as in the actor's periodic loop)."""
        now = time.time() if now is None else now
        self.counters["evaluations"] += 1
        by_engine: Dict[str, List[Any]] = {}
        for ms in list(self.models.values()):
            try:
                self.evaluate_model(ms, now)
            except Exception as exc:
                self.fail("evaluate", exc)
                continue
            by_engine.setdefault(self._engine_key(ms), []).extend(ms.series)
        try:
            self.joiner.expire(now)
        except Exception as exc:
            self.fail("feedback.expire", exc)
        # retire first: a replaced configuration's alerts resolve before its successor's
        # evaluation sets the (shared) alert-state metrics
        self._retire_engines(set(by_engine), now)
        for key, series in by_engine.items():
            self._run_engine(key, series, now)
        for hook in self.on_series:
            for ms in self.models.values():
                try:
                    hook(ms, ms.series)
                except Exception as exc:
                    self.fail("exposition", exc)
        self.last_evaluation = now
        return self.status(now=now) if want_status else None

    # ================================================================== series & alerts
    def _series(self, ms: ModelState, r: Dict[str, Any]) -> List[Any]:
        try:
            from raywatch.alerts import Series
        except ImportError:  # the alerting package re-exports it; the data model lives here
            from raywatch.alerts.alert import Series

        base = {k: str(v) for k, v in ms.labels.items()}
        out: List[Any] = []

        def add(name: str, value: Any, **extra: str) -> None:
            if value is None:
                return
            try:
                v = float(value)
            except (TypeError, ValueError):
                return
            if v != v:
                return
            labels = dict(base, **extra) if extra else base
            out.append(Series(name, labels, v))

        add("requests_total", ms.totals["requests"])
        add("errors_total", ms.totals["errors"])
        add("dropped_records_total", ms.dropped_total)
        add("capture_errors_total", ms.capture_errors_total)
        for k in ("throughput_rps", "error_rate", "latency_p50_seconds", "latency_p95_seconds", "latency_p99_seconds"):
            add(k, r.get(k))
        for feat, d in (r.get("drift") or {}).items():
            add("drift_score", d.get("statistic"), feature=feat, method=str(d.get("method")))
            add("drift_p_value", d.get("p_value"), feature=feat, method=str(d.get("method")))
            add("drift_detected", 1.0 if d.get("drifted") else 0.0, feature=feat)
        if r.get("drift"):
            add("dataset_drift", 1.0 if r.get("dataset_drift") else 0.0)
            add("drifted_features_share", r.get("drifted_features_share"))
        for feat, q in (r.get("quality") or {}).items():
            for k in ("missing_share", "out_of_range_share", "unseen_category_share"):
                add(k, q.get(k), feature=feat)
        perf = r.get("performance") or {}
        for k in ("accuracy", "precision", "recall", "f1", "roc_auc", "mae", "rmse"):
            add(k, perf.get(k))
        add("feedback_rows", r.get("feedback_rows"))
        dets = r.get("detectors") or {}
        if "concept" in dets and ms.detectors.get("concept") is not None:
            add("concept_drift", 1.0 if dets["concept"]["drift"] else 0.0)
        if "latency" in dets and ms.detectors.get("latency") is not None:
            add("latency_drift", 1.0 if dets["latency"]["drift"] else 0.0)
        if "errors" in dets and ms.detectors.get("errors") is not None:
            add("error_rate_drift", 1.0 if dets["errors"]["drift"] else 0.0)
        res = r.get("resources") or {}
        for k in ("cpu_percent", "rss_bytes", "node_cpu_percent", "node_memory_percent"):
            add(k, res.get(k))
        for gpu, g in (res.get("gpus") or {}).items():
            add("gpu_utilization", g.get("utilization"), gpu=gpu)
            add("gpu_memory_used_bytes", g.get("memory_used_bytes"), gpu=gpu)
            add("gpu_temperature_celsius", g.get("temperature_celsius"), gpu=gpu)
            add("gpu_power_watts", g.get("power_watts"), gpu=gpu)
        return out

    def _alerting_for(self, ms: ModelState) -> AlertingConfig:
        return ms.config.alerting if _has_alerting(ms.config.alerting) else self.config.alerting

    def _engine_key(self, ms: ModelState) -> str:
        return _alerting_key(self._alerting_for(ms))

    def _engine(self, key: str, cfg: AlertingConfig):
        eng = self.engines.get(key)
        if eng is not None:
            return eng
        from raywatch.alerts import AlertEngine

        dead = None
        if self.dead_letter_dir:
            import os

            dead = os.path.join(self.dead_letter_dir, f"raywatch-dead-letters-{self.name}-{key}.jsonl")
        eng = AlertEngine.from_config(cfg, dead_letter_path=dead, registry=self.registry)
        st = self._engine_states.pop(key, None)
        if st is not None:
            try:
                eng.restore(st)
            except Exception as exc:
                self.fail("alerts.restore", exc)
        self.engines[key] = eng
        return eng

    def _run_engine(self, key: str, series: List[Any], now: float) -> None:
        cfg = None
        for ms in self.models.values():
            if self._engine_key(ms) == key:
                cfg = self._alerting_for(ms)
                break
        if cfg is None or not _has_alerting(cfg):
            return
        try:
            eng = self._engine(key, cfg)
            changed = eng.evaluate(series, now=now)
        except Exception as exc:
            self.fail("alerts.evaluate", exc)
            return
        try:
            self._record_transitions(changed, now)
        except Exception as exc:
            self.fail("alerts.history", exc)

    def _retire_engines(self, live: set, now: float) -> None:
        """Close the engines no model uses any more (a model's alerting was reconfigured).

        Their firing alerts are resolved and the receivers told so at once (with a
        ``resolved_reason``), rather than left open in Slack or PagerDuty: the alert as
        configured is over, and if the new configuration's rule still holds, it raises its
        own alert."""
        for key in [k for k in self.engines if k not in live]:
            eng = self.engines.pop(key)
            try:
                self._record_transitions(eng.resolve_all("alerting configuration replaced", now=now), now)
            except Exception as exc:
                self.fail("alerts.retire", exc)
            # close() waits for queued deliveries: not on the actor's event loop
            threading.Thread(target=_close_quietly, args=(eng,), name="raywatch-engine-close", daemon=True).start()
            if self.store is not None:
                try:
                    self.store.delete_state(f"__engine__:{key}")
                except Exception as exc:
                    self.fail("store.engine", exc)
            log.info("alert engine %s retired (no model uses its configuration now)", key)

    def _record_transitions(self, changed: Iterable[Any], now: float) -> None:
        """Write firing and resolved transitions to the history (pending ones are not kept)."""
        for a in changed:
            state = getattr(a, "state", None)
            if state not in ("firing", "resolved"):
                continue
            labels = dict(getattr(a, "labels", {}) or {})
            mk = f"{labels.get('app', '')}/{labels.get('deployment', '')}" if "app" in labels else None
            row = {
                "ts": now,
                "alertname": labels.get("alertname"),
                "state": state,
                "severity": labels.get("severity"),
                "labels": labels,
                "annotations": dict(getattr(a, "annotations", {}) or {}),
                "value": getattr(a, "value", None),
            }
            self.transitions += 1
            if self.store is not None:
                self.store.insert_alert(now, mk, row)

    def alerts(self, model_key: Optional[str] = None) -> List[Dict[str, Any]]:
        out = []
        for eng in self.engines.values():
            try:
                for a in eng.alerts():
                    labels = a.get("labels") or {}
                    if model_key is not None and f"{labels.get('app')}/{labels.get('deployment')}" != model_key:
                        continue
                    out.append(a)
            except Exception as exc:
                self.fail("alerts.read", exc)
        return out

    # ================================================================== query
    def status(self, model_key: Optional[str] = None, now: Optional[float] = None) -> Dict[str, Any]:
        now = time.time() if now is None else now
        models = {}
        for key, ms in self.models.items():
            if model_key is not None and key != model_key and ms.labels.get("model") != model_key:
                continue
            v = ms.view or {}
            roll = v.get("rolling") or {}
            models[key] = {
                "labels": dict(ms.labels),
                "shard": self.shard,
                "profile": ms.profile is not None,
                "evaluated_at": v.get("evaluated_at"),
                "window": v.get("window"),
                "rolling": {k: val for k, val in roll.items() if k not in ("drift", "quality", "performance", "detectors", "resources")},
                "drift": {
                    "dataset_drift": roll.get("dataset_drift"),
                    "drifted_features_share": roll.get("drifted_features_share"),
                    "columns": roll.get("drift") or {},
                },
                "quality": roll.get("quality") or {},
                "performance": roll.get("performance") or {},
                "detectors": roll.get("detectors") or {},
                "resources": roll.get("resources") or {},
                "totals": dict(ms.totals, dropped=ms.dropped_total, capture_errors=ms.capture_errors_total, errors_by_type=dict(ms.error_types)),
                "replicas": {rid: {"node_id": r.node_id, "last_seen": r.last_seen, "max_seq": r.max_seq,
                                    "dropped_total": r.dropped_total, "capture_errors_total": r.capture_errors_total}
                             for rid, r in ms.replicas.items()},
                "open_windows": sorted(ms.open),
                "alerts": self.alerts(key),
            }
        return {
            "models": models,
            "actor": {
                "name": self.name,
                "shard": self.shard,
                "shards": self.config.actor.shards,
                "window_length": self.config.windows.length,
                "rolling_windows": self.config.windows.rolling,
                "last_evaluation": self.last_evaluation,
                "failures": dict(self.failures),
                "counters": dict(self.counters),
                "feedback": dict(self.joiner.counters(), pending=self.joiner.pending()),
                "sqlite_path": self.store.path if self.store is not None else None,
            },
        }

    def history(self, model_key: Optional[str] = None, since: Optional[float] = None, limit: int = 10_000) -> Dict[str, Any]:
        """Closed windows, features (reference vs rolling) and alert transitions (CONTRACTS format)."""
        out: Dict[str, Any] = {"models": {}, "alerts": []}
        rows = self.store.windows(model_key, since, limit) if self.store is not None else []
        by_model: Dict[str, List[Dict[str, Any]]] = {}
        for r in rows:
            by_model.setdefault(r.pop("model_key"), []).append(r)
        for key, ms in self.models.items():
            if model_key is not None and key != model_key:
                continue
            feats = {}
            try:
                feats = _feature_histograms(ms, self._rolling(ms, self.last_evaluation or time.time())[0])
            except Exception as exc:
                self.fail("history.features", exc)
            out["models"][key] = {"labels": dict(ms.labels), "features": feats, "windows": by_model.get(key, [])}
        if self.store is not None:
            for a in self.store.alerts(model_key, since, limit):
                a.pop("model_key", None)
                out["alerts"].append(a)
        return out

    # ================================================================== persistence
    def snapshot(self) -> Dict[str, bytes]:
        blobs: Dict[str, bytes] = {}
        for key, ms in self.models.items():
            try:
                blobs[key] = pickle.dumps(ms.state(), protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as exc:
                self.fail("checkpoint.model", exc)
        blobs["__joiner__"] = pickle.dumps(self.joiner.state(), protocol=pickle.HIGHEST_PROTOCOL)
        for key, eng in self.engines.items():
            try:
                blobs[f"__engine__:{key}"] = pickle.dumps(eng.state(), protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as exc:
                self.fail("checkpoint.alerts", exc)
        blobs["__counters__"] = pickle.dumps({"counters": self.counters, "failures": self.failures})
        return blobs

    def checkpoint(self) -> bool:
        if self.store is None:
            return False
        self.flush_journal()  # the checkpoint includes their effects: ids must be <= journal_id
        try:
            self.store.checkpoint(self.snapshot(), self.journal_id)
            self.counters["checkpoints"] += 1
            return True
        except Exception as exc:
            self.fail("checkpoint", exc)
            return False

    @property
    def journaling(self) -> bool:
        return self.store is not None and self.config.actor.journal

    def journal_batch(self, b: ReplicaBatch) -> None:
        """Journal an accepted batch: written at once, or queued for :meth:`flush_journal`
        when :attr:`group_commit` is on (the actor acknowledges after the flush)."""
        if not self.journaling:
            return
        self._journal_entry("batch", b.model_key, pickle.dumps(b, protocol=pickle.HIGHEST_PROTOCOL))

    def journal_feedback(self, items: List[Tuple[str, Any, Optional[str]]], now: float) -> None:
        if not self.journaling:
            return
        self._journal_entry("feedback", None, pickle.dumps((now, items), protocol=pickle.HIGHEST_PROTOCOL))

    def _journal_entry(self, kind: str, model_key: Optional[str], payload: bytes) -> None:
        if self.group_commit:
            self.journal_pending.append((kind, model_key, payload, time.time()))
            return
        try:
            self.journal_id = self.store.journal_append(kind, model_key, payload)
        except Exception as exc:
            self.fail("journal", exc)

    def flush_journal(self) -> int:
        """Write the queued journal entries in one transaction; returns how many."""
        entries, self.journal_pending = self.journal_pending, []
        if not entries or self.store is None:
            return 0
        try:
            self.journal_id = self.store.journal_append_many(entries)
        except Exception as exc:
            self.fail("journal", exc)
            return 0
        return len(entries)

    def recover(self) -> Dict[str, int]:
        """Load models, the last checkpoint and replay the journal after it."""
        if self.store is None:
            return {}
        stats = {"models": 0, "states": 0, "replayed": 0}
        for key, (labels, config, profile) in self.store.load_models().items():
            self.register_model(key, config, profile, labels=labels, persist=False)
            stats["models"] += 1
        for key, blob in self.store.load_state().items():
            try:
                s = pickle.loads(blob)
                if key == "__joiner__":
                    self.joiner.restore(s)
                elif key == "__counters__":
                    self.counters.update(s.get("counters") or {})
                    self.failures.update(s.get("failures") or {})
                elif key.startswith("__engine__:"):
                    self._engine_states[key.split(":", 1)[1]] = s
                elif key in self.models:
                    self.models[key].restore(s)
                    stats["states"] += 1
            except Exception as exc:
                self.fail("recover.state", exc)
        self.journal_id = self.store.checkpoint_journal_id()
        for jid, kind, _mk, payload in self.store.journal_after(self.journal_id):
            try:
                if kind == "batch":
                    b = pickle.loads(payload)
                    self.ingest(b, now=float(b.end_ts))
                elif kind == "feedback":
                    ts, items = pickle.loads(payload)
                    for rid, label, mk in items:
                        self.feedback(rid, label, mk, now=ts)
                stats["replayed"] += 1
            except Exception as exc:
                self.fail("recover.journal", exc)
            self.journal_id = jid
        self.counters["replayed"] += stats["replayed"]
        log.info("stats actor %s recovered from %s: %s", self.name, self.store.path, stats)
        return stats


def history_from_sqlite(path: str, model_key: Optional[str] = None, since: Optional[float] = None) -> Dict[str, Any]:
    """``history()`` read from a stats actor's SQLite file, without Ray (the offline report).

    Opens the file read-only; the models' last checkpoint plus the journal after it give
    the features' current histograms, the ``windows`` and ``alerts`` tables the rest.
    """
    store = Store(path, readonly=True)
    try:
        core = StatsCore(MonitorConfig(actor={"sqlite_path": None}), store)
        core.recover()
        # "current" histograms: the rolling view as of the newest data in the file
        ends = [w.last_ts or w.end for ms in core.models.values() for w in list(ms.open.values()) + list(ms.closed)]
        core.last_evaluation = max(ends) if ends else None
        return core.history(model_key, since)
    finally:
        store.close()


# ====================================================================== adapters

_MASK = "**********"


def _masked_secrets(obj: Any) -> bool:
    """Whether a (config) object holds a SecretStr whose value is pydantic's JSON mask."""
    from pydantic import BaseModel, SecretStr

    if isinstance(obj, SecretStr):
        return obj.get_secret_value() == _MASK
    if isinstance(obj, BaseModel):
        return any(_masked_secrets(getattr(obj, f)) for f in type(obj).model_fields)
    if isinstance(obj, dict):
        return any(_masked_secrets(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(_masked_secrets(v) for v in obj)
    return False


def _close_quietly(eng: Any) -> None:
    try:
        eng.close(timeout=10.0)
    except Exception as exc:  # pragma: no cover - best effort
        log.warning("closing a retired alert engine failed: %s", exc)


def _undump_rules(data: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """``data`` with rules that have ``expr`` stripped of the fields derived from it."""
    alerting = data.get("alerting")
    if not isinstance(alerting, Mapping) or not alerting.get("rules"):
        return None
    rules = []
    for r in alerting["rules"]:
        if isinstance(r, Mapping) and r.get("expr"):
            r = {k: v for k, v in r.items() if k not in ("metric", "op", "threshold", "matchers")}
        rules.append(r)
    return dict(data, alerting=dict(alerting, rules=rules))


def _resource_fields(res: Dict[str, Any]) -> Dict[str, Any]:
    return {k: res.get(k) for k in ("cpu_percent", "rss_bytes", "gpu_utilization", "node_cpu_percent", "node_memory_percent")}


def _drift_fields(report: Any) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Per-feature drift and dataset-level fields from a DriftReport."""
    cols = {}
    for name, c in (getattr(report, "columns", None) or {}).items():
        if not getattr(c, "tested", True):
            continue  # skipped column (too few rows, ...): no verdict to report
        cols[name] = {
            "method": getattr(c, "method", None),
            "statistic": getattr(c, "statistic", None),
            "p_value": getattr(c, "p_value", None),
            "p_value_adjusted": getattr(c, "p_value_adjusted", None),
            "threshold": getattr(c, "threshold", None),
            "drifted": bool(getattr(c, "drifted", False)),
        }
    quality = {}
    for name, q in (getattr(report, "quality", None) or {}).items():
        get = q.get if isinstance(q, Mapping) else (lambda k, _q=q: getattr(_q, k, None))
        entry = {k: get(k) for k in ("missing_share", "out_of_range_share", "unseen_category_share", "wrong_type_share")}
        entry["issues"] = list(get("issues") or [])
        quality[name] = entry
    extra = {
        "dataset_drift": bool(getattr(report, "dataset_drift", False)),
        "drifted_features_share": getattr(report, "drift_share", None),
        "quality": quality,
    }
    return cols, extra


def _feature_histograms(ms: ModelState, view: Window) -> Dict[str, Any]:
    """Reference vs current histograms per feature, for the HTML report."""
    profile = ms.profile
    if profile is None:
        return {}
    out: Dict[str, Any] = {}
    for name, kind in profile.kinds.items():
        ref = profile.histogram(name)
        if view.summary is not None:
            cur = profile.histogram(name, view.summary)
        else:
            cur = dict(ref, counts=[0] * len(ref["counts"]))
        out[name] = {"kind": kind, "reference": ref, "current": cur}
    return out
