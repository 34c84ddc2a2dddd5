"""The stats actor's logic without Ray: :class:`StatsCore`, a facade over the aggregation core.

:class:`raywatch.actor.actor.StatsActor` wraps it; tests drive it in-process. It receives its
collaborators — the :class:`~raywatch.aggregate.store.Store`, the alerting (an
:class:`Alerting`, such as :class:`raywatch.alerts.hub.AlertingHub`), the failure counter
and the clock — in its constructor, and every method that depends on time takes ``now``
(UTC epoch seconds; the clock when omitted). The work is done by the modules of
:mod:`raywatch.aggregate`: :mod:`~raywatch.aggregate.ingest` (batches, labels),
:mod:`~raywatch.aggregate.evaluate` (windows, rolling view, drift, performance),
:mod:`~raywatch.aggregate.journal` and :mod:`~raywatch.aggregate.recovery` (persistence),
:mod:`~raywatch.aggregate.health` (the state file's health, raywatch's own alerts),
:mod:`~raywatch.aggregate.query` (status, history). Every failure inside is counted by stage
in :attr:`StatsCore.failures`: the actor's own errors never stop ingest.

Nothing is acknowledged before it is durable. :meth:`StatsCore.ingest` and
:meth:`StatsCore.feedback_many` journal what they bring, then merge it, then return; a
journal write that fails raises :class:`~raywatch.aggregate.journal.StoreWriteError` and
nothing is merged, so the caller (a replica's shipper) keeps the batch and retries. The
stats actor does the same in three steps, so that the write happens on the store's writer
thread while its event loop goes on: :meth:`StatsCore.admit` (a :class:`Ticket`, or the
reply when there is nothing to write), the journal write of a group of tickets
(:meth:`StatsCore.journal_rows` → ``store.append_journal``), then :meth:`StatsCore.settle`
(merge each ticket, or release them all when the write failed).
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from typing import Any, Callable, Collection, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from raywatch.aggregate import models as registry
from raywatch.aggregate.alerting import Alerting, NoAlerting, model_key_of
from raywatch.aggregate.data import encode
from raywatch.aggregate.evaluate import Evaluator, close_spread
from raywatch.aggregate.failures import Failures
from raywatch.aggregate.health import StoreHealth, builtin_alerting
from raywatch.aggregate.ingest import Admitted, Ingestor
from raywatch.aggregate.joiner import FeedbackJoiner
from raywatch.aggregate.journal import FeedbackItem, Journal, JournalFull, JournalRow, StoreWriteError, batch_row, \
    clean_batch, feedback_row
from raywatch.aggregate.model import ModelState
from raywatch.aggregate.query import actor_status, history, model_status
from raywatch.aggregate.rebalance import PLACEMENT_KEY, placement, restore as restore_placement
from raywatch.aggregate.recovery import recover, snapshot
from raywatch.aggregate.segment_eval import default_rule_groups
from raywatch.aggregate.remediation import RemediationSide
from raywatch.aggregate.store import Store
from raywatch.aggregate.windows import Window
from raywatch.config import MonitorConfig, parse_config
from raywatch.series import Series

__all__ = ["StatsCore", "Ticket"]

log = logging.getLogger("raywatch.aggregate.core")


class Ticket:
    """One call's data taken in and waiting for its journal write (see the module docstring).

    ``rows`` are its journal entries; ``reply`` is filled by :meth:`StatsCore.settle`.
    """

    __slots__ = ("kind", "rows", "admitted", "items", "now", "reply")

    def __init__(self, kind: str, rows: List[JournalRow], now: float, admitted: Optional[Admitted] = None,
                 items: Optional[List[FeedbackItem]] = None):
        self.kind = kind
        self.rows = rows
        self.now = now
        self.admitted = admitted
        self.items = items or []
        self.reply: Any = None


class StatsCore:
    """The stats actor's state and logic (see the module docstring).

    ``config`` is the actor-wide configuration (windows, actor, feedback; the alerting of
    models that bring none); ``store`` SQLite persistence (None: in memory; with
    ``store_error``, because the configured file could not be opened: status and the
    built-in alert say so); ``alerting`` runs the rules (None: :class:`NoAlerting`);
    ``clock`` gives UTC epoch seconds when ``now`` is omitted.
    """

    def __init__(self, config: Any = None, store: Optional[Store] = None, *, alerting: Optional[Alerting] = None,
                 failures: Optional[Failures] = None, clock: Callable[[], float] = time.time,
                 shard: int = 0, name: str = "raywatch-stats", store_error: Optional[BaseException] = None,
                 store_path: Optional[str] = None):
        self.config = parse_config(config) if config is not None else MonitorConfig()
        self.store, self.clock, self.shard, self.name = store, clock, shard, name
        self.alerting: Alerting = alerting if alerting is not None else NoAlerting()
        self._failures = failures if failures is not None else Failures()
        self.models: Dict[str, ModelState] = {}
        # placement (raywatch.aggregate.rebalance): the shard count this shard knows (raised when a
        # shard is added at run time), the count being reached, model key -> the shard it was
        # handed to, model key -> the hand-over record taken, hand-over records not yet forgotten
        self.shards = self.growing = self.config.actor.shards
        self.moved: Dict[str, str] = {}
        self.taken: Dict[str, str] = {}
        self.handovers: Dict[str, Dict[str, Any]] = {}
        fb = self.config.feedback
        self.joiner = FeedbackJoiner(ttl=fb.ttl, max_pending=fb.max_pending, max_pending_bytes=fb.max_pending_bytes)
        self.counters = {"batches": 0, "duplicates": 0, "feedback": 0, "evaluations": 0, "checkpoints": 0, "replayed": 0}
        self.refused: Dict[str, int] = {}  # labels refused, by reason
        self.transitions = 0
        self.last_evaluation: Optional[float] = None
        a = self.config.actor
        self.health = StoreHealth(store, error=store_error, path=store_path or a.sqlite_path,
                                  journal_max_bytes=a.journal_max_bytes, hold=a.store_alert_hold)
        for ev in store.repairs if store is not None else ():
            self.fail(f"store.{ev['kind']}", RuntimeError(f"{ev['path']}: {ev['detail']} (moved to {ev['moved_to']})"))
        if store_error is not None:
            self.fail("store.open", store_error)
        self.journal = Journal(store, self._failures, enabled=a.journal)
        self._checkpointing: Optional["concurrent.futures.Future[Any]"] = None
        self._ingest = Ingestor(self.config, self.models, self.joiner, self._failures, self.counters,
                                on_new_model=self._persist, refused=self.refused,
                                on_new_generation=lambda ms: self.joiner.forget_model(ms.key))
        self._evaluator = Evaluator(self.config.windows, self.config.actor.replica_ttl, self._failures, on_closed=self._closed)
        # (issue 14) the audit trail in this store, labels into payload logs, their counters
        self.remediation = RemediationSide(store, self._failures)
        self.audit = self.remediation.audit

    @property
    def failures(self) -> Dict[str, int]:
        return self._failures.counts

    def fail(self, stage: str, exc: BaseException) -> None:
        self._failures.fail(stage, exc)

    def _now(self, now: Optional[float]) -> float:
        return self.clock() if now is None else now

    # ------------------------------------------------------------------ writes to the store
    def _write(self, stage: str, fn: Callable[..., Any], *args: Any,
               done: Optional[Callable[[Any], None]] = None) -> Optional["concurrent.futures.Future[Any]"]:
        """Run a store write on its writer thread (at once without one); a failure is
        counted under ``stage`` and marks the store as failing until a write succeeds."""
        if self.store is None:
            return None
        fut = self.store.submit(fn, *args)

        def finished(f: "concurrent.futures.Future[Any]") -> None:
            exc = f.exception()
            self.health.wrote(exc)
            if exc is not None:
                self.fail(stage, exc)
            elif done is not None:
                done(f.result())

        fut.add_done_callback(finished)
        return fut

    # ------------------------------------------------------------------ models, ingest, feedback
    def register_model(self, model_key: str, config: Any = None, profile_bytes: Optional[bytes] = None, *,
                       labels: Optional[Mapping[str, str]] = None, persist: bool = True,
                       now: Optional[float] = None) -> Dict[str, Any]:
        """Create or update a model: its config and reference profile."""
        ms = registry.register(self.models, model_key, config, profile_bytes, actor_config=self.config,
                               failures=self._failures, labels=labels)
        ms.registered = True
        if persist:
            self._persist(ms, now)
        return {"model_key": model_key, "labels": dict(ms.labels), "profile": ms.profile is not None}

    def _persist(self, ms: ModelState, now: Optional[float] = None) -> None:
        if self.store is not None:
            try:
                cfg = encode(registry.config_record(ms.config)) if ms.registered else None
            except Exception as exc:
                self.fail("store.model", exc)
                return
            self._write("store.model", self.store.save_model, ms.key, dict(ms.labels), cfg, ms.profile_bytes,
                        self._now(now))

    @property
    def durable(self) -> bool:
        """Whether calls are journaled before they are acknowledged."""
        return self.journal.enabled

    def admit(self, batch: Any, now: Optional[float] = None) -> Union[str, Ticket]:
        """Take a replica batch in: a :class:`Ticket` to journal and :meth:`settle`, or the
        reply (``"duplicate"``, ``"error"``). Raises :class:`JournalFull` when the journal
        is at its bound and cannot shrink now."""
        now = self._now(now)
        self._journal_room(now)
        a = self._ingest.admit(batch, now)
        if isinstance(a, str):
            return a
        b = a.batch
        if self.durable:
            try:
                try:
                    rows = [batch_row(b, now)]
                except (TypeError, ValueError):  # a value that is not plain data: it costs only itself
                    a = Admitted(a.ms, a.rep, clean_batch(b, lambda where, exc: self._bad_value(a.ms, where, exc)))
                    rows = [batch_row(a.batch, now)]
            except Exception as exc:
                self._ingest.abandon(a)
                self.fail("ingest.decode", exc)
                return "error"
        else:
            rows = []
        return Ticket("batch", rows, now, admitted=a)

    def _bad_value(self, ms: ModelState, where: str, exc: BaseException) -> None:
        ms.refused["values"] += 1
        self.fail("ingest.value", TypeError(f"{ms.key}: {where}: {exc}"))

    def admit_feedback(self, items: Sequence[FeedbackItem], now: Optional[float] = None, *,
                       expected: Collection[str] = ()) -> Tuple[Optional[Ticket], Dict[str, int]]:
        """Take labels in: ``(ticket or None, refused by reason)``; each item is checked
        on its own (one bad label costs only itself). ``expected``: models handed over to
        this shard and not imported yet, whose labels wait for them
        (:meth:`~raywatch.aggregate.ingest.Ingestor.check_label`)."""
        now = self._now(now)
        ok: List[FeedbackItem] = []
        refused: Dict[str, int] = {}
        reserved: Dict[str, set] = {}
        for rid, label, mk in items:
            reason = self._ingest.check_label(rid, label, mk, reserved, expected)
            if reason is not None:
                refused[reason] = refused.get(reason, 0) + 1
                self._ingest.refuse(reason)
                continue
            ok.append((str(rid), label, mk))
        if not ok:
            return None, refused
        self._journal_room(now)
        rows = [feedback_row(ok, now)] if self.durable else []
        return Ticket("feedback", rows, now, items=ok), refused

    def _journal_room(self, now: float) -> None:
        """Raise :class:`JournalFull` when the journal is at its bound after a checkpoint."""
        h = self.health
        if not self.durable or not h.journal_over():
            h.journal_full = False
            return
        if self._checkpointing is None or self._checkpointing.done():
            self.start_checkpoint(now)
        if h.journal_over():
            h.journal_full = True
            raise JournalFull(f"the ingest journal holds {self.store.journal_bytes} bytes "  # type: ignore[union-attr]
                              f"(actor.journal_max_bytes {h.journal_max_bytes}); a checkpoint is under way, send again")
        h.journal_full = False

    @staticmethod
    def journal_rows(tickets: Sequence[Ticket]) -> List[JournalRow]:
        return [row for t in tickets for row in t.rows]

    def settle(self, tickets: Sequence[Ticket], last_id: Optional[int] = None,
               error: Optional[BaseException] = None) -> None:
        """After the tickets' journal write: merge each (``reply`` set) and note that the
        journal up to ``last_id`` is merged — or, with ``error``, release them (nothing merged)."""
        if error is not None:
            for t in tickets:
                if t.admitted is not None:
                    self._ingest.abandon(t.admitted)
            return
        batches = [t for t in tickets if t.kind == "batch"]
        summaries = dict(zip(map(id, batches), self._ingest.decode_summaries([t.admitted for t in batches])))  # type: ignore[misc]
        for t in tickets:
            if t.kind == "batch":
                t.reply = self._ingest.apply(t.admitted, t.now, summary=summaries[id(t)])  # type: ignore[arg-type]
                b = t.admitted.batch  # type: ignore[union-attr]
                if b.payload_log:  # (issue 14) the replica's payload-log counters
                    self.remediation.note_batch(t.admitted.ms.key, str(b.replica_id), b.payload_log)  # type: ignore[union-attr]
            else:
                t.reply = sum(int(self._ingest.feedback(rid, label, mk, t.now)) for rid, label, mk in t.items)
                self.remediation.labels(t.items, self.models, t.now)  # (issue 14) into the payload logs
        if last_id is not None and any(t.rows for t in tickets):
            self.journal.last_id = max(self.journal.last_id, int(last_id))

    def commit(self, tickets: Sequence[Ticket]) -> None:
        """Write the tickets' journal entries here and now, then :meth:`settle` them.
        Raises :class:`StoreWriteError` when the write fails (nothing merged)."""
        rows = self.journal_rows(tickets)
        if not rows:
            self.settle(tickets)
            return
        try:
            last = self.journal.write(rows)
        except StoreWriteError as exc:
            self.health.wrote(exc.__cause__ or exc)
            self.settle(tickets, error=exc)
            raise
        self.health.wrote(None)
        self.settle(tickets, last)

    def ingest(self, batch: Any, now: Optional[float] = None) -> str:
        """Merge one replica batch, journaled first: ``"ok"``, ``"duplicate"``, ``"error"`` or
        ``"reregister"`` (see :data:`raywatch.stats.batch.REREGISTER`). Raises
        :class:`StoreWriteError` when it cannot be journaled (nothing merged)."""
        t = self.admit(batch, now)
        if isinstance(t, str):
            return t
        self.commit([t])
        return t.reply

    def feedback(self, request_id: str, label: Any, model_key: Optional[str] = None, now: Optional[float] = None) -> bool:
        """Record (and journal) one label; True when it joined a known prediction now."""
        return self.feedback_many([(str(request_id), label, model_key)], now) > 0

    def feedback_many(self, items: Sequence[FeedbackItem], now: Optional[float] = None) -> int:
        """Record (and journal, as one entry) labels; returns how many joined now (refused
        ones are counted in :attr:`refused`)."""
        return self.feedback_items(items, now)["joined"]

    def alerting_groups(self, ms: ModelState) -> List[Tuple[Any, ...]]:
        """The alerting groups of a model's series: ``(its own alerting or the actor's, its
        series, False)``, then its default fairness and replica rules' (issue 12)."""
        return [(registry.alerting_for(ms, self.config), ms.series, False)] + default_rule_groups(ms, self.config)

    def take_alerts(self, model_key: str, now: Optional[float] = None) -> Dict[str, Dict[str, Any]]:
        """The model's alerts, taken out of this shard's engines without a word (it is being
        handed over: :func:`raywatch.aggregate.rebalance.begin`)."""
        try:
            return self.alerting.take_model(model_key, self._now(now))
        except Exception as exc:  # the model still moves; its alerts start again over there
            self.fail("alerts.handover", exc)
            return {}

    def give_alerts(self, model_key: str, taken: Mapping[str, Mapping[str, Any]], now: Optional[float] = None) -> int:
        """Go on with the alerts of a model handed over here (after its import)."""
        ms = self.models.get(model_key)
        if ms is None or not taken:
            return 0
        try:
            return self.alerting.give_model([g[0] for g in self.alerting_groups(ms)], taken, self._now(now))
        except Exception as exc:
            self.fail("alerts.handover", exc)
            return 0

    def take_feedback(self, model_key: str, entries: Dict[str, Any], now: Optional[float] = None) -> int:
        """Take over another shard's feedback-join entries of a model handed over here
        (:func:`raywatch.aggregate.rebalance.import_model`); returns how many joined and were
        scored now."""
        return self._ingest.joined(self.joiner.import_model(model_key, entries), self._now(now))

    def feedback_items(self, items: Sequence[FeedbackItem], now: Optional[float] = None) -> Dict[str, Any]:
        """Labels in: ``{"accepted", "joined", "refused": {reason: n}}``."""
        t, refused = self.admit_feedback(items, now)
        if t is None:
            return {"accepted": 0, "joined": 0, "refused": refused}
        self.commit([t])
        return {"accepted": len(t.items), "joined": t.reply, "refused": refused}

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, now: Optional[float] = None, *, want_status: bool = True) -> Optional[Dict[str, Any]]:
        """Close due windows, compute every model's view, run the alert rules (the models'
        and the built-in rules on the actor's own health); returns the status (unless
        ``want_status`` is False, as in the actor's periodic loop)."""
        now = self._now(now)
        self.counters["evaluations"] += 1
        groups = []
        self._evaluator.spread = close_spread(self.config.windows, len(self.models))
        for ms in self._evaluator.evaluate_models(list(self.models.values()), now, self.fail):
            groups.extend(self.alerting_groups(ms))
        try:
            self.joiner.expire(now)
        except Exception as exc:
            self.fail("feedback.expire", exc)
        try:
            # the actor's own group: the store's health rules, and the one Watchdog of this actor
            groups.append((builtin_alerting(self.config.alerting), self.health_series(now), True))
        except Exception as exc:
            self.fail("health", exc)
        try:
            self.alerting.evaluate(groups, now, self._record_transition)
        except Exception as exc:
            self.fail("alerts.evaluate", exc)
        self.last_evaluation = now
        return self.status(now=now) if want_status else None

    def health_series(self, now: Optional[float] = None) -> List[Series]:
        """The actor's own health series (:data:`raywatch.series.SELF_HEALTH`)."""
        return self.health.series(self.name, self._now(now))

    def _closed(self, ms: ModelState, w: Window, result: Dict[str, Any]) -> None:
        if self.store is not None:
            self._write("store.window", self.store.insert_window, ms.key, w.start, w.end, result)

    def _record_transition(self, row: Dict[str, Any]) -> None:
        """An alert that fired or resolved, into the history."""
        self.transitions += 1
        if self.store is not None:
            self._write("alerts.history", self.store.insert_alert, row["ts"], model_key_of(row.get("labels") or {}), row)

    # ------------------------------------------------------------------ query
    def alerts(self, model_key: Optional[str] = None) -> List[Dict[str, Any]]:
        return self.alerting.alerts(model_key)

    def status(self, model_key: Optional[str] = None, now: Optional[float] = None) -> Dict[str, Any]:
        now = self._now(now)
        models = {key: model_status(ms, shard=self.shard, alerts=self.alerts(key), now=now,
                                    replica_ttl=self.config.actor.replica_ttl)
                  for key, ms in self.models.items()
                  if model_key is None or key == model_key or ms.labels.get("model") == model_key}
        actor = actor_status(self.config, self.models, self.joiner, name=self.name, shard=self.shard,
                             last_evaluation=self.last_evaluation, failures=self.failures, counters=self.counters,
                             sqlite_path=self.store.path if self.store is not None else None)
        actor["shards"] = self.shards  # the live count (a shard added at run time raises it)
        actor["store"] = self.health.status(now)
        actor["labels"] = {"refused": dict(self.refused), "pending_bytes": self.joiner.label_bytes}
        actor["alerts"] = [a for a in self.alerts() if model_key_of(a.get("labels") or {}) is None]
        actor["remediation"] = self.remediation.status()
        return {"models": models, "actor": actor}

    def history(self, model_key: Optional[str] = None, since: Optional[float] = None, limit: int = 10_000,
                now: Optional[float] = None) -> Dict[str, Any]:
        """Closed windows, each feature's reference and current histograms (the rolling view
        at ``now``, default the last evaluation) and alert transitions."""
        at = now if now is not None else (self.last_evaluation if self.last_evaluation is not None else self.clock())
        stored = self.store is not None
        out = history(self.models, self.store.windows(model_key, since, limit) if stored else [],
                      self.store.alerts(model_key, since, limit) if stored else [], model_key,
                      rolling=lambda ms: self._evaluator.rolling(ms, at)[0], fail=self.fail)
        audit = self.remediation.events(model_key, since)
        if audit:  # (issue 14) remediation decisions, drawn on the report's timeline
            out["audit"] = audit
        return out

    # ------------------------------------------------------------------ reset
    def model_keys(self, model: str) -> List[str]:
        """The keys a model key or model name (``labels["model"]``) refers to."""
        if model in self.models:
            return [model]
        return sorted(k for k, ms in self.models.items() if ms.labels.get("model") == model)

    def start_reset(self, model: str) -> Tuple[Dict[str, Any], Optional["concurrent.futures.Future[Any]"]]:
        """Forget a model (a key, or a model name: every model of that name) — its state,
        pending predictions and labels here, and its registration, checkpoint, journal,
        windows and alert history in the SQLite file (written on the writer thread: the
        future of the rows deleted per table, None without a store). Returns
        ``(answer, future)``; see :meth:`reset_model`."""
        keys = self.model_keys(model) or ([model] if "/" in model else [])
        answer: Dict[str, Any] = {"model": model, "keys": keys, "found": [k for k in keys if k in self.models],
                                  "pending_dropped": 0, "deleted": {}}
        for key in keys:
            self.models.pop(key, None)
            answer["pending_dropped"] += self.joiner.forget_model(key)
        if self.store is None or not keys:
            return answer, None
        store = self.store

        def forget() -> Dict[str, int]:
            total: Dict[str, int] = {}
            for key in keys:
                for table, n in store.forget_model(key).items():
                    total[table] = total.get(table, 0) + n
            return total

        return answer, self._write("store.reset", forget)

    def reset_model(self, model: str) -> Dict[str, Any]:
        """Forget a model in this actor and its SQLite file (``raywatch reset --model``):
        ``{"model", "keys", "found", "pending_dropped", "deleted": {table: rows}}``. Its
        replicas, if still running, register it again with their next batch (fresh figures);
        its active alerts resolve at the next evaluation."""
        answer, fut = self.start_reset(model)
        if fut is not None:
            answer["deleted"] = fut.result()
        return answer

    # ------------------------------------------------------------------ persistence
    def start_checkpoint(self, now: Optional[float] = None,
                         need: Sequence[str] = ()) -> Optional["concurrent.futures.Future[Any]"]:
        """Snapshot the state here and write it (and trim the journal it includes) on the
        store's writer thread; the future of the write (None without a store). ``need``:
        models whose rows must be in it (else StoreWriteError: nothing written)."""
        if self.store is None:
            return None
        try:
            rows = snapshot(self.models, self.joiner, self.alerting.state(), self.counters, self._failures,
                            self.refused)
            where = placement(self)
            if where is not None:
                rows[PLACEMENT_KEY] = ("placement", encode(where))
        except Exception as exc:
            self.fail("checkpoint", exc)
            if need:
                raise StoreWriteError(f"no checkpoint could be taken ({type(exc).__name__}: {exc})") from exc
            return None
        missing = [k for k in need if k not in rows]
        if missing:
            raise StoreWriteError(f"the checkpoint could not hold the state of {', '.join(missing)} (see failures)")

        def done(_trimmed: Any) -> None:
            self.counters["checkpoints"] += 1
            self.health.journal_full = self.health.journal_over()

        self._checkpointing = self._write("checkpoint", self.store.checkpoint, rows, self.journal.last_id,
                                          self._now(now), done=done)
        return self._checkpointing

    def checkpoint(self, now: Optional[float] = None) -> bool:
        """Write the state and trim the journal it includes; True once written."""
        fut = self.start_checkpoint(now)
        if fut is None:
            return False
        try:
            fut.result()
            return True
        except Exception:
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
            replay_batch=lambda b, now, model=True, joiner=True: self._ingest.ingest(b, now, model=model, joiner=joiner),
            replay_feedback=lambda items, now: [self._ingest.feedback(r, label, mk, now) for r, label, mk in items],
            refused=self.refused, placement=lambda kind, key, rec: restore_placement(self, kind, key, rec))
        return stats
