"""What the retrain function receives and returns.

``retrain(ctx: RetrainContext) -> Candidate`` runs as a Ray task. The context holds the
labelled dataset (a Ray Dataset of the logged requests joined to their labels, the held-back
rows left out), the model's reference profile, the current (champion) version and
artifact, and the alert that triggered it. The candidate names where its artifact is, its
version, and the profile of the data it trained on (the validation gate tests recent
production against it).

>>> c = Candidate.of({"artifact": "s3://models/fraud/v2", "version": "v2", "profile": None})
>>> c.version, c.to_evidence()
('v2', {'artifact': 's3://models/fraud/v2', 'version': 'v2', 'has_profile': False, 'metrics': {}})
>>> Candidate.of(42)
Traceback (most recent call last):
...
TypeError: retrain must return a Candidate (artifact, version, profile), got int
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

__all__ = ["RetrainContext", "Candidate"]


@dataclass
class RetrainContext:
    """``dataset``: a Ray Dataset (``dataset_path`` is the Parquet file it reads, on
    ``filesystem``); ``features``: the feature columns; ``label``: the label column
    (``"label"``); ``window``: ``(since, until)`` UTC epoch seconds of the requests."""

    model: str
    dataset: Any
    dataset_path: str
    features: List[str]
    rows: int
    window: tuple
    reference_profile: Any = None
    current_version: Optional[str] = None
    current_artifact: Optional[str] = None
    trigger: Dict[str, Any] = field(default_factory=dict)
    decision: str = ""
    label: str = "label"
    filesystem: Any = None


@dataclass
class Candidate:
    """A retrained model: ``artifact`` (a URI or path the deployment's ``reconfigure``
    loads), ``version``, ``profile`` (a :class:`raywatch.stats.profile.Profile` of its training
    data, or its bytes) and any ``metrics`` the training wants recorded."""

    artifact: str
    version: str
    profile: Any = None
    metrics: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, value: Any) -> "Candidate":
        if isinstance(value, Candidate):
            return value
        if isinstance(value, Mapping) and "artifact" in value and "version" in value:
            return cls(str(value["artifact"]), str(value["version"]), value.get("profile"), dict(value.get("metrics") or {}))
        raise TypeError(f"retrain must return a Candidate (artifact, version, profile), got {type(value).__name__}")

    def profile_object(self) -> Any:
        if self.profile is None or not isinstance(self.profile, (bytes, bytearray)):
            return self.profile
        from raywatch.stats.profile import Profile

        return Profile.from_bytes(bytes(self.profile))

    def to_evidence(self) -> Dict[str, Any]:
        return {"artifact": self.artifact, "version": self.version, "has_profile": self.profile is not None,
                "metrics": dict(self.metrics)}
