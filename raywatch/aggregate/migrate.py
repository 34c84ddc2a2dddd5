"""Migration of a schema-1 state file (pickles) to schema 2 (data), done once, when it is opened.

raywatch before schema 2 pickled what it stored: the models' configurations (secrets
resolved), each model's state (with its river detectors pickled inside), the feedback
joiner, the alert engines' state, counters and the journal's batches and labels. Reading
such a file runs the pickles, so they are read once here, through :class:`V1Unpickler`,
which admits only raywatch's own data classes (the configuration models, ``EnvSecret``,
``ReplicaBatch``) and plain values (numpy scalars and dtypes, ``datetime``, pydantic's
``SecretStr``, ``set``/``frozenset``): a pickle naming anything else — ``os.system`` in a
tampered file — is refused with :class:`UnsafeStateFile` before it runs, and the file is
left as it was.

In one transaction every row is rewritten as the schema-2 data of :mod:`raywatch.aggregate.store`
and the old tables are dropped; then the file is VACUUMed and its WAL checkpointed and
truncated, with ``secure_delete`` on, so that no old pickle or resolved secret is left in
the file, its free pages or its WAL.

What cannot come across:

* river detectors (compiled objects, never admitted): they restart fresh, counted per
  model (``detector_restarts``) and shown in status;
* secrets written literally in a configuration (not as ``${ENV}``): the configuration is
  stored masked. :attr:`Migrated.configs` keeps the unpickled configurations, secrets
  included, so this run keeps delivering; after a restart the model asks its replicas to
  register their configuration again;
* a row whose pickle is unreadable (not unsafe: damaged): skipped and counted, as the
  schema-1 reader did.
"""

from __future__ import annotations

import io
import logging
import pickle
import sqlite3
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from pydantic import BaseModel

from raywatch import config as config_module
from raywatch.aggregate import joiner, model
from raywatch.aggregate.data import b64, encode, record, scalar, seq_ranges
from raywatch.aggregate.journal import batch_row, feedback_row
from raywatch.aggregate.models import config_record
from raywatch.aggregate.recovery import COUNTERS_FORMAT, ENGINE_FORMAT, RECORD_VERSION
from raywatch.config import MonitorConfig
from raywatch.stats.batch import ReplicaBatch

__all__ = ["migrate_v1", "Migrated", "UnsafeStateFile", "V1Unpickler", "load_v1"]

log = logging.getLogger("raywatch.aggregate.migrate")

