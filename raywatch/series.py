"""The metric catalogue: every series raywatch computes, in one place.

Each :class:`Metric` has a name (snake_case, base units, counters end in ``_total``), a
type, a unit, a help text, the labels it carries beyond the model labels, and the stage of
the flow that computes it. Everything that names a metric reads it from here: the stats
actor's series and ``/metrics`` exposition, DogStatsD, the exports (Prometheus rules,
Grafana, Datadog monitors, Alertmanager), the report, ``raywatch status`` and the config
validator, which rejects a rule on an unknown metric or label and names the closest known
ones. ``tests/test_series.py`` checks that no other module writes a metric name.

Prometheus names are ``raywatch_<name>``; Datadog names ``raywatch.<name>`` with
``key:value`` tags.

>>> LATENCY_P95_SECONDS.prometheus, LATENCY_P95_SECONDS.datadog
('raywatch_latency_p95_seconds', 'raywatch.latency_p95_seconds')
>>> metric("requests_total").type
'counter'
>>> check_selector("latncy_p95_seconds", ["model"])
["unknown metric 'latncy_p95_seconds' (did you mean latency_p95_seconds, latency_p99_seconds, latency_p50_seconds?)"]
>>> check_selector("drift_score", ["modle"])
["metric 'drift_score' has no label 'modle' (did you mean model?); its labels: app, deployment, model, version, feature, method, segment_column, segment"]
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Dict, Iterable, List, Literal, Mapping, NamedTuple, Optional, Tuple

__all__ = [
    "Metric",
    "Series",
    "METRICS",
    "MODEL_LABELS",
    "PROMETHEUS_PREFIX",
    "DATADOG_PREFIX",
    "metric",
    "rule_metrics",
    "check_selector",
    "close_names",
]

PROMETHEUS_PREFIX = "raywatch_"
DATADOG_PREFIX = "raywatch."

MODEL_LABELS: Tuple[str, ...] = ("app", "deployment", "model", "version")
"""Labels of every per-model series."""

Kind = Literal["counter", "gauge", "histogram"]
Stage = Literal["ingest", "detect", "feedback", "resources", "actor", "rules", "deliver"]


class Series(NamedTuple):
    """One sample of a metric: ``Series("error_rate", {"model": "fraud"}, 0.07)``."""

    name: str
    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class Metric:
    """One series raywatch computes.

    ``labels`` are those beyond :data:`MODEL_LABELS` (which a metric carries when
    ``per_model``). ``rule`` says whether raywatch's own alert rules see it (the per-model
    series computed at each evaluation); the others are exposition only.
    """

    name: str
    type: Kind
    unit: str
    help: str
    stage: Stage
    labels: Tuple[str, ...] = ()
    per_model: bool = True
    rule: bool = True
    datadog_name: Optional[str] = None

    @property
    def prometheus(self) -> str:
        """The Prometheus name (``raywatch_`` + name)."""
        return PROMETHEUS_PREFIX + self.name

    @property
    def prometheus_family(self) -> str:
        """The name a prometheus_client counter family is declared with (no ``_total``)."""
        base = self.prometheus
        return base[: -len("_total")] if self.type == "counter" and base.endswith("_total") else base

    @property
    def datadog(self) -> str:
        """The Datadog name (``raywatch.`` + name, unless the entry names it otherwise)."""
        return self.datadog_name or DATADOG_PREFIX + self.name

    @property
    def all_labels(self) -> Tuple[str, ...]:
        """Every label of the series, model labels first."""
        return (MODEL_LABELS if self.per_model else ()) + self.labels

    @property
    def is_counter(self) -> bool:
        return self.type == "counter"


METRICS: Dict[str, Metric] = {}


def _m(name: str, type: Kind, unit: str, help: str, stage: Stage, labels: Tuple[str, ...] = (),
       per_model: bool = True, rule: bool = True, datadog_name: Optional[str] = None) -> Metric:
    if name in METRICS:
        raise ValueError(f"metric {name!r} declared twice")
    if type == "counter" and not name.endswith("_total"):
        raise ValueError(f"counter {name!r} must end in _total")
    m = METRICS[name] = Metric(name, type, unit, help, stage, tuple(labels), per_model, rule, datadog_name)
    return m


# ---------------------------------------------------------------- traffic (ingest)
REQUESTS_TOTAL = _m("requests_total", "counter", "requests", "Requests seen by monitored replicas.", "ingest")
ERRORS_TOTAL = _m("errors_total", "counter", "requests", "Requests that ended in an exception or a 5xx status.", "ingest")
DROPPED_RECORDS_TOTAL = _m("dropped_records_total", "counter", "records",
                           "Records replicas dropped (buffer full or stats actor unreachable).", "ingest")
CAPTURE_ERRORS_TOTAL = _m("capture_errors_total", "counter", "errors", "Failures of raywatch's own capture code in replicas.", "ingest")
SUMMARIZED_ROWS_TOTAL = _m("summarized_rows_total", "counter", "rows", "Rows summarized into window summaries.", "ingest", rule=False)
FEEDBACK_JOINED_TOTAL = _m("feedback_joined_total", "counter", "labels", "Labels joined to predictions.", "feedback", rule=False)
THROUGHPUT_RPS = _m("throughput_rps", "gauge", "requests per second", "Requests per second over the rolling view.", "ingest")
ERROR_RATE = _m("error_rate", "gauge", "ratio", "Errors / requests over the rolling view.", "ingest")
LATENCY_P50_SECONDS = _m("latency_p50_seconds", "gauge", "seconds", "Median request latency over the rolling view.", "ingest")
LATENCY_P95_SECONDS = _m("latency_p95_seconds", "gauge", "seconds", "95th percentile request latency over the rolling view.", "ingest")
LATENCY_P99_SECONDS = _m("latency_p99_seconds", "gauge", "seconds", "99th percentile request latency over the rolling view.", "ingest")
LATENCY_QUANTILES: Tuple[Tuple[Metric, float], ...] = (
    (LATENCY_P50_SECONDS, 0.50), (LATENCY_P95_SECONDS, 0.95), (LATENCY_P99_SECONDS, 0.99))

# ---------------------------------------------------------------- data drift and quality (detect)
DRIFT_SCORE = _m("drift_score", "gauge", "statistic", "Drift statistic of a feature against the reference profile.",
                 "detect", ("feature", "method"))
DRIFT_P_VALUE = _m("drift_p_value", "gauge", "probability", "p-value of the feature's drift test (where the test has one).",
                   "detect", ("feature", "method"))
DRIFT_DETECTED = _m("drift_detected", "gauge", "boolean", "1 when the feature drifted.", "detect", ("feature",))
DATASET_DRIFT = _m("dataset_drift", "gauge", "boolean", "1 when the share of drifted features passes the threshold.", "detect")
DRIFTED_FEATURES_SHARE = _m("drifted_features_share", "gauge", "ratio", "Share of tested features that drifted.", "detect")
MISSING_SHARE = _m("missing_share", "gauge", "ratio", "Share of missing values of a feature.", "detect", ("feature",))
OUT_OF_RANGE_SHARE = _m("out_of_range_share", "gauge", "ratio", "Share of values outside the reference range.", "detect", ("feature",))
UNSEEN_CATEGORY_SHARE = _m("unseen_category_share", "gauge", "ratio", "Share of categories not in the reference profile.",
                           "detect", ("feature",))
QUALITY_SHARES: Tuple[Metric, ...] = (MISSING_SHARE, OUT_OF_RANGE_SHARE, UNSEEN_CATEGORY_SHARE)

# ---------------------------------------------------------------- performance from ground truth (feedback)
ACCURACY = _m("accuracy", "gauge", "ratio", "Accuracy from joined ground truth.", "feedback")
PRECISION = _m("precision", "gauge", "ratio", "Precision from joined ground truth.", "feedback")
RECALL = _m("recall", "gauge", "ratio", "Recall from joined ground truth.", "feedback")
F1 = _m("f1", "gauge", "ratio", "F1 score from joined ground truth.", "feedback")
ROC_AUC = _m("roc_auc", "gauge", "ratio", "ROC-AUC from joined ground truth.", "feedback")
MAE = _m("mae", "gauge", "prediction units", "Mean absolute error from joined ground truth.", "feedback")
RMSE = _m("rmse", "gauge", "prediction units", "Root mean squared error from joined ground truth.", "feedback")
PERFORMANCE: Tuple[Metric, ...] = (ACCURACY, PRECISION, RECALL, F1, ROC_AUC, MAE, RMSE)
FEEDBACK_ROWS = _m("feedback_rows", "gauge", "labels", "Labels joined to predictions in the rolling view.", "feedback")

# ---------------------------------------------------------------- streaming detectors (detect)
CONCEPT_DRIFT = _m("concept_drift", "gauge", "boolean",
                   "1 when the streaming detector on the error stream fired in the rolling view.", "detect")
LATENCY_DRIFT = _m("latency_drift", "gauge", "boolean", "1 when the streaming detector on latency fired in the rolling view.", "detect")
ERROR_RATE_DRIFT = _m("error_rate_drift", "gauge", "boolean",
                      "1 when the streaming detector on the error rate fired in the rolling view.", "detect")
DETECTOR_SERIES: Dict[str, Metric] = {"concept": CONCEPT_DRIFT, "latency": LATENCY_DRIFT, "errors": ERROR_RATE_DRIFT}
"""The series of each streaming detector, by the detector's name in ``detectors:``."""

