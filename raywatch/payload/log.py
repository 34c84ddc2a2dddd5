"""The payload log: sampled requests and feedback labels as Parquet, bounded, counted.

Layout under the log's root (a local folder or a URI such as ``s3://bucket/prefix``)::

    requests/model=<model>/date=<YYYY-MM-DD>/hour=<HH>/part-<newest ms>-<rows>-<id>.parquet
    labels/model=<model>/date=<YYYY-MM-DD>/hour=<HH>/part-<newest ms>-<rows>-<id>.parquet

Hive partitions (``model``, ``date``, ``hour``; UTC), so ``ray.data.read_parquet`` and
``pandas.read_parquet`` read a folder with its partition columns. A request row has the
columns of :data:`REQUEST_COLUMNS` — ``ts`` (UTC timestamp), ``request_id``, ``app``,
``deployment``, ``version``, ``replica``, ``prediction``, ``score``, ``shadow`` (true for a
shadow deployment's answer to a mirrored request: the candidate's version, never the user's
answer) — and one column per
feature (after the capture's allow-list and redaction); a feature whose name is one of
those (or a partition's) is stored as ``feature.<name>``. A label row has ``ts``,
``request_id`` and ``label``, partitioned by the time the label arrived: a label that comes
days late lands in a later partition and is still joined (:mod:`raywatch.payload.labelled`).
Numbers (and booleans in ``prediction``, ``score`` and ``label``) are stored as float64,
so files written at different times share one schema.

Bounds: at most ``max_pending_rows`` rows wait in memory (beyond: dropped, counted in
``rows_dropped``); a failed write keeps its rows for the next flush (``write_errors``);
:meth:`PayloadLog.enforce_retention` deletes whole files older than ``max_age``, then the
oldest until the log holds at most ``max_bytes`` (``files_expired``, ``files_evicted``,
``rows_deleted``: a file's row count is in its name, so deleting never reads a file).

>>> import tempfile
>>> from raywatch.config.remediate import PayloadLogConfig
>>> log = PayloadLog(PayloadLogConfig(path=tempfile.mkdtemp()), clock=lambda: 1_700_000_000.0)
>>> log.add([{"ts": 1_700_000_000.0, "request_id": "r1", "model": "fraud", "version": "v1",
...           "prediction": True, "score": 0.9, "features": {"amount": 12.5, "country": "FR"}}])
1
>>> log.add_labels("fraud", [("r1", 1)])
1
>>> log.flush()
2
>>> t = log.read("requests", "fraud")
>>> t.column("amount").to_pylist(), t.column("prediction").to_pylist(), t.column("model").to_pylist()
([12.5], [1.0], ['fraud'])
>>> log.counters["rows_written"], log.counters["files_written"]
(2, 2)
"""

from __future__ import annotations

import io
import logging
import math
import threading
import time
import uuid
import zlib
from datetime import datetime, timezone
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import quote, unquote

from raywatch import series
from raywatch.payload.fs import FileEntry, list_files, open_filesystem, require_pyarrow, write_file

__all__ = ["PayloadLog", "REQUEST_COLUMNS", "LABEL_COLUMNS", "PARTITIONS", "TABLES", "partition_dir", "parse_part"]

log = logging.getLogger("raywatch.payload.log")

REQUEST_COLUMNS = ("ts", "request_id", "app", "deployment", "version", "replica", "prediction", "score", "shadow")
LABEL_COLUMNS = ("ts", "request_id", "label")
PARTITIONS = ("model", "date", "hour")
TABLES = ("requests", "labels", "labelled")
_RESERVED = frozenset(REQUEST_COLUMNS) | frozenset(PARTITIONS) | {"label", "label_ts"}
_FLOATS = ("prediction", "score", "label")


def partition_dir(table: str, model: str, ts: float) -> str:
    """``<table>/model=<model>/date=<day>/hour=<HH>`` for a UTC epoch time.

    >>> partition_dir("requests", "fraud/v 2", 0.0)
    'requests/model=fraud%2Fv%202/date=1970-01-01/hour=00'
    """
    d = datetime.fromtimestamp(ts, tz=timezone.utc)
    return f"{table}/model={quote(model, safe='')}/date={d:%Y-%m-%d}/hour={d:%H}"


