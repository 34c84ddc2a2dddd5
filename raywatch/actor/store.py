"""SQLite persistence of the stats actor: state checkpoints, an ingest journal, history.

One file (WAL mode, ``synchronous=NORMAL``: a commit survives the process being killed,
which is what ``ray.kill`` does). Tables:

``meta(key, value)``
    schema version and the actor's identity.
``models(model_key, labels, config, profile, updated_at)``
    what ``register_model`` was told: labels as JSON, the validated config pickled (it
    keeps sink secrets, so the file is created readable by its owner only), the profile
    as bytes.
``state(key, blob, journal_id, updated_at)``
    the latest checkpoint of each model's state (open windows, counters, per-replica
    sequence numbers, detectors, feedback accumulators) and of the actor-wide parts
    (``"__joiner__"``, ``"__engine__:<id>"``), pickled; ``journal_id`` is the last journal
    entry the checkpoint includes.
``journal(id, kind, model_key, payload, ts)``
    every batch and label ingested since the last checkpoint. A restarted actor loads the
    checkpoint and replays the journal after it, so nothing that was acknowledged to a
    replica is lost; duplicates are dropped by ``(replica_id, seq)`` as in normal ingest.
``windows(model_key, start, end, result)``
    one row per closed window (JSON): the history the report reads.
``alerts(id, ts, model_key, alertname, state, severity, labels, annotations, value)``
    alert transitions (firing, resolved).

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "s.sqlite")
>>> s = Store(path)
>>> jid = s.journal_append("batch", "app/m", b"payload", ts=1.0)
>>> [(k, m, p) for _, k, m, p in s.journal_after(0)]
[('batch', 'app/m', b'payload')]
>>> s.checkpoint({"app/m": b"state"}, journal_id=jid)
>>> s.journal_after(0), s.load_state()["app/m"]
([], b'state')
>>> s.close()
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import sqlite3
import time
from typing import Any, Dict, List, Mapping, Optional, Tuple

__all__ = ["Store", "SCHEMA_VERSION"]

log = logging.getLogger("raywatch.actor.store")

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (
    model_key TEXT PRIMARY KEY, labels TEXT NOT NULL, config BLOB NOT NULL,
    profile BLOB, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS state (
    key TEXT PRIMARY KEY, blob BLOB NOT NULL, journal_id INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS journal (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, model_key TEXT,
    payload BLOB NOT NULL, ts REAL NOT NULL);
CREATE TABLE IF NOT EXISTS windows (
    model_key TEXT NOT NULL, start REAL NOT NULL, "end" REAL NOT NULL, result TEXT NOT NULL,
    PRIMARY KEY (model_key, start));
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, model_key TEXT,
    alertname TEXT, state TEXT NOT NULL, severity TEXT, labels TEXT NOT NULL,
    annotations TEXT NOT NULL, value REAL);
CREATE INDEX IF NOT EXISTS alerts_ts ON alerts (ts);
"""


def _json_default(o: Any) -> Any:
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    if isinstance(o, bytes):
        return o.hex()
    return str(o)


def dumps(obj: Any) -> str:
    """JSON with numpy scalars and NaN handled (NaN/inf become null)."""
    return json.dumps(_finite(obj), default=_json_default, separators=(",", ":"))


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


