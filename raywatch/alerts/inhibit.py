"""Inhibition: a firing *source* alert mutes *target* alerts that share its ``equal`` labels.

As in Alertmanager, an alert that matches both sides cannot mute itself.

>>> from raywatch.config import InhibitRuleConfig
>>> inh = Inhibitor([InhibitRuleConfig(source_matchers=['severity="critical"'],
...                                    target_matchers=['severity="warning"'], equal=["model"])])
>>> inh.update([({"alertname": "Down", "severity": "critical", "model": "fraud"}, "fp1")])
>>> inh.muted({"alertname": "Slow", "severity": "warning", "model": "fraud"}, "fp2")
True
>>> inh.muted({"alertname": "Slow", "severity": "warning", "model": "churn"}, "fp3")
False
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, Set, Tuple

from raywatch.expr import matches_all, parse_matchers

__all__ = ["Inhibitor"]


class _Rule:
    def __init__(self, cfg: Any):
        self.source = parse_matchers(cfg.source_matchers)
        self.target = parse_matchers(cfg.target_matchers)
        self.equal = tuple(cfg.equal)
        self.sources: Dict[Tuple[str, ...], Set[str]] = {}

    def key(self, labels: Mapping[str, str]) -> Tuple[str, ...]:
        return tuple(labels.get(k, "") for k in self.equal)


class Inhibitor:
    def __init__(self, rules: Iterable[Any]):
        self.rules: List[_Rule] = [_Rule(c) for c in rules]

    def update(self, firing: Iterable[Tuple[Mapping[str, str], str]]) -> None:
        """Set the firing alerts, as (labels, fingerprint) pairs, that may inhibit others."""
        if not self.rules:
            return
        for r in self.rules:
            r.sources = {}
        for labels, fp in firing:
            for r in self.rules:
                if matches_all(r.source, labels):
                    r.sources.setdefault(r.key(labels), set()).add(fp)

    def muted(self, labels: Mapping[str, str], fp: str) -> bool:
        for r in self.rules:
            if not r.sources or not matches_all(r.target, labels):
                continue
            fps = r.sources.get(r.key(labels))
            if fps and (len(fps) > 1 or fp not in fps):
                return True
        return False
