"""Prometheus and DogStatsD exposition of the stats actor's state.

:class:`StatsCollector` is a prometheus_client custom collector: at scrape time it reads
the actor's models (their last evaluation and their live counters) and yields metric
families, in a dedicated :class:`~prometheus_client.CollectorRegistry` (never the global
one). Names and HELP texts come from the metric catalogue (:mod:`raywatch.series`): the
rule series' names with the ``raywatch_`` prefix, so a Prometheus alerting rule and a
raywatch rule read the same figures; counters (``*_total``) are read live, gauges come
from the last evaluation.

:class:`DogStatsdPublisher` sends the same figures to a DogStatsD agent after each
evaluation: gauges as gauges, counters as increments of the difference since the last
send; the catalogue's Datadog names (``raywatch.<name>``), labels as ``key:value`` tags.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from raywatch import series
from raywatch.aggregate.core import StatsCore
from raywatch.aggregate.ingest import REFUSALS
from raywatch.aggregate.query import live_replicas
from raywatch.aggregate.model import ModelState
from raywatch.series import METRICS, MODEL_LABELS, Metric

__all__ = ["StatsCollector", "DogStatsdPublisher"]

log = logging.getLogger("raywatch.actor.exposition")

_LIVE_TOTALS: Dict[Metric, Callable[[ModelState], float]] = {
    series.REQUESTS_TOTAL: lambda ms: ms.totals["requests"],
    series.ERRORS_TOTAL: lambda ms: ms.totals["errors"],
    series.DROPPED_RECORDS_TOTAL: lambda ms: ms.dropped_total,
    series.CAPTURE_ERRORS_TOTAL: lambda ms: ms.capture_errors_total,
    series.SUMMARIZED_ROWS_TOTAL: lambda ms: ms.totals["rows"],
    series.FEEDBACK_JOINED_TOTAL: lambda ms: ms.totals[series.FEEDBACK_ROWS.name],
    series.SUMMARIES_REFUSED_TOTAL: lambda ms: ms.refused["summaries"],
}
"""Counters read live from the model's totals at scrape time (not from the last evaluation)."""


def _labels(ms: ModelState) -> List[str]:
    return [str(ms.labels.get(k, "")) for k in MODEL_LABELS]


def _family(metric: Metric, label_names: Sequence[str] = (), value: Optional[float] = None) -> Any:
    labels = list(label_names) if value is None else None
    if metric.is_counter:
        return CounterMetricFamily(metric.prometheus_family, metric.help, labels=labels, value=value)
    return GaugeMetricFamily(metric.prometheus, metric.help, labels=labels, value=value)


