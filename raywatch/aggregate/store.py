"""SQLite persistence of the stats actor: state checkpoints, an ingest journal, history.

One file (WAL mode, ``synchronous=NORMAL``: a commit survives the process being killed,
which is what ``ray.kill`` does), created owner-only (``0600``, in a ``0700`` folder when
the store creates it; SQLite gives its WAL and SHM files the database file's mode).
Nothing in it is a pickle: every value is JSON text, or the checksummed codec bytes of
:mod:`raywatch.stats` (profiles, window summaries). Schema version 2; tables:

``meta(key, value)``
    ``schema_version`` (``"2"``), ``journal_id`` (the newest journal entry the last
    checkpoint includes) and ``migrated_from`` (``"1"`` for a file migrated from pickles).
``models(model_key, labels, config, profile, updated_at)``
    what ``register_model`` was told: ``labels`` as a JSON object; ``config`` a
    ``raywatch.config`` record, version 1 (``{"format", "version", "config":
    MonitorConfig.to_data()}``: secrets as ``${ENV}`` references or masked, never resolved;
    NULL when the model runs on the actor's own configuration); ``profile`` the profile
    codec's bytes (``RWATCH`` + ``PR``, CRC-checked).
``state(key, kind, data, journal_id, updated_at)``
    the latest checkpoint, one JSON record per row, by ``kind``:

    * ``model`` (key: the model key): a ``raywatch.model-state`` record, version 1 — see
      :mod:`raywatch.aggregate.model`; its streaming detectors are ``raywatch.detector``
      records, version 1 (method, parameters and a replay of recent input — see
      :mod:`raywatch.aggregate.detectors`);
    * ``joiner`` (``__joiner__``): a ``raywatch.feedback-joiner`` record, version 1 — see
      :mod:`raywatch.aggregate.joiner`;
    * ``engine`` (``__engine__:<alerting key>``): a ``raywatch.alert-engine`` record,
      version 1 (``{"state": AlertEngine.state()}``);
    * ``counters`` (``__counters__``): a ``raywatch.counters`` record, version 1
      (``{"counters": {...}, "failures": {stage: count}}``).
``journal(id, kind, model_key, data, blob, ts)``
    every batch and label accepted since the last checkpoint: ``raywatch.journal.batch``
    and ``raywatch.journal.feedback`` records, version 1, a batch's window summary in
    ``blob`` — see :mod:`raywatch.aggregate.journal`. A restarted actor loads the
    checkpoint and replays the journal after it.
``windows(model_key, start, end, result)``
    one row per closed window (JSON): the history the report reads.
``alerts(id, ts, model_key, alertname, state, severity, labels, annotations, value)``
    alert transitions (firing, resolved).

A file of schema version 1 (pickled configs, state and journal) is migrated when it is
opened: see :mod:`raywatch.aggregate.migrate`.

Every write goes through :meth:`Store._write` (one transaction); reads return JSON text,
which the caller decodes and checks.

>>> import tempfile, os
>>> from raywatch.aggregate.journal import JournalRow
>>> path = os.path.join(tempfile.mkdtemp(), "s.sqlite")
>>> s = Store(path)
>>> oct(os.stat(path).st_mode & 0o777)
'0o600'
>>> jid = s.append_journal([JournalRow("feedback", None, '{"items": []}', None, 1.0)])
>>> [(kind, data) for _, kind, _, data, _ in s.journal_after(0)]
[('feedback', '{"items": []}')]
>>> s.checkpoint({"app/m": ("model", '{"format": "raywatch.model-state"}')}, journal_id=jid, now=2.0)
>>> list(s.journal_after(0)), s.load_state()["app/m"]
([], ('model', '{"format": "raywatch.model-state"}'))
>>> s.close()
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from typing import Any, Callable, Dict, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from raywatch.aggregate.data import report_json
from raywatch.aggregate.migrate import Migrated, migrate_v1
from raywatch.config import MonitorConfig

__all__ = ["Store", "StoredModel", "SCHEMA_VERSION"]

log = logging.getLogger("raywatch.aggregate.store")

SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (
    model_key TEXT PRIMARY KEY, labels TEXT NOT NULL, config TEXT, profile BLOB, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS state (
    key TEXT PRIMARY KEY, kind TEXT NOT NULL, data TEXT NOT NULL, journal_id INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS journal (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, model_key TEXT, data TEXT NOT NULL, blob BLOB,
    ts REAL NOT NULL);
CREATE TABLE IF NOT EXISTS windows (
    model_key TEXT NOT NULL, start REAL NOT NULL, "end" REAL NOT NULL, result TEXT NOT NULL,
    PRIMARY KEY (model_key, start));
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, model_key TEXT,
    alertname TEXT, state TEXT NOT NULL, severity TEXT, labels TEXT NOT NULL,
    annotations TEXT NOT NULL, value REAL);
CREATE INDEX IF NOT EXISTS alerts_ts ON alerts (ts);
"""