class Store:
    """The stats actor's SQLite file. Not thread-safe: the actor uses it from its event loop."""

    def __init__(self, path: str, *, readonly: bool = False):
        self.path = os.path.abspath(os.path.expanduser(path))
        self.readonly = readonly
        if readonly:
            if not os.path.exists(self.path):
                raise FileNotFoundError(f"{self.path}: no such raywatch SQLite file")
            self._conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None,
                                         check_same_thread=False, timeout=10.0)
            row = self._conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None or int(row[0]) != SCHEMA_VERSION:
                raise RuntimeError(f"{self.path}: not a raywatch stats file of schema version {SCHEMA_VERSION}")
            return
        parent = os.path.dirname(self.path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        row = self._conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            self._conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) != SCHEMA_VERSION:
            raise RuntimeError(f"{self.path}: schema version {row[0]}, this raywatch reads {SCHEMA_VERSION}")

    def close(self) -> None:
        try:
            self._conn.close()
        except sqlite3.Error:  # pragma: no cover
            pass

    # ------------------------------------------------------------------ meta / models
    def set_meta(self, key: str, value: str) -> None:
        self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def get_meta(self, key: str) -> Optional[str]:
        row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def save_model(self, model_key: str, labels: Mapping[str, Any], config: Any, profile: Optional[bytes]) -> None:
        """Record a model; ``config`` is kept pickled (a pydantic model with its secrets)."""
        self._conn.execute(
            "INSERT OR REPLACE INTO models VALUES (?, ?, ?, ?, ?)",
            (model_key, dumps(dict(labels)), pickle.dumps(config, protocol=pickle.HIGHEST_PROTOCOL), profile, time.time()),
        )

    def load_models(self) -> Dict[str, Tuple[Dict[str, Any], Any, Optional[bytes]]]:
        out = {}
        for key, labels, config, profile, _ in self._conn.execute("SELECT * FROM models"):
            try:
                cfg = pickle.loads(config)
            except Exception as exc:  # written by an incompatible raywatch: defaults
                log.warning("model %s: stored config unreadable (%s); using the actor's", key, exc)
                cfg = None
            out[key] = (json.loads(labels), cfg, profile)
        return out

    # ------------------------------------------------------------------ journal
    def journal_append(self, kind: str, model_key: Optional[str], payload: bytes, ts: Optional[float] = None) -> int:
        cur = self._conn.execute(
            "INSERT INTO journal (kind, model_key, payload, ts) VALUES (?, ?, ?, ?)",
            (kind, model_key, payload, time.time() if ts is None else ts),
        )
        return int(cur.lastrowid)

    def journal_append_many(self, entries: List[Tuple[str, Optional[str], bytes, float]]) -> int:
        """Append ``(kind, model_key, payload, ts)`` entries in one transaction (group
        commit); returns the id of the last one."""
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            cur = c.executemany("INSERT INTO journal (kind, model_key, payload, ts) VALUES (?, ?, ?, ?)", entries)
            last = int(c.execute("SELECT last_insert_rowid()").fetchone()[0])
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        del cur
        return last

    def journal_after(self, journal_id: int) -> List[Tuple[int, str, Optional[str], bytes]]:
        return list(
            self._conn.execute("SELECT id, kind, model_key, payload FROM journal WHERE id > ? ORDER BY id", (journal_id,))
        )

    def journal_size(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0])

    # ------------------------------------------------------------------ checkpoints
    def checkpoint(self, blobs: Mapping[str, bytes], journal_id: int) -> None:
        """Write state blobs and drop the journal entries they include, in one transaction."""
        now = time.time()
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            c.executemany(
                "INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?)",
                [(k, v, journal_id, now) for k, v in blobs.items()],
            )
            c.execute("INSERT OR REPLACE INTO meta VALUES ('journal_id', ?)", (str(journal_id),))
            c.execute("DELETE FROM journal WHERE id <= ?", (journal_id,))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def checkpoint_journal_id(self) -> int:
        v = self.get_meta("journal_id")
        return int(v) if v else 0

    def load_state(self) -> Dict[str, bytes]:
        return {k: b for k, b in self._conn.execute("SELECT key, blob FROM state")}

    def delete_state(self, key: str) -> None:
        self._conn.execute("DELETE FROM state WHERE key=?", (key,))

    # ------------------------------------------------------------------ history
    def insert_window(self, model_key: str, start: float, end: float, result: Mapping[str, Any]) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO windows VALUES (?, ?, ?, ?)", (model_key, start, end, dumps(dict(result)))
        )

    def windows(
        self, model_key: Optional[str] = None, since: Optional[float] = None, limit: int = 10_000
    ) -> List[Dict[str, Any]]:
        rows = self._newest('SELECT model_key, result FROM windows WHERE "end" > ?', "start", model_key, since, limit)
        out = []
        for k, r in rows:
            r = json.loads(r)
            r["model_key"] = k
            out.append(r)
        return out

    def insert_alert(self, ts: float, model_key: Optional[str], event: Mapping[str, Any]) -> None:
        self._conn.execute(
            "INSERT INTO alerts (ts, model_key, alertname, state, severity, labels, annotations, value)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                ts,
                model_key,
                event.get("alertname"),
                event.get("state"),
                event.get("severity"),
                dumps(event.get("labels") or {}),
                dumps(event.get("annotations") or {}),
                event.get("value"),
            ),
        )

    def alerts(self, model_key: Optional[str] = None, since: Optional[float] = None, limit: int = 10_000) -> List[Dict[str, Any]]:
        rows = self._newest(
            "SELECT ts, model_key, alertname, state, severity, labels, annotations, value FROM alerts WHERE ts > ?",
            "id", model_key, since, limit,
        )
        return [
            {
                "ts": ts,
                "model_key": mk,
                "alertname": name,
                "state": state,
                "severity": sev,
                "labels": json.loads(labels),
                "annotations": json.loads(ann),
                "value": value,
            }
            for ts, mk, name, state, sev, labels, ann, value in rows
        ]

    def _newest(
        self, query: str, order_by: str, model_key: Optional[str], since: Optional[float], limit: int
    ) -> List[Any]:
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

    def prune(self, before: float) -> int:
        """Delete history older than ``before`` (UTC epoch seconds)."""
        c = self._conn
        n = c.execute('DELETE FROM windows WHERE "end" < ?', (before,)).rowcount
        n += c.execute("DELETE FROM alerts WHERE ts < ?", (before,)).rowcount
        return int(n)

    def counts(self) -> Dict[str, int]:
        return {
            t: int(self._conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])
            for t in ("models", "state", "journal", "windows", "alerts")
        }

    def __repr__(self) -> str:
        return f"Store({self.path!r})"
