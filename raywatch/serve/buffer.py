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

A bad value costs only itself. A value the summary cannot take (an integer no float holds,
text in a numerical column) is counted as wrong type for its own column, and the batch
names the types seen (``ReplicaBatch.wrong_types``); should summarizing still fail, the
columns that fail alone are found, and their values that fail alone become wrong type,
so the rest of the flush is kept.

Payloads are bounded. A row of more than ``capture.max_keys_per_row`` keys is not walked:
it is a counted drop (``"too_many_keys"``). The payloads a flush holds are measured off the
request path (:func:`estimate_bytes` on up to 8 of them, a bounded walk) against
``shipping.max_buffer_bytes``; those beyond the budget are counted drops
(``"byte_budget"``), and :meth:`BatchBuilder.payload_bound` tells the request path how
many records may wait with their payload (see :class:`~raywatch.serve.capture.Capture`).

The profile columns that a ``capture.redact`` rule removes are named in every batch
(``ReplicaBatch.redacted``), computed once per configuration and profile, and a warning is
logged once per column and rule.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from itertools import islice
from operator import itemgetter
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from raywatch.serve.capture import ARGS, KWARGS, RESULT, T0, T1, RateLimitedLog, Record
from raywatch.serve.extract import _STR, Extractor, HttpPayload, TooManyKeys, _is_starlette_request, prediction_and_score
from raywatch.stats.batch import ReplicaBatch
from raywatch.stats.columns import wrong_type_names
from raywatch.stats.sketch import LatencySketch
from raywatch.stats.summary import INT_FIELDS

__all__ = ["BatchBuilder", "Labels", "estimate_bytes", "BYTE_BUDGET", "TOO_MANY_KEYS"]

logger = logging.getLogger("raywatch.serve.buffer")

_MAX_ROUTES = 100
_WRONG_TYPE = INT_FIELDS.index("wrong_type")

BYTE_BUDGET = "byte_budget"
"""Why a payload was dropped: over ``shipping.max_buffer_bytes``."""
TOO_MANY_KEYS = "too_many_keys"
"""Why a payload was dropped: a row over ``capture.max_keys_per_row``."""

_MEASURED = 8  # payloads measured a flush (a bounded walk each)
_FIRST_PAYLOAD_BYTES = 1 << 20  # assumed per payload until one is measured
_MAX_PROBED = 4096  # values probed one by one in a column that fails to summarize


