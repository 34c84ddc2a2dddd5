"""Aggregation groups and the notification pipeline: inhibit → silence → dedup → deliver.

Alerts that start firing or resolve are inserted into one aggregation group per matching
route and group label set. A new group is flushed ``group_wait`` after its first alert,
then every ``group_interval`` while it holds alerts. Each flush runs, per receiver:

1. **inhibit**: drop alerts muted by a firing source alert (:mod:`raywatch.alerts.inhibit`);
2. **silence**: drop alerts matched by an active silence (:mod:`raywatch.alerts.silence`);
3. **dedup**: compare with the notification log (what this receiver last *accepted* for
   this group) and notify only when new alerts fire, alerts resolve (``send_resolved``), or
   ``repeat_interval`` has passed: Alertmanager's ``needsUpdate``;
4. **deliver**: hand the notification to the receiver's delivery worker (never blocks).

As in Alertmanager (``RetryStage`` then ``SetNotifiesStage``), a notification enters the
notification log only once the receiver accepted it (:meth:`Dispatcher.delivered`, called
from the delivery worker). Until then it is *pending*: a flush that has the same news again
leaves it on its way; a flush with other news (or with nothing left to say, e.g. its alerts
resolved before anyone was told) supersedes it. A failed notification leaves the log as it
was, so the group's next flush — every ``group_interval`` — sends the group's state again,
until a receiver accepts it. A resolved alert leaves its group only once no receiver still
has to hear it resolved and nothing of the group is in flight, so a failed "resolved" is
retried too; a group is forgotten only when it holds no alert, and then
``on_group_closed`` is told (the engine settles the group's dead letters).

The dispatcher is pure logic on explicit timestamps; :class:`raywatch.alerts.AlertEngine`
drives it from its evaluation and from a timer thread.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from raywatch.alerts.alert import FIRING, RESOLVED, Alert
from raywatch.alerts.inhibit import Inhibitor
from raywatch.sinks.notification import Notification
from raywatch.alerts.routing import Route
from raywatch.alerts.silence import Silences

log = logging.getLogger("raywatch.alerts.dispatch")

__all__ = ["Dispatcher", "NotifyEntry", "Pending", "needs_update"]


@dataclass
class NotifyEntry:
    """The notification log's record of what one receiver last accepted about one group."""

    firing: FrozenSet[str]
    resolved: FrozenSet[str]
    ts: float


@dataclass
class Pending:
    """The latest notification handed to a receiver's worker and not yet accepted."""

    id: str
    firing: FrozenSet[str]
    resolved: FrozenSet[str]
    ts: float


def _sets(n: Notification) -> Tuple[FrozenSet[str], FrozenSet[str]]:
    return (frozenset(a["fingerprint"] for a in n.alerts if a["status"] == FIRING),
            frozenset(a["fingerprint"] for a in n.alerts if a["status"] == RESOLVED))


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
Supersede = Callable[[str, str], None]
GroupClosed = Callable[[str, Sequence[str], float], None]


