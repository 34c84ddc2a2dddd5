"""Adding a stats actor shard at run time: the actor's part (:class:`Rebalancing`, mixed into
:class:`~raywatch.actor.actor.StatsActor`); the operation is
:func:`raywatch.actor.api.add_shard`, behind ``raywatch shards add``.

The logic without Ray — which models move, the hand-over record, the placement a shard
remembers — is :mod:`raywatch.aggregate.rebalance`. Here:

* **the steps**, each durable before it answers and each safe to run again:
  ``export_model`` on the old shard (from then on the model's batches and labels go to the
  new owner; the calls it admitted before are written and merged first; the record, with the
  model's closed windows, replaces the model in its SQLite file in one transaction),
  ``import_model`` on the new one (checkpointed before it answers; a record imported once is
  not imported again), ``forget_model`` on the old one (the record dropped, the new owner
  recorded), ``set_shards`` on every shard;
* **forwarding**: a batch (``ingest``, ``ingest_many``), a label (``feedback``,
  ``feedback_many``), a registration or a question (``register_model``, ``get_profile``,
  ``get_config``, ``status``, ``history``) for a model this shard handed over is passed to
  its new owner, and the owner's answer is the answer: an acknowledgement still means
  durable at the owner. The answer of ``ingest`` is then
  :func:`raywatch.stats.batch.forwarded` (the owner's answer and the shard count that places
  the model there), and ``ingest_many`` / ``feedback_many`` answers gain ``"shards"``: the
  replica's shipper learns the count and resolves its shard again
  (:meth:`raywatch.serve.shipper.Shipper`), so it stops going through the old shard.
  Labels are passed on naming the models handed over: until the new owner has imported
  one, a label for it that no batch of the model preceded waits there in the join (as a
  label before its prediction) and joins at the import, instead of being refused as
  ``unknown_model``.

:func:`~raywatch.actor.api.add_shard` reads the count N from shard 0, creates shard N (get-if-exists: its own
name, SQLite file and ports, per :func:`~raywatch.actor.actor.sqlite_path_for` and the port
rules of :class:`~raywatch.config.aggregate.ActorConfig`), hands over each model that moves
(:func:`~raywatch.aggregate.rebalance.moves`), then tells every shard the count N+1, shard 0
last. Run again after a crash half-way, it does the same add (shard 0 still says N): a model
already imported is not imported twice, one already forgotten is skipped.
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from raywatch.actor.sharding import actor_name, shard_for
from raywatch.aggregate import rebalance
from raywatch.aggregate.data import encode
from raywatch.aggregate.rebalance import HANDOVER_PREFIX, PLACEMENT_KEY, count, owner
from raywatch.aggregate.recovery import engine_rows
from raywatch.stats.batch import forwarded

__all__ = ["Rebalancing", "merge_labels"]

Labels = List[Tuple[str, Any, Optional[str]]]


class Rebalancing:
    """The stats actor's methods for a shard added at run time (see the module docstring).
    It uses the actor's ``core``, ``config``, ``name``, ``link`` and ``_settled``."""


    # ------------------------------------------------------------------ forwarding
    def _owner_of(self, model_key: Optional[str]) -> Optional[str]:
        """The shard that took ``model_key`` from this one (None: not handed over)."""
        return self.core.moved.get(model_key) if model_key else None  # type: ignore[attr-defined]

    async def _pass(self, to: str, method: str, *args: Any) -> Any:
        """Call ``method`` on the shard named ``to`` and answer with its answer."""
        import ray

        peers = self.__dict__.setdefault("_peers", {})
        try:
            h = peers.get(to)
            if h is None:
                h = peers[to] = ray.get_actor(to, namespace=self.config.actor.namespace)  # type: ignore[attr-defined]
            return await getattr(h, method).remote(*args)
        except Exception:
            peers.pop(to, None)  # found again next time (it may have been re-created)
            raise

    async def _pass_batch(self, to: str, batch: Any) -> Dict[str, Any]:
        return forwarded(await self._pass(to, "ingest", batch), count(self.core))  # type: ignore[attr-defined]

    async def _pass_batches(self, batches: Sequence[Any]) -> Tuple[List[Any], Dict[str, int]]:
        """``(the batches this shard keeps, the answers of the others' owners)``: their counts
        by answer and ``"shards"``, or {} when none was passed on."""
        keep: List[Any] = []
        away: Dict[str, List[Any]] = {}
        for b in batches:
            to = owner(self.core, b)  # type: ignore[attr-defined]
            if to is None:
                keep.append(b)
            else:
                away.setdefault(to, []).append(b)
        out: Dict[str, int] = {}
        if away:
            out["shards"] = count(self.core)  # type: ignore[attr-defined]
            for answer in await asyncio.gather(*(self._pass(to, "ingest_many", bs) for to, bs in away.items())):
                for k, v in answer.items():
                    out[k] = max(out[k], v) if k == "shards" else out.get(k, 0) + v
        return keep, out

    async def _pass_labels(self, items: Labels) -> Tuple[Labels, Optional[Dict[str, Any]]]:
        """``(the labels this shard keeps, the merged answer of the others' owners or None)``."""
        keep: Labels = []
        away: Dict[str, Labels] = {}
        for it in items:
            to = self._owner_of(it[2])
            if to is None:
                keep.append(it)
            else:
                away.setdefault(to, []).append(it)
        if not away:
            return keep, None
        out: Dict[str, Any] = {"accepted": 0, "joined": 0, "refused": {}, "shards": count(self.core)}  # type: ignore[attr-defined]
        for answer in await asyncio.gather(*(self._pass(to, "feedback_many", [list(i) for i in its],
                                                        sorted({i[2] for i in its if i[2] is not None}))
                                             for to, its in away.items())):
            out = merge_labels(out, answer)
        return keep, out

    def _incoming(self, handed_over: Optional[Sequence[str]]) -> frozenset:
        """Of the models another shard says it handed over to this one (and passes labels of
        on), those this shard places here at the count it knows and has not handed on
        itself: their labels wait here for the import (between ``export_model`` on the old
        shard and ``import_model`` here, a label that met no batch of the model yet would
        otherwise be refused as ``unknown_model``). A model it already holds needs nothing."""
        if not handed_over:
            return frozenset()
        core = self.core  # type: ignore[attr-defined]
        n = count(core)
        return frozenset(k for k in map(str, handed_over)
                         if k not in core.models and k not in core.moved and shard_for(k, n) == self.shard)  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ the steps
    async def export_model(self, model_key: str, shard: int, shards: int) -> Optional[Dict[str, Any]]:
        """Hand ``model_key`` over to ``shard`` (of ``shards``): its ``raywatch.model-handover``
        record, durable here before the answer; the same record when asked again; None when it
        was handed over and forgotten already."""
        core = self.core  # type: ignore[attr-defined]
        to = actor_name(self.config.actor.name, shard, shards)  # type: ignore[attr-defined]
        fresh = model_key in core.models and model_key not in core.handovers
        if fresh:
            core.moved[model_key] = to  # its calls go to the new owner from now on ...
            await self._settled()  # type: ignore[attr-defined]  # ... once those admitted before are merged
        data = rebalance.begin(core, model_key, to, shards, time.time())
        if data is None:
            return None
        if fresh and core.store is not None:  # its closed windows, read after every write queued before
            history = await asyncio.wrap_future(core.store.submit(core.store.windows, model_key))
            if history:
                data["history"] = history
        rows = {HANDOVER_PREFIX + model_key: ("handover", encode(data))}
        if data.get("alerts"):  # with the engines' state without its alerts: a restart here does not resolve them
            rows.update(engine_rows(core.alerting.state(), core._failures))
        await self._place(rows, forget=model_key)
        return data

    async def import_model(self, data: Dict[str, Any]) -> bool:
        """Take over the model of a hand-over record, checkpointed before the answer; True when
        imported now, False when this record was imported already."""
        core = self.core  # type: ignore[attr-defined]
        key = str(data["key"])
        fresh = rebalance.take(core, data, time.time())
        if fresh and data.get("history") and core.store is not None:
            core._write("rebalance.history", core.store.insert_windows, key, data["history"])
        fut = core.start_checkpoint(need=[key])
        if fut is not None:
            await asyncio.wrap_future(fut)
        if fresh:
            self.link.register(key)  # type: ignore[attr-defined]  # (issue 14) a model that remediates
        return fresh

    async def forget_model(self, model_key: str, shard: int, shards: int) -> bool:
        """After the new owner imported it: drop the hand-over record and remember the new
        owner, durably; True when there was a record to drop."""
        core = self.core  # type: ignore[attr-defined]
        if model_key in core.models and model_key not in core.handovers:
            raise RuntimeError(f"{self.name} holds {model_key} and has not handed it over")  # type: ignore[attr-defined]
        had = model_key in core.handovers
        rebalance.forget(core, model_key, actor_name(self.config.actor.name, shard, shards))  # type: ignore[attr-defined]
        await self._place(drop=[HANDOVER_PREFIX + model_key])
        return had

    async def set_shards(self, shards: int) -> int:
        """The shard count is now ``shards`` (never lowered), durably; returns the count."""
        core = self.core  # type: ignore[attr-defined]
        core.shards = max(core.shards, int(shards))
        core.growing = max(core.growing, core.shards)
        await self._place()
        return core.shards

    async def _place(self, states: Optional[Mapping[str, Tuple[str, str]]] = None, *, drop: Sequence[str] = (),
                     forget: Optional[str] = None) -> None:
        """Write ``states``, this shard's placement record and the deletions in one transaction
        on the store's writer thread; raises when it failed (nothing written)."""
        core = self.core  # type: ignore[attr-defined]
        if core.store is None:
            return
        rows = dict(states or {})
        where = rebalance.placement(core)
        if where is not None:
            rows[PLACEMENT_KEY] = ("placement", encode(where))
        write = functools.partial(core.store.place, rows, drop=drop, forget=forget, journal_id=core.journal.last_id,
                                  now=time.time())
        await asyncio.wrap_future(core._write("rebalance", write))


def merge_labels(a: Dict[str, Any], b: Mapping[str, Any]) -> Dict[str, Any]:
    """Two ``feedback_many`` answers as one.

    >>> merge_labels({"accepted": 1, "joined": 1, "refused": {"too_large": 1}},
    ...              {"accepted": 2, "joined": 0, "refused": {"too_large": 1}, "shards": 2})
    {'accepted': 3, 'joined': 1, 'refused': {'too_large': 2}, 'shards': 2}
    """
    out = dict(a, accepted=a["accepted"] + b.get("accepted", 0), joined=a["joined"] + b.get("joined", 0),
               refused=dict(a["refused"]))
    for k, v in (b.get("refused") or {}).items():
        out["refused"][k] = out["refused"].get(k, 0) + v
    if "shards" in b:
        out["shards"] = max(out.get("shards", 0), b["shards"])
    return out
