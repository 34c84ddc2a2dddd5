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
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Dict, List, Literal, Mapping, Optional, Set, Union

import yaml
from pydantic import (
    Discriminator,
    Tag,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    WrapValidator,
    field_validator,
    model_validator,
)

__all__ = [
    "ConfigError",
    "EnvSecret",
    "MASK",
    "deep_merge",
    "to_data",
    "has_masked_secrets",
    "secret_values",
    "read_yaml",
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
MASK = "**********"
"""What a secret becomes when it is written out and has no ``${ENV}`` reference (pydantic's mask)."""


class EnvSecret(SecretStr):
    """A :class:`~pydantic.SecretStr` that remembers the ``${ENV_VAR}`` text it was resolved
    from (``reference``), so that a configuration is stored and shown with its references and
    resolved again when it is loaded: a resolved secret is never written out."""

    __slots__ = ("reference",)

    def __init__(self, secret_value: str, reference: Optional[str] = None):
        super().__init__(secret_value)
        self.reference = reference

    def __reduce__(self):  # pickles (Ray's transport between processes) keep the reference
        return (EnvSecret, (self.get_secret_value(), self.reference))


def env_references(text: str) -> List[str]:
    """The environment variables a ``${VAR}`` text refers to.

    >>> env_references("https://hooks.example/${TEAM}/${TOKEN}")
    ['TEAM', 'TOKEN']
    """
    return _ENV_RE.findall(text)


def _secret(value: Any, handler: Any, info: ValidationInfo) -> SecretStr:
    """Validate a secret: ``${VAR}`` references are resolved from the environment (unset
    variables are collected in the validation context's ``unset_env`` set when it has one,
    else an error). The error never repeats the value."""
    if isinstance(value, SecretStr):
        return value
    if isinstance(value, str):
        if "${" not in value:
            return EnvSecret(value)
        unset = (info.context or {}).get("unset_env") if info is not None else None

        def sub(m: "re.Match[str]") -> str:
            name = m.group(1)
            if name not in os.environ:
                if unset is not None:
                    unset.add(name)
                    return ""
                raise ValueError(f"environment variable {name} is not set")
            return os.environ[name]

        return EnvSecret(_ENV_RE.sub(sub, value), value)
    raise ValueError(f"expected a string (a secret, or a ${{ENV_VAR}} reference), got a {type(value).__name__}")


Secret = Annotated[SecretStr, WrapValidator(_secret)]
"""A secret string; ``${ENV_VAR}`` references are resolved at load time and remembered."""


def secret_text(value: SecretStr) -> str:
    """How a secret is written out: its ``${ENV}`` reference, or the mask.

    >>> secret_text(EnvSecret("s3cr3t", "${TOKEN}")), secret_text(SecretStr("s3cr3t"))
    ('${TOKEN}', '**********')
    """
    ref = getattr(value, "reference", None)
    return ref if ref else MASK


def has_masked_secrets(obj: Any) -> bool:
    """Whether a config (or part of one) holds a secret whose value is the mask: it was
    written out without an ``${ENV}`` reference and read back, so its value is lost."""
    if isinstance(obj, SecretStr):
        return obj.get_secret_value() == MASK
    if isinstance(obj, BaseModel):
        return any(has_masked_secrets(getattr(obj, f)) for f in type(obj).model_fields)
    if isinstance(obj, Mapping):
        return any(has_masked_secrets(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(has_masked_secrets(v) for v in obj)
    return False


def secret_values(obj: Any) -> List[str]:
    """Every resolved secret value in a config (for redaction)."""
    out: List[str] = []
    if isinstance(obj, SecretStr):
        v = obj.get_secret_value()
        if v and v != MASK:
            out.append(v)
    elif isinstance(obj, BaseModel):
        for f in type(obj).model_fields:
            out.extend(secret_values(getattr(obj, f)))
    elif isinstance(obj, Mapping):
        for v in obj.values():
            out.extend(secret_values(v))
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            out.extend(secret_values(v))
    return out


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> Dict[str, Any]:
    """``base`` with ``override`` merged in, recursively for nested mappings.

    >>> deep_merge({"capture": {"sample_rate": 1.0, "methods": ["__call__"]}}, {"capture": {"sample_rate": 0.1}})
    {'capture': {'sample_rate': 0.1, 'methods': ['__call__']}}
    """
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def import_path_of(fn: Any) -> str:
    """``"module:qualname"`` of a callable (how a callable setting is written out)."""
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"


def to_data(obj: Any) -> Any:
    """A config model as plain JSON-able data that validates back into the same model:
    field aliases as keys, secrets as their ``${ENV}`` reference (or the mask), datetimes as
    ISO text, callables as import paths, and no field derived from another (a rule's
    ``metric``/``op``/``threshold``/``matchers`` when it has ``expr``)."""
    if isinstance(obj, SecretStr):
        return secret_text(obj)
    if isinstance(obj, BaseModel):
        derived = getattr(obj, "_derived_fields", lambda: ())()
        out: Dict[str, Any] = {}
        for name, field in type(obj).model_fields.items():
            if name in derived:
                continue
            out[field.alias or name] = to_data(getattr(obj, name))
        return out
    if isinstance(obj, Mapping):
        return {str(k): to_data(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_data(v) for v in obj]
    if isinstance(obj, datetime):
        return obj.isoformat()
    if callable(obj):
        return import_path_of(obj)
    return obj


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


def parse_config(data: Any, model: type = None, source: Optional[str] = None, *, unset_env: Optional[Set[str]] = None):
    """Validate a mapping (from YAML, JSON or Python) into ``model`` (default MonitorConfig).

    With ``unset_env`` (a set), ``${VAR}`` references to unset variables are not errors:
    their names are added to the set and the secret is left empty (``check-config
    --allow-unset-env`` and the exports, which never contain secrets, use this).
    """
    model = model or MonitorConfig
    if isinstance(data, model):
        return data
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError([f"{source or 'config'}: expected a mapping at the top level, got {type(data).__name__}"], source)
    try:
        return model.model_validate(dict(data), context={"unset_env": unset_env} if unset_env is not None else None)
    except ValidationError as err:
        raise ConfigError(_problems(err, source), source) from None


def read_yaml(path: Union[str, Path]) -> Any:
    """The data of a YAML file; a ConfigError naming the file (and line) when it cannot be
    read or parsed. Every YAML raywatch reads goes through here."""
    source = str(path)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError([f"{source}: cannot read the file: {exc.strerror or exc}"], source) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError([f"{source}: not valid YAML{where}: {getattr(exc, 'problem', exc)}"], source) from None


def load_config(path: Union[str, Path], model: type = None, key: Optional[str] = None, *, unset_env: Optional[Set[str]] = None):
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


# ============================================================================ drift
# Owned by the drift engine (raywatch/drift). Thresholds are per method; see
# raywatch/drift/methods.py for what each statistic means.

DriftMethod = Literal["ks", "wasserstein", "psi", "kl", "js", "hellinger", "chisquare", "ztest", "tvd"]


class ColumnDriftConfig(StrictModel):
    """Per-column override: method, threshold (α for p-value methods, the distance
    otherwise), effect-size floor, or ``enabled: false`` to skip the column."""

    method: Optional[DriftMethod] = None
    threshold: Optional[float] = Field(None, gt=0)
    min_effect: Optional[float] = Field(None, ge=0)
    enabled: bool = True


class DriftConfig(StrictModel):
    """How drift is tested. See ``raywatch.drift.detect_drift`` and the README's
    "Drift engine" section.

    * ``correction``: multiple-testing correction of p-values across columns; Bonferroni
      (default) bounds the chance of any false alarm in a stationary window by ``alpha``.
    * ``drift_share``: the dataset drifts when this share of tested columns drifts.
    * ``min_rows``: columns with fewer usable values in the window are not tested.
    * ``numerical_method`` / ``categorical_method``: replace the default rule for every
      column of that kind (``ks`` / ``ztest`` or ``chisquare`` by default).
    * ``thresholds``: per-method default thresholds, e.g. ``{psi: 0.25}``.
    * ``min_effect_numerical`` (Wasserstein distance in reference std units) and
      ``min_effect_categorical`` (total variation distance): the effect size a p-value
      method also needs before it flags drift, so that huge windows do not flag tiny,
      harmless shifts. 0 turns the floor off.
    * ``smoothing``: pseudo-count per bin for PSI, KL and chi-square expected counts.
    * ``quality_tolerance`` / ``quality_alpha``: a data-quality share is an issue when it
      exceeds the reference's rate by the tolerance and a binomial test at quality_alpha.
    """

    correction: Literal["bonferroni", "bh", "none"] = "bonferroni"
    alpha: float = Field(0.05, gt=0, lt=1)
    drift_share: float = Field(0.5, gt=0, le=1)
    min_rows: int = Field(30, ge=1)
    numerical_method: Optional[DriftMethod] = None
    categorical_method: Optional[DriftMethod] = None
    thresholds: Dict[DriftMethod, float] = Field(default_factory=dict)
    min_effect_numerical: float = Field(0.1, ge=0)
    min_effect_categorical: float = Field(0.05, ge=0)
    smoothing: float = Field(0.5, gt=0)
    quality_tolerance: float = Field(0.01, ge=0, le=1)
    quality_alpha: float = Field(0.001, gt=0, lt=1)
    columns: Dict[str, ColumnDriftConfig] = Field(default_factory=dict)

    @field_validator("thresholds")
    @classmethod
    def _positive_thresholds(cls, v: Dict[str, float]) -> Dict[str, float]:
        for method, threshold in v.items():
            if not threshold > 0:
                raise ValueError(f"threshold for {method} must be positive, got {threshold!r}")
        return v


# ========================================================================= alerting
# Owned by the alerting engine (raywatch/alerts, raywatch/sinks). Matcher strings use
# Prometheus/Alertmanager syntax (see raywatch/alerts/matchers.py); annotation templates
# use Prometheus' {{ $value }} / {{ $labels.NAME }} (raywatch/alerts/template.py).


Severity = Literal["critical", "error", "warning", "info"]
_ALERTNAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_SINK_NAME_RE = re.compile(r"^[a-zA-Z0-9_.-]+$")


def _check_matchers(value: Any) -> List[str]:
    from raywatch.alerts.matchers import parse_matchers

    if isinstance(value, Mapping):  # {label: value} shorthand for equality matchers
        value = [f"{k}={__import__('json').dumps(str(v))}" for k, v in value.items()]
    if isinstance(value, str):
        value = [str(m) for m in parse_matchers(value)]
    if not isinstance(value, list):
        raise ValueError("expected a list of matchers such as ['severity=\"critical\"']")
    parse_matchers([str(v) for v in value])
    return [str(v) for v in value]


Matchers = Annotated[List[str], BeforeValidator(_check_matchers)]
"""Label matchers: a list such as ``['severity="critical"', 'model=~"fraud.*"']``, a
``'{a="b"}'`` string, or a ``{label: value}`` mapping of equality matchers."""


class RetryConfig(StrictModel):
    """Capped exponential backoff with full jitter between delivery attempts."""

    max_attempts: int = Field(6, ge=1, le=100)
    initial_backoff: Duration = 0.5
    max_backoff: Duration = 30.0
    max_retry_after: Duration = 300.0


class AlertRuleConfig(StrictModel):
    """One alert rule: ``expr`` (``metric{matchers} OP threshold``) or its parts.

    The rule yields one alert per series that matches; the alert's labels are the
    series' labels plus ``alertname``, ``severity`` and ``labels``.
    """

    name: str = Field(..., description="alertname")
    expr: Optional[str] = None
    metric: Optional[str] = None
    matchers: Matchers = Field(default_factory=list)
    op: Optional[Literal[">", ">=", "<", "<=", "==", "!="]] = None
    threshold: Optional[float] = None
    for_: Duration = Field(0.0, alias="for")
    keep_firing_for: Duration = 0.0
    severity: Severity = "warning"
    labels: Dict[str, str] = Field(default_factory=dict)
    annotations: Dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _ALERTNAME_RE.match(v):
            raise ValueError(f"expected an alert name of letters, digits and '_' (like 'HighLatency'), got {v!r}")
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: Dict[str, str]) -> Dict[str, str]:
        for k in v:
            if not re.match(r"^[a-zA-Z_][a-zA-Z0-9_]*$", k):
                raise ValueError(f"bad label name {k!r}")
            if k in ("alertname", "severity"):
                raise ValueError(f"label {k!r} is set by the rule itself (use name/severity)")
        return v

    @field_validator("annotations")
    @classmethod
    def _annotations(cls, v: Dict[str, str]) -> Dict[str, str]:
        from raywatch.alerts.template import Template

        for k, text in v.items():
            try:
                Template(text)
            except ValueError as exc:
                raise ValueError(f"annotation {k!r}: {exc}") from None
        return v

    @field_validator("expr")
    @classmethod
    def _expr(cls, v: Optional[str]) -> Optional[str]:
        from raywatch.alerts.matchers import parse_condition

        if v is not None:
            parse_condition(v)
        return v

    @model_validator(mode="after")
    def _condition(self) -> "AlertRuleConfig":
        from raywatch.alerts.matchers import Selector, parse_condition, parse_matchers

        if self.expr is not None:
            sel, op, thr = parse_condition(self.expr)
            parts = (self.metric, self.op, self.threshold)
            if parts != (None, None, None) or self.matchers:
                # a dumped config carries both; they must agree
                if parts != (sel.name, op, thr) or parse_matchers(self.matchers) != sel.matchers:
                    raise ValueError("give either expr or metric/matchers/op/threshold, not both")
            self.metric, self.op, self.threshold = sel.name, op, thr
            self.matchers = [str(m) for m in sel.matchers]
        else:
            missing = [f for f in ("metric", "op", "threshold") if getattr(self, f) is None]
            if missing:
                raise ValueError(f"expected expr (e.g. 'error_rate > 0.05') or all of metric, op, threshold; missing {', '.join(missing)}")
            Selector.parse(self.metric)  # validates the name
            parse_matchers(self.matchers)
        return self

    def _derived_fields(self) -> tuple:
        """Fields computed from ``expr`` (left out when the rule is written out)."""
        return ("metric", "matchers", "op", "threshold") if self.expr is not None else ()

    def condition(self) -> str:
        """The rule's condition as one ``selector OP threshold`` string."""
        sel = self.metric + ("{" + ", ".join(self.matchers) + "}" if self.matchers else "")
        return f"{sel} {self.op} {self.threshold:g}"


class RouteConfig(StrictModel):
    """A node of the routing tree, with Alertmanager's semantics.

    ``receiver`` names one sink or a list of sinks. ``group_by``, ``group_wait``,
    ``group_interval`` and ``repeat_interval`` are inherited from the parent when unset;
    ``group_by: ['...']`` groups by all labels. A child matching an alert stops the
    search unless it sets ``continue: true``.
    """

    receiver: Optional[Union[str, List[str]]] = None
    matchers: Matchers = Field(default_factory=list)
    group_by: Optional[List[str]] = None
    group_wait: Optional[Duration] = None
    group_interval: Optional[Duration] = None
    repeat_interval: Optional[Duration] = None
    continue_: bool = Field(False, alias="continue")
    routes: List["RouteConfig"] = Field(default_factory=list)

    @field_validator("group_interval", "repeat_interval")
    @classmethod
    def _positive(cls, v: Optional[float]) -> Optional[float]:
        if v is not None and v <= 0:
            raise ValueError("expected a positive duration such as '5m'")
        return v

    def receivers(self) -> List[str]:
        if self.receiver is None:
            return []
        return [self.receiver] if isinstance(self.receiver, str) else list(self.receiver)


class InhibitRuleConfig(StrictModel):
    """Mute alerts matching ``target_matchers`` while an alert matching ``source_matchers``
    fires with the same values of the ``equal`` labels."""

    source_matchers: Matchers
    target_matchers: Matchers
    equal: List[str] = Field(default_factory=list)


class SilenceConfig(StrictModel):
    """Mute alerts matching ``matchers`` between ``starts_at`` and ``ends_at`` (UTC)."""

    matchers: Matchers
    starts_at: Optional[datetime] = None
    ends_at: datetime
    comment: str = ""
    created_by: str = ""

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _utc(cls, v: Optional[datetime]) -> Optional[datetime]:
        if v is not None and v.tzinfo is None:
            v = v.replace(tzinfo=timezone.utc)
        return v

    @model_validator(mode="after")
    def _order(self) -> "SilenceConfig":
        if not self.matchers:
            raise ValueError("a silence needs at least one matcher")
        if self.starts_at is not None and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class _SinkBase(StrictModel):
    name: str
    send_resolved: bool = True
    timeout: Duration = 10.0
    rate_limit: Optional[float] = Field(None, gt=0, description="notifications per second")
    retry: RetryConfig = Field(default_factory=RetryConfig)
    queue_size: int = Field(10000, ge=1)

    @field_validator("name")
    @classmethod
    def _sink_name(cls, v: str) -> str:
        if not _SINK_NAME_RE.match(v):
            raise ValueError(f"expected a sink name of letters, digits, '.', '_' or '-', got {v!r}")
        return v


class SlackSinkConfig(_SinkBase):
    """Slack incoming webhook (Block Kit with a plain-text fallback)."""

    type: Literal["slack"]
    webhook_url: Secret
    channel: Optional[str] = None
    username: Optional[str] = None
    icon_emoji: Optional[str] = None
    rate_limit: Optional[float] = Field(1.0, gt=0)


class DatadogSinkConfig(_SinkBase):
    """Datadog: DogStatsD metrics, events and service checks; HTTP API with keys."""

    type: Literal["datadog"]
    statsd_host: str = "127.0.0.1"
    statsd_port: int = 8125
    tags: List[str] = Field(default_factory=list)
    api_key: Optional[Secret] = None
    app_key: Optional[Secret] = None
    api_host: str = "https://api.datadoghq.com"
    service_check: str = "raywatch.alert"


class AlertmanagerSinkConfig(_SinkBase):
    """Push alerts to Alertmanager's v2 API. Receives every alert directly (Alertmanager
    groups, inhibits and silences on its own), so it is not named in ``route``."""

    type: Literal["alertmanager"]
    url: str = Field(..., description="base URL, e.g. http://127.0.0.1:9093")
    bearer_token: Optional[Secret] = None
    resend_delay: Duration = 60.0
    generator_url: Optional[str] = None


class PagerDutySinkConfig(_SinkBase):
    """PagerDuty Events API v2 (trigger/resolve with a stable dedup_key)."""

    type: Literal["pagerduty"]
    routing_key: Secret
    url: str = "https://events.pagerduty.com/v2/enqueue"
    source: str = "raywatch"
    client: str = "raywatch"
    client_url: Optional[str] = None


class WebhookSinkConfig(_SinkBase):
    """Generic JSON webhook; the body is Alertmanager's webhook payload (version 4)."""

    type: Literal["webhook"]
    url: Secret
    headers: Dict[str, Secret] = Field(default_factory=dict)
    max_alerts: int = Field(0, ge=0)


class EmailSinkConfig(_SinkBase):
    """E-mail over SMTP. TLS from the first byte (SMTPS) with ``implicit_tls`` (on by default
    for port 465); otherwise STARTTLS is required unless ``starttls: false``."""

    type: Literal["email"]
    host: str
    port: int = 587
    from_: str = Field(..., alias="from")
    to: List[str] = Field(..., min_length=1)
    username: Optional[str] = None
    password: Optional[Secret] = None
    starttls: bool = True
    implicit_tls: Optional[bool] = None  # None: on for port 465 (SMTPS), off otherwise
    tls_verify: bool = True
    ca_file: Optional[str] = None
    subject_prefix: str = "[raywatch]"


class LogSinkConfig(_SinkBase):
    """Write notifications to the ``raywatch.sinks.log`` logger."""

    type: Literal["log"]
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "WARNING"


_SINK_TYPES = {
    "slack": SlackSinkConfig,
    "datadog": DatadogSinkConfig,
    "alertmanager": AlertmanagerSinkConfig,
    "pagerduty": PagerDutySinkConfig,
    "webhook": WebhookSinkConfig,
    "email": EmailSinkConfig,
    "log": LogSinkConfig,
}


def _sink_tag(v: Any) -> Optional[str]:
    # tags are bracketed so that error locations read sinks[0].webhook_url, not sinks[0].slack.webhook_url
    t = v.get("type") if isinstance(v, Mapping) else getattr(v, "type", None)
    return f"[{t}]" if t in _SINK_TYPES else None


SinkConfig = Annotated[
    Union[tuple(Annotated[cls, Tag(f"[{name}]")] for name, cls in _SINK_TYPES.items())],  # type: ignore[misc]
    Discriminator(
        _sink_tag,
        custom_error_type="sink_type",
        custom_error_message="expected 'type' to be one of " + ", ".join(_SINK_TYPES),
    ),
]

DIRECT_SINK_TYPES = ("alertmanager",)


def _default_inhibit() -> List[InhibitRuleConfig]:
    return [
        InhibitRuleConfig(
            source_matchers=['severity="critical"'],
            target_matchers=['severity=~"warning|info"'],
            equal=["app", "deployment", "model"],
        )
    ]


class AlertingConfig(StrictModel):
    """Rules, routing and sinks. See ``raywatch.alerts``.

    Without ``route``, every sink (except Alertmanager sinks, which receive every alert
    directly) gets every alert, grouped by alertname and model. ``inhibit_rules`` defaults
    to "a critical alert mutes warnings and infos of the same model"; set ``[]`` to turn
    that off.
    """

    rules: List[AlertRuleConfig] = Field(default_factory=list)
    route: Optional[RouteConfig] = None
    inhibit_rules: List[InhibitRuleConfig] = Field(default_factory=_default_inhibit)
    silences: List[SilenceConfig] = Field(default_factory=list)
    sinks: List[SinkConfig] = Field(default_factory=list)
    dead_letter_path: Optional[str] = None
    resolved_retention: Duration = 900.0

    @model_validator(mode="after")
    def _references(self) -> "AlertingConfig":
        names = [s.name for s in self.sinks]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"sink names must be unique; repeated: {', '.join(dup)}")
        kinds = {s.name: s.type for s in self.sinks}

        def walk(route: RouteConfig, path: str) -> None:
            for r in route.receivers():
                if r not in kinds:
                    known = ", ".join(sorted(kinds)) or "none defined"
                    raise ValueError(f"{path}.receiver: no sink named {r!r} (sinks: {known})")
                if kinds[r] in DIRECT_SINK_TYPES:
                    raise ValueError(
                        f"{path}.receiver: {r!r} is an alertmanager sink, which receives every alert "
                        "directly; leave it out of the route"
                    )
            for i, child in enumerate(route.routes):
                walk(child, f"{path}.routes[{i}]")

        if self.route is not None:
            if not self.route.receivers():
                raise ValueError("route.receiver: the root route needs a receiver")
            if self.route.matchers:
                raise ValueError("route.matchers: the root route matches every alert; put matchers on child routes")
            walk(self.route, "route")
        return self


RouteConfig.model_rebuild()


# ========================================================================== monitor
# Owned by the sidecar (raywatch/serve) and the stats actor (raywatch/actor).


# ---------------------------------------------------------------- replica side (stream C)
# Owned by the sidecar (raywatch/serve). Read in every replica; a ``raywatch`` key in a
# deployment's ``user_config`` overrides these at run time (hot reload, no restart).


def _check_import_path(value: Any) -> Any:
    if value is None or callable(value):
        return value
    if isinstance(value, str) and re.match(r"^[A-Za-z_][\w.]*[:.][A-Za-z_]\w*$", value):
        return value
    raise ValueError(f"expected an import path such as 'my_pkg.features:extract' or a callable, got {value!r}")


ImportPath = Annotated[Any, BeforeValidator(_check_import_path)]
"""``"module:attribute"`` (or ``"module.attribute"``), resolved in the replica; a callable in Python."""


class CaptureConfig(StrictModel):
    """What each replica records per request (see ``raywatch.serve.capture``)."""

    enabled: bool = True
    methods: List[str] = Field(default_factory=lambda: ["__call__"], min_length=1)
    sample_rate: float = Field(1.0, ge=0.0, le=1.0)
    fields: Optional[List[str]] = None
    redact: List[str] = Field(default_factory=list)
    redact_mode: Literal["drop", "hash"] = "drop"
    feature_names: Optional[List[str]] = None
    feature_extractor: ImportPath = None
    prediction_extractor: ImportPath = None
    max_rows_per_request: int = Field(64, ge=1)
    max_body_bytes: int = Field(65536, ge=0)
    feedback: bool = False
    feedback_route: Optional[str] = "/-/raywatch/feedback"
    max_predictions: int = Field(10_000, ge=0)


class ShippingConfig(StrictModel):
    """How records leave the replica: one fire-and-forget actor call per flush."""

    flush_interval: Duration = 1.0
    flush_max_records: int = Field(10_000, ge=1)
    buffer_size: int = Field(100_000, ge=1)
    max_pending_batches: int = Field(16, ge=1)
    max_in_flight: int = Field(4, ge=1)
    max_retries: int = Field(5, ge=0)
    retry_backoff: Duration = 0.5
    max_backoff: Duration = 10.0
    create_actor: bool = True

    @field_validator("flush_interval")
    @classmethod
    def _positive_interval(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("expected a positive duration")
        return v


class ResourcesConfig(StrictModel):
    """Process, node and GPU figures sampled on a background thread in each replica."""

    enabled: bool = True
    interval: Duration = 5.0
    gpu: bool = True

    @field_validator("interval")
    @classmethod
    def _positive_interval(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("expected a positive duration")
        return v


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
    capture: CaptureConfig = Field(default_factory=CaptureConfig)
    shipping: ShippingConfig = Field(default_factory=ShippingConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    profile_path: Optional[str] = None

    def to_data(self) -> Dict[str, Any]:
        """Plain JSON-able data that :meth:`from_data` reads back into an equal config:
        secrets as their ``${ENV}`` references (or masked), never resolved (see :func:`to_data`)."""
        return to_data(self)

    @classmethod
    def from_data(cls, data: Mapping[str, Any], source: Optional[str] = None, *,
                  unset_env: Optional[Set[str]] = None) -> "MonitorConfig":
        """The config of :meth:`to_data`'s data; ``${ENV}`` references are resolved again."""
        return parse_config(data, cls, source, unset_env=unset_env)

    def merged(self, overrides: Optional[Mapping[str, Any]], source: Optional[str] = None) -> "MonitorConfig":
        """This config with ``overrides`` (a partial mapping, e.g. ``user_config.raywatch``)
        merged in and validated again; secrets keep their references."""
        if not overrides:
            return self
        return parse_config(deep_merge(self.model_dump(mode="python", by_alias=True), overrides), type(self), source)
