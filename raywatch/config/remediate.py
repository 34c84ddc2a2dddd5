"""Settings of the last stage of the flow: the payload log and remediation.

``payload_log:`` keeps sampled requests (features after the allow-list and redaction,
prediction, score, request id, model, version, replica, UTC time) as Parquet files
partitioned by model, date and hour, on a local path or a filesystem URI (``s3://…``), and
the feedback labels beside them; :mod:`raywatch.payload` joins the two into the labelled
dataset that retraining reads. It needs the ``raywatch[log]`` extra (pyarrow).

``remediation:`` (per model) says which alerts start a retrain (``trigger``), the
guardrails around it, the ``retrain`` function run as a Ray task, the validation gate and
the rollout (shadow, then canary, then promotion or rollback). See :mod:`raywatch.remediate`.

>>> cfg = RemediationConfig.model_validate({"retrain": {"function": "my_pkg.train:retrain"},
...                                          "guardrails": {"min_interval": "6h"}})
>>> cfg.trigger.alerts, cfg.guardrails.min_interval, cfg.validation.metric, cfg.rollout.canary.share
(['FeatureDrift', 'DatasetDrift', 'ConceptDrift', 'AccuracyDrop', 'EstimatedPerformanceDrop'], 21600.0, 'accuracy', 0.1)
>>> PayloadLogConfig.model_validate({"path": "s3://bucket/rw", "max_age": "30d"}).max_age
2592000.0
"""

from __future__ import annotations

from typing import Any, Dict, List, Literal, Mapping, Optional

from pydantic import Field, field_validator, model_validator

from raywatch import series
from raywatch.config.alerting import Matchers
from raywatch.config.base import Duration, ImportPath, PositiveDuration, Secret, StrictModel
from raywatch.config.detect import DriftConfig
from raywatch.config.sinks import SinkConfig

__all__ = [
    "PayloadLogConfig", "TriggerConfig", "GuardrailsConfig", "RetrainConfig", "ValidationConfig",
    "ShadowConfig", "CanaryGuardsConfig", "CanaryConfig", "RolloutConfig", "RemediationConfig",
    "RemediationSettings", "settings_of", "check_remediation", "GATE_METRICS", "ESTIMATED_METRICS",
    "CANDIDATE_SUFFIX",
]

GATE_METRICS = (series.ACCURACY.name, series.F1.name, series.ROC_AUC.name, "log_loss", series.MAE.name, series.RMSE.name)
"""Metrics the validation gate computes (``log_loss``, ``mae`` and ``rmse``: lower is better)."""

ESTIMATED_METRICS = (series.ACCURACY.name, series.PRECISION.name, series.RECALL.name, series.F1.name, series.ROC_AUC.name)
"""Metrics the canary's estimated-performance guard can estimate without labels (CBPE)."""

CANDIDATE_SUFFIX = "-rw-candidate"
"""The name of a candidate's application: the model's application name and this suffix."""


# --------------------------------------------------------------------------- payload log


class PayloadLogConfig(StrictModel):
    """Sampled requests kept as Parquet, for retraining once labels arrive.

    ``path``: a local folder (created owner-only) or a URI pyarrow understands
    (``s3://bucket/prefix``; ``gs://…``). ``filesystem``: options for that filesystem, e.g.
    ``{endpoint_override: "http://127.0.0.1:9000", region: "us-east-1", scheme: "http"}``;
    S3 keys come from the usual AWS environment or from ``access_key``/``secret_key``
    (secrets: ``${ENV}`` references). ``sample_rate`` applies to the requests the capture
    already sampled. Files roll every ``flush_interval`` or ``max_rows_per_file`` rows;
    at most ``max_pending_rows`` wait in memory (beyond: dropped and counted). Retention
    deletes whole files older than ``max_age`` and then the oldest until the log holds at
    most ``max_bytes``; what it deletes is counted.
    """

    enabled: bool = True
    path: str
    filesystem: Dict[str, Any] = Field(default_factory=dict)
    access_key: Optional[Secret] = None
    secret_key: Optional[Secret] = None
    sample_rate: float = Field(1.0, ge=0.0, le=1.0)
    flush_interval: PositiveDuration = 60.0
    max_rows_per_file: int = Field(50_000, ge=1)
    max_pending_rows: int = Field(200_000, ge=1)
    max_bytes: int = Field(10 * 2**30, ge=1)
    max_age: PositiveDuration = 30 * 86400.0
    compression: Literal["zstd", "snappy", "gzip", "none"] = "zstd"


