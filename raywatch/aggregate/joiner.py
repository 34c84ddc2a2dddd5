"""Join ground truth to predictions by request id, in bounded memory and with a TTL.

Predictions reach the stats actor in replica batches; labels arrive later through
``raywatch.feedback`` or the HTTP route — or, when a client is quick, *before* the batch
holding the prediction has been shipped. :class:`FeedbackJoiner` keeps both sides in
insertion-ordered maps: whichever side comes second completes the pair. Entries older than
``ttl`` seconds are expired by :meth:`expire`. The predictions side (from the replicas)
holds at most ``max_pending`` entries, the oldest evicted first. The labels side (from
callers outside) holds at most ``max_pending`` entries and ``max_pending_bytes`` bytes:
past either a new label is refused (:class:`LabelRefused`, ``pending_full``) — a flood of
labels never evicts the real ones waiting for their predictions. Evictions, refusals (by the caller) and
expiries are counted, never silent.

>>> j = FeedbackJoiner(ttl=60, max_pending=2)
>>> j.add_prediction("r1", "m", 1, 0.9, now=0.0)
[]
>>> j.add_label("r1", 1, now=1.0)
[Joined(request_id='r1', model_key='m', label=1, prediction=1, score=0.9, tags=None)]
>>> j.add_label("r2", 0, now=2.0)          # label first ...
[]
>>> j.add_prediction("r2", "m", 1, 0.4, now=3.0)   # ... prediction second
[Joined(request_id='r2', model_key='m', label=0, prediction=1, score=0.4, tags=None)]
>>> j.counters()["joined"], j.pending()
(2, {'predictions': 0, 'labels': 0})
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from raywatch.aggregate.data import fields, record

__all__ = ["FeedbackJoiner", "Joined", "parse_feedback", "LabelRefused"]

log = logging.getLogger("raywatch.aggregate.joiner")

FORMAT, VERSION = "raywatch.feedback-joiner", 1


def parse_feedback(body: Any, default_model: Optional[str] = None) -> List[Tuple[str, Any, Optional[str]]]:
    """``(request_id, label, model_key)`` items from a decoded feedback body; ValueError if
    malformed.

    The body is one object ``{"request_id": ..., "label": ..., "model": ...}``, a list of
    them, or ``{"items": [...]}``. An item without ``model`` (or with an empty one) gets
    ``default_model``; with no default its model is None.

    >>> parse_feedback({"request_id": "r1", "label": 1})
    [('r1', 1, None)]
    >>> parse_feedback({"items": [{"request_id": "a", "label": "spam", "model": "app/M"}]})
    [('a', 'spam', 'app/M')]
    >>> parse_feedback([{"request_id": "b", "label": 0}], default_model="app/N")
    [('b', 0, 'app/N')]
    >>> parse_feedback({"label": 1})
    Traceback (most recent call last):
    ...
    ValueError: item 0: 'request_id' is required
    """
    if isinstance(body, dict) and "items" in body:
        body = body["items"]
    items = body if isinstance(body, list) else [body]
    out = []
    for i, it in enumerate(items):
        if not isinstance(it, dict):
            raise ValueError(f"item {i}: expected an object with request_id and label")
        if it.get("request_id") in (None, ""):
            raise ValueError(f"item {i}: 'request_id' is required")
        if "label" not in it:
            raise ValueError(f"item {i}: 'label' is required")
        label = it["label"]
        if isinstance(label, (dict, list)):
            raise ValueError(f"item {i}: 'label' must be a number, string or boolean")
        model = it.get("model")
        if default_model is not None:
            model = model or default_model
        out.append((str(it["request_id"]), label, None if model is None else str(model)))
    return out


class LabelRefused(ValueError):
    """A label the joiner will not keep (``reason``: ``pending_full``)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


_ENTRY_OVERHEAD = 64  # bytes counted per waiting label beyond its id and value


def _label_size(request_id: str, label: Any) -> int:
    return len(request_id) + (len(label) if isinstance(label, str) else 16) + _ENTRY_OVERHEAD


class Joined(NamedTuple):
    request_id: str
    model_key: str
    label: Any
    prediction: Any
    score: Optional[float]
    tags: Any = None  # the segments and groups of the prediction's request (issue 12), or None


def _paired(rid: str, label: Any, pred: Tuple[Any, ...]) -> Joined:
    """The pair of ``label`` and a waiting prediction entry ``(ts, model_key, prediction, score(, tags))``."""
    return Joined(rid, pred[1], label, pred[2], pred[3], pred[4] if len(pred) > 4 else None)


