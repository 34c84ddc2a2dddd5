"""The stats actor's own health: its state file, as series and as built-in alert rules.

:class:`StoreHealth` follows the state file the core was given: where it is (``mode``:
``"sqlite"``, ``"memory"`` when the configured file could not be opened, ``"none"`` when no
file is configured), what opening it repaired (moved aside as ``<name>.corrupt-<UTC time>``,
see :mod:`raywatch.aggregate.store`), the journal's size against its bound and whether the
last write failed. :meth:`StoreHealth.series` turns it into the catalogue's self-health
series (:data:`raywatch.series.SELF_HEALTH`, labelled ``actor=<name>``) and
:meth:`StoreHealth.status` into the ``store`` part of the actor's status.

:data:`BUILTIN_RULES` are the rules the core always hands the alerting with those series
(:func:`builtin_alerting`: the actor's own alerting configuration — its sinks, route and
inhibition — with these rules), so a damaged file, a fall back to memory, failing writes or
a full journal are raised as raywatch's own alerts even where the user wrote no rule:

=========================== ============================= ==========
alert                       condition                     severity
=========================== ============================= ==========
RaywatchStoreCorrupt        ``store_corrupt > 0``         critical
RaywatchStoreMemoryOnly     ``store_memory_only > 0``     critical
RaywatchStoreWriteFailing   ``store_write_failing > 0``   critical
RaywatchJournalFull         ``store_journal_full > 0``    critical
=========================== ============================= ==========

>>> h = StoreHealth(None, error=PermissionError("read-only file system"), path="/data/stats.sqlite")
>>> {s.name: s.value for s in h.series("raywatch-stats", now=0.0)}["store_memory_only"]
1.0
>>> [r.name for r in BUILTIN_RULES]
['RaywatchStoreCorrupt', 'RaywatchStoreMemoryOnly', 'RaywatchStoreWriteFailing', 'RaywatchJournalFull']
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from raywatch import series as catalogue
from raywatch.config import AlertingConfig, AlertRuleConfig
from raywatch.series import Series

if TYPE_CHECKING:  # annotations only
    from raywatch.aggregate.store import Store

__all__ = ["StoreHealth", "BUILTIN_RULES", "builtin_alerting", "is_builtin", "REPAIRED"]

log = logging.getLogger("raywatch.aggregate.health")

REPAIRED = ("corrupt", "empty", "orphan")
"""Repair events that moved a file aside (``check_timeout`` is recorded, not alerted)."""


def _rule(name: str, metric: catalogue.Metric, summary: str, description: str) -> AlertRuleConfig:
    return AlertRuleConfig.model_validate({
        "name": name, "expr": f"{metric.name} > 0", "severity": "critical",
        "labels": {"source": "raywatch"},
        "annotations": {"summary": summary, "description": description},
    })


BUILTIN_RULES: List[AlertRuleConfig] = [
    _rule("RaywatchStoreCorrupt", catalogue.STORE_CORRUPT,
          "raywatch stats actor {{ $labels.actor }}: its state file was damaged and moved aside",
          "The damaged file was moved aside as <name>.corrupt-<UTC time> and a fresh store started; what could be "
          "read was salvaged table by table (raywatch status shows the details)."),
    _rule("RaywatchStoreMemoryOnly", catalogue.STORE_MEMORY_ONLY,
          "raywatch stats actor {{ $labels.actor }} runs without its state file",
          "The configured SQLite file could not be opened; nothing the actor holds survives a restart "
          "(raywatch status shows the reason)."),
    _rule("RaywatchStoreWriteFailing", catalogue.STORE_WRITE_FAILING,
          "raywatch stats actor {{ $labels.actor }} cannot write its state file",
          "Ingest calls fail (replicas keep their batches and retry) until the file can be written again."),
    _rule("RaywatchJournalFull", catalogue.STORE_JOURNAL_FULL,
          "raywatch stats actor {{ $labels.actor }}: ingest journal full",
          "The journal reached actor.journal_max_bytes and no checkpoint could shrink it: ingest calls fail."),
]
"""The rules every stats actor evaluates over its own health series (module docstring)."""


def builtin_alerting(actor_alerting: AlertingConfig) -> AlertingConfig:
    """The actor's alerting configuration (sinks, route, inhibition, silences) with
    :data:`BUILTIN_RULES` as its rules."""
    return actor_alerting.model_copy(update={"rules": list(BUILTIN_RULES)})


def is_builtin(cfg: AlertingConfig) -> bool:
    """Whether ``cfg`` is a :func:`builtin_alerting` configuration (its rules are the built-in ones)."""
    return [r.name for r in cfg.rules] == [r.name for r in BUILTIN_RULES]


class StoreHealth:
    """The state file's health (see the module docstring).

    ``store`` is the open store (None: in memory); ``error`` why the configured file
    (``path``) could not be opened; ``journal_max_bytes`` the journal's bound; ``hold``
    how long ``store_corrupt`` stays 1 after a repair.
    """

    def __init__(self, store: Optional["Store"], *, error: Optional[BaseException] = None, path: Optional[str] = None,
                 journal_max_bytes: int = 256 * 1024 * 1024, hold: float = 3600.0):
        self.store = store
        self.error = error
        self.path = store.path if store is not None else path
        self.journal_max_bytes = int(journal_max_bytes)
        self.hold = float(hold)
        self.write_failures = 0
        self.last_write_error: Optional[str] = None  # None: the last write succeeded
        self.journal_full = False
        if error is not None:
            log.error("stats actor runs in memory: its state file %s could not be opened (%s: %s)", path,
                      type(error).__name__, error)

    @property
    def mode(self) -> str:
        if self.store is not None:
            return "sqlite"
        return "memory" if self.error is not None else "none"

    @property
    def repairs(self) -> List[Dict[str, Any]]:
        return list(self.store.repairs) if self.store is not None else []

    def wrote(self, error: Optional[BaseException] = None) -> None:
        """Record the outcome of one write to the file."""
        if error is None:
            self.last_write_error = None
            return
        self.write_failures += 1
        self.last_write_error = f"{type(error).__name__}: {error}"

    def journal_over(self) -> bool:
        """Whether the journal is at its bound."""
        return self.store is not None and self.store.journal_bytes >= self.journal_max_bytes

    def corrupt(self, now: float) -> bool:
        return any(ev["kind"] in REPAIRED and now - float(ev["ts"]) <= self.hold for ev in self.repairs)

    def series(self, actor: str, now: float) -> List[Series]:
        """The :data:`~raywatch.series.SELF_HEALTH` samples at ``now``."""
        labels = {"actor": actor}
        st = self.store
        values = {
            catalogue.STORE_CORRUPT: float(self.corrupt(now)),
            catalogue.STORE_MEMORY_ONLY: float(self.mode == "memory"),
            catalogue.STORE_WRITE_FAILING: float(self.last_write_error is not None),
            catalogue.STORE_JOURNAL_FULL: float(self.journal_full),
            catalogue.STORE_JOURNAL_BYTES: float(st.journal_bytes if st is not None else 0),
            catalogue.STORE_JOURNAL_ENTRIES: float(st.journal_entries if st is not None else 0),
            catalogue.STORE_REPAIRS_TOTAL: float(sum(ev["kind"] in REPAIRED for ev in self.repairs)),
            catalogue.STORE_WRITE_FAILURES_TOTAL: float(self.write_failures),
        }
        return [Series(m.name, labels, v) for m, v in values.items()]

    def status(self, now: float) -> Dict[str, Any]:
        """The ``store`` part of the actor's status."""
        st = self.store
        out: Dict[str, Any] = {
            "mode": self.mode,
            "path": self.path,
            "reason": f"{type(self.error).__name__}: {self.error}" if self.error is not None else None,
            "check": st.check if st is not None else None,
            "corrupt": self.corrupt(now),
            "repairs": self.repairs,
            "journal_bytes": st.journal_bytes if st is not None else 0,
            "journal_entries": st.journal_entries if st is not None else 0,
            "journal_max_bytes": self.journal_max_bytes,
            "journal_full": self.journal_full,
            "write_failures": self.write_failures,
            "last_write_error": self.last_write_error,
        }
        return out