# --------------------------------------------------------------------------- remediation


class TriggerConfig(StrictModel):
    """Which alerts start remediation: a firing alert whose name is in ``alerts`` (globs
    allowed) and whose labels match every one of ``matchers`` (``severity=~"warning|critical"``)."""

    alerts: List[str] = Field(default_factory=lambda: ["FeatureDrift", "DatasetDrift", "ConceptDrift", "AccuracyDrop",
                                                       "EstimatedPerformanceDrop"], min_length=1)
    matchers: Matchers = Field(default_factory=list)


class GuardrailsConfig(StrictModel):
    """Limits around retraining. ``min_interval``: between two retrains of the model (a
    trigger inside it is recorded as skipped); ``max_per_day``: retrains in any 24 hours;
    ``min_labelled_rows``: labelled rows the data window must hold; ``dry_run``: decide and
    record everything, deploy nothing; ``require_approval``: wait for ``raywatch approve``
    (or ``reject``) before retraining, at most ``approval_timeout``."""

    min_interval: Duration = 6 * 3600.0
    max_per_day: int = Field(4, ge=1)
    min_labelled_rows: int = Field(1000, ge=1)
    dry_run: bool = False
    require_approval: bool = False
    approval_timeout: PositiveDuration = 24 * 3600.0


class RetrainConfig(StrictModel):
    """The retrain action: ``function`` (``"my_pkg.train:retrain"``) runs as a Ray task with
    these resources. It receives a :class:`raywatch.remediate.RetrainContext` (the labelled
    dataset as a Ray Dataset, the reference profile, the current version, the trigger) and
    returns a :class:`raywatch.remediate.Candidate` (artifact URI, version, training profile).
    ``window``: how far back the labelled dataset reaches; ``holdout``: the share of the
    newest labelled rows held back for the validation gate (never given to ``function``)."""

    function: ImportPath
    num_cpus: float = Field(1.0, ge=0)
    num_gpus: float = Field(0.0, ge=0)
    memory: Optional[int] = Field(None, ge=0)
    resources: Dict[str, float] = Field(default_factory=dict)
    timeout: PositiveDuration = 3600.0
    window: PositiveDuration = 7 * 86400.0
    holdout: float = Field(0.2, gt=0.0, lt=1.0)


class ValidationConfig(StrictModel):
    """The gate between a candidate and production.

    ``predict`` (``"my_pkg.train:predict"``) is called as ``predict(artifact_uri, frame)``
    (a pandas DataFrame of feature columns) and returns the predictions, or for ``roc_auc``
    and ``log_loss`` the scores. The champion is scored by the predictions it logged for the
    same held-back rows. The candidate passes when its ``metric`` beats the champion's by at
    least ``min_improvement`` and the paired bootstrap interval (``bootstrap`` resamples,
    level ``confidence``) of the difference excludes zero; and when the share of features of
    recent production (``residual_window``) that drift from the candidate's training profile
    is at most ``max_residual_drift_share``."""

    predict: ImportPath = None
    metric: str = series.ACCURACY.name
    min_improvement: float = Field(0.0, ge=0.0)
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    bootstrap: int = Field(1000, ge=100, le=100_000)
    min_holdout_rows: int = Field(100, ge=10)
    max_residual_drift_share: float = Field(0.25, ge=0.0, le=1.0)
    residual_window: PositiveDuration = 3600.0
    seed: int = 0

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str) -> str:
        if v not in GATE_METRICS:
            raise ValueError(f"expected one of {', '.join(GATE_METRICS)}, got {v!r}")
        return v


class ShadowConfig(StrictModel):
    """The candidate first gets a fire-and-forget mirror of live requests for ``duration``
    (and at least ``min_requests`` mirrored answers). At most ``max_in_flight`` mirrored
    calls per router replica are outstanding (beyond: not mirrored, counted); a mirrored
    call is abandoned after ``timeout``. It passes with an agreement with the champion of
    at least ``min_agreement`` and a share of failed mirrored calls of at most ``max_error_rate``."""

    enabled: bool = True
    duration: PositiveDuration = 600.0
    min_requests: int = Field(100, ge=1)
    max_in_flight: int = Field(64, ge=1)
    timeout: PositiveDuration = 5.0
    min_agreement: float = Field(0.0, ge=0.0, le=1.0)
    max_error_rate: float = Field(0.05, ge=0.0, le=1.0)


