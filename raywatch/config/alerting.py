"""Alerting: rules (on the series of the metric catalogue), the routing tree, inhibition,
silences, and the sinks that deliver (see ``raywatch.alerts``).

Matcher strings use Prometheus/Alertmanager syntax and annotation templates use
Prometheus' ``{{ $value }}`` / ``{{ $labels.NAME }}``, both from :mod:`raywatch.expr`. A
rule's metric and the labels its matchers read are checked against the metric catalogue
(:mod:`raywatch.series`) when the config is loaded, so a misspelled rule is an error that
names the closest known names, rather than a rule that never fires:

>>> validate(AlertingConfig, {"rules": [{"name": "Slow", "expr": 'drift_scroe{modle="fraud"} > 1'}]}, "m.yaml")
Traceback (most recent call last):
...
raywatch.config.base.ConfigError: m.yaml: rules[0].expr: unknown metric 'drift_scroe' (did you mean drift_score?)
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Annotated, Any, Dict, Iterable, List, Literal, Mapping, Optional, Union

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from raywatch import series
from raywatch.config.base import Duration, PositiveDuration, StrictModel, validate
from raywatch.config.sinks import DIRECT_SINK_TYPES, SinkConfig
from raywatch.expr import Selector, Template, number_text, parse_condition, parse_matchers

__all__ = [
    "Severity", "Matchers", "AlertRuleConfig", "RouteConfig", "InhibitRuleConfig", "SilenceConfig", "WatchdogConfig",
    "AlertingConfig", "WATCHDOG_ALERTNAME",
]

Severity = Literal["critical", "error", "warning", "info"]
_ALERTNAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _check_matchers(value: Any) -> List[str]:
    if isinstance(value, Mapping):  # {label: value} shorthand for equality matchers
        value = [f"{k}={json.dumps(str(v))}" for k, v in value.items()]
    if isinstance(value, str):
        value = [str(m) for m in parse_matchers(value)]
    if not isinstance(value, list):
        raise ValueError("expected a list of matchers such as ['severity=\"critical\"']")
    parse_matchers([str(v) for v in value])
    return [str(v) for v in value]


Matchers = Annotated[List[str], BeforeValidator(_check_matchers)]
"""Label matchers: a list such as ``['severity="critical"', 'model=~"fraud.*"']``, a
``'{a="b"}'`` string, or a ``{label: value}`` mapping of equality matchers."""


def _check_series(name: str, labels: Iterable[str]) -> None:
    """The rule's metric must be in the catalogue and its matchers read only its labels."""
    problems = series.check_selector(name, labels)
    if problems:
        raise ValueError("; ".join(problems))


class AlertRuleConfig(StrictModel):
    """One alert rule: ``expr`` (``metric{matchers} OP threshold``) or its parts.

    The rule yields one alert per series that matches; the alert's labels are the
    series' labels plus ``alertname``, ``severity`` and ``labels``.
    """

    name: str = Field(..., description="alertname")
    expr: Optional[str] = None
    metric: Optional[str] = None
    matchers: Matchers = Field(default_factory=list)
    op: Optional[Literal[">", ">=", "<", "<=", "==", "!="]] = None
    threshold: Optional[float] = None
    for_: Duration = Field(0.0, alias="for")
    keep_firing_for: Duration = 0.0
    severity: Severity = "warning"
    labels: Dict[str, str] = Field(default_factory=dict)
    annotations: Dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _ALERTNAME_RE.match(v):
            raise ValueError(f"expected an alert name of letters, digits and '_' (like 'HighLatency'), got {v!r}")
        return v

    @field_validator("expr")
    @classmethod
    def _expr(cls, v: Optional[str]) -> Optional[str]:
        if v is not None:
            sel, _, _ = parse_condition(v)
            _check_series(sel.name, sel.label_names)
        return v

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: Optional[str]) -> Optional[str]:
        if v is not None:
            sel = Selector.parse(v)
            if sel.matchers:
                raise ValueError(f"expected a metric name (matchers go under 'matchers'), got {v!r}")
            _check_series(sel.name, ())
        return v

    @field_validator("matchers")
    @classmethod
    def _matcher_labels(cls, v: List[str], info: ValidationInfo) -> List[str]:
        metric = info.data.get("metric")
        if v and metric:
            _check_series(metric, [m.label for m in parse_matchers(v)])
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: Dict[str, str]) -> Dict[str, str]:
        for k in v:
            if not _ALERTNAME_RE.match(k):
                raise ValueError(f"bad label name {k!r}")
            if k in ("alertname", "severity"):
                raise ValueError(f"label {k!r} is set by the rule itself (use name/severity)")
        return v

    @field_validator("annotations")
    @classmethod
    def _annotations(cls, v: Dict[str, str]) -> Dict[str, str]:
        for k, text in v.items():
            try:
                Template(text)
            except ValueError as exc:
                raise ValueError(f"annotation {k!r}: {exc}") from None
        return v

    @model_validator(mode="after")
    def _condition(self) -> "AlertRuleConfig":
        if self.expr is not None:
            sel, op, thr = parse_condition(self.expr)
            parts = (self.metric, self.op, self.threshold)
            if parts != (None, None, None) or self.matchers:
                # a dumped config carries both; they must agree
                if parts != (sel.name, op, thr) or parse_matchers(self.matchers) != sel.matchers:
                    raise ValueError("give either expr or metric/matchers/op/threshold, not both")
            self.metric, self.op, self.threshold = sel.name, op, thr
            self.matchers = [str(m) for m in sel.matchers]
        else:
            missing = [f for f in ("metric", "op", "threshold") if getattr(self, f) is None]
            if missing:
                raise ValueError(f"expected expr (e.g. 'error_rate > 0.05') or all of metric, op, threshold; missing {', '.join(missing)}")
        return self

    def _derived_fields(self) -> tuple:
        """Fields computed from ``expr`` (left out when the rule is written out)."""
        return ("metric", "matchers", "op", "threshold") if self.expr is not None else ()

    def selector(self) -> Selector:
        """The rule's series selector (metric and matchers)."""
        return Selector(self.metric, parse_matchers(self.matchers))

    def condition(self) -> str:
        """The rule's condition as one ``selector OP threshold`` string; the threshold is
        written so that it reads back exactly."""
        sel = self.metric + ("{" + ", ".join(self.matchers) + "}" if self.matchers else "")
        return f"{sel} {self.op} {number_text(self.threshold)}"


