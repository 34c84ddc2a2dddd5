"""Where the remediation controller keeps a model's audit trail.

The trail of a model lives in the SQLite file of the stats actor that monitors it (the
``audit`` table of its store, beside the model's history: ``raywatch report`` draws the
decisions on its timeline, ``raywatch audit`` reads them back, retention never prunes them).
The stats actor says so when it registers the model (``stats=(name, namespace)``), and the
controller writes through :class:`StatsTrail`: ``record_audit`` answers once the records are
committed, so nothing is acknowledged before it is durable. A model registered without one (a
stats actor in memory, or a test that registers by hand) is kept in the controller's own
file (:class:`LocalTrail`, ``~/.raywatch/raywatch-remediation.sqlite`` by default).

Both offer the same three coroutines: ``append(events)``, ``events(model, since, decision=)``
and ``path()``.
"""

from __future__ import annotations

import asyncio
from typing import Any, List, Optional, Sequence

from raywatch.aggregate.audit import AuditEvent, AuditLog

__all__ = ["LocalTrail", "StatsTrail"]


class LocalTrail:
    """The controller's own SQLite file (an :class:`~raywatch.aggregate.audit.AuditLog`)."""

    def __init__(self, log: AuditLog):
        self.log = log

    async def append(self, events: Sequence[AuditEvent]) -> None:
        self.log.append(events)  # a local commit: milliseconds

    async def events(self, model: Optional[str] = None, since: Optional[float] = None, *,
                     decision: Optional[str] = None) -> List[AuditEvent]:
        return self.log.events(model, since, decision=decision)

    async def path(self) -> str:
        return self.log.path


class StatsTrail:
    """The ``audit`` table of a stats actor's store, through its ``record_audit`` and
    ``audit`` methods (the actor found by name, again after it restarted)."""

    def __init__(self, name: str, namespace: str, timeout: float = 30.0):
        self.name, self.namespace, self.timeout = name, namespace, float(timeout)
        self._handle: Any = None

    def _actor(self) -> Any:
        if self._handle is None:
            import ray

            self._handle = ray.get_actor(self.name, namespace=self.namespace)
        return self._handle

    async def _call(self, method: str, *args: Any) -> Any:
        try:
            return await asyncio.wait_for(getattr(self._actor(), method).remote(*args), self.timeout)
        except Exception:
            self._handle = None  # looked up again next time (the actor may have restarted)
            raise

    async def append(self, events: Sequence[AuditEvent]) -> None:
        await self._call("record_audit", [e.to_data() for e in events])

    async def events(self, model: Optional[str] = None, since: Optional[float] = None, *,
                     decision: Optional[str] = None) -> List[AuditEvent]:
        return [AuditEvent.from_data(d) for d in await self._call("audit", model, since, decision)]

    async def path(self) -> str:
        info = await self._call("info")
        return str(info.get("sqlite_path") or f"{self.namespace}/{self.name}")

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, StatsTrail) and (self.name, self.namespace) == (other.name, other.namespace)

    def __hash__(self) -> int:
        return hash((self.name, self.namespace))
