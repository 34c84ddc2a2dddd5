"""raywatch.payload — the payload log and the labelled dataset (Ray-free; pyarrow, lazily).

Sampled requests are kept as Parquet files partitioned by model, date and hour, on a local
path (owner-only) or a filesystem URI pyarrow understands (``s3://…``); feedback labels are
kept beside them the same way, and joined to the requests into the labelled dataset that
retraining reads (late labels included). Retention is bounded by bytes and by age; what is
dropped or deleted is counted. Needs the ``raywatch[log]`` extra (pyarrow).

Public names (imported lazily):

* :class:`PayloadLog` — the writer and reader; :func:`open_filesystem`;
* :func:`payload_rows` — rows from the replica's buffer records;
* :func:`labelled_dataset`, :func:`split_holdout`, :func:`write_snapshot` — the labelled dataset.
"""

from __future__ import annotations

from raywatch._lazy import lazy_exports

_EXPORTS = {
    "PayloadLog": "raywatch.payload.log:PayloadLog",
    "REQUEST_COLUMNS": "raywatch.payload.log:REQUEST_COLUMNS",
    "open_filesystem": "raywatch.payload.fs:open_filesystem",
    "require_pyarrow": "raywatch.payload.fs:require_pyarrow",
    "payload_rows": "raywatch.payload.rows:payload_rows",
    "labelled_dataset": "raywatch.payload.labelled:labelled_dataset",
    "split_holdout": "raywatch.payload.labelled:split_holdout",
    "write_snapshot": "raywatch.payload.labelled:write_snapshot",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
