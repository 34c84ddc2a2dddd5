"""Sending batches to the stats actor: fire-and-forget, bounded, counted.

:class:`Shipper` is driven by the replica's flusher thread (:meth:`Shipper.pump`, never
blocking). Each batch is one ``actor.ingest.remote(batch)`` call; the returned reference is
kept only to learn, later and without waiting, whether the call failed. At most
``max_in_flight`` calls are outstanding; batches waiting to go are held in a queue of at
most ``max_pending_batches``; beyond that the oldest is dropped and its requests are
counted in :attr:`Shipper.dropped_records`. A failed call (the actor died, is restarting,
or raised) is retried up to ``max_retries`` times with exponential backoff, after
re-resolving the named actor (it may have been restarted elsewhere). The cumulative drop
and capture-error counters are stamped on each batch when it is *sent*, so drops reach
the actor with the next batch that gets through; ``seq`` is fixed at build time so that a
retried batch can be recognised by the actor.

A batch given up on after it was sent may still have reached the actor (the call timed out,
or the actor died after it stored the batch and before it answered). Its requests are not
counted as dropped here: the batch is *abandoned*, and its ``(seq, requests)`` ride on every
later batch (``ReplicaBatch.abandoned``) until the actor has read one (any answer but
"duplicate": a duplicate carried an older list). The actor counts
them as dropped only if it never stored that seq, and from then on refuses the batch as a
duplicate should it still arrive: every request is counted once, stored or dropped. Beyond
:data:`~raywatch.stats.batch.MAX_ABANDONED` unreported ones, the oldest is counted as dropped outright.

When a stats actor shard was added at run time and the model moved, the old shard passes the
batch on and answers with the new owner's answer and the shard count that places the model
there (:func:`~raywatch.stats.batch.forwarded`): the shipper hands the count to its transport
(``learn``, when it has one) and, when the count is news, resolves the actor again, so its
next batches go to the new owner directly (:attr:`Shipper.relocations`).

The transport (resolve the actor, send, poll) is an object with three methods so the
logic is testable without Ray; :class:`RayTransport` is the real one.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from raywatch.serve.capture import RateLimitedLog
from raywatch.stats.batch import DUPLICATE, MAX_ABANDONED, REREGISTER, ReplicaBatch, answer_of

__all__ = ["Shipper", "RayTransport", "ShardResolver", "default_resolver"]

logger = logging.getLogger("raywatch.serve.shipper")


class RayTransport:
    """Ships through Ray: ``resolve()`` finds the actor, ``send`` calls ``ingest``.

    ``resolver`` is a zero-argument callable returning the actor handle (it may raise when
    the actor cannot be found); see :func:`default_resolver`.
    """

    def __init__(self, resolver: Callable[[], Any]):
        self._resolver = resolver

    def resolve(self) -> Any:
        return self._resolver()

    def learn(self, shards: int) -> bool:
        """The stats actors have ``shards`` shards now: True when the resolver did not know it."""
        learn = getattr(self._resolver, "learn", None)
        return bool(learn(shards)) if learn is not None else False

    def send(self, handle: Any, batch: ReplicaBatch) -> Any:
        return handle.ingest.remote(batch)

    def done(self, refs: List[Any]) -> List[Any]:
        import ray

        if not refs:
            return []
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0, fetch_local=True)
        return ready

    def check(self, ref: Any) -> Any:
        """The reply of the call behind ``ref``; raises if the call failed."""
        import ray

        return ray.get(ref, timeout=0)

    def call(self, handle: Any, method: str, *args: Any) -> Any:
        """Start another actor method (``register_model``, ``get_profile``); a reference."""
        return getattr(handle, method).remote(*args)

    def value(self, ref: Any) -> Any:
        import ray

        return ray.get(ref, timeout=0)


class ShardResolver:
    """Finds (or creates) the stats actor shard that owns ``model_key`` (a zero-argument callable).

    ``config`` is a MonitorConfig or a zero-argument callable returning the current one.

    Uses ``raywatch.actor.get_for_model`` (get-if-exists semantics, not waiting for the
    actor to answer, so the flusher thread never blocks); every resolution after the first
    forgets the cached handle, since the reason to re-resolve is that calls failed. With
    ``shipping.create_actor: false`` the replica only looks the named actor up (for
    platforms that run the stats actor themselves) and retries until it appears. The shard
    count is the config's, or the larger one :meth:`learn` was told (a shard added at run time).
    """

    def __init__(self, config: Any, model_key: str):
        self.config, self.model_key = config, model_key
        self.calls = 0
        self.shards: Optional[int] = None

    def learn(self, shards: int) -> bool:
        """Place the model with ``shards`` from now on; True when that is more than known before."""
        if self.shards is not None and int(shards) <= self.shards:
            return False
        self.shards = int(shards)
        return True

    def __call__(self) -> Any:
        import ray

        cfg = self.config() if callable(self.config) else self.config  # a getter: follows hot reloads
        create = getattr(getattr(cfg, "shipping", None), "create_actor", True)

        if not ray.is_initialized():  # never start a Ray cluster from a monitor's thread
            raise RuntimeError("not running inside a Ray worker; nothing to ship to")
        self.calls += 1
        if create:
            from raywatch.actor import get_for_model

            return get_for_model(self.model_key, cfg, shards=self.shards, wait=False, refresh=self.calls > 1)
        from raywatch.actor.sharding import actor_name, shard_for

        a = cfg.actor
        n = max(a.shards, self.shards or 0)
        return ray.get_actor(actor_name(a.name, shard_for(self.model_key, n), n), namespace=a.namespace)


def default_resolver(config: Any, model_key: str) -> ShardResolver:
    """The resolver of ``model_key``'s shard: a :class:`ShardResolver`."""
    return ShardResolver(config, model_key)


