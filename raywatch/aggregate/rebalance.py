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

Across stats actors (:mod:`raywatch.actor.rebalance`, :func:`raywatch.actor.add_shard`) the
hand-over is three steps, each durable before it answers and each safe to run again:
:func:`begin` on the old shard (the record, kept until :func:`forget`; the model dropped there
and forwarded from then on), :func:`take` on the new one (imports a record once: its ``id``
is remembered in :attr:`StatsCore.taken`), :func:`forget` on the old one. What a shard must
remember across a restart — the shard count it knows (:attr:`StatsCore.shards`, and
:attr:`StatsCore.growing` while a shard is being added), :attr:`StatsCore.moved`,
:attr:`StatsCore.taken` — is its ``placement`` record (:func:`placement`), a state row of its
checkpoint; a record handed over and not yet forgotten is a ``handover`` row of its own.

The hand-over carries data only (no pickle); a configuration's secrets travel as their
``${ENV}`` references or masked, and a masked one makes the replicas register their
configuration again (as after a restore). The model's entries in the feedback join travel
in the record's ``feedback`` (predictions waiting for their labels, labels addressed to it
waiting for their predictions, in the join's own layout): the new owner takes them over
(:meth:`~raywatch.aggregate.joiner.FeedbackJoiner.import_model`; a label that reached it first
joins then) and the old shard drops them at :func:`forget`, so a label for a prediction made
before the move still joins. Labels addressed to no model stay where they are. Its alerts
travel in the record's ``alerts``: the old shard's engines give them up without a word as
the model leaves (:meth:`~raywatch.alerts.hub.AlertingHub.take_model`), with what their
notification log says the receivers were told, and the new shard's engines go on with them
(:meth:`~raywatch.alerts.hub.AlertingHub.give_model`): a firing alert neither resolves at
the old shard nor fires again (after its ``for``) at the new one, and its resolve, when it
comes, is sent by the new owner to the receivers that heard it fire. Not carried: its alert
transitions already stored (the history table stays with the old shard; ``raywatch.actor.history``
of the model reads every shard's, and a reset forgets them on every shard). Its closed
windows travel in the record's ``history`` when the stats actor hands it over
(:mod:`raywatch.actor.rebalance`).
"""

from __future__ import annotations

import base64
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from raywatch.aggregate.data import fields, record
from raywatch.aggregate.models import config_from_record, config_record

__all__ = ["moves", "export_model", "import_model", "hand_over", "forget", "owner", "begin", "take", "placement",
           "restore", "count", "FORMAT", "VERSION", "PLACEMENT_FORMAT", "PLACEMENT_KEY", "HANDOVER_PREFIX"]

FORMAT, VERSION = "raywatch.model-handover", 1
PLACEMENT_FORMAT = "raywatch.placement"
PLACEMENT_KEY, HANDOVER_PREFIX = "__placement__", "__handover__:"


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


def export_model(core: Any, model_key: str, history: Optional[List[Dict[str, Any]]] = None) -> Dict[str, Any]:
    """The model ``model_key`` of ``core`` (a :class:`~raywatch.aggregate.StatsCore`) as a
    JSON-able hand-over record; KeyError when the shard does not hold it. ``history``: its
    closed windows as stored (``Store.windows``), carried along when given."""
    ms = core.models[model_key]
    profile = base64.b64encode(ms.profile_bytes).decode("ascii") if ms.profile_bytes is not None else None
    extra: Dict[str, Any] = {"history": history} if history else {}
    waiting = core.joiner.export_model(model_key)  # its entries in the feedback join
    if waiting["predictions"] or waiting["labels"]:
        extra["feedback"] = waiting
    return record(FORMAT, VERSION, key=model_key, labels=dict(ms.labels), config=config_record(ms.config),
                  profile=profile, state=ms.state(), **extra)


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
    if d.get("feedback"):  # predictions waiting for their labels (and labels for their predictions) go on here
        core.take_feedback(key, d["feedback"], now)
    if d.get("alerts"):  # its alerts go on here: nothing fires again, nothing resolved in between
        core.give_alerts(key, d["alerts"], now)
    core.moved.pop(key, None)
    return key


def _merge_early(ms: Any, early: Any) -> None:
    """Fold what the batches the new owner took before the hand-over made into the state: their
    windows, counters, error types, refusals, label values and replica memories (their
    detectors' updates are not carried: the imported detectors go on from the old shard's)."""
    for start, w in sorted(early.open.items()):
        mine = ms.open.get(start)
        if mine is None:
            ms.open[start] = w
            continue
        both = type(w).merged([mine, w])
        both.start, both.end = mine.start, mine.end
        ms.open[start] = both
    for mine, theirs in ((ms.totals, early.totals), (ms.error_types, early.error_types), (ms.refused, early.refused),
                         (ms.retired, early.retired)):
        for k, v in theirs.items():
            mine[k] = mine.get(k, 0) + v
    ms.label_values |= early.label_values
    if early.first_seen is not None and (ms.first_seen is None or early.first_seen < ms.first_seen):
        ms.first_seen = early.first_seen
    for rid, r in early.replicas.items():
        mine = ms.replicas.get(rid)
        if mine is None:
            ms.replicas[rid] = r
        else:
            mine.absorb(r)


def hand_over(source: Any, target: Any, model_key: str, *, target_name: Optional[str] = None,
              now: Optional[float] = None) -> None:
    """Move ``model_key`` from the core ``source`` to the core ``target`` (in one process; the
    stats actors do the same through :func:`export_model` and :func:`import_model`)."""
    data = export_model(source, model_key)
    alerts = source.take_alerts(model_key, now)
    if alerts:
        data["alerts"] = alerts
    import_model(target, data, now=now)
    forget(source, model_key, target_name or target.name)


def forget(core: Any, model_key: str, new_owner: str) -> None:
    """The old shard drops the model (and the record :func:`begin` kept) and remembers its
    new owner (see :func:`owner`)."""
    core.models.pop(model_key, None)
    core.handovers.pop(model_key, None)
    core.joiner.forget_model(model_key)  # its entries in the feedback join went with the record
    core.moved[model_key] = new_owner


def begin(core: Any, model_key: str, new_owner: str, shards: int, now: float,
          history: Optional[List[Dict[str, Any]]] = None) -> Optional[Dict[str, Any]]:
    """The old shard's first step: the hand-over record of ``model_key`` (with an ``id``),
    kept in :attr:`StatsCore.handovers` until :func:`forget`; the model is dropped here and
    its batches and labels go to ``new_owner`` from now on; ``shards`` is the count being
    reached (:attr:`StatsCore.growing`). Again after that: the same record. None when the
    model was handed over and forgotten already; KeyError when the shard never held it.

    >>> from types import SimpleNamespace as NS
    >>> core = NS(name="s0", models={}, moved={"a/x": "s1"}, handovers={}, taken={}, growing=1)
    >>> begin(core, "a/x", "s1", 2, now=0.0) is None, core.growing
    (True, 2)
    """
    core.growing = max(core.growing, int(shards))
    if model_key in core.handovers:
        return core.handovers[model_key]
    if model_key not in core.models:
        if model_key in core.moved:
            return None
        raise KeyError(f"{core.name} holds no model {model_key!r}")
    data = export_model(core, model_key, history)
    data["id"] = f"{core.name}:{model_key}:{now!r}"
    alerts = core.take_alerts(model_key, now)  # out of this shard's engines as the model leaves: none resolves here
    if alerts:
        data["alerts"] = alerts
    core.models.pop(model_key)
    core.taken.pop(model_key, None)
    core.moved[model_key] = new_owner
    core.handovers[model_key] = data
    return data


def take(core: Any, data: Dict[str, Any], now: Optional[float] = None) -> bool:
    """The new shard's step: import the record unless this very hand-over (its ``id``) was
    imported already (a rerun after a crash); True when it was imported now."""
    d = fields(dict(data), FORMAT, VERSION)
    key, hid = str(d["key"]), d.get("id")
    if hid is not None and core.taken.get(key) == hid:
        return False
    import_model(core, d, now=now)
    if hid is not None:
        core.taken[key] = str(hid)
    return True


def count(core: Any) -> int:
    """The shard count that places every model where it is (or goes): what a shard that
    passes a batch on tells the replica."""
    return max(int(core.shards), int(core.growing))


def placement(core: Any) -> Optional[Dict[str, Any]]:
    """The ``raywatch.placement`` record (version 1) of a shard: the count it knows, the count
    being reached, the models it handed over (key -> new owner) and the hand-overs it took
    (key -> record id); None while it holds nothing beyond its configured count.

    >>> from types import SimpleNamespace as NS
    >>> core = NS(config=NS(actor=NS(shards=1)), shards=2, growing=2, moved={"a/x": "s-1"}, taken={})
    >>> rec = placement(core); rec["shards"], rec["moved"]
    (2, {'a/x': 's-1'})
    >>> fresh = NS(config=core.config, shards=1, growing=1, moved={}, taken={}, handovers={})
    >>> restore(fresh, "placement", PLACEMENT_KEY, rec); fresh.shards, fresh.moved
    (2, {'a/x': 's-1'})
    """
    if not (core.moved or core.taken) and core.shards == core.growing == core.config.actor.shards:
        return None
    return record(PLACEMENT_FORMAT, VERSION, shards=int(core.shards), growing=int(core.growing),
                  moved=dict(core.moved), taken=dict(core.taken))


def restore(core: Any, kind: str, key: str, rec: Any) -> None:
    """Resume from a ``placement`` row or a ``handover`` row of a checkpoint (ValueError when
    it is another format or version)."""
    if kind == "handover":
        core.handovers[key[len(HANDOVER_PREFIX):]] = fields(rec, FORMAT, VERSION)
        return
    rec = fields(rec, PLACEMENT_FORMAT, VERSION)
    core.shards = max(int(core.shards), int(rec["shards"]))
    core.growing = max(int(core.growing), int(rec.get("growing") or 0), core.shards)
    core.moved.update({str(k): str(v) for k, v in (rec.get("moved") or {}).items()})
    core.taken.update({str(k): str(v) for k, v in (rec.get("taken") or {}).items()})


def owner(core: Any, batch: Any) -> Optional[str]:
    """The name of the shard a batch for a model handed over belongs to now (None: this one)."""
    if not core.moved:
        return None
    key = batch.get("model_key") if isinstance(batch, dict) else getattr(batch, "model_key", None)
    if key is None and isinstance(batch, dict):
        key = f"{batch.get('app', '')}/{batch.get('deployment', '')}"
    return core.moved.get(key) if key is not None else None
