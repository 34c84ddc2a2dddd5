"""SQLite persistence of the stats actor: state checkpoints, an ingest journal, history.

One file (WAL mode, ``synchronous=NORMAL``: a commit survives the process being killed,
which is what ``ray.kill`` does; ``secure_delete=FAST``: deleted rows are zeroed where that
costs no extra write, freed overflow pages are reused as they are). It is owner-only from creation: the folder ``0700`` when
the store creates it (and ``~/.raywatch``, the default folder, tightened to ``0700``), the
database, its WAL and SHM ``0600`` — created under a ``077`` umask, and tightened when an
older raywatch left them readable (a folder the store did not create is left as it is) —
and so are the journal's summary files beside it (``<file>.blobs/``, folder ``0700``, files
``0600``).

Opening checks the file (:ref:`repair`). Nothing in it is a pickle: every value is JSON text, or the checksummed codec bytes of
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
      (``{"counters": {...}, "failures": {stage: count}}``);
    * ``placement`` (``__placement__``, once the shard knows more than its configuration
      says): a ``raywatch.placement`` record, version 1 — the shard count, the models handed
      over and where to, the hand-overs taken (see :mod:`raywatch.aggregate.rebalance`);
    * ``handover`` (``__handover__:<model key>``): a ``raywatch.model-handover`` record,
      version 1, of a model this shard handed over and has not forgotten yet (written by
      :meth:`Store.place`, not by checkpoints; it holds back no journal trim).
``journal(id, kind, model_key, data, blob, ts, blob_seg, blob_off, blob_len)``
    every batch and label accepted since the last checkpoint: ``raywatch.journal.batch``
    and ``raywatch.journal.feedback`` records, version 1 — see
    :mod:`raywatch.aggregate.journal`. A batch's window summary is in the summary files
    beside the store (``<file>.blobs/``, :mod:`raywatch.aggregate.blobfiles`) at ``(blob_seg,
    blob_off, blob_len)``; a row an earlier release wrote holds it in ``blob``. A restarted
    actor loads the checkpoint and replays the journal after it. (The three ``blob_*``
    columns came after schema 2 was released; a schema-2 file without them gets them when
    opened.)
``windows(model_key, start, end, result)``
    one row per closed window (JSON): the history the report reads.
``alerts(id, ts, model_key, alertname, state, severity, labels, annotations, value)``
    alert transitions (firing, resolved).
``audit(seq, id, ts, model_key, decision, kind, data)``
    the remediation audit trail: one ``raywatch.audit`` record, version 1, per decision step
    (see :mod:`raywatch.aggregate.audit`). A compliance record: :meth:`Store.prune` never
    deletes from it, nor does :meth:`Store.forget_model`. (The table came with issue 14; a
    schema-2 file without it gets it when opened.)

A file of schema version 1 (pickled configs, state and journal) is migrated when it is
opened: see :mod:`raywatch.aggregate.migrate`.

Every write goes through :meth:`Store._write` (one transaction, on the writer connection,
whose busy timeout is short: a locked file fails the write, it does not stall for long);
:meth:`Store.submit` runs a write on the store's single writer thread when the store was
opened with ``background=True`` (the stats actor, whose event loop must not wait on the
disk). Reads use a connection of their own and return JSON text, which the caller decodes
and checks.

.. _repair:

Repair on open
--------------
A file SQLite cannot read (a damaged header: "file is not a database"), one whose
integrity check fails (``PRAGMA quick_check`` by default, bounded in time: a check cut
short is recorded as ``check_timeout`` and the file is used), or an empty (zero-length)
file that was there before — SQLite would silently start an empty database in it — is
moved aside as ``<name>.corrupt-<UTC time>`` (its WAL and SHM with it, as
``<moved>-wal`` / ``<moved>-shm``, so the moved file still opens with them), and a fresh
store starts in its place. What the moved file still holds is then salvaged into the fresh
one table by table, a page of rows at a time: a damaged table costs only its damaged rows.
Each event is in :attr:`Store.repairs` (``kind``, ``path``, ``moved_to``, ``detail``,
``salvaged``: rows and damaged pages per table); the stats actor counts it, logs it,
shows it in status and raises its built-in ``RaywatchStoreCorrupt`` alert. A locked file,
a file of a newer schema or one an unsafe pickle names are not "corrupt": they raise.

>>> import tempfile, os
>>> from raywatch.aggregate.journal import JournalRow
>>> path = os.path.join(tempfile.mkdtemp(), "s.sqlite")
>>> s = Store(path)
>>> oct(os.stat(path).st_mode & 0o777)
'0o600'
>>> jid = s.append_journal([JournalRow("feedback", None, '{"items": []}', None, 1.0)])
>>> [(kind, data) for _, kind, _, data, _ in s.journal_after(0)]
[('feedback', '{"items": []}')]
>>> s.checkpoint({"app/m": ("model", '{"format": "raywatch.model-state"}')}, journal_id=jid, now=2.0)  # trimmed to
1
>>> list(s.journal_after(0)), s.load_state()["app/m"]
([], ('model', '{"format": "raywatch.model-state"}'))
>>> s.close()
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable, Dict, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from raywatch.aggregate.audit import AUDIT_SCHEMA, AuditLog
from raywatch.aggregate.blobfiles import BlobFiles
from raywatch.aggregate.data import report_json
from raywatch.aggregate.migrate import Migrated, migrate_v1
from raywatch.config import MonitorConfig

__all__ = ["Store", "StoredModel", "SCHEMA_VERSION", "is_corruption", "owner_only_umask", "DEFAULT_DIR", "open_audit_log"]

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
    ts REAL NOT NULL, blob_seg INTEGER, blob_off INTEGER, blob_len INTEGER);
CREATE TABLE IF NOT EXISTS windows (
    model_key TEXT NOT NULL, start REAL NOT NULL, "end" REAL NOT NULL, result TEXT NOT NULL,
    PRIMARY KEY (model_key, start));
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, model_key TEXT,
    alertname TEXT, state TEXT NOT NULL, severity TEXT, labels TEXT NOT NULL,
    annotations TEXT NOT NULL, value REAL);
CREATE INDEX IF NOT EXISTS alerts_ts ON alerts (ts);
""" + AUDIT_SCHEMA

