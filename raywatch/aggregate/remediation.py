"""The stats actor's part in closing the loop (issue 14), without Ray.

:class:`RemediationSide` is what :class:`~raywatch.aggregate.core.StatsCore` keeps for the
payload log and remediation; the core calls it from a few places and the Ray shell
(:mod:`raywatch.actor.actor`) runs its slow work in an executor:

* **The audit trail** lives in the stats actor's SQLite file: :attr:`RemediationSide.audit`
  is an :class:`~raywatch.aggregate.audit.AuditLog` on the actor's store (None without one),
  written on the store's writer thread, never pruned. ``history`` carries a model's events,
  so the report draws the decisions on its timeline.
* **Labels into the payload log.** Each accepted label (after its journal commit, as every
  label) is queued for the payload log of its model — of every model with a payload log when
  the label names none — partitioned by the time it arrived, so that a label that comes days
  late still joins its request in the labelled dataset (:mod:`raywatch.payload.labelled`).
  :meth:`RemediationSide.flush` writes what is due and :meth:`enforce_retention` applies the
  logs' retention (hourly); both do file I/O and run in the actor's executor, never on its
  event loop. A failed write keeps the labels pending (counted by the log).
* **Counters.** The payload-log counters the replicas ship with their batches (cumulative
  per replica), those of the rollout routers (reported through the remediation controller)
  and the actor's own label writes add up, per model, to the ``payload_log_*`` series; the
  controller's own series (steps by kind, pending approvals) are exposed as it last gave them.
* **Registration.** :meth:`RemediationSide.settings` says which models remediate and with
  what settings (:func:`raywatch.config.remediate.settings_of`); the shell hands them to the
  controller. A candidate's application (``<app>-rw-candidate``) is monitored like any other
  but never registered: it does not remediate itself.

>>> import tempfile
>>> from raywatch.aggregate.failures import Failures
>>> side = RemediationSide(None, Failures())
>>> side.note_batch("a/m", "r1", {"rows_written": 5, "bogus": 3, "write_errors": -1})
>>> side.note_batch("a/m", "r2", {"rows_written": 2})
>>> side.counters("a/m")["rows_written"], side.counters("a/m")["write_errors"]
(7, 0)
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from raywatch import series
from raywatch.aggregate.audit import AuditLog
from raywatch.aggregate.failures import Failures
from raywatch.config.remediate import CANDIDATE_SUFFIX, RemediationSettings, settings_of
from raywatch.payload.log import PayloadLog

__all__ = ["RemediationSide", "COUNTERS"]

log = logging.getLogger("raywatch.aggregate.remediation")

COUNTERS: Dict[str, series.Metric] = {
    "rows_written": series.PAYLOAD_LOG_ROWS_TOTAL,
    "rows_dropped": series.PAYLOAD_LOG_DROPPED_ROWS_TOTAL,
    "rows_deleted": series.PAYLOAD_LOG_DELETED_ROWS_TOTAL,
    "write_errors": series.PAYLOAD_LOG_WRITE_ERRORS_TOTAL,
}
"""The payload log's counters exposed as series (the log's counter name → its metric)."""

_MAX_SOURCES = 256  # counter sources (replicas, routers) kept per model; older ones fold into one
_RETIRED = "__retired__"


def _clean(counters: Any) -> Dict[str, int]:
    """The known counters of a report from outside, as non-negative integers (the rest is
    dropped: a replica's bytes are checked beyond their type)."""
    out: Dict[str, int] = {}
    if not isinstance(counters, Mapping):
        return out
    for k in COUNTERS:
        v = counters.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and 0 <= v < 2**62:
            out[k] = int(v)
    return out


class RemediationSide:
    """See the module docstring. ``store``: the actor's :class:`~raywatch.aggregate.store.Store`
    (None: in memory, no audit trail here); ``make_log``: builds a payload log from its
    settings (default :class:`raywatch.payload.log.PayloadLog`; tests inject one)."""

    def __init__(self, store: Any, failures: Failures, *, make_log: Optional[Callable[[Any], Any]] = None):
        self.audit: Optional[AuditLog] = AuditLog(store) if store is not None else None
        self._failures = failures
        self._make_log = make_log
        self._logs: Dict[Tuple[str, str], Any] = {}  # (log path, model name) → label writer
        self._broken: Dict[Tuple[str, str], str] = {}  # payload logs that could not be opened (why)
        self._sources: Dict[str, Dict[str, Dict[str, int]]] = {}  # model key → source → counters
        self.controller_series: List[series.Series] = []
        self.controller_status: Optional[Dict[str, Any]] = None

    # ------------------------------------------------------------------ registration
    @staticmethod
    def settings(models: Mapping[str, Any]) -> Dict[str, RemediationSettings]:
        """The remediation settings of every model that remediates (candidates left out)."""
        out = {}
        for key, ms in models.items():
            if key.partition("/")[0].endswith(CANDIDATE_SUFFIX) or ms.config is None:
                continue
            try:
                s = settings_of(ms.config, ms.profile_bytes)
            except ValueError:
                continue  # (a config the schema refused never gets here)
            if s is not None:
                out[key] = s
        return out

    # ------------------------------------------------------------------ labels into the payload log
    def _log_for(self, ms: Any) -> Any:
        cfg = getattr(ms.config, "payload_log", None)
        if cfg is None or not cfg.enabled:
            return None
        name = str(ms.labels.get("model") or ms.labels.get("deployment") or ms.key)
        key = (cfg.path, name)
        plog = self._logs.get(key)
        if plog is not None:
            plog.cfg = cfg  # new settings (bounds, flush cadence, retention) apply in place; pending rows stay
            return plog
        if self._broken.get(key) == repr(cfg):
            return None  # told once; tried again when its settings change
        try:
            plog = (self._make_log or PayloadLog)(cfg)
        except Exception as exc:  # pyarrow missing or the path refused: counted and logged once
            self._broken[key] = repr(cfg)
            log.error("payload log %s: labels not written (%s: %s)", cfg.path, type(exc).__name__, exc)
            self._failures.fail("payload_log.open", exc)
            return None
        self._logs[key] = plog
        return plog

    def labels(self, items: Sequence[Tuple[str, Any, Optional[str]]], models: Mapping[str, Any], now: float) -> int:
        """Queue accepted labels ``(request_id, label, model key or name or None)`` for the
        payload logs (in memory: cheap, on the event loop). Returns the rows queued."""
        logged = [ms for ms in models.values() if getattr(ms.config, "payload_log", None) is not None]
        if not logged or not items:
            return 0
        by_log: Dict[int, Tuple[Any, str, List[Tuple[str, Any]]]] = {}
        for rid, label, mk in items:
            targets = logged if mk is None else [ms for ms in logged if mk in (ms.key, ms.labels.get("model"))]
            for ms in targets:
                plog = self._log_for(ms)
                if plog is None:
                    continue
                name = str(ms.labels.get("model") or ms.labels.get("deployment") or ms.key)
                entry = by_log.setdefault(id(plog), (plog, name, []))
                if not entry[2] or entry[2][-1][0] != rid:  # one row per log even when two keys share it
                    entry[2].append((rid, label))
        n = 0
        for plog, name, rows in by_log.values():
            try:
                n += plog.add_labels(name, rows, ts=now)
            except Exception as exc:
                self._failures.fail("payload_log.labels", exc)
        return n

    def due(self) -> bool:
        """Whether a label log has rows whose flush is due (checked on the event loop)."""
        return any(plog.due() for plog in self._logs.values())

    def flush(self, force: bool = False) -> int:
        """Write the label rows that are due (all with ``force``); files written. File I/O:
        in the executor."""
        n = 0
        for plog in list(self._logs.values()):
            try:
                n += plog.flush() if force else plog.maybe_flush()
            except Exception as exc:  # the rows stay pending (the log counts the failure)
                self._failures.fail("payload_log.flush", exc)
        return n

    def enforce_retention(self, models: Mapping[str, Any], now: Optional[float] = None) -> Dict[str, int]:
        """Apply each payload log's retention once (a log several models share, once). File
        I/O: in the executor, hourly."""
        total: Dict[str, int] = {}
        seen = set()
        for ms in list(models.values()):
            plog = self._log_for(ms)
            if plog is None or (plog.cfg.path in seen):
                continue
            seen.add(plog.cfg.path)
            try:
                for k, v in plog.enforce_retention(now).items():
                    total[k] = total.get(k, 0) + v
            except Exception as exc:
                self._failures.fail("payload_log.retention", exc)
        return total

    # ------------------------------------------------------------------ counters and series
    def note_batch(self, model_key: str, source: str, counters: Any) -> None:
        """The payload-log counters a replica (or, through the controller, a router) reports,
        cumulative since it started: the latest are kept per source."""
        c = _clean(counters)
        if not c:
            return
        sources = self._sources.setdefault(model_key, {})
        if source not in sources and len(sources) >= _MAX_SOURCES:  # fold the oldest into one (sums kept)
            old = next(k for k in sources if k != _RETIRED)
            gone = sources.pop(old)
            ret = sources.setdefault(_RETIRED, {})
            for k, v in gone.items():
                ret[k] = ret.get(k, 0) + v
        sources[source] = c

    def note_routers(self, reports: Mapping[str, Mapping[str, Any]]) -> None:
        """Routers' counters by model key and router replica (from the controller)."""
        for key, by_router in (reports or {}).items():
            if isinstance(by_router, Mapping):
                for rid, c in by_router.items():
                    self.note_batch(str(key), f"router:{rid}", c)

    def counters(self, model_key: str, model_name: Optional[str] = None, path: Optional[str] = None) -> Dict[str, int]:
        """A model's payload-log counters: its replicas' and routers', and the actor's own
        label writes to its log."""
        out = dict.fromkeys(COUNTERS, 0)
        for c in (self._sources.get(model_key) or {}).values():
            for k, v in c.items():
                out[k] += v
        if model_name is not None and path is not None:
            plog = self._logs.get((path, model_name))
            if plog is not None:
                for k in COUNTERS:
                    out[k] += int(plog.counters.get(k, 0))
        return out

    def series(self, models: Mapping[str, Any]) -> List[series.Series]:
        """The ``payload_log_*`` series of every model with a payload log (or counters), with
        the model's labels, and the controller's series as it last gave them."""
        out: List[series.Series] = []
        for key, ms in list(models.items()):
            cfg = getattr(ms.config, "payload_log", None)
            if cfg is None and key not in self._sources:
                continue
            labels = {k: str(ms.labels.get(k) or "") for k in series.MODEL_LABELS}
            name = str(ms.labels.get("model") or ms.labels.get("deployment") or key)
            c = self.counters(key, name, cfg.path if cfg is not None else None)
            out.extend(series.Series(m.name, dict(labels), float(c[k])) for k, m in COUNTERS.items())
        return out + list(self.controller_series)

    def note_controller(self, raw_series: Iterable[Any], status: Optional[Mapping[str, Any]] = None) -> None:
        """What the controller last said: its series ``(name, labels, value)`` (catalogue
        names only) and its status."""
        kept = []
        for item in raw_series or ():
            try:
                name, labels, value = item
                if name in series.METRICS:
                    kept.append(series.Series(str(name), {str(k): str(v) for k, v in dict(labels).items()}, float(value)))
            except (TypeError, ValueError):
                continue
        self.controller_series = kept
        if status is not None:
            self.controller_status = dict(status)

    def status(self) -> Dict[str, Any]:
        """For the actor's status: the payload logs it writes labels to, and the controller's
        open decisions and pending approvals as it last gave them."""
        return {"label_logs": {f"{n}@{p}": plog.stats() for (p, n), plog in self._logs.items()},
                "broken_logs": sorted(f"{n}@{p}" for (p, n) in self._broken),
                "controller": self.controller_status}

    # ------------------------------------------------------------------ the audit trail
    def events(self, model_key: Optional[str] = None, since: Optional[float] = None,
               decision: Optional[str] = None) -> List[Dict[str, Any]]:
        """The audit trail's events as data, oldest first (none without a store)."""
        if self.audit is None:
            return []
        return [e.to_data() for e in self.audit.events(model_key, since, decision=decision)]
