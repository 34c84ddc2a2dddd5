"""One pydantic schema for everything a user writes, in YAML or in Python.

Every model forbids unknown keys, so a typo is an error rather than a silently ignored
setting. :func:`load_config` and :func:`parse_config` turn pydantic's validation errors
into a :class:`ConfigError` whose lines name the file, the field path and what was
expected, e.g.::

    monitor.yaml: alerting.rules[0].for: expected a duration such as '30s' or '5m', got 'soon'

Secrets (webhook URLs, API keys, tokens) are :class:`pydantic.SecretStr`; a value of the
form ``${ENV_VAR}`` is read from the environment when the config is loaded, so YAML files
can be committed without secrets in them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Dict, List, Literal, Mapping, Optional, Union

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

__all__ = [
    "ConfigError",
    "Duration",
    "Secret",
    "StrictModel",
    "parse_duration",
    "load_config",
    "parse_config",
    "DriftConfig",
    "ColumnDriftConfig",
    "AlertingConfig",
    "MonitorConfig",
]


class ConfigError(ValueError):
    """A configuration could not be loaded; ``str(err)`` has one line per problem."""

    def __init__(self, problems: List[str], source: Optional[str] = None):
        self.problems = list(problems)
        self.source = source
        super().__init__("\n".join(self.problems))


# --------------------------------------------------------------------------- helpers

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """Seconds from ``30``, ``1.5``, ``'250ms'``, ``'30s'``, ``'5m'``, ``'2h'`` or ``'1d'``.

    >>> parse_duration("5m"), parse_duration("250ms"), parse_duration(3)
    (300.0, 0.25, 3.0)
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '30s' or '5m', got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = _DURATION_RE.match(str(value))
        if not m:
            raise ValueError(f"expected a duration such as '30s' or '5m', got {value!r}")
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds < 0 or seconds != seconds:
        raise ValueError(f"expected a non-negative duration, got {value!r}")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand_env(value: Any) -> Any:
    if isinstance(value, str) and "${" in value:

        def sub(m: "re.Match[str]") -> str:
            name = m.group(1)
            if name not in os.environ:
                raise ValueError(f"environment variable {name} is not set")
            return os.environ[name]

        return _ENV_RE.sub(sub, value)
    return value


Secret = Annotated[SecretStr, BeforeValidator(_expand_env)]
"""A secret string; ``${ENV_VAR}`` references are resolved at load time."""


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _problems(err: ValidationError, source: Optional[str]) -> List[str]:
    prefix = f"{source}: " if source else ""
    lines = []
    for e in err.errors(include_url=False):
        # drop pydantic's tagged-union / function-wrapper noise from the location
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
        msg = e["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if e["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see the YAML reference in the README)"
        elif e["type"] == "missing":
            msg = "required field is missing"
        elif "input" in e and e["type"] not in ("value_error",):
            inp = e["input"]
            if not isinstance(inp, (dict, list)):
                msg = f"{msg}, got {inp!r}"
        lines.append(f"{prefix}{_loc(loc)}: {msg}")
    return lines


def parse_config(data: Any, model: type = None, source: Optional[str] = None):
    """Validate a mapping (from YAML, JSON or Python) into ``model`` (default MonitorConfig)."""
    model = model or MonitorConfig
    if isinstance(data, model):
        return data
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError([f"{source or 'config'}: expected a mapping at the top level, got {type(data).__name__}"], source)
    try:
        return model.model_validate(dict(data))
    except ValidationError as err:
        raise ConfigError(_problems(err, source), source) from None


def load_config(path: Union[str, Path], model: type = None, key: Optional[str] = None):
    """Load a YAML file into ``model`` (default MonitorConfig).

    ``key`` selects a sub-mapping (e.g. ``"raywatch"``) when the monitor's settings sit
    inside a larger file.
    """
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([f"{source}: cannot read the file: {exc.strerror or exc}"], source) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError([f"{source}: not valid YAML{where}: {getattr(exc, 'problem', exc)}"], source) from None
    if key is not None:
        if not isinstance(data, Mapping) or key not in data:
            raise ConfigError([f"{source}: {key}: required section is missing"], source)
        data = data[key]
    return parse_config(data, model, source)


