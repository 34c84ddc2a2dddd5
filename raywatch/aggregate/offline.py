"""The history of a stats actor's SQLite file, without Ray: what ``raywatch report --sqlite`` reads.

:func:`history_from_sqlite` copies the file with SQLite's online backup (a running actor is
not disturbed, and the file is never written: a schema-1 file is migrated in the copy, which
lives in an owner-only temporary folder and is deleted afterwards), recovers a
:class:`~raywatch.aggregate.core.StatsCore` from the copy (models, last checkpoint, journal)
and answers :meth:`~raywatch.aggregate.core.StatsCore.history`.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from typing import Any, Dict, Iterator, Optional

from raywatch.aggregate.audit import AuditLog
from raywatch.aggregate.core import StatsCore
from raywatch.aggregate.data import decode
from raywatch.aggregate.models import config_from_record
from raywatch.aggregate.store import Store
from raywatch.config import MonitorConfig

__all__ = ["history_from_sqlite", "reset_sqlite", "audit_from_sqlite"]


def _copy(src: str, dst: str) -> None:
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
    target = sqlite3.connect(dst)
    try:
        with target:
            source.backup(target)
    finally:
        source.close()
        target.close()


def _stored_settings(store: Store) -> MonitorConfig:
    """The configuration the actor ran with (its window settings shape the rolling view):
    the first stored model's that can be read."""
    for key, stored in store.load_models().items():
        cfg = store.migrated_configs.get(key)
        if cfg is None and stored.config is not None:
            try:
                cfg, _ = config_from_record(decode(stored.config))
            except Exception:  # a record this raywatch cannot read: try the next model's
                continue
        if cfg is not None:
            return cfg
    return MonitorConfig()


def _newest(core: StatsCore, store: Store, model: Optional[str], since: Optional[float]) -> Optional[float]:
    ends = [float(w["end"]) for w in store.windows(model, since, 100_000) if w.get("end") is not None]
    if ends:
        return max(ends)
    data = [w.last_ts or w.end for ms in core.models.values() for w in list(ms.open.values()) + list(ms.closed)]
    return max(data) if data else None


def history_from_sqlite(path: str, model: Optional[str] = None, since: Optional[float] = None,
                        config: Optional[MonitorConfig] = None, now: Optional[float] = None) -> Dict[str, Any]:
    """``history()`` of the stats actor SQLite file at ``path`` (see the module docstring).

    ``model`` (a model key) and ``since`` (UTC epoch seconds) filter it; ``config`` gives the
    window settings (default: those stored with the models). The features' "current"
    histograms are the rolling view at ``now``, by default the end of the newest stored
    window (the cluster may be long gone when the report is made), else the newest data in
    the file. FileNotFoundError when there is no such file.
    """
    with _read_copy(path, "raywatch-report-") as store:
        core = StatsCore(config if config is not None else _stored_settings(store), store)
        core.recover()
        at = now if now is not None else _newest(core, store, model, since)
        return core.history(model, since, now=at)


def audit_from_sqlite(path: str, since: Optional[float] = None) -> Dict[str, Any]:
    """The remediation audit trail of a SQLite file (a stats actor's, or the remediation
    controller's own), read from a copy like :func:`history_from_sqlite`: ``{"events": [...]
    (``raywatch.audit`` data, oldest first), "alerts": [...] (the stored alert transitions,
    each with its ``model_key``)}``. FileNotFoundError when there is no such file."""
    with _read_copy(path, "raywatch-audit-") as store:
        events = [e.to_data() for e in AuditLog(store).events(since=since)]
        return {"events": events, "alerts": store.alerts(None, since, 100_000)}


@contextlib.contextmanager
def _read_copy(path: str, prefix: str) -> Iterator[Store]:
    """A store on a copy of the SQLite file at ``path`` (in a temporary folder named
    ``prefix…``, gone afterwards); FileNotFoundError when there is no such file."""
    src = os.path.abspath(os.path.expanduser(path))
    if not os.path.exists(src):
        raise FileNotFoundError(src)
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        copy = os.path.join(tmp, "copy.sqlite")
        _copy(src, copy)
        store = Store(copy, blobs_of=src)  # the journal's summary files: the original's, read only
        try:
            yield store
        finally:
            store.close()


def reset_sqlite(path: str, model: str) -> Dict[str, Any]:
    """Forget a model in a stats actor's SQLite file while no actor runs on it (``raywatch
    reset --model KEY --sqlite PATH``): its registration, checkpointed state, journal, closed
    windows and alert history. ``model`` is a model key, or a model name (every model the
    file registered under that name). Returns ``{"model", "keys", "deleted": {table: rows}}``.
    FileNotFoundError when there is no such file. (A running actor keeps the model in
    memory and writes it back: reset through the actor, :func:`raywatch.actor.api.reset`.)"""
    src = os.path.abspath(os.path.expanduser(path))
    if not os.path.exists(src):
        raise FileNotFoundError(src)
    store = Store(src)
    try:
        models = store.load_models()
        keys = [model] if model in models or "/" in model else sorted(
            k for k, m in models.items() if m.labels.get("model") == model)
        deleted: Dict[str, int] = {}
        for key in keys:
            for table, n in store.forget_model(key).items():
                deleted[table] = deleted.get(table, 0) + n
        return {"model": model, "keys": keys, "deleted": deleted}
    finally:
        store.close()
