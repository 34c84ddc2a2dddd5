"""Off the request path: records become one :class:`~raywatch.stats.batch.ReplicaBatch`.

:class:`BatchBuilder` takes the records :class:`~raywatch.serve.capture.Capture` collected
since the last flush and builds the batch the replica ships: request and error counters,
HTTP status counts, a latency sketch (one vectorised ``add_many``), the window summary of
the sampled requests' features and predictions (``profile.summarize(rows)``, when the
replica has a reference profile) and, when feedback is on, ``(request_id, prediction,
score)`` triples for ground-truth joins. A failure extracting one record is counted in
``capture_errors`` and the rest of the batch goes on.

Most requests carry one flat dict and return a dict or a number. With no custom extraction
configured, those become typed columns straight from the payloads (:func:`_flat_columns`:
one transpose per batch, no row dict per request); anything else, or a batch that mixes
them with other payloads, takes the row path (extract, join, transpose), which gives the
same columns.
"""

from __future__ import annotations

import logging
import time
from operator import itemgetter
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from raywatch.serve.capture import ARGS, KWARGS, RESULT, T0, T1, RateLimitedLog, Record
from raywatch.serve.extract import _STR, Extractor, prediction_and_score
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
        # the columnar path: a flat dict in and a dict or a number out, with no custom
        # extraction, become columns straight from the payloads (no row dicts, no joins)
        plain = want_rows and extractor.plain
        flat: List[Record] = []
        routes: Dict[str, int] = {}
        methods: Dict[str, int] = {}
        for r in records:
            method, _, _, outcome, status, ctx, args, kwargs, result, route = r
            methods[method] = methods.get(method, 0) + 1
            if not route:
                route = getattr(ctx, "route", None)
            if route:
                if route not in routes and len(routes) >= _MAX_ROUTES:
                    route = "other"
                routes[route] = routes.get(route, 0) + 1
            if status is None and result is not None:
                status = _status_of(result, ctx)
            if status is not None:
                key = str(status)
                statuses[key] = statuses.get(key, 0) + 1
            if outcome is not None:
                errors[outcome] = errors.get(outcome, 0) + 1
            elif status is not None and status >= 500:
                errors["http_5xx"] = errors.get("http_5xx", 0) + 1
            if outcome is not None or (status is not None and status >= 400):
                continue  # failed or rejected requests: no prediction, not in the summary
            pred_rows: Optional[List[Dict[str, Any]]] = None
            if args is not None and want_rows:
                if (plain and len(args) == 1 and type(args[0]) is dict and not kwargs
                        and (type(result) is dict or type(result) in _NUMBERS)):
                    flat.append(r)
                else:
                    pred_rows = self._rows(rows, args, kwargs, result)
            if self.feedback and result is not None and len(predictions) < self.max_predictions:
                rid = getattr(ctx, "request_id", None)
                if rid:
                    if pred_rows is None:
                        pred_rows = self._predictions(result)
                    if pred_rows:
                        pred, score = prediction_and_score(pred_rows[0])
                        predictions.append((rid, pred, score))
        columns = None
        if flat:
            columns = None if rows else _flat_columns(flat)
            if columns is None:  # mixed with other payloads, or not flat after all
                for r in flat:
                    self._rows(rows, r[ARGS], r[KWARGS], r[RESULT])
        summary = None
        if columns is not None or rows:
            try:
                summary = self.profile.summarize(columns if columns is not None else _columns(rows)).to_bytes()
                self.rows_summarized += len(flat) if columns is not None else len(rows)
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

    def _predictions(self, result: Any) -> List[Dict[str, Any]]:
        try:
            return self.extractor.predictions(result)
        except Exception as exc:
            self._failed("extract a prediction", exc)
            return []

    def _rows(self, out: List[Dict[str, Any]], args: Any, kwargs: Any, result: Any) -> List[Dict[str, Any]]:
        """Append one request's joined feature and prediction rows to ``out``; returns its
        prediction rows (for feedback)."""
        pred_rows = self._predictions(result) if result is not None else []
        try:
            feat_rows = self.extractor.features(args, kwargs or {})
        except Exception as exc:
            self._failed("extract features", exc)
            feat_rows = []
        _join(out, feat_rows, pred_rows)
        return pred_rows


