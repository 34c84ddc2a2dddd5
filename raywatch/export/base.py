"""What every export shares: the error that refuses what a target cannot express exactly,
and durations in Prometheus' (and Alertmanager's) syntax."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, List, Optional

from raywatch.config import AlertingConfig, ConfigError, with_default_rules

__all__ = ["ExportError", "prom_duration", "rules_of"]


def rules_of(cfg: Any) -> AlertingConfig:
    """The alerting config an export writes: ``AlertingConfig.of(cfg)``, and for a whole
    monitor config the default rules its fairness and replica settings add (issue 12)."""
    alerting = AlertingConfig.of(cfg)
    return with_default_rules(alerting, cfg) if hasattr(cfg, "fairness") and alerting is not cfg else alerting


class ExportError(ConfigError):
    """A configuration holds something the target cannot express exactly; one line per
    problem, each naming the rule (or route) and the field. A :class:`ConfigError`, so
    every entry point reports it as it reports a configuration error."""

    def __init__(self, problems: List[str], source: Optional[str] = None):
        super().__init__(problems, source)


_PROM_UNITS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1))


def prom_duration(seconds: float, what: str = "duration") -> str:
    """Seconds in Prometheus' duration syntax, exactly: milliseconds are the finest unit, so
    a duration that is not a whole number of them is refused (ExportError naming ``what``)
    rather than rounded.

    >>> prom_duration(90), prom_duration(0.25), prom_duration(7200), prom_duration(0), prom_duration(90061)
    ('1m30s', '250ms', '2h', '0s', '1d1h1m1s')
    >>> prom_duration(0.0005, "rule Slow: for")
    Traceback (most recent call last):
    ...
    raywatch.export.base.ExportError: rule Slow: for: 0.0005s is not a whole number of milliseconds, the finest unit of a Prometheus duration
    """
    ms = Decimal(repr(float(seconds))) * 1000
    if ms != ms.to_integral_value() or ms < 0:
        raise ExportError([f"{what}: {float(seconds)!r}s is not a whole number of milliseconds, "
                           "the finest unit of a Prometheus duration"])
    left = int(ms)
    if left == 0:
        return "0s"
    out = ""
    for unit, size in _PROM_UNITS:
        if left >= size:
            out += f"{left // size}{unit}"
            left %= size
    return out
