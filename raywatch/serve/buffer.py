"""Off the request path: records become one :class:`~raywatch.stats.batch.ReplicaBatch`.

:class:`BatchBuilder` takes the records :class:`~raywatch.serve.capture.Capture` collected
since the last flush and builds the batch the replica ships: request and error counters,
HTTP status counts, a latency sketch (one vectorised ``add_many``), the window summary of
the sampled requests' features and predictions (``profile.summarize(rows)``, when the
replica has a reference profile) and, when feedback is on, ``(request_id, prediction,
score)`` triples for ground-truth joins. A failure extracting one record is counted in
``capture_errors`` and the rest of the batch goes on.
"""

from __future__ import annotations

import logging
import time
from operator import itemgetter
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from raywatch.serve.capture import (
    ARGS,
    CTX,
    KWARGS,
    METHOD,
    OUTCOME,
    RESULT,
    ROUTE,
    STATUS,
    T0,
    T1,
    RateLimitedLog,
    Record,
)
from raywatch.serve.extract import Extractor, prediction_and_score
from raywatch.stats.batch import ReplicaBatch
from raywatch.stats.sketch import LatencySketch

__all__ = ["BatchBuilder", "Labels"]

logger = logging.getLogger("raywatch.serve.buffer")

_MAX_ROUTES = 100


class Labels:
    """Who a replica is: app, deployment, model, version, replica id, node id."""

    __slots__ = ("app", "deployment", "model", "version", "replica_id", "node_id")

    def __init__(self, app: str, deployment: str, replica_id: str, model: Optional[str] = None,
                 version: Optional[str] = None, node_id: Optional[str] = None):
        self.app = app
        self.deployment = deployment
        self.replica_id = replica_id
        self.model = model or deployment
        self.version = version
        self.node_id = node_id

    @property
    def model_key(self) -> str:
        return f"{self.app}/{self.deployment}"

    def as_dict(self) -> Dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


class BatchBuilder:
    """Builds ReplicaBatches from records. Not thread-safe: the flusher thread owns it.

    ``profile`` is a :class:`raywatch.stats.profile.Profile` (or None: then no summary is
    built); ``extractor`` an :class:`~raywatch.serve.extract.Extractor`; ``feedback``
    whether to ship predictions keyed by request id (at most ``max_predictions`` a batch).
    """

    def __init__(self, labels: Labels, extractor: Extractor, *, profile: Any = None,
                 feedback: bool = False, max_predictions: int = 10_000, alpha: float = 0.01):
        self.labels = labels
        self.extractor = extractor
        self.profile = profile
        self.feedback = feedback
        self.max_predictions = max_predictions
        self.alpha = alpha
        self.seq = 0
        self.capture_errors = 0
        self.rows_summarized = 0
        self._log = RateLimitedLog(logger)
        # one offset turns perf_counter readings into UTC epoch seconds
        self._epoch_offset = time.time() - time.perf_counter()

    def _failed(self, what: str, exc: BaseException) -> None:
        self.capture_errors += 1
        self._log.warning("raywatch could not %s (%s: %s); skipped", what, type(exc).__name__, exc)

    def build(self, records: Sequence[Record], resources: Optional[Dict[str, Any]] = None) -> ReplicaBatch:
        """One batch from ``records`` (may be empty: a heartbeat with resources only)."""
        lab = self.labels
        n = len(records)
        self._epoch_offset = time.time() - time.perf_counter()  # follows wall-clock adjustments
        sketch = LatencySketch(alpha=self.alpha)
        errors: Dict[str, int] = {}
        statuses: Dict[str, int] = {}
        rows: List[Dict[str, Any]] = []
        predictions: List[tuple] = []
        now = time.time()
        if n:
            t0s = np.fromiter((r[T0] for r in records), dtype=np.float64, count=n)
            t1s = np.fromiter((r[T1] for r in records), dtype=np.float64, count=n)
            sketch.add_many(t1s - t0s)
            start_ts = float(t0s.min()) + self._epoch_offset
            end_ts = float(t1s.max()) + self._epoch_offset
        else:
            start_ts = end_ts = now
        extractor = self.extractor
        want_rows = self.profile is not None
        routes: Dict[str, int] = {}
        methods: Dict[str, int] = {}
        for r in records:
            outcome, status = r[OUTCOME], r[STATUS]
            method = r[METHOD]
            methods[method] = methods.get(method, 0) + 1
            route = r[ROUTE] or getattr(r[CTX], "route", None)
            if route:
                if route not in routes and len(routes) >= _MAX_ROUTES:
                    route = "other"
                routes[route] = routes.get(route, 0) + 1
            if status is None and r[RESULT] is not None:
                status = _status_of(r[RESULT], r[CTX])
            if status is not None:
                key = str(status)
                statuses[key] = statuses.get(key, 0) + 1
            if outcome is not None:
                errors[outcome] = errors.get(outcome, 0) + 1
            elif status is not None and status >= 500:
                errors["http_5xx"] = errors.get("http_5xx", 0) + 1
            if outcome is not None or (status is not None and status >= 400):
                continue  # failed or rejected requests: no prediction, not in the summary
            args, kwargs, result = r[ARGS], r[KWARGS], r[RESULT]
            pred_rows = None
            if result is not None and (want_rows and args is not None or self.feedback):
                try:
                    pred_rows = extractor.predictions(result)
                except Exception as exc:
                    self._failed("extract a prediction", exc)
            if want_rows and args is not None:
                try:
                    feat_rows = extractor.features(args, kwargs or {})
                except Exception as exc:
                    self._failed("extract features", exc)
                    feat_rows = []
                _join(rows, feat_rows, pred_rows or [])
            if self.feedback and pred_rows and len(predictions) < self.max_predictions:
                rid = getattr(r[CTX], "request_id", None)
                if rid:
                    pred, score = prediction_and_score(pred_rows[0])
                    predictions.append((rid, pred, score))
        summary = None
        if want_rows and rows:
            try:
                summary = self.profile.summarize(_columns(rows)).to_bytes()
                self.rows_summarized += len(rows)
            except Exception as exc:
                self._failed("summarize features", exc)
        self.seq += 1
        return ReplicaBatch(
            app=lab.app,
            deployment=lab.deployment,
            model=lab.model,
            version=lab.version,
            replica_id=lab.replica_id,
            node_id=lab.node_id,
            start_ts=start_ts,
            end_ts=end_ts,
            requests=n,
            errors=errors,
            statuses=statuses,
            latency=sketch.to_dict(),
            summary=summary,
            predictions=predictions,
            resources=dict(resources) if resources else {},
            seq=self.seq,
            routes=routes,
            methods=methods,
        )


