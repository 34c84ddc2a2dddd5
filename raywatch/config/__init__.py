"""One pydantic schema for everything a user writes, in YAML or in Python.

The declarations follow the flow of DESIGN.md, one module of ``raywatch.config`` per stage:

=========== ==========================================================================
module      declares
=========== ==========================================================================
base        errors, durations, secrets with ``${ENV}`` references, plain data
            (:func:`to_data`), :func:`deep_merge`, the YAML reader and the one formatter
            of validation errors
replica     capture, shipping, resources (in every replica)
aggregate   windows, actor, feedback, detectors (the stats actor)
detect      drift tests
estimate    profile extensions and their tests, false alarms in time (issue 13)
alerting    rules (checked against the metric catalogue), route, inhibition, silences
segments    segments, fairness and attribution (issue 12), and the rules they add
sinks       sinks and their delivery settings
remediate   payload log and remediation (issue 14)
monitor     :class:`MonitorConfig`, :func:`parse_config`, :func:`load_config`
app         the serve-app builder's arguments
=========== ==========================================================================

Every public name is importable from ``raywatch.config``. Every model forbids unknown keys,
and every error names the file, the field path and what was expected, e.g.::

    monitor.yaml: alerting.rules[0].expr: unknown metric 'latency_p59_seconds' (did you mean latency_p99_seconds, latency_p95_seconds, ...?)
"""

from __future__ import annotations

from raywatch.config.base import (
    MASK,
    ConfigError,
    Duration,
    EnvSecret,
    ImportPath,
    PositiveDuration,
    Secret,
    StrictModel,
    _loc,
    _problems,
    deep_merge,
    env_references,
    has_masked_secrets,
    import_path_of,
    parse_duration,
    read_yaml,
    secret_text,
    secret_values,
    to_data,
    validate,
)
from raywatch.config.replica import CaptureConfig, ResourcesConfig, ShippingConfig
from raywatch.config.aggregate import ActorConfig, DetectorsConfig, FeedbackConfig, StreamDetectorConfig, WindowConfig
from raywatch.config.detect import ColumnDriftConfig, DriftConfig, DriftMethod
from raywatch.config.sinks import (
    DIRECT_SINK_TYPES,
    SINK_TYPES,
    AlertmanagerSinkConfig,
    DatadogSinkConfig,
    EmailSinkConfig,
    LogSinkConfig,
    PagerDutySinkConfig,
    RemediationSinkConfig,
    RetryConfig,
    SinkConfig,
    SlackSinkConfig,
    WebhookSinkConfig,
)
from raywatch.config.alerting import (
    AlertingConfig,
    AlertRuleConfig,
    InhibitRuleConfig,
    Matchers,
    RouteConfig,
    Severity,
    SilenceConfig,
    WATCHDOG_ALERTNAME,
    WatchdogConfig,
)
from raywatch.config.segments import (AttributionConfig, FairnessAttributeConfig, FairnessConfig, ReplicaOutlierConfig,
                                      SegmentColumnConfig, SegmentsConfig, default_rules, with_default_rules)
from raywatch.config.estimate import (CorrelationTestConfig, EmbeddingTestConfig, EstimationTestConfig, OutlierFencesConfig,
                                      OutlierTestConfig, PCAConfig, PerformanceEstimationConfig, ProfileConfig,
                                      ReconstructionTestConfig, VectorFeatureConfig)
from raywatch.config.remediate import (
    GATE_METRICS,
    CanaryConfig,
    CanaryGuardsConfig,
    GuardrailsConfig,
    PayloadLogConfig,
    RemediationConfig,
    RemediationSettings,
    RetrainConfig,
    RolloutConfig,
    ShadowConfig,
    TriggerConfig,
    ValidationConfig,
    settings_of,
)
from raywatch.config.monitor import MonitorConfig, load_config, parse_config
from raywatch.config.app import APP_ARGS_SOURCE, ApplicationArgs, MonitoredAppArgs, validate_args

__all__ = [
    # base
    "ConfigError", "parse_duration", "Duration", "PositiveDuration", "MASK", "EnvSecret", "Secret",
    "env_references", "secret_text", "has_masked_secrets", "secret_values", "deep_merge", "import_path_of",
    "to_data", "StrictModel", "ImportPath", "validate", "read_yaml",
    # replica
    "CaptureConfig", "ShippingConfig", "ResourcesConfig",
    # aggregate
    "WindowConfig", "ActorConfig", "FeedbackConfig", "StreamDetectorConfig", "DetectorsConfig",
    # detect
    "DriftMethod", "ColumnDriftConfig", "DriftConfig",
    # alerting
    "Severity", "Matchers", "AlertRuleConfig", "RouteConfig", "InhibitRuleConfig", "SilenceConfig",
    "AlertingConfig", "WatchdogConfig", "WATCHDOG_ALERTNAME",
    # sinks
    "RetryConfig", "SlackSinkConfig", "DatadogSinkConfig", "AlertmanagerSinkConfig", "PagerDutySinkConfig",
    "WebhookSinkConfig", "EmailSinkConfig", "LogSinkConfig", "RemediationSinkConfig", "SinkConfig", "SINK_TYPES",
    "DIRECT_SINK_TYPES",
    # segments, fairness, attribution (issue 12)
    "SegmentColumnConfig", "SegmentsConfig", "FairnessAttributeConfig", "FairnessConfig", "ReplicaOutlierConfig",
    "AttributionConfig", "default_rules", "with_default_rules",
    # estimate (issue 13)
    "PerformanceEstimationConfig", "PCAConfig", "OutlierFencesConfig", "VectorFeatureConfig", "ProfileConfig",
    "EstimationTestConfig", "CorrelationTestConfig", "ReconstructionTestConfig", "EmbeddingTestConfig", "OutlierTestConfig",
    # remediate
    "PayloadLogConfig", "TriggerConfig", "GuardrailsConfig", "RetrainConfig", "ValidationConfig", "ShadowConfig",
    "CanaryGuardsConfig", "CanaryConfig", "RolloutConfig", "RemediationConfig", "RemediationSettings", "settings_of",
    "GATE_METRICS",
    # monitor
    "MonitorConfig", "parse_config", "load_config",
    # serve-app builder
    "ApplicationArgs", "MonitoredAppArgs", "validate_args", "APP_ARGS_SOURCE",
]
