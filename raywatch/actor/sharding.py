"""Which stats actor owns a model: a stable hash of the model key, modulo the shard count.

Replicas and the query API use the same function, so a model's batches, its feedback and
the questions about it all reach one actor. The hash is BLAKE2b of the UTF-8 key, not
Python's ``hash`` (which is salted per process and would send one model to different
shards from different replicas).

>>> shard_for("default/Classifier", 1)
0
>>> shard_for("default/Classifier", 4) == shard_for("default/Classifier", 4)
True
>>> sorted({shard_for(f"app/model-{i}", 4) for i in range(100)})
[0, 1, 2, 3]
>>> actor_name("raywatch-stats", 0, 1), actor_name("raywatch-stats", 0, 4), actor_name("raywatch-stats", 2, 4)
('raywatch-stats', 'raywatch-stats', 'raywatch-stats-2')

Shard 0 keeps the base name whatever the count, so that a shard added at run time
(:func:`raywatch.actor.add_shard`) renames no actor that already runs.
"""

from __future__ import annotations

import hashlib
from typing import Any, Optional

__all__ = ["shard_for", "actor_name", "parse_actor_name", "with_shards"]


def shard_for(model_key: str, shards: int) -> int:
    """The shard (0 … shards-1) that owns ``model_key``."""
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards!r}")
    if shards == 1:
        return 0
    digest = hashlib.blake2b(model_key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def actor_name(base: str, shard: int, shards: int) -> str:
    """The Ray actor name of ``shard``: ``base`` for shard 0 (whatever the count), ``base-<shard>``
    for the others."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard must be in [0, {shards}), got {shard!r}")
    return base if shard == 0 else f"{base}-{shard}"


def parse_actor_name(name: str, base: str) -> bool:
    """Whether ``name`` is one of the stats actors named from ``base``.

    >>> parse_actor_name("raywatch-stats-3", "raywatch-stats"), parse_actor_name("other", "raywatch-stats")
    (True, False)
    """
    if name == base:
        return True
    prefix = base + "-"
    return name.startswith(prefix) and name[len(prefix):].isdigit()


def with_shards(config: Any, shards: Optional[int]) -> Any:
    """``config`` (a MonitorConfig) with ``actor.shards`` raised to ``shards``, a count learned
    from the running actors (a shard added at run time); itself when that is no larger."""
    if shards is None or shards <= config.actor.shards:
        return config
    return config.model_copy(update={"actor": config.actor.model_copy(update={"shards": int(shards)})})
