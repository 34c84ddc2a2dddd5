"""prometheus_client metrics of the alerting engine.

One :class:`AlertMetrics` per registry (engines sharing a registry share the metrics;
their series differ by the ``sink`` label):

* ``raywatch_notifications_sent_total{sink}``: notifications a sink accepted;
* ``raywatch_notifications_retried_total{sink}``: attempts that were retried;
* ``raywatch_notifications_failed_total{sink}``: notifications given up on;
* ``raywatch_notifications_dead_lettered_total{sink}``: of those, written to the dead-letter file;
* ``raywatch_notification_queue_length{sink}``: waiting in the sink's queue;
* ``raywatch_alert_state{alertname,severity,app,deployment,model,version,feature,method,gpu}``:
  1 pending, 2 firing, 0 resolved (removed when the alert is forgotten);
* ``raywatch_alert_evaluation_duration_seconds``: time of one rule evaluation.

>>> from prometheus_client import CollectorRegistry
>>> m = AlertMetrics.for_registry(CollectorRegistry())
>>> m.sent.labels(sink="slack").inc()
>>> m is AlertMetrics.for_registry(m.registry)
True
"""

from __future__ import annotations

import threading
import weakref
from typing import Mapping, Optional

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["AlertMetrics", "STATE_LABELS", "STATE_VALUES"]

STATE_LABELS = ("alertname", "severity", "app", "deployment", "model", "version", "feature", "method", "gpu")
STATE_VALUES = {"pending": 1.0, "firing": 2.0, "resolved": 0.0}

_lock = threading.Lock()
_by_registry: "weakref.WeakKeyDictionary[CollectorRegistry, AlertMetrics]" = weakref.WeakKeyDictionary()


class AlertMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.registry = registry
        kw = {"registry": registry}
        self.sent = Counter("raywatch_notifications_sent_total", "Notifications accepted by a sink.", ["sink"], **kw)
        self.retried = Counter("raywatch_notifications_retried_total", "Delivery attempts retried.", ["sink"], **kw)
        self.failed = Counter("raywatch_notifications_failed_total", "Notifications given up on.", ["sink"], **kw)
        self.dead_lettered = Counter("raywatch_notifications_dead_lettered_total",
                                     "Notifications written to the dead-letter file.", ["sink"], **kw)
        self.queue_length = Gauge("raywatch_notification_queue_length", "Notifications waiting in a sink's queue.",
                                  ["sink"], **kw)
        self.alert_state = Gauge("raywatch_alert_state", "Alert state: 1 pending, 2 firing, 0 resolved.",
                                 list(STATE_LABELS), **kw)
        self.evaluation_seconds = Histogram(
            "raywatch_alert_evaluation_duration_seconds", "Duration of one rule evaluation.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5), **kw)

    @classmethod
    def for_registry(cls, registry: Optional[CollectorRegistry] = None) -> "AlertMetrics":
        registry = REGISTRY if registry is None else registry
        with _lock:
            m = _by_registry.get(registry)
            if m is None:
                m = _by_registry[registry] = cls(registry)
            return m

    def init_sink(self, sink: str) -> None:
        """Create the sink's series at zero so that dashboards show them before any event."""
        for c in (self.sent, self.retried, self.failed, self.dead_lettered):
            c.labels(sink=sink)
        self.queue_length.labels(sink=sink).set(0)

    def set_state(self, labels: Mapping[str, str], state: Optional[str]) -> None:
        values = [labels.get(k, "") for k in STATE_LABELS]
        if state is None:
            try:
                self.alert_state.remove(*values)
            except KeyError:
                pass
        else:
            self.alert_state.labels(*values).set(STATE_VALUES[state])