class Shipper:
    """Bounded, retrying, non-blocking sender of ReplicaBatches (see module docstring)."""

    inflight_timeout = 30.0

    def __init__(
        self,
        transport: Any,
        *,
        max_pending_batches: int = 16,
        max_in_flight: int = 4,
        max_retries: int = 5,
        retry_backoff: float = 0.5,
        max_backoff: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        on_connect: Optional[Callable[[Any], None]] = None,
    ):
        self.transport = transport
        self.max_pending_batches = max_pending_batches
        self.max_in_flight = max_in_flight
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.max_backoff = max_backoff
        self.clock = clock
        self.on_connect = on_connect
        self.reregistrations = 0
        self._last_reregister = float("-inf")
        self.handle: Any = None
        self.pending: Deque[Tuple[ReplicaBatch, int]] = deque()
        self.inflight: Dict[Any, Tuple[ReplicaBatch, int, float]] = {}
        self.dropped_records = 0  # every request given up on, sent or not (this replica's own figure)
        self.dropped_batches = 0
        self.unsent_dropped_records = 0  # of them, those in batches never sent: lost for certain
        self.abandoned: Dict[int, int] = {}  # seq -> requests: sent, then given up on (see the module docstring)
        self._sent: set = set()  # seqs of the batches waiting or in flight that were sent at least once
        self.sent_batches = 0
        self.acked_batches = 0
        self.failures = 0
        self.connects = 0
        self.relocations = 0  # resolved again because a shard added at run time took the model
        self._backoff = 0.0
        self._next_attempt = 0.0
        self._log = RateLimitedLog(logger)

    def configure(self, **settings: Any) -> None:
        for k, v in settings.items():
            if hasattr(self, k):
                setattr(self, k, v)

    # ------------------------------------------------------------------ queueing

    def submit(self, batch: ReplicaBatch) -> None:
        self.pending.append((batch, 0))
        while len(self.pending) > self.max_pending_batches:
            old, _ = self.pending.popleft()
            self._drop(old, "the stats actor is not keeping up (pending queue full)")

    def _drop(self, batch: ReplicaBatch, why: str) -> None:
        self.dropped_batches += 1
        self.dropped_records += batch.requests
        seq = int(batch.seq)
        if seq in self._sent:  # it may have reached the actor: the actor decides
            self._sent.discard(seq)
            self.abandoned[seq] = int(batch.requests)
            while len(self.abandoned) > MAX_ABANDONED:
                self.unsent_dropped_records += self.abandoned.pop(next(iter(self.abandoned)))
        else:
            self.unsent_dropped_records += batch.requests
        self._log.warning("raywatch dropped a batch of %d records: %s", batch.requests, why)

    def _schedule_retry(self, now: float) -> None:
        self._backoff = min(self.max_backoff, max(self.retry_backoff, self._backoff * 2 or self.retry_backoff))
        self._next_attempt = now + self._backoff

    # ------------------------------------------------------------------ pumping

    def _reap(self, now: float) -> None:
        if not self.inflight:
            return
        try:
            ready = self.transport.done(list(self.inflight))
        except Exception as exc:  # pragma: no cover - ray.wait trouble
            self._log.warning("raywatch could not poll shipments: %s", exc)
            ready = []
        failed: List[Tuple[ReplicaBatch, int]] = []
        for ref in ready:
            batch, attempts, _ = self.inflight.pop(ref)
            try:
                reply, shards = answer_of(self.transport.check(ref))
            except Exception as exc:
                self.failures += 1
                self._log.warning("raywatch could not ship batch %d (%s); will retry", batch.seq, type(exc).__name__)
                failed.append((batch, attempts))
            else:
                self.acked_batches += 1
                self._backoff = 0.0
                self._sent.discard(int(batch.seq))
                if reply != DUPLICATE:  # the actor has read its abandoned list (a duplicate's was an older one)
                    for seq, _ in batch.abandoned:
                        self.abandoned.pop(seq, None)
                if shards is not None:
                    self._relocate(shards)
                if reply == REREGISTER:
                    self._reregister(now)
        for ref, (batch, attempts, sent_at) in list(self.inflight.items()):
            if now - sent_at > self.inflight_timeout:
                del self.inflight[ref]
                self.failures += 1
                failed.append((batch, attempts))
        if failed:
            self.handle = None  # re-resolve: the actor may have been restarted
            for batch, attempts in reversed(failed):
                if attempts > self.max_retries:
                    self._drop(batch, f"gave up after {attempts} attempts")
                else:
                    self.pending.appendleft((batch, attempts))
            while len(self.pending) > self.max_pending_batches:
                old, _ = self.pending.popleft()
                self._drop(old, "the stats actor is not keeping up (pending queue full)")
            self._schedule_retry(now)

    def _relocate(self, shards: int) -> None:
        """A shard passed the batch on to the model's new owner: learn the count and, when it
        is news, resolve again (the next pump registers with the new owner and sends there)."""
        learn = getattr(self.transport, "learn", None)
        if learn is not None and learn(shards):
            self.relocations += 1
            self.handle = None
            logger.info("raywatch: the model moved to another stats actor shard (%d shards); resolving it again", shards)

    def _reregister(self, now: float) -> None:
        """The stats actor asked for this replica's config again (it restarted with a config
        whose secrets were masked in storage): register again, at most once a minute."""
        if self.on_connect is None or self.handle is None or now - self._last_reregister < 60.0:
            return
        self._last_reregister = now
        self.reregistrations += 1
        try:
            self.on_connect(self.handle)
        except Exception as exc:
            self._log.warning("raywatch could not register again with the stats actor: %s", exc)

    def pump(self, stamp: Optional[Callable[[ReplicaBatch], None]] = None) -> None:
        """Reap finished calls and send what may be sent now. Never blocks, never raises.

        ``stamp(batch)`` is called just before a batch is sent (to set the cumulative
        counters).
        """
        now = self.clock()
        try:
            self._reap(now)
            if not self.pending or now < self._next_attempt:
                return
            if self.handle is None:
                try:
                    self.handle = self.transport.resolve()
                except Exception as exc:
                    self.failures += 1
                    self._log.warning("raywatch cannot reach the stats actor (%s: %s); will retry", type(exc).__name__, exc)
                    self._schedule_retry(now)
                    return
                self.connects += 1
                if self.on_connect is not None:
                    try:
                        self.on_connect(self.handle)
                    except Exception as exc:
                        self._log.warning("raywatch could not register with the stats actor: %s", exc)
            while self.pending and len(self.inflight) < self.max_in_flight:
                batch, attempts = self.pending.popleft()
                batch.abandoned = [[seq, n] for seq, n in self.abandoned.items()]
                if stamp is not None:
                    stamp(batch)
                try:
                    ref = self.transport.send(self.handle, batch)
                except Exception as exc:
                    self.failures += 1
                    self.handle = None
                    self.pending.appendleft((batch, attempts + 1))
                    self._log.warning("raywatch could not send a batch (%s); will retry", type(exc).__name__)
                    self._schedule_retry(now)
                    return
                self.inflight[ref] = (batch, attempts + 1, now)
                self._sent.add(int(batch.seq))
                self.sent_batches += 1
        except Exception as exc:  # noqa: BLE001 - shipping must never take the replica down
            self.failures += 1
            self._log.warning("raywatch shipper error: %s", exc)

    def drain(self, timeout: float = 2.0, stamp: Optional[Callable[[ReplicaBatch], None]] = None,
              sleep: Callable[[float], None] = time.sleep) -> bool:
        """Keep pumping until nothing is pending or in flight, or ``timeout`` passes."""
        deadline = self.clock() + timeout
        while self.pending or self.inflight:
            if self.clock() >= deadline:
                return False
            self._next_attempt = min(self._next_attempt, self.clock())
            self.pump(stamp)
            if self.pending or self.inflight:
                sleep(0.01)
        return True

    def stats(self) -> Dict[str, int]:
        return {
            "pending_batches": len(self.pending),
            "inflight_batches": len(self.inflight),
            "sent_batches": self.sent_batches,
            "acked_batches": self.acked_batches,
            "dropped_batches": self.dropped_batches,
            "dropped_records": self.dropped_records,
            "abandoned_batches": len(self.abandoned),
            "failures": self.failures,
            "connects": self.connects,
            "relocations": self.relocations,
            "reregistrations": self.reregistrations,
        }
