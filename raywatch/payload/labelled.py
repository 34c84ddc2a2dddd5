"""The labelled dataset: logged requests joined to their feedback labels.

:func:`labelled_dataset` joins one model's request rows of a time range to every label that
arrived for them at any time since — a label that comes days after its request is joined
as well as one that comes a second after; when a request was labelled more than once the
newest label wins. :func:`split_holdout` holds back the newest share of the rows (the
validation gate scores on them; the retrain function never sees them), and
:func:`write_snapshot` writes a table as one Parquet file under ``labelled/`` (partitioned
like the rest of the log, covered by its retention) for ``ray.data.read_parquet``.

>>> import tempfile
>>> from raywatch.config.remediate import PayloadLogConfig
>>> from raywatch.payload.log import PayloadLog
>>> log = PayloadLog(PayloadLogConfig(path=tempfile.mkdtemp()))
>>> _ = log.add([{"ts": 1000.0 + i, "request_id": f"r{i}", "model": "m", "prediction": i % 2,
...               "features": {"x": float(i)}} for i in range(10)])
>>> _ = log.add_labels("m", [("r1", 1), ("r2", 0)], ts=1500.0)
>>> _ = log.add_labels("m", [("r2", 1), ("r9", 1)], ts=90_000.0)   # a day late; r2 relabelled
>>> _ = log.flush()
>>> t = labelled_dataset(log, "m", since=900.0)
>>> t.column("request_id").to_pylist(), t.column("label").to_pylist()
(['r1', 'r2', 'r9'], [1.0, 1.0, 1.0])
>>> train, held = split_holdout(t, 0.3)
>>> train.column("request_id").to_pylist(), held.column("request_id").to_pylist()
(['r1', 'r2'], ['r9'])
"""

from __future__ import annotations

import io
import math
import uuid
from typing import Any, Optional, Tuple

from raywatch.payload.fs import write_file
from raywatch.payload.log import partition_dir

__all__ = ["labelled_dataset", "split_holdout", "write_snapshot"]


def labelled_dataset(log: Any, model: str, since: float, until: Optional[float] = None, *,
                     shadow: bool = False) -> Any:
    """Requests of ``model`` in ``[since, until]`` with their newest label (``label``,
    ``label_ts``), oldest request first; requests without a label are left out. The rows of
    a shadow's answers are left out too (``shadow=True``: only they, labelled — the
    candidate's performance on live traffic)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    req = log.read("requests", model, since=since, until=until)
    if "shadow" in req.column_names:
        col = pc.fill_null(req.column("shadow"), False)
        req = req.filter(col if shadow else pc.invert(col))
    elif shadow:
        req = req.slice(0, 0)
    lab = log.read("labels", model, since=since)
    if req.num_rows == 0 or lab.num_rows == 0 or "label" not in lab.column_names:
        empty = req.slice(0, 0)
        return empty.append_column("label", pa.array([], pa.float64())).append_column(
            "label_ts", pa.array([], pa.timestamp("us", tz="UTC")))
    lab = lab.select(["request_id", "label", "ts"]).sort_by("ts")
    newest = lab.group_by("request_id", use_threads=False).aggregate([("label", "last"), ("ts", "last")])
    newest = newest.rename_columns({"label_last": "label", "ts_last": "label_ts"})
    out = req.join(newest, keys="request_id", join_type="inner", use_threads=False)
    return out.sort_by([("ts", "ascending"), ("request_id", "ascending")])


def split_holdout(table: Any, share: float) -> Tuple[Any, Any]:
    """``(train, holdout)``: the newest ``share`` of the rows (by request time, at least one
    row when there are two or more) held back."""
    t = table.sort_by([("ts", "ascending"), ("request_id", "ascending")])
    n = t.num_rows
    k = min(n - 1, max(1, int(math.ceil(n * share)))) if n >= 2 else 0
    return t.slice(0, n - k), t.slice(n - k, k)


def write_snapshot(log: Any, table: Any, model: str, now: float) -> str:
    """Write ``table`` as one Parquet file under ``labelled/`` and return its path on the
    log's filesystem (``ray.data.read_parquet(path, filesystem=log.fs)`` reads it back)."""
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table.drop_columns([c for c in ("model", "date", "hour") if c in table.column_names]), buf)
    part = partition_dir("labelled", model, now)
    path = f"{log.root}/{part}/part-{int(now * 1000)}-{table.num_rows}-{uuid.uuid4().hex[:12]}.parquet"
    write_file(log.fs, path, buf.getvalue(), local=log.local)
    return path
