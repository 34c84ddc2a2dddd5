"""Adding a shard at run time: which models move, and handing one over without losing a window.

Models are placed by :func:`raywatch.actor.sharding.shard_for` (a hash of the model key,
modulo the number of shards). When a shard is added, :func:`moves` lists the models whose
owner changes (given that placement); each is handed over with :func:`hand_over`: the old shard exports the model
(:func:`export_model`: its labels, configuration as data, reference profile bytes and its whole
state — open and closed windows with their merged summaries, latency sketches, performance
accumulators, the replicas' sequence numbers, totals, detectors — as the JSON-able record
:meth:`~raywatch.aggregate.model.ModelState.state` the store checkpoints), the new shard
imports it (:func:`import_model`), and the old shard forgets it and remembers where it went
(:attr:`StatsCore.moved`). Replicas still placing the model with the old shard count keep
sending there until they learn the new one; :func:`owner` tells the old shard's shell to pass
such a batch on to the new owner (the stats actor forwards it), where its window goes on:
nothing ingested before or after the move is lost, and the figures after it equal those of a
shard that had owned the model all along (tests/aggregate/test_rebalance.py).

The hand-over carries data only (no pickle); a configuration's secrets travel as their
``${ENV}`` references or masked, and a masked one makes the replicas register their
configuration again (as after a restore). Not carried: the labels still waiting in the
feedback join for their prediction (the old shard joins them; late ones are counted there)
and the alert engine's state (the new shard's rules start from their ``pending`` state).
"""

from __future__ import annotations

import base64
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from raywatch.aggregate.data import fields, record
from raywatch.aggregate.models import config_from_record, config_record

__all__ = ["moves", "export_model", "import_model", "hand_over", "owner", "FORMAT", "VERSION"]

FORMAT, VERSION = "raywatch.model-handover", 1


def moves(keys: Iterable[str], old_shards: int, new_shards: int,
          place: Callable[[str, int], int]) -> List[Tuple[str, int, int]]:
    """``(model key, from shard, to shard)`` for each model whose owner changes, sorted by key;
    ``place(key, shards)`` is the placement the replicas use
    (:func:`raywatch.actor.sharding.shard_for`).

    >>> moves(["a/x", "a/y", "a/z"], 1, 2, lambda key, n: ord(key[-1]) % n)
    [('a/y', 0, 1)]
    """
    out = []
    for key in sorted(set(keys)):
        a, b = place(key, old_shards), place(key, new_shards)
        if a != b:
            out.append((key, a, b))
    return out


def export_model(core: Any, model_key: str) -> Dict[str, Any]:
    """The model ``model_key`` of ``core`` (a :class:`~raywatch.aggregate.StatsCore`) as a
    JSON-able hand-over record; KeyError when the shard does not hold it."""
    ms = core.models[model_key]
    profile = base64.b64encode(ms.profile_bytes).decode("ascii") if ms.profile_bytes is not None else None
    return record(FORMAT, VERSION, key=model_key, labels=dict(ms.labels), config=config_record(ms.config),
                  profile=profile, state=ms.state())


def import_model(core: Any, data: Dict[str, Any], now: Optional[float] = None) -> str:
    """Take over the model of a hand-over record; returns its key. Its state replaces any
    the shard already holds under that key (batches the shard got before the hand-over
    arrived are merged in after it: the old owner's windows come first)."""
    d = fields(dict(data), FORMAT, VERSION)
    key = str(d["key"])
    early = core.models.pop(key, None)  # batches that reached the new owner before the hand-over
    cfg, _unset = config_from_record(d.get("config"))
    profile = base64.b64decode(d["profile"]) if d.get("profile") else None
    core.register_model(key, cfg.to_data() if cfg is not None else None, profile, labels=d.get("labels") or {},
                        now=now)
    ms = core.models[key]
    ms.restore(d["state"])
    if early is not None:
        _merge_early(ms, early)
    core.moved.pop(key, None)
    return key


def _merge_early(ms: Any, early: Any) -> None:
    """Fold the windows of batches the new owner took before the hand-over into the state."""
    for start, w in sorted(early.open.items()):
        mine = ms.open.get(start)
        if mine is None:
            ms.open[start] = w
            continue
        both = type(w).merged([mine, w])
        both.start, both.end = mine.start, mine.end
        ms.open[start] = both
    for k, v in early.totals.items():
        ms.totals[k] = ms.totals.get(k, 0) + v
    for rid, r in early.replicas.items():
        ms.replicas.setdefault(rid, r)


def hand_over(source: Any, target: Any, model_key: str, *, target_name: Optional[str] = None,
              now: Optional[float] = None) -> None:
    """Move ``model_key`` from the core ``source`` to the core ``target`` (in one process; the
    stats actors do the same through :func:`export_model` and :func:`import_model`)."""
    data = export_model(source, model_key)
    import_model(target, data, now=now)
    forget(source, model_key, target_name or target.name)


def forget(core: Any, model_key: str, new_owner: str) -> None:
    """The old shard drops the model and remembers its new owner (see :func:`owner`)."""
    core.models.pop(model_key, None)
    core.moved[model_key] = new_owner


def owner(core: Any, batch: Any) -> Optional[str]:
    """The name of the shard a batch for a model handed over belongs to now (None: this one)."""
    if not core.moved:
        return None
    key = batch.get("model_key") if isinstance(batch, dict) else getattr(batch, "model_key", None)
    if key is None and isinstance(batch, dict):
        key = f"{batch.get('app', '')}/{batch.get('deployment', '')}"
    return core.moved.get(key) if key is not None else None
