"""Settings of the stats actor (see ``raywatch.actor``): windows and how often rules run,
where the actor lives and how it persists and exposes its state, how ground truth is joined,
and the streaming detectors. Actor-wide settings come from the config of whoever creates the
actor first; windows, feedback and detectors are read per model."""

from __future__ import annotations

from typing import Any, Dict, List, Literal, Optional

from pydantic import Field

from raywatch.config.base import Duration, PositiveDuration, StrictModel

__all__ = ["WindowConfig", "ActorConfig", "FeedbackConfig", "StreamDetectorConfig", "DetectorsConfig"]


class WindowConfig(StrictModel):
    """Tumbling windows (by event time), the rolling view and how often rules run."""

    length: PositiveDuration = 60.0
    rolling: int = Field(5, ge=1, le=1000)
    grace: Duration = 5.0
    evaluation_interval: PositiveDuration = 10.0


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
