"""Aggregation groups and the notification pipeline: inhibit → silence → dedup → deliver.

Alerts that start firing or resolve are inserted into one aggregation group per matching
route and group label set. A new group is flushed ``group_wait`` after its first alert,
then every ``group_interval`` while it holds alerts. Each flush runs, per receiver:

1. **inhibit**: drop alerts muted by a firing source alert (:mod:`raywatch.alerts.inhibit`);
2. **silence**: drop alerts matched by an active silence (:mod:`raywatch.alerts.silence`);
3. **dedup**: compare with the notification log (what this receiver was last told for this
   group) and notify only when new alerts fire, alerts resolve (``send_resolved``), or
   ``repeat_interval`` has passed: Alertmanager's ``needsUpdate``;
4. **deliver**: hand the notification to the receiver's delivery worker (never blocks).

The dispatcher is pure logic on explicit timestamps; :class:`raywatch.alerts.AlertEngine`
drives it from its evaluation and from a timer thread.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Tuple

from raywatch.alerts.alert import FIRING, RESOLVED, Alert
from raywatch.alerts.inhibit import Inhibitor
from raywatch.sinks.notification import Notification
from raywatch.alerts.routing import Route
from raywatch.alerts.silence import Silences

log = logging.getLogger("raywatch.alerts.dispatch")

__all__ = ["Dispatcher", "NotifyEntry", "needs_update"]


@dataclass
class NotifyEntry:
    """The notification log's record of what one receiver was last told about one group."""

    firing: FrozenSet[str]
    resolved: FrozenSet[str]
    ts: float


def needs_update(entry: Optional[NotifyEntry], firing: FrozenSet[str], resolved: FrozenSet[str],
                 send_resolved: bool, repeat_interval: float, now: float) -> bool:
    """Alertmanager's dedup decision.

    >>> e = NotifyEntry(frozenset({"a"}), frozenset(), ts=0)
    >>> needs_update(None, frozenset({"a"}), frozenset(), True, 3600, 10)
    True
    >>> needs_update(e, frozenset({"a"}), frozenset(), True, 3600, 10)   # nothing new
    False
    >>> needs_update(e, frozenset({"a", "b"}), frozenset(), True, 3600, 10)  # b is new
    True
    >>> needs_update(e, frozenset(), frozenset({"a"}), False, 3600, 10)  # all resolved
    True
    >>> needs_update(e, frozenset({"a"}), frozenset(), True, 3600, 3600)  # repeat
    True
    """
    if entry is None:
        return bool(firing)
    if not firing <= entry.firing:
        return True
    if not firing:
        return bool(entry.firing)
    if send_resolved and not resolved <= entry.resolved:
        return True
    return entry.ts <= now - repeat_interval


@dataclass
class Group:
    route: Route
    key: str
    labels: Dict[str, str]
    alerts: Dict[str, Alert] = field(default_factory=dict)
    next_flush: float = 0.0
    flushed: bool = False


Submit = Callable[[str, Notification], None]