class CanaryGuardsConfig(StrictModel):
    """Guard rules on the candidate's share of traffic, checked as figures arrive: a breach
    rolls back at once. ``max_latency_p95_ratio``: candidate p95 over champion p95.

    Realized performance (off unless ``max_realized_drop`` is set): the candidate's
    ``validation.metric`` on the canary requests it answered that have their labels (the
    payload log's labelled dataset), against the champion's on the requests it answered in the
    same period; a drop of more than ``max_realized_drop`` rolls back, checked once each side
    has ``min_labelled_for_realized`` labelled requests (before that, no verdict: the canary
    is not held back for labels that have not come).

    Estimated performance (off unless ``max_estimated_drop`` is set), for before the labels
    come: ``estimated_metric`` (default ``validation.metric``; one of
    :data:`ESTIMATED_METRICS`) estimated label-free (CBPE) from the scores each arm gave,
    each with its own calibration (the candidate's from its training profile, the champion's
    from the reference profile); a drop of more than ``max_estimated_drop`` that also exceeds
    the estimates' sampling error (``drift.estimation.sigmas``) rolls back, checked once each
    side has ``min_rows_for_estimated`` scored requests (:mod:`raywatch.remediate.estimated`)."""

    max_error_rate: float = Field(0.02, ge=0.0, le=1.0)
    max_latency_p95: Optional[PositiveDuration] = None
    max_latency_p95_ratio: Optional[float] = Field(3.0, gt=0.0)
    min_requests_for_latency: int = Field(20, ge=1)
    max_realized_drop: Optional[float] = Field(None, ge=0.0)
    min_labelled_for_realized: int = Field(50, ge=1)
    max_estimated_drop: Optional[float] = Field(None, ge=0.0)
    estimated_metric: Optional[str] = None
    min_rows_for_estimated: int = Field(50, ge=1)

    @field_validator("estimated_metric")
    @classmethod
    def _estimated_metric(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and v not in ESTIMATED_METRICS:
            raise ValueError(f"expected one of {', '.join(ESTIMATED_METRICS)}, got {v!r}")
        return v


class CanaryConfig(StrictModel):
    """A ``share`` of live traffic goes to the candidate; holding the guards for ``duration``
    (and at least ``min_requests`` requests) promotes it. A candidate's call that fails or
    takes longer than ``timeout`` counts against it, and the champion answers the request."""

    enabled: bool = True
    share: float = Field(0.1, gt=0.0, le=1.0)
    timeout: PositiveDuration = 5.0
    duration: PositiveDuration = 900.0
    min_requests: int = Field(100, ge=1)
    guards: CanaryGuardsConfig = Field(default_factory=CanaryGuardsConfig)


class RolloutConfig(StrictModel):
    """How the candidate reaches Serve. The model's deployment loads its artifact from its
    ``user_config`` (``artifact_key``, ``version_key``) in ``reconfigure``; the candidate is
    the same application deployed beside it (``<app>-rw-candidate``, no route) with the
    candidate's ``user_config``; promotion applies that ``user_config`` to the champion's
    deployment through Serve's declarative config (replicas reconfigure in place, no restart);
    rollback deletes the candidate application. ``application`` / ``deployment`` default to
    the model's labels. ``serve_config``: a serve config YAML to write the promoted
    ``user_config`` back into (left alone when unset: the audit record then has the patch)."""

    application: Optional[str] = None
    deployment: Optional[str] = None
    artifact_key: str = "artifact"
    version_key: str = "version"
    serve_config: Optional[str] = None
    ready_timeout: PositiveDuration = 300.0
    shadow: ShadowConfig = Field(default_factory=ShadowConfig)
    canary: CanaryConfig = Field(default_factory=CanaryConfig)


class RemediationConfig(StrictModel):
    """Closing the loop for one model: alert → retrain → validate → shadow → canary →
    promote (or roll back), every decision in the audit trail and told to the sinks."""

    enabled: bool = True
    trigger: TriggerConfig = Field(default_factory=TriggerConfig)
    guardrails: GuardrailsConfig = Field(default_factory=GuardrailsConfig)
    retrain: RetrainConfig
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    notify: List[str] = Field(default_factory=list, description="sink names told of every decision (empty: all)")

    @field_validator("notify")
    @classmethod
    def _names(cls, v: List[str]) -> List[str]:
        return [s.strip() for s in v if s.strip()]

    @model_validator(mode="after")
    def _estimated(self) -> "RemediationConfig":
        g = self.rollout.canary.guards
        if g.max_estimated_drop is not None and g.estimated_metric is None:
            if self.validation.metric not in ESTIMATED_METRICS:
                raise ValueError(f"rollout.canary.guards.max_estimated_drop: validation.metric {self.validation.metric!r} "
                                 f"has no label-free estimate; set rollout.canary.guards.estimated_metric to one of "
                                 f"{', '.join(ESTIMATED_METRICS)}")
        return self

    def estimated_metric(self) -> str:
        """The metric the canary's estimated-performance guard compares."""
        return self.rollout.canary.guards.estimated_metric or self.validation.metric


class RemediationSettings(StrictModel):
    """What the remediation controller is told of one model: the slice of the model's
    configuration it reads (``model``, ``version``, ``remediation``, ``payload_log``, the
    alerting sinks that hear of decisions, the drift settings of the residual-drift check).
    The stats actor registers it from the model's ``MonitorConfig``
    (``/work/coord/hooks-14.md``)."""

    model: Optional[str] = None
    version: Optional[str] = None
    remediation: RemediationConfig
    payload_log: PayloadLogConfig
    sinks: List[SinkConfig] = Field(default_factory=list)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    profile: Optional[bytes] = Field(None, description="the model's reference profile (codec bytes), for the retrain")


def check_remediation(rem: Optional[RemediationConfig], fields: Mapping[str, Any]) -> Optional[RemediationConfig]:
    """A model's ``remediation`` checked against the fields validated before it
    (``payload_log``, ``alerting``): the retrain reads the payload log, and alerts reach the
    controller through a ``remediation`` sink. ValueError (naming what to add) otherwise.

    >>> check_remediation(RemediationConfig(retrain={"function": "m:f"}), {"payload_log": None})
    Traceback (most recent call last):
    ...
    ValueError: needs payload_log: the retrain reads the logged, labelled requests
    """
    if rem is None or not rem.enabled:
        return rem
    if fields.get("payload_log") is None:
        raise ValueError(_NEEDS_PAYLOAD_LOG)
    alerting = fields.get("alerting")
    if alerting is not None and not any(s.type == "remediation" for s in alerting.sinks):
        raise ValueError("alerts reach the remediation controller through a sink of type remediation: add "
                         "{name: remediation, type: remediation} to alerting.sinks (with a route, route it the "
                         "alerts that may retrain)")
    return rem


_NEEDS_PAYLOAD_LOG = "needs payload_log: the retrain reads the logged, labelled requests"


def settings_of(cfg: Any, profile: Optional[bytes] = None) -> Optional[RemediationSettings]:
    """The :class:`RemediationSettings` of a model's configuration (a ``MonitorConfig`` once
    it has ``payload_log`` and ``remediation``), or None when it does not remediate.

    >>> from types import SimpleNamespace
    >>> cfg = SimpleNamespace(model="fraud", version="v1", remediation=RemediationConfig(retrain={"function": "m:f"}),
    ...                       payload_log=PayloadLogConfig(path="/tmp/p"), alerting=SimpleNamespace(sinks=[]),
    ...                       drift=DriftConfig())
    >>> settings_of(cfg).remediation.retrain.function, settings_of(SimpleNamespace(remediation=None))
    ('m:f', None)
    """
    rem = getattr(cfg, "remediation", None)
    if rem is None or not rem.enabled:
        return None
    plog = getattr(cfg, "payload_log", None)
    if plog is None:
        raise ValueError(f"remediation {_NEEDS_PAYLOAD_LOG}")
    alerting = getattr(cfg, "alerting", None)
    return RemediationSettings(model=getattr(cfg, "model", None), version=getattr(cfg, "version", None),
                               remediation=rem, payload_log=plog, sinks=list(getattr(alerting, "sinks", None) or []),
                               drift=getattr(cfg, "drift", None) or DriftConfig(), profile=profile)
