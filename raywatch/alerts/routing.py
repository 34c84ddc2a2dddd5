"""The routing tree, with Alertmanager's semantics.

An alert enters at the root and descends into the first child whose matchers it satisfies
(every matching child when that child sets ``continue: true``); the deepest matching nodes
receive it. Options not set on a node are inherited from its parent.

>>> from raywatch.config import RouteConfig
>>> root = Route(RouteConfig.model_validate({
...     "receiver": "slack", "group_by": ["alertname", "model"],
...     "routes": [{"matchers": ['severity="critical"'], "receiver": ["pagerduty"], "continue": True},
...                {"matchers": ['severity=~"critical|warning"'], "receiver": "slack"}]}))
>>> [r.receivers for r in root.match({"alertname": "X", "severity": "critical"})]
[['pagerduty'], ['slack']]
>>> [r.receivers for r in root.match({"alertname": "X", "severity": "info"})]
[['slack']]
>>> root.group_labels({"alertname": "X", "model": "fraud", "feature": "age"})
{'alertname': 'X', 'model': 'fraud'}
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

from raywatch.config import RouteConfig
from raywatch.expr import matches_all, parse_matchers

__all__ = ["Route", "DEFAULT_GROUP_BY", "DEFAULT_GROUP_WAIT", "DEFAULT_GROUP_INTERVAL", "DEFAULT_REPEAT_INTERVAL"]

DEFAULT_GROUP_BY = ("alertname", "app", "deployment", "model")
DEFAULT_GROUP_WAIT = 30.0
DEFAULT_GROUP_INTERVAL = 300.0
DEFAULT_REPEAT_INTERVAL = 4 * 3600.0


class Route:
    """One node of the routing tree (compiled from a ``RouteConfig``)."""

    def __init__(self, cfg: Any, parent: Optional["Route"] = None, index: int = 0,
                 default_receivers: Sequence[str] = ()):
        self.matchers = parse_matchers(cfg.matchers)
        own = cfg.receivers()
        if own:
            self.receivers: List[str] = list(own)
        elif parent is not None:
            self.receivers = list(parent.receivers)
        else:
            self.receivers = list(default_receivers)
        if cfg.group_by is not None:
            gb: Optional[tuple] = tuple(cfg.group_by)
        else:
            gb = parent._group_by if parent is not None else DEFAULT_GROUP_BY
        self._group_by = gb
        self.group_by_all = gb is not None and "..." in gb
        self.group_by = () if self.group_by_all else tuple(gb or ())

        def pick(name: str, default: float) -> float:
            v = getattr(cfg, name)
            if v is not None:
                return float(v)
            return getattr(parent, name) if parent is not None else default

        self.group_wait = pick("group_wait", DEFAULT_GROUP_WAIT)
        self.group_interval = pick("group_interval", DEFAULT_GROUP_INTERVAL)
        self.repeat_interval = pick("repeat_interval", DEFAULT_REPEAT_INTERVAL)
        self.continue_ = bool(cfg.continue_)
        me = "{" + ",".join(str(m) for m in self.matchers) + "}"
        self.key = me if parent is None else f"{parent.key}/{me}/{index}"
        self.routes = [Route(c, self, i) for i, c in enumerate(cfg.routes)]

    @classmethod
    def default(cls, receivers: Sequence[str]) -> "Route":
        """The tree used when a config has no ``route``: everything to ``receivers``."""
        return cls(RouteConfig(receiver=list(receivers)) if receivers else RouteConfig(), default_receivers=receivers)

    def match(self, labels: Mapping[str, str]) -> List["Route"]:
        if not matches_all(self.matchers, labels):
            return []
        out: List[Route] = []
        for child in self.routes:
            hit = child.match(labels)
            out.extend(hit)
            if hit and not child.continue_:
                break
        return out or [self]

    def group_labels(self, labels: Mapping[str, str]) -> Dict[str, str]:
        if self.group_by_all:
            return dict(labels)
        return {k: labels[k] for k in self.group_by if k in labels}

    def walk(self):
        yield self
        for c in self.routes:
            yield from c.walk()
