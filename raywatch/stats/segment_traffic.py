"""A segment's traffic: requests, errors and a latency sketch, mergeable and bounded.

The accumulator a replica keeps per segment of its flush (next to the segment's window
summary of features and predictions): how many requests the segment had, how many of them
failed (an exception, or a 5xx status), and the :class:`~raywatch.stats.sketch.LatencySketch`
of their latencies. It merges exactly (counts add, the sketches merge bucket for bucket), so
the stats actor merges replicas and windows in any order, and its state is plain data that
:meth:`SegmentTraffic.from_dict` checks before it is trusted.

>>> import numpy as np
>>> t = SegmentTraffic.of(np.array([0.01, 0.02, 0.03]), np.array([False, True, False]))
>>> u = t.merge(SegmentTraffic.of(np.array([0.04]), np.array([False])))
>>> u.requests, u.errors, round(u.error_rate, 2), round(u.latency.quantile(0.5), 3)
(4, 1, 0.25, 0.02)
>>> SegmentTraffic.from_dict(u.to_dict()) == u
True
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

import numpy as np

from raywatch.stats.sketch import LatencySketch

__all__ = ["SegmentTraffic"]


class SegmentTraffic:
    """Requests, errors and latency of one segment (see the module docstring)."""

    __slots__ = ("requests", "errors", "latency")

    def __init__(self, requests: int = 0, errors: int = 0, latency: Optional[LatencySketch] = None):
        self.requests = int(requests)
        self.errors = int(errors)
        self.latency = latency if latency is not None else LatencySketch()

    @classmethod
    def of(cls, latencies: np.ndarray, failed: np.ndarray) -> "SegmentTraffic":
        """The traffic of requests with these latencies (seconds) and failure flags."""
        sk = LatencySketch()
        if len(latencies):
            sk.add_many(np.asarray(latencies, dtype=np.float64))
        return cls(len(latencies), int(np.count_nonzero(failed)), sk)

    @property
    def error_rate(self) -> Optional[float]:
        return self.errors / self.requests if self.requests else None

    def merge(self, other: "SegmentTraffic") -> "SegmentTraffic":
        """A new accumulator holding both (exact)."""
        if not isinstance(other, SegmentTraffic):
            raise TypeError(f"cannot merge SegmentTraffic with {type(other).__name__}")
        return SegmentTraffic(self.requests + other.requests, self.errors + other.errors,
                              self.latency.copy().merge(other.latency))

    def to_dict(self) -> Dict[str, Any]:
        return {"requests": self.requests, "errors": self.errors, "latency": self.latency.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SegmentTraffic":
        """Inverse of :meth:`to_dict`; ValueError when a count is not a count, errors exceed
        requests or the sketch is implausible."""
        if not isinstance(data, Mapping):
            raise ValueError(f"segment traffic must be a mapping, got {type(data).__name__}")
        req, err = data.get("requests"), data.get("errors")
        for name, v in (("requests", req), ("errors", err)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"segment traffic {name} must be a count, got {v!r}")
        if err > req:
            raise ValueError(f"segment traffic has {err} errors among {req} requests")
        sk = LatencySketch.from_dict(dict(data.get("latency") or {}))
        return cls(req, err, sk)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SegmentTraffic):
            return NotImplemented
        return (self.requests, self.errors) == (other.requests, other.errors) and self.latency == other.latency

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"SegmentTraffic(requests={self.requests}, errors={self.errors})"