_PLAIN_RESULTS = frozenset((dict, list, tuple, str, bytes, int, float, bool))


def _status_of(result: Any, ctx: Any) -> Optional[int]:
    """HTTP status of a plain (non-ASGI) HTTP handler's result; None for handle calls."""
    t = type(result)
    if t not in _PLAIN_RESULTS and t.__module__.startswith(("starlette.", "fastapi.")):
        code = getattr(result, "status_code", None)
        if isinstance(code, int):
            return code
    if ctx is not None and getattr(ctx, "is_http_request", False):
        return 200
    return None


_NUMBERS = frozenset((float, int, bool))


def _same_key_columns(dicts: List[Any]) -> Optional[Dict[str, Any]]:
    """Column name → values of a list of dicts that all have the same string keys; None
    when they do not (or are not all dicts)."""
    first = dicts[0]
    if not first or len(set(map(type, dicts))) != 1 or type(first) is not dict:
        return None
    if len(set(map(len, dicts))) != 1 or not _STR.issuperset(map(type, first)):
        return None
    names = list(first)
    try:
        if len(names) == 1:
            values: Any = [[d[names[0]] for d in dicts]]
        else:
            values = zip(*map(itemgetter(*names), dicts))  # same size and no KeyError: same keys
    except KeyError:
        return None
    return dict(zip(names, values))


def _plain_array(values: Sequence[Any]) -> Optional[np.ndarray]:
    """``values`` as a 1-D bool, numeric or str array; None when any of them is something
    else (None, a nested dict or list, bytes, an object), which the row path extracts."""
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError, OverflowError):
        return None
    kind = arr.dtype.kind
    if arr.ndim != 1 or kind not in "biufU" or (kind == "U" and not _STR.issuperset(map(type, values))):
        return None
    if kind == "f" and arr.dtype != np.float64:
        arr = arr.astype(np.float64)  # as the row path has it (numpy scalars become floats)
    return arr


def _flat_columns(records: List[Record]) -> Optional[Dict[str, np.ndarray]]:
    """Typed columns for records whose payload is one flat dict and whose result is a flat
    dict or a number: the columns the row path (``extractor.features`` / ``predictions``,
    ``_join``, ``_columns``) gives these records, built without a row dict per request.
    None when the payloads or results differ in keys or hold anything but plain scalars."""
    feats = _same_key_columns([r[ARGS][0] for r in records])
    if feats is None:
        return None
    results = [r[RESULT] for r in records]
    if type(results[0]) is dict:
        preds = _same_key_columns(results)
        if preds is None:
            return None
    elif _NUMBERS.issuperset(map(type, results)):
        preds = {"prediction": results}
    else:
        return None
    cols: Dict[str, np.ndarray] = {}
    for name, values in {**feats, **preds}.items():  # a prediction key wins, as in _join
        arr = _plain_array(values)
        if arr is None:
            return None
        cols[name] = arr
    return cols


def _columns(rows: List[Dict[str, Any]]) -> Dict[str, np.ndarray]:
    """Rows to typed column arrays (numeric columns become float/int arrays: cheaper to
    summarize than the object arrays a list of row dicts turns into). A key missing from a
    row is ``None`` there; a column mixing types stays an object array."""
    if not rows:
        return {}
    # the usual case, every row with the same keys, transposes at C speed
    columns = _same_key_columns(rows)
    if columns is None:
        names = dict.fromkeys(k for r in rows for k in r)
        columns = {name: [r.get(name) for r in rows] for name in names}
    cols: Dict[str, np.ndarray] = {}
    for name, vals in columns.items():
        arr = _plain_array(vals)
        if arr is None:
            arr = np.empty(len(vals), dtype=object)
            arr[:] = list(vals)
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
