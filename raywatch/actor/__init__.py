"""raywatch.actor — the stats actor: the Ray shell around :mod:`raywatch.aggregate`.

Public entry points (imported lazily, so that ``import raywatch.actor.sharding`` does not
pull in Ray):

* :func:`get_or_create` / :func:`get_for_model` — the handle of a stats actor shard;
* :func:`shard_for` — which shard owns a model key;
* :func:`status`, :func:`history`, :func:`feedback` — the query API;
* :func:`add_shard` — one more shard at run time (``raywatch shards add``).

The actor's logic without Ray (``StatsCore``, the store, ``history_from_sqlite``) is in
:mod:`raywatch.aggregate`.
"""

from __future__ import annotations

from raywatch._lazy import lazy_exports

_EXPORTS = {
    "StatsActor": "raywatch.actor.actor:StatsActor",
    "get_or_create": "raywatch.actor.actor:get_or_create",
    "get_for_model": "raywatch.actor.actor:get_for_model",
    "shard_for": "raywatch.actor.sharding:shard_for",
    "actor_name": "raywatch.actor.sharding:actor_name",
    "status": "raywatch.actor.api:status",
    "history": "raywatch.actor.api:history",
    "feedback": "raywatch.actor.api:feedback",
    "actors": "raywatch.actor.api:actors",
    "add_shard": "raywatch.actor.api:add_shard",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