TABLES: Dict[str, Tuple[str, ...]] = {  # salvage order and columns
    "meta": ("key", "value"),
    "models": ("model_key", "labels", "config", "profile", "updated_at"),
    "state": ("key", "kind", "data", "journal_id", "updated_at"),
    "journal": ("id", "kind", "model_key", "data", "blob", "ts", "blob_seg", "blob_off", "blob_len"),
    "windows": ("model_key", "start", '"end"', "result"),
    "alerts": ("id", "ts", "model_key", "alertname", "state", "severity", "labels", "annotations", "value"),
    "audit": ("seq", "id", "ts", "model_key", "decision", "kind", "data"),
}

JSON_COLUMNS: Dict[str, Tuple[str, ...]] = {  # text columns that hold JSON: a salvaged row must still parse
    "models": ("labels",), "state": ("data",), "journal": ("data",), "windows": ("result",),
    "alerts": ("labels", "annotations"),
}

_JOURNAL_PAGE = 256  # journal rows read at a time during recovery
_SALVAGE_PAGE = 64  # rows read at a time from a damaged file
_SALVAGE_MISSES = 64  # unreadable steps in a row before a table's salvage stops (each skips twice as far)
_CHECK_STEPS = 1000  # SQLite VM steps between two looks at the integrity check's deadline
DEFAULT_DIR = os.path.join("~", ".raywatch")
_ENTRY_BYTES = "length(data) + COALESCE(length(blob), blob_len, 0)"
_BLOB_COLUMNS = (("blob_seg", "INTEGER"), ("blob_off", "INTEGER"), ("blob_len", "INTEGER"))  # (journal summaries in files)


class StoredModel(NamedTuple):
    labels: Dict[str, Any]
    config: Optional[str]  # a raywatch.config record (JSON), or None
    profile: Optional[bytes]


