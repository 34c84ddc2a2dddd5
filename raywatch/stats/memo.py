"""Values computed once per object, found again by the object's identity.

A stats actor evaluates with the same profile and configuration objects every cycle; what it
derives from them (decoded reference tables, a test's settings, bin needles) is worth keeping.
Those objects are not all hashable, and equality would cost as much as the derivation, so the
key is their identity: ``id()`` to find the entry, ``is`` to confirm it (an id can be reused
once its object is gone, so each entry keeps its objects, and their ids stay their own).

The cache is bounded: when full it is emptied (the next lookups recompute). Derived values
are shared by every caller: treat them as read-only. With ``weak=True`` an entry keeps weak
references instead, so it never keeps a large object (a profile) alive; a reused id then
finds its entry's reference dead, and misses.

>>> cache = IdentityCache(limit=2)
>>> a, b = object(), object()
>>> cache.get((a,)) is None
True
>>> cache.put((a,), "from a")
'from a'
>>> cache.get((a,)), cache.get((b,)), cache.get((a,), tag="other") is None
('from a', None, True)
"""

from __future__ import annotations

import weakref
from typing import Any, Dict, Hashable, Optional, Tuple

__all__ = ["IdentityCache"]


class IdentityCache:
    """Values by the identity of a tuple of objects, plus an optional hashable ``tag`` compared
    by equality (a test's name, a flag); at most ``limit`` entries."""

    __slots__ = ("_entries", "_limit", "_weak")

    def __init__(self, limit: int = 256, *, weak: bool = False):
        self._entries: Dict[Tuple[Any, ...], Tuple[Tuple[Any, ...], Any]] = {}
        self._limit = int(limit)
        self._weak = bool(weak)

    def get(self, objects: Tuple[Any, ...], default: Any = None, tag: Optional[Hashable] = None) -> Any:
        """The value stored for exactly these objects (and ``tag``), else ``default``."""
        hit = self._entries.get((*map(id, objects), tag))
        if hit is None:
            return default
        held = hit[0]
        if len(held) != len(objects):
            return default
        weak = self._weak
        for x, y in zip(held, objects):  # a loop, not any(generator): this runs on every evaluation
            if (x() if weak else x) is not y:
                return default
        return hit[1]

    def put(self, objects: Tuple[Any, ...], value: Any, tag: Optional[Hashable] = None) -> Any:
        """Store ``value`` for these objects (and ``tag``); returns it."""
        if len(self._entries) >= self._limit:
            self._entries.clear()
        held = tuple(weakref.ref(x) for x in objects) if self._weak else tuple(objects)
        self._entries[(*map(id, objects), tag)] = (held, value)
        return value

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()
