"""Settings read in every replica: capture (on the request path), shipping (buffer and ship)
and resources. A ``raywatch`` key in a deployment's ``user_config`` overrides them at run
time (hot reload, no restart). See ``raywatch.serve``."""

from __future__ import annotations

from typing import List, Literal, Optional

from pydantic import Field

from raywatch.config.base import Duration, ImportPath, PositiveDuration, Secret, StrictModel

__all__ = ["CaptureConfig", "ShippingConfig", "ResourcesConfig"]


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

    # --- bounded payloads and the feedback route's locks (issues 11 and 16; the replica's block)
    max_keys_per_row: int = Field(1000, ge=1)
    """A payload (or result) that would make a row of more columns is not summarized: a
    counted drop (``too_many_keys``)."""
    feedback_token: Optional[Secret] = None
    """When set (``${ENV_VAR}``), the feedback route needs ``Authorization: Bearer <token>``
    (401 otherwise)."""
    feedback_rate_limit: float = Field(50.0, gt=0)
    """Feedback requests per second per client (by address); beyond the burst: 429 with
    ``Retry-After``."""
    feedback_burst: int = Field(100, ge=1)
    feedback_max_body_bytes: int = Field(1 << 20, ge=1)
    """A feedback body is read in chunks up to this size; larger: 413."""


class ShippingConfig(StrictModel):
    """How records leave the replica: one fire-and-forget actor call per flush."""

    flush_interval: PositiveDuration = 1.0
    flush_max_records: int = Field(10_000, ge=1)
    buffer_size: int = Field(100_000, ge=1)
    max_pending_batches: int = Field(16, ge=1)
    max_in_flight: int = Field(4, ge=1)
    max_retries: int = Field(5, ge=0)
    retry_backoff: Duration = 0.5
    max_backoff: Duration = 10.0
    create_actor: bool = True

    # --- the replica's byte budget (issue 11; the replica's block)
    max_buffer_bytes: int = Field(64 << 20, ge=1)
    """Bytes of sampled payloads a replica holds between flushes (an estimate measured off
    the request path); payloads beyond it are counted drops (``byte_budget``), the requests
    themselves are still counted."""

    # --- adaptive flushing (issue 15; the sidecar's block)
    flush_min_records: int = Field(1, ge=1)
    """At a ``flush_interval`` tick with fewer records than this waiting, the flusher waits
    for more (a flush has a fixed cost: one actor call, the summary's set-up), up to
    ``flush_max_wait`` and never across a window boundary (``windows.length``). 1 (the
    default) flushes at every tick; 256 cut the flusher's CPU at 100 requests/s from 41.1 to
    22.5 µs a request (benchmarks/SIDECAR_PROFILE.md) at the cost of data up to
    ``flush_max_wait`` later."""
    flush_max_wait: Optional[PositiveDuration] = None
    """Longest a record waits for a flush under light load; default 4 × ``flush_interval``."""


class ResourcesConfig(StrictModel):
    """Process, node and GPU figures sampled on a background thread in each replica."""

    enabled: bool = True
    interval: PositiveDuration = 5.0
    gpu: bool = True
