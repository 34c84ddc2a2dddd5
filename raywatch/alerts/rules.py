"""Rule evaluation and the alert lifecycle (inactive → pending → firing → resolved).

:class:`RuleSet` indexes rules by metric name, so a series is only looked at by the rules
that name it. Within one metric name the evaluation is columnar: the series' values go
into one numpy array and the threshold comparison is one numpy operation. When that leaves
few candidates (the usual case: alerts are rare), matchers are checked on those rows only,
through a per-value cache. Otherwise each label a matcher reads is factorized once per
metric (codes + distinct values), each matcher is evaluated once per distinct value, and
the masks are combined in numpy. Only series whose condition holds, and alerts already
active, are then visited one by one.

Lifecycle, as Prometheus does it: a true condition makes an alert *pending*; after it has
held for ``for`` it is *firing* (``for: 0`` fires at once). A false condition (or a series
that is absent) drops a pending alert without notice and *resolves* a firing one, unless
``keep_firing_for`` has not yet passed since the condition last held. Resolved alerts are
kept for ``resolved_retention`` so that they can be notified and inspected.

>>> from raywatch.config import AlertRuleConfig
>>> rs = RuleSet([AlertRuleConfig(name="HighErrors", expr="error_rate > 0.1", **{"for": "1m"})])
>>> s = [Series("error_rate", {"model": "fraud"}, 0.3)]
>>> [(a.name, a.state) for a in rs.evaluate(s, now=0)]
[('HighErrors', 'pending')]
>>> [(a.name, a.state) for a in rs.evaluate(s, now=60)]
[('HighErrors', 'firing')]
>>> [(a.name, a.state) for a in rs.evaluate([], now=90)]
[('HighErrors', 'resolved')]
"""

from __future__ import annotations

import hashlib
import logging
import math
import operator
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from raywatch.alerts.alert import FIRING, PENDING, RESOLVED, Alert, Series, fingerprint
from raywatch.expr import Matcher, parse_matchers
from raywatch.series import SEGMENT, SEGMENT_LABELS
from raywatch.expr import Template

log = logging.getLogger("raywatch.alerts.rules")

__all__ = ["Rule", "RuleSet"]

_NP_OPS = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal,
           "==": np.equal, "!=": np.not_equal}
_PY_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
           "==": operator.eq, "!=": operator.ne}

_MATCH_CACHE_MAX = 4096


class Rule:
    """One compiled rule and its active alerts (keyed by the series' label set)."""

    def __init__(self, cfg: Any):
        self.cfg = cfg
        self.name: str = cfg.name
        self.metric: str = cfg.metric
        self.matchers: Tuple[Matcher, ...] = parse_matchers(cfg.matchers)
        if not {m.label for m in self.matchers} & set(SEGMENT_LABELS):  # the model-wide series only (issue 12)
            self.matchers += (Matcher(SEGMENT, "=", ""),)
        self.op: str = cfg.op
        self.threshold: float = float(cfg.threshold)
        self.for_: float = float(cfg.for_)
        self.keep_firing_for: float = float(cfg.keep_firing_for)
        self.severity: str = cfg.severity
        self.extra_labels: Dict[str, str] = dict(cfg.labels)
        self.templates: Dict[str, Template] = {k: Template(v) for k, v in cfg.annotations.items()}
        ident = f"{cfg.condition()}|{self.severity}|{sorted(self.extra_labels.items())}"
        self.key = f"{self.name}:{hashlib.sha256(ident.encode()).hexdigest()[:8]}"
        self.active: Dict[Tuple[Tuple[str, str], ...], Alert] = {}
        self._np_op = _NP_OPS[self.op]
        self._py_op = _PY_OPS[self.op]
        # matcher -> {label value: bool}; bounded so that unbounded label values cannot grow it
        self._match_cache: List[Dict[str, bool]] = [{} for _ in self.matchers]

    def holds(self, name: str, labels: Mapping[str, str], value: float) -> bool:
        """The condition for one sample, the slow scalar way (used by tests and baselines)."""
        if name != self.metric or not all(m.matches(labels) for m in self.matchers):
            return False
        return not math.isnan(value) and bool(self._py_op(value, self.threshold))

    def _matcher_table(self, i: int, uniques: Sequence[str]) -> np.ndarray:
        cache = self._match_cache[i]
        m = self.matchers[i]
        out = np.empty(len(uniques), dtype=bool)
        for j, u in enumerate(uniques):
            hit = cache.get(u)
            if hit is None:
                hit = m.match_value(u)
                if len(cache) < _MATCH_CACHE_MAX:
                    cache[u] = hit
            out[j] = hit
        return out

    def matches_row(self, labels: Mapping[str, str]) -> bool:
        """All matchers against one label set, through the per-value cache."""
        for cache, m in zip(self._match_cache, self.matchers):
            v = labels.get(m.label, "")
            hit = cache.get(v)
            if hit is None:
                hit = m.match_value(v)
                if len(cache) < _MATCH_CACHE_MAX:
                    cache[v] = hit
            if not hit:
                return False
        return True

    def _labels_for(self, series_labels: Mapping[str, str]) -> Dict[str, str]:
        labels = {k: str(v) for k, v in series_labels.items() if k != "__name__"}
        labels.update(self.extra_labels)
        labels["alertname"] = self.name
        labels["severity"] = self.severity
        return labels

    def _render(self, alert: Alert) -> None:
        if self.templates:
            alert.annotations = {k: t.render(alert.labels, alert.value) for k, t in self.templates.items()}

    def update(self, batch: Sequence[Series], hits: Iterable[int], values: np.ndarray, now: float,
               retention: float, changed: List[Alert], removed: Optional[List[Alert]] = None) -> None:
        """Advance every alert of this rule given the rows of ``batch`` whose condition holds."""
        active = self.active
        seen = set()
        for i in hits:
            s = batch[i]
            key = tuple(sorted(s.labels.items()))
            seen.add(key)
            v = float(values[i])
            a = active.get(key)
            if a is None or a.state == RESOLVED:
                labels = self._labels_for(s.labels)
                a = Alert(labels, {}, PENDING, v, now, fingerprint(labels), last_true_at=now, rule=self.key)
                active[key] = a
                if self.for_ <= 0:
                    a.state, a.fired_at = FIRING, now
                self._render(a)
                changed.append(a)
                continue
            a.value = v
            a.last_true_at = now
            if a.state == PENDING and now - a.active_at >= self.for_:
                a.state, a.fired_at = FIRING, now
                self._render(a)
                changed.append(a)
            elif self.templates:
                self._render(a)
        if len(seen) == len(active):
            return
        for key in [k for k in active if k not in seen]:
            a = active[key]
            if a.state == PENDING:
                del active[key]
                if removed is not None:
                    removed.append(a)
            elif a.state == FIRING:
                if self.keep_firing_for > 0 and now - a.last_true_at < self.keep_firing_for:
                    continue
                a.state, a.resolved_at = RESOLVED, now
                changed.append(a)
            elif now - (a.resolved_at or now) >= retention:
                del active[key]
                if removed is not None:
                    removed.append(a)