# ---------------------------------------------------------------- resources
CPU_PERCENT = _m("cpu_percent", "gauge", "percent of a core", "CPU use of the busiest replica (percent of one core).", "resources")
RSS_BYTES = _m("rss_bytes", "gauge", "bytes", "Resident memory of the largest replica.", "resources")
NODE_CPU_PERCENT = _m("node_cpu_percent", "gauge", "percent", "CPU use of the busiest node.", "resources")
NODE_MEMORY_PERCENT = _m("node_memory_percent", "gauge", "percent", "Memory use of the fullest node.", "resources")
MODEL_RESOURCES: Tuple[Metric, ...] = (CPU_PERCENT, RSS_BYTES, NODE_CPU_PERCENT, NODE_MEMORY_PERCENT)
GPU_UTILIZATION = _m("gpu_utilization", "gauge", "percent", "GPU utilization (percent).", "resources", ("gpu",))
GPU_MEMORY_USED_BYTES = _m("gpu_memory_used_bytes", "gauge", "bytes", "GPU memory used.", "resources", ("gpu",))
GPU_TEMPERATURE_CELSIUS = _m("gpu_temperature_celsius", "gauge", "celsius", "GPU temperature.", "resources", ("gpu",))
GPU_POWER_WATTS = _m("gpu_power_watts", "gauge", "watts", "GPU power draw.", "resources", ("gpu",))
GPU_SERIES: Tuple[Tuple[Metric, str], ...] = (
    (GPU_UTILIZATION, "utilization"), (GPU_MEMORY_USED_BYTES, "memory_used_bytes"),
    (GPU_TEMPERATURE_CELSIUS, "temperature_celsius"), (GPU_POWER_WATTS, "power_watts"))
