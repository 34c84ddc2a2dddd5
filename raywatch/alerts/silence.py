"""Silences: label matchers that mute alerts between two instants (UTC epoch seconds).

>>> s = Silences()
>>> sid = s.add(['model="fraud"'], starts_at=100, ends_at=200, comment="deploying")
>>> s.silenced({"model": "fraud"}, now=150) == sid, s.silenced({"model": "fraud"}, now=250)
(True, None)
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from raywatch.expr import Matcher, matches_all, parse_matchers

__all__ = ["Silence", "Silences"]


@dataclass
class Silence:
    id: str
    matchers: Tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    comment: str = ""
    created_by: str = ""
    from_config: bool = field(default=False, compare=False)

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def to_dict(self) -> Dict[str, Any]:
        return {"id": self.id, "matchers": [str(m) for m in self.matchers], "starts_at": self.starts_at,
                "ends_at": self.ends_at, "comment": self.comment, "created_by": self.created_by}


class Silences:
    def __init__(self) -> None:
        self._items: Dict[str, Silence] = {}

    def add(self, matchers: Sequence[str] | str, *, ends_at: float, starts_at: Optional[float] = None,
            comment: str = "", created_by: str = "", id: Optional[str] = None, from_config: bool = False) -> str:
        ms = parse_matchers(matchers)
        if not ms:
            raise ValueError("a silence needs at least one matcher")
        start = time.time() if starts_at is None else float(starts_at)
        if float(ends_at) <= start:
            raise ValueError("a silence must end after it starts")
        if id is None:
            ident = f"{[str(m) for m in ms]}|{start}|{ends_at}|{comment}|{created_by}"
            id = hashlib.sha256(ident.encode()).hexdigest()[:16]
        self._items[id] = Silence(id, ms, start, float(ends_at), comment, created_by, from_config)
        return id

    def remove(self, silence_id: str) -> bool:
        return self._items.pop(silence_id, None) is not None

    def silenced(self, labels: Mapping[str, str], now: float) -> Optional[str]:
        """The id of an active silence that mutes ``labels``, or None."""
        for s in self._items.values():
            if s.active(now) and matches_all(s.matchers, labels):
                return s.id
        return None

    def expire(self, now: float) -> None:
        for sid in [k for k, s in self._items.items() if s.ends_at <= now]:
            del self._items[sid]

    def list(self) -> List[Silence]:
        return sorted(self._items.values(), key=lambda s: (s.starts_at, s.id))

    def state(self) -> List[Dict[str, Any]]:
        return [s.to_dict() for s in self.list() if not s.from_config]

    def restore(self, items: Iterable[Mapping[str, Any]]) -> None:
        for d in items:
            self.add(d["matchers"], starts_at=d["starts_at"], ends_at=d["ends_at"], comment=d.get("comment", ""),
                     created_by=d.get("created_by", ""), id=d["id"])