class RouteConfig(StrictModel):
    """A node of the routing tree, with Alertmanager's semantics.

    ``receiver`` names one sink or a list of sinks. ``group_by``, ``group_wait``,
    ``group_interval`` and ``repeat_interval`` are inherited from the parent when unset;
    ``group_by: ['...']`` groups by all labels. A child matching an alert stops the
    search unless it sets ``continue: true``.
    """

    receiver: Optional[Union[str, List[str]]] = None
    matchers: Matchers = Field(default_factory=list)
    group_by: Optional[List[str]] = None
    group_wait: Optional[Duration] = None
    group_interval: Optional[PositiveDuration] = None
    repeat_interval: Optional[PositiveDuration] = None
    continue_: bool = Field(False, alias="continue")
    routes: List["RouteConfig"] = Field(default_factory=list)

    def receivers(self) -> List[str]:
        if self.receiver is None:
            return []
        return [self.receiver] if isinstance(self.receiver, str) else list(self.receiver)


class InhibitRuleConfig(StrictModel):
    """Mute alerts matching ``target_matchers`` while an alert matching ``source_matchers``
    fires with the same values of the ``equal`` labels."""

    source_matchers: Matchers
    target_matchers: Matchers
    equal: List[str] = Field(default_factory=list)


class SilenceConfig(StrictModel):
    """Mute alerts matching ``matchers`` between ``starts_at`` and ``ends_at`` (UTC)."""

    matchers: Matchers
    starts_at: Optional[datetime] = None
    ends_at: datetime
    comment: str = ""
    created_by: str = ""

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _utc(cls, v: Optional[datetime]) -> Optional[datetime]:
        if v is not None and v.tzinfo is None:
            v = v.replace(tzinfo=timezone.utc)
        return v

    @model_validator(mode="after")
    def _order(self) -> "SilenceConfig":
        if not self.matchers:
            raise ValueError("a silence needs at least one matcher")
        if self.starts_at is not None and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


# --------------------------------------------------------------------------- delivery: the Watchdog

WATCHDOG_ALERTNAME = "Watchdog"


def _watchdog_shorthand(value: Any) -> Any:
    return {"enabled": value} if isinstance(value, bool) else value