"""Each GPU series with the key of the replica's GPU sample it reads."""
REPLICA_CPU_PERCENT = _m("replica_cpu_percent", "gauge", "percent of a core", "CPU use of one replica (percent of one core).",
                         "resources", ("replica",), rule=False)
REPLICA_RSS_BYTES = _m("replica_rss_bytes", "gauge", "bytes", "Resident memory of one replica.", "resources", ("replica",), rule=False)
REPLICA_RESOURCES: Tuple[Tuple[Metric, str], ...] = ((REPLICA_CPU_PERCENT, "cpu_percent"), (REPLICA_RSS_BYTES, "rss_bytes"))

# ---------------------------------------------------------------- the stats actor itself
ACTOR_BATCHES_TOTAL = _m("actor_batches_total", "counter", "batches", "Replica batches ingested by this stats actor.",
                         "actor", per_model=False, rule=False)
ACTOR_DUPLICATE_BATCHES_TOTAL = _m("actor_duplicate_batches_total", "counter", "batches",
                                   "Batches skipped as already ingested (same replica and seq).", "actor", per_model=False, rule=False)
ACTOR_FAILURES_TOTAL = _m("actor_failures_total", "counter", "failures",
                          "Failures of the stats actor's own code (ingest, detection, delivery hand-off).",
                          "actor", per_model=False, rule=False)
FEEDBACK_PENDING = _m("feedback_pending", "gauge", "entries", "Predictions and labels waiting to be joined.",
                      "feedback", per_model=False, rule=False)
FEEDBACK_EXPIRED_TOTAL = _m("feedback_expired_total", "counter", "entries",
                            "Predictions and labels expired or evicted before a join.", "feedback", per_model=False, rule=False)

