"""Settings of the stats actor (see ``raywatch.actor``): windows and how often rules run,
where the actor lives and how it persists and exposes its state, how ground truth is joined,
and the streaming detectors. Actor-wide settings come from the config of whoever creates the
actor first; windows, feedback and detectors are read per model."""

from __future__ import annotations

import ipaddress
from typing import Any, Dict, List, Literal, Optional

from pydantic import Field, model_validator

from raywatch.config.base import Duration, PositiveDuration, Secret, StrictModel
from raywatch.config.estimate import UNCALIBRATED_DETECTORS

__all__ = ["WindowConfig", "ActorConfig", "FeedbackConfig", "StreamDetectorConfig", "DetectorsConfig",
           "FeedbackTokenConfig", "is_loopback"]


class WindowConfig(StrictModel):
    """Tumbling windows (by event time), the rolling view and how often rules run."""

    length: PositiveDuration = 60.0
    rolling: int = Field(5, ge=1, le=1000)
    grace: Duration = 5.0
    evaluation_interval: PositiveDuration = 10.0
    close_spread: Optional[Duration] = None
    """How much later than ``end + grace`` a model's windows may close: each model closes
    them a whole number of ``evaluation_interval`` later (fixed per model, from a hash of its
    key), up to this, so that a shard holding many models closes, and tests, an even share
    of their windows in each cycle instead of all in one. Late batches are still filed under
    a window until it closes; the rolling view, and so the series and the alerts, do not wait
    for it. ``None`` (auto): ``length - evaluation_interval`` (at least 0) on a shard of more
    than 64 models, else 0; ``0``: every window closes at ``end + grace``."""


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

    # ---- issue 11: a store that repairs itself, durable ingest, locked doors ("store" helper) ----
    integrity_check: Literal["quick", "full", "off"] = "quick"
    """Check run on the SQLite file when the actor opens it (``PRAGMA quick_check`` or
    ``integrity_check``); a damaged file is moved aside as ``<name>.corrupt-<UTC time>``."""
    integrity_check_timeout: PositiveDuration = 10.0
    """Longest the check may run; a check cut short is counted and the file is used as is."""
    busy_timeout: PositiveDuration = 2.0
    """SQLite busy timeout of the actor's writer thread (a locked file fails the write, and
    so the ingest call: the replica keeps the batch and retries)."""
    journal_max_bytes: int = Field(256 * 1024 * 1024, ge=1024 * 1024)
    """Bound on the ingest journal (bytes of the entries since the last checkpoint). Past it a
    checkpoint is forced; if the journal still cannot shrink, ingest calls fail (replicas retry)."""
    store_alert_hold: Duration = 3600.0
    """How long ``store_corrupt`` stays 1 (and its built-in alert fires) after a repair."""
    api_host: str = "127.0.0.1"
    """Where ``/status`` and ``/feedback`` listen (``/metrics`` has its own listener,
    ``metrics_host:metrics_port``). Beyond loopback a token (``api_token`` or
    ``feedback_tokens``) is required."""
    api_port: Optional[int] = Field(9564, ge=0, le=65535)
    """Port of the API listener (+ the shard number when sharded, as ``metrics_port``);
    0 picks a free one (as it does when left unset and ``metrics_port`` is 0); None: no API
    listener."""
    api_token: Optional[Secret] = None
    """Bearer token for ``/status`` and ``/feedback`` (any model); ``${ENV}`` reference advised."""
    feedback_tokens: List["FeedbackTokenConfig"] = Field(default_factory=list)
    """Tokens that may only post ``/feedback`` for the models they name."""
    api_rate_limit: float = Field(20.0, gt=0)
    """Requests per second each client (by address) may make on the API listener; beyond it 429."""
    api_rate_burst: int = Field(40, ge=1)
    api_max_body_bytes: int = Field(1024 * 1024, ge=1024)
    """Largest ``/feedback`` body; read in chunks and refused (413) as soon as it passes this."""
    tls_cert_file: Optional[str] = None
    """PEM certificate (and ``tls_key_file``, its key) to serve both listeners over HTTPS."""
    tls_key_file: Optional[str] = None
    profile_key: Optional[Secret] = None
    """HMAC-SHA256 key of signed reference profiles (``raywatch.stats.signing``): with a key,
    an unsigned or forged profile is refused."""

    @model_validator(mode="after")
    def _doors(self) -> "ActorConfig":
        if self.api_port is not None and not is_loopback(self.api_host) and self.api_token is None \
                and not self.feedback_tokens:
            raise ValueError(f"api_host {self.api_host!r} is beyond 127.0.0.1: set api_token (or feedback_tokens), "
                             "e.g. api_token: ${RAYWATCH_API_TOKEN}")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        if self.api_port and self.metrics_port and self.api_port < self.metrics_port + self.shards \
                and self.metrics_port < self.api_port + self.shards:
            raise ValueError(f"api_port {self.api_port} overlaps the metrics ports {self.metrics_port}.."
                             f"{self.metrics_port + self.shards - 1} (one per shard)")
        return self

    def shard_name(self, shard: int) -> str:
        """Actor name of ``shard``: ``name`` alone for shard 0 (whatever the count), else
        ``name-<shard>`` (as :func:`raywatch.actor.sharding.actor_name`)."""
        return self.name if shard == 0 else f"{self.name}-{shard}"


