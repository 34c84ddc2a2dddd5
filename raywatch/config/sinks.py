"""Where notifications go: one model per sink type (see ``raywatch.sinks``), with the
delivery settings every sink shares (timeout, rate limit, retries with backoff, queue)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Dict, List, Literal, Mapping, Optional, Union

from pydantic import Discriminator, Field, Tag, field_validator

from raywatch.config.base import Duration, Secret, StrictModel

__all__ = [
    "RetryConfig", "SlackSinkConfig", "DatadogSinkConfig", "AlertmanagerSinkConfig", "PagerDutySinkConfig",
    "WebhookSinkConfig", "EmailSinkConfig", "LogSinkConfig", "RemediationSinkConfig", "SinkConfig", "SINK_TYPES",
    "DIRECT_SINK_TYPES",
]

_SINK_NAME_RE = re.compile(r"^[a-zA-Z0-9_.-]+$")


class RetryConfig(StrictModel):
    """Capped exponential backoff with full jitter between delivery attempts."""

    max_attempts: int = Field(6, ge=1, le=100)
    initial_backoff: Duration = 0.5
    max_backoff: Duration = 30.0
    max_retry_after: Duration = 300.0


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


# ---- issue 14: the remediation controller as a destination
class RemediationSinkConfig(_SinkBase):
    """Hand alert notifications to the remediation controller (``raywatch.remediate``): route
    it the alerts that may start a retrain; the model's ``remediation.trigger`` picks among them."""

    type: Literal["remediation"]
    controller: str = "raywatch-remediation"
    namespace: str = "raywatch"


SINK_TYPES: Dict[str, type] = {
    "slack": SlackSinkConfig,
    "datadog": DatadogSinkConfig,
    "alertmanager": AlertmanagerSinkConfig,
    "pagerduty": PagerDutySinkConfig,
    "webhook": WebhookSinkConfig,
    "email": EmailSinkConfig,
    "log": LogSinkConfig,
    "remediation": RemediationSinkConfig,
}


def _sink_tag(v: Any) -> Optional[str]:
    # tags are bracketed so that error locations read sinks[0].webhook_url, not sinks[0].slack.webhook_url
    t = v.get("type") if isinstance(v, Mapping) else getattr(v, "type", None)
    return f"[{t}]" if t in SINK_TYPES else None


SinkConfig = Annotated[
    Union[tuple(Annotated[cls, Tag(f"[{name}]")] for name, cls in SINK_TYPES.items())],  # type: ignore[misc]
    Discriminator(
        _sink_tag,
        custom_error_type="sink_type",
        custom_error_message="expected 'type' to be one of " + ", ".join(SINK_TYPES),
    ),
]

DIRECT_SINK_TYPES = ("alertmanager",)
"""Sink types that receive every alert directly, outside the routing tree."""