# ---------------------------------------------------------------- the stats actor's own health (issue 11)
STORE_CORRUPT = _m("store_corrupt", "gauge", "boolean",
                   "1 for actor.store_alert_hold after the stats actor found its state file damaged or empty and "
                   "moved it aside (raywatch's built-in RaywatchStoreCorrupt alert).", "actor", ("actor",),
                   per_model=False)
STORE_MEMORY_ONLY = _m("store_memory_only", "gauge", "boolean",
                       "1 while the stats actor runs without its configured state file (nothing it holds survives a "
                       "restart; built-in alert RaywatchStoreMemoryOnly).", "actor", ("actor",), per_model=False)
STORE_WRITE_FAILING = _m("store_write_failing", "gauge", "boolean",
                         "1 while the stats actor's last write to its state file failed (ingest calls fail and "
                         "replicas retry; built-in alert RaywatchStoreWriteFailing).", "actor", ("actor",),
                         per_model=False)
STORE_JOURNAL_FULL = _m("store_journal_full", "gauge", "boolean",
                        "1 while the ingest journal is at actor.journal_max_bytes and cannot shrink (ingest calls "
                        "fail; built-in alert RaywatchJournalFull).", "actor", ("actor",), per_model=False)
STORE_JOURNAL_BYTES = _m("store_journal_bytes", "gauge", "bytes",
                         "Bytes of ingest journal entries not yet included in a checkpoint.", "actor", ("actor",),
                         per_model=False)
STORE_JOURNAL_ENTRIES = _m("store_journal_entries", "gauge", "entries",
                           "Ingest journal entries not yet included in a checkpoint.", "actor", ("actor",),
                           per_model=False, rule=False)
STORE_REPAIRS_TOTAL = _m("store_repairs_total", "counter", "files",
                         "State files found damaged or empty and moved aside since the stats actor started.", "actor",
                         ("actor",), per_model=False, rule=False)
STORE_WRITE_FAILURES_TOTAL = _m("store_write_failures_total", "counter", "writes",
                                "Writes to the state file that failed (journal, checkpoint, history).", "actor",
                                ("actor",), per_model=False, rule=False)
SELF_HEALTH: Tuple[Metric, ...] = (STORE_CORRUPT, STORE_MEMORY_ONLY, STORE_WRITE_FAILING, STORE_JOURNAL_FULL,
                                   STORE_JOURNAL_BYTES, STORE_JOURNAL_ENTRIES, STORE_REPAIRS_TOTAL,
                                   STORE_WRITE_FAILURES_TOTAL)
"""The stats actor's own health series (one sample each, labelled with the actor's name)."""
FEEDBACK_REFUSED_TOTAL = _m("feedback_refused_total", "counter", "labels",
                            "Labels the stats actor refused (too large, unknown model, too many distinct values, "
                            "pending labels full, not a plain value).", "feedback", ("reason",), per_model=False,
                            rule=False)
SUMMARIES_REFUSED_TOTAL = _m("summaries_refused_total", "counter", "summaries",
                             "Window summaries or latency sketches refused: they decode but fail the semantic checks "
                             "(negative or inconsistent counts, sizes, bounds).", "ingest", rule=False)

# ---------------------------------------------------------------- alerting (rules, deliver)
NOTIFICATIONS_SENT_TOTAL = _m("notifications_sent_total", "counter", "notifications", "Notifications accepted by a sink.",
                              "deliver", ("sink",), per_model=False, rule=False)
NOTIFICATIONS_RETRIED_TOTAL = _m("notifications_retried_total", "counter", "attempts", "Delivery attempts retried.",
                                 "deliver", ("sink",), per_model=False, rule=False)
NOTIFICATIONS_FAILED_TOTAL = _m("notifications_failed_total", "counter", "notifications", "Notifications given up on.",
                                "deliver", ("sink",), per_model=False, rule=False)
NOTIFICATIONS_DEAD_LETTERED_TOTAL = _m("notifications_dead_lettered_total", "counter", "notifications",
                                       "Notifications written to the dead-letter file.", "deliver", ("sink",),
                                       per_model=False, rule=False)
NOTIFICATION_QUEUE_LENGTH = _m("notification_queue_length", "gauge", "notifications", "Notifications waiting in a sink's queue.",
                               "deliver", ("sink",), per_model=False, rule=False)
