"""The stats actor: a named, detached, async Ray actor around :class:`~raywatch.aggregate.core.StatsCore`.

One per shard, named ``raywatch-stats`` (or ``raywatch-stats-<N>`` when sharded) in the
``raywatch`` namespace and created with get-if-exists semantics, so every replica that
calls :func:`get_or_create` reaches the same actor — and, after the actor has been killed,
re-creates it, which resumes from SQLite (checkpoint + journal).

On its event loop the actor runs, besides the calls it receives:

* the evaluation loop (every ``windows.evaluation_interval``): close windows, drift,
  performance, rules → alert engines (which deliver in the background), DogStatsD;
* checkpoints to SQLite (every ``actor.checkpoint_interval``);
* an aiohttp server with ``/metrics`` (Prometheus), ``POST /feedback`` and ``/status``.

Actor methods (all ``async``): ``ready``, ``register_model``, ``get_profile``,
``get_config``, ``ingest`` (fire-and-forget from replicas), ``ingest_many``, ``feedback``,
``feedback_many``, ``evaluate``, ``status``, ``history``, ``metrics_address``, ``info``,
``checkpoint``, ``close``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import psutil
import ray
from prometheus_client import CollectorRegistry

from raywatch.actor.exposition import DogStatsdPublisher, StatsCollector
from raywatch.actor.server import StatsServer
from raywatch.actor.sharding import actor_name, shard_for
from raywatch.aggregate.core import StatsCore
from raywatch.aggregate.failures import Failures
from raywatch.aggregate.store import Store
from raywatch.alerts.hub import AlertingHub
from raywatch.config import MonitorConfig, parse_config
from raywatch.series import RSS_BYTES
from raywatch.stats.batch import ReplicaBatch

__all__ = ["StatsActor", "get_or_create", "get_for_model", "sqlite_path_for"]

log = logging.getLogger("raywatch.actor.actor")


def sqlite_path_for(cfg: MonitorConfig, shard: int) -> Optional[str]:
    """The SQLite file of ``shard``: ``sqlite_path`` itself, or ``<stem>-<shard><suffix>`` when sharded.

    >>> c = MonitorConfig(actor={"sqlite_path": "/tmp/rw/stats.sqlite", "shards": 3})
    >>> sqlite_path_for(c, 1)
    '/tmp/rw/stats-1.sqlite'
    """
    path = cfg.actor.sqlite_path
    if not path:
        return None
    path = os.path.expanduser(path)
    if cfg.actor.shards == 1:
        return path
    stem, suffix = os.path.splitext(path)
    return f"{stem}-{shard}{suffix}"


class StatsActor:
    """See the module docstring. Construct through :func:`get_or_create`."""

    def __init__(self, config: Union[MonitorConfig, Mapping[str, Any], None] = None, shard: int = 0):
        cfg = parse_config(config) if config is not None else MonitorConfig()
        self.config = cfg
        self.shard = int(shard)
        self.name = actor_name(cfg.actor.name, self.shard, cfg.actor.shards)
        store = None
        store_error: Optional[BaseException] = None
        path = sqlite_path_for(cfg, self.shard)
        if path:
            try:
                store = Store(path)  # owner-only from creation: it holds configs (secrets as ${ENV} references)
            except Exception as exc:  # unwritable path, foreign or refused file: run in memory, loudly
                store_error = exc
        failures = Failures()
        self.registry = CollectorRegistry(auto_describe=False)
        self.alerting = AlertingHub(registry=self.registry, name=self.name, on_failure=failures.fail,
                                    dead_letter_dir=os.path.dirname(store.path) if store is not None else None)
        self.core = StatsCore(cfg, store, alerting=self.alerting, failures=failures, group_commit=True,
                              shard=self.shard, name=self.name)
        if store_error is not None:
            self.core.fail("store.open", store_error)
        self._commit_fut: Optional[asyncio.Future] = None
        self.registry.register(StatsCollector(self.core))
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
        a = self.config.actor
        if a.metrics_port is None or self.server is not None:
            return
        port = a.metrics_port + self.shard if a.metrics_port else 0
        srv = StatsServer(self.registry, self._feedback_items, self._status_json, host=a.metrics_host, port=port)
        try:
            await srv.start()
            self.server = srv
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
            if self.server is None:
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
            self.core.checkpoint()
        if self.core.store is not None and t - self._last_prune > 3600.0:
            self._last_prune = t
            try:
                self.core.store.prune(time.time() - self.config.actor.history_retention)
            except Exception as exc:
                self.core.fail("store.prune", exc)
        return st

    # ------------------------------------------------------------------ API
    async def ready(self) -> Dict[str, Any]:
        await self._ensure_started()
        return await self.info()

    async def info(self) -> Dict[str, Any]:
        return {
            "name": self.name,
            "shard": self.shard,
            "shards": self.config.actor.shards,
            "namespace": self.config.actor.namespace,
            "pid": os.getpid(),
            "node_id": ray.get_runtime_context().get_node_id(),
            RSS_BYTES.name: psutil.Process().memory_info().rss,  # the actor's own
            "metrics_address": self.server.address if self.server else None,
            "sqlite_path": self.core.store.path if self.core.store is not None else None,
            "recovered": dict(self.recovered),
            "uptime_seconds": time.monotonic() - self._t0,
            "models": sorted(self.core.models),
            "counters": dict(self.core.counters),
            "failures": dict(self.core.failures),
        }

    async def register_model(self, model_key: str, config_dict: Any = None, profile_bytes: Optional[bytes] = None) -> Dict[str, Any]:
        await self._ensure_started()
        return self.core.register_model(model_key, config_dict, profile_bytes)

    async def get_profile(self, model_key: str) -> Optional[bytes]:
        ms = self.core.models.get(model_key)
        return ms.profile_bytes if ms is not None else None

    async def get_config(self, model_key: str) -> Optional[Dict[str, Any]]:
        """The model's configuration as data (secrets as ``${ENV}`` references or masked)."""
        ms = self.core.models.get(model_key)
        return ms.config.to_data() if ms is not None else None

    async def ingest(self, batch: Union[ReplicaBatch, Dict[str, Any]]) -> str:
        """Merge one replica batch: ``"ok"``, ``"duplicate"``, ``"error"``, or
        ``"reregister"`` (merged; the replica should call ``register_model`` again with its
        configuration object: the one the actor has lost its secrets)."""
        if not self._started:
            await self._ensure_started()
        r = self.core.ingest(batch)
        if self.core.journal_pending:
            await self._committed()
        return r

    async def ingest_many(self, batches: List[Union[ReplicaBatch, Dict[str, Any]]]) -> Dict[str, int]:
        if not self._started:
            await self._ensure_started()
        out: Dict[str, int] = {}
        for b in batches:
            r = self.core.ingest(b)
            out[r] = out.get(r, 0) + 1
        if self.core.journal_pending:
            await self._committed()
        return out

    async def _committed(self) -> None:
        """Wait until the journal entries queued so far are in SQLite (group commit: the
        calls that arrive in the same turn of the event loop share one transaction), so a
        call is acknowledged only once what it brought survives the actor being killed."""
        fut = self._commit_fut
        if fut is None:
            loop = asyncio.get_running_loop()
            fut = self._commit_fut = loop.create_future()
            loop.call_soon(self._group_commit)
        await asyncio.shield(fut)

    def _group_commit(self) -> None:
        fut, self._commit_fut = self._commit_fut, None
        try:
            self.core.flush_journal()
        finally:
            if fut is not None and not fut.done():
                fut.set_result(None)

    async def feedback(self, request_id: str, label: Any, model_key: Optional[str] = None) -> bool:
        r = await self._feedback_items([(str(request_id), label, model_key)])
        return r["joined"] > 0

    async def feedback_many(self, items: List[Any]) -> Dict[str, int]:
        """Labels as ``(request_id, label[, model_key])`` tuples or dicts (``request_id``, ``label``, ``model``)."""
        norm: List[Tuple[str, Any, Optional[str]]] = []
        for it in items:
            if isinstance(it, Mapping):
                norm.append((str(it["request_id"]), it["label"], it.get("model") or it.get("model_key")))
            else:
                t = tuple(it)
                norm.append((str(t[0]), t[1], t[2] if len(t) > 2 else None))
        return await self._feedback_items(norm)

    async def _feedback_items(self, items: List[Tuple[str, Any, Optional[str]]]) -> Dict[str, int]:
        await self._ensure_started()
        joined = self.core.feedback_many(items)
        if self.core.journal_pending:
            await self._committed()
        return {"accepted": len(items), "joined": joined}

    async def evaluate(self, now: Optional[float] = None) -> Dict[str, Any]:
        """Evaluate now (close due windows, rules, DogStatsD, checkpoint); returns status."""
        await self._ensure_started()
        st = self._tick(now, want_status=True)
        st["actor"]["metrics_address"] = self.server.address if self.server else None
        return st

    async def status(self, model_key: Optional[str] = None) -> Dict[str, Any]:
        await self._ensure_started()
        st = self.core.status(model_key)
        st["actor"]["metrics_address"] = self.server.address if self.server else None
        return st

    async def _status_json(self, model_key: Optional[str]) -> Dict[str, Any]:
        return await self.status(model_key)

    async def history(self, model_key: Optional[str] = None, since: Optional[float] = None, limit: int = 10_000) -> Dict[str, Any]:
        return self.core.history(model_key, since, limit)

    async def metrics_address(self) -> Optional[str]:
        await self._ensure_started()
        return f"{self.server.address}/metrics" if self.server else None

    async def checkpoint(self) -> bool:
        return self.core.checkpoint()

    async def close(self, timeout: float = 5.0) -> None:
        """Checkpoint, flush alert delivery and stop the HTTP server (before a planned kill)."""
        self._closed = True
        self.core.checkpoint()
        await asyncio.get_running_loop().run_in_executor(None, lambda: self.alerting.close(timeout=timeout))
        if self.server is not None:
            await self.server.stop()
            self.server = None
        for t in self._tasks:
            t.cancel()
        if self.dogstatsd is not None:
            self.dogstatsd.close()


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
    ``config.actor.name`` (``-<shard>`` appended when ``actor.shards > 1``) in
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


def get_for_model(model_key: str, config: Union[MonitorConfig, Mapping[str, Any], None] = None, **kwargs: Any):
    """The handle of the shard that owns ``model_key`` (``"app/deployment"``)."""
    cfg = parse_config(config) if config is not None else MonitorConfig()
    return get_or_create(cfg, shard=shard_for(model_key, cfg.actor.shards), **kwargs)