class Dispatcher:
    """Holds aggregation groups and the notification log; ``tick(now)`` flushes due groups.

    ``submit(receiver, notification)`` hands a notification over; ``supersede(receiver,
    notification id)`` withdraws a pending one; ``on_group_closed(group key, receivers,
    now)`` is told when a group is forgotten. :meth:`delivered` and :meth:`undelivered`
    take the outcome of each submitted notification.
    """

    def __init__(self, root: Route, inhibitor: Inhibitor, silences: Silences, submit: Submit,
                 send_resolved: Mapping[str, bool], supersede: Optional[Supersede] = None,
                 on_group_closed: Optional[GroupClosed] = None):
        self.root = root
        self.inhibitor = inhibitor
        self.silences = silences
        self.submit = submit
        self.supersede = supersede or (lambda receiver, nid: None)
        self.on_group_closed = on_group_closed or (lambda key, receivers, now: None)
        self.send_resolved = dict(send_resolved)
        self.groups: Dict[str, Group] = {}
        self.nflog: Dict[Tuple[str, str], NotifyEntry] = {}
        self.pending: Dict[Tuple[str, str], Pending] = {}
        self.inflight: Dict[Tuple[str, str], Set[str]] = {}  # every submitted id without an outcome yet
        self._heap: List[Tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._now = float("-inf")  # the latest time a flush or an insert ran at

    # ------------------------------------------------------------------ alerts in
    def insert(self, alerts: Iterable[Alert], now: float) -> None:
        """Add alerts that started firing or resolved (pending alerts are not routed)."""
        self._now = max(self._now, now)
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
        self._now = max(self._now, now)
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
                self._close(g, now)

    def _close(self, g: Group, now: float) -> None:
        del self.groups[g.key]
        # forget log entries that say "nothing firing": a new alert is news either way
        for r in g.route.receivers:
            e = self.nflog.get((g.key, r))
            if e is not None and not e.firing:
                del self.nflog[(g.key, r)]
        self.on_group_closed(g.key, list(g.route.receivers), now)

    def _prune(self, g: Group, shown: Optional[Set[str]] = None) -> None:
        """Resolved alerts leave the group once no receiver has to hear them resolved any more
        (it was told, never told, or does not want resolves; with ``shown``, the alerts a flush
        showed: muted ones have nothing to tell) and nothing of the group is in flight."""
        receivers = g.route.receivers
        if any(self.inflight.get((g.key, r)) for r in receivers):
            return
        owed: Set[str] = set()
        for r in receivers:
            e = self.nflog.get((g.key, r))
            if e is not None and self.send_resolved.get(r, True):
                owed |= e.firing
        if shown is not None:
            owed &= shown
        for fp in [fp for fp, a in g.alerts.items() if a.state == RESOLVED and fp not in owed]:
            del g.alerts[fp]

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
        # resolved alerts still owed to a receiver stay for the next flush (a failed resolve is retried)
        self._prune(g, {a.fingerprint for a in visible})
        return sent

    def _notify(self, g: Group, receiver: str, visible: Sequence[Alert], now: float) -> int:
        nkey = (g.key, receiver)
        entry = self.nflog.get(nkey)
        told = entry.firing if entry is not None else frozenset()
        firing = [a for a in visible if a.state == FIRING]
        # a resolved alert is news only to a receiver that accepted a notification saying it fired
        resolved = [a for a in visible if a.state == RESOLVED and a.fingerprint in told]
        fset = frozenset(a.fingerprint for a in firing)
        rset = frozenset(a.fingerprint for a in resolved)
        send_resolved = self.send_resolved.get(receiver, True)
        pending = self.pending.get(nkey)
        # stage 3: dedup against the notification log
        if not needs_update(entry, fset, rset, send_resolved, g.route.repeat_interval, now):
            if pending is not None:  # what is on its way is no longer news
                self._withdraw(nkey, receiver, pending)
            return 0
        if pending is not None:
            if pending.firing == fset and pending.resolved == rset:
                return 0  # the same news is already on its way
            self._withdraw(nkey, receiver, pending)
        body = firing + (resolved if send_resolved else [])
        if not body:
            # only resolved alerts, which this receiver does not want: logged as told (Alertmanager does so)
            self.nflog[nkey] = NotifyEntry(fset, rset, now)
            return 0
        n = Notification.build(receiver, g.key, g.labels, [a.notification_entry() for a in body], created_at=now)
        self.pending[nkey] = Pending(n.id, fset, rset, now)
        self.inflight.setdefault(nkey, set()).add(n.id)
        # stage 4: hand over to the receiver's delivery worker (a queue put; never blocks)
        self.submit(receiver, n)
        return 1

    def _withdraw(self, nkey: Tuple[str, str], receiver: str, pending: Pending) -> None:
        del self.pending[nkey]
        self.supersede(receiver, pending.id)

    # ------------------------------------------------------------------ outcomes
    def track(self, n: Notification) -> None:
        """A notification submitted outside a flush (re-queued from a saved outbox) is
        pending like one a flush made."""
        nkey = (n.group_key, n.receiver)
        fset, rset = _sets(n)
        p = self.pending.get(nkey)
        if p is None or p.ts <= n.created_at:
            self.pending[nkey] = Pending(n.id, fset, rset, n.created_at)
        self.inflight.setdefault(nkey, set()).add(n.id)

    def _settle(self, n: Notification) -> Optional[Pending]:
        nkey = (n.group_key, n.receiver)
        ids = self.inflight.get(nkey)
        if ids is not None:
            ids.discard(n.id)
            if not ids:
                del self.inflight[nkey]
        p = self.pending.get(nkey)
        if p is not None and p.id == n.id:
            return self.pending.pop(nkey)
        return None

    def delivered(self, n: Notification) -> None:
        """The receiver accepted ``n``: the notification log records what it was told."""
        p = self._settle(n)
        fset, rset = (p.firing, p.resolved) if p is not None else _sets(n)
        nkey = (n.group_key, n.receiver)
        entry = self.nflog.get(nkey)
        if entry is None or entry.ts <= n.created_at:
            self.nflog[nkey] = NotifyEntry(fset, rset, n.created_at)
        self._after(n)

    def undelivered(self, n: Notification) -> None:
        """``n`` failed or was superseded: the log stays as it was, so the next flush retries."""
        self._settle(n)
        self._after(n)

    def _after(self, n: Notification) -> None:
        """Once nothing of a group is in flight, resolved alerts no receiver is owed leave it
        at once (not a group_interval later), and an empty group is forgotten."""
        g = self.groups.get(n.group_key)
        if g is None or any(a.state == FIRING for a in g.alerts.values()):
            return
        self._prune(g)
        if not g.alerts:
            self._close(g, max(self._now, n.created_at))

    # ------------------------------------------------------------------ a model moving to another shard
    def take(self, fingerprints: Set[str], now: float) -> List[Dict[str, Any]]:
        """Take the alerts ``fingerprints`` out without a word (their model moves to another
        stats actor shard, which goes on from what the receivers were told): out of their
        groups (a group left empty is forgotten) and out of the notification log. Returns the
        log's entries about them, in :meth:`state`'s ``nflog`` layout, for :meth:`give`."""
        carried = []
        for nkey, e in list(self.nflog.items()):
            firing, resolved = e.firing & fingerprints, e.resolved & fingerprints
            if firing or resolved:
                carried.append({"group": nkey[0], "receiver": nkey[1], "firing": sorted(firing),
                                "resolved": sorted(resolved), "ts": e.ts})
                self.nflog[nkey] = NotifyEntry(e.firing - fingerprints, e.resolved - fingerprints, e.ts)
        for g in list(self.groups.values()):
            gone = fingerprints & g.alerts.keys()
            for fp in gone:
                del g.alerts[fp]
            if gone and not g.alerts:
                self._close(g, max(self._now, now))
        return carried

    def give(self, entries: Sequence[Mapping[str, Any]], alerts: Sequence[Alert], now: float) -> None:
        """Take over alerts another shard's dispatcher :meth:`take` gave up: their log entries
        join this log (what a receiver was told stays told: no second "firing"), then the
        alerts join their groups (a resolve still owed is sent; later changes as usual)."""
        for d in entries:
            nkey = (str(d["group"]), str(d["receiver"]))
            firing, resolved = frozenset(map(str, d.get("firing") or ())), frozenset(map(str, d.get("resolved") or ()))
            e = self.nflog.get(nkey)
            self.nflog[nkey] = (NotifyEntry(firing, resolved, float(d["ts"])) if e is None
                                else NotifyEntry(e.firing | firing, e.resolved | resolved, e.ts))
        self.insert(alerts, now)

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