NOTIFICATIONS_BEST_EFFORT_TOTAL = _m("notifications_best_effort_total", "counter", "notifications",
                                     "Notifications handed to a transport that never acknowledges (DogStatsD over UDP); "
                                     "not counted as sent.", "deliver", ("sink",), per_model=False, rule=False)
NOTIFICATIONS_SUPERSEDED_TOTAL = _m("notifications_superseded_total", "counter", "notifications",
                                    "Undelivered notifications dropped because a newer notification of the same group "
                                    "(or nothing left to say) replaced them.", "deliver", ("sink",), per_model=False, rule=False)
NOTIFICATION_FAILURES_TOTAL = _m("notification_failures_total", "counter", "failures",
                                 "Failures on the way to a sink, by stage: queue (the sink's queue was full), send (a "
                                 "delivery attempt failed), dead_letter (the dead-letter file could not be written).",
                                 "deliver", ("sink", "stage"), per_model=False, rule=False)
NOTIFICATION_FAILURE_STAGES = ("queue", "send", "dead_letter")
"""The values of :data:`NOTIFICATION_FAILURES_TOTAL`'s ``stage`` label."""
ALERT_STATE = _m("alert_state", "gauge", "state", "Alert state: 1 pending, 2 firing, 0 resolved.", "rules",
                 ("alertname", "severity", "feature", "method", "gpu"), rule=False)
ALERT_EVALUATION_DURATION_SECONDS = _m("alert_evaluation_duration_seconds", "histogram", "seconds",
                                       "Duration of one rule evaluation.", "rules", per_model=False, rule=False)
ALERT_FIRING = _m("alert_firing", "gauge", "boolean",
                  "1 while the alert fires, 0 once resolved; sent by the Datadog sink over DogStatsD, "
                  "tagged with the alert's labels.", "deliver", ("alertname", "severity"), per_model=False, rule=False,
                  datadog_name="raywatch.alert.firing")
ALERT_VALUE = _m("alert_value", "gauge", "the rule's metric",
                 "The value that crossed the rule's threshold; sent by the Datadog sink over DogStatsD while the "
                 "alert fires.", "deliver", ("alertname", "severity"), per_model=False, rule=False,
                 datadog_name="raywatch.alert.value")


# ---------------------------------------------------------------- payload log and remediation (issue 14)
PAYLOAD_LOG_ROWS_TOTAL = _m("payload_log_rows_total", "counter", "rows", "Request and label rows written to the payload log.",
                            "ingest", rule=False)
PAYLOAD_LOG_DROPPED_ROWS_TOTAL = _m("payload_log_dropped_rows_total", "counter", "rows",
                                    "Rows not written to the payload log: its in-memory bound was reached.", "ingest",
                                    rule=False)
PAYLOAD_LOG_DELETED_ROWS_TOTAL = _m("payload_log_deleted_rows_total", "counter", "rows",
                                    "Rows deleted from the payload log by retention (age or size).", "ingest", rule=False)
PAYLOAD_LOG_WRITE_ERRORS_TOTAL = _m("payload_log_write_errors_total", "counter", "errors",
                                    "Failed payload log writes (their rows wait for the next flush).", "ingest", rule=False)
REMEDIATION_STEPS_TOTAL = _m("remediation_steps_total", "counter", "steps",
                             "Remediation decision steps recorded in the audit trail, by step.", "deliver", ("step",),
                             rule=False)
REMEDIATION_PENDING_APPROVALS = _m("remediation_pending_approvals", "gauge", "decisions",
                                   "Remediation decisions waiting for raywatch approve or reject.", "deliver", rule=False)


# ---------------------------------------------------------------- lookups


def metric(name: str) -> Metric:
    """The catalogue entry of ``name``; KeyError naming the closest known names."""
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(_unknown(name)) from None


def rule_metrics() -> List[Metric]:
    """The metrics raywatch's own alert rules can use."""
    return [m for m in METRICS.values() if m.rule]


def close_names(name: str, known: Iterable[str], n: int = 3) -> List[str]:
    """Up to ``n`` of ``known`` that look like ``name`` (for "did you mean" messages)."""
    return difflib.get_close_matches(name, list(known), n=n, cutoff=0.6)


def _unknown(name: str) -> str:
    close = close_names(name, [m.name for m in rule_metrics()])
    hint = f" (did you mean {', '.join(close)}?)" if close else " (see the Metrics reference in the README)"
    return f"unknown metric {name!r}{hint}"


