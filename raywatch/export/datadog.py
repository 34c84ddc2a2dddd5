"""Datadog metric monitors from raywatch's rules, and their sync over Datadog's API.

One multi-alert ``metric alert`` per rule, on the Datadog name of the rule's metric
(``raywatch.<name>``, from the metric catalogue), grouped by the metric's labels, with the
rule's matchers as tag filters. The query reads
``time_aggr(time_window):avg:metric{tags} by {labels} op threshold``.

What is exact and what is refused
---------------------------------
* **Thresholds** are written in decimal notation that reads back as the same float
  (``1234567``, ``0.1234567``, ``0.000000001``; Datadog's query grammar takes "an integer
  or decimal number"), and as the same float in ``options.thresholds.critical``. An
  infinite or NaN threshold has no such notation and is refused.
* **for**: Datadog has no pending state. A rule's ``for`` becomes the monitor's evaluation
  window, with ``min`` over the window for ``>``/``>=`` (above the threshold the whole
  time) and ``max`` for ``<``/``<=``. Datadog's windows are whole minutes (``last_#m``, from
  1 minute to one week), so ``for: 2m`` is ``last_2m`` exactly, while ``for: 90s`` or
  ``for: 0.5s`` cannot be expressed and are refused with an
  :class:`~raywatch.export.base.ExportError` naming the rule and the field, rather than
  rounded to a window of another length. ``for: 0`` (fire at the first evaluation that
  holds) has no window to keep; it becomes Datadog's shortest window, ``last_1m``.
* **keep_firing_for** has no equivalent in a metric monitor (its recovery windows exist
  for anomaly monitors only): a monitor resolves as soon as its window stops holding. The
  rule is exported without it and the log says so, naming the rule and the field.
* **Segments**: a rule on a metric raywatch also computes per segment reads the model-wide
  series unless it names ``segment_column`` or ``segment``: its query excludes the
  per-segment series (``!segment:*``); a rule that names one groups by both segment labels
  too (one alert per segment).
* Rules Datadog cannot express at all (``==``/``!=`` comparisons, general regular
  expressions in matchers) are left out with a warning in the log naming the rule.

>>> from raywatch.config import AlertingConfig
>>> cfg = AlertingConfig.model_validate({"rules": [{"name": "HighLatency",
...     "expr": 'latency_p95_seconds{model=~"fraud|churn"} > 0.5', "for": "2m", "severity": "critical"}]})
>>> datadog_monitors(cfg)[0]["query"]
'min(last_2m):avg:raywatch.latency_p95_seconds{(model:fraud OR model:churn),!segment:*} by {app,deployment,model,version} > 0.5'
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any, Dict, List, Optional, Sequence

from raywatch import series
from raywatch.config import AlertingConfig
from raywatch.expr import Matcher, decimal_text, number_text, parse_matchers
from raywatch.export.base import ExportError, prom_duration, rules_of
from raywatch.sinks.datadog import DatadogSink

log = logging.getLogger("raywatch.export.datadog")

__all__ = ["datadog_monitors", "sync_monitors"]

_DD_PRIORITY = {"critical": 1, "error": 2, "warning": 3, "info": 4}
_LONGEST_WINDOW_MINUTES = 7 * 24 * 60  # last_10080m, Datadog's longest evaluation window


def _dd_filter(m: Matcher) -> Optional[str]:
    """A Datadog tag filter for one matcher, or None when Datadog cannot express it."""
    k, v = m.label, m.value
    literal = re.fullmatch(r"[A-Za-z0-9_.:/-]*", v) is not None
    if m.op == "=":
        return f"{k}:{v}" if literal and v else None
    if m.op == "!=":
        return f"!{k}:{v}" if literal and v else None
    if v in (".*", ".+"):
        return "" if m.op == "=~" else None
    alts = v.split("|")
    if all(re.fullmatch(r"[A-Za-z0-9_.:/-]+", a) for a in alts):
        return ("(" + " OR ".join(f"{k}:{a}" for a in alts) + ")") if m.op == "=~" and len(alts) > 1 else (
            f"{k}:{alts[0]}" if m.op == "=~" else " AND ".join(f"!{k}:{a}" for a in alts))
    pm = re.fullmatch(r"([A-Za-z0-9_.:/-]+)\.\*", v)
    if pm:
        return f"{k}:{pm.group(1)}*" if m.op == "=~" else f"!{k}:{pm.group(1)}*"
    return None


def _window(rule: Any) -> str:
    """The evaluation window of ``rule`` (see the module's docstring); ExportError when its
    ``for`` is not a whole number of minutes Datadog can evaluate."""
    if rule.for_ == 0:
        return "last_1m"
    minutes = rule.for_ / 60.0
    if not minutes.is_integer() or not 1 <= minutes <= _LONGEST_WINDOW_MINUTES:
        whole = sorted({max(1, math.floor(minutes)), max(1, math.ceil(minutes))})
        hint = " or ".join(f"for: {int(x)}m" for x in whole if x <= _LONGEST_WINDOW_MINUTES) or "a shorter for"
        raise ExportError([f"rule {rule.name}: for: {prom_duration(rule.for_, f'rule {rule.name}: for')} cannot be "
                           "expressed exactly in a Datadog monitor, whose evaluation windows are whole minutes up to "
                           f"one week (last_#m); use {hint}, or leave the rule out of the Datadog export"])
    return f"last_{int(minutes)}m"


def _threshold(rule: Any) -> str:
    try:
        return decimal_text(rule.threshold)
    except ValueError:
        raise ExportError([f"rule {rule.name}: threshold: {number_text(rule.threshold)} cannot be written in a "
                           "Datadog monitor query, which takes an integer or decimal number"]) from None


def datadog_monitors(cfg: Any, *, notify: Sequence[str] = ()) -> List[Dict[str, Any]]:
    """Datadog ``metric alert`` monitor definitions (bodies for ``POST /api/v1/monitor``),
    one multi-alert monitor per rule (see the module's docstring for what is carried
    exactly, what is refused and what is left out). ``notify`` handles (``@slack-ml``) go
    into the message."""
    cfg = rules_of(cfg)
    out: List[Dict[str, Any]] = []
    problems: List[str] = []
    for r in cfg.rules:
        if r.op not in (">", ">=", "<", "<="):
            log.warning("rule %s: Datadog metric monitors cannot compare with %s; not exported", r.name, r.op)
            continue
        filters = []
        ok = True
        for m in parse_matchers(r.matchers):
            f = _dd_filter(m)
            if f is None:
                log.warning("rule %s: Datadog cannot express the matcher %s; not exported", r.name, m)
                ok = False
                break
            if f:
                filters.append(f)
        if not ok:
            continue
        try:
            window, threshold = _window(r), _threshold(r)
        except ExportError as exc:
            problems.extend(exc.problems)
            continue
        if r.keep_firing_for:
            log.warning("rule %s: keep_firing_for: %s has no equivalent in a Datadog metric monitor, which resolves "
                        "as soon as its window stops holding; exported without it", r.name,
                        prom_duration(r.keep_firing_for, f"rule {r.name}: keep_firing_for"))
        metric = series.metric(r.metric)
        agg = "min" if r.op in (">", ">=") else "max"
        labels = list(metric.all_labels)
        if r.metric in series.SEGMENTED:  # issue 12: model-wide series, or one alert per segment
            if {m.label for m in parse_matchers(r.matchers)} & set(series.SEGMENT_LABELS):
                labels += list(series.SEGMENT_LABELS)
            else:
                filters.append(f"!{series.SEGMENT}:*")
        scope = ",".join(filters) if filters else "*"
        by = f" by {{{','.join(labels)}}}" if labels else ""
        query = f"{agg}({window}):avg:{metric.datadog}{{{scope}}}{by} {r.op} {threshold}"
        ann = r.annotations
        text = _dd_template(ann.get("summary") or f"{r.name}: {r.metric} {r.op} {number_text(r.threshold)}")
        body = [f"{{{{#is_alert}}}}{text}{{{{/is_alert}}}}", f"{{{{#is_recovery}}}}Recovered: {text}{{{{/is_recovery}}}}"]
        if ann.get("description"):
            body.append(_dd_template(ann["description"]))
        if ann.get("runbook_url"):
            body.append(f"Runbook: {ann['runbook_url']}")
        body.extend(notify)
        out.append({
            "name": f"[raywatch] {r.name}",
            "type": "metric alert",
            "query": query,
            "message": "\n".join(body),
            "tags": ["source:raywatch", f"alertname:{r.name}", f"severity:{r.severity}"]
                    + [f"{k}:{v}" for k, v in sorted(r.labels.items())],
            "priority": _DD_PRIORITY.get(r.severity, 3),
            "options": {
                "thresholds": {"critical": r.threshold},
                "notify_no_data": False,
                "require_full_window": False,
                "include_tags": True,
                "renotify_interval": 0,
            },
        })
    if problems:
        raise ExportError(problems)
    return out


def _dd_template(text: str) -> str:
    """Prometheus template variables → Datadog's (``{{value}}``, ``{{model.name}}``)."""
    text = re.sub(r"\{\{\s*(\$value|\.Value)[^}]*\}\}", "{{value}}", text)
    return re.sub(r"\{\{\s*(?:\$labels|\.Labels)\.([a-zA-Z_][a-zA-Z0-9_]*)[^}]*\}\}", r"{{\1.name}}", text)


def sync_monitors(config: Any, *, sink: Optional[str] = None) -> Dict[str, int]:
    """Create or update, over Datadog's API, one monitor per alert rule of ``config``
    (:func:`datadog_monitors`), with the keys of the datadog sink named ``sink`` (default:
    the only datadog sink). Returns ``{"created": n, "updated": m}``.
    """
    cfg = AlertingConfig.of(config)
    candidates = [s for s in cfg.sinks if s.type == "datadog" and (sink is None or s.name == sink)]
    if len(candidates) != 1:
        which = f"named {sink!r}" if sink else "(give its name: there are several)" if candidates else ""
        raise ValueError(f"no single datadog sink {which} in the configuration".replace("  ", " ").strip())
    dd = DatadogSink(candidates[0])
    try:
        return dd.sync_monitors(datadog_monitors(cfg))
    finally:
        dd.close()
