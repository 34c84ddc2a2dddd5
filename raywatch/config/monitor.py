"""The whole configuration of one monitored model, and the loaders every entry point uses
(``raywatch.monitor(...)``, the serve config's builder args, ``raywatch check-config``,
``deploy`` and ``export``, and YAML loaded from Python)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Set, Union

from pydantic import Field, ValidationInfo, field_validator, model_validator

from raywatch.config.aggregate import ActorConfig, DetectorsConfig, FeedbackConfig, WindowConfig
from raywatch.config.alerting import AlertingConfig
from raywatch.config.base import ConfigError, StrictModel, deep_merge, read_yaml, to_data, validate
from raywatch.config.detect import DriftConfig
from raywatch.config.estimate import ProfileConfig, check_run_times
from raywatch.config.remediate import PayloadLogConfig, RemediationConfig, check_remediation
from raywatch.config.replica import CaptureConfig, ResourcesConfig, ShippingConfig
from raywatch.config.segments import AttributionConfig, FairnessConfig, SegmentsConfig, check_segments

__all__ = ["MonitorConfig", "parse_config", "load_config"]


class MonitorConfig(StrictModel):
    """Everything ``raywatch.monitor(...)`` and the stats actor need for one model."""

    model: Optional[str] = None
    version: Optional[str] = None
    drift: DriftConfig = Field(default_factory=DriftConfig)
    alerting: AlertingConfig = Field(default_factory=AlertingConfig)
    actor: ActorConfig = Field(default_factory=ActorConfig)
    windows: WindowConfig = Field(default_factory=WindowConfig)
    feedback: FeedbackConfig = Field(default_factory=FeedbackConfig)
    detectors: DetectorsConfig = Field(default_factory=DetectorsConfig)
    capture: CaptureConfig = Field(default_factory=CaptureConfig)
    shipping: ShippingConfig = Field(default_factory=ShippingConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    payload_log: Optional[PayloadLogConfig] = None  # (issue 14) sampled requests kept for retraining
    remediation: Optional[RemediationConfig] = None  # (issue 14) alert → retrain → validate → roll out
    profile_path: Optional[str] = None
    # --- (issue 16; the replica's block) a profile_path that cannot be read fails monitor()
    # and the deploy, unless this is false: then the model starts without a reference profile
    profile_required: bool = True
    # --- (issue 12) who is affected: raywatch.config.segments
    segments: SegmentsConfig = Field(default_factory=SegmentsConfig)
    fairness: FairnessConfig = Field(default_factory=FairnessConfig)
    attribution: AttributionConfig = Field(default_factory=AttributionConfig)
    _segments_check = model_validator(mode="after")(check_segments)
    # --- (issue 13) the extensions `raywatch profile build --config` fits the profile with
    profile_options: ProfileConfig = Field(default_factory=ProfileConfig)

    @model_validator(mode="after")
    def _run_times(self) -> "MonitorConfig":
        check_run_times(self.drift, self.windows)  # (issue 13)
        return self

    @field_validator("remediation")
    @classmethod
    def _remediation(cls, v: Optional[RemediationConfig], info: ValidationInfo) -> Optional[RemediationConfig]:
        return check_remediation(v, info.data)  # (issue 14) payload_log and a remediation sink

    def to_data(self) -> Dict[str, Any]:
        """Plain JSON-able data that :meth:`from_data` reads back into an equal config:
        secrets as their ``${ENV}`` references (or masked), never resolved (see :func:`to_data`)."""
        return to_data(self)

    @classmethod
    def from_data(cls, data: Mapping[str, Any], source: Optional[str] = None, *,
                  unset_env: Optional[Set[str]] = None) -> "MonitorConfig":
        """The config of :meth:`to_data`'s data; ``${ENV}`` references are resolved again."""
        return validate(cls, data, source, unset_env=unset_env)

    def merged(self, overrides: Optional[Mapping[str, Any]], source: Optional[str] = None) -> "MonitorConfig":
        """This config with ``overrides`` (a partial mapping, e.g. ``user_config.raywatch``)
        merged in and validated again; secrets keep their references."""
        if not overrides:
            return self
        return validate(type(self), deep_merge(self.model_dump(mode="python", by_alias=True), overrides), source)


def parse_config(data: Any, model: Optional[type] = None, source: Optional[str] = None, *,
                 unset_env: Optional[Set[str]] = None) -> Any:
    """Validate a mapping (from YAML, JSON or Python) into ``model`` (default MonitorConfig).

    With ``unset_env`` (a set), ``${VAR}`` references to unset variables are not errors:
    their names are added to the set and the secret is left empty (``check-config
    --allow-unset-env`` and the exports, which never contain secrets, use this).

    >>> parse_config({"alerting": {"rules": [{"name": "E", "expr": 'error_rate{modle="x"} > 1'}]}}, source="m.yaml")
    Traceback (most recent call last):
    ...
    raywatch.config.base.ConfigError: m.yaml: alerting.rules[0].expr: metric 'error_rate' has no label 'modle' (did you mean model?); its labels: app, deployment, model, version, segment_column, segment
    """
    return validate(model or MonitorConfig, data, source, unset_env=unset_env)


def load_config(path: Union[str, Path], model: Optional[type] = None, key: Optional[str] = None, *,
                unset_env: Optional[Set[str]] = None) -> Any:
    """Load a YAML file into ``model`` (default MonitorConfig).

    ``key`` selects a sub-mapping (e.g. ``"raywatch"``) when the monitor's settings sit
    inside a larger file; ``unset_env`` as in :func:`parse_config`.
    """
    source = str(path)
    data = read_yaml(path)
    if key is not None:
        if not isinstance(data, Mapping) or key not in data:
            raise ConfigError([f"{source}: {key}: required section is missing"], source)
        data = data[key]
    return parse_config(data, model, source, unset_env=unset_env)
