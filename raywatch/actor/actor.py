"""The stats actor: a named, detached, async Ray actor around :class:`~raywatch.aggregate.core.StatsCore`.

One per shard, named ``raywatch-stats`` (shard 0) or ``raywatch-stats-<N>`` in the
``raywatch`` namespace and created with get-if-exists semantics, so every replica that
calls :func:`get_or_create` reaches the same actor — and, after the actor has been killed,
re-creates it, which resumes from SQLite (checkpoint + journal).

On its event loop the actor runs, besides the calls it receives:

* the evaluation loop (every ``windows.evaluation_interval``): close windows, drift,
  performance, rules → alert engines (which deliver in the background), DogStatsD;
* checkpoints to SQLite (every ``actor.checkpoint_interval``), written on the store's
  writer thread;
* two aiohttp listeners: ``/metrics`` (Prometheus) on ``actor.metrics_host:metrics_port``,
  ``/status`` and ``POST /feedback`` on ``actor.api_host:api_port`` (tokens, rate limit,
  TLS: see :mod:`raywatch.actor.server`). An API listener beyond 127.0.0.1 without a token
  is refused when the actor is created (ValueError naming the setting).

Nothing is acknowledged before it is durable: ``ingest``, ``ingest_many``, ``feedback`` and
``feedback_many`` journal what they bring on the store's writer thread — the calls that
arrive while a write is under way share the next one (group commit) — and answer once it is
written and merged; a failed write fails the call (``StoreWriteError``), so the replica
keeps its batch and sends it again. The event loop never waits on the disk (the store's
busy timeout, ``actor.busy_timeout``, bounds how long the writer thread may).

Actor methods (all ``async``): ``ready``, ``register_model``, ``get_profile``,
``get_config``, ``ingest`` (fire-and-forget from replicas), ``ingest_many``, ``feedback``,
``feedback_many``, ``evaluate``, ``status``, ``history``, ``metrics_address``,
``api_address``, ``info``, ``checkpoint``, ``reset_model``, ``record_audit``, ``audit``,
``close``; for a shard added at run time (:mod:`raywatch.actor.rebalance`): ``export_model``,
``import_model``, ``forget_model``, ``set_shards`` — and the calls about a model this shard
handed over are passed to its new owner.

Closing the loop (issue 14, :mod:`raywatch.actor.remediation`): a model whose settings have
``remediation:`` is registered with the remediation controller, whose audit trail of the
model is kept in this actor's SQLite file (``record_audit``, ``audit``); accepted labels go
to the models' payload logs too (written in the executor); the controller's series join the
exposition.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any, Collection, Dict, List, Mapping, Optional, Tuple, Union

import psutil
import ray
from prometheus_client import CollectorRegistry

from raywatch.actor.exposition import DogStatsdPublisher, StatsCollector
from raywatch.actor.rebalance import Rebalancing, merge_labels
from raywatch.actor.remediation import ControllerLink
from raywatch.actor.server import StatsServer, TokenTable, check_doors, tls_context
from raywatch.actor.sharding import actor_name, shard_for, with_shards
from raywatch.aggregate.rebalance import owner
from raywatch.aggregate.audit import AuditEvent
from raywatch.aggregate.core import StatsCore, Ticket
from raywatch.aggregate.failures import Failures
from raywatch.aggregate.journal import StoreWriteError
from raywatch.aggregate.store import Store
from raywatch.alerts.hub import AlertingHub
from raywatch.config import MonitorConfig, parse_config
from raywatch.series import RSS_BYTES
from raywatch.stats.batch import ReplicaBatch

__all__ = ["StatsActor", "get_or_create", "get_for_model", "sqlite_path_for"]

log = logging.getLogger("raywatch.actor.actor")


def sqlite_path_for(cfg: MonitorConfig, shard: int) -> Optional[str]:
    """The SQLite file of ``shard``: ``sqlite_path`` itself for shard 0 (whatever the shard
    count, so that adding a shard at run time moves no file), ``<stem>-<shard><suffix>`` for
    the others.

    An older raywatch named shard 0's file ``<stem>-0<suffix>`` when sharded: that file is
    used when it exists and ``sqlite_path`` itself does not.

    >>> c = MonitorConfig(actor={"sqlite_path": "/tmp/rw/stats.sqlite", "shards": 3})
    >>> sqlite_path_for(c, 0), sqlite_path_for(c, 1)
    ('/tmp/rw/stats.sqlite', '/tmp/rw/stats-1.sqlite')
    """
    path = cfg.actor.sqlite_path
    if not path:
        return None
    path = os.path.expanduser(path)
    stem, suffix = os.path.splitext(path)
    if shard != 0:
        return f"{stem}-{shard}{suffix}"
    legacy = f"{stem}-0{suffix}"
    return legacy if not os.path.exists(path) and os.path.exists(legacy) else path


class StatsActor(Rebalancing):
    """See the module docstring. Construct through :func:`get_or_create`."""

    def __init__(self, config: Union[MonitorConfig, Mapping[str, Any], None] = None, shard: int = 0):
        cfg = parse_config(config) if config is not None else MonitorConfig()
        self.config = cfg
        self.shard = int(shard)
        self.name = actor_name(cfg.actor.name, self.shard, cfg.actor.shards)
        a = cfg.actor
        check_doors(a)  # an open door is refused before anything starts
        store = None
        store_error: Optional[BaseException] = None
        path = sqlite_path_for(cfg, self.shard)
        if path:
            try:  # owner-only from creation (it holds configs, secrets as ${ENV} references), checked, repaired
                store = Store(path, integrity_check=a.integrity_check, check_timeout=a.integrity_check_timeout,
                              busy_timeout=a.busy_timeout, background=True)
            except Exception as exc:  # unwritable path, locked or refused file: in memory, in status and alerted
                store_error = exc
        failures = Failures()
        self.registry = CollectorRegistry(auto_describe=False)
        self.alerting = AlertingHub(registry=self.registry, name=self.name, on_failure=failures.fail,
                                    dead_letter_dir=os.path.dirname(store.path) if store is not None else None)
        self.core = StatsCore(cfg, store, alerting=self.alerting, failures=failures, shard=self.shard,
                              name=self.name, store_error=store_error, store_path=path)
        self._queue: List[Tuple[List[Ticket], asyncio.Future]] = []
        self._writer: Optional[asyncio.Task] = None
        self.registry.register(StatsCollector(self.core))
        self.link = ControllerLink(self.core, self.name, cfg.actor.namespace)  # (issue 14)
        self.recovered = self.core.recover() if store is not None else {}
        self.dogstatsd: Optional[DogStatsdPublisher] = None
        if cfg.actor.dogstatsd_host:
            try:
                self.dogstatsd = DogStatsdPublisher(cfg.actor.dogstatsd_host, cfg.actor.dogstatsd_port, cfg.actor.dogstatsd_tags)
            except Exception as exc:
                self.core.fail("dogstatsd.init", exc)
        self.server: Optional[StatsServer] = None
        self._tasks: List[asyncio.Task] = []
        self._started = False
        self._closed = False
        self._last_checkpoint = time.monotonic()
        self._last_prune = 0.0
        self._t0 = time.monotonic()
        if self.recovered.get("models"):
            # compute a view right away so /metrics and status have figures after a restart
            self.core.evaluate(want_status=False)
            if self.dogstatsd is not None:
                self.dogstatsd.prime(self.core.models.values())

    # ------------------------------------------------------------------ lifecycle
    async def _ensure_started(self) -> None:
        if self._started:
            return
        self._started = True
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._loop()))
        await self._start_server()

    async def _start_server(self) -> None:
        """Start the listeners not running yet (a port taken: counted, tried again on the
        next evaluation; each listener on its own, so /metrics does not wait for the API)."""
        a = self.config.actor
        if a.metrics_port is None:
            return
        if self.server is None:
            port = a.metrics_port + self.shard if a.metrics_port else 0
            api_port = a.api_port
            if a.metrics_port == 0 and "api_port" not in a.model_fields_set:
                api_port = 0  # "pick free ports" (tests, several actors on one host): the API's too
            elif api_port:
                api_port += self.shard
            try:
                self.server = StatsServer(
                    self.registry, self._feedback_items, self._status_json, host=a.metrics_host, port=port,
                    api_host=a.api_host, api_port=api_port, tokens=TokenTable.of(a),
                    models=lambda: {k: ms.labels for k, ms in self.core.models.items()},
                    rate_limit=a.api_rate_limit, rate_burst=a.api_rate_burst, max_body=a.api_max_body_bytes,
                    ssl_context=tls_context(a))
            except Exception as exc:  # certificate files unreadable, ...: counted, tried again later
                self.core.fail("http.start", exc)
                return
        if self.server.started:
            return
        try:
            await self.server.start()
        except Exception as exc:  # port taken: retried on the next evaluation
            self.core.fail("http.start", exc)

    async def _loop(self) -> None:
        interval = self.config.windows.evaluation_interval
        while not self._closed:
            await asyncio.sleep(interval)
            try:
                self._tick()
            except Exception as exc:  # never let the loop die
                self.core.fail("loop", exc)
            if self.server is None or not self.server.started:
                await self._start_server()

    def _tick(self, now: Optional[float] = None, want_status: bool = False) -> Optional[Dict[str, Any]]:
        st = self.core.evaluate(now, want_status=want_status)
        if self.dogstatsd is not None:
            try:
                self.dogstatsd.publish(self.core.models.values())
            except Exception as exc:
                self.core.fail("dogstatsd", exc)
        t = time.monotonic()
        if t - self._last_checkpoint >= self.config.actor.checkpoint_interval:
            self._last_checkpoint = t
            self.core.start_checkpoint()  # snapshot here, written on the store's writer thread
        try:
            self.link.tick()  # (issue 14) the remediation controller, payload-log writes
        except Exception as exc:
            self.core.fail("remediation", exc)
        store = self.core.store
        if store is not None and t - self._last_prune > 3600.0:
            self._last_prune = t
            self.core._write("store.prune", store.prune, time.time() - self.config.actor.history_retention)
        return st

    # ------------------------------------------------------------------ API
    async def ready(self) -> Dict[str, Any]:
        await self._ensure_started()
        return await self.info()

    async def info(self) -> Dict[str, Any]:
        return {
            "name": self.name,
            "shard": self.shard,
            "shards": self.core.shards,  # the live count (raised by a shard added at run time)
            "moved": dict(self.core.moved),
            "handing_over": sorted(self.core.handovers),
            "namespace": self.config.actor.namespace,
            "pid": os.getpid(),
            "node_id": ray.get_runtime_context().get_node_id(),
            RSS_BYTES.name: psutil.Process().memory_info().rss,  # the actor's own
            "metrics_address": self.server.address if self.server else None,
            "api_address": self.server.api_address if self.server else None,
            "sqlite_path": self.core.store.path if self.core.store is not None else None,
            "recovered": dict(self.recovered),
            "uptime_seconds": time.monotonic() - self._t0,
            "models": sorted(self.core.models),
            "counters": dict(self.core.counters),
            "failures": dict(self.core.failures),
        }

    async def register_model(self, model_key: str, config_dict: Any = None, profile_bytes: Optional[bytes] = None) -> Dict[str, Any]:
        await self._ensure_started()
        if (to := self._owner_of(model_key)) is not None:
            return await self._pass(to, "register_model", model_key, config_dict, profile_bytes)
        out = self.core.register_model(model_key, config_dict, profile_bytes)
        self.link.register(model_key)  # (issue 14) a model that remediates: to the controller, fire and forget
        return out

    async def get_profile(self, model_key: str) -> Optional[bytes]:
        if (to := self._owner_of(model_key)) is not None:
            return await self._pass(to, "get_profile", model_key)
        ms = self.core.models.get(model_key)
        return ms.profile_bytes if ms is not None else None

    async def get_config(self, model_key: str) -> Optional[Dict[str, Any]]:
        """The model's configuration as data (secrets as ``${ENV}`` references or masked)."""
        if (to := self._owner_of(model_key)) is not None:
            return await self._pass(to, "get_config", model_key)
        ms = self.core.models.get(model_key)
        return ms.config.to_data() if ms is not None else None

    async def ingest(self, batch: Union[ReplicaBatch, Dict[str, Any]]) -> str:
        """Merge one replica batch, journaled first: ``"ok"``, ``"duplicate"``, ``"error"``,
        or ``"reregister"`` (merged; the replica should call ``register_model`` again with
        its configuration object: the actor has none it can use). Raises
        ``StoreWriteError`` when the batch could not be journaled (nothing merged: send it again).
        A batch for a model handed over: the new owner's answer, as
        :func:`raywatch.stats.batch.forwarded`."""
        if not self._started:
            await self._ensure_started()
        to = owner(self.core, batch)
        if to is not None:
            return await self._pass_batch(to, batch)
        t = self.core.admit(batch)
        if isinstance(t, str):
            return t
        await self._commit([t])
        return t.reply

    async def ingest_many(self, batches: List[Union[ReplicaBatch, Dict[str, Any]]]) -> Dict[str, int]:
        """Answers counted by answer (with ``"shards"`` when some were passed to a new owner)."""
        if not self._started:
            await self._ensure_started()
        batches, out = await self._pass_batches(batches)
        tickets = []
        for b in batches:
            t = self.core.admit(b)
            if isinstance(t, str):
                out[t] = out.get(t, 0) + 1
            else:
                tickets.append(t)
        await self._commit(tickets)
        for t in tickets:
            out[t.reply] = out.get(t.reply, 0) + 1
        return out

    async def _commit(self, tickets: List[Ticket]) -> None:
        """Journal ``tickets`` (grouped with the other calls waiting) and merge them; raises
        ``StoreWriteError`` when the write failed (nothing merged)."""
        if not tickets:
            return
        if not any(t.rows for t in tickets):  # in memory or journal off: nothing to wait for
            self.core.settle(tickets)
            return
        await asyncio.shield(self._enqueue(tickets))

    async def _settled(self) -> None:
        """Wait until every call admitted so far is written and merged (groups are merged in
        the order written: an empty one queued now is answered after them)."""
        if self._queue or (self._writer is not None and not self._writer.done()):
            await self._enqueue([])

    def _enqueue(self, tickets: List[Ticket]) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self._queue.append((tickets, fut))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())
        return fut

    async def _write_loop(self) -> None:
        """Group commit: the calls queued while a write is under way go in the next one,
        written on the store's writer thread; each group is merged once written, in the
        order written. The next group's write starts before the group just written is
        merged, so that write (on the writer thread) and this merge (on the event loop)
        overlap; each call is answered after its own group is written and merged."""
        core = self.core
        pending = self._start_write()
        while pending is not None:
            group, tickets, write = pending
            error: Optional[BaseException] = None
            last = None
            try:
                last = await write
            except StoreWriteError as exc:
                error = exc
            except Exception as exc:  # pragma: no cover - the writer thread itself failed
                error = StoreWriteError(f"the ingest journal could not be written ({type(exc).__name__}: {exc})")
            core.health.wrote(None if error is None else (error.__cause__ or error))
            pending = self._start_write()  # the calls that came meanwhile: written while this group merges
            try:
                core.settle(tickets, last, error=error)
            except Exception as exc:  # pragma: no cover - settle counts its own failures
                core.fail("ingest.settle", exc)
            for _, fut in group:
                if not fut.done():
                    if error is None:
                        fut.set_result(None)
                    else:
                        fut.set_exception(error)

    def _start_write(self) -> Optional[Tuple[List[Tuple[List[Ticket], asyncio.Future]], List[Ticket], asyncio.Future]]:
        """Take the queued calls and start their journal write on the writer thread: ``(group,
        tickets, future of the write)``, or None when nothing is queued."""
        if not self._queue:
            return None
        group, self._queue = self._queue, []
        tickets = [t for ts, _ in group for t in ts]
        core = self.core
        try:
            write = asyncio.wrap_future(core.store.submit(core.journal.write, core.journal_rows(tickets)))
        except Exception as exc:  # the writer thread is gone (the store closed): the group fails, nothing merged
            write = asyncio.get_running_loop().create_future()
            write.set_exception(exc)
        return group, tickets, write

    async def feedback(self, request_id: str, label: Any, model_key: Optional[str] = None) -> bool:
        r = await self._feedback_items([(str(request_id), label, model_key)])
        return r["joined"] > 0

    async def feedback_many(self, items: List[Any], handed_over: Optional[List[str]] = None) -> Dict[str, Any]:
        """Labels as ``(request_id, label[, model_key])`` tuples or dicts (``request_id``,
        ``label``, ``model``): ``{"accepted", "joined", "refused": {reason: n}}``.
        ``handed_over``: the models among them that the calling shard handed over to this one
        (it passes their labels on); a label for one of these that this shard has not
        imported yet waits for it here instead of being refused (placed on this shard, see
        :meth:`~raywatch.actor.rebalance.Rebalancing._incoming`)."""
        norm: List[Tuple[str, Any, Optional[str]]] = []
        for it in items:
            if isinstance(it, Mapping):
                norm.append((str(it["request_id"]), it["label"], it.get("model") or it.get("model_key")))
            else:
                t = tuple(it)
                norm.append((str(t[0]), t[1], t[2] if len(t) > 2 else None))
        return await self._feedback_items(norm, self._incoming(handed_over))

    async def _feedback_items(self, items: List[Tuple[str, Any, Optional[str]]],
                              expected: Collection[str] = ()) -> Dict[str, Any]:
        await self._ensure_started()
        items, away = await self._pass_labels(items)  # labels for a model handed over: to its new owner
        t, refused = self.core.admit_feedback(items, expected=expected)
        out = {"accepted": 0, "joined": 0, "refused": refused}
        if t is not None:
            await self._commit([t])
            out.update(accepted=len(t.items), joined=t.reply)
        return out if away is None else merge_labels(out, away)

    async def evaluate(self, now: Optional[float] = None) -> Dict[str, Any]:
        """Evaluate now (close due windows, rules, DogStatsD, checkpoint); returns status."""
        await self._ensure_started()
        st = self._tick(now, want_status=True)
        st["actor"]["metrics_address"] = self.server.address if self.server else None
        st["actor"]["api_address"] = self.server.api_address if self.server else None
        return st

    async def status(self, model_key: Optional[str] = None) -> Dict[str, Any]:
        await self._ensure_started()
        if (to := self._owner_of(model_key)) is not None:
            return await self._pass(to, "status", model_key)
        st = self.core.status(model_key)
        st["actor"]["metrics_address"] = self.server.address if self.server else None
        st["actor"]["api_address"] = self.server.api_address if self.server else None
        return st

    async def _status_json(self, model_key: Optional[str]) -> Dict[str, Any]:
        return await self.status(model_key)

    async def history(self, model_key: Optional[str] = None, since: Optional[float] = None, limit: int = 10_000) -> Dict[str, Any]:
        if (to := self._owner_of(model_key)) is not None:
            return await self._pass(to, "history", model_key, since, limit)
        return self.core.history(model_key, since, limit)

    async def stored_alerts(self, model_key: str, since: Optional[float] = None, limit: int = 10_000) -> List[Dict[str, Any]]:
        """The alert transitions of ``model_key`` stored in this shard's file, whoever owns the
        model now (never passed on): a model handed over leaves the transitions it made here
        behind (``raywatch.actor.history`` reads them from every shard)."""
        store = self.core.store
        return store.alerts(str(model_key), since, limit) if store is not None else []

    async def metrics_address(self) -> Optional[str]:
        await self._ensure_started()
        return f"{self.server.address}/metrics" if self.server is not None and self.server.address else None

    async def reset_model(self, model: str) -> Dict[str, Any]:
        """Forget a model (its key, or a model name: every model of that name) here and in
        the SQLite file: state, pending labels, registration, checkpoint, journal, closed
        windows, alert history. Returns ``{"model", "keys", "found", "pending_dropped",
        "deleted": {table: rows}}`` (see :meth:`raywatch.aggregate.core.StatsCore.reset_model`)."""
        answer, fut = self.core.start_reset(model)
        if fut is not None:
            answer["deleted"] = await asyncio.wrap_future(fut)
        return answer

    async def record_audit(self, events: List[Dict[str, Any]]) -> int:
        """Append remediation audit records (``raywatch.audit`` data) to this actor's SQLite
        file; answers once they are committed (idempotent by record id). RuntimeError when
        the actor has no SQLite file (the controller then keeps them in its own)."""
        audit = self.core.audit
        if audit is None or self.core.store is None:
            raise RuntimeError(f"{self.name} has no SQLite file: no audit trail here")
        evs = [AuditEvent.from_data(e) for e in events]
        await asyncio.wrap_future(self.core.store.submit(audit.append, evs))
        return len(evs)

    async def audit(self, model_key: Optional[str] = None, since: Optional[float] = None,
                    decision: Optional[str] = None) -> List[Dict[str, Any]]:
        """The remediation audit trail's records in this actor's file, oldest first."""
        return self.core.remediation.events(model_key, since, decision)

    async def api_address(self) -> Optional[str]:
        """``http(s)://host:port`` of ``/status`` and ``/feedback`` (None: no API listener)."""
        await self._ensure_started()
        return self.server.api_address if self.server else None

    async def checkpoint(self) -> bool:
        fut = self.core.start_checkpoint()
        if fut is None:
            return False
        try:
            await asyncio.wrap_future(fut)
            return True
        except Exception:
            return False

    async def close(self, timeout: float = 5.0) -> None:
        """Checkpoint, flush alert delivery and stop the HTTP server (before a planned kill)."""
        self._closed = True
        try:
            await self.link.close()  # (issue 14) labels still waiting for the payload logs
        except Exception as exc:
            self.core.fail("remediation.close", exc)
        await self.checkpoint()
        await asyncio.get_running_loop().run_in_executor(None, lambda: self.alerting.close(timeout=timeout))
        if self.server is not None:
            await self.server.stop()
            self.server = None
        for t in self._tasks:
            t.cancel()
        if self.dogstatsd is not None:
            self.dogstatsd.close()
        if self.core.store is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.core.store.close)


