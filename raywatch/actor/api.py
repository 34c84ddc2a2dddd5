"""The query API: ``raywatch.status``, ``raywatch.feedback``, ``raywatch.actor.history``,
``raywatch.actor.api.reset`` (behind ``raywatch reset --model``), and
``raywatch.actor.add_shard`` (behind ``raywatch shards add``).

These run in any Ray driver (the CLI, a notebook, a job) connected to the cluster where
the stats actors live. Without a ``config`` they find the actors by name in the
``raywatch`` namespace; a model's questions go to the shard that owns it (the same
:func:`~raywatch.actor.sharding.shard_for` the replicas use, with the shard count the actors
know now: a shard added at run time, :func:`raywatch.actor.add_shard`, raises it), questions
about all models go to every shard and the answers are merged.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from raywatch.actor.sharding import actor_name, parse_actor_name, shard_for, with_shards
from raywatch.aggregate import rebalance
from raywatch.config import MonitorConfig, parse_config

__all__ = ["status", "feedback", "history", "actors", "reset", "add_shard"]

log = logging.getLogger("raywatch.actor.api")

ConfigLike = Union[MonitorConfig, Mapping[str, Any], None]


def _ray():
    import ray  # deferred: importing the query API (e.g. for its docs) does not start Ray's machinery

    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS", "auto")
        log.info("connecting to the Ray cluster at %s", address)
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    return ray


def actors(config: ConfigLike = None) -> List[Tuple[int, Any]]:
    """``(shard, handle)`` of every stats actor that exists now."""
    ray = _ray()
    cfg = parse_config(config) if config is not None else MonitorConfig()
    base, ns = cfg.actor.name, cfg.actor.namespace
    out: List[Tuple[int, Any]] = []
    if config is not None:
        n = _live_count(ray, cfg)
        for shard in range(n):
            try:
                out.append((shard, ray.get_actor(actor_name(base, shard, n), namespace=ns)))
            except ValueError:
                continue
        return out
    for entry in ray.util.list_named_actors(all_namespaces=True):
        name = entry["name"] if isinstance(entry, dict) else entry
        namespace = entry.get("namespace") if isinstance(entry, dict) else ns
        if namespace != ns or not parse_actor_name(name, base):
            continue
        shard = 0 if name == base else int(name.rsplit("-", 1)[1])
        try:
            out.append((shard, ray.get_actor(name, namespace=ns)))
        except ValueError:
            continue
    out.sort(key=lambda t: t[0])
    return out


def _live_count(ray: Any, cfg: MonitorConfig, timeout: float = 30.0) -> int:
    """The shard count shard 0 knows now (the config's when it does not answer), at least the config's."""
    try:
        first = ray.get_actor(actor_name(cfg.actor.name, 0, 1), namespace=cfg.actor.namespace)
        return max(cfg.actor.shards, int(ray.get(first.info.remote(), timeout=timeout)["shards"]))
    except Exception:
        return cfg.actor.shards


def _shards(handles: List[Tuple[int, Any]], config: ConfigLike, timeout: float) -> int:
    """The shard count the actors know now (shard 0's, the first asked)."""
    least = parse_config(config).actor.shards if config is not None else 1
    if not handles:
        return least
    ray = _ray()
    return max(least, int(ray.get(handles[0][1].info.remote(), timeout=timeout)["shards"]))


def _owner(model: str, handles: List[Tuple[int, Any]], config: ConfigLike, timeout: float) -> Optional[Any]:
    n = _shards(handles, config, timeout)
    want = shard_for(model, n)
    for shard, h in handles:
        if shard == want:
            return h
    return None


def status(model: Optional[str] = None, *, config: ConfigLike = None, timeout: float = 30.0) -> Dict[str, Any]:
    """Current window, rolling view, drift, quality, performance and alerts per model.

    ``model`` is a model key (``"app/deployment"``) or a model name; None for all models.
    Returns ``{"models": {key: {...}}, "actors": [{...}, ...]}``.
    """
    ray = _ray()
    handles = actors(config)
    if model is not None and "/" in model:
        h = _owner(model, handles, config, timeout)
        targets = [h] if h is not None else [h for _, h in handles]
    else:
        targets = [h for _, h in handles]
    answers = ray.get([h.status.remote(model) for h in targets], timeout=timeout) if targets else []
    out: Dict[str, Any] = {"models": {}, "actors": []}
    for a in answers:
        out["models"].update(a.get("models") or {})
        out["actors"].append(a.get("actor"))
    return out


def history(model: Optional[str] = None, since: Optional[float] = None, *, config: ConfigLike = None, timeout: float = 60.0) -> Dict[str, Any]:
    """Closed windows, feature histograms and alert transitions of every shard (or of the
    one owning ``model``): ``{"models": {key: {"labels", "features", "windows"}}, "alerts": [...]}``
    (see :meth:`raywatch.aggregate.core.StatsCore.history`). A model key's alert transitions
    come from every shard: those it made on a shard before it was handed over stay in that
    shard's file (its windows travel with it)."""
    ray = _ray()
    handles = actors(config)
    targets = [h for _, h in handles]
    others: List[Any] = []
    if model is not None:
        h = _owner(model, handles, config, timeout)
        targets = [h] if h is not None else []
        if h is not None and "/" in model:
            others = [o for _, o in handles if o is not h]
    refs = [h.history.remote(model, since) for h in targets]
    left = []
    for o in others:
        try:
            left.append(o.stored_alerts.remote(model, since))
        except AttributeError:  # a shard of a raywatch before stored_alerts: its rows stay unread
            log.info("a stats actor predates stored_alerts: the alert transitions in its file are not read")
    answers = ray.get(refs + left, timeout=timeout) if refs else []
    out: Dict[str, Any] = {"models": {}, "alerts": []}
    for a in answers[:len(refs)]:
        out["models"].update(a.get("models") or {})
        out["alerts"].extend(a.get("alerts") or [])
        if a.get("audit"):  # (issue 14) remediation decisions
            out.setdefault("audit", []).extend(a["audit"])
    for rows in answers[len(refs):]:
        out["alerts"].extend(rows)
    out["alerts"].sort(key=lambda e: e.get("ts") or 0)
    return out


def feedback(request_id: str, label: Any, model: Optional[str] = None, *, config: ConfigLike = None, timeout: float = 30.0) -> bool:
    """Send the ground truth ``label`` of the request ``request_id``.

    With ``model`` (``"app/deployment"``) the label goes to the shard owning the model;
    without it, to every shard (only the one holding the prediction joins it; the others
    let it expire). Returns True when the label joined a prediction right away (False: it
    waits, bounded and with a TTL, for its prediction to arrive).
    """
    ray = _ray()
    handles = actors(config)
    if not handles:
        raise RuntimeError("no raywatch stats actor is running (is a monitored deployment up?)")
    if model is not None and "/" in model:
        h = _owner(model, handles, config, timeout)
        targets = [h] if h is not None else [h for _, h in handles]
    else:
        targets = [h for _, h in handles]
    key = model if model is not None and "/" in model else None  # a model name alone: any shard
    results = ray.get([h.feedback.remote(str(request_id), label, key) for h in targets], timeout=timeout)
    return any(results)


def reset(model: str, *, config: ConfigLike = None, timeout: float = 30.0) -> List[Dict[str, Any]]:
    """Forget a model in the stats actors and their SQLite files: its state, pending labels,
    registration, checkpoint, journal, closed windows and alert history (what
    ``raywatch reset --model`` does). ``model`` is a model key (``"app/deployment"``: its
    shard is asked first, then every other shard, whose files may keep the alert
    transitions it made there before a hand-over) or a model name (every shard is asked,
    and forgets every model of that name). Returns each asked shard's answer ``{"model",
    "keys", "found", "pending_dropped", "deleted": {table: rows}}`` (a key's owner first);
    ``found`` empty everywhere means no actor knew the model. RuntimeError when no stats
    actor runs (reset the file itself with :func:`raywatch.aggregate.offline.reset_sqlite`)."""
    ray = _ray()
    handles = actors(config)
    if not handles:
        raise RuntimeError("no raywatch stats actor is running (reset the state file with --sqlite instead)")
    targets = [h for _, h in handles]
    if "/" in model:
        h = _owner(model, handles, config, timeout)
        if h is not None:
            targets = [h] + [o for o in targets if o is not h]
    return list(ray.get([h.reset_model.remote(model) for h in targets], timeout=timeout))


def add_shard(config: Any, *, timeout: float = 60.0) -> Dict[str, Any]:
    """Add a stats actor shard to a running installation (see :mod:`raywatch.actor.rebalance`): ``{"shards":
    the new count, "created": the new shard's name, "moved": [{"model", "from", "to",
    "imported"}], "stayed": [model keys]}`` (``imported`` False: an earlier run had imported
    it, or had finished its move). RuntimeError when no stats actor runs."""
    from raywatch.actor.actor import get_or_create

    ray = _ray()
    cfg = parse_config(config) if config is not None else MonitorConfig()
    a = cfg.actor
    try:
        first = ray.get_actor(a.name, namespace=a.namespace)
    except ValueError:
        raise RuntimeError(f"no stats actor {a.name!r} runs in namespace {a.namespace!r}: nothing to add a shard to") from None
    n = int(ray.get(first.info.remote(), timeout=timeout)["shards"])
    grown = with_shards(cfg, n + 1)
    handles = [get_or_create(grown, shard=i, timeout=timeout) for i in range(n + 1)]
    infos = ray.get([h.info.remote() for h in handles[:n]], timeout=timeout)
    keys = {k for info in infos for k in list(info["models"]) + list(info.get("handing_over") or [])}
    ray.get(handles[n].set_shards.remote(n + 1), timeout=timeout)
    plan = rebalance.moves(keys, n, n + 1, shard_for)
    moved = []
    for key, src, dst in plan:
        data = ray.get(handles[src].export_model.remote(key, dst, n + 1), timeout=timeout)
        fresh = False
        if data is not None:  # None: handed over and forgotten by an earlier run
            fresh = ray.get(handles[dst].import_model.remote(data), timeout=timeout)
            ray.get(handles[src].forget_model.remote(key, dst, n + 1), timeout=timeout)
        moved.append({"model": key, "from": src, "to": dst, "imported": bool(fresh)})
        log.info("moved %s from shard %d to shard %d", key, src, dst)
    for h in handles[1:n] + handles[:1]:  # shard 0 last: until it says N+1, a rerun adds the same shard
        ray.get(h.set_shards.remote(n + 1), timeout=timeout)
    gone = {k for k, _, _ in plan}
    return {"shards": n + 1, "created": grown.actor.shard_name(n), "moved": moved,
            "stayed": sorted(keys - gone)}
