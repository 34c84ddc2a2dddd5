"""raywatch.expr: the expressions a user writes in rules, routes and annotations.

A leaf: it imports nothing from raywatch, so the configuration schema
(:mod:`raywatch.config`) and the alerting engine (:mod:`raywatch.alerts`) both build on it.

* :mod:`raywatch.expr.matchers`: label matchers (``model=~"fraud.*"``), series selectors
  and rule conditions (``latency_p95_seconds{model="fraud"} > 0.5``), with Prometheus'
  syntax and semantics;
* :mod:`raywatch.expr.template`: annotation templates (``{{ $labels.model }}``,
  ``{{ $value | humanizePercentage }}``), the subset of Prometheus' templating rules need;
* :mod:`raywatch.expr.exact`: numbers written so that they read back exactly.
"""

from __future__ import annotations

from raywatch.expr.exact import decimal_text, number_text
from raywatch.expr.matchers import (
    COMPARISONS,
    OPS,
    Matcher,
    Selector,
    labels_dict,
    matches_all,
    parse_condition,
    parse_matchers,
)
from raywatch.expr.template import Template, go_value, humanize, humanize_duration

__all__ = [
    "Matcher", "Selector", "parse_matchers", "parse_condition", "matches_all", "labels_dict", "OPS",
    "COMPARISONS", "Template", "humanize", "humanize_duration", "go_value", "number_text", "decimal_text",
]