_RemoteStatsActor = ray.remote(StatsActor)
_handles: Dict[Tuple[str, str], Any] = {}


def get_or_create(
    config: Union[MonitorConfig, Mapping[str, Any], None] = None,
    *,
    shard: Optional[int] = None,
    wait: bool = True,
    refresh: bool = False,
    timeout: float = 60.0,
):
    """The handle of stats actor ``shard`` (0 by default), creating it when it does not exist.

    The actor is detached, so it outlives the job that created it; its name is
    ``config.actor.name`` (``-<shard>`` appended for shards 1 and up) in
    ``config.actor.namespace``. With ``wait`` the call blocks until the actor answers
    (use ``wait=False`` from an event loop and ``await handle.ready.remote()``).
    ``refresh`` forgets a cached handle (after the actor died).
    """
    cfg = parse_config(config) if config is not None else MonitorConfig()
    shard = 0 if shard is None else int(shard)
    name = actor_name(cfg.actor.name, shard, cfg.actor.shards)
    key = (cfg.actor.namespace, name)
    handle = None if refresh else _handles.get(key)
    if handle is None:
        opts: Dict[str, Any] = dict(
            name=name,
            namespace=cfg.actor.namespace,
            lifetime="detached",
            get_if_exists=True,
            num_cpus=cfg.actor.num_cpus,
            max_restarts=cfg.actor.max_restarts,
            max_concurrency=1000,
        )
        if cfg.actor.pin_to_head:
            opts["resources"] = {"node:__internal_head__": 0.001}
        handle = _RemoteStatsActor.options(**opts).remote(cfg, shard)
        _handles[key] = handle
    if wait:
        ray.get(handle.ready.remote(), timeout=timeout)
    return handle


def get_for_model(model_key: str, config: Union[MonitorConfig, Mapping[str, Any], None] = None, *,
                  shards: Optional[int] = None, **kwargs: Any):
    """The handle of the shard that owns ``model_key`` (``"app/deployment"``); ``shards``: a
    count learned from the actors (a shard added at run time), when larger than the config's."""
    cfg = parse_config(config) if config is not None else MonitorConfig()
    cfg = with_shards(cfg, shards)
    return get_or_create(cfg, shard=shard_for(model_key, cfg.actor.shards), **kwargs)
