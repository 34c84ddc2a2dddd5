"""The ingest journal: every batch and label accepted since the last checkpoint, as data.

A restarted actor loads its last checkpoint and replays the journal after it, so nothing
acknowledged to a replica is lost (a batch replayed twice is dropped as a duplicate, by
``(replica_id, seq)``). Entries, one row each in the store's ``journal`` table:

``batch``: a ``raywatch.journal.batch`` record, version 1 — ``{"batch": <ReplicaBatch.to_dict()
without "summary">}`` — with the batch's window summary (the summary codec's bytes) in the
store's summary files, where the row says (:mod:`raywatch.aggregate.blobfiles`).

``feedback``: a ``raywatch.journal.feedback`` record, version 1 — ``{"ts": <when it was
received>, "items": [[request_id, label, model_key or null], ...]}``.

Nothing is acknowledged before it is durable: the core journals what a call brings and
merges it only once the write succeeded (write-ahead); a write that fails raises
:class:`StoreWriteError` out of the call, nothing is merged, so the sender keeps what it
sent and retries (a replica's shipper retries a failed ``ingest`` call; the retried batch
is not a duplicate, since it was never merged). The stats actor groups the entries of the
calls that arrive while a write is under way into the next write (group commit), on the
store's writer thread, and acknowledges each call after its group is written and merged.

A batch or label that cannot be encoded costs only itself: :func:`clean_batch` leaves out
the values of a batch that are not plain data (a resource figure that is a set, a
prediction that is an object), counted, and keeps the rest.

>>> from raywatch.stats.batch import ReplicaBatch
>>> b = ReplicaBatch(app="a", deployment="M", replica_id="r", start_ts=0.0, end_ts=1.0, seq=3,
...                  summary=b"codec bytes", predictions=[("q1", 1, 0.9)])
>>> row = batch_row(b, ts=1.0)
>>> row.kind, row.model_key, row.blob
('batch', 'a/M', b'codec bytes')
>>> decode_batch(row.data, row.blob) == b
True
>>> decode_feedback(feedback_row([("q1", 0, None)], ts=2.0).data)
(2.0, [('q1', 0, None)])
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable, List, NamedTuple, Optional, Sequence, Tuple

from raywatch.aggregate.data import decode, encode, fields, plain, record, scalar
from raywatch.aggregate.failures import Failures
from raywatch.stats.batch import ReplicaBatch

if TYPE_CHECKING:  # the store imports this module (its v1 migration writes journal rows)
    from raywatch.aggregate.store import Store

__all__ = ["Journal", "JournalRow", "batch_row", "feedback_row", "decode_batch", "decode_feedback", "FeedbackItem",
           "StoreWriteError", "JournalFull", "clean_batch"]

BATCH, FEEDBACK = "batch", "feedback"
_BATCH_FORMAT, _FEEDBACK_FORMAT, _VERSION = "raywatch.journal.batch", "raywatch.journal.feedback", 1

FeedbackItem = Tuple[str, Any, Optional[str]]


class JournalRow(NamedTuple):
    """One journal entry as the store writes it."""

    kind: str
    model_key: Optional[str]
    data: str  # the JSON record
    blob: Optional[bytes]  # a batch's window summary (codec bytes)
    ts: float


_BATCH_FIELDS = tuple(f.name for f in dataclasses.fields(ReplicaBatch) if f.name != "summary")


def batch_row(b: ReplicaBatch, ts: float) -> JournalRow:
    # the fields as they are (ReplicaBatch.to_dict's deep copy costs more than the encoding)
    d = {name: getattr(b, name) for name in _BATCH_FIELDS}
    return JournalRow(BATCH, b.model_key, encode(record(_BATCH_FORMAT, _VERSION, batch=d)), b.summary, float(ts))


def feedback_row(items: Sequence[FeedbackItem], ts: float) -> JournalRow:
    data = record(_FEEDBACK_FORMAT, _VERSION, ts=float(ts), items=[[str(r), scalar(label), mk] for r, label, mk in items])
    return JournalRow(FEEDBACK, None, encode(data), None, float(ts))


def decode_batch(data: str, blob: Optional[bytes]) -> ReplicaBatch:
    d = dict(fields(decode(data), _BATCH_FORMAT, _VERSION)["batch"], summary=blob)
    return ReplicaBatch.from_dict(d)


def decode_feedback(data: str) -> Tuple[float, List[FeedbackItem]]:
    d = fields(decode(data), _FEEDBACK_FORMAT, _VERSION)
    return float(d["ts"]), [(str(r), label, mk) for r, label, mk in d["items"]]


class StoreWriteError(RuntimeError):
    """The journal could not be written: the call is not acknowledged (its sender retries)."""


class JournalFull(StoreWriteError):
    """The journal is at ``actor.journal_max_bytes`` and no checkpoint could shrink it yet."""


_DICT_FIELDS = ("errors", "statuses", "routes", "methods")


def clean_batch(b: ReplicaBatch, on_bad: "Callable[[str, BaseException], None]") -> ReplicaBatch:
    """``b`` itself when it encodes; otherwise a copy without the values that are not plain
    data (each reported to ``on_bad(field, error)``)."""
    try:
        encode({name: getattr(b, name) for name in _BATCH_FIELDS})
        return b
    except (TypeError, ValueError):
        pass
    changes: dict = {}
    preds = []
    for i, p in enumerate(b.predictions or ()):
        try:
            rid, pred, score = (tuple(p) + (None, None))[:3]
            preds.append((str(rid), scalar(pred), None if score is None else float(score))
                         + ((plain(p[3], on_bad, f"predictions[{i}].tags"),) if len(p) > 3 else ()))
        except (TypeError, ValueError) as exc:
            on_bad(f"predictions[{i}]", exc)
    changes["predictions"] = preds
    for name in _DICT_FIELDS + ("resources", "latency", "attribution"):
        changes[name] = plain(getattr(b, name) or {}, on_bad, name)
    for name in ("segments", "segment_traffic", "fairness"):  # issue 12: optional parts
        changes[name] = plain(getattr(b, name), on_bad, name)
    for name in ("model", "version", "node_id"):
        v = getattr(b, name)
        if v is not None and not isinstance(v, str):
            on_bad(name, TypeError(f"a {type(v).__name__} is not a string"))
            changes[name] = None
    return dataclasses.replace(b, **changes)


class Journal:
    """Journal writes of one store (see the module docstring).

    ``last_id`` is the id of the newest entry written *and merged*: a checkpoint includes
    the journal up to it.
    """

    def __init__(self, store: Optional["Store"], failures: Failures, *, enabled: bool = True):
        self.store = store
        self.failures = failures
        self.enabled = enabled and store is not None
        self.last_id = 0

    def write(self, rows: Sequence[JournalRow]) -> int:
        """Write ``rows`` in one transaction; returns the id of the last one. Raises
        :class:`StoreWriteError` when the write fails (counted as ``journal``)."""
        if not rows or self.store is None:
            return self.last_id
        try:
            return self.store.append_journal(rows)
        except Exception as exc:
            self.failures.fail("journal", exc)
            raise StoreWriteError(f"the ingest journal could not be written ({type(exc).__name__}: {exc}); "
                                  "nothing was acknowledged, send it again") from exc