# ============================================================================ drift
# Owned by the drift engine (raywatch/drift). Thresholds are per method; see
# raywatch/drift/methods.py for what each statistic means.


class ColumnDriftConfig(StrictModel):
    """Per-column override of the drift method and its threshold."""

    method: Optional[str] = None
    threshold: Optional[float] = None


class DriftConfig(StrictModel):
    """How drift is tested. See ``raywatch.drift.detect_drift``."""

    correction: Literal["bonferroni", "bh", "none"] = "bonferroni"
    alpha: float = Field(0.05, gt=0, lt=1)
    drift_share: float = Field(0.5, gt=0, le=1)
    min_rows: int = Field(30, ge=1)
    columns: Dict[str, ColumnDriftConfig] = Field(default_factory=dict)


# ========================================================================= alerting
# Owned by the alerting engine (raywatch/alerts, raywatch/sinks).


class AlertingConfig(StrictModel):
    """Rules, routing and sinks. See ``raywatch.alerts``."""

    rules: List[Dict[str, Any]] = Field(default_factory=list)
    sinks: List[Dict[str, Any]] = Field(default_factory=list)


# ========================================================================== monitor
# Owned by the sidecar (raywatch/serve) and the stats actor (raywatch/actor).


# ---------------------------------------------------------------- stats actor (stream D)
# Owned by the stats actor (raywatch/actor). Actor-wide settings come from the config of
# whoever creates the actor first; feedback/detectors are read per model.


class ActorConfig(StrictModel):
    """Where the stats actor lives, how it is sharded, persisted and exposed."""

    name: str = "raywatch-stats"
    namespace: str = "raywatch"
    shards: int = Field(1, ge=1, le=256)
    num_cpus: float = Field(0.0, ge=0)
    max_restarts: int = Field(-1, ge=-1)
    pin_to_head: bool = True
    sqlite_path: Optional[str] = "~/.raywatch/raywatch-stats.sqlite"
    journal: bool = True
    checkpoint_interval: Duration = 5.0
    history_retention: Duration = 7 * 86400.0
    metrics_host: str = "127.0.0.1"
    metrics_port: Optional[int] = Field(9464, ge=0, le=65535)
    dogstatsd_host: Optional[str] = None
    dogstatsd_port: int = Field(8125, ge=1, le=65535)
    dogstatsd_tags: List[str] = Field(default_factory=list)
    replica_ttl: Duration = 120.0

    def shard_name(self, shard: int) -> str:
        """Actor name of ``shard``: ``name`` alone when unsharded, else ``name-<shard>``."""
        return self.name if self.shards == 1 else f"{self.name}-{shard}"


class WindowConfig(StrictModel):
    """Tumbling windows (by event time), the rolling view and how often rules run."""

    length: Duration = 60.0
    rolling: int = Field(5, ge=1, le=1000)
    grace: Duration = 5.0
    evaluation_interval: Duration = 10.0

    @field_validator("length", "evaluation_interval")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("expected a positive duration")
        return v


class FeedbackConfig(StrictModel):
    """Ground truth: how labels are joined to predictions and scored."""

    task: Literal["classification", "regression"] = "classification"
    ttl: Duration = 3600.0
    max_pending: int = Field(100_000, ge=1)
    positive_label: Any = 1


class StreamDetectorConfig(StrictModel):
    """One streaming detector (see ``raywatch.drift.streaming.make_detector``)."""

    enabled: bool = True
    method: str = "page_hinkley"
    params: Dict[str, Any] = Field(default_factory=dict)


class DetectorsConfig(StrictModel):
    """Streaming detectors the stats actor runs per model."""

    latency: StreamDetectorConfig = Field(default_factory=lambda: StreamDetectorConfig(method="page_hinkley"))
    errors: StreamDetectorConfig = Field(default_factory=lambda: StreamDetectorConfig(method="adwin"))
    concept: StreamDetectorConfig = Field(default_factory=lambda: StreamDetectorConfig(method="adwin"))


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
