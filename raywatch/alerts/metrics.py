"""prometheus_client metrics of the alerting engine, declared from the metric catalogue.

One :class:`AlertMetrics` per registry (engines sharing a registry share the metrics;
their series differ by the ``sink`` label). Names, help texts and labels come from
:mod:`raywatch.series`: notifications sent (accepted by the receiver), handed to a
best-effort transport (DogStatsD over UDP: never counted as sent), retried, failed,
superseded and dead-lettered per sink, failures per sink and stage (``queue``, ``send``,
``dead_letter``), the queue length per sink, each alert's state (1 pending, 2 firing, 0 resolved; removed when
the alert is forgotten) and the duration of one rule evaluation.

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

from raywatch import series
from raywatch.series import Metric

__all__ = ["AlertMetrics", "STATE_LABELS", "STATE_VALUES"]

STATE_LABELS = series.ALERT_STATE.labels[:2] + series.MODEL_LABELS + series.ALERT_STATE.labels[2:]
"""The labels of the alert-state gauge: alertname and severity, the model labels, then the rest."""
STATE_VALUES = {"pending": 1.0, "firing": 2.0, "resolved": 0.0}

_lock = threading.Lock()
_by_registry: "weakref.WeakKeyDictionary[CollectorRegistry, AlertMetrics]" = weakref.WeakKeyDictionary()


def _declare(kind: type, m: Metric, registry: CollectorRegistry, labels=None, **kw):
    return kind(m.prometheus_family, m.help, list(m.all_labels if labels is None else labels), registry=registry, **kw)


class AlertMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.registry = registry
        self.sent = _declare(Counter, series.NOTIFICATIONS_SENT_TOTAL, registry)
        self.retried = _declare(Counter, series.NOTIFICATIONS_RETRIED_TOTAL, registry)
        self.failed = _declare(Counter, series.NOTIFICATIONS_FAILED_TOTAL, registry)
        self.dead_lettered = _declare(Counter, series.NOTIFICATIONS_DEAD_LETTERED_TOTAL, registry)
        self.best_effort = _declare(Counter, series.NOTIFICATIONS_BEST_EFFORT_TOTAL, registry)
        self.superseded = _declare(Counter, series.NOTIFICATIONS_SUPERSEDED_TOTAL, registry)
        self.failures = _declare(Counter, series.NOTIFICATION_FAILURES_TOTAL, registry)
        self.queue_length = _declare(Gauge, series.NOTIFICATION_QUEUE_LENGTH, registry)
        self.alert_state = _declare(Gauge, series.ALERT_STATE, registry, STATE_LABELS)
        self.evaluation_seconds = _declare(
            Histogram, series.ALERT_EVALUATION_DURATION_SECONDS, registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))

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
        for c in (self.sent, self.retried, self.failed, self.dead_lettered, self.best_effort, self.superseded):
            c.labels(sink=sink)
        for stage in series.NOTIFICATION_FAILURE_STAGES:
            self.failures.labels(sink=sink, stage=stage)
        self.queue_length.labels(sink=sink).set(0)

    def failure(self, sink: str, stage: str) -> None:
        """Count one failure of ``stage`` (one of :data:`raywatch.series.NOTIFICATION_FAILURE_STAGES`)."""
        self.failures.labels(sink=sink, stage=stage).inc()

    def set_state(self, labels: Mapping[str, str], state: Optional[str]) -> None:
        values = [labels.get(k, "") for k in STATE_LABELS]
        if state is None:
            try:
                self.alert_state.remove(*values)
            except KeyError:
                pass
        else:
            self.alert_state.labels(*values).set(STATE_VALUES[state])