def _status_of(result: Any, ctx: Any) -> Optional[int]:
    """HTTP status of a plain (non-ASGI) HTTP handler's result; None for handle calls."""
    code = getattr(result, "status_code", None)
    if isinstance(code, int) and type(result).__module__.startswith(("starlette.", "fastapi.")):
        return code
    if ctx is not None and getattr(ctx, "is_http_request", False):
        return 200
    return None


def _columns(rows: List[Dict[str, Any]]) -> Dict[str, np.ndarray]:
    """Rows to typed column arrays (numeric columns become float/int arrays: cheaper to
    summarize than the object arrays a list of row dicts turns into). A key missing from a
    row is ``None`` there; a column mixing types stays an object array."""
    if not rows:
        return {}
    first = rows[0].keys()
    if all(r.keys() == first for r in rows):
        # the usual case, every row with the same keys: transpose at C speed
        names: Any = list(first)
        if len(names) == 1:
            columns: Any = [[r[names[0]] for r in rows]]
        else:
            columns = zip(*map(itemgetter(*names), rows))
    else:
        names = {}
        for r in rows:
            for k in r:
                names.setdefault(k, None)
        names = list(names)
        columns = ([r.get(name) for r in rows] for name in names)
    cols: Dict[str, np.ndarray] = {}
    for name, vals in zip(names, columns):
        vals = list(vals)
        arr = None
        try:
            arr = np.asarray(vals)
        except (ValueError, TypeError):
            pass
        if arr is None or arr.ndim != 1 or arr.dtype.kind not in "biufU" or (
            arr.dtype.kind == "U" and any(type(v) is not str for v in vals)
        ):
            arr = np.empty(len(vals), dtype=object)
            arr[:] = vals
        cols[name] = arr
    return cols


def _join(out: List[Dict[str, Any]], feats: List[Dict[str, Any]], preds: List[Dict[str, Any]]) -> None:
    """Pair feature rows with prediction rows (same count, or one prediction for all)."""
    if not preds:
        out.extend(feats)
    elif not feats:
        out.extend(preds)
    elif len(feats) == len(preds):
        for f, p in zip(feats, preds):
            row = dict(f)
            row.update(p)
            out.append(row)
    elif len(preds) == 1:
        for f in feats:
            row = dict(f)
            row.update(preds[0])
            out.append(row)
    else:
        out.extend(feats)
        out.extend(preds)