def check_selector(name: str, label_names: Iterable[str], extra_labels: Iterable[str] = ()) -> List[str]:
    """Problems with a rule selector: its metric must be a rule metric of the catalogue and
    every matcher label one of that metric's labels (or of ``extra_labels``, such as the
    segment labels). An empty list means the selector is fine."""
    m = METRICS.get(name)
    if m is None or not m.rule:
        return [_unknown(name)]
    allowed = list(m.all_labels) + [x for x in (*extra_labels, *segment_labels(name)) if x not in m.all_labels]
    problems = []
    for label in label_names:
        if label not in allowed:
            close = close_names(label, allowed)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            problems.append(f"metric {name!r} has no label {label!r}{hint}; its labels: {', '.join(allowed)}")
    return problems


def series_labels(base: Mapping[str, str], **extra: str) -> Dict[str, str]:
    """A series' label dict: the model labels of ``base`` plus ``extra``."""
    out = {k: str(base.get(k, "")) for k in MODEL_LABELS}
    out.update(extra)
    return out


def find(name: Optional[str]) -> Optional[Metric]:
    """The entry of ``name`` or None."""
    return METRICS.get(name) if name else None


# ---- issue 12: segments, fairness, attribution
SEGMENT_COLUMN, SEGMENT = "segment_column", "segment"
SEGMENT_LABELS: Tuple[str, ...] = (SEGMENT_COLUMN, SEGMENT)
"""The bounded label pair of a per-segment series: the segment column and its value (one of
the top K values, or ``__other__``)."""
SEGMENTED = frozenset(m.name for m in (
    ERROR_RATE, LATENCY_P50_SECONDS, LATENCY_P95_SECONDS, LATENCY_P99_SECONDS, DRIFT_SCORE, DRIFT_P_VALUE,
    DRIFT_DETECTED, DATASET_DRIFT, DRIFTED_FEATURES_SHARE, *QUALITY_SHARES, *PERFORMANCE, FEEDBACK_ROWS))
"""The model series also computed per segment, with :data:`SEGMENT_LABELS` added. A rule (or
an exported rule) that names neither label reads the model-wide series only; one that names
either reads the per-segment series, one alert per segment."""
SEGMENT_ROWS = _m("segment_rows", "gauge", "rows", "Feature rows of one segment in the rolling view.", "detect",
                  SEGMENT_LABELS)
SEGMENT_REQUESTS = _m("segment_requests", "gauge", "requests",
                      "Requests of one segment in the rolling view (route, version, replica and model-id segments: "
                      "every request; feature, header and attribute segments: the sampled ones).", "ingest",
                      SEGMENT_LABELS)
SEGMENT_MISSED_ROWS = _m("segment_missed_rows", "gauge", "rows",
                         "Upper bound on a segment's rows counted in __other__ (it entered the top K late); 0: its "
                         "figures cover all of its rows.", "detect", SEGMENT_LABELS)
SEGMENT_SERIES: Tuple[Metric, ...] = (SEGMENT_ROWS, SEGMENT_REQUESTS, SEGMENT_MISSED_ROWS)

_GROUP = ("attribute", "group")
FAIRNESS_GROUP_ROWS = _m("fairness_group_rows", "gauge", "rows", "Predictions of one group of a protected attribute "
                         "in the rolling view.", "feedback", _GROUP)
FAIRNESS_SELECTION_RATE = _m("fairness_selection_rate", "gauge", "ratio",
                             "P(prediction = favourable) in one group.", "feedback", _GROUP)
FAIRNESS_TRUE_POSITIVE_RATE = _m("fairness_true_positive_rate", "gauge", "ratio",
                                 "P(prediction = favourable | label = favourable) in one group.", "feedback", _GROUP)
FAIRNESS_FALSE_POSITIVE_RATE = _m("fairness_false_positive_rate", "gauge", "ratio",
                                  "P(prediction = favourable | label ≠ favourable) in one group.", "feedback", _GROUP)
FAIRNESS_PRECISION = _m("fairness_precision", "gauge", "ratio",
                        "P(label = favourable | prediction = favourable) in one group.", "feedback", _GROUP)
FAIRNESS_CALIBRATION_GAP = _m("fairness_calibration_gap", "gauge", "probability",
                              "Mean score minus observed favourable rate in one group.", "feedback", _GROUP)
