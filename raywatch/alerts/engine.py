"""The alerting engine: rules → lifecycle → routing → delivery, in one object.

The stats actor builds one engine from its configuration and calls :meth:`evaluate` with
the series of each evaluation. Evaluation is pure computation plus queue puts: it never
waits on a network call. Group timers run on a small dispatcher thread; each sink has its
own delivery thread and queue (:mod:`raywatch.alerts.delivery`), which reports back each
notification's outcome: only what a receiver accepted enters the notification log (see
:mod:`raywatch.alerts.dispatch`), and a receiver's acceptance settles the dead letters of
the same group. The Watchdog (:mod:`raywatch.alerts.watchdog`) fires from the first
evaluation on, unless ``alerting.watchdog`` turns it off.

>>> from raywatch.config import AlertingConfig
>>> cfg = AlertingConfig.model_validate({
...     "rules": [{"name": "HighErrorRate", "expr": "error_rate > 0.05", "severity": "critical",
...                "annotations": {"summary": "{{ $labels.model }} errors at {{ $value | humanizePercentage }}"}}],
...     "route": {"receiver": "log", "group_wait": "0s"},
...     "sinks": [{"name": "log", "type": "log"}]})
>>> from prometheus_client import CollectorRegistry
>>> engine = AlertEngine.from_config(cfg, registry=CollectorRegistry(), background=False)
>>> [(a.name, a.state) for a in engine.evaluate([Series("error_rate", {"model": "fraud"}, 0.08)], now=1000)]
[('HighErrorRate', 'firing')]
>>> engine.alerts()[0]["annotations"]["summary"]
'fraud errors at 8%'
>>> engine.close(timeout=5)
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from raywatch.alerts.alert import FIRING, PENDING, RESOLVED, Alert
from raywatch.alerts.deadletter import DeadLetterFile
from raywatch.alerts.delivery import DELIVERED, SinkWorker
from raywatch.alerts.dispatch import Dispatcher
from raywatch.alerts.inhibit import Inhibitor
from raywatch.alerts.metrics import AlertMetrics
from raywatch.alerts.routing import Route
from raywatch.alerts.rules import RuleSet
from raywatch.alerts.silence import Silences
from raywatch.alerts.watchdog import WATCHDOG_KEY, WatchdogRule, watchdog_route
from raywatch.config import AlertingConfig
from raywatch.series import Series
from raywatch.sinks import Sink, build_sink
from raywatch.sinks.notification import DIRECT, Notification, iso

log = logging.getLogger("raywatch.alerts.engine")

__all__ = ["AlertEngine"]

STATE_VERSION = 1


class AlertEngine:
    """Evaluates rules and routes their alerts to sinks.

    Parameters
    ----------
    cfg:
        ``AlertingConfig`` (or a ``MonitorConfig`` / mapping holding one).
    dead_letter_path:
        JSONL file for undeliverable notifications (default: ``cfg.dead_letter_path``;
        without either, they are logged at ERROR).
    registry:
        prometheus_client registry for the engine's metrics (default: the global one).
    background:
        Run the group timer thread (default). With ``False`` group flushes happen only in
        :meth:`evaluate` and :meth:`tick`, on the timestamps given: tests use this to
        drive time explicitly.
    sinks:
        Sink objects by name, replacing those built from the configuration (tests).
    """

    def __init__(self, cfg: Any, *, dead_letter_path: Optional[str] = None, registry: Any = None,
                 background: bool = True, sinks: Optional[Mapping[str, Sink]] = None,
                 clock=time.time, watchdog: bool = True):
        self.cfg = cfg = AlertingConfig.of(cfg)
        self.clock = clock
        self.metrics = AlertMetrics.for_registry(registry)
        builtin = [WatchdogRule(cfg.watchdog)] if watchdog and cfg.watchdog.enabled else []
        self.rules = RuleSet(cfg.rules, resolved_retention=float(cfg.resolved_retention), builtin=builtin)
        self.dead_letter = DeadLetterFile(dead_letter_path or cfg.dead_letter_path)
        overrides = dict(sinks or {})
        self.sinks: Dict[str, Sink] = {sc.name: overrides.pop(sc.name, None) or build_sink(sc) for sc in cfg.sinks}
        self.sinks.update(overrides)
        self._lock = threading.RLock()
        self.workers: Dict[str, SinkWorker] = {
            name: SinkWorker(s, self.metrics, self.dead_letter, on_outcome=self._on_outcome)
            for name, s in self.sinks.items()
        }
        self._direct = [name for name, s in self.sinks.items() if s.direct]
        # per direct sink: when each alert's firing push was last accepted, and what is on its way
        self._pushed: Dict[str, Dict[str, float]] = {name: {} for name in self._direct}
        self._inflight: Dict[str, Dict[str, Tuple[str, str]]] = {name: {} for name in self._direct}
        routed = [name for name, s in self.sinks.items() if not s.direct]
        root = Route(cfg.route) if cfg.route is not None else Route.default(routed)
        if builtin and cfg.watchdog.receivers():
            # first among the root's children, with a key of its own (the others' keys stay as they were)
            root.routes.insert(0, Route(watchdog_route(cfg.watchdog, cfg.watchdog.receivers()), root, "watchdog"))
        self.silences = Silences()
        for sc in cfg.silences:
            self.silences.add(sc.matchers, ends_at=sc.ends_at.timestamp(),
                              starts_at=sc.starts_at.timestamp() if sc.starts_at else 0.0,
                              comment=sc.comment, created_by=sc.created_by, from_config=True)
        self.inhibitor = Inhibitor(cfg.inhibit_rules)
        self.dispatcher = Dispatcher(root, self.inhibitor, self.silences, self._submit,
                                     {name: bool(getattr(s.cfg, "send_resolved", True)) for name, s in self.sinks.items()},
                                     supersede=self._supersede, on_group_closed=self._group_closed)
        self._wake = threading.Condition(self._lock)
        self._offset = 0.0  # evaluation time minus clock time (callers may run on their own timeline)
        self._closed = False
        self._thread: Optional[threading.Thread] = None
        if background:
            self._thread = threading.Thread(target=self._timer_loop, name="raywatch-alert-dispatch", daemon=True)
            self._thread.start()

    @classmethod
    def from_config(cls, cfg: Any, *, dead_letter_path: Optional[str] = None, registry: Any = None,
                    **kwargs: Any) -> "AlertEngine":
        """Build an engine (see the class for the parameters)."""
        return cls(cfg, dead_letter_path=dead_letter_path, registry=registry, **kwargs)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, series: Iterable[Series], now: Optional[float] = None) -> List[Alert]:
        """Run every rule over ``series`` (one sample per series at time ``now``, UTC epoch
        seconds, default the clock). Returns the alerts whose state changed: newly pending,
        newly firing, resolved (of the configured rules: the Watchdog, raywatch's own
        heartbeat, is routed and listed by :meth:`alerts` but is no rule's transition).
        Notifications are queued, never sent inline.

        The background timer follows the timeline of ``now``: it runs group timers at
        ``clock() + (now - clock() at the last evaluation)``, so a caller with its own
        (e.g. simulated) timestamps still gets group_wait and group_interval in real time."""
        t0 = time.perf_counter()
        with self._lock:
            if self._closed:
                raise RuntimeError("the alert engine is closed")
            if now is None:
                now = self.clock()
                self._offset = 0.0
            else:
                now = float(now)
                self._offset = now - self.clock()
            changed = self.rules.evaluate(series, now)
            for a in changed:
                self.metrics.set_state(a.labels, a.state)
            for name in self._direct:
                for a in self.rules.removed:  # forgotten: Alertmanager ends them by their endsAt
                    self._pushed[name].pop(a.fingerprint, None)
            for a in self.rules.removed:
                self.metrics.set_state(a.labels, None)
            if changed:
                if self.inhibitor.rules:
                    self._inhibit_from_rules()
                self.dispatcher.insert(changed, now)
            if self._direct:
                self._push_direct(changed, now)
            self.dispatcher.tick(now)
            self._wake.notify_all()
        self.metrics.evaluation_seconds.observe(time.perf_counter() - t0)
        if self.rules.builtin:
            return [a for a in changed if a.rule != WATCHDOG_KEY]
        return changed

    def resolve_all(self, reason: str = "", now: Optional[float] = None) -> List[Alert]:
        """Resolve every firing alert and forget pending ones, as when the configuration that
        raised them is being replaced, and notify now: every group with news is flushed at
        once (no group_wait), so the receivers hear "resolved" before the engine closes.
        ``reason`` goes into each resolved alert's ``resolved_reason`` annotation. Returns
        the alerts resolved. The Watchdog never resolves: it is forgotten without a word
        (the successor engine fires it again)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the alert engine is closed")
            now = self._now() if now is None else float(now)
            changed: List[Alert] = []
            for rule in self.rules.rules:
                if getattr(rule, "builtin", False):
                    for a in rule.active.values():
                        self.metrics.set_state(a.labels, None)
                    rule.active.clear()
                    continue
                for key, a in list(rule.active.items()):
                    if a.state == FIRING:
                        a.state, a.resolved_at = RESOLVED, now
                        if reason:
                            a.annotations["resolved_reason"] = reason
                        changed.append(a)
                    del rule.active[key]
                    self.metrics.set_state(a.labels, None)
            if changed:
                if self.inhibitor.rules:
                    self.inhibitor.update(())
                self.dispatcher.insert(changed, now)
            if self._direct:
                self._push_direct(changed, now)
            self.dispatcher.flush_all(now)
            self._wake.notify_all()
        return changed

    def tick(self, now: Optional[float] = None) -> int:
        """Flush the aggregation groups due at ``now``; returns notifications queued."""
        with self._lock:
            now = self._now() if now is None else float(now)
            self.silences.expire(now)
            return self.dispatcher.tick(now)

    def _inhibit_from_rules(self) -> None:
        """The inhibitor's sources: the rules' firing alerts (the caller holds the lock)."""
        self.inhibitor.update((a.labels, a.fingerprint) for a in self.rules.alerts() if a.state == FIRING)

    def _now(self) -> float:
        """The current time on the evaluations' timeline."""
        return self.clock() + self._offset

    def _push_direct(self, changed: Sequence[Alert], now: float) -> None:
        """Push to direct sinks (Alertmanager): alerts that start firing, firing alerts every
        ``resend_delay`` since their last *accepted* push, and resolves owed to a receiver
        that accepted a firing push. What failed is pushed again at the next evaluation;
        what is on its way is not pushed twice, and a newer state supersedes it."""
        alerts = {a.fingerprint: a for a in self.rules.alerts()}
        for a in changed:  # resolve_all has taken its alerts out of the rules
            alerts.setdefault(a.fingerprint, a)
        changed_fps = {a.fingerprint for a in changed}
        for name in self._direct:
            pushed, inflight = self._pushed[name], self._inflight[name]
            resend = float(getattr(self.sinks[name].cfg, "resend_delay", 60.0))
            batch: List[Alert] = []
            for fp, a in alerts.items():
                cur = inflight.get(fp)
                if a.state == FIRING:
                    due = fp in changed_fps or now - pushed.get(fp, float("-inf")) >= resend
                elif a.state == RESOLVED:
                    due = fp in pushed or (cur is not None and cur[1] == FIRING)
                else:
                    continue
                if not due:
                    continue
                if cur is not None:
                    if cur[1] == a.state:
                        continue  # the same news is on its way
                    self.workers[name].supersede(cur[0])
                batch.append(a)
            if not batch:
                continue
            n = Notification.build(name, DIRECT, {}, [a.notification_entry() for a in batch], created_at=now)
            for a in batch:
                inflight[a.fingerprint] = (n.id, a.state)
            self._submit(name, n)

    def _submit(self, receiver: str, n: Notification) -> None:
        w = self.workers.get(receiver)
        if w is None:  # pragma: no cover - config validation prevents it
            log.error("no sink named %s; notification %s dropped to the dead-letter file", receiver, n.id)
            self.dead_letter.write(receiver, "unknown", n, "no such sink", 0)
            self._on_outcome(receiver, n, "failed")
            return
        w.submit(n)

    def _supersede(self, receiver: str, notification_id: str) -> None:
        w = self.workers.get(receiver)
        if w is not None:
            w.supersede(notification_id)

    def _group_closed(self, group_key: str, receivers: Sequence[str], now: float) -> None:
        """Nothing is left to tell about a group: its dead letters are stale."""
        for r in receivers:
            self.dead_letter.settle(r, group_key, now, reason="nothing left to tell")

    def _track(self, receiver: str, n: Notification) -> None:
        """A notification re-queued from a saved outbox is pending like a fresh one."""
        if n.group_key == DIRECT:
            inflight = self._inflight.get(receiver)
            if inflight is not None:
                for e in n.alerts:
                    inflight[e["fingerprint"]] = (n.id, e["status"])
        else:
            self.dispatcher.track(n)

    def _on_outcome(self, sink: str, n: Notification, outcome: str) -> None:
        """From a delivery worker: ``n`` was delivered, failed or superseded."""
        with self._lock:
            if n.group_key == DIRECT:
                inflight, pushed = self._inflight.get(sink, {}), self._pushed.get(sink, {})
                for e in n.alerts:
                    fp = e["fingerprint"]
                    cur = inflight.get(fp)
                    if cur is not None and cur[0] == n.id:
                        del inflight[fp]
                    if outcome == DELIVERED:
                        if e["status"] == FIRING:
                            pushed[fp] = max(pushed.get(fp, float("-inf")), n.created_at)
                        else:
                            pushed.pop(fp, None)
            elif outcome == DELIVERED:
                self.dispatcher.delivered(n)
            else:
                self.dispatcher.undelivered(n)
        if outcome == DELIVERED:
            fps = [e["fingerprint"] for e in n.alerts] if n.group_key == DIRECT else None
            self.dead_letter.settle(sink, n.group_key, n.created_at, fps)

    def _timer_loop(self) -> None:
        with self._lock:
            while not self._closed:
                deadline = self.dispatcher.next_deadline()
                now = self._now()
                if deadline is not None and deadline <= now:
                    try:
                        self.silences.expire(now)
                        self.dispatcher.tick(now)
                    except Exception:  # pragma: no cover - keep the timer alive
                        log.exception("alert dispatch failed")
                    continue
                wait = 1.0 if deadline is None else min(1.0, deadline - now)
                self._wake.wait(wait)

    # ------------------------------------------------------------------ status
    def alerts(self) -> List[Dict[str, Any]]:
        """Active (pending and firing) alerts as dicts, with ``muted`` (``"silenced"``,
        ``"inhibited"`` or None) and RFC 3339 ``starts_at``."""
        with self._lock:
            now = self._now()
            out = []
            for a in self.rules.alerts():
                if a.state not in (PENDING, FIRING):
                    continue
                d = a.to_dict()
                muted = None
                if self.silences.silenced(a.labels, now):
                    muted = "silenced"
                elif a.state == FIRING and self.inhibitor.muted(a.labels, a.fingerprint):
                    muted = "inhibited"
                d["muted"] = muted
                d["starts_at"] = iso(a.starts_at)
                out.append(d)
            return out

    def silence(self, matchers: Sequence[str] | str, *, duration: Optional[float] = None,
                ends_at: Optional[float] = None, starts_at: Optional[float] = None,
                comment: str = "", created_by: str = "") -> str:
        """Add a silence (kept in :meth:`state`); returns its id."""
        with self._lock:
            start = self._now() if starts_at is None else float(starts_at)
            if ends_at is None:
                if duration is None:
                    raise ValueError("give duration or ends_at")
                ends_at = start + float(duration)
            return self.silences.add(matchers, starts_at=start, ends_at=ends_at, comment=comment, created_by=created_by)

    def expire_silence(self, silence_id: str) -> bool:
        with self._lock:
            return self.silences.remove(silence_id)

    def list_silences(self) -> List[Dict[str, Any]]:
        with self._lock:
            return [s.to_dict() for s in self.silences.list()]

    # ------------------------------------------------------------------ a model moving to another shard
    def take_alerts(self, belongs: Callable[[Mapping[str, str]], bool], now: Optional[float] = None) -> Optional[Dict[str, Any]]:
        """Take out, without a word, the alerts (pending, firing, resolved and kept) whose
        labels ``belongs`` — a model handed over to another stats actor shard, whose engine
        goes on with them (:meth:`give_alerts`): nothing resolves here and nothing fires
        again there. Returns them with the notification log's entries about them and their
        direct pushes (JSON-able data), or None when there was none."""
        with self._lock:
            if self._closed:
                return None
            now = self._now() if now is None else float(now)
            rules: Dict[str, List[Dict[str, Any]]] = {}
            taken = set()
            for rule in self.rules.rules:
                if getattr(rule, "builtin", False):
                    continue
                for key, a in list(rule.active.items()):
                    if belongs(a.labels):
                        rules.setdefault(rule.key, []).append({"series": dict(key), "alert": a.to_dict()})
                        taken.add(a.fingerprint)
                        del rule.active[key]
                        self.metrics.set_state(a.labels, None)
            if not taken:
                return None
            nflog = self.dispatcher.take(taken, now)
            direct = {}
            for name, pushed in self._pushed.items():
                mine = {fp: pushed.pop(fp) for fp in taken & pushed.keys()}
                if mine:
                    direct[name] = mine
            if self.inhibitor.rules:
                self._inhibit_from_rules()
            return {"version": STATE_VERSION, "rules": rules, "nflog": nflog, "direct": direct}

    def give_alerts(self, taken: Mapping[str, Any], now: Optional[float] = None) -> int:
        """Go on with the alerts another engine's :meth:`take_alerts` gave up (the same
        configuration on another shard); an alert this engine already fires for the same
        series stays as it is. Returns how many were taken over."""
        if not taken or taken.get("version") != STATE_VERSION:
            return 0
        with self._lock:
            if self._closed:
                raise RuntimeError("the alert engine is closed")
            now = self._now() if now is None else float(now)
            by_key = {r.key: r for r in self.rules.rules if not getattr(r, "builtin", False)}
            alerts: List[Alert] = []
            for rule_key, items in (taken.get("rules") or {}).items():
                rule = by_key.get(rule_key)
                if rule is None:
                    log.info("dropping %d alert(s) of rule %s handed over, which is not configured here", len(items), rule_key)
                    continue
                for d in items:
                    key = tuple(sorted(d["series"].items()))
                    mine = rule.active.get(key)
                    if mine is not None and mine.state != PENDING:
                        continue
                    a = rule.active[key] = Alert.from_dict(d["alert"])
                    self.metrics.set_state(a.labels, a.state)
                    alerts.append(a)
            self.dispatcher.give(taken.get("nflog") or (), alerts, now)
            for name, pushed in (taken.get("direct") or {}).items():
                if name in self._pushed:
                    self._pushed[name].update({fp: float(t) for fp, t in pushed.items()})
            if self.inhibitor.rules:
                self._inhibit_from_rules()
            self._wake.notify_all()
            return len(alerts)

    # ------------------------------------------------------------------ persistence
    def state(self) -> Dict[str, Any]:
        """Everything needed to resume after a restart, as JSON-able data."""
        with self._lock:
            return {
                "version": STATE_VERSION,
                "saved_at": self._now(),
                "rules": self.rules.state(),
                "dispatch": self.dispatcher.state(),
                "silences": self.silences.state(),
                "direct": {k: dict(v) for k, v in self._pushed.items()},
                "outbox": {name: [n.to_dict() for n in w.pending()] for name, w in self.workers.items() if w.outbox},
            }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Resume from :meth:`state` (alerts, pending group flushes, notification log,
        runtime silences, notifications not yet delivered, which are queued again). Call
        before the first :meth:`evaluate`."""
        if not state:
            return
        if state.get("version") != STATE_VERSION:
            log.warning("ignoring saved alerting state of version %r", state.get("version"))
            return
        with self._lock:
            self.rules.restore(state.get("rules", {}))
            live = {a.fingerprint: a for a in self.rules.alerts()}
            for a in live.values():
                self.metrics.set_state(a.labels, a.state)
            self.dispatcher.restore(state.get("dispatch", {}), live)
            self.silences.restore(state.get("silences", []))
            for name, pushed in (state.get("direct") or {}).items():
                if name in self._pushed:
                    self._pushed[name].update({k: float(v) for k, v in pushed.items()})
            if self.inhibitor.rules:
                self.inhibitor.update((a.labels, a.fingerprint) for a in live.values() if a.state == FIRING)
            resent = 0
            for name, items in (state.get("outbox") or {}).items():
                w = self.workers.get(name)
                for d in items:
                    n = Notification.from_dict(d)
                    if w is None:
                        self.dead_letter.write(name, "unknown", n, "sink no longer configured", 0)
                        continue
                    self._track(name, n)
                    if w.submit(n):
                        resent += 1
            if resent:
                log.info("re-queued %d notification(s) that were not delivered before the last save", resent)
            self._wake.notify_all()

    # ------------------------------------------------------------------ shutdown
    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every queued notification has been handled (delivered or dead-lettered)."""
        deadline = time.monotonic() + timeout
        return all(w.idle(max(0.0, deadline - time.monotonic())) for w in self.workers.values())

    def hand_over(self, timeout: float = 10.0) -> Dict[str, Any]:
        """Stop at once and return :meth:`state` for a successor with the same configuration
        but other secrets (a rotated webhook URL or key): nothing resolves, nothing queued is
        dead-lettered or delivered here any more — the successor resends the outbox to its
        own addresses. The workers and sinks finish closing in the background."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the alert engine is closed")
            state = self.state()
            self._closed = True
            self._wake.notify_all()
        for w in self.workers.values():
            w.hand_over()

        def finish() -> None:
            if self._thread is not None:
                self._thread.join(2.0)
            deadline = time.monotonic() + max(0.0, timeout)
            for w in self.workers.values():
                w.finish_close(deadline)

        threading.Thread(target=finish, name="raywatch-engine-handover", daemon=True).start()
        return state

    def close(self, timeout: float = 10.0) -> None:
        """Stop the timer; give the delivery workers ``timeout`` seconds in all to deliver
        what is queued; what is left goes to the dead-letter file."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(2.0)
        deadline = time.monotonic() + max(0.0, timeout)
        for w in self.workers.values():
            w.begin_close()
        for w in self.workers.values():
            w.finish_close(deadline)

    def __enter__(self) -> "AlertEngine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