class Labels:
    """Who a replica is: app, deployment, model, version, replica id, node id, and the
    deployment generation (Serve's code version of the deployment) it belongs to."""

    __slots__ = ("app", "deployment", "model", "version", "replica_id", "node_id", "generation")

    def __init__(self, app: str, deployment: str, replica_id: str, model: Optional[str] = None,
                 version: Optional[str] = None, node_id: Optional[str] = None, generation: Optional[str] = None):
        self.app = app
        self.deployment = deployment
        self.replica_id = replica_id
        self.model = model or deployment
        self.version = version
        self.node_id = node_id
        self.generation = generation

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
                 feedback: bool = False, max_predictions: int = 10_000, alpha: float = 0.01,
                 max_buffer_bytes: int = 64 << 20):
        self.labels = labels
        self._extractor = extractor
        self._profile = profile
        self.feedback = feedback
        self.max_predictions = max_predictions
        self.alpha = alpha
        self.max_buffer_bytes = int(max_buffer_bytes)
        self.seq = 0
        self.capture_errors = 0
        self.rows_summarized = 0
        self.payloads_dropped: Dict[str, int] = {}
        self.payload_bytes = float(_FIRST_PAYLOAD_BYTES)  # per payload, measured off the request path
        self._measured = False
        self._redacted: Optional[Dict[str, str]] = None
        self._warned: set = set()
        self._log = RateLimitedLog(logger)
        self.segments: Any = None  # a raywatch.serve.segments.SegmentBuilder (issue 12), set by the replica
        # one offset turns perf_counter readings into UTC epoch seconds
        self._epoch_offset = time.time() - time.perf_counter()

    # what the redaction mapping is computed from: changing either computes it again
    @property
    def profile(self) -> Any:
        return self._profile

    @profile.setter
    def profile(self, value: Any) -> None:
        self._profile = value
        self._redacted = None

    @property
    def extractor(self) -> Extractor:
        return self._extractor

    @extractor.setter
    def extractor(self, value: Extractor) -> None:
        self._extractor = value
        self._redacted = None

    def _failed(self, what: str, exc: BaseException) -> None:
        self.capture_errors += 1
        self._log.warning("raywatch could not %s (%s: %s); skipped", what, type(exc).__name__, exc)

    def _dropped(self, reason: str) -> None:
        self.payloads_dropped[reason] = self.payloads_dropped.get(reason, 0) + 1

    # ------------------------------------------------------------------ budgets

    def payload_bound(self, sample_rate: float, buffer_size: int) -> int:
        """How many records may wait in the capture buffer with their payload: the byte
        budget over the measured bytes per payload (over the sampled share of records)."""
        payloads = max(1, int(self.max_buffer_bytes // max(self.payload_bytes, 1.0)))
        rate = min(max(float(sample_rate), 1e-6), 1.0)
        return int(max(1, min(buffer_size, payloads / rate)))

    def _admitted(self, records: Sequence[Record]) -> Optional[int]:
        """Measure the payloads of ``records`` (at most :data:`_MEASURED`, evenly spaced) and
        return how many of them fit the byte budget, or None when all of them do."""
        held = len(records) - list(map(itemgetter(ARGS), records)).count(None)
        if not held:
            return None
        step = max(1, len(records) // (4 * _MEASURED))
        picked = [r for r in records[::step] if r[ARGS] is not None][:_MEASURED]
        if not picked:
            picked = [r for r in records if r[ARGS] is not None][:_MEASURED]
        mean = sum(estimate_bytes((r[ARGS], r[KWARGS], r[RESULT])) for r in picked) / len(picked)
        if not self._measured or mean > self.payload_bytes:
            self.payload_bytes = mean  # up at once (a burst of large payloads)...
        else:
            self.payload_bytes = (self.payload_bytes + 3 * mean) / 4  # ...down by quarters
        self._measured = True
        if mean * held <= self.max_buffer_bytes:
            return None
        return int(self.max_buffer_bytes // max(mean, 1.0))

    def redacted(self) -> Dict[str, str]:
        """Profile column → the redaction rule that removes it (computed once per
        extractor and profile; warns once per column and rule)."""
        if self._redacted is None:
            out: Dict[str, str] = {}
            ex, prof = self._extractor, self._profile
            if prof is not None and ex.redact:
                for name in prof.columns:
                    rule = ex.redaction_rule(name)
                    if rule is not None:
                        out[name] = rule
            for name, rule in out.items():
                if (name, rule) not in self._warned and len(self._warned) < 1000:
                    self._warned.add((name, rule))
                    logger.warning(
                        "raywatch: the redaction rule %r removes the profile column %r before it is summarized, "
                        "so it reads as missing; narrow the rule (capture.redact) or leave the column out of the profile",
                        rule, name,
                    )
            self._redacted = out
        return self._redacted

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
        extractor = self._extractor
        want_rows = self._profile is not None
        # the columnar path: a flat dict in and a dict or a number out, with no custom
        # extraction, become columns straight from the payloads (no row dicts, no joins)
        plain = want_rows and extractor.plain
        max_keys = extractor.max_keys
        admitted = self._admitted(records) if n else None
        held = 0
        seg = self.segments if self.segments is not None and self.segments.active(records, self._profile) else None
        owners: List[int] = []  # with segments: the record of each row (rows of the row path, then flat ones)
        flat_owners: List[int] = []
        pred_owners: List[int] = []
        flat: List[Record] = []
        routes: Dict[str, int] = {}
        methods: Dict[str, int] = {}
        for i, r in enumerate(records):
            method, _, _, outcome, status, ctx, args, kwargs, result, route = r
            if args is not None and admitted is not None:
                held += 1
                if held > admitted:  # over the byte budget: the request counts, its payload not
                    args = kwargs = None
                    if want_rows:
                        self._dropped(BYTE_BUDGET)
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
                if (plain and len(args) == 1 and type(args[0]) is dict and not kwargs and len(args[0]) <= max_keys
                        and ((type(result) is dict and len(result) <= max_keys) or type(result) in _NUMBERS)):
                    flat.append(r)
                    if seg is not None:
                        flat_owners.append(i)
                else:
                    before = len(rows)
                    pred_rows = self._rows(rows, args, kwargs, result)
                    if seg is not None:
                        owners.extend([i] * (len(rows) - before))
            if self.feedback and result is not None and len(predictions) < self.max_predictions:
                rid = getattr(ctx, "request_id", None)
                if rid:
                    if pred_rows is None:
                        pred_rows = self._predictions(result)
                    if pred_rows:
                        pred, score = prediction_and_score(pred_rows[0])
                        predictions.append((rid, pred, score))
                        if seg is not None:
                            pred_owners.append(i)
        columns = None
        if flat:
            columns = None if rows else _flat_columns(flat)
            if columns is None:  # mixed with other payloads, or not flat after all
                for i, r in zip(flat_owners or [-1] * len(flat), flat):
                    before = len(rows)
                    self._rows(rows, r[ARGS], r[KWARGS], r[RESULT])
                    owners.extend([i] * (len(rows) - before))
            else:
                owners = flat_owners
        summary = None
        wrong_types: Dict[str, List[str]] = {}
        if columns is not None or rows:
            try:
                cols = columns if columns is not None else _columns(rows)
                ws = self._summarize(cols) if seg is None else seg.summarize(self._profile, cols, owners, records,
                                                                              self._summarize)
                wrong_types = self._wrong_types(ws, cols)
                summary = ws.to_bytes()
                self.rows_summarized += len(flat) if columns is not None else len(rows)
            except Exception as exc:
                self._failed("summarize features", exc)
        extra = seg.fields(records, t1s - t0s, predictions, pred_owners) if seg is not None and n else {}
        self.seq += 1
        return ReplicaBatch(
            app=lab.app,
            deployment=lab.deployment,
            model=lab.model,
            version=lab.version,
            replica_id=lab.replica_id,
            node_id=lab.node_id,
            generation=lab.generation,
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
            wrong_types=wrong_types,
            redacted=dict(self.redacted()) if want_rows else {},
            **extra,
        )

    def _predictions(self, result: Any) -> List[Dict[str, Any]]:
        try:
            return self._extractor.predictions(result)
        except TooManyKeys:
            self._dropped(TOO_MANY_KEYS)
            return []
        except Exception as exc:
            self._failed("extract a prediction", exc)
            return []

    def _rows(self, out: List[Dict[str, Any]], args: Any, kwargs: Any, result: Any) -> List[Dict[str, Any]]:
        """Append one request's joined feature and prediction rows to ``out``; returns its
        prediction rows (for feedback). A payload over the keys cap adds no row."""
        try:
            pred_rows = self._extractor.predictions(result) if result is not None else []
        except TooManyKeys:
            self._dropped(TOO_MANY_KEYS)
            return []
        except Exception as exc:
            self._failed("extract a prediction", exc)
            pred_rows = []
        try:
            feat_rows = self._extractor.features(args, kwargs or {})
        except TooManyKeys:
            self._dropped(TOO_MANY_KEYS)
            return pred_rows
        except Exception as exc:
            self._failed("extract features", exc)
            feat_rows = []
        _join(out, feat_rows, pred_rows)
        return pred_rows

    # ------------------------------------------------------------------ summaries

    def _summarize(self, cols: Dict[str, np.ndarray]) -> Any:
        """The window summary of ``cols``. Should it fail, the columns that fail alone are
        found, and in them the values that fail alone become wrong type (a value of a type
        no column takes), so that one bad value costs only itself."""
        profile = self._profile
        try:
            return profile.summarize(cols)
        except Exception as exc:
            first = exc
        bad = [name for name in cols if not _summarizes(profile, name, cols[name])]
        if not bad:
            raise first
        for name in bad:
            arr = cols[name]
            fixed = np.empty(arr.shape[0], dtype=object)
            probe = arr.shape[0] <= _MAX_PROBED
            for j, v in enumerate(arr.tolist() if arr.dtype != object else arr):
                fixed[j] = v if probe and _summarizes(profile, name, _one(v)) else _Unsummarizable(v)
            cols[name] = fixed
            self._log.warning("raywatch: values of column %r could not be summarized (%s: %s); counted as wrong type",
                              name, type(first).__name__, first)
        return profile.summarize(cols)

    def _wrong_types(self, ws: Any, cols: Dict[str, np.ndarray]) -> Dict[str, List[str]]:
        """Column → type names of its wrong-type values, for the columns that have some."""
        out: Dict[str, List[str]] = {}
        specs = self._profile.specs
        for i in np.flatnonzero(ws.ints[:, _WRONG_TYPE] > 0).tolist():
            name = ws.names[i]
            arr = cols.get(name)
            if arr is None:
                continue
            try:
                names = wrong_type_names(arr, specs[name])
            except Exception:  # noqa: BLE001 - a diagnosis, never a failure of the batch
                names = []
            if names:
                out[name] = names
        return out


class _Unsummarizable:
    """Stands for a value no summary could take: wrong type for every column kind."""

    __slots__ = ("observed_type",)  # the value's own type name, for wrong_type_names

    def __init__(self, value: Any):
        self.observed_type = type(value).__name__


def _one(value: Any) -> np.ndarray:
    arr = np.empty(1, dtype=object)
    arr[0] = value
    return arr


def _summarizes(profile: Any, name: str, arr: np.ndarray) -> bool:
    try:
        profile.summarize({name: arr})
        return True
    except Exception:  # noqa: BLE001
        return False


# ------------------------------------------------------------------ sizes

_ATOMS = frozenset((str, bytes, bytearray, int, float, bool, complex, type(None)))
_PLAIN_CONTAINERS = frozenset((dict, list, tuple, set, frozenset))
_CONTAINERS = (dict, list, tuple, set, frozenset, Mapping)
_sizeof = sys.getsizeof
_ITEMS = 8  # items looked at per container; the rest are extrapolated
_DEPTH = 24
_UNKNOWN = 64  # bytes assumed for an item not looked at


def estimate_bytes(obj: Any, nodes: int = 256) -> int:
    """A bounded estimate of the memory ``obj`` holds: exact for strings, bytes, numpy
    arrays and HTTP bodies; for containers, :data:`_ITEMS` items of each are measured and
    the rest extrapolated, at most ``nodes`` objects and 24 levels looked at in all. Cycles,
    deep nesting and odd objects cost no more than that; it never raises.

    >>> estimate_bytes("x" * 1000) >= 1000, estimate_bytes([[0.5] * 1000]) > 8000
    (True, True)
    """
    try:
        return int(_estimate(obj, 0, [nodes]))
    except Exception:  # noqa: BLE001
        return _UNKNOWN


def _estimate(o: Any, depth: int, left: List[int]) -> float:
    left[0] -= 1
    t = type(o)
    if t in _ATOMS:
        return _sizeof(o)
    if t in _PLAIN_CONTAINERS or (isinstance(o, _CONTAINERS) and not _is_starlette_request(o)):
        n = len(o)
        size = _sizeof(o) if t in _PLAIN_CONTAINERS else 64 + 16 * n
        if n == 0:
            return size
        if depth >= _DEPTH or left[0] <= 0:
            return size + n * _UNKNOWN
        looked, sub = 0, 0.0
        depth += 1
        if isinstance(o, Mapping):
            for k, v in islice(o.items(), _ITEMS):
                sub += (_sizeof(k) if type(k) in _ATOMS else _estimate(k, depth, left)) \
                    + (_sizeof(v) if type(v) in _ATOMS else _estimate(v, depth, left))
                looked += 1
                if left[0] <= 0:
                    break
        else:
            for v in islice(o, _ITEMS):
                sub += _sizeof(v) if type(v) in _ATOMS else _estimate(v, depth, left)
                looked += 1
                if left[0] <= 0:
                    break
        left[0] -= looked
        return size + (sub * n / looked if looked else n * _UNKNOWN)
    if isinstance(o, np.ndarray):
        return 112 + o.nbytes + (o.size * _UNKNOWN if o.dtype.kind == "O" else 0)
    if isinstance(o, (str, bytes, bytearray)):
        return _sizeof(o)
    if isinstance(o, memoryview):
        return 184 + o.nbytes
    if isinstance(o, np.generic):
        return 32 + o.nbytes
    if t is HttpPayload:
        return 64 + len(o.query or b"") + len(o.body or b"") + 64 * len(o.headers or ())
    if _is_starlette_request(o):  # what the user's code read of the body is held with it
        body = getattr(o, "_body", None)
        parsed = getattr(o, "_json", None)
        return (512 + (len(body) if isinstance(body, (bytes, bytearray)) else 0)
                + (_estimate(parsed, depth + 1, left) if parsed is not None else 0))
    usage = getattr(o, "memory_usage", None)
    if callable(usage) and hasattr(o, "columns"):  # a pandas DataFrame: shallow, not deep (O(columns))
        return float(usage(index=True, deep=False).sum())
    return sys.getsizeof(o, _UNKNOWN)


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