def is_corruption(exc: BaseException) -> bool:
    """Whether an SQLite error says the file is damaged or not a database (rather than
    locked, read-only or missing)."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return True
    text = str(exc)
    return type(exc) is sqlite3.DatabaseError and ("malformed" in text or "not a database" in text)


_umask_lock = threading.Lock()


@contextlib.contextmanager
def owner_only_umask() -> Iterator[None]:
    """Files and folders created inside are owner-only (umask 077), whatever the process's
    umask (SQLite creates the WAL and SHM files itself)."""
    with _umask_lock:
        old = os.umask(0o077)
        try:
            yield
        finally:
            os.umask(old)


def _chmod(path: str, mode: int) -> None:
    try:
        if os.path.exists(path) and (os.stat(path).st_mode & 0o777) != mode:
            os.chmod(path, mode)
    except OSError as exc:  # not ours: say so, never fail on it
        log.warning("cannot make %s owner-only: %s", path, exc)


def _prepare_folder(parent: str) -> None:
    """Create the folder (and missing parents) ``0700``; tighten ``~/.raywatch`` when an
    older raywatch created it with the default mode. Other existing folders are not changed."""
    if not parent:
        return
    if not os.path.isdir(parent):
        with owner_only_umask():
            os.makedirs(parent, mode=0o700, exist_ok=True)
        _chmod(parent, 0o700)
    elif os.path.abspath(parent) == os.path.abspath(os.path.expanduser(DEFAULT_DIR)):
        _chmod(parent, 0o700)
    elif os.stat(parent).st_mode & 0o077:
        log.info("%s is readable by others; raywatch's files in it are owner-only (0600)", parent)


def _add_columns(conn: sqlite3.Connection, table: str, columns: Sequence[Tuple[str, str]]) -> None:
    """Add the nullable ``columns`` (name, type) a file from an earlier release lacks."""
    have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
    for name, kind in columns:
        if name not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


def _present(src: sqlite3.Connection, table: str, columns: Tuple[str, ...]) -> Tuple[str, ...]:
    """The ``columns`` a (possibly damaged, possibly older) file's ``table`` has: all of them
    when its schema cannot be read."""
    try:
        have = {row[1] for row in src.execute(f"PRAGMA table_info({table})")}
    except sqlite3.Error:
        return columns
    kept = tuple(c for c in columns if c.strip('"') in have)
    return kept if have and kept else columns


def _siblings(path: str) -> Tuple[str, str]:
    return path + "-wal", path + "-shm"


def _utc_stamp(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def move_aside(path: str, now: float) -> str:
    """Rename ``path`` (and its WAL and SHM) to ``<path>.corrupt-<UTC time>``; returns the new name."""
    target = f"{path}.corrupt-{_utc_stamp(now)}"
    n = 1
    while os.path.exists(target):
        n += 1
        target = f"{path}.corrupt-{_utc_stamp(now)}-{n}"
    for src, dst in ((path, target),) + tuple(zip(_siblings(path), _siblings(target))):
        if os.path.exists(src):
            os.replace(src, dst)
            _chmod(dst, 0o600)
    return target


class _Deadline:
    """A progress handler that interrupts a statement past ``seconds``."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds
        self.hit = False

    def __call__(self) -> int:
        if time.monotonic() > self.end:
            self.hit = True
            return 1
        return 0


def _parses(text: Any) -> bool:
    """Whether a JSON column's value still parses (a NULL is left to the column's constraint)."""
    if text is None:
        return True
    try:
        json.loads(text)
        return True
    except (TypeError, ValueError):
        return False


def _loads(text: Any, table: str) -> Any:
    """A history row's JSON, or None (logged) for one whose bytes were damaged on disk."""
    try:
        return json.loads(text)
    except (TypeError, ValueError) as exc:
        log.warning("a row of %s that no longer parses was skipped (%s)", table, exc)
        return None