_JOURNAL_PAGE = 256  # journal rows read at a time during recovery


class StoredModel(NamedTuple):
    labels: Dict[str, Any]
    config: Optional[str]  # a raywatch.config record (JSON), or None
    profile: Optional[bytes]


def _create_owner_only(path: str) -> None:
    parent = os.path.dirname(path)
    if parent and not os.path.isdir(parent):
        os.makedirs(parent, mode=0o700, exist_ok=True)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        try:
            os.chmod(path, 0o600)  # a file an older raywatch created with the default mode
        except OSError:
            pass


class Store:
    """The stats actor's SQLite file. Not thread-safe: the actor uses it from its event loop.

    ``migrated`` tells what opening a schema-1 file converted (None otherwise); its
    ``configs`` are the models' configurations as they were unpickled, secrets included,
    for this run only (the file keeps them as data, secrets masked or referenced).
    """

    def __init__(self, path: str):
        self.path = os.path.abspath(os.path.expanduser(path))
        _create_owner_only(self.path)
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
        self.migrated: Optional[Migrated] = None
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            version = self._schema_version()
            if version == 1:
                self.migrated = migrate_v1(self._conn, SCHEMA, SCHEMA_VERSION)
                log.warning("%s: migrated from schema version 1 (pickles) to %d (data): %s", self.path, SCHEMA_VERSION,
                            self.migrated.summary())
            elif version is not None and version != SCHEMA_VERSION:
                raise RuntimeError(f"{self.path}: schema version {version}, this raywatch reads {SCHEMA_VERSION}")
            self._conn.executescript(SCHEMA)
            if version is None:
                self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        except BaseException:
            self._conn.close()
            raise

    def _schema_version(self) -> Optional[int]:
        if self._conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND name='meta'").fetchone() is None:
            return None
        row = self._conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row[0]) if row else None

    @property
    def migrated_configs(self) -> Dict[str, Optional[MonitorConfig]]:
        return self.migrated.configs if self.migrated is not None else {}

    def close(self) -> None:
        try:
            self._conn.close()
        except sqlite3.Error:  # pragma: no cover
            pass

    # ------------------------------------------------------------------ writes
    def _write(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``work`` in one transaction (every write of the store goes through here)."""
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            out = work(c)
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return out

    def save_model(self, model_key: str, labels: Mapping[str, Any], config: Optional[str], profile: Optional[bytes],
                   now: float) -> None:
        """Record a model; ``config`` is its ``raywatch.config`` record (JSON) or None."""
        self._write(lambda c: c.execute("INSERT OR REPLACE INTO models VALUES (?, ?, ?, ?, ?)",
                                        (model_key, json.dumps(dict(labels)), config, profile, now)))

    def append_journal(self, rows: Sequence[Tuple[str, Optional[str], str, Optional[bytes], float]]) -> int:
        """Append ``(kind, model_key, data, blob, ts)`` rows in one transaction (group commit);
        returns the id of the last one."""

        def work(c: sqlite3.Connection) -> int:
            c.executemany("INSERT INTO journal (kind, model_key, data, blob, ts) VALUES (?, ?, ?, ?, ?)", list(rows))
            return int(c.execute("SELECT last_insert_rowid()").fetchone()[0])

        return self._write(work)

    def checkpoint(self, states: Mapping[str, Tuple[str, str]], journal_id: int, now: float) -> None:
        """Write ``{key: (kind, data)}`` state rows and drop the journal entries they include,
        in one transaction. Engine rows not in ``states`` are deleted (retired engines)."""

        def work(c: sqlite3.Connection) -> None:
            c.execute("DELETE FROM state WHERE kind = 'engine'")
            c.executemany("INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?, ?)",
                          [(k, kind, data, journal_id, now) for k, (kind, data) in states.items()])
            c.execute("INSERT OR REPLACE INTO meta VALUES ('journal_id', ?)", (str(journal_id),))
            c.execute("DELETE FROM journal WHERE id <= ?", (journal_id,))

        self._write(work)

    def insert_window(self, model_key: str, start: float, end: float, result: Mapping[str, Any]) -> None:
        self._write(lambda c: c.execute("INSERT OR REPLACE INTO windows VALUES (?, ?, ?, ?)",
                                        (model_key, start, end, report_json(dict(result)))))

    def insert_alert(self, ts: float, model_key: Optional[str], event: Mapping[str, Any]) -> None:
        row = (ts, model_key, event.get("alertname"), event.get("state"), event.get("severity"),
               report_json(event.get("labels") or {}), report_json(event.get("annotations") or {}), event.get("value"))
        self._write(lambda c: c.execute(
            "INSERT INTO alerts (ts, model_key, alertname, state, severity, labels, annotations, value)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row))

    def prune(self, before: float) -> int:
        """Delete history older than ``before`` (UTC epoch seconds)."""

        def work(c: sqlite3.Connection) -> int:
            n = c.execute('DELETE FROM windows WHERE "end" < ?', (before,)).rowcount
            return int(n + c.execute("DELETE FROM alerts WHERE ts < ?", (before,)).rowcount)

        return self._write(work)

    # ------------------------------------------------------------------ reads
    def get_meta(self, key: str) -> Optional[str]:
        row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def load_models(self) -> Dict[str, StoredModel]:
        return {key: StoredModel(json.loads(labels), config, profile)
                for key, labels, config, profile in self._conn.execute("SELECT model_key, labels, config, profile FROM models")}

    def load_state(self) -> Dict[str, Tuple[str, str]]:
        """``{key: (kind, data)}`` of the last checkpoint."""
        return {k: (kind, data) for k, kind, data in self._conn.execute("SELECT key, kind, data FROM state")}

    def checkpoint_journal_id(self) -> int:
        v = self.get_meta("journal_id")
        return int(v) if v else 0

    def journal_after(self, journal_id: int) -> Iterator[Tuple[int, str, Optional[str], str, Optional[bytes]]]:
        """``(id, kind, model_key, data, blob)`` of the entries after ``journal_id``, oldest
        first, read a page at a time."""
        last = journal_id
        while True:
            rows = self._conn.execute("SELECT id, kind, model_key, data, blob FROM journal WHERE id > ? ORDER BY id LIMIT ?",
                                      (last, _JOURNAL_PAGE)).fetchall()
            yield from rows
            if len(rows) < _JOURNAL_PAGE:
                return
            last = rows[-1][0]

    def journal_size(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0])

    def windows(self, model_key: Optional[str] = None, since: Optional[float] = None, limit: int = 10_000) -> List[Dict[str, Any]]:
        rows = self._newest('SELECT model_key, result FROM windows WHERE "end" > ?', "start", model_key, since, limit)
        out = []
        for k, r in rows:
            r = json.loads(r)
            r["model_key"] = k
            out.append(r)
        return out

    def alerts(self, model_key: Optional[str] = None, since: Optional[float] = None, limit: int = 10_000) -> List[Dict[str, Any]]:
        rows = self._newest(
            "SELECT ts, model_key, alertname, state, severity, labels, annotations, value FROM alerts WHERE ts > ?",
            "id", model_key, since, limit,
        )
        return [
            {"ts": ts, "model_key": mk, "alertname": name, "state": state, "severity": sev,
             "labels": json.loads(labels), "annotations": json.loads(ann), "value": value}
            for ts, mk, name, state, sev, labels, ann, value in rows
        ]

    def _newest(self, query: str, order_by: str, model_key: Optional[str], since: Optional[float], limit: int) -> List[Any]:
        """The last ``limit`` rows by ``order_by`` of ``query`` (which ends in a time ``> ?``:
        ``since``, or all), of one model or all, oldest first."""
        args: List[Any] = [since if since is not None else float("-inf")]
        if model_key is not None:
            query += " AND model_key = ?"
            args.append(model_key)
        query += f" ORDER BY {order_by} DESC LIMIT ?"
        args.append(int(limit))
        rows = list(self._conn.execute(query, args))
        rows.reverse()
        return rows

    def counts(self) -> Dict[str, int]:
        return {
            t: int(self._conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])
            for t in ("models", "state", "journal", "windows", "alerts")
        }

    def __repr__(self) -> str:
        return f"Store({self.path!r})"
