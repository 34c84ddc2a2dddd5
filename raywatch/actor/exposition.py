"""Prometheus and DogStatsD exposition of the stats actor's state.

:class:`StatsCollector` is a prometheus_client custom collector: at scrape time it reads
the actor's models (their last evaluation and their live counters) and yields metric
families, in a dedicated :class:`~prometheus_client.CollectorRegistry` (never the global
one). The names are the rule series' names with the ``raywatch_`` prefix, so a Prometheus
alerting rule and a raywatch rule read the same figures; counters (``*_total``) are read
live, gauges come from the last evaluation.

:class:`DogStatsdPublisher` sends the same figures to a DogStatsD agent after each
evaluation: gauges as gauges, counters as increments of the difference since the last
send; names ``raywatch.<name>``, labels as ``key:value`` tags.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Iterable, List, Optional, Tuple

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["StatsCollector", "DogStatsdPublisher", "HELP"]

log = logging.getLogger("raywatch.actor.exposition")

HELP = {
    "requests_total": "Requests seen by monitored replicas.",
    "errors_total": "Requests that ended in an exception or a 5xx status.",
    "dropped_records_total": "Records replicas dropped (buffer full or stats actor unreachable).",
    "capture_errors_total": "Failures of raywatch's own capture code in replicas.",
    "throughput_rps": "Requests per second over the rolling view.",
    "error_rate": "Errors / requests over the rolling view.",
    "latency_p50_seconds": "Median request latency over the rolling view.",
    "latency_p95_seconds": "95th percentile request latency over the rolling view.",
    "latency_p99_seconds": "99th percentile request latency over the rolling view.",
    "drift_score": "Drift statistic of a feature against the reference profile.",
    "drift_p_value": "p-value of the feature's drift test (where the test has one).",
    "drift_detected": "1 when the feature drifted.",
    "dataset_drift": "1 when the share of drifted features passes the threshold.",
    "drifted_features_share": "Share of features that drifted.",
    "missing_share": "Share of missing values of a feature.",
    "out_of_range_share": "Share of values outside the reference range.",
    "unseen_category_share": "Share of categories not in the reference profile.",
    "accuracy": "Accuracy from joined ground truth.",
    "precision": "Precision from joined ground truth.",
    "recall": "Recall from joined ground truth.",
    "f1": "F1 score from joined ground truth.",
    "roc_auc": "ROC-AUC from joined ground truth.",
    "mae": "Mean absolute error from joined ground truth.",
    "rmse": "Root mean squared error from joined ground truth.",
    "feedback_rows": "Labels joined to predictions in the rolling view.",
    "concept_drift": "1 when the streaming detector on the error stream fired in the rolling view.",
    "latency_drift": "1 when the streaming detector on latency fired in the rolling view.",
    "error_rate_drift": "1 when the streaming detector on the error rate fired in the rolling view.",
    "cpu_percent": "CPU use of the busiest replica (percent of one core).",
    "rss_bytes": "Resident memory of the largest replica.",
    "node_cpu_percent": "CPU use of the busiest node.",
    "node_memory_percent": "Memory use of the fullest node.",
    "gpu_utilization": "GPU utilization (percent).",
    "gpu_memory_used_bytes": "GPU memory used.",
    "gpu_temperature_celsius": "GPU temperature.",
    "gpu_power_watts": "GPU power draw.",
}

_LIVE_TOTALS = {
    "requests_total": lambda ms: ms.totals["requests"],
    "errors_total": lambda ms: ms.totals["errors"],
    "dropped_records_total": lambda ms: ms.dropped_total,
    "capture_errors_total": lambda ms: ms.capture_errors_total,
}


def _labels(ms: Any) -> Dict[str, str]:
    return {k: str(ms.labels.get(k, "")) for k in ("app", "deployment", "model", "version")}


class StatsCollector(Collector):
    """Reads a :class:`~raywatch.actor.core.StatsCore` at scrape time."""

    def __init__(self, core: Any):
        self.core = core

    def describe(self) -> Iterable[Any]:
        return []  # families depend on the models present: collect() at scrape time only

    def collect(self) -> Iterable[Any]:
        core = self.core
        fams: Dict[str, Any] = {}
        keys: Dict[str, Tuple[str, ...]] = {}

        def family(name: str, label_names: Tuple[str, ...]) -> Any:
            fam = fams.get(name)
            if fam is None:
                doc = HELP.get(name, name.replace("_", " "))
                if name.endswith("_total"):
                    fam = CounterMetricFamily("raywatch_" + name[: -len("_total")], doc, labels=list(label_names))
                else:
                    fam = GaugeMetricFamily("raywatch_" + name, doc, labels=list(label_names))
                fams[name] = fam
                keys[name] = label_names
            return fam

        base_names = ("app", "deployment", "model", "version")
        for ms in list(core.models.values()):
            base = _labels(ms)
            for name, value in _LIVE_TOTALS.items():
                family(name, base_names).add_metric([base[k] for k in base_names], float(value(ms)))
            family("summarized_rows_total", base_names).add_metric([base[k] for k in base_names], float(ms.totals["rows"]))
            family("feedback_joined_total", base_names).add_metric([base[k] for k in base_names], float(ms.totals["feedback_rows"]))
            for s in list(ms.series):
                if s.name in _LIVE_TOTALS:
                    continue
                names = tuple(s.labels.keys())
                fam = family(s.name, names)
                if keys[s.name] != names:
                    continue  # a differently labelled sample would break the family
                fam.add_metric([str(s.labels[k]) for k in names], float(s.value))
            for rid, r in list(ms.replicas.items()):
                res = r.resources or {}
                for key in ("cpu_percent", "rss_bytes"):
                    v = res.get(key)
                    if v is not None:
                        family(f"replica_{key}", base_names + ("replica",)).add_metric(
                            [base[k] for k in base_names] + [rid], float(v)
                        )
        yield from fams.values()
        counters = core.counters
        yield CounterMetricFamily("raywatch_actor_batches", "Replica batches ingested by this stats actor.", value=counters["batches"])
        yield CounterMetricFamily("raywatch_actor_duplicate_batches", "Batches skipped as already ingested (same replica and seq).", value=counters["duplicates"])
        yield CounterMetricFamily("raywatch_actor_failures", "Failures of the stats actor's own code (ingest, detection, delivery hand-off).", value=sum(core.failures.values()))
        fb = core.joiner.counters()
        pend = core.joiner.pending()
        yield GaugeMetricFamily("raywatch_feedback_pending", "Predictions and labels waiting to be joined.", value=pend["predictions"] + pend["labels"])
        yield CounterMetricFamily("raywatch_feedback_expired", "Predictions and labels expired or evicted before a join.",
                                  value=fb["expired_predictions"] + fb["expired_labels"] + fb["evicted_predictions"] + fb["evicted_labels"])


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
            from datadog.dogstatsd import DogStatsd

            client = DogStatsd(host=host, port=int(port), constant_tags=list(tags or []), disable_telemetry=True)
        self.client = client
        self._sent: Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float] = {}
        self.sent_metrics = 0

    def prime(self, models: Iterable[Any]) -> None:
        """Take the counters' current values as already sent (after a restart from SQLite,
        so that the restored totals are not counted again)."""
        for ms in models:
            for s in ms.series:
                if s.name.endswith("_total"):
                    self._sent[(s.name, tuple(sorted(s.labels.items())))] = s.value

    def publish(self, models: Iterable[Any]) -> int:
        n = 0
        for ms in models:
            for s in ms.series:
                tags = [f"{k}:{v}" for k, v in s.labels.items()]
                name = "raywatch." + s.name
                if s.name.endswith("_total"):
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