class FeedbackTokenConfig(StrictModel):
    """A token that may post ``/feedback`` for ``models`` only (model keys ``app/deployment``
    or model names); a body naming another model is refused (403)."""

    token: Secret
    models: List[str] = Field(..., min_length=1)


def is_loopback(host: str) -> bool:
    """Whether a listener bound to ``host`` is reachable from this machine only.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("::1"), is_loopback("0.0.0.0")
    (True, True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class FeedbackConfig(StrictModel):
    """Ground truth: how labels are joined to predictions and scored."""

    task: Literal["classification", "regression"] = "classification"
    ttl: Duration = 3600.0
    max_pending: int = Field(100_000, ge=1)
    positive_label: Any = 1

    # ---- issue 11: labels bounded in bytes and distinct values ("store" helper) ----
    max_label_bytes: int = Field(256, ge=8)
    """Longest label and request id (UTF-8 bytes); a longer one is refused and counted."""
    max_label_values: int = Field(1000, ge=2)
    """Distinct label values a classification model keeps (its confusion matrix); a label with
    a new value past the cap is refused and counted, the known ones are never evicted."""
    max_pending_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    """Bytes of labels waiting for their prediction; past it (or ``max_pending`` entries) new
    labels are refused and counted instead of evicting the waiting ones."""


ActorConfig.model_rebuild()


class StreamDetectorConfig(StrictModel):
    """One streaming detector (see ``raywatch.drift.streaming.make_detector``)."""

    enabled: bool = True
    method: str = "page_hinkley"
    params: Dict[str, Any] = Field(default_factory=dict)
    # ---- issue 13: the threshold calibrated from an expected run time between false alarms
    expected_run_time: Optional[Duration] = Field(None, gt=0)
    reference_values: int = Field(500, ge=50)  # values observed (or taken from the profile) before calibrating
    calibration_budget: int = Field(1_000_000, ge=10_000)  # updates simulated (about 1 s per million)

    @model_validator(mode="after")
    def _calibratable(self) -> "StreamDetectorConfig":
        if self.expected_run_time is not None and self.method in UNCALIBRATED_DETECTORS:
            raise ValueError(f"method {self.method} cannot be calibrated from expected_run_time (one KS test per "
                             "update is too slow to simulate): use adwin or page_hinkley, or give params instead")
        return self


class DetectorsConfig(StrictModel):
    """Streaming detectors the stats actor runs per model."""

    latency: StreamDetectorConfig = Field(default_factory=lambda: StreamDetectorConfig(method="page_hinkley"))
    errors: StreamDetectorConfig = Field(default_factory=lambda: StreamDetectorConfig(method="adwin"))
    concept: StreamDetectorConfig = Field(default_factory=lambda: StreamDetectorConfig(method="adwin"))
