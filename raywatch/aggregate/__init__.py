"""raywatch.aggregate — the stats actor's logic without Ray (the "aggregate" stage of the flow).

Replica batches are merged per model and tumbling window, labels joined to predictions, the
rolling view evaluated (drift, quality, performance, streaming detectors) and turned into
catalogue series for the alert rules; state is checkpointed to SQLite as versioned data
with an ingest journal. It never imports ``ray`` (the Ray actor around it is
:mod:`raywatch.actor`) nor :mod:`raywatch.alerts` (the alerting arrives through the
constructor of :class:`StatsCore`).

Public names (imported lazily):

* :class:`StatsCore` — the facade; :class:`Store` — the SQLite file;
* :func:`history_from_sqlite` — the history of a stats actor's SQLite file, without Ray;
  :func:`reset_sqlite` — forget a model in such a file (no actor running on it);
* :class:`StoreWriteError` — what an ingest or feedback call raises when it could not be
  journaled (nothing acknowledged: send it again);
* :class:`Failures`, :class:`Window`, :class:`FeedbackJoiner`, :func:`parse_feedback`,
  :func:`merge_summaries`, :func:`aggregate_resources`.
"""

from __future__ import annotations

from raywatch._lazy import lazy_exports

_EXPORTS = {
    "StatsCore": "raywatch.aggregate.core:StatsCore",
    "NoAlerting": "raywatch.aggregate.alerting:NoAlerting",
    "Alerting": "raywatch.aggregate.alerting:Alerting",
    "Store": "raywatch.aggregate.store:Store",
    "SCHEMA_VERSION": "raywatch.aggregate.store:SCHEMA_VERSION",
    "UnsafeStateFile": "raywatch.aggregate.migrate:UnsafeStateFile",
    "history_from_sqlite": "raywatch.aggregate.offline:history_from_sqlite",
    "reset_sqlite": "raywatch.aggregate.offline:reset_sqlite",
    "StoreWriteError": "raywatch.aggregate.journal:StoreWriteError",
    "JournalFull": "raywatch.aggregate.journal:JournalFull",
    "Failures": "raywatch.aggregate.failures:Failures",
    "ModelState": "raywatch.aggregate.model:ModelState",
    "Window": "raywatch.aggregate.windows:Window",
    "merge_summaries": "raywatch.aggregate.windows:merge_summaries",
    "aggregate_resources": "raywatch.aggregate.windows:aggregate_resources",
    "FeedbackJoiner": "raywatch.aggregate.joiner:FeedbackJoiner",
    "parse_feedback": "raywatch.aggregate.joiner:parse_feedback",
    "REREGISTER": "raywatch.stats.batch:REREGISTER",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
