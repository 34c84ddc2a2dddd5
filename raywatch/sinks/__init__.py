"""raywatch.sinks: one module per destination, one small interface (:class:`Sink`).

=============== ==================================== =====================================
type            module                               destination
=============== ==================================== =====================================
``slack``       :mod:`raywatch.sinks.slack`          Slack incoming webhook (Block Kit)
``datadog``     :mod:`raywatch.sinks.datadog`        DogStatsD metrics/events/service checks, HTTP API
``alertmanager`` :mod:`raywatch.sinks.alertmanager`  Alertmanager v2 API (``POST /api/v2/alerts``)
``pagerduty``   :mod:`raywatch.sinks.pagerduty`      PagerDuty Events API v2
``webhook``     :mod:`raywatch.sinks.webhook`        any URL; Alertmanager's webhook JSON
``email``       :mod:`raywatch.sinks.email`          SMTP with STARTTLS
``log``         :mod:`raywatch.sinks.log`            the ``raywatch.sinks.log`` logger
``remediation`` :mod:`raywatch.remediate.shell.sink` the remediation controller (a Ray actor)
=============== ==================================== =====================================
"""

from __future__ import annotations

import importlib
from typing import Any, Dict

from raywatch.sinks.base import DeliveryError, PermanentError, RetryAfter, Sink, TransientError

__all__ = ["Sink", "DeliveryError", "TransientError", "RetryAfter", "PermanentError", "build_sink", "SINK_CLASSES"]

SINK_CLASSES: Dict[str, str] = {
    "slack": "raywatch.sinks.slack:SlackSink",
    "datadog": "raywatch.sinks.datadog:DatadogSink",
    "alertmanager": "raywatch.sinks.alertmanager:AlertmanagerSink",
    "pagerduty": "raywatch.sinks.pagerduty:PagerDutySink",
    "webhook": "raywatch.sinks.webhook:WebhookSink",
    "email": "raywatch.sinks.email:EmailSink",
    "log": "raywatch.sinks.log:LogSink",
    # a plug-in path (read when a sink of the type is built): the controller lives in the Ray shell
    "remediation": "raywatch.remediate.shell.sink:RemediationSink",
}


def build_sink(cfg: Any) -> Sink:
    """The sink for one sink config (``cfg.type`` picks the class)."""
    target = SINK_CLASSES.get(cfg.type)
    if target is None:
        raise ValueError(f"unknown sink type {cfg.type!r}; expected one of {', '.join(SINK_CLASSES)}")
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)(cfg)