FAIRNESS_DISPARATE_IMPACT_GROUP = _m("fairness_disparate_impact_group", "gauge", "ratio",
                                     "One group's selection rate over the reference group's.", "feedback", _GROUP)
FAIRNESS_GROUP_FIGURES: Tuple[Tuple[Metric, str], ...] = (
    (FAIRNESS_SELECTION_RATE, "selection_rate"), (FAIRNESS_TRUE_POSITIVE_RATE, "true_positive_rate"),
    (FAIRNESS_FALSE_POSITIVE_RATE, "false_positive_rate"), (FAIRNESS_PRECISION, "precision"),
    (FAIRNESS_CALIBRATION_GAP, "calibration_gap"), (FAIRNESS_DISPARATE_IMPACT_GROUP, "disparate_impact"))
"""Each per-group fairness series with the field of ``raywatch.drift.fairness.GroupFairness`` it reads."""
FAIRNESS_DEMOGRAPHIC_PARITY_DIFFERENCE = _m("fairness_demographic_parity_difference", "gauge", "ratio",
                                            "Largest minus smallest selection rate across groups.", "feedback",
                                            ("attribute",))
FAIRNESS_DEMOGRAPHIC_PARITY_RATIO = _m("fairness_demographic_parity_ratio", "gauge", "ratio",
                                       "Smallest over largest selection rate across groups.", "feedback", ("attribute",))
FAIRNESS_DISPARATE_IMPACT = _m("fairness_disparate_impact", "gauge", "ratio",
                               "Smallest ratio of a group's selection rate to the reference group's (the four-fifths "
                               "rule flags < 0.8).", "feedback", ("attribute",))
FAIRNESS_EQUALIZED_ODDS_DIFFERENCE = _m("fairness_equalized_odds_difference", "gauge", "ratio",
                                        "The larger of the true and false positive rates' spreads across groups.",
                                        "feedback", ("attribute",))
FAIRNESS_EQUAL_OPPORTUNITY_DIFFERENCE = _m("fairness_equal_opportunity_difference", "gauge", "ratio",
                                           "The true positive rate's spread across groups.", "feedback", ("attribute",))
FAIRNESS_FIGURES: Tuple[Tuple[Metric, str], ...] = (
    (FAIRNESS_DEMOGRAPHIC_PARITY_DIFFERENCE, "demographic_parity_difference"),
    (FAIRNESS_DEMOGRAPHIC_PARITY_RATIO, "demographic_parity_ratio"),
    (FAIRNESS_DISPARATE_IMPACT, "disparate_impact"),
    (FAIRNESS_EQUALIZED_ODDS_DIFFERENCE, "equalized_odds_difference"),
    (FAIRNESS_EQUAL_OPPORTUNITY_DIFFERENCE, "equal_opportunity_difference"))
"""Each cross-group fairness series with the field of ``raywatch.drift.fairness.FairnessReport`` it reads."""
FAIRNESS_CI_LOW = _m("fairness_ci_low", "gauge", "the figure's unit",
                     "Lower bound of a fairness figure's confidence interval (figure: the series name without "
                     "fairness_; group empty for a cross-group figure).", "feedback", ("attribute", "group", "figure"))
FAIRNESS_CI_HIGH = _m("fairness_ci_high", "gauge", "the figure's unit",
                      "Upper bound of a fairness figure's confidence interval.", "feedback",
                      ("attribute", "group", "figure"))

REPLICA_OUTLIER = _m("replica_outlier", "gauge", "boolean",
                     "1 when a replica's features, predictions or latency differ from its peers' (same deployment and "
                     "version) in the rolling view.", "detect", ("replica",))
REPLICA_OUTLIER_SCORE = _m("replica_outlier_score", "gauge", "ratio",
                           "A replica's largest effect over its floor among the columns that differ from its peers.",
                           "detect", ("replica",))
DRIFT_ATTRIBUTION_SHARE = _m("drift_attribution_share", "gauge", "ratio",
                             "Share of the prediction's mean shift a feature's drift explains (shift-share "
                             "decomposition), when the prediction drifted.", "detect", ("prediction", "feature"))