class Store:
    """The stats actor's SQLite file (see the module docstring).

    Parameters
    ----------
    path
        The database file (``~`` expanded).
    integrity_check
        ``"quick"`` (``PRAGMA quick_check``), ``"full"`` (``integrity_check``) or ``"off"``.
    check_timeout
        Longest the check may run (seconds); cut short, the file is used and the event
        recorded (``check_timeout``).
    busy_timeout
        Seconds a write waits for a lock held by another connection before it fails.
    background
        Run :meth:`submit` work on one writer thread (otherwise at once, in the caller).
    clock
        UTC epoch seconds (the time in a moved-aside file's name and in the events).
    blobs_of
        This file is a copy of the store at ``blobs_of``: the journal's summary files are
        that store's (``<blobs_of>.blobs``), read and never written or deleted.

    ``migrated`` tells what opening a schema-1 file converted (None otherwise); its
    ``configs`` are the models' configurations as they were unpickled, secrets included,
    for this run only (the file keeps them as data, secrets masked or referenced).
    ``repairs`` lists what opening repaired; ``check`` is the integrity check's outcome
    (``"ok"``, ``"new"``, ``"skipped"``, ``"timeout"``, ``"repaired"``).
    """

    def __init__(self, path: str, *, integrity_check: str = "quick", check_timeout: float = 10.0,
                 busy_timeout: float = 10.0, background: bool = False, clock: Callable[[], float] = time.time,
                 blobs_of: Optional[str] = None):
        self.path = os.path.abspath(os.path.expanduser(path))
        self.integrity_check = integrity_check
        self.check_timeout = float(check_timeout)
        self.busy_timeout = float(busy_timeout)
        self.clock = clock
        self.repairs: List[Dict[str, Any]] = []
        self.check = "ok"
        self.migrated: Optional[Migrated] = None
        self.journal_bytes = 0
        self.journal_entries = 0
        self._executor: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._wlock = threading.RLock()
        _prepare_folder(os.path.dirname(self.path))
        self.blobs = (BlobFiles(self.path + ".blobs") if blobs_of is None else  # a copy: the original's, read only
                      BlobFiles(os.path.abspath(os.path.expanduser(blobs_of)) + ".blobs", read_only=True))
        self._conn, self._read = self._open()
        self._count_journal()
        if background:
            self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="raywatch-store")

    # ------------------------------------------------------------------ opening
    def _event(self, kind: str, detail: str, moved_to: Optional[str] = None, **extra: Any) -> Dict[str, Any]:
        ev = {"ts": self.clock(), "kind": kind, "path": self.path, "moved_to": moved_to, "detail": detail, **extra}
        self.repairs.append(ev)
        return ev

    def _open(self) -> Tuple[sqlite3.Connection, sqlite3.Connection]:
        path = self.path
        existed = os.path.exists(path)
        if existed and os.path.getsize(path) == 0:
            moved = move_aside(path, self.clock())
            log.error("%s was empty (zero length): moved aside as %s; a fresh store starts", path, moved)
            self._event("empty", "the file was empty (zero length)", moved)
            existed = False
        elif not existed and any(os.path.exists(p) for p in _siblings(path)):
            moved = move_aside(path, self.clock())  # a WAL without its database: never apply it to a new one
            log.error("%s: a WAL/SHM without its database: moved aside as %s", path, moved)
            self._event("orphan", "a WAL or SHM file without its database", moved)
        try:
            return self._connect(check=existed)
        except sqlite3.DatabaseError as exc:
            if not is_corruption(exc):
                raise
            moved = move_aside(path, self.clock())
            log.error("%s is damaged (%s): moved aside as %s; a fresh store starts and what can be read is "
                      "salvaged table by table", path, exc, moved)
            ev = self._event("corrupt", str(exc), moved)
            conns = self._connect(check=False)
            self.check = "repaired"
            ev["salvaged"] = self._salvage(moved, conns[0])
            return conns

    def _connect(self, check: bool) -> Tuple[sqlite3.Connection, sqlite3.Connection]:
        path = self.path
        with owner_only_umask():
            try:
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except FileExistsError:
                pass
            for p in (path,) + _siblings(path):
                _chmod(p, 0o600)  # a file an older raywatch created with the default mode
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=self.busy_timeout)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                # Deleted cells are still zeroed in their pages, but a freed overflow page is not
                # rewritten with zeros. Debian's SQLite defaults to secure_delete=ON: each checkpoint's
                # rewrite of the state rows (which hold window summaries) and the journal's trim then
                # wrote every freed page again. (The journal's summaries are in files now: blobfiles.)
                conn.execute("PRAGMA secure_delete=FAST")
                if check:
                    self._check(conn)
                else:
                    self.check = "new"
                version = self._schema_version(conn)
                if version == 1:
                    self.migrated = migrate_v1(conn, SCHEMA, SCHEMA_VERSION)
                    log.warning("%s: migrated from schema version 1 (pickles) to %d (data): %s", path, SCHEMA_VERSION,
                                self.migrated.summary())
                elif version is not None and version != SCHEMA_VERSION:
                    raise RuntimeError(f"{path}: schema version {version}, this raywatch reads {SCHEMA_VERSION}")
                conn.executescript(SCHEMA)
                _add_columns(conn, "journal", _BLOB_COLUMNS)
                if version is None:
                    conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                read = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=self.busy_timeout)
            except BaseException:
                conn.close()
                raise
            for p in _siblings(path):
                _chmod(p, 0o600)
        return conn, read

    def _check(self, conn: sqlite3.Connection) -> None:
        """The integrity check, bounded in time; DatabaseError when the file is damaged."""
        if self.integrity_check == "off":
            self.check = "skipped"
            return
        pragma = "integrity_check" if self.integrity_check == "full" else "quick_check"
        deadline = _Deadline(self.check_timeout)
        conn.set_progress_handler(deadline, _CHECK_STEPS)
        try:
            rows = [r[0] for r in conn.execute(f"PRAGMA {pragma}(20)")]
        except sqlite3.OperationalError as exc:
            if not deadline.hit:
                raise
            log.warning("%s: the integrity check did not finish in %.1f s; the file is used as it is (%s)",
                        self.path, self.check_timeout, exc)
            self.check = "timeout"
            self._event("check_timeout", f"{pragma} did not finish in {self.check_timeout:g} s")
            return
        finally:
            conn.set_progress_handler(None, 0)
        if rows != ["ok"]:
            raise sqlite3.DatabaseError(f"database disk image is malformed ({pragma}: {'; '.join(rows[:5])})")
        self.check = "ok"

    @staticmethod
    def _schema_version(conn: sqlite3.Connection) -> Optional[int]:
        if conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND name='meta'").fetchone() is None:
            return None
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row[0]) if row else None

    def _salvage(self, moved: str, conn: sqlite3.Connection) -> Dict[str, Dict[str, int]]:
        """Copy what the moved-aside file still holds into the fresh store, table by table
        and a page of rows at a time; returns ``{table: {"rows", "damaged"}}`` (``damaged``:
        pages that could not be read, and rows read from a damaged page whose JSON no longer
        parses, which are left behind)."""
        out: Dict[str, Dict[str, int]] = {}
        try:
            src = sqlite3.connect(f"file:{moved}?mode=ro", uri=True, timeout=self.busy_timeout)
        except sqlite3.Error as exc:
            log.error("%s: nothing salvaged (%s)", moved, exc)
            return out
        try:
            try:
                src.execute("PRAGMA writable_schema=ON")  # read a truncated file up to its end (never written here)
                version = self._schema_version(src)
            except sqlite3.Error as exc:
                log.error("%s: nothing salvaged, its schema cannot be read (%s)", moved, exc)
                return out
            if version != SCHEMA_VERSION:
                log.error("%s: nothing salvaged (schema version %s)", moved, version)
                return out
            for table, columns in TABLES.items():
                try:
                    present = src.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,)).fetchone()
                except sqlite3.Error:
                    present = True  # a damaged schema page: try the table anyway
                if present:  # (a file from before a table existed has none of its rows)
                    out[table] = self._salvage_table(src, conn, table, _present(src, table, columns))
        finally:
            src.close()
        log.warning("%s: salvaged %s", moved, {t: v["rows"] for t, v in out.items()})
        return out

    @staticmethod
    def _salvage_table(src: sqlite3.Connection, dst: sqlite3.Connection, table: str,
                       columns: Tuple[str, ...]) -> Dict[str, int]:
        cols = ", ".join(columns)
        marks = ", ".join("?" * len(columns))
        checked = [i for i, c in enumerate(columns) if c in JSON_COLUMNS.get(table, ())]
        rows = damaged = 0
        try:
            top = src.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0]
        except sqlite3.Error:
            top = None  # the table's last pages are damaged: stop at the first damage
        last = misses = 0
        while True:
            try:
                page = src.execute(f"SELECT rowid, {cols} FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?",
                                   (last, _SALVAGE_PAGE)).fetchall()
                raw = len(page)
                # a damaged tree can answer rows at or below ``last`` again and again: every
                # step must move forward, or it is damage
                page = [r for r in page if isinstance(r[0], int) and r[0] > last]
                if raw and not page:
                    raise sqlite3.DatabaseError("rows out of order")
            except sqlite3.Error:
                damaged += 1
                misses += 1
                if top is None or last >= top or misses > _SALVAGE_MISSES:
                    break
                last += _SALVAGE_PAGE << min(misses - 1, 32)  # skip past the damage, further each time
                continue
            misses = 0
            if not page:
                break
            good = [r[1:] for r in page if all(_parses(r[1 + i]) for i in checked)]
            damaged += len(page) - len(good)
            try:
                dst.executemany(f"INSERT OR REPLACE INTO {table} ({cols}) VALUES ({marks})", good)
                rows += len(good)
            except sqlite3.Error:
                damaged += 1
            last = page[-1][0]
        return {"rows": rows, "damaged": damaged}

    @property
    def migrated_configs(self) -> Dict[str, Optional[MonitorConfig]]:
        return self.migrated.configs if self.migrated is not None else {}

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        for conn in (self._read, self._conn):
            try:
                conn.close()
            except sqlite3.Error:  # pragma: no cover
                pass
        self.blobs.close()

    # ------------------------------------------------------------------ writes
    def submit(self, fn: Callable[..., Any], *args: Any) -> "concurrent.futures.Future[Any]":
        """Run ``fn(*args)`` on the writer thread (in order with every other submitted
        write); at once, in the caller, when the store has no writer thread."""
        if self._executor is not None:
            return self._executor.submit(fn, *args)
        fut: "concurrent.futures.Future[Any]" = concurrent.futures.Future()
        try:
            fut.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            fut.set_exception(exc)
        return fut

    def _write(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``work`` in one transaction (every write of the store goes through here; one
        at a time, whichever thread calls)."""
        c = self._conn
        with self._wlock:
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
        returns the id of the last one. The blobs go to the journal's summary files first
        (:mod:`raywatch.aggregate.blobfiles`), each row with where its blob is."""
        rows = list(rows)

        def work(c: sqlite3.Connection) -> int:
            c.executemany("INSERT INTO journal (kind, model_key, data, blob, ts, blob_seg, blob_off, blob_len)"
                          " VALUES (?, ?, ?, NULL, ?, ?, ?, ?)", table)
            return int(c.execute("SELECT last_insert_rowid()").fetchone()[0])

        with self._wlock:
            blobs = [r[3] for r in rows if r[3] is not None]
            refs = iter(self.blobs.append(blobs) if blobs else ())
            table = [(r[0], r[1], r[2], r[4]) + (next(refs) if r[3] is not None else (None, None, None)) for r in rows]
            last = self._write(work)
            self.journal_entries += len(rows)
            self.journal_bytes += sum(len(r[2]) for r in rows) + sum(map(len, blobs))
        return last

    def checkpoint(self, states: Mapping[str, Tuple[str, str]], journal_id: int, now: float) -> int:
        """Write ``{key: (kind, data)}`` state rows (each including the journal up to
        ``journal_id``) and drop the journal entries that *every* state row includes, in one
        transaction: a row this checkpoint could not write keeps its older ``journal_id``,
        and the journal is kept from there. Engine rows not in ``states`` are deleted
        (retired engines). Returns the journal id trimmed to."""

        def work(c: sqlite3.Connection) -> Tuple[int, int, int]:
            c.execute("DELETE FROM state WHERE kind = 'engine'")
            c.executemany("INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?, ?)",
                          [(k, kind, data, journal_id, now) for k, (kind, data) in states.items()])
            low = c.execute("SELECT MIN(journal_id) FROM state WHERE kind NOT IN ('engine', 'handover')").fetchone()[0]
            trim = int(journal_id if low is None else min(low, journal_id))
            c.execute("INSERT OR REPLACE INTO meta VALUES ('journal_id', ?)", (str(trim),))
            n, size = c.execute(f"SELECT COUNT(*), COALESCE(SUM({_ENTRY_BYTES}), 0) FROM journal WHERE id <= ?",
                                (trim,)).fetchone()
            c.execute("DELETE FROM journal WHERE id <= ?", (trim,))
            return trim, int(n), int(size)

        with self._wlock:
            trim, n, size = self._write(work)
            self.journal_entries = max(0, self.journal_entries - n)
            self.journal_bytes = max(0, self.journal_bytes - size)
            self._drop_blob_files()
        return trim

    def _drop_blob_files(self, erase: Sequence[Tuple[int, int, int]] = ()) -> None:
        """After a trim: a new summary file from the next append, and the older files no row
        refers to deleted; then the summaries at ``erase`` (a model's, forgotten) zeroed in the
        files still there (a failure here costs disk, never data: counted by the caller's log)."""
        try:
            self.blobs.rotate()
            referenced = [r[0] for r in self._conn.execute(
                "SELECT DISTINCT blob_seg FROM journal WHERE blob_seg IS NOT NULL")]
            self.blobs.drop_unreferenced(referenced)
            if erase:
                self.blobs.erase(erase)
        except (OSError, sqlite3.Error) as exc:
            log.warning("%s: old journal summary files not deleted (%s: %s)", self.path, type(exc).__name__, exc)

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

    def forget_model(self, model_key: str) -> Dict[str, int]:
        """Delete everything stored about one model — its registration, checkpointed state,
        journaled batches, closed windows and alert history — in one transaction; returns the
        rows deleted per table (``raywatch reset --model``)."""
        erase: List[Tuple[int, int, int]] = []
        with self._wlock:
            out = self._write(lambda c: self._forget(c, model_key, alerts=True, erase=erase))
            self._drop_blob_files(erase)  # its summaries go with the files no other row refers to, or are zeroed
            return out

    def place(self, states: Mapping[str, Tuple[str, str]], *, drop: Sequence[str] = (), forget: Optional[str] = None,
              journal_id: int, now: float) -> None:
        """A step of a hand-over between shards (:mod:`raywatch.aggregate.rebalance`), in one
        transaction: write ``{key: (kind, data)}`` state rows (including the journal up to
        ``journal_id``), delete the state rows ``drop``, and with ``forget`` delete the model
        of that key as :meth:`forget_model` does, its alert history kept."""

        erase: List[Tuple[int, int, int]] = []

        def work(c: sqlite3.Connection) -> None:
            if forget is not None:
                self._forget(c, forget, alerts=False, erase=erase)
            c.executemany("DELETE FROM state WHERE key = ?", [(k,) for k in drop])
            c.executemany("INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?, ?)",
                          [(k, kind, data, journal_id, now) for k, (kind, data) in states.items()])

        with self._wlock:
            self._write(work)
            if erase:
                self._drop_blob_files(erase)

    def _forget(self, c: sqlite3.Connection, model_key: str, *, alerts: bool,
                erase: List[Tuple[int, int, int]]) -> Dict[str, int]:
        """Delete one model's rows (the caller holds ``_wlock``, inside a transaction);
        where its journal's summaries are goes into ``erase`` (cleared first: a retried
        transaction lists them again)."""
        erase[:] = c.execute("SELECT blob_seg, blob_off, blob_len FROM journal WHERE model_key = ? AND blob_seg IS NOT NULL",
                             (model_key,)).fetchall()
        n, size = c.execute(f"SELECT COUNT(*), COALESCE(SUM({_ENTRY_BYTES}), 0) FROM journal WHERE model_key = ?",
                            (model_key,)).fetchone()
        out = {
            "models": c.execute("DELETE FROM models WHERE model_key = ?", (model_key,)).rowcount,
            "state": c.execute("DELETE FROM state WHERE key = ? AND kind = 'model'", (model_key,)).rowcount,
            "journal": c.execute("DELETE FROM journal WHERE model_key = ?", (model_key,)).rowcount,
            "windows": c.execute("DELETE FROM windows WHERE model_key = ?", (model_key,)).rowcount,
        }
        if alerts:
            out["alerts"] = c.execute("DELETE FROM alerts WHERE model_key = ?", (model_key,)).rowcount
        self.journal_entries = max(0, self.journal_entries - out["journal"])
        self.journal_bytes = max(0, self.journal_bytes - int(size))
        return out

    def insert_windows(self, model_key: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Closed windows of a model handed over to this shard (as :meth:`windows` read them)."""
        self._write(lambda c: c.executemany("INSERT OR REPLACE INTO windows VALUES (?, ?, ?, ?)", [
            (model_key, r["start"], r["end"], report_json({k: v for k, v in r.items() if k != "model_key"}))
            for r in rows]))

    # ------------------------------------------------------------------ reads
    def _count_journal(self) -> None:
        n, size = self._read.execute(f"SELECT COUNT(*), COALESCE(SUM({_ENTRY_BYTES}), 0) FROM journal").fetchone()
        self.journal_entries, self.journal_bytes = int(n), int(size)

    def get_meta(self, key: str) -> Optional[str]:
        row = self._read.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def load_models(self) -> Dict[str, StoredModel]:
        return {key: StoredModel(json.loads(labels), config, profile)
                for key, labels, config, profile in self._read.execute("SELECT model_key, labels, config, profile FROM models")}

    def load_state(self) -> Dict[str, Tuple[str, str]]:
        """``{key: (kind, data)}`` of the last checkpoint."""
        return {k: (kind, data) for k, kind, data, _ in self.state_rows()}

    def state_rows(self) -> Iterator[Tuple[str, str, str, int]]:
        """``(key, kind, data, journal_id)`` of the last checkpoint, one row at a time."""
        for key, kind, data, jid in self._read.execute("SELECT key, kind, data, journal_id FROM state"):
            yield key, kind, data, int(jid)

    def checkpoint_journal_id(self) -> int:
        v = self.get_meta("journal_id")
        return int(v) if v else 0

    def journal_after(self, journal_id: int) -> Iterator[Tuple[int, str, Optional[str], str, Optional[bytes]]]:
        """``(id, kind, model_key, data, blob)`` of the entries after ``journal_id``, oldest
        first, read a page at a time; a blob kept in a summary file is read from it (short or
        None when the file lost it: its decode says so)."""
        last = journal_id
        while True:
            rows = self._read.execute("SELECT id, kind, model_key, data, blob, blob_seg, blob_off, blob_len FROM journal"
                                      " WHERE id > ? ORDER BY id LIMIT ?", (last, _JOURNAL_PAGE)).fetchall()
            for jid, kind, mk, data, blob, seg, off, length in rows:
                if blob is None and seg is not None:
                    blob = self.blobs.read((seg, off or 0, length or 0))
                    if blob is None or len(blob) != (length or 0):
                        log.error("%s: journal entry %d: its window summary is missing from %s (%s of %s bytes)",
                                  self.path, jid, self.blobs.path(seg), 0 if blob is None else len(blob), length)
                yield jid, kind, mk, data, blob
            if len(rows) < _JOURNAL_PAGE:
                return
            last = rows[-1][0]

    def journal_size(self) -> int:
        return int(self._read.execute("SELECT COUNT(*) FROM journal").fetchone()[0])

    def windows(self, model_key: Optional[str] = None, since: Optional[float] = None, limit: int = 10_000) -> List[Dict[str, Any]]:
        rows = self._newest('SELECT model_key, result FROM windows WHERE "end" > ?', "start", model_key, since, limit)
        out = []
        for k, r in rows:
            r = _loads(r, "windows")
            if isinstance(r, dict):
                r["model_key"] = k
                out.append(r)
        return out

    def alerts(self, model_key: Optional[str] = None, since: Optional[float] = None, limit: int = 10_000) -> List[Dict[str, Any]]:
        rows = self._newest(
            "SELECT ts, model_key, alertname, state, severity, labels, annotations, value FROM alerts WHERE ts > ?",
            "id", model_key, since, limit,
        )
        out = []
        for ts, mk, name, state, sev, labels, ann, value in rows:
            labels, ann = _loads(labels, "alerts"), _loads(ann, "alerts")
            if isinstance(labels, dict) and isinstance(ann, dict):
                out.append({"ts": ts, "model_key": mk, "alertname": name, "state": state, "severity": sev,
                            "labels": labels, "annotations": ann, "value": value})
        return out

    def _newest(self, query: str, order_by: str, model_key: Optional[str], since: Optional[float], limit: int) -> List[Any]:
        """The last ``limit`` rows by ``order_by`` of ``query`` (which ends in a time ``> ?``:
        ``since``, or all), of one model or all, oldest first."""
        args: List[Any] = [since if since is not None else float("-inf")]
        if model_key is not None:
            query += " AND model_key = ?"
            args.append(model_key)
        query += f" ORDER BY {order_by} DESC LIMIT ?"
        args.append(int(limit))
        rows = list(self._read.execute(query, args))
        rows.reverse()
        return rows

    def counts(self) -> Dict[str, int]:
        return {
            t: int(self._read.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])
            for t in ("models", "state", "journal", "windows", "alerts", "audit")
        }

    def __repr__(self) -> str:
        return f"Store({self.path!r})"


def open_audit_log(path: str) -> AuditLog:
    """The audit trail in the SQLite file at ``path`` (a store of its own, created owner-only;
    the stats actor's file works too): the remediation controller's fallback file, and
    ``raywatch audit --sqlite``."""
    return AuditLog(Store(path))