class StatsCollector(Collector):
    """Reads a :class:`~raywatch.aggregate.core.StatsCore` at scrape time."""

    def __init__(self, core: StatsCore):
        self.core = core

    def describe(self) -> Iterable[Any]:
        return []  # families depend on the models present: collect() at scrape time only

    def collect(self) -> Iterable[Any]:
        core = self.core
        fams: Dict[str, Any] = {}
        keys: Dict[str, Tuple[str, ...]] = {}

        def family(metric: Metric, label_names: Tuple[str, ...]) -> Any:
            fam = fams.get(metric.name)
            if fam is None:
                fam = fams[metric.name] = _family(metric, label_names)
                keys[metric.name] = label_names
            return fam

        ttl = core.config.actor.replica_ttl
        at = core.last_evaluation if core.last_evaluation is not None else core.clock()  # as the gauges are
        for ms in list(core.models.values()):
            base = _labels(ms)
            for metric, value in _LIVE_TOTALS.items():
                family(metric, MODEL_LABELS).add_metric(base, float(value(ms)))
            for s in list(ms.series):
                metric = METRICS[s.name]
                if metric in _LIVE_TOTALS:
                    continue
                names = tuple(s.labels.keys())
                fam = family(metric, names)
                if keys[s.name] != names:  # a per-segment sample: its family holds both label sets
                    fam.add_sample(fam.name, {k: str(v) for k, v in s.labels.items()}, float(s.value))
                    continue
                fam.add_metric([str(s.labels[k]) for k in names], float(s.value))
            for rid, r in list(live_replicas(ms, at, ttl).items()):  # gone replicas are not exported
                res = r.resources or {}
                for metric, key in series.REPLICA_RESOURCES:
                    v = res.get(key)
                    if v is not None:
                        family(metric, MODEL_LABELS + ("replica",)).add_metric(base + [rid], float(v))
        for s in core.remediation.series(core.models):  # (issue 14) payload logs, the remediation controller
            names = tuple(s.labels.keys())
            fam = family(METRICS[s.name], names)
            if keys[s.name] == names:
                fam.add_metric([str(s.labels[k]) for k in names], float(s.value))
        yield from fams.values()
        counters = core.counters
        yield _family(series.ACTOR_BATCHES_TOTAL, value=counters["batches"])
        yield _family(series.ACTOR_DUPLICATE_BATCHES_TOTAL, value=counters["duplicates"])
        yield _family(series.ACTOR_FAILURES_TOTAL, value=sum(core.failures.values()))
        fb = core.joiner.counters()
        pend = core.joiner.pending()
        yield _family(series.FEEDBACK_PENDING, value=pend["predictions"] + pend["labels"])
        yield _family(series.FEEDBACK_EXPIRED_TOTAL,
                      value=fb["expired_predictions"] + fb["expired_labels"] + fb["evicted_predictions"] + fb["evicted_labels"])
        refused = _family(series.FEEDBACK_REFUSED_TOTAL, ("reason",))
        for reason in REFUSALS:
            refused.add_metric([reason], float(core.refused.get(reason, 0)))
        yield refused
        for s in core.health_series():  # the actor's own health: its state file and journal
            fam = _family(METRICS[s.name], tuple(s.labels))
            fam.add_metric([str(v) for v in s.labels.values()], float(s.value))
            yield fam


class DogStatsdPublisher:
    """Send the actor's figures to DogStatsD after each evaluation.

    Parameters
    ----------
    host, port
        The agent's address (UDP).
    tags
        Constant tags added to every metric (``["env:prod"]``).
    client
        A ``datadog.DogStatsd``-compatible client (built from host/port when omitted).
    """

    def __init__(self, host: str, port: int = 8125, tags: Optional[List[str]] = None, client: Any = None):
        if client is None:
            from datadog.dogstatsd import DogStatsd  # deferred: only an actor configured for DogStatsD needs it

            client = DogStatsd(host=host, port=int(port), constant_tags=list(tags or []), disable_telemetry=True)
        self.client = client
        self._sent: Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float] = {}
        self.sent_metrics = 0

    def prime(self, models: Iterable[Any]) -> None:
        """Take the counters' current values as already sent (after a restart from SQLite,
        so that the restored totals are not counted again)."""
        for ms in models:
            for s in ms.series:
                if METRICS[s.name].is_counter:
                    self._sent[(s.name, tuple(sorted(s.labels.items())))] = s.value

    def publish(self, models: Iterable[Any]) -> int:
        n = 0
        for ms in models:
            for s in ms.series:
                tags = [f"{k}:{v}" for k, v in s.labels.items()]
                metric = METRICS[s.name]
                name = metric.datadog
                if metric.is_counter:
                    key = (s.name, tuple(sorted(s.labels.items())))
                    prev = self._sent.get(key)
                    self._sent[key] = s.value
                    delta = s.value - prev if prev is not None and s.value >= prev else s.value
                    if delta > 0:
                        self.client.increment(name, int(delta) if float(delta).is_integer() else delta, tags=tags)
                        n += 1
                else:
                    self.client.gauge(name, s.value, tags=tags)
                    n += 1
        try:
            self.client.flush()
        except AttributeError:  # clients without buffering
            pass
        self.sent_metrics += n
        return n

    def close(self) -> None:
        try:
            self.client.close_socket()
        except Exception:  # pragma: no cover - best effort
            pass