class WatchdogConfig(StrictModel):
    """raywatch's own heartbeat, the Prometheus convention: an alert named ``Watchdog``
    that always fires while the alerting engine runs, so that a receiver (a dead man's
    switch: healthchecks.io, PagerDuty or Opsgenie heartbeats, an Alertmanager route)
    notices when raywatch itself has gone silent.

    By default it is routed like any alert (the route tree's receivers get it, repeated every
    ``repeat_interval`` of its route; a route with ``matchers: ['alertname="Watchdog"']``
    picks its own). ``receiver`` sends it to those sinks only, every ``repeat_interval``.
    Alertmanager sinks receive it directly, as every alert. ``watchdog: false`` (or
    ``enabled: false``) turns it off.
    """

    enabled: bool = True
    severity: Literal["none", "info"] = "none"
    receiver: Optional[Union[str, List[str]]] = None
    repeat_interval: PositiveDuration = 300.0
    labels: Dict[str, str] = Field(default_factory=dict)
    annotations: Dict[str, str] = Field(default_factory=lambda: {
        "summary": "raywatch's alerting pipeline is alive",
        "description": "This alert always fires while raywatch evaluates its rules. If it stops arriving, "
                       "raywatch itself has gone silent (stats actor down, or its notifications blocked).",
    })

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: Dict[str, str]) -> Dict[str, str]:
        for k in v:
            if not _ALERTNAME_RE.match(k) or k in ("alertname", "severity"):
                raise ValueError(f"bad label name {k!r} (alertname and severity are set by the watchdog itself)")
        return v

    def receivers(self) -> List[str]:
        if self.receiver is None:
            return []
        return [self.receiver] if isinstance(self.receiver, str) else list(self.receiver)


def _default_inhibit() -> List[InhibitRuleConfig]:
    return [
        InhibitRuleConfig(
            source_matchers=['severity="critical"'],
            target_matchers=['severity=~"warning|info"'],
            equal=["app", "deployment", "model"],
        )
    ]


class AlertingConfig(StrictModel):
    """Rules, routing and sinks. See ``raywatch.alerts``.

    Without ``route``, every sink (except Alertmanager sinks, which receive every alert
    directly) gets every alert, grouped by alertname and model. ``inhibit_rules`` defaults
    to "a critical alert mutes warnings and infos of the same model"; set ``[]`` to turn
    that off. ``watchdog`` is raywatch's own always-firing heartbeat (:class:`WatchdogConfig`),
    on by default.
    """

    rules: List[AlertRuleConfig] = Field(default_factory=list)
    route: Optional[RouteConfig] = None
    inhibit_rules: List[InhibitRuleConfig] = Field(default_factory=_default_inhibit)
    silences: List[SilenceConfig] = Field(default_factory=list)
    sinks: List[SinkConfig] = Field(default_factory=list)
    dead_letter_path: Optional[str] = None
    resolved_retention: Duration = 900.0
    watchdog: Annotated[WatchdogConfig, BeforeValidator(_watchdog_shorthand)] = Field(default_factory=WatchdogConfig)

    @classmethod
    def of(cls, cfg: Any) -> "AlertingConfig":
        """The alerting config of ``cfg``: an AlertingConfig, anything with an ``alerting``
        attribute (a MonitorConfig), or a mapping of either.

        >>> AlertingConfig.of({"alerting": {"rules": [{"name": "E", "expr": "error_rate > 0.1"}]}}).rules[0].name
        'E'
        """
        if isinstance(cfg, cls):
            return cfg
        if isinstance(getattr(cfg, "alerting", None), cls):
            return cfg.alerting
        if isinstance(cfg, Mapping):
            return validate(cls, cfg["alerting"] if "alerting" in cfg else cfg)
        raise TypeError(f"expected an AlertingConfig, MonitorConfig or mapping, got {type(cfg).__name__}")

    @model_validator(mode="after")
    def _references(self) -> "AlertingConfig":
        names = [s.name for s in self.sinks]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"sink names must be unique; repeated: {', '.join(dup)}")
        kinds = {s.name: s.type for s in self.sinks}

        def walk(route: RouteConfig, path: str) -> None:
            for r in route.receivers():
                if r not in kinds:
                    known = ", ".join(sorted(kinds)) or "none defined"
                    raise ValueError(f"{path}.receiver: no sink named {r!r} (sinks: {known})")
                if kinds[r] in DIRECT_SINK_TYPES:
                    raise ValueError(
                        f"{path}.receiver: {r!r} is an alertmanager sink, which receives every alert "
                        "directly; leave it out of the route"
                    )
            for i, child in enumerate(route.routes):
                walk(child, f"{path}.routes[{i}]")

        for r in self.watchdog.receivers():
            if r not in kinds:
                known = ", ".join(sorted(kinds)) or "none defined"
                raise ValueError(f"watchdog.receiver: no sink named {r!r} (sinks: {known})")
            if kinds[r] in DIRECT_SINK_TYPES:
                raise ValueError(f"watchdog.receiver: {r!r} is an alertmanager sink, which receives every alert "
                                 "(the Watchdog too) directly; leave it out")
        if self.route is not None:
            if not self.route.receivers():
                raise ValueError("route.receiver: the root route needs a receiver")
            if self.route.matchers:
                raise ValueError("route.matchers: the root route matches every alert; put matchers on child routes")
            walk(self.route, "route")
        return self


RouteConfig.model_rebuild()
