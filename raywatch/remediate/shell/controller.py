"""The remediation controller: a detached, named, async Ray actor that runs the loop.

Where the loop runs, and why: alerts are decided in the stats actor, but a retrain takes
minutes to hours and a rollout waits on Serve; none of that may hold the stats actor's
event loop (which ingests every replica's batches). So the loop runs in an actor of its
own (``raywatch-remediation`` in the ``raywatch`` namespace, no CPU of its own, created
with get-if-exists semantics like the stats actor), and alert notifications reach it the
way they reach any destination: as a :class:`~raywatch.sinks.notification.Notification`
(``notify``), sent by the ``remediation`` sink (:mod:`raywatch.remediate.shell.sink`)
through the alert routing tree (grouping, inhibition and silences apply), or by anything
that speaks Alertmanager's webhook payload. Retraining and scoring run as Ray tasks with
the policy's resources; the rollout goes through Serve's declarative config
(:mod:`~raywatch.remediate.shell.serving`) and the rollout router
(:mod:`raywatch.serve.router`), which polls :meth:`RemediationController.route`.

Every step is an audit event (:mod:`raywatch.aggregate.audit`), committed before the loop
goes on — in the SQLite file of the stats actor that registered the model, or the
controller's own file (:mod:`~raywatch.remediate.shell.trail`) — and told to the model's
sinks when it is worth telling (:mod:`raywatch.remediate.notify`). The decisions' state is folded from the trail
(:func:`raywatch.remediate.policy.fold`): guardrails hold across restarts, and a decision
that was under way when the controller stopped is closed as ``failed`` (its candidate
application removed) when it starts again (or, for a model whose trail is in a stats actor's
file, when that actor registers the model with it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import uuid
from typing import Any, Dict, List, Mapping, Optional, Tuple

from raywatch import series
from raywatch.aggregate.audit import AuditEvent
from raywatch.aggregate.store import open_audit_log
from raywatch.config import parse_config
from raywatch.config.remediate import RemediationSettings
from raywatch.remediate import estimated, gate, notify
from raywatch.remediate.context import Candidate
from raywatch.remediate.policy import admit, firing_alerts, fold, triggers
from raywatch.remediate.rollout import (ArmFigures, Verdict, advance, canary_verdict, is_final, realized_verdict,
                                       shadow_verdict)
from raywatch.remediate.shell import serving
from raywatch.remediate.shell.retrain import predict_task, retrain_task
from raywatch.remediate.shell.trail import LocalTrail, StatsTrail
from raywatch.series import MODEL_LABELS

__all__ = ["RemediationController", "get_or_create", "DEFAULT_NAME", "DEFAULT_NAMESPACE", "DEFAULT_AUDIT_PATH"]

log = logging.getLogger("raywatch.remediate.shell.controller")

DEFAULT_NAME = "raywatch-remediation"
DEFAULT_NAMESPACE = "raywatch"
DEFAULT_AUDIT_PATH = "~/.raywatch/raywatch-remediation.sqlite"
_TICK = 0.2
_REALIZED_EVERY = 2.0  # seconds between two reads of the canary's labelled requests
_APPEND_TRIES = (0.5, 1.0, 2.0)  # back-off before the trail falls back to the controller's own file


class _Settings:
    def __init__(self, key: str, s: RemediationSettings):
        self.key = key
        self.s = s
        self.app, _, self.deployment = key.partition("/")
        r = s.remediation.rollout
        self.target_app = r.application or self.app
        self.target_deployment = r.deployment or self.deployment
        self.model = s.model or self.deployment
        self.payload: Any = None


class RemediationController:
    """See the module docstring. Create it through :func:`get_or_create`."""

    def __init__(self, audit_path: Optional[str] = DEFAULT_AUDIT_PATH, name: str = DEFAULT_NAME):
        self.name = name
        self.audit = open_audit_log(os.path.expanduser(audit_path or DEFAULT_AUDIT_PATH))  # the fallback trail
        self.local = LocalTrail(self.audit)
        self.trails: Dict[str, Any] = {}  # model key → the trail in its stats actor's file
        self.models: Dict[str, _Settings] = {}
        self.routes: Dict[str, Dict[str, Any]] = {}
        self.reports: Dict[str, Dict[str, Dict[str, Any]]] = {}
        self.tasks: Dict[str, asyncio.Task] = {}
        self.approvals: Dict[str, asyncio.Future] = {}
        self.states: Dict[str, str] = {}
        self.decision_models: Dict[str, str] = {}  # decision id → model key
        self.counters: Dict[str, int] = {"notifications": 0, "triggers": 0, "skipped": 0, "notify_failures": 0,
                                         "audit_fallbacks": 0}
        self._epoch = 0
        self.steps: Dict[Tuple[str, str], int] = {}
        self._sinks: Dict[str, Any] = {}
        self._lock = threading.Lock()
        self._admitting = asyncio.Lock()
        self.recovered = self._recover()

    # ------------------------------------------------------------------ the trail
    def _recover(self) -> List[str]:
        """Close the decisions a previous run left open in the controller's own file (their
        candidate application removed)."""
        closed = []
        for d in fold(self.audit.events()).values():
            self.states[d.id] = d.state
            self.decision_models[d.id] = d.model
            if d.final:
                continue
            self.audit.append([self._event(d.model, d.id, "failed", f"the controller restarted while the decision was "
                                           f"{d.state}", {"state_before": d.state})])
            closed.append(d.id)
            self._remove_candidate_of(d.model)
        return closed

    async def _recover_model(self, key: str) -> List[str]:
        """Close the decisions of ``key`` its trail holds open that no task of this controller
        runs (the controller restarted since), and learn the states of the others."""
        closed = []
        for d in fold(await self._events(key)).values():
            self.states.setdefault(d.id, d.state)
            self.decision_models[d.id] = d.model
            task = self.tasks.get(d.id)
            if d.final or (task is not None and not task.done()):
                continue
            await self._record(d.model, d.id, "failed", f"the controller restarted while the decision was {d.state}",
                               {"state_before": d.state})
            closed.append(d.id)
            self._remove_candidate_of(d.model)
        return closed

    @staticmethod
    def _remove_candidate_of(model: str) -> None:
        app = model.partition("/")[0]
        try:
            serving.remove_candidate(app)
        except Exception as exc:  # noqa: BLE001 - Serve may not be running
            log.info("no candidate application to remove for %s (%s)", app, exc)

    def _event(self, model: str, decision: str, kind: str, summary: str = "",
               evidence: Optional[Mapping[str, Any]] = None, by: str = "raywatch") -> AuditEvent:
        state = "triggered" if kind == "triggered" else advance(self.states.get(decision, "triggered"), kind)
        ev = AuditEvent.new(model, decision, kind, ts=time.time(), state=state, by=by, summary=summary,
                            evidence=evidence)
        self.states[decision] = state
        self.decision_models[decision] = model
        return ev

    def _trail(self, model: str) -> Any:
        return self.trails.get(model) or self.local

    async def _append(self, model: str, events: List[AuditEvent]) -> None:
        """Commit ``events`` to the model's trail; after a few failed tries (its stats actor
        unreachable), to the controller's own file — logged and counted, never lost."""
        trail = self._trail(model)
        if trail is self.local:
            await trail.append(events)
            return
        for delay in _APPEND_TRIES + (None,):
            try:
                await trail.append(events)
                return
            except Exception as exc:  # noqa: BLE001
                if delay is None:
                    self.counters["audit_fallbacks"] += 1
                    log.error("audit trail of %s unreachable (%s: %s); recorded in %s instead", model,
                              type(exc).__name__, exc, self.audit.path)
                    await self.local.append(events)
                    return
                await asyncio.sleep(delay)

    async def _events(self, model: Optional[str] = None, since: Optional[float] = None, *,
                      decision: Optional[str] = None) -> List[AuditEvent]:
        """Events oldest first: of one model (its trail, and what the controller's own file
        holds of it), or of every trail."""
        if model is not None:
            trails = [self._trail(model)] + ([self.local] if self._trail(model) is not self.local else [])
        else:
            trails = [self.local] + list(dict.fromkeys(self.trails.values()))
        seen, out = set(), []
        for t in trails:
            try:
                evs = await t.events(model, since, decision=decision)
            except Exception as exc:  # noqa: BLE001 - a stats actor away: what the others hold
                log.warning("audit trail %s unreadable: %s", t, exc)
                continue
            for e in evs:
                if e.id not in seen:
                    seen.add(e.id)
                    out.append(e)
        return sorted(out, key=lambda e: e.ts)

    async def _record(self, model: str, decision: str, kind: str, summary: str = "",
                      evidence: Optional[Mapping[str, Any]] = None, by: str = "raywatch") -> AuditEvent:
        before = self.states.get(decision)
        ev = self._event(model, decision, kind, summary, evidence, by)
        try:
            await self._append(model, [ev])  # durable before the loop goes on
        except BaseException:
            if before is None:
                self.states.pop(decision, None)
            else:
                self.states[decision] = before
            raise
        self.steps[(model, kind)] = self.steps.get((model, kind), 0) + 1
        log.info("remediation %s %s: %s → %s %s", model, decision[:8], kind, ev.state, summary)
        if notify.tells(ev):
            self._tell(ev)
        return ev

    def _tell(self, ev: AuditEvent) -> None:
        st = self.models.get(ev.model)
        if st is None or not st.s.sinks:
            return
        names = set(st.s.remediation.notify)
        # (the remediation sink hands alerts to this controller: decisions are not told back to it)
        sinks = [c for c in st.s.sinks if (not names or c.name in names) and c.type != "remediation"]
        if not sinks:
            return
        n = notify.notification(ev)
        threading.Thread(target=self._deliver, args=(sinks, n), name="raywatch-remediation-notify", daemon=True).start()

    def _deliver(self, sink_cfgs: List[Any], n: Any) -> None:
        from raywatch.sinks import build_sink

        for cfg in sink_cfgs:
            with self._lock:
                sink = self._sinks.get(cfg.name)
                if sink is None or sink.cfg != cfg:
                    sink = self._sinks[cfg.name] = build_sink(cfg)
            delay = 0.5
            for attempt in range(cfg.retry.max_attempts):
                try:
                    sink.send(n)
                    break
                except Exception as exc:  # noqa: BLE001
                    if not getattr(exc, "retryable", False) or attempt + 1 == cfg.retry.max_attempts:
                        self.counters["notify_failures"] += 1
                        log.error("remediation notification to %s failed: %s", cfg.name, sink.redact(str(exc)))
                        break
                    time.sleep(min(float(getattr(exc, "retry_after", None) or delay), float(cfg.retry.max_backoff)))
                    delay *= 2

    # ------------------------------------------------------------------ API
    async def ready(self) -> Dict[str, Any]:
        return {"name": self.name, "audit_path": self.audit.path, "models": sorted(self.models),
                "recovered": list(self.recovered),
                "trails": {k: [t.namespace, t.name] for k, t in self.trails.items()}}

    async def register(self, model_key: str, settings: Any, stats: Optional[Tuple[str, str]] = None) -> bool:
        """Register (or replace) a model's remediation settings
        (:class:`~raywatch.config.remediate.RemediationSettings` or its data). ``stats``:
        ``(name, namespace)`` of the stats actor whose SQLite file keeps the model's audit
        trail (None: the controller's own file). The first registration with a trail closes
        the decisions it holds open that no task here runs."""
        s = parse_config(settings, RemediationSettings, source=f"remediation settings of {model_key}")
        self.models[model_key] = _Settings(model_key, s)
        if stats is not None:
            trail = StatsTrail(str(stats[0]), str(stats[1]))
            if self.trails.get(model_key) != trail:
                self.trails[model_key] = trail
                closed = await self._recover_model(model_key)
                self.recovered.extend(closed)
        return True

    async def notify(self, notification: Mapping[str, Any]) -> Dict[str, List[str]]:
        """Take a notification (``Notification.to_dict()`` or Alertmanager's webhook
        payload): each firing alert of a registered model that matches its trigger starts a
        decision, or is recorded as skipped by a guardrail. Returns the decision ids."""
        self.counters["notifications"] += 1
        started, skipped = [], []
        for alert in firing_alerts(notification):
            labels = {str(k): str(v) for k, v in (alert.get("labels") or {}).items()}
            key = f"{labels.get('app')}/{labels.get('deployment')}"
            st = self.models.get(key)
            if st is None or not st.s.remediation.enabled or not triggers(st.s.remediation.trigger, labels):
                continue
            self.counters["triggers"] += 1
            d = uuid.uuid4().hex
            g = st.s.remediation.guardrails
            evidence = {"alert": {"labels": labels, "annotations": dict(alert.get("annotations") or {}),
                                  "startsAt": alert.get("startsAt"), "value": alert.get("value")},
                        "dry_run": g.dry_run, "require_approval": g.require_approval}
            async with self._admitting:  # one admission at a time: two alerts at once start one decision
                await self._record(key, d, "triggered", f"{labels.get('alertname')} firing", evidence)
                verdict = admit(g, [x for x in fold(await self._events(key)).values() if x.id != d], time.time())
                if not verdict.allowed:
                    self.counters["skipped"] += 1
                    await self._record(key, d, "skipped", f"{verdict.reason}: {verdict.detail}",
                                       {"guardrail": verdict.reason})
                    skipped.append(d)
                    continue
                self.tasks[d] = asyncio.get_running_loop().create_task(self._run(d, st, evidence, time.monotonic()))
            started.append(d)
        return {"started": started, "skipped": skipped}

    async def approve(self, decision: str, by: str, comment: str = "") -> str:
        return self._answer(decision, "approved", by, comment)

    async def reject(self, decision: str, by: str, comment: str = "") -> str:
        return self._answer(decision, "rejected", by, comment)

    def _answer(self, decision: str, kind: str, by: str, comment: str) -> str:
        fut = self.approvals.get(decision)
        if fut is None:
            decision = self._expand(decision)
            fut = self.approvals.get(decision)
        if fut is None or fut.done():
            state = self.states.get(decision)
            raise ValueError(f"decision {decision} is not waiting for approval" + (f" (it is {state})" if state else " (unknown id)"))
        fut.set_result((kind, by or "unknown", comment))
        return decision

    def _expand(self, prefix: str) -> str:
        hits = [d for d in self.states if d.startswith(prefix)]
        return hits[0] if len(hits) == 1 else prefix

    async def route(self, model_key: str, replica: str, figures: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        """What the model's routers do now; ``figures`` is the polling router's report."""
        r = self.routes.get(model_key) or {"epoch": 0, "mode": "none"}
        if figures:
            self.reports.setdefault(model_key, {})[replica] = {**figures, "seen": time.monotonic()}
        return r

    async def decisions(self, model: Optional[str] = None) -> List[Dict[str, Any]]:
        return [d.to_dict() for d in fold(await self._events(model)).values()]

    async def events(self, model: Optional[str] = None, since: Optional[float] = None) -> List[Dict[str, Any]]:
        return [e.to_data() for e in await self._events(model, since)]

    async def wait(self, decision: str, timeout: float = 60.0) -> str:
        """The decision's final state (waits up to ``timeout``; TimeoutError after)."""
        task = self.tasks.get(decision)
        if task is not None:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        return self.states.get(decision, "unknown")

    async def status(self) -> Dict[str, Any]:
        """Open decisions (``open``: id → state, ``decision_models``: id → model key), those
        waiting for approval (``pending_approval``), routes and counters."""
        open_ = {d: s for d, s in self.states.items() if not is_final(s)}
        return {"models": sorted(self.models), "open": open_, "pending_approval": sorted(self.approvals),
                "decision_models": {d: m for d, m in self.decision_models.items() if d in open_},
                "routes": dict(self.routes), "counters": dict(self.counters)}

    def _labels(self, model: str) -> Dict[str, str]:
        app, _, dep = model.partition("/")
        st = self.models.get(model)
        return dict(zip(MODEL_LABELS, (app, dep, (st.model if st else dep) or "", (st.s.version if st else None) or "")))

    async def series(self) -> List[Tuple[str, Dict[str, str], float]]:
        """The controller's catalogue series ``(name, labels, value)`` for exposition: the
        steps recorded by kind (since the controller started), the decisions waiting for
        approval, per model."""
        out = []
        for (model, kind), n in sorted(self.steps.items()):
            out.append((series.REMEDIATION_STEPS_TOTAL.name, {**self._labels(model), "step": kind}, float(n)))
        waiting: Dict[str, int] = dict.fromkeys(self.models, 0)
        for d in self.approvals:
            m = self.decision_models.get(d)
            if m is not None:
                waiting[m] = waiting.get(m, 0) + 1
        out.extend((series.REMEDIATION_PENDING_APPROVALS.name, self._labels(m), float(n)) for m, n in sorted(waiting.items()))
        return out

    async def payload_counters(self) -> Dict[str, Dict[str, Dict[str, int]]]:
        """The rollout routers' payload-log counters as they last reported them: model key →
        router replica → counters (the stats actor adds them to the model's series)."""
        out: Dict[str, Dict[str, Dict[str, int]]] = {}
        for key, reps in self.reports.items():
            for rid, rep in reps.items():
                if rep.get("payload_log"):
                    out.setdefault(key, {})[rid] = dict(rep["payload_log"])
        return out

    # ------------------------------------------------------------------ routing
    def _set_route(self, key: str, **route: Any) -> int:
        self._epoch += 1
        self.routes[key] = {"epoch": self._epoch, **route}
        return self._epoch

    async def _drained(self, key: str, epoch: int, timeout: float = 15.0) -> bool:
        """Wait until every router replica heard from lately follows route ``epoch`` and no
        call to the candidate is awaited on a request path any more (before the candidate
        application is removed, so no user request is left waiting on it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = time.monotonic()
            live = [r for r in (self.reports.get(key) or {}).values() if now - r["seen"] < 3.0]
            if all(r.get("epoch") == epoch and not r.get("in_flight") for r in live):
                return True
            await asyncio.sleep(0.05)
        log.warning("routers of %s did not all follow route %d in %.0fs", key, epoch, timeout)
        return False

    def _arms(self, key: str, epoch: int) -> Dict[str, ArmFigures]:
        """The routers' figures of ``epoch``, summed over router replicas (p95: the largest)."""
        out = {a: ArmFigures() for a in ("champion", "candidate", "shadow")}
        for rep in (self.reports.get(key) or {}).values():
            if rep.get("epoch") != epoch:
                continue
            for arm, d in (rep.get("arms") or {}).items():
                f, g = out.setdefault(arm, ArmFigures()), ArmFigures.from_dict(d)
                for k in ("requests", "errors", "timeouts", "dropped", "compared", "agreed"):
                    setattr(f, k, getattr(f, k) + getattr(g, k))
                if g.p95 is not None:
                    f.p95 = g.p95 if f.p95 is None else max(f.p95, g.p95)
                for name, n in (g.extra.get("error_types") or {}).items():
                    types = f.extra.setdefault("error_types", {})
                    types[name] = types.get(name, 0) + n
        return out

    # ------------------------------------------------------------------ the loop
    def _log(self, st: _Settings) -> Any:
        if st.payload is None:
            from raywatch.payload.log import PayloadLog

            st.payload = PayloadLog(st.s.payload_log)
        return st.payload

    async def _run(self, d: str, st: _Settings, trigger: Dict[str, Any], t_trigger: float) -> None:
        key, rem = st.key, st.s.remediation
        cand_app: Optional[str] = None
        try:
            if rem.guardrails.require_approval and not await self._approval(d, st):
                return
            window = await self._data_window(d, st)
            if window is None:
                return
            train_path, held, feats, since, until, plog = window
            champ_uc: Dict[str, Any] = {}
            try:
                champ_uc = await asyncio.to_thread(serving.current_user_config, st.target_app, st.target_deployment)
            except Exception as exc:
                if not rem.guardrails.dry_run:
                    raise
                log.info("dry run: no declarative config for %s (%s)", st.target_app, exc)
            r = rem.rollout
            champ_version = champ_uc.get(r.version_key) or st.s.version
            champ_artifact = champ_uc.get(r.artifact_key)
            await self._record(key, d, "retrain_started", f"retraining {st.model} on {train_path.rows} labelled rows",
                         {"function": _name(rem.retrain.function), "resources": {"num_cpus": rem.retrain.num_cpus,
                          "num_gpus": rem.retrain.num_gpus}, "champion_version": champ_version})
            ctx = {"model": st.model, "dataset_path": train_path.path, "features": feats, "rows": train_path.rows,
                   "window": (since, until), "current_version": champ_version, "current_artifact": champ_artifact,
                   "trigger": trigger.get("alert") or {}, "decision": d, "filesystem": plog.fs,
                   "reference_profile": st.s.profile}  # (codec bytes: a Profile again in the task)
            try:
                out = await asyncio.wait_for(retrain_task(rem.retrain).remote(rem.retrain.function, ctx),
                                             rem.retrain.timeout)
                cand = Candidate.of(out)
            except Exception as exc:  # noqa: BLE001 - the retrain's own failure: told, champion untouched
                await self._record(key, d, "retrain_failed", f"retrain failed: {_error(exc)}",
                             {"error": _error(exc), "champion_untouched": True})
                return
            await self._record(key, d, "candidate", f"candidate {cand.version}", cand.to_evidence())
            if not await self._validate(d, st, cand, held, feats, plog):
                return
            if rem.guardrails.dry_run:
                await self._record(key, d, "dry_run_done", f"dry run: {cand.version} would be rolled out; nothing deployed",
                             {"version": cand.version, "artifact": cand.artifact})
                return
            cand_uc = serving.patched_user_config(champ_uc, cand.artifact, cand.version, artifact_key=r.artifact_key,
                                                  version_key=r.version_key)
            base = {"model": st.model, "champion_version": champ_version, "candidate_version": cand.version,
                    "candidate_deployment": st.target_deployment}
            if r.shadow.enabled or r.canary.enabled:
                t0 = time.time()
                cand_app = await asyncio.to_thread(serving.deploy_candidate, st.target_app, st.target_deployment, cand_uc)
                await asyncio.to_thread(serving.wait_healthy, cand_app, st.target_deployment, r.ready_timeout, since=t0)
                base["candidate_app"] = cand_app
            if r.shadow.enabled and not await self._shadow(d, st, base):
                await self._rollback(st, cand_app)
                return
            if r.canary.enabled and not await self._canary(d, st, base, cand):
                await self._rollback(st, cand_app)
                return
            await self._promote(d, st, base, cand_app, cand_uc, cand, t_trigger)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - anything else: recorded, told, the champion restored
            log.exception("remediation %s failed", d)
            try:
                await self._rollback(st, cand_app)
            except Exception as exc2:  # noqa: BLE001
                log.error("cleanup after a failure failed: %s", exc2)
            await self._record(key, d, "failed", f"{type(exc).__name__}: {exc}", {"error": _error(exc)})
        finally:
            self.approvals.pop(d, None)

    async def _approval(self, d: str, st: _Settings) -> bool:
        fut = asyncio.get_running_loop().create_future()
        self.approvals[d] = fut
        g = st.s.remediation.guardrails
        await self._record(st.key, d, "approval_required",
                     f"waiting for approval: raywatch approve {d[:12]} (or reject), at most {g.approval_timeout:.0f}s",
                     {"timeout_s": g.approval_timeout})
        try:
            kind, by, comment = await asyncio.wait_for(fut, g.approval_timeout)
        except asyncio.TimeoutError:
            await self._record(st.key, d, "approval_expired", f"no answer in {g.approval_timeout:.0f}s")
            return False
        await self._record(st.key, d, kind, f"{kind} by {by}" + (f": {comment}" if comment else ""), {"comment": comment}, by=by)
        return kind == "approved"

    async def _data_window(self, d: str, st: _Settings) -> Optional[Tuple[Any, Any, List[str], float, float, Any]]:
        from raywatch.payload.labelled import labelled_dataset, split_holdout, write_snapshot

        rem = st.s.remediation
        plog = self._log(st)
        until = time.time()
        since = until - rem.retrain.window
        await asyncio.to_thread(plog.flush)
        table = await asyncio.to_thread(labelled_dataset, plog, st.model, since, until)
        train, held = split_holdout(table, rem.retrain.holdout)
        meta = {"ts", "request_id", "app", "deployment", "version", "replica", "prediction", "score", "model", "date",
                "hour", "label", "label_ts"}
        feats = [c for c in table.column_names if c not in meta]
        ev = {"since": since, "until": until, "labelled_rows": table.num_rows, "train_rows": train.num_rows,
              "holdout_rows": held.num_rows, "features": feats, "payload_log": st.s.payload_log.path}
        g, v = rem.guardrails, rem.validation
        if table.num_rows < g.min_labelled_rows or held.num_rows < v.min_holdout_rows:
            why = (f"{table.num_rows} labelled rows (at least {g.min_labelled_rows})" if table.num_rows < g.min_labelled_rows
                   else f"{held.num_rows} held-back rows (at least {v.min_holdout_rows})")
            await self._record(st.key, d, "skipped", f"min_labelled_rows: {why}", {**ev, "guardrail": "min_labelled_rows"})
            return None
        path = await asyncio.to_thread(write_snapshot, plog, train, st.model, until)
        ev["snapshot"] = path
        await self._record(st.key, d, "data_window", f"{train.num_rows} rows to train on, {held.num_rows} held back", ev)
        return _Path(path, train.num_rows), held, feats, since, until, plog

    async def _validate(self, d: str, st: _Settings, cand: Candidate, held: Any, feats: List[str], plog: Any) -> bool:
        v = st.s.remediation.validation
        scores = v.metric in gate.SCORED
        logged = "score" if scores else "prediction"
        frame = held.select(feats).to_pandas()
        if v.predict is None:
            raise ValueError("remediation.validation.predict is not set: the gate cannot score the candidate")
        preds = await predict_task(st.s.remediation.retrain).remote(v.predict, cand.artifact, frame)
        y = held.column("label").to_numpy(zero_copy_only=False)
        champ = held.column(logged).to_numpy(zero_copy_only=False)
        res = await asyncio.to_thread(gate.compare, v.metric, y, champ, preds, min_improvement=v.min_improvement,
                                      confidence=v.confidence, n_boot=v.bootstrap, seed=v.seed)
        evidence: Dict[str, Any] = {"gate": res.to_dict(), "holdout_rows": held.num_rows}
        drift = None
        prof = cand.profile_object()
        if prof is not None:
            recent = await asyncio.to_thread(plog.read, "requests", st.model, time.time() - v.residual_window)
            cols = {c: recent.column(c).to_numpy(zero_copy_only=False) for c in recent.column_names if c in set(prof.columns)}
            drift = await asyncio.to_thread(gate.residual_drift, prof, cols, v.max_residual_drift_share, st.s.drift)
            evidence["residual_drift"] = drift.to_dict()
        passed = res.passed and (drift is None or drift.passed)
        why = res.reason if not res.passed else (drift.reason if drift is not None else res.reason)
        if drift is not None and res.passed:
            why = f"{res.reason}; {drift.reason}"
        await self._record(st.key, d, "validation_passed" if passed else "validation_failed",
                     ("passed: " if passed else "not deployed: ") + why, evidence)
        return passed

    async def _phase(self, d: str, st: _Settings, epoch: int, verdict: Any, kind: str,
                     *checks: Any) -> Tuple[bool, str, Dict[str, Any]]:
        """Run one phase until its verdict; ``checks`` (``_Realized``, ``_Estimated`` or None)
        add their figures under their ``name`` and may turn it into a rollback."""
        t0 = time.monotonic()
        while True:
            await asyncio.sleep(_TICK)
            arms = self._arms(st.key, epoch)
            v = verdict(arms, time.monotonic() - t0)
            extra: Dict[str, Any] = {}
            for check in checks:
                if check is not None and v.action != "rollback":
                    breach, extra[check.name] = await check.check(final=v.action != "wait")
                    v = breach or v
            if v.action != "wait":
                figs = {k: a.to_dict() for k, a in arms.items()}
                await self._record(st.key, d, kind, v.reason, {"figures": figs, "seconds": time.monotonic() - t0, **extra})
                return v.action in ("pass", "promote"), v.reason, figs

    async def _shadow(self, d: str, st: _Settings, base: Dict[str, Any]) -> bool:
        cfg = st.s.remediation.rollout.shadow
        epoch = self._set_route(st.key, mode="shadow", timeout=cfg.timeout, max_in_flight=cfg.max_in_flight, **base)
        await self._record(st.key, d, "shadow_started", f"mirroring live requests to {base['candidate_version']}",
                     {"duration_s": cfg.duration, "min_requests": cfg.min_requests})
        realized = _Realized(self._log(st), st, base, time.time(), shadow=True)  # figures only: the shadow answers no user
        ok, reason, figs = await self._phase(d, st, epoch, lambda a, el: shadow_verdict(cfg, a["shadow"], el), "shadow_figures",
                                             realized)
        if not ok:
            await self._record(st.key, d, "rolled_back", f"shadow: {reason}", {"phase": "shadow", "figures": figs})
        return ok

    async def _canary(self, d: str, st: _Settings, base: Dict[str, Any], cand: Optional[Candidate] = None) -> bool:
        cfg = st.s.remediation.rollout.canary
        epoch = self._set_route(st.key, mode="canary", share=cfg.share, timeout=cfg.timeout, **base)
        await self._record(st.key, d, "canary_started", f"{cfg.share:.0%} of traffic to {base['candidate_version']}",
                     {"share": cfg.share, "duration_s": cfg.duration, "guards": cfg.guards.model_dump()})
        realized = _Realized(self._log(st), st, base, time.time()) if cfg.guards.max_realized_drop is not None else None
        by_estimate = (_Estimated(self._log(st), st, base, time.time(), getattr(cand, "profile", None))
                       if cfg.guards.max_estimated_drop is not None else None)
        ok, reason, figs = await self._phase(
            d, st, epoch, lambda a, el: canary_verdict(cfg, a["candidate"], a["champion"], el), "canary_figures", realized,
            by_estimate)
        if not ok:
            await self._record(st.key, d, "rolled_back", f"canary: {reason}", {"phase": "canary", "figures": figs})
        return ok

    async def _promote(self, d: str, st: _Settings, base: Dict[str, Any], cand_app: Optional[str],
                       cand_uc: Dict[str, Any], cand: Candidate, t_trigger: float) -> None:
        r = st.s.remediation.rollout
        t0 = time.monotonic()
        if cand_app is not None:  # while the champion's replicas reconfigure, the candidate answers
            self._set_route(st.key, mode="candidate", timeout=r.canary.timeout, **base)
        t_apply = time.time()
        await asyncio.to_thread(serving.promote, st.target_app, st.target_deployment, cand_uc)
        await asyncio.to_thread(serving.wait_healthy, st.target_app, st.target_deployment, r.ready_timeout, since=t_apply)
        epoch = self._set_route(st.key, mode="none", model=st.model, champion_version=cand.version)
        if cand_app is not None:
            await self._drained(st.key, epoch)
            await asyncio.to_thread(serving.remove_candidate, st.target_app)
        written = None
        if r.serve_config:
            written = await asyncio.to_thread(serving.write_serve_config, os.path.expanduser(r.serve_config),
                                              st.target_app, st.target_deployment, cand_uc)
        await self._record(st.key, d, "promoted", f"{cand.version} promoted on {st.target_app}/{st.target_deployment}",
                     {"version": cand.version, "artifact": cand.artifact,
                      "serve_config_patch": {"application": st.target_app, "deployment": st.target_deployment,
                                             "user_config": cand_uc},
                      "serve_config_written": written, "promotion_seconds": time.monotonic() - t0,
                      "seconds_since_trigger": time.monotonic() - t_trigger})

    async def _rollback(self, st: _Settings, cand_app: Optional[str]) -> None:
        if self.routes.get(st.key, {}).get("mode", "none") != "none":
            epoch = self._set_route(st.key, mode="none", model=st.model)
            await self._drained(st.key, epoch)
        if cand_app is not None:
            await asyncio.to_thread(serving.remove_candidate, st.target_app)


class _Realized:
    """The canary's realized performance, read from the payload log's labelled requests since
    the canary started (in a thread, at most every ``_REALIZED_EVERY`` seconds). With
    ``shadow``: the shadow's answers to mirrored requests against the champion's answers to
    the same requests, as their labels arrive — figures for the record, never a verdict."""

    name = "realized"

    def __init__(self, plog: Any, st: _Settings, base: Mapping[str, Any], since: float, *, shadow: bool = False):
        self.plog, self.st, self.since, self.shadow = plog, st, since, shadow
        self.version = str(base.get("candidate_version"))
        self.last = 0.0
        self.verdict: Optional[Verdict] = None
        self.figs: Dict[str, Any] = {}

    async def check(self, final: bool = False) -> Tuple[Optional[Verdict], Dict[str, Any]]:
        now = time.monotonic()
        if final or now - self.last >= _REALIZED_EVERY:
            self.last = now
            try:
                self.verdict, self.figs = await asyncio.to_thread(self._read)
            except Exception as exc:  # noqa: BLE001 - unreadable now: no verdict, said in the figures
                self.figs = {**self.figs, "error": f"{type(exc).__name__}: {exc}"}
        return (None if self.shadow else self.verdict), self.figs

    def _read(self) -> Tuple[Optional[Verdict], Dict[str, Any]]:
        import pyarrow.compute as pc

        from raywatch.payload.labelled import labelled_dataset

        v = self.st.s.remediation.validation
        t = labelled_dataset(self.plog, self.st.model, self.since)
        col = "score" if v.metric in gate.SCORED else "prediction"
        if self.shadow:  # the same requests, each answered by both
            cand = labelled_dataset(self.plog, self.st.model, self.since, shadow=True)
            if col in cand.column_names and col in t.column_names:
                cand = cand.filter(pc.is_in(cand.column("request_id"), value_set=t.column("request_id")))
                return realized_verdict(self.st.s.remediation.rollout.canary.guards, v.metric, *self._pair(cand, col),
                                        *self._pair(t.filter(pc.is_in(t.column("request_id"),
                                                                       value_set=cand.column("request_id"))), col))
            t = t.slice(0, 0)
        if t.num_rows == 0 or col not in t.column_names:
            return realized_verdict(self.st.s.remediation.rollout.canary.guards, v.metric, [], [], [], [])
        is_cand = pc.fill_null(pc.equal(t.column("version"), self.version), False)
        cand, champ = t.filter(is_cand), t.filter(pc.invert(is_cand))

        return realized_verdict(self.st.s.remediation.rollout.canary.guards, v.metric, *self._pair(cand, col),
                                *self._pair(champ, col))

    @staticmethod
    def _pair(tbl: Any, col: str) -> Tuple[Any, Any]:
        """(labels, predictions or scores) of a labelled table."""
        return tbl.column("label").to_numpy(zero_copy_only=False), tbl.column(col).to_numpy(zero_copy_only=False)


class _Estimated(_Realized):
    """The canary's estimated performance (CBPE, no labels), read from the payload log's
    requests each arm answered since the canary started (scores and predictions), each arm
    with its own calibration: the champion's from the model's reference profile, the
    candidate's from its training profile (:mod:`raywatch.remediate.estimated`)."""

    name = "estimated"

    def __init__(self, plog: Any, st: _Settings, base: Mapping[str, Any], since: float, cand_profile: Any):
        super().__init__(plog, st, base, since)
        self.cand_profile = cand_profile
        self.estimators: Optional[Dict[str, Any]] = None
        self.why: Dict[str, str] = {}

    def _read(self) -> Tuple[Optional[Verdict], Dict[str, Any]]:
        import pyarrow.compute as pc

        rem = self.st.s.remediation
        if self.estimators is None:  # once: a profile is decoded a single time per canary
            self.estimators, self.why = {}, {}
            for arm, prof in (("candidate", self.cand_profile), ("champion", self.st.s.profile)):
                self.estimators[arm], why = estimated.estimator_of(prof)
                if why:
                    self.why[arm] = why
        sigmas = self.st.s.drift.estimation.sigmas
        t = self.plog.read("requests", self.st.model, since=self.since)
        arms: Dict[str, Any] = {"candidate": None, "champion": None}
        if t.num_rows and "score" in t.column_names and "version" in t.column_names:
            if "shadow" in t.column_names:  # a shadow's answers reached no user
                t = t.filter(pc.invert(pc.fill_null(t.column("shadow"), False)))
            is_cand = pc.fill_null(pc.equal(t.column("version"), self.version), False)
            for arm, part in (("candidate", t.filter(is_cand)), ("champion", t.filter(pc.invert(is_cand)))):
                est = self.estimators[arm]
                if est is not None and part.num_rows:
                    preds = (part.column("prediction").to_pylist() if "prediction" in part.column_names else None)
                    arms[arm] = estimated.estimate_arm(est, part.column("score").to_pylist(), preds, sigmas=sigmas)
        return estimated.estimated_verdict(rem.rollout.canary.guards, rem.estimated_metric(), arms["candidate"],
                                           arms["champion"], sigmas=sigmas, why=self.why)


class _Path:
    __slots__ = ("path", "rows")

    def __init__(self, path: str, rows: int):
        self.path, self.rows = path, rows


def _name(fn: Any) -> str:
    return fn if isinstance(fn, str) else f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', '?')}"


def _error(exc: BaseException) -> str:
    """The user's exception from a Ray task's error (its type and message)."""
    cause = getattr(exc, "cause", None)
    if cause is not None and cause is not exc:
        exc = cause
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}"[:500]


_handles: Dict[Tuple[str, str], Any] = {}


def get_or_create(audit_path: Optional[str] = DEFAULT_AUDIT_PATH, *, name: str = DEFAULT_NAME,
                  namespace: str = DEFAULT_NAMESPACE, wait: bool = True, timeout: float = 60.0) -> Any:
    """The controller's handle, creating the detached actor when it does not exist."""
    import ray

    key = (namespace, name)
    handle = _handles.get(key)
    if handle is None:
        handle = ray.remote(RemediationController).options(
            name=name, namespace=namespace, lifetime="detached", get_if_exists=True, num_cpus=0,
            max_concurrency=1000, max_restarts=-1).remote(audit_path, name)
        _handles[key] = handle
    if wait:
        ray.get(handle.ready.remote(), timeout=timeout)
    return handle


def forget(name: str = DEFAULT_NAME, namespace: str = DEFAULT_NAMESPACE) -> None:
    """Forget a cached handle (after the actor was killed)."""
    _handles.pop((namespace, name), None)