def segment_labels(name: str) -> Tuple[str, ...]:
    """The segment labels a rule on ``name`` may match (empty for a metric not computed per segment).

    >>> segment_labels("accuracy"), segment_labels("requests_total")
    (('segment_column', 'segment'), ())
    """
    m = METRICS.get(name)
    if name in SEGMENTED or (m is not None and m.labels[:2] == SEGMENT_LABELS):
        return SEGMENT_LABELS
    return ()
# ---- issue 13: estimation and multivariate drift (detect)
ESTIMATED_ACCURACY = _m("estimated_accuracy", "gauge", "ratio",
                        "Accuracy estimated without labels (CBPE) over the rolling view; assumes no concept drift.",
                        "detect")
ESTIMATED_PRECISION = _m("estimated_precision", "gauge", "ratio", "Precision estimated without labels (CBPE).", "detect")
ESTIMATED_RECALL = _m("estimated_recall", "gauge", "ratio", "Recall estimated without labels (CBPE).", "detect")
ESTIMATED_F1 = _m("estimated_f1", "gauge", "ratio", "F1 estimated without labels (CBPE).", "detect")
ESTIMATED_ROC_AUC = _m("estimated_roc_auc", "gauge", "ratio", "ROC AUC estimated without labels (CBPE).", "detect")
ESTIMATED: Dict[str, Metric] = {m.name: e for m, e in (
    (ACCURACY, ESTIMATED_ACCURACY), (PRECISION, ESTIMATED_PRECISION), (RECALL, ESTIMATED_RECALL), (F1, ESTIMATED_F1),
    (ROC_AUC, ESTIMATED_ROC_AUC))}
"""Each estimated series by the performance metric it estimates (``ESTIMATED["accuracy"]``)."""
ESTIMATED_PERFORMANCE_LOWER = _m("estimated_performance_lower", "gauge", "ratio",
                                 "Lower end of an estimated metric's band (estimate − drift.estimation.sigmas "
                                 "sampling errors).", "detect", ("metric",))
ESTIMATED_PERFORMANCE_UPPER = _m("estimated_performance_upper", "gauge", "ratio",
                                 "Upper end of an estimated metric's band.", "detect", ("metric",))
ESTIMATION_DIFFERENCE = _m("estimation_difference", "gauge", "ratio",
                           "Realized (from feedback) minus estimated performance over the rolling view.",
                           "feedback", ("metric",))
ESTIMATION_DISAGREEMENT = _m("estimation_disagreement", "gauge", "boolean",
                             "1 when realized performance left the estimate's band: what concept drift looks like "
                             "(the estimate assumes none).", "feedback", ("metric",))
CALIBRATION_ERROR = _m("calibration_error", "gauge", "probability",
                       "Expected calibration error of the profile's score calibration (largest over score columns).",
                       "detect")
CORRELATION_CHANGE_MAX = _m("correlation_change_max", "gauge", "correlation",
                            "Largest change of a pairwise correlation against the reference.", "detect")
CORRELATION_DRIFT_DETECTED = _m("correlation_drift_detected", "gauge", "boolean",
                                "1 when a pair of features changed its correlation (significant and large enough).",
                                "detect")
RECONSTRUCTION_ERROR = _m("reconstruction_error", "gauge", "standardized units",
                          "Mean PCA reconstruction error of the rolling view's rows.", "detect")
RECONSTRUCTION_ERROR_UPPER = _m("reconstruction_error_upper", "gauge", "standardized units",
                                "Upper end of the reference's band for the mean reconstruction error.", "detect")
RECONSTRUCTION_DRIFT_DETECTED = _m("reconstruction_drift_detected", "gauge", "boolean",
                                   "1 when the mean reconstruction error left the reference's band (multivariate "
                                   "drift).", "detect")
EMBEDDING_DRIFT_DETECTED = _m("embedding_drift_detected", "gauge", "boolean", "1 when a vector feature drifted.",
                              "detect", ("feature",))
EMBEDDING_MEAN_SHIFT = _m("embedding_mean_shift", "gauge", "statistic",
                          "Mahalanobis distance of a vector feature's projected mean from the reference's.",
                          "detect", ("feature",))
OUTLIER_SHARE = _m("outlier_share", "gauge", "ratio",
                   "Share of a feature's values beyond the reference's robust fences (IQR or MAD).", "detect",
                   ("feature",))
MULTIVARIATE_DRIFT = _m("multivariate_drift", "gauge", "boolean",
                        "1 when the correlation, reconstruction or an embedding test flags the rolling view.",
                        "detect")
