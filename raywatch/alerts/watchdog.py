"""The Watchdog: raywatch's own heartbeat, an alert that always fires.

The Prometheus convention (kube-prometheus' ``Watchdog``, ``vector(1)``): while the alerting
engine evaluates, one alert named ``Watchdog`` fires, with severity ``none`` by default. It
is routed and repeated like any alert, so a receiver that stops hearing it knows raywatch
itself went silent (the stats actor is down, or its notifications are blocked). Configure
it with ``alerting.watchdog`` (:class:`~raywatch.config.WatchdogConfig`): a ``receiver`` of
its own, its ``repeat_interval``, extra labels, or ``watchdog: false``.

It never resolves: an engine that is replaced (its configuration changed) forgets it
without a "resolved" notification, and its successor fires the same alert (same labels,
same fingerprint) again; a dead man's switch relies on its absence, not on a resolve.

>>> from raywatch.config import WatchdogConfig
>>> w = WatchdogRule(WatchdogConfig(labels={"team": "ml"}))
>>> changed = []
>>> w.tick(100.0, changed)
>>> [(a.name, a.state, a.labels["severity"], a.labels["team"]) for a in changed]
[('Watchdog', 'firing', 'none', 'ml')]
>>> w.tick(160.0, changed); len(changed)   # still firing: no change
1
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

from raywatch.alerts.alert import FIRING, Alert, fingerprint
from raywatch.config import WATCHDOG_ALERTNAME, RouteConfig

__all__ = ["WatchdogRule", "WATCHDOG_KEY", "watchdog_route"]

WATCHDOG_KEY = WATCHDOG_ALERTNAME + ":builtin"
"""The rule key of the Watchdog (in the engine's saved state)."""


class WatchdogRule:
    """A built-in rule with the interface :class:`~raywatch.alerts.rules.RuleSet` keeps for
    its rules (``key``, ``name``, ``active``), whose one alert fires at every evaluation."""

    builtin = True

    def __init__(self, cfg: Any):
        self.cfg = cfg
        self.name = WATCHDOG_ALERTNAME
        self.key = WATCHDOG_KEY
        self.labels: Dict[str, str] = dict(cfg.labels, alertname=WATCHDOG_ALERTNAME, severity=cfg.severity)
        self.annotations: Dict[str, str] = dict(cfg.annotations)
        self.active: Dict[Tuple[Tuple[str, str], ...], Alert] = {}

    def tick(self, now: float, changed: List[Alert]) -> None:
        a = self.active.get(())
        if a is None or a.state != FIRING:
            a = Alert(dict(self.labels), dict(self.annotations), FIRING, 1.0, now, fingerprint(self.labels),
                      fired_at=now, last_true_at=now, rule=self.key)
            self.active[()] = a
            changed.append(a)
        else:
            a.last_true_at = now


def watchdog_route(cfg: Any, receivers: List[str]) -> RouteConfig:
    """The route that sends the Watchdog to its own ``receiver``: first among the root's
    children, grouped by alertname alone, flushed and repeated every ``repeat_interval``."""
    every = float(cfg.repeat_interval)
    return RouteConfig(receiver=list(receivers), matchers=[f'alertname="{WATCHDOG_ALERTNAME}"'], group_by=["alertname"],
                       group_wait=0.0, group_interval=every, repeat_interval=every)