class FeedbackJoiner:
    """Bounded, TTL'd join of labels and predictions keyed by request id.

    Parameters
    ----------
    ttl
        Seconds a prediction waits for its label (and a label for its prediction).
    max_pending
        Most entries kept on each side; beyond it the oldest prediction is evicted, and a
        new label is refused.
    max_pending_bytes
        Most bytes of waiting labels (ids and values); beyond it a new label is refused.
    """

    def __init__(self, ttl: float = 3600.0, max_pending: int = 100_000, max_pending_bytes: int = 32 * 1024 * 1024):
        self.ttl = float(ttl)
        self.max_pending = int(max_pending)
        self.max_pending_bytes = int(max_pending_bytes)
        self._label_bytes = 0
        # request_id -> (ts, model_key, prediction, score)
        self._predictions: "OrderedDict[str, Tuple[float, str, Any, Optional[float]]]" = OrderedDict()
        # request_id -> (ts, label, model_key or None)
        self._labels: "OrderedDict[str, Tuple[float, Any, Optional[str]]]" = OrderedDict()
        self._counts = {
            "predictions": 0,
            "labels": 0,
            "joined": 0,
            "expired_predictions": 0,
            "expired_labels": 0,
            "evicted_predictions": 0,
            "evicted_labels": 0,
            "duplicate_labels": 0,
            "model_mismatch": 0,
        }

    # ------------------------------------------------------------------ adding
    def add_prediction(
        self, request_id: str, model_key: str, prediction: Any, score: Optional[float], *, now: float,
        tags: Any = None,
    ) -> List[Joined]:
        """Record a prediction; returns the pair when its label was already waiting."""
        rid = str(request_id)
        self._counts["predictions"] += 1
        waiting = self._labels.get(rid)
        if waiting is not None:
            _, label, want_model = waiting
            if want_model is not None and want_model != model_key:
                self._counts["model_mismatch"] += 1  # a label for another model with the same id
            else:
                self._drop_label(rid)
                self._counts["joined"] += 1
                return [Joined(rid, model_key, label, prediction, score, tags)]
        self._keep_prediction(rid, (now, model_key, prediction, score) if tags is None else
                              (now, model_key, prediction, score, tags))
        return []

    def _keep_prediction(self, rid: str, entry: Tuple[Any, ...]) -> None:
        """Wait with ``entry`` (``(ts, model_key, prediction, score(, tags))``) for its label,
        newest last; beyond ``max_pending`` the oldest prediction is evicted and counted."""
        if rid in self._predictions:
            self._predictions.move_to_end(rid)
        self._predictions[rid] = entry
        while len(self._predictions) > self.max_pending:
            self._predictions.popitem(last=False)
            self._counts["evicted_predictions"] += 1

    def _label_full(self, size: int) -> bool:
        """Whether a label of ``size`` bytes is beyond the bounds of the labels waiting."""
        return len(self._labels) >= self.max_pending or self._label_bytes + size > self.max_pending_bytes

    def _keep_label(self, rid: str, entry: Tuple[Any, ...], size: int) -> None:
        self._labels[rid] = entry
        self._label_bytes += size

    def add_label(self, request_id: str, label: Any, model_key: Optional[str] = None, *, now: float) -> List[Joined]:
        """Record a label; returns the pair when its prediction is known."""
        rid = str(request_id)
        self._counts["labels"] += 1
        pred = self._predictions.get(rid)
        if pred is not None:
            pkey = pred[1]
            if model_key is None or model_key == pkey:
                del self._predictions[rid]
                self._counts["joined"] += 1
                return [_paired(rid, label, pred)]
            self._counts["model_mismatch"] += 1
        size = _label_size(rid, label)
        if rid in self._labels:
            self._counts["duplicate_labels"] += 1
            self._drop_label(rid)
        elif self._label_full(size):
            raise LabelRefused("pending_full", f"{len(self._labels)} labels ({self._label_bytes} bytes) already wait "
                                               "for their predictions")
        self._keep_label(rid, (now, label, model_key), size)
        return []

    def _drop_label(self, rid: str) -> None:
        entry = self._labels.pop(rid, None)
        if entry is not None:
            self._label_bytes = max(0, self._label_bytes - _label_size(rid, entry[1]))

    def forget_model(self, model_key: str) -> int:
        """Drop the predictions of one model and the labels addressed to it; returns how many."""
        preds = [rid for rid, v in self._predictions.items() if v[1] == model_key]
        labels = [rid for rid, v in self._labels.items() if v[2] == model_key]
        for rid in preds:
            del self._predictions[rid]
        for rid in labels:
            self._drop_label(rid)
        return len(preds) + len(labels)

    # ------------------------------------------------------------------ hand-over (adding a shard)
    def export_model(self, model_key: str) -> Dict[str, Any]:
        """What waits here for one model, in :meth:`state`'s layout (``predictions``: its
        predictions waiting for their labels; ``labels``: labels addressed to it waiting for
        their predictions), oldest first; the entries stay (:meth:`forget_model` drops them)."""
        return {"predictions": [[k, list(v)] for k, v in self._predictions.items() if v[1] == model_key],
                "labels": [[k, list(v)] for k, v in self._labels.items() if v[2] == model_key]}

    def import_model(self, model_key: str, entries: Optional[Dict[str, Any]]) -> List[Joined]:
        """Take over what :meth:`export_model` gave on another shard for ``model_key``; returns
        the pairs that join now (a label that reached this shard before its prediction did).
        The entries keep their timestamps and were counted where they arrived, so only joins
        and evictions are counted here; the bounds hold as for new entries (the oldest
        prediction is evicted, a label beyond them is dropped and counted as evicted). They
        expire with the entries around them: at most one TTL late, as they are appended."""
        out: List[Joined] = []
        for rid, v in (entries or {}).get("predictions") or ():
            rid, v = str(rid), tuple(v)
            if len(v) < 4 or v[1] != model_key:
                continue
            waiting = self._labels.get(rid)
            if waiting is not None and waiting[2] in (None, model_key):
                self._drop_label(rid)
                self._counts["joined"] += 1
                out.append(Joined(rid, model_key, waiting[1], v[2], v[3], v[4] if len(v) > 4 else None))
                continue
            self._keep_prediction(rid, (float(v[0]),) + v[1:])
        for rid, v in (entries or {}).get("labels") or ():
            rid, v = str(rid), tuple(v)
            if len(v) < 3 or v[2] != model_key:
                continue
            pred = self._predictions.get(rid)
            if pred is not None and pred[1] == model_key:
                del self._predictions[rid]
                self._counts["joined"] += 1
                out.append(_paired(rid, v[1], pred))
                continue
            if rid in self._labels:  # a newer label for it reached this shard: that one stays
                self._counts["duplicate_labels"] += 1
                continue
            size = _label_size(rid, v[1])
            if self._label_full(size):
                self._counts["evicted_labels"] += 1
                continue
            self._keep_label(rid, (float(v[0]), v[1], model_key), size)
        return out

    # ------------------------------------------------------------------ upkeep
    def expire(self, now: float) -> int:
        """Drop entries older than the TTL; returns how many were dropped."""
        cutoff = now - self.ttl
        dropped = 0
        for side, counter in ((self._predictions, "expired_predictions"), (self._labels, "expired_labels")):
            # insertion order is (nearly) time order: stop at the first fresh entry
            while side:
                rid, entry = next(iter(side.items()))
                if entry[0] > cutoff:
                    break
                if side is self._labels:
                    self._drop_label(rid)
                else:
                    side.popitem(last=False)
                self._counts[counter] += 1
                dropped += 1
        return dropped

    def pending(self) -> Dict[str, int]:
        return {"predictions": len(self._predictions), "labels": len(self._labels)}

    @property
    def label_bytes(self) -> int:
        """Bytes of the labels waiting for their predictions (bounded by ``max_pending_bytes``)."""
        return self._label_bytes

    def counters(self) -> Dict[str, int]:
        return dict(self._counts)

    # ------------------------------------------------------------------ persistence
    def state(self) -> Dict[str, Any]:
        """Both sides and the counters as a ``raywatch.feedback-joiner`` record, version 1:
        ``predictions`` as ``[request_id, [ts, model_key, prediction, score(, tags)]]`` and
        ``labels`` as ``[request_id, [ts, label, model_key]]``, oldest first."""
        return record(FORMAT, VERSION, ttl=self.ttl, max_pending=self.max_pending,
                      predictions=[[k, list(v)] for k, v in self._predictions.items()],
                      labels=[[k, list(v)] for k, v in self._labels.items()], counts=dict(self._counts))

    def restore(self, state: Dict[str, Any]) -> None:
        """Resume from :meth:`state` (ValueError when it is another format or version)."""
        state = fields(state, FORMAT, VERSION)
        self._predictions = OrderedDict((str(k), tuple(v)) for k, v in state.get("predictions", []))
        self._labels = OrderedDict((str(k), tuple(v)) for k, v in state.get("labels", []))
        for k, v in (state.get("counts") or {}).items():
            if k in self._counts:
                self._counts[k] = int(v)
        while len(self._predictions) > self.max_pending:
            self._predictions.popitem(last=False)
        while len(self._labels) > self.max_pending:
            self._labels.popitem(last=False)
        self._label_bytes = sum(_label_size(rid, v[1]) for rid, v in self._labels.items())