class RuleSet:
    """All rules, indexed by metric name; :meth:`evaluate` runs one evaluation.

    ``builtin`` rules (the :class:`~raywatch.alerts.watchdog.WatchdogRule`) read no series:
    each evaluation calls their ``tick(now, changed)``. They are kept, saved and restored
    with the others.
    """

    def __init__(self, rule_configs: Iterable[Any], *, resolved_retention: float = 900.0, builtin: Sequence[Any] = ()):
        self.builtin = list(builtin)
        self.rules: List[Any] = [Rule(c) for c in rule_configs] + self.builtin
        self.resolved_retention = float(resolved_retention)
        self.removed: List[Alert] = []  # alerts forgotten by the last evaluation
        self.by_metric: Dict[str, List[Rule]] = {}
        for r in self.rules:
            if not getattr(r, "builtin", False):
                self.by_metric.setdefault(r.metric, []).append(r)

    def evaluate(self, series: Iterable[Series], now: float) -> List[Alert]:
        """Advance every rule; returns the alerts whose state changed (new pending, firing,
        resolved), in rule order."""
        by_name: Dict[str, List[Series]] = {}
        index = self.by_metric
        for s in series:
            if s.name in index:
                lst = by_name.get(s.name)
                if lst is None:
                    by_name[s.name] = [s]
                else:
                    lst.append(s)
        changed: List[Alert] = []
        removed: List[Alert] = []
        self.removed = removed
        empty = np.empty(0, dtype=np.intp)
        for name, rules in index.items():
            batch = by_name.get(name)
            if not batch:
                for r in rules:
                    if r.active:
                        r.update((), empty, np.empty(0), now, self.resolved_retention, changed, removed)
                continue
            n = len(batch)
            values = np.fromiter((s.value for s in batch), dtype=float, count=n)
            columns: Dict[str, Tuple[np.ndarray, List[str]]] = {}
            for r in rules:
                with np.errstate(invalid="ignore"):
                    mask = r._np_op(values, r.threshold)
                if r.op == "!=":  # NaN (no data) satisfies no comparison
                    mask &= ~np.isnan(values)
                if r.matchers and 8 * int(np.count_nonzero(mask)) < n:
                    # sparse: the threshold already ruled out most series; match labels row by row
                    hits_list = [i for i in np.flatnonzero(mask).tolist() if r.matches_row(batch[i].labels)]
                    if hits_list or r.active:
                        r.update(batch, hits_list, values, now, self.resolved_retention, changed, removed)
                    continue
                for i, m in enumerate(r.matchers):
                    col = columns.get(m.label)
                    if col is None:
                        codes_of: Dict[str, int] = {}
                        lab = m.label
                        codes = np.fromiter(
                            (codes_of.setdefault(s.labels.get(lab, ""), len(codes_of)) for s in batch),
                            dtype=np.intp, count=n)
                        col = columns[lab] = (codes, list(codes_of))
                    mask &= r._matcher_table(i, col[1])[col[0]]
                hits = np.flatnonzero(mask)
                if len(hits) or r.active:
                    r.update(batch, hits.tolist(), values, now, self.resolved_retention, changed, removed)
        for b in self.builtin:
            b.tick(now, changed)
        return changed

    def alerts(self) -> List[Alert]:
        return [a for r in self.rules for a in r.active.values()]

    def state(self) -> Dict[str, List[Dict[str, Any]]]:
        return {r.key: [{"series": dict(k), "alert": a.to_dict()} for k, a in r.active.items()]
                for r in self.rules if r.active}

    def restore(self, state: Mapping[str, Sequence[Mapping[str, Any]]]) -> int:
        """Reload active alerts saved by :meth:`state`; alerts of rules that no longer exist
        are dropped (and counted in the return value's complement)."""
        by_key = {r.key: r for r in self.rules}
        n = 0
        for key, alerts in state.items():
            r = by_key.get(key)
            if r is None:
                log.info("dropping %d saved alert(s) of rule %s, which is no longer configured", len(alerts), key)
                continue
            for d in alerts:
                r.active[tuple(sorted(d["series"].items()))] = Alert.from_dict(d["alert"])
                n += 1
        return n
