"""The audit trail of remediation, as data: one record per decision step, in SQLite.

Every step the remediation loop takes — the alert that triggered it, a guardrail that
skipped it, the data window, the retrain, the validation figures, the shadow and canary
figures, an approval or a rejection (and by whom), the promotion, the rollback, a
failure — is an :class:`AuditEvent`: a JSON record ``raywatch.audit``, version 1::

    {"format": "raywatch.audit", "version": 1, "id": "<32 hex>", "ts": <UTC epoch s>,
     "model": "<app>/<deployment>", "decision": "<decision id>", "kind": "<step>",
     "state": "<rollout state after the step>", "by": "<who>", "summary": "<one line>",
     "evidence": {...figures...}}

:class:`AuditLog` keeps them in the table ``audit(seq, id, ts, model_key, decision,
kind, data)`` of a SQLite file — the stats actor's store (:class:`~raywatch.aggregate.store.Store`)
hosts it beside its other tables (the table is part of the store's schema), or a file of its
own (:func:`raywatch.aggregate.store.open_audit_log`) — written through the store's one
transaction helper: :meth:`AuditLog.append` returns once the records are committed
(nothing is acknowledged before it is durable) and is idempotent by event id (a retried
call adds nothing). The trail is a compliance record: history retention does not prune it,
and ``raywatch reset`` of a model leaves it.

>>> import tempfile, os
>>> from raywatch.aggregate.store import open_audit_log
>>> log = open_audit_log(os.path.join(tempfile.mkdtemp(), "audit.sqlite"))
>>> e = AuditEvent.new("app/fraud", "d1", "triggered", state="triggered", ts=100.0,
...                    summary="FeatureDrift firing", evidence={"alertname": "FeatureDrift"})
>>> log.append([e]); log.append([e])
>>> [(x.kind, x.evidence["alertname"]) for x in log.events("app/fraud")]
[('triggered', 'FeatureDrift')]
>>> AuditEvent.from_data(e.to_data()) == e
True
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

__all__ = ["AuditEvent", "AuditLog", "AUDIT_FORMAT", "AUDIT_VERSION", "AUDIT_SCHEMA"]

log = logging.getLogger("raywatch.aggregate.audit")

AUDIT_FORMAT = "raywatch.audit"
AUDIT_VERSION = 1

AUDIT_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, ts REAL NOT NULL, model_key TEXT NOT NULL,
    decision TEXT NOT NULL, kind TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_model_ts ON audit (model_key, ts);
"""

_MAX_EVIDENCE_BYTES = 256 * 1024


def _plain(value: Any) -> Any:
    """JSON-able evidence: numbers that are not finite become None, tuples lists, other
    objects their text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            return _plain(item())
        except Exception:
            pass
    return str(value)


@dataclass(frozen=True)
class AuditEvent:
    """One step of one remediation decision (see the module docstring)."""

    id: str
    ts: float
    model: str
    decision: str
    kind: str
    state: str = ""
    by: str = "raywatch"
    summary: str = ""
    evidence: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def new(cls, model: str, decision: str, kind: str, *, ts: float, state: str = "", by: str = "raywatch",
            summary: str = "", evidence: Optional[Mapping[str, Any]] = None) -> "AuditEvent":
        return cls(uuid.uuid4().hex, float(ts), model, decision, kind, state, by, summary, _plain(dict(evidence or {})))

    def to_data(self) -> Dict[str, Any]:
        return {"format": AUDIT_FORMAT, "version": AUDIT_VERSION, "id": self.id, "ts": self.ts, "model": self.model,
                "decision": self.decision, "kind": self.kind, "state": self.state, "by": self.by,
                "summary": self.summary, "evidence": self.evidence}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> "AuditEvent":
        """Read a record back, checking its format and version (a newer version is refused)."""
        if data.get("format") != AUDIT_FORMAT:
            raise ValueError(f"not a {AUDIT_FORMAT} record: format {data.get('format')!r}")
        v = data.get("version")
        if not isinstance(v, int) or v < 1 or v > AUDIT_VERSION:
            raise ValueError(f"{AUDIT_FORMAT} version {v!r}: this raywatch reads version {AUDIT_VERSION}")
        ev = data.get("evidence") or {}
        if not isinstance(ev, Mapping):
            raise ValueError(f"{AUDIT_FORMAT}: evidence must be an object")
        return cls(str(data["id"]), float(data["ts"]), str(data["model"]), str(data["decision"]), str(data["kind"]),
                   str(data.get("state") or ""), str(data.get("by") or "raywatch"), str(data.get("summary") or ""),
                   dict(ev))

    def to_json(self) -> str:
        text = json.dumps(self.to_data(), sort_keys=True, separators=(",", ":"), allow_nan=False)
        if len(text) > _MAX_EVIDENCE_BYTES:
            raise ValueError(f"audit record of {len(text)} bytes (at most {_MAX_EVIDENCE_BYTES}): keep the figures, "
                             "not the data")
        return text


class AuditLog:
    """The ``audit`` table of a SQLite store (see the module docstring).

    ``store`` is a :class:`~raywatch.aggregate.store.Store` (or anything with its ``_conn``,
    ``_read`` and ``_write(work)``): the stats actor passes its own, so the trail lives in its
    file. Writes go through ``_write`` (call :meth:`append` on the store's writer thread where
    it has one); reads use the store's read connection.
    """

    def __init__(self, store: Any):
        self.store = store

    @property
    def path(self) -> str:
        return self.store.path

    def append(self, events: Sequence[AuditEvent]) -> None:
        """Commit ``events`` in one transaction (an event id already stored is skipped)."""
        rows = [(e.id, e.ts, e.model, e.decision, e.kind, e.to_json()) for e in events]
        if rows:
            self.store._write(lambda c: c.executemany(
                "INSERT OR IGNORE INTO audit (id, ts, model_key, decision, kind, data) VALUES (?, ?, ?, ?, ?, ?)", rows))

    def events(self, model: Optional[str] = None, since: Optional[float] = None, *, decision: Optional[str] = None,
               limit: int = 100_000) -> List[AuditEvent]:
        """Events oldest first (of one model, one decision, since a time); a record that does
        not read back is skipped and logged, never raised."""
        q, args = "SELECT data FROM audit WHERE ts >= ?", [since if since is not None else float("-inf")]
        if model is not None:
            q += " AND model_key = ?"
            args.append(model)
        if decision is not None:
            q += " AND decision = ?"
            args.append(decision)
        q += " ORDER BY seq DESC LIMIT ?"
        args.append(int(limit))
        out = []
        conn = getattr(self.store, "_read", None) or self.store._conn
        for (data,) in reversed(list(conn.execute(q, args))):
            try:
                out.append(AuditEvent.from_data(json.loads(data)))
            except (ValueError, KeyError, TypeError) as exc:
                log.error("audit record skipped: %s", exc)
        return out

    def models(self) -> List[str]:
        conn = getattr(self.store, "_read", None) or self.store._conn
        return [r[0] for r in conn.execute("SELECT DISTINCT model_key FROM audit ORDER BY model_key")]

    def close(self) -> None:
        self.store.close()