def parse_part(path: str) -> Optional[Tuple[str, str, float, int]]:
    """``(table, model, newest ts, rows)`` of a part file's path (None for a foreign file).

    >>> parse_part("/x/requests/model=fraud/date=2026-01-01/hour=03/part-1700000000000-25-ab12.parquet")
    ('requests', 'fraud', 1700000000.0, 25)
    """
    parts = path.split("/")
    if len(parts) < 5 or not parts[-1].startswith("part-"):
        return None
    table, model = parts[-5], parts[-4]
    if table not in TABLES or not model.startswith("model="):
        return None
    try:
        _, ms, rows, _ = parts[-1][: -len(".parquet")].split("-", 3)
        return table, unquote(model[len("model="):]), int(ms) / 1000.0, int(rows)
    except ValueError:
        return None


def _column(values: List[Any], force_float: bool = False) -> Tuple[Any, List[Any]]:
    """``(arrow type, values)`` for one column: booleans stay booleans (floats when
    ``force_float``), numbers become float64, anything else text; ``None`` stays null."""
    import pyarrow as pa

    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present) and not force_float:
        return pa.bool_(), values
    if all(isinstance(v, (int, float)) for v in present):
        return pa.float64(), [None if v is None else float(v) for v in values]
    return pa.string(), [None if v is None else (v if isinstance(v, str) else str(v)) for v in values]


def _feature_name(name: str) -> str:
    return f"feature.{name}" if name in _RESERVED else name


