"""A mergeable latency sketch with relative-error quantiles (DDSketch).

:class:`LatencySketch` keeps counts in logarithmically spaced buckets: a value ``x > 0``
goes to bucket ``ceil(log(x) / log(gamma))`` with ``gamma = (1 + alpha) / (1 - alpha)``,
and every quantile read back is within ``alpha`` (1 % by default) *relative* error of the
exact quantile of the values added. Two sketches with the same ``alpha`` merge exactly:
the merged sketch is the sketch of the union of their values, bucket for bucket, so
replicas can sketch locally and the stats actor can merge across replicas and windows
without losing accuracy.

Memory is bounded by ``max_buckets``: latencies from 1 µs to 3 hours need about 1,200
buckets at 1 % accuracy; if a sketch ever grows past the bound, its lowest buckets are
collapsed into one (the low quantiles lose accuracy, the high ones never do — the same
policy as DDSketch's "collapsing lowest dense store").

Example:

>>> import numpy as np
>>> s = LatencySketch()
>>> s.add_many(np.linspace(0.001, 0.100, 1000))
>>> round(s.quantile(0.5), 3), round(s.quantile(0.99), 3)
(0.05, 0.099)
>>> t = LatencySketch.from_dict(s.to_dict())
>>> t.count, t.quantile(0.5) == s.quantile(0.5)
(1000, True)

References: Masson, Rim, Lee, "DDSketch: A Fast and Fully-Mergeable Quantile Sketch with
Relative-Error Guarantees", VLDB 2019.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Iterable, Optional

import numpy as np

__all__ = ["LatencySketch", "check_sketch"]

MAX_OFFSET = 100_000
"""Largest bucket index a sketch may name: 1 ns to 10^9 s at 1 % need about ±2,100; a wild
offset would make a merge allocate a huge array."""

# Values at or below this count as zero (a latency of < 1 ns is a clock artefact).
_MIN_POSITIVE = 1e-9


def check_sketch(s: "LatencySketch", n_buckets: int) -> Optional[str]:
    """What is semantically wrong with a sketch read from a dict (None: nothing): its
    accuracy in (0, 1), counters non-negative, bucket indexes bounded, sum and bounds
    finite and ordered where there are values."""
    if not 0.0 < s.alpha < 1.0:
        return f"alpha is {s.alpha}"
    if s.zero_count < 0 or s.invalid < 0 or s.count < 0:
        return "a counter is negative"
    if abs(s._offset) > MAX_OFFSET or abs(s._offset + n_buckets) > MAX_OFFSET:
        return f"bucket offset {s._offset} is out of range"
    if not math.isfinite(s.sum) or s.sum < 0:
        return f"sum is {s.sum}"
    if s.count and not (math.isfinite(s.min) and math.isfinite(s.max) and 0 <= s.min <= s.max):
        return f"bounds [{s.min}, {s.max}] are out of order"
    return None


class LatencySketch:
    """DDSketch-style quantile sketch for non-negative values (latencies in seconds).

    Parameters
    ----------
    alpha:
        Relative accuracy of quantiles (0.01 = 1 %).
    max_buckets:
        Bound on the number of buckets kept; beyond it the lowest buckets collapse.

    ``merge`` adds another sketch into this one *in place* and returns ``self``, so both
    ``a.merge(b)`` and ``total = total.merge(b)`` work; use :meth:`copy` first when the
    original must stay unchanged. Negative and NaN values are ignored and counted in
    :attr:`invalid`.
    """

    __slots__ = (
        "alpha",
        "max_buckets",
        "_gamma",
        "_inv_log_gamma",
        "_offset",
        "_bins",
        "zero_count",
        "count",
        "sum",
        "min",
        "max",
        "invalid",
    )

    def __init__(self, alpha: float = 0.01, max_buckets: int = 2048):
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        if max_buckets < 2:
            raise ValueError(f"max_buckets must be >= 2, got {max_buckets!r}")
        self.alpha = float(alpha)
        self.max_buckets = int(max_buckets)
        self._gamma = (1.0 + self.alpha) / (1.0 - self.alpha)
        self._inv_log_gamma = 1.0 / math.log(self._gamma)
        self._offset = 0  # bucket index of _bins[0]
        self._bins = np.zeros(0, dtype=np.int64)
        self.zero_count = 0
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.invalid = 0

    # ------------------------------------------------------------------ adding

    def _key(self, x: float) -> int:
        return int(math.ceil(math.log(x) * self._inv_log_gamma))

    def _value(self, key: int) -> float:
        # the bucket's representative value: relative error <= alpha for all of (g^(k-1), g^k]
        return 2.0 * self._gamma**key / (self._gamma + 1.0)

    def _ensure(self, lo: int, hi: int) -> None:
        """Grow the dense store so that keys lo..hi (inclusive) fit, collapsing if needed."""
        n = self._bins.size
        if n == 0:
            cur_lo, cur_hi = lo, hi
        else:
            cur_lo, cur_hi = min(lo, self._offset), max(hi, self._offset + n - 1)
        if n and cur_lo == self._offset and cur_hi == self._offset + n - 1:
            return
        new = np.zeros(cur_hi - cur_lo + 1, dtype=np.int64)
        if n:
            start = self._offset - cur_lo
            new[start : start + n] = self._bins
        self._bins = new
        self._offset = cur_lo

    def _collapse(self) -> None:
        n = self._bins.size
        if n <= self.max_buckets:
            return
        extra = n - self.max_buckets
        low = int(self._bins[: extra + 1].sum())
        self._bins = self._bins[extra:].copy()
        self._bins[0] = low
        self._offset += extra

    def add(self, x: float) -> None:
        """Add one value."""
        x = float(x)
        if not x >= 0.0:  # negative or NaN
            self.invalid += 1
            return
        self.count += 1
        self.sum += x
        if x < self.min:
            self.min = x
        if x > self.max:
            self.max = x
        if x <= _MIN_POSITIVE:
            self.zero_count += 1
            return
        k = self._key(x)
        n = self._bins.size
        if n == 0 or k < self._offset or k >= self._offset + n:
            self._ensure(k, k)
            self._bins[k - self._offset] += 1
            self._collapse()
        else:
            self._bins[k - self._offset] += 1

    def add_many(self, values: Iterable[float]) -> None:
        """Add many values at once (vectorised: one ``log``, one ``bincount``)."""
        x = np.asarray(values, dtype=np.float64).ravel()
        if x.size == 0:
            return
        valid = x >= 0.0  # False for NaN and negatives
        n_valid = int(valid.sum())
        if n_valid != x.size:
            self.invalid += x.size - n_valid
            x = x[valid]
            if x.size == 0:
                return
        self.count += int(x.size)
        self.sum += float(x.sum())
        self.min = min(self.min, float(x.min()))
        self.max = max(self.max, float(x.max()))
        pos = x[x > _MIN_POSITIVE]
        self.zero_count += int(x.size - pos.size)
        if pos.size == 0:
            return
        keys = np.ceil(np.log(pos) * self._inv_log_gamma).astype(np.int64)
        lo, hi = int(keys.min()), int(keys.max())
        counts = np.bincount(keys - lo, minlength=hi - lo + 1)
        self._add_dense(lo, counts)

    def _add_dense(self, lo: int, counts: np.ndarray) -> None:
        if counts.size == 0:
            return
        hi = lo + counts.size - 1
        self._ensure(lo, hi)
        start = lo - self._offset
        self._bins[start : start + counts.size] += counts
        self._collapse()

    # ------------------------------------------------------------------ merging

    def merge(self, other: "LatencySketch") -> "LatencySketch":
        """Add ``other``'s values into this sketch (exact); returns ``self``."""
        if not isinstance(other, LatencySketch):
            raise TypeError(f"can only merge a LatencySketch, got {type(other).__name__}")
        if other.alpha != self.alpha:
            raise ValueError(f"cannot merge sketches with different alpha ({self.alpha} vs {other.alpha})")
        if other.count == 0 and other.invalid == 0:
            return self
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.zero_count += other.zero_count
        self.invalid += other.invalid
        if other._bins.size:
            self._add_dense(other._offset, other._bins)
        return self

    def copy(self) -> "LatencySketch":
        out = LatencySketch(self.alpha, self.max_buckets)
        out._offset = self._offset
        out._bins = self._bins.copy()
        out.zero_count = self.zero_count
        out.count = self.count
        out.sum = self.sum
        out.min = self.min
        out.max = self.max
        out.invalid = self.invalid
        return out

    # ------------------------------------------------------------------ reading

    def quantile(self, q: float) -> Optional[float]:
        """The ``q``-quantile (0 ≤ q ≤ 1) within ``alpha`` relative error; None when empty."""
        return self.quantiles([q])[0]

    def quantiles(self, qs: Iterable[float]) -> list:
        """:meth:`quantile` of each of ``qs``, from one cumulative sum of the buckets."""
        qs = list(qs)
        for q in qs:
            if not 0.0 <= q <= 1.0:
                raise ValueError(f"q must be in [0, 1], got {q!r}")
        if self.count == 0:
            return [None] * len(qs)
        cum = np.cumsum(self._bins)
        ranks = [q * (self.count - 1) for q in qs]
        idx = np.searchsorted(cum, [r - self.zero_count for r in ranks], side="right").tolist()
        out = []
        for rank, i in zip(ranks, idx):
            if rank < self.zero_count:
                out.append(max(0.0, self.min))
                continue
            value = self._value(self._offset + min(i, self._bins.size - 1))
            out.append(min(max(value, self.min), self.max))
        return out

    @property
    def mean(self) -> Optional[float]:
        return self.sum / self.count if self.count else None

    @property
    def num_buckets(self) -> int:
        return int(np.count_nonzero(self._bins))

    def __len__(self) -> int:
        return self.count

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LatencySketch):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        if not self.count:
            return f"LatencySketch(alpha={self.alpha}, count=0)"
        return (
            f"LatencySketch(alpha={self.alpha}, count={self.count}, "
            f"p50={self.quantile(0.5):.6g}, p99={self.quantile(0.99):.6g})"
        )

    # ------------------------------------------------------------------ (de)serialising

    def to_dict(self) -> Dict[str, Any]:
        """A compact, JSON-able dict: trimmed dense bucket counts plus the moments."""
        nz = np.flatnonzero(self._bins)
        if nz.size:
            first, last = int(nz[0]), int(nz[-1])
            offset = self._offset + first
            counts = self._bins[first : last + 1].tolist()
        else:
            offset, counts = 0, []
        return {
            "alpha": self.alpha,
            "offset": offset,
            "counts": counts,
            "zero": self.zero_count,
            "count": self.count,
            "sum": self.sum,
            "min": self.min if self.count else None,
            "max": self.max if self.count else None,
            "invalid": self.invalid,
        }

    @classmethod
    def from_dict(cls, data: Dict[str, Any], max_buckets: int = 2048) -> "LatencySketch":
        s = cls(alpha=float(data.get("alpha", 0.01)), max_buckets=max_buckets)
        counts = np.array(data.get("counts") or (), dtype=np.int64)  # its own copy
        if counts.size and counts.min() < 0:
            raise ValueError("sketch bucket counts must be non-negative")
        s._offset = int(data.get("offset", 0))
        s._bins = counts
        s.zero_count = int(data.get("zero", 0))
        total = int(counts.sum()) + s.zero_count
        s.count = int(data.get("count", total))
        s.sum = float(data.get("sum", 0.0))
        s.min = math.inf if data.get("min") is None else float(data["min"])
        s.max = -math.inf if data.get("max") is None else float(data["max"])
        s.invalid = int(data.get("invalid", 0))
        if s.count != total:
            raise ValueError("sketch count does not match its bucket counts")
        problem = check_sketch(s, counts.size)
        if problem is not None:  # bytes from elsewhere: checked beyond their shape
            raise ValueError(f"implausible latency sketch: {problem}")
        s._collapse()
        return s