_CONFIG_CLASSES = {  # schema-1 files name them by the public module, raywatch.config
    name for name, obj in vars(config_module).items()
    if isinstance(obj, type) and obj.__module__.startswith(config_module.__name__)
    and (issubclass(obj, BaseModel) or obj is config_module.EnvSecret)
}
ADMITTED = frozenset(
    {("raywatch.config", name) for name in _CONFIG_CLASSES}
    | {
        ("raywatch.stats.batch", "ReplicaBatch"),
        ("numpy", "dtype"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.multiarray", "scalar"),
        ("datetime", "datetime"),
        ("datetime", "timezone"),
        ("datetime", "timedelta"),
        ("pydantic.types", "SecretStr"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
    }
)
"""``(module, name)`` of everything a schema-1 pickle may name."""


class UnsafeStateFile(ValueError):
    """A schema-1 file holds a pickle that names something raywatch never stored."""


class V1Unpickler(pickle.Unpickler):
    """An unpickler that admits only :data:`ADMITTED` (and no persistent ids)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ADMITTED:
            raise UnsafeStateFile(f"the state file names {module}.{name}, which raywatch never stores: refused, nothing run")
        return super().find_class(module, name)


def load_v1(blob: bytes) -> Any:
    """The object of a schema-1 pickle (see :class:`V1Unpickler`); configuration models
    pickled before a field existed get that field's default."""
    return _complete(V1Unpickler(io.BytesIO(blob)).load())


def _complete(obj: Any) -> Any:
    """Give every pydantic model in ``obj`` the defaults of fields its pickle predates."""
    if isinstance(obj, BaseModel):
        for name, info in type(obj).model_fields.items():
            if name not in obj.__dict__:
                object.__setattr__(obj, name, info.get_default(call_default_factory=True))
            else:
                _complete(obj.__dict__[name])
    elif isinstance(obj, dict):
        for v in obj.values():
            _complete(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _complete(v)
    return obj


@dataclass
class Migrated:
    """What a migration converted; ``configs`` are for the run that migrated the file."""

    configs: Dict[str, Optional[MonitorConfig]] = field(default_factory=dict)
    models: int = 0
    states: int = 0
    journal: int = 0
    detectors_restarted: int = 0
    masked_configs: List[str] = field(default_factory=list)
    unreadable: Dict[str, int] = field(default_factory=dict)

    def skip(self, what: str, key: Any, exc: BaseException) -> None:
        if isinstance(exc, UnsafeStateFile):
            raise exc
        log.warning("schema-1 %s %s unreadable, left out: %s: %s", what, key, type(exc).__name__, exc)
        self.unreadable[what] = self.unreadable.get(what, 0) + 1

    def summary(self) -> Dict[str, Any]:
        return {"models": self.models, "states": self.states, "journal": self.journal,
                "detectors_restarted": self.detectors_restarted, "masked_configs": list(self.masked_configs),
                "unreadable": dict(self.unreadable)}


def _window(w: Dict[str, Any]) -> Dict[str, Any]:
    return dict(w, summary=b64(w.get("summary")))


def _model_state(s: Dict[str, Any], out: Migrated) -> Dict[str, Any]:
    if s.get("version") != 1:
        raise ValueError(f"model state version {s.get('version')!r}, expected 1")
    detectors = {name: None for name in s.get("detectors") or {}}  # pickled river objects: never admitted
    out.detectors_restarted += len(detectors)
    replicas = [dict(r, seqs=seq_ranges(r.get("seqs") or ())) for r in s.get("replicas") or []]
    rest = {k: s.get(k) for k in ("labels", "closed_until", "first_seen", "retired", "totals", "error_types",
                                  "detector_hits", "detector_counts")}
    return record(model.FORMAT, model.VERSION, **rest, open=[_window(w) for w in s.get("open") or []],
                  closed=[_window(w) for w in s.get("closed") or []], replicas=replicas, detectors=detectors,
                  detector_restarts={})


def _joiner_state(s: Dict[str, Any]) -> Dict[str, Any]:
    preds = [[str(rid), [float(ts), mk, scalar(p), None if sc is None else float(sc)]]
             for rid, (ts, mk, p, sc) in s.get("predictions", [])]
    labels = [[str(rid), [float(ts), scalar(lab), mk]] for rid, (ts, lab, mk) in s.get("labels", [])]
    return record(joiner.FORMAT, joiner.VERSION, ttl=s.get("ttl"), max_pending=s.get("max_pending"), predictions=preds,
                  labels=labels, counts=dict(s.get("counts") or {}))


def _state_row(key: str, obj: Any, out: Migrated) -> Tuple[str, Dict[str, Any]]:
    if key == "__joiner__":
        return "joiner", _joiner_state(obj)
    if key == "__counters__":
        return "counters", record(COUNTERS_FORMAT, RECORD_VERSION, counters=dict(obj.get("counters") or {}),
                                  failures=dict(obj.get("failures") or {}))
    if key.startswith("__engine__:"):
        return "engine", record(ENGINE_FORMAT, RECORD_VERSION, state=obj)
    return "model", _model_state(obj, out)


def migrate_v1(conn: sqlite3.Connection, schema: str, version: int) -> Migrated:
    """Rewrite the schema-1 file behind ``conn`` as schema ``version`` (created by the
    ``schema`` statements), then VACUUM it and truncate its WAL. Raises
    :class:`UnsafeStateFile` (the file unchanged) when a pickle names anything not admitted."""
    out = Migrated()
    conn.execute("PRAGMA secure_delete=ON")
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table in ("models", "state", "journal"):
            conn.execute(f"ALTER TABLE {table} RENAME TO v1_{table}")
        for statement in schema.split(";"):
            if statement.strip():
                conn.execute(statement)
        for key, labels, blob, profile, updated in conn.execute("SELECT * FROM v1_models").fetchall():
            cfg = None
            try:
                cfg = load_v1(blob)
                if not isinstance(cfg, MonitorConfig):
                    raise TypeError(f"expected a MonitorConfig, got a {type(cfg).__name__}")
            except Exception as exc:
                out.skip("config", key, exc)
                cfg = None
            data = config_record(cfg) if cfg is not None else None
            if cfg is not None and config_module.has_masked_secrets(MonitorConfig.from_data(data["config"], unset_env=set())):
                out.masked_configs.append(key)
            out.configs[key] = cfg
            conn.execute("INSERT INTO models VALUES (?, ?, ?, ?, ?)",
                         (key, labels, encode(data) if data is not None else None, profile, updated))
            out.models += 1
        for key, blob, journal_id, updated in conn.execute("SELECT key, blob, journal_id, updated_at FROM v1_state").fetchall():
            try:
                kind, data = _state_row(key, load_v1(blob), out)
                conn.execute("INSERT INTO state VALUES (?, ?, ?, ?, ?)", (key, kind, encode(data), journal_id, updated))
                out.states += 1
            except Exception as exc:
                out.skip("state", key, exc)
        for jid, kind, _mk, payload, ts in conn.execute("SELECT id, kind, model_key, payload, ts FROM v1_journal").fetchall():
            try:
                obj = load_v1(payload)
                if kind == "batch" and isinstance(obj, ReplicaBatch):
                    row = batch_row(obj, ts)
                elif kind == "feedback":
                    at, items = obj
                    row = feedback_row(items, at)
                else:
                    raise TypeError(f"a {kind!r} journal entry holding a {type(obj).__name__}")
                conn.execute("INSERT INTO journal (id, kind, model_key, data, blob, ts) VALUES (?, ?, ?, ?, ?, ?)",
                             (jid, *row))
                out.journal += 1
            except Exception as exc:
                out.skip("journal", jid, exc)
        for table in ("models", "state", "journal"):
            conn.execute(f"DROP TABLE v1_{table}")
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(version),))
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('migrated_from', '1')")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("VACUUM")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return out