class PayloadLog:
    """Writer and reader of one payload log (see the module docstring). Thread-safe.

    ``clock`` gives UTC epoch seconds (injected in tests); ``filesystem`` an already open
    ``(pyarrow filesystem, root)`` pair instead of ``cfg.path``.
    """

    def __init__(self, cfg: Any, *, clock: Callable[[], float] = time.time,
                 filesystem: Optional[Tuple[Any, str]] = None):
        require_pyarrow()
        self.cfg = cfg
        self.clock = clock
        if filesystem is None:
            filesystem = open_filesystem(
                cfg.path, cfg.filesystem,
                access_key=cfg.access_key.get_secret_value() if cfg.access_key else None,
                secret_key=cfg.secret_key.get_secret_value() if cfg.secret_key else None)
        self.fs, self.root = filesystem
        from pyarrow import fs as pafs

        self.local = isinstance(self.fs, pafs.LocalFileSystem)
        self._lock = threading.Lock()
        self._pending: Dict[Tuple[str, str, str], List[Dict[str, Any]]] = {}
        self._pending_rows = 0
        self._last_flush = time.monotonic()
        self.counters: Dict[str, int] = dict.fromkeys(
            ("rows_accepted", "rows_sampled_out", "rows_dropped", "rows_written", "files_written", "bytes_written",
             "write_errors", "files_expired", "files_evicted", "rows_deleted", "delete_errors"), 0)

    # ------------------------------------------------------------------ writing
    def _sampled(self, request_id: Any) -> bool:
        rate = float(self.cfg.sample_rate)
        if rate >= 1.0:
            return True
        if rate <= 0.0 or request_id is None:
            return False
        return zlib.crc32(str(request_id).encode()) / 2**32 < rate

    def _queue(self, table: str, model: str, row: Dict[str, Any]) -> bool:
        if self._pending_rows >= self.cfg.max_pending_rows:
            self.counters["rows_dropped"] += 1
            return False
        part = partition_dir(table, model, row["ts"])
        self._pending.setdefault((table, model, part), []).append(row)
        self._pending_rows += 1
        self.counters["rows_accepted"] += 1
        return True

    def add(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Queue request rows: ``{"ts", "request_id", "model", "version", "replica", "app",
        "deployment", "prediction", "score", "features": {...}}``; returns how many were kept
        (sampled out by ``sample_rate`` on the request id, or dropped past the bound: counted)."""
        kept = 0
        with self._lock:
            for r in rows:
                if not self._sampled(r.get("request_id")):
                    self.counters["rows_sampled_out"] += 1
                    continue
                row = {k: r.get(k) for k in REQUEST_COLUMNS}
                row["shadow"] = bool(r.get("shadow", False))
                ts = r.get("ts")
                row["ts"] = float(ts) if ts is not None else self.clock()
                for name, value in (r.get("features") or {}).items():
                    row[_feature_name(str(name))] = value
                kept += self._queue("requests", str(r.get("model") or r.get("deployment") or "unknown"), row)
        return kept

    def add_labels(self, model: str, items: Iterable[Sequence[Any]], ts: Optional[float] = None) -> int:
        """Queue labels ``(request_id, label)`` of ``model`` that arrived at ``ts`` (now)."""
        now = self.clock() if ts is None else float(ts)
        kept = 0
        with self._lock:
            for item in items:
                rid, label = item[0], item[1]
                kept += self._queue("labels", model, {"ts": now, "request_id": str(rid), "label": label})
        return kept

    @property
    def pending_rows(self) -> int:
        return self._pending_rows

    def due(self) -> bool:
        """Whether a flush is due: ``flush_interval`` passed, or a file's worth of rows waits."""
        return bool(self._pending_rows) and (
            time.monotonic() - self._last_flush >= self.cfg.flush_interval
            or self._pending_rows >= self.cfg.max_rows_per_file)

    def maybe_flush(self) -> int:
        return self.flush() if self.due() else 0

    def flush(self) -> int:
        """Write every pending partition (at most ``max_rows_per_file`` rows a file); returns
        the files written. A failed write keeps its rows for the next flush."""
        with self._lock:
            groups, self._pending = self._pending, {}
            self._last_flush = time.monotonic()
        written = 0
        failed: Dict[Tuple[str, str, str], List[Dict[str, Any]]] = {}
        for key, rows in groups.items():
            table, model, part = key
            step = self.cfg.max_rows_per_file
            for i in range(0, len(rows), step):
                chunk = rows[i:i + step]
                try:
                    n = self._write(table, part, chunk)
                except Exception as exc:
                    self.counters["write_errors"] += 1
                    log.warning("payload log: writing %d rows to %s failed (%s: %s); kept for the next flush",
                                len(chunk), part, type(exc).__name__, exc)
                    failed.setdefault(key, []).extend(chunk)
                    continue
                written += 1
                self.counters["rows_written"] += len(chunk)
                self.counters["files_written"] += 1
                self.counters["bytes_written"] += n
        with self._lock:
            self._pending_rows -= sum(len(r) for r in groups.values()) - sum(len(r) for r in failed.values())
            for key, rows in failed.items():
                self._pending.setdefault(key, [])[:0] = rows
        return written

    def _write(self, table: str, part: str, rows: List[Dict[str, Any]]) -> int:
        import pyarrow as pa
        import pyarrow.parquet as pq

        names: Dict[str, None] = dict.fromkeys(REQUEST_COLUMNS if table == "requests" else LABEL_COLUMNS)
        for r in rows:
            names.update(dict.fromkeys(r))
        arrays, fields = [], []
        for name in names:
            values = [r.get(name) for r in rows]
            if name == "ts":
                typ, vals = pa.timestamp("us", tz="UTC"), [int(round(v * 1e6)) for v in values]
            elif name in ("request_id", "app", "deployment", "version", "replica"):
                typ, vals = pa.string(), [None if v is None else str(v) for v in values]
            elif name == "shadow":
                typ, vals = pa.bool_(), [bool(v) for v in values]
            else:
                typ, vals = _column(values, force_float=name in _FLOATS)
            arrays.append(pa.array(vals, type=typ))
            fields.append(pa.field(name, typ))
        tbl = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
        buf = io.BytesIO()
        comp = None if self.cfg.compression == "none" else self.cfg.compression
        pq.write_table(tbl, buf, compression=comp)
        newest = max(r["ts"] for r in rows)
        path = f"{self.root}/{part}/part-{int(math.floor(newest * 1000))}-{len(rows)}-{uuid.uuid4().hex[:12]}.parquet"
        data = buf.getvalue()
        write_file(self.fs, path, data, local=self.local)
        return len(data)

    # ------------------------------------------------------------------ retention
    def files(self, table: Optional[str] = None) -> List[Tuple[FileEntry, Tuple[str, str, float, int]]]:
        """The log's part files with what their names say, oldest first."""
        out = []
        for t in ((table,) if table else TABLES):
            for e in list_files(self.fs, f"{self.root}/{t}"):
                meta = parse_part(e.path)
                if meta is not None:
                    out.append((e, meta))
        out.sort(key=lambda x: x[1][2])
        return out

    def enforce_retention(self, now: Optional[float] = None) -> Dict[str, int]:
        """Delete files older than ``max_age``, then the oldest until at most ``max_bytes``
        remain; returns what was deleted (also added to :attr:`counters`)."""
        now = self.clock() if now is None else now
        files = self.files()
        out = {"files_expired": 0, "files_evicted": 0, "rows_deleted": 0, "bytes_deleted": 0}
        keep = []
        for e, meta in files:
            if now - meta[2] > self.cfg.max_age:
                if self._delete(e):
                    out["files_expired"] += 1
                    out["rows_deleted"] += meta[3]
                    out["bytes_deleted"] += e.size
                    continue
            keep.append((e, meta))
        total = sum(e.size for e, _ in keep)
        for e, meta in keep:
            if total <= self.cfg.max_bytes:
                break
            if self._delete(e):
                out["files_evicted"] += 1
                out["rows_deleted"] += meta[3]
                out["bytes_deleted"] += e.size
                total -= e.size
        for k in ("files_expired", "files_evicted", "rows_deleted"):
            self.counters[k] += out[k]
        if out["files_expired"] or out["files_evicted"]:
            log.info("payload log retention: %s", out)
        return out

    def _delete(self, e: FileEntry) -> bool:
        try:
            self.fs.delete_file(e.path)
            return True
        except Exception as exc:
            self.counters["delete_errors"] += 1
            log.warning("payload log: could not delete %s: %s", e.path, exc)
            return False

    def size_bytes(self) -> int:
        return sum(e.size for e, _ in self.files())

    # ------------------------------------------------------------------ reading
    def read(self, table: str, model: str, since: Optional[float] = None, until: Optional[float] = None) -> Any:
        """One model's rows of ``table`` (``requests`` or ``labels``) as a pyarrow Table with
        the partition columns, files pruned by the time in their partition and name; rows
        outside ``[since, until]`` left out. Files written at different times may have
        different feature columns: the schemas are unified (missing values are null)."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        tables = []
        for e, (t, m, newest, _) in self.files(table):
            if m != model or (since is not None and newest < since):
                continue
            d = e.path.split("/")
            date, hour = d[-3].partition("=")[2], d[-2].partition("=")[2]
            start = datetime.strptime(f"{date} {hour}", "%Y-%m-%d %H").replace(tzinfo=timezone.utc).timestamp()
            if until is not None and start > until:
                continue
            tbl = pq.read_table(e.path, filesystem=self.fs)
            n = tbl.num_rows
            tbl = tbl.append_column("model", pa.array([model] * n, pa.string()))
            tbl = tbl.append_column("date", pa.array([date] * n, pa.string()))
            tbl = tbl.append_column("hour", pa.array([hour] * n, pa.string()))
            tables.append(tbl)
        if not tables:
            cols = REQUEST_COLUMNS if table == "requests" else LABEL_COLUMNS
            return pa.table({c: pa.array([], pa.timestamp("us", tz="UTC") if c == "ts" else pa.string()) for c in cols})
        out = pa.concat_tables(tables, promote_options="permissive")
        ts = out.column("ts")
        mask = None
        if since is not None:
            mask = pc.greater_equal(ts, pa.scalar(int(since * 1e6), pa.timestamp("us", tz="UTC")))
        if until is not None:
            m2 = pc.less_equal(ts, pa.scalar(int(until * 1e6), pa.timestamp("us", tz="UTC")))
            mask = m2 if mask is None else pc.and_(mask, m2)
        return out.filter(mask) if mask is not None else out

    def table_path(self, table: str) -> str:
        """The folder of ``table`` on the log's filesystem (for ``ray.data.read_parquet``)."""
        return f"{self.root}/{table}"

    def stats(self) -> Dict[str, Any]:
        return {**self.counters, "pending_rows": self._pending_rows}

    def series(self, labels: Mapping[str, str]) -> List[series.Series]:
        """The log's counters as catalogue series with ``labels`` (the model's).

        >>> import tempfile
        >>> from raywatch.config.remediate import PayloadLogConfig
        >>> [s.name for s in PayloadLog(PayloadLogConfig(path=tempfile.mkdtemp())).series({"model": "m"})][:2]
        ['payload_log_rows_total', 'payload_log_dropped_rows_total']
        """
        c = self.counters
        return [series.Series(series.PAYLOAD_LOG_ROWS_TOTAL.name, dict(labels), float(c["rows_written"])),
                series.Series(series.PAYLOAD_LOG_DROPPED_ROWS_TOTAL.name, dict(labels), float(c["rows_dropped"])),
                series.Series(series.PAYLOAD_LOG_DELETED_ROWS_TOTAL.name, dict(labels), float(c["rows_deleted"])),
                series.Series(series.PAYLOAD_LOG_WRITE_ERRORS_TOTAL.name, dict(labels), float(c["write_errors"]))]
