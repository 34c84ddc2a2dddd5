"""The ingest journal: every batch and label accepted since the last checkpoint, as data.

A restarted actor loads its last checkpoint and replays the journal after it, so nothing
acknowledged to a replica is lost (a batch replayed twice is dropped as a duplicate, by
``(replica_id, seq)``). Entries, one row each in the store's ``journal`` table:

``batch``: a ``raywatch.journal.batch`` record, version 1 — ``{"batch": <ReplicaBatch.to_dict()
without "summary">}`` — with the batch's window summary (the summary codec's bytes) in the
row's BLOB column.

``feedback``: a ``raywatch.journal.feedback`` record, version 1 — ``{"ts": <when it was
received>, "items": [[request_id, label, model_key or null], ...]}``.

With ``group_commit`` the entries wait in :attr:`Journal.pending` until :meth:`Journal.flush`
writes them in one transaction (the actor flushes once per turn of its event loop and
acknowledges the calls after that); without it each entry is written at once.

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
from typing import TYPE_CHECKING, Any, List, NamedTuple, Optional, Sequence, Tuple

from raywatch.aggregate.data import decode, encode, fields, record, scalar
from raywatch.aggregate.failures import Failures
from raywatch.stats.batch import ReplicaBatch

if TYPE_CHECKING:  # the store imports this module (its v1 migration writes journal rows)
    from raywatch.aggregate.store import Store

__all__ = ["Journal", "JournalRow", "batch_row", "feedback_row", "decode_batch", "decode_feedback", "FeedbackItem"]

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


class Journal:
    """Journal writes of one store (see the module docstring); failures counted as ``journal``."""

    def __init__(self, store: Optional["Store"], failures: Failures, *, enabled: bool = True, group_commit: bool = False):
        self.store = store
        self.failures = failures
        self.enabled = enabled and store is not None
        self.group_commit = group_commit
        self.pending: List[JournalRow] = []
        self.last_id = 0  # the id of the newest entry written

    def batch(self, b: ReplicaBatch, now: float) -> None:
        if self.enabled:
            self._append(lambda: batch_row(b, now))

    def feedback(self, items: Sequence[FeedbackItem], now: float) -> None:
        if self.enabled:
            self._append(lambda: feedback_row(items, now))

    def _append(self, make) -> None:
        try:
            row = make()
        except Exception as exc:  # not stored data (a label that is no plain value)
            self.failures.fail("journal.encode", exc)
            return
        self.pending.append(row)
        if not self.group_commit:
            self.flush()

    def flush(self) -> int:
        """Write the pending entries in one transaction; returns how many."""
        rows, self.pending = self.pending, []
        if not rows or self.store is None:
            return 0
        try:
            self.last_id = self.store.append_journal(rows)
        except Exception as exc:
            self.failures.fail("journal", exc)
            return 0
        return len(rows)