class Dispatcher:
    """Holds aggregation groups and the notification log; ``tick(now)`` flushes due groups."""

    def __init__(self, root: Route, inhibitor: Inhibitor, silences: Silences, submit: Submit,
                 send_resolved: Mapping[str, bool]):
        self.root = root
        self.inhibitor = inhibitor
        self.silences = silences
        self.submit = submit
        self.send_resolved = dict(send_resolved)
        self.groups: Dict[str, Group] = {}
        self.nflog: Dict[Tuple[str, str], NotifyEntry] = {}
        self._heap: List[Tuple[float, int, str]] = []
        self._seq = itertools.count()

    # ------------------------------------------------------------------ alerts in
    def insert(self, alerts: Iterable[Alert], now: float) -> None:
        """Add alerts that started firing or resolved (pending alerts are not routed)."""
        for a in alerts:
            if a.state not in (FIRING, RESOLVED):
                continue
            for route in self.root.match(a.labels):
                if not route.receivers:
                    continue
                glabels = route.group_labels(a.labels)
                key = route.key + ":{" + ",".join(f'{k}="{v}"' for k, v in sorted(glabels.items())) + "}"
                g = self.groups.get(key)
                if g is None:
                    if a.state == RESOLVED and not any(
                        (key, r) in self.nflog for r in route.receivers
                    ):
                        continue  # resolved before anyone was told: nothing to say
                    g = self.groups[key] = Group(route, key, glabels, next_flush=now + route.group_wait)
                    self._schedule(g)
                elif not g.flushed and a.starts_at + route.group_wait <= now and g.next_flush > now:
                    g.next_flush = now
                    self._schedule(g)
                g.alerts[a.fingerprint] = a

    def _schedule(self, g: Group) -> None:
        heapq.heappush(self._heap, (g.next_flush, next(self._seq), g.key))

    def next_deadline(self) -> Optional[float]:
        while self._heap:
            t, _, key = self._heap[0]
            g = self.groups.get(key)
            if g is None or g.next_flush != t:
                heapq.heappop(self._heap)
                continue
            return t
        return None

    # ------------------------------------------------------------------ flushing
    def tick(self, now: float) -> int:
        """Flush every group that is due at ``now``; returns the notifications submitted."""
        sent = 0
        while True:
            t = self.next_deadline()
            if t is None or t > now:
                return sent
            _, _, key = heapq.heappop(self._heap)
            g = self.groups[key]
            sent += self.flush(g, now)
            if g.alerts:
                g.next_flush = now + g.route.group_interval
                self._schedule(g)
            else:
                del self.groups[key]
                # forget log entries that say "nothing firing": a new alert is news either way
                for r in g.route.receivers:
                    e = self.nflog.get((key, r))
                    if e is not None and not e.firing:
                        del self.nflog[(key, r)]

    def flush_all(self, now: float) -> int:
        """Flush every group now, whatever its timers say (the engine is being retired);
        returns the notifications submitted."""
        for g in self.groups.values():
            g.next_flush = now
            self._schedule(g)
        return self.tick(now)

    def flush(self, g: Group, now: float) -> int:
        g.flushed = True
        alerts = list(g.alerts.values())
        # stage 1 + 2: inhibit, silence (muted alerts are left out of what the receivers see)
        visible: List[Alert] = []
        for a in alerts:
            if a.state == FIRING and self.inhibitor.muted(a.labels, a.fingerprint):
                continue
            if self.silences.silenced(a.labels, now):
                continue
            visible.append(a)
        sent = 0
        if visible:  # all muted: nothing to say, and the notification log stays as it was
            for receiver in g.route.receivers:
                sent += self._notify(g, receiver, visible, now)
        # resolved alerts have been told (or were muted): they leave the group
        for fp in [fp for fp, a in g.alerts.items() if a.state == RESOLVED]:
            del g.alerts[fp]
        return sent

    def _notify(self, g: Group, receiver: str, visible: Sequence[Alert], now: float) -> int:
        nkey = (g.key, receiver)
        entry = self.nflog.get(nkey)
        told = entry.firing if entry is not None else frozenset()
        firing = [a for a in visible if a.state == FIRING]
        # a resolved alert is news only to a receiver that was told it fired
        resolved = [a for a in visible if a.state == RESOLVED and a.fingerprint in told]
        fset = frozenset(a.fingerprint for a in firing)
        rset = frozenset(a.fingerprint for a in resolved)
        send_resolved = self.send_resolved.get(receiver, True)
        # stage 3: dedup against the notification log
        if not needs_update(entry, fset, rset, send_resolved, g.route.repeat_interval, now):
            return 0
        self.nflog[nkey] = NotifyEntry(fset, rset, now)
        body = firing + (resolved if send_resolved else [])
        if not body:
            return 0
        n = Notification.build(receiver, g.key, g.labels, [a.notification_entry() for a in body], created_at=now)
        # stage 4: hand over to the receiver's delivery worker (a queue put; never blocks)
        self.submit(receiver, n)
        return 1

    # ------------------------------------------------------------------ persistence
    def state(self) -> Dict[str, Any]:
        return {
            "groups": [
                {"key": g.key, "route": g.route.key, "labels": g.labels, "next_flush": g.next_flush,
                 "flushed": g.flushed, "alerts": [a.to_dict() for a in g.alerts.values()]}
                for g in self.groups.values()
            ],
            "nflog": [
                {"group": k[0], "receiver": k[1], "firing": sorted(e.firing), "resolved": sorted(e.resolved), "ts": e.ts}
                for k, e in self.nflog.items()
            ],
        }

    def restore(self, state: Mapping[str, Any], live: Mapping[str, Alert]) -> None:
        """Reload groups and the notification log. ``live`` maps fingerprints to the
        engine's restored alerts so that groups keep following their state."""
        routes = {r.key: r for r in self.root.walk()}
        for e in state.get("nflog", []):
            self.nflog[(e["group"], e["receiver"])] = NotifyEntry(frozenset(e["firing"]), frozenset(e["resolved"]), e["ts"])
        for gd in state.get("groups", []):
            route = routes.get(gd["route"])
            if route is None:
                continue
            g = Group(route, gd["key"], dict(gd["labels"]), next_flush=float(gd["next_flush"]), flushed=bool(gd["flushed"]))
            for ad in gd["alerts"]:
                a = live.get(ad["fingerprint"]) or Alert.from_dict(ad)
                g.alerts[a.fingerprint] = a
            if g.alerts:
                self.groups[g.key] = g
                self._schedule(g)
