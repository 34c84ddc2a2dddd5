"""The stats actor's logic without Ray: :class:`StatsCore`, a facade over the aggregation core.

:class:`raywatch.actor.actor.StatsActor` wraps it; tests drive it in-process. It receives its
collaborators — the :class:`~raywatch.aggregate.store.Store`, the alerting (an
:class:`Alerting`, such as :class:`raywatch.alerts.hub.AlertingHub`), the failure counter
and the clock — in its constructor, and every method that depends on time takes ``now``
(UTC epoch seconds; the clock when omitted). The work is done by the modules of
:mod:`raywatch.aggregate`: :mod:`~raywatch.aggregate.ingest` (batches, labels),
:mod:`~raywatch.aggregate.evaluate` (windows, rolling view, drift, performance),
:mod:`~raywatch.aggregate.journal` and :mod:`~raywatch.aggregate.recovery` (persistence),
:mod:`~raywatch.aggregate.query` (status, history). Every failure inside is counted by stage
in :attr:`StatsCore.failures`: the actor's own errors never stop ingest.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from raywatch.aggregate import models as registry
from raywatch.aggregate.alerting import Alerting, NoAlerting, model_key_of
from raywatch.aggregate.data import encode
from raywatch.aggregate.evaluate import Evaluator
from raywatch.aggregate.failures import Failures
from raywatch.aggregate.ingest import Ingestor
from raywatch.aggregate.joiner import FeedbackJoiner
from raywatch.aggregate.journal import FeedbackItem, Journal
from raywatch.aggregate.model import ModelState
from raywatch.aggregate.query import actor_status, history, model_status
from raywatch.aggregate.recovery import recover, snapshot
from raywatch.aggregate.store import Store
from raywatch.aggregate.windows import Window
from raywatch.config import MonitorConfig, parse_config

__all__ = ["StatsCore"]


class StatsCore:
    """The stats actor's state and logic (see the module docstring).

    ``config`` is the actor-wide configuration (windows, actor, feedback; the alerting of
    models that bring none); ``store`` SQLite persistence (None: in memory); ``alerting``
    runs the rules (None: :class:`NoAlerting`); with ``group_commit`` journal entries wait
    for :meth:`flush_journal`; ``clock`` gives UTC epoch seconds when ``now`` is omitted.
    """

    def __init__(self, config: Any = None, store: Optional[Store] = None, *, alerting: Optional[Alerting] = None,
                 failures: Optional[Failures] = None, group_commit: bool = False, clock: Callable[[], float] = time.time,
                 shard: int = 0, name: str = "raywatch-stats"):
        self.config = parse_config(config) if config is not None else MonitorConfig()
        self.store, self.clock, self.shard, self.name = store, clock, shard, name
        self.alerting: Alerting = alerting if alerting is not None else NoAlerting()
        self._failures = failures if failures is not None else Failures()
        self.models: Dict[str, ModelState] = {}
        self.moved: Dict[str, str] = {}  # model key -> the shard it was handed to (raywatch.aggregate.rebalance)
        self.joiner = FeedbackJoiner(ttl=self.config.feedback.ttl, max_pending=self.config.feedback.max_pending)
        self.counters = {"batches": 0, "duplicates": 0, "feedback": 0, "evaluations": 0, "checkpoints": 0, "replayed": 0}
        self.transitions = 0
        self.last_evaluation: Optional[float] = None
        self.journal = Journal(store, self._failures, enabled=self.config.actor.journal, group_commit=group_commit)
        self._ingest = Ingestor(self.config, self.models, self.joiner, self._failures, self.counters,
                                on_new_model=self._persist, journal_batch=self.journal.batch)
        self._evaluator = Evaluator(self.config.windows, self.config.actor.replica_ttl, self._failures, on_closed=self._closed)

    @property
    def failures(self) -> Dict[str, int]:
        return self._failures.counts

    def fail(self, stage: str, exc: BaseException) -> None:
        self._failures.fail(stage, exc)

    def _now(self, now: Optional[float]) -> float:
        return self.clock() if now is None else now

    # ------------------------------------------------------------------ models, ingest, feedback
    def register_model(self, model_key: str, config: Any = None, profile_bytes: Optional[bytes] = None, *,
                       labels: Optional[Mapping[str, str]] = None, persist: bool = True,
                       now: Optional[float] = None) -> Dict[str, Any]:
        """Create or update a model: its config and reference profile."""
        ms = registry.register(self.models, model_key, config, profile_bytes, actor_config=self.config,
                               failures=self._failures, labels=labels)
        if persist:
            self._persist(ms, now)
        return {"model_key": model_key, "labels": dict(ms.labels), "profile": ms.profile is not None}

    def _persist(self, ms: ModelState, now: Optional[float] = None) -> None:
        if self.store is not None:
            try:
                self.store.save_model(ms.key, ms.labels, encode(registry.config_record(ms.config)), ms.profile_bytes,
                                      self._now(now))
            except Exception as exc:
                self.fail("store.model", exc)

    def ingest(self, batch: Any, now: Optional[float] = None) -> str:
        """Merge one replica batch (journaled first): ``"ok"``, ``"duplicate"``, ``"error"``
        or ``"reregister"`` (see :data:`raywatch.stats.batch.REREGISTER`)."""
        return self._ingest.ingest(batch, self._now(now))

    def feedback(self, request_id: str, label: Any, model_key: Optional[str] = None, now: Optional[float] = None) -> bool:
        """Record (and journal) one label; True when it joined a known prediction now."""
        return self.feedback_many([(str(request_id), label, model_key)], now) > 0

    def feedback_many(self, items: Sequence[FeedbackItem], now: Optional[float] = None) -> int:
        """Record (and journal, as one entry) labels; returns how many joined now."""
        now = self._now(now)
        self.journal.feedback(items, now)
        return sum(int(self._ingest.feedback(rid, label, mk, now)) for rid, label, mk in items)

    @property
    def journal_pending(self) -> int:
        return len(self.journal.pending)

    def flush_journal(self) -> int:
        """Write the journal entries waiting for a group commit; returns how many."""
        return self.journal.flush()

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, now: Optional[float] = None, *, want_status: bool = True) -> Optional[Dict[str, Any]]:
        """Close due windows, compute every model's view, run the alert rules; returns the
        status (unless ``want_status`` is False, as in the actor's periodic loop)."""
        now = self._now(now)
        self.counters["evaluations"] += 1
        groups = []
        for ms in list(self.models.values()):
            try:
                self._evaluator.evaluate_model(ms, now)
            except Exception as exc:
                self.fail("evaluate", exc)
                continue
            groups.append((registry.alerting_for(ms, self.config), ms.series))
        try:
            self.joiner.expire(now)
        except Exception as exc:
            self.fail("feedback.expire", exc)
        try:
            self.alerting.evaluate(groups, now, self._record_transition)
        except Exception as exc:
            self.fail("alerts.evaluate", exc)
        self.last_evaluation = now
        return self.status() if want_status else None

    def _closed(self, ms: ModelState, w: Window, result: Dict[str, Any]) -> None:
        if self.store is not None:
            self.store.insert_window(ms.key, w.start, w.end, result)

    def _record_transition(self, row: Dict[str, Any]) -> None:
        """An alert that fired or resolved, into the history."""
        self.transitions += 1
        if self.store is not None:
            try:
                self.store.insert_alert(row["ts"], model_key_of(row.get("labels") or {}), row)
            except Exception as exc:
                self.fail("alerts.history", exc)

    # ------------------------------------------------------------------ query
    def alerts(self, model_key: Optional[str] = None) -> List[Dict[str, Any]]:
        return self.alerting.alerts(model_key)

    def status(self, model_key: Optional[str] = None) -> Dict[str, Any]:
        models = {key: model_status(ms, shard=self.shard, alerts=self.alerts(key)) for key, ms in self.models.items()
                  if model_key is None or key == model_key or ms.labels.get("model") == model_key}
        actor = actor_status(self.config, self.models, self.joiner, name=self.name, shard=self.shard,
                             last_evaluation=self.last_evaluation, failures=self.failures, counters=self.counters,
                             sqlite_path=self.store.path if self.store is not None else None)
        return {"models": models, "actor": actor}

    def history(self, model_key: Optional[str] = None, since: Optional[float] = None, limit: int = 10_000,
                now: Optional[float] = None) -> Dict[str, Any]:
        """Closed windows, each feature's reference and current histograms (the rolling view
        at ``now``, default the last evaluation) and alert transitions."""
        at = now if now is not None else (self.last_evaluation if self.last_evaluation is not None else self.clock())
        stored = self.store is not None
        return history(self.models, self.store.windows(model_key, since, limit) if stored else [],
                       self.store.alerts(model_key, since, limit) if stored else [], model_key,
                       rolling=lambda ms: self._evaluator.rolling(ms, at)[0], fail=self.fail)

    # ------------------------------------------------------------------ persistence
    def checkpoint(self, now: Optional[float] = None) -> bool:
        """Write the state and trim the journal it includes (pending entries written first)."""
        if self.store is None:
            return False
        self.flush_journal()
        try:
            rows = snapshot(self.models, self.joiner, self.alerting.state(), self.counters, self._failures)
            self.store.checkpoint(rows, self.journal.last_id, self._now(now))
            self.counters["checkpoints"] += 1
            return True
        except Exception as exc:
            self.fail("checkpoint", exc)
            return False

    def recover(self) -> Dict[str, int]:
        """Load the models, the last checkpoint and replay the journal after it."""
        if self.store is None:
            return {}

        def register(key: str, cfg: Optional[MonitorConfig], profile: Optional[bytes], labels: Mapping[str, str]) -> ModelState:
            self.register_model(key, cfg, profile, labels=labels, persist=False)
            return self.models[key]

        stats, self.journal.last_id = recover(
            self.store, register=register, models=self.models, joiner=self.joiner, restore_engines=self.alerting.restore,
            counters=self.counters, failures=self._failures,
            replay_batch=lambda b, now: self._ingest.ingest(b, now, journal=False),
            replay_feedback=lambda items, now: [self._ingest.feedback(r, label, mk, now) for r, label, mk in items])
        return stats
