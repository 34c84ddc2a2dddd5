"""Off the request path: a flush's segments, fairness groups and attribution table.

:class:`SegmentBuilder` is what :class:`~raywatch.serve.buffer.BatchBuilder` calls once per
flush, on the flusher thread, when the configuration names segment columns or fairness
attributes, when the profile carries attribution reference tables, or when the deployment
serves multiplexed models. Nothing here runs on the request path: every value is read from
the records the request path already kept (Serve's request context, the route, the sampled
request's arguments and result).

Where a request's value of a column comes from (``segments.columns.<name>.source``):

===========  =====================================================================  ==============
source       value                                                                   requests
===========  =====================================================================  ==============
route        the route template (FastAPI's) or Serve's route prefix                  every one
version      the model version of this replica                                       every one
replica      this replica's id                                                       every one
model_id     ``serve.get_multiplexed_model_id()`` (Serve's request context)           every one
header       an HTTP request header (``field``)                                      sampled ones
attribute    ``segments.attributes(args, kwargs, result)[field]``                     sampled ones
feature      a captured feature column (``field``, default the name); per request    sampled ones
             its first row's value
===========  =====================================================================  ==============

With ``segments.multiplexed_model_id`` (default), the model id becomes the ``model_id``
column as soon as one request carries one, without configuration.

Per flush it builds, for the batch (:class:`~raywatch.stats.batch.ReplicaBatch`'s optional
fields): the :class:`~raywatch.stats.segments.Segments` of window summaries of the rows
(``summarize_segments``: one pass, and the model's summary of every row as its ``whole``,
which the batch ships as its ``summary``); per column the :class:`~raywatch.stats.
segment_traffic.SegmentTraffic` of the requests whose value is known; per protected
attribute the :class:`~raywatch.drift.fairness.GroupRates` of the predictions; the
attribution table of each prediction the profile has a reference table for; and, on each
prediction shipped for a ground-truth join, the labels of its segments and groups, so that a
label arriving later is counted where its request was.

Which labels are kept: the configured ``values`` first, then the labels this replica kept in
its previous flush (so the set stays stable), then the most frequent; hashed columns keep
only their configured values first (a label cannot be hashed twice).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from raywatch.config import MonitorConfig
from raywatch.config.segments import MODEL_ID_COLUMN
from raywatch.drift.attribution_tables import reference_tables, window_table
from raywatch.drift.fairness import GroupRates
from raywatch.serve.buffer import Labels, _status_of
from raywatch.serve.capture import ARGS, CTX, KWARGS, OUTCOME, RESULT, ROUTE, STATUS, RateLimitedLog, Record
from raywatch.serve.compat import multiplexed_model_id
from raywatch.serve.extract import Extractor, HttpPayload, _is_starlette_request, resolve_callable
from raywatch.stats.grouped import summarize_segments
from raywatch.stats.labels import segment_label
from raywatch.stats.segment_traffic import SegmentTraffic
from raywatch.stats.segments import Segments

__all__ = ["SegmentBuilder", "header_value"]

logger = logging.getLogger("raywatch.serve.segments")

_UNKNOWN = object()  # a request whose value this column cannot know (not sampled)
_REQUEST_SOURCES = ("route", "version", "replica", "model_id")


def header_value(args: Any, name: str) -> Any:
    """The value of header ``name`` in a sampled request's arguments: a starlette
    ``Request`` (plain HTTP handlers) or the ASGI tee's payload (``@serve.ingress``); None
    when the request has no such header or is not an HTTP request.

    >>> header_value((HttpPayload(b"", None, [(b"x-country", b"fr")]),), "X-Country")
    'fr'
    """
    if not args:
        return None
    a = args[0]
    if type(a) is HttpPayload:
        want = name.lower().encode("latin-1")
        for k, v in a.headers or ():
            if k.lower() == want:
                return v.decode("latin-1")
        return None
    if _is_starlette_request(a):
        return a.headers.get(name)
    return None


class _Column:
    """One segment column or fairness attribute: where its values come from."""

    __slots__ = ("name", "source", "field", "hash", "prefer")

    def __init__(self, name: str, source: str, field: Optional[str], hash_: bool, prefer: Sequence[str] = ()):
        self.name = name
        self.source = source
        self.field = field or name
        self.hash = hash_
        self.prefer = list(prefer)


class SegmentBuilder:
    """Segments, fairness groups and attribution of a flush (see the module docstring).
    Not thread-safe: the flusher thread owns it."""

    def __init__(self, config: MonitorConfig, labels: Labels, extractor: Extractor,
                 fail: Optional[Callable[[str, BaseException], None]] = None):
        self.labels = labels
        self.multiplexed_seen = False
        self._kept: Dict[str, List[str]] = {}
        self._fail = fail or _log_failure
        self._state: Dict[str, Any] = {}
        self.configure(config, extractor)

    def configure(self, config: MonitorConfig, extractor: Extractor) -> None:
        """Apply a (new) configuration; raises, changing nothing, when the attribute hook
        cannot be imported."""
        seg, fair = config.segments, config.fairness
        hook = resolve_callable(seg.attributes)
        self.config = config
        self.extractor = extractor
        self.hook = hook
        self.k = seg.top_k
        self.max_label_length = seg.max_label_length
        self.key: Optional[bytes] = (seg.hash_key.get_secret_value().encode("utf-8")
                                     if seg.hash_key is not None else None)
        self.columns = [_Column(n, c.source, c.field, c.hash, c.values) for n, c in seg.columns.items()]
        self.auto_model_id = seg.multiplexed_model_id and not any(
            c.source == "model_id" or c.name == MODEL_ID_COLUMN for c in self.columns)
        self.attributes = [_Column(n, a.source, a.field, a.hash) for n, a in fair.attributes.items()]
        self.fair = fair
        self.attribution = config.attribution

    # ------------------------------------------------------------------ what to do

    def active(self, records: Sequence[Record], profile: Any) -> bool:
        """Whether this flush has anything to segment (cheap: up to 16 records' request contexts
        are looked at for a multiplexed model id, until one has been seen)."""
        if self.columns or self.attributes or self._tables(profile):
            return True
        if not self.auto_model_id:
            return False
        if not self.multiplexed_seen:  # 16 records looked at: a multiplexed deployment's requests all carry an id
            self.multiplexed_seen = any(multiplexed_model_id(r[CTX]) for r in records[::max(1, len(records) // 16)])
        return self.multiplexed_seen

    def _tables(self, profile: Any) -> List[str]:
        if profile is None or not self.attribution.enabled:
            return []
        tables = reference_tables(profile)
        wanted = self.attribution.predictions
        return [p for p in tables if not wanted or p in wanted]

    def _segment_columns(self) -> List[_Column]:
        if self.auto_model_id and self.multiplexed_seen:
            return [*self.columns, _Column(MODEL_ID_COLUMN, "model_id", None, False)]
        return list(self.columns)

    def _keys(self, cols: Sequence[_Column]) -> Dict[str, bytes]:
        return {c.name: self.key for c in cols if c.hash and self.key is not None}

    def _prefer(self, cols: Sequence[_Column]) -> Dict[str, List[str]]:
        out = {}
        for c in cols:
            kept = [] if c.hash else self._kept.get(c.name, [])
            out[c.name] = list(dict.fromkeys([*c.prefer, *kept]))
        return out

    def label(self, value: Any, hashed: bool) -> str:
        """The label a value becomes (as :meth:`Segments.build` makes it)."""
        return segment_label(value, self.max_label_length, self.key if hashed else None)

    # ------------------------------------------------------------------ values

    def _request_values(self, records: Sequence[Record], col: _Column, hook_out: List[Any]) -> List[Any]:
        """One value per request (``_UNKNOWN`` where it cannot be known)."""
        src = col.source
        if src == "route":
            return [r[ROUTE] or getattr(r[CTX], "route", None) or None for r in records]
        if src == "version":
            return [self.labels.version] * len(records)
        if src == "replica":
            return [self.labels.replica_id] * len(records)
        if src == "model_id":
            return [multiplexed_model_id(r[CTX]) or None for r in records]
        if src == "header":
            return [_UNKNOWN if r[ARGS] is None else header_value(r[ARGS], col.field) for r in records]
        if src == "attribute":
            return [_UNKNOWN if h is _UNKNOWN else (h.get(col.field) if isinstance(h, dict) else None) for h in hook_out]
        raise ValueError(f"not a request source: {src}")

    def _hook(self, records: Sequence[Record]) -> List[Any]:
        if self.hook is None or not any(c.source == "attribute" for c in (*self.columns, *self.attributes)):
            return [_UNKNOWN] * len(records)
        out: List[Any] = []
        for r in records:
            if r[ARGS] is None:
                out.append(_UNKNOWN)
                continue
            try:
                out.append(self.hook(r[ARGS], r[KWARGS] or {}, r[RESULT]))
            except Exception as exc:  # a failing hook costs only this request's attribute values
                self._fail("call the segments.attributes hook", exc)
                out.append(None)
        return out

    def _first_feature(self, records: Sequence[Record], first_row: np.ndarray, column: Optional[np.ndarray],
                       field: str) -> List[Any]:
        """Per request, its first row's value of a feature column; a failed request (no row)
        with a payload has its features extracted here; unsampled requests are unknown."""
        out: List[Any] = []
        for i, r in enumerate(records):
            j = first_row[i]
            if j >= 0:
                out.append(None if column is None else column[j])
            elif r[ARGS] is None:
                out.append(_UNKNOWN)
            else:
                try:
                    rows = self.extractor.features(r[ARGS], r[KWARGS] or {})
                    out.append(rows[0].get(field) if rows else None)
                except Exception:  # noqa: BLE001 - an unreadable payload: no value
                    out.append(None)
        return out

    def _values(self, records: Sequence[Record], cols: Sequence[_Column], data: Optional[Dict[str, np.ndarray]],
                owners: np.ndarray, first_row: np.ndarray, hook_out: List[Any]) -> Dict[str, Tuple[List[Any], Any]]:
        """Per column: (value per request, value per row)."""
        out = {}
        for c in cols:
            if c.source == "feature":
                column = data.get(c.field) if data is not None else None
                per_request = self._first_feature(records, first_row, column, c.field)
                per_row = column if column is not None else np.full(owners.size, None, dtype=object)
            else:
                per_request = self._request_values(records, c, hook_out)
                arr = np.empty(len(per_request), dtype=object)
                arr[:] = per_request
                per_row = arr[owners] if owners.size else np.empty(0, dtype=object)
            out[c.name] = (per_request, per_row)
        return out

    # ------------------------------------------------------------------ the flush

    def summarize(self, profile: Any, data: Dict[str, np.ndarray], owners: Sequence[int], records: Sequence[Record],
                  fallback: Callable[[Dict[str, np.ndarray]], Any]) -> Any:
        """The summary of every row (what the batch ships as ``summary``), made in the same
        pass as the per-segment summaries; fairness groups and attribution tables too.
        ``owners`` gives each row's request (an index into ``records``); ``fallback`` is the
        builder's own robust summarize, used (and its repaired columns kept) should the
        segmented pass fail."""
        st = self._state
        owners_arr = np.asarray(owners, dtype=np.int64)
        first_row = np.full(len(records), -1, dtype=np.int64)
        if owners_arr.size:
            uniq, idx = np.unique(owners_arr[::-1], return_index=True)
            first_row[uniq] = owners_arr.size - 1 - idx
        hook_out = self._hook(records)
        seg_cols = self._segment_columns()
        values = self._values(records, seg_cols, data, owners_arr, first_row, hook_out)
        fair_values = self._values(records, self.attributes, data, owners_arr, first_row, hook_out)
        st.update(first_row=first_row, values=values, fair_values=fair_values, seg_cols=seg_cols,
                  score=data.get(self.fair.score) if self.fair.score else None)
        row_values = {name: v[1] for name, v in values.items()}
        ws = None
        if row_values:
            for attempt in (0, 1):
                try:
                    seg = summarize_segments(profile, data, row_values, k=self.k, prefer=self._prefer(seg_cols),
                                             keys=self._keys(seg_cols))
                    st["segments"] = seg
                    ws = seg.whole
                    break
                except Exception as exc:
                    if attempt:
                        self._failed("summarize segments", exc)
                        break
                    ws = fallback(data)  # repairs unsummarizable values in data, for the retry
        if ws is None:
            ws = fallback(data)
        self._fairness(data, owners_arr, fair_values)
        self._attribution(profile, data)
        return ws

    def _fairness(self, data: Dict[str, np.ndarray], owners: np.ndarray, fair_values: Dict[str, Any]) -> None:
        if not self.attributes:
            return
        pred = self._fair_predictions(data)
        if pred is None:
            return
        fav = self.fair.favourable
        st = self._state
        st["fair_pred"] = pred
        try:
            def rates(rows: np.ndarray) -> GroupRates:
                g = GroupRates(fav)
                g.add_predictions(pred[rows])
                return g

            st["fairness"] = Segments.build({a.name: fair_values[a.name][1] for a in self.attributes}, rates,
                                            k=self.fair.max_groups, keys=self._keys(self.attributes),
                                            max_label_length=self.max_label_length)
        except Exception as exc:
            self._failed("count fairness groups", exc)

    def _fair_predictions(self, data: Dict[str, np.ndarray]) -> Optional[np.ndarray]:
        """The favourable-outcome column of the rows: the prediction column, or a score column
        over ``fairness.threshold``; None when the rows lack it."""
        col = data.get(self.fair.prediction)
        if col is None:
            return None
        if self.fair.threshold is None:
            return col
        x = np.array([v if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan for v in col.tolist()],
                     dtype=np.float64)
        out = np.empty(x.size, dtype=object)
        out[:] = [None if v != v else int(v >= self.fair.threshold) for v in x.tolist()]
        return out

    def _attribution(self, profile: Any, data: Dict[str, np.ndarray]) -> None:
        tables = {}
        for pred in self._tables(profile):
            if pred not in data:
                continue
            try:
                t = window_table(profile, pred)
                t.update(data)
                tables[pred] = t.to_dict()
            except Exception as exc:
                self._failed(f"tabulate the prediction {pred} for attribution", exc)
        self._state["attribution"] = tables

    def fields(self, records: Sequence[Record], latencies: np.ndarray, predictions: List[tuple],
               pred_owner: Sequence[int]) -> Dict[str, Any]:
        """The batch's segment fields (``segments``, ``segment_traffic``, ``fairness``,
        ``attribution``); the labels of each prediction's request are appended to it."""
        st, self._state = self._state, {}
        seg_cols = st.get("seg_cols") or self._segment_columns()
        values = st.get("values")
        if values is None:  # a flush without rows: the request sources only
            values = self._values(records, seg_cols, None, np.empty(0, dtype=np.int64),
                                  np.full(len(records), -1, dtype=np.int64), self._hook(records))
        out: Dict[str, Any] = {}
        seg = st.get("segments")
        if seg is not None:
            seg.whole = None  # shipped as the batch's summary: not twice
            out["segments"] = seg.to_dict()
            for c in seg_cols:
                if c.name in seg.columns:
                    self._kept[c.name] = seg.labels(c.name)
        try:
            traffic = self._traffic(records, latencies, seg_cols, values)
            if traffic is not None:
                out["segment_traffic"] = traffic.to_dict()
        except Exception as exc:
            self._failed("count segment traffic", exc)
        if st.get("fairness") is not None:
            out["fairness"] = st["fairness"].to_dict()
        if st.get("attribution"):
            out["attribution"] = st["attribution"]
        try:
            self._tag(predictions, pred_owner, seg_cols, values, st)
        except Exception as exc:
            self._failed("label predictions with their segments", exc)
        return out

    def _traffic(self, records: Sequence[Record], latencies: np.ndarray, seg_cols: Sequence[_Column],
                 values: Dict[str, Any]) -> Optional[Segments]:
        if not records or not seg_cols:
            return None
        failed = np.fromiter((_failed(r) for r in records), dtype=bool, count=len(records))
        out: Optional[Segments] = None
        prefer, keys = self._prefer(seg_cols), self._keys(seg_cols)
        for c in seg_cols:
            per_request = values[c.name][0]
            known = np.fromiter((v is not _UNKNOWN for v in per_request), dtype=bool, count=len(per_request))
            if not known.any():
                continue
            lat, fail = latencies[known], failed[known]
            vals = [v for v, k in zip(per_request, known.tolist()) if k]
            part = Segments.build({c.name: vals}, lambda rows, lat=lat, fail=fail: SegmentTraffic.of(lat[rows], fail[rows]),
                                  k=self.k, prefer={c.name: prefer[c.name]}, keys=keys,
                                  max_label_length=self.max_label_length)
            out = part if out is None else out.merge(part)
        return out

    def _tag(self, predictions: List[tuple], pred_owner: Sequence[int], seg_cols: Sequence[_Column],
             values: Dict[str, Any], st: Dict[str, Any]) -> None:
        if not predictions:
            return
        fair_values = st.get("fair_values") or {}
        fair_pred, first_row = st.get("fair_pred"), st.get("first_row")
        score_col = st.get("score")
        cache: Dict[Tuple[str, bool, Any], str] = {}

        def label(name: str, value: Any, hashed: bool) -> str:
            try:
                key = (name, hashed, value)
                hit = cache.get(key)
                if hit is None:
                    hit = cache[key] = self.label(value, hashed)
                return hit
            except TypeError:  # an unhashable value
                return self.label(value, hashed)

        for j, i in enumerate(pred_owner):
            tags: Dict[str, Any] = {}
            s = {c.name: label(c.name, values[c.name][0][i], c.hash) for c in seg_cols
                 if values[c.name][0][i] is not _UNKNOWN}
            if s:
                tags["s"] = s
            if fair_pred is not None and first_row is not None and first_row[i] >= 0:
                row = int(first_row[i])
                f = {a.name: label(a.name, fair_values[a.name][0][i], a.hash) for a in self.attributes
                     if fair_values[a.name][0][i] is not _UNKNOWN}
                if f:
                    tags["f"] = f
                    tags["p"] = _plain(fair_pred[row])
                    if score_col is not None:
                        tags["q"] = _plain(score_col[row])
            if tags:
                predictions[j] = (*predictions[j][:3], tags)

    def _failed(self, what: str, exc: BaseException) -> None:
        self._fail(what, exc)


_LOG = RateLimitedLog(logger)


def _log_failure(what: str, exc: BaseException) -> None:
    _LOG.warning("raywatch could not %s (%s: %s); skipped", what, type(exc).__name__, exc)


def _failed(r: Record) -> bool:
    if r[OUTCOME] is not None:
        return True
    status = r[STATUS]
    if status is None and r[RESULT] is not None:
        status = _status_of(r[RESULT], r[CTX])
    return isinstance(status, int) and status >= 500


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v != v:
        return None
    return v if isinstance(v, (bool, int, float, str)) or v is None else str(v)
