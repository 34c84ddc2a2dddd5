"""The stats actor's link to the remediation controller, and its payload-log chores (issue 14).

:class:`ControllerLink` is driven by :class:`~raywatch.actor.actor.StatsActor` from its event
loop and never waits on anything there:

* **Registration.** A model whose settings have ``remediation:`` is registered with the
  controller its ``remediation`` sink names (created when it does not exist yet: a detached
  actor with no CPU of its own, :func:`raywatch.remediate.shell.controller.get_or_create`),
  with the stats actor's name when it has a SQLite file, so the model's audit trail is kept
  there. Fire and forget; repeated every :data:`REREGISTER_INTERVAL` seconds, so a
  restarted controller learns its models again.
* **The controller's figures.** Its series (steps by kind, pending approvals), its status and
  the rollout routers' payload-log counters are asked for at each evaluation and taken when
  the answer is there (``ray.wait`` with no timeout); the exposition and the status show them.
* **Payload-log files.** Labels queued for the payload logs are written when due, and the
  logs' retention runs hourly — both in the default executor, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Dict, List, Optional, Tuple

from raywatch.aggregate.core import StatsCore

__all__ = ["ControllerLink", "REREGISTER_INTERVAL", "RETENTION_INTERVAL"]

log = logging.getLogger("raywatch.actor.remediation")

REREGISTER_INTERVAL = 30.0
RETENTION_INTERVAL = 3600.0


def _controller_of(settings: Any) -> Tuple[str, str]:
    """``(name, namespace)`` of the controller a model's ``remediation`` sink names."""
    from raywatch.remediate.shell.controller import DEFAULT_NAME, DEFAULT_NAMESPACE

    for s in settings.sinks:
        if s.type == "remediation":
            return s.controller, s.namespace
    return DEFAULT_NAME, DEFAULT_NAMESPACE


class ControllerLink:
    """See the module docstring. ``name``/``namespace``: the stats actor's own."""

    def __init__(self, core: StatsCore, name: str, namespace: str):
        self.core = core
        self.name, self.namespace = name, namespace
        self._registered_at = 0.0
        self._retention_at = time.monotonic()
        self._asks: Dict[Tuple[str, str], List[Any]] = {}  # controller → [series, status, payload] refs waiting
        self._flushing: Optional[asyncio.Future] = None
        self._retaining: Optional[asyncio.Future] = None

    # ------------------------------------------------------------------ registration
    def register(self, model_key: Optional[str] = None) -> int:
        """Register the models that remediate (one, or all) with their controllers; returns
        how many calls were sent. Never raises (a failure is counted)."""
        from raywatch.remediate.shell import controller as ctl

        n = 0
        stats = (self.name, self.namespace) if self.core.store is not None else None
        for key, settings in self.core.remediation.settings(self.core.models).items():
            if model_key is not None and key != model_key:
                continue
            name, namespace = _controller_of(settings)
            try:
                handle = ctl.get_or_create(name=name, namespace=namespace, wait=False)
                handle.register.remote(key, settings, stats)  # fire and forget
                n += 1
            except Exception as exc:  # Ray refusing the actor: counted, tried again later
                ctl.forget(name, namespace)
                self.core.fail("remediation.register", exc)
        return n

    # ------------------------------------------------------------------ each evaluation
    def tick(self) -> None:
        """From the actor's evaluation loop: re-register when due, collect the controllers'
        answers, and start the payload-log writes that are due in the executor."""
        now = time.monotonic()
        remediating = self.core.remediation.settings(self.core.models)
        if remediating and now - self._registered_at >= REREGISTER_INTERVAL:
            self._registered_at = now
            self.register()
        if remediating:
            self._poll(remediating)
        loop = asyncio.get_running_loop()
        rem = self.core.remediation
        if rem.due() and (self._flushing is None or self._flushing.done()):
            self._flushing = loop.run_in_executor(None, rem.flush)
        if now - self._retention_at >= RETENTION_INTERVAL and (self._retaining is None or self._retaining.done()):
            self._retention_at = now
            self._retaining = loop.run_in_executor(None, rem.enforce_retention, dict(self.core.models))

    def _poll(self, remediating: Dict[str, Any]) -> None:
        import ray

        from raywatch.remediate.shell import controller as ctl

        targets = {_controller_of(s) for s in remediating.values()}
        series: List[Any] = []
        status: Dict[str, Any] = {}
        fresh = False
        for target in targets:
            refs = self._asks.get(target)
            if refs is not None:
                ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
                if len(ready) < len(refs):
                    continue  # not answered yet: next time
                try:
                    s, st, payload = ray.get(refs, timeout=0)
                    series.extend(s)
                    status[f"{target[1]}/{target[0]}"] = st
                    self.core.remediation.note_routers(payload)
                    fresh = True
                except Exception as exc:  # the controller died: asked again (and re-created) later
                    ctl.forget(*target)
                    self.core.fail("remediation.poll", exc)
            try:
                handle = ctl.get_or_create(name=target[0], namespace=target[1], wait=False)
                self._asks[target] = [handle.series.remote(), handle.status.remote(), handle.payload_counters.remote()]
            except Exception as exc:
                self._asks.pop(target, None)
                self.core.fail("remediation.poll", exc)
        if fresh:
            merged = next(iter(status.values())) if len(status) == 1 else {"controllers": status}
            self.core.remediation.note_controller(series, merged)

    async def close(self) -> None:
        """Write every label still waiting (before a planned stop)."""
        await asyncio.get_running_loop().run_in_executor(None, lambda: self.core.remediation.flush(force=True))
