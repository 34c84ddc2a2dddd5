"""A count-min sketch of string labels: mergeable upper bounds on per-label counts.

:class:`CountMin` keeps ``depth × width`` int64 cells. Adding ``c`` rows of a label adds
``c`` to one cell per row of the table, chosen by two 32-bit halves of the label's stable
BLAKE2b digest (``h1 + i·h2 mod width``, Kirsch–Mitzenmacher). :meth:`CountMin.estimate`
is the smallest of the label's cells: never below the label's true count, and above it by
more than ``e/width`` of the total with probability at most ``e^-depth`` (about 1 % of the
total with probability 98 % for the default 4 × 256). Two sketches merge exactly by adding
their cells, so replicas and windows merge in any order.

:class:`raywatch.stats.segments.Segments` uses one per segment column to bound how many
rows of a kept segment sit in the ``__other__`` bucket.

>>> cm = CountMin()
>>> cm.add(["de", "fr"], [5, 2])
>>> both = cm.merge(CountMin.from_cells(cm.to_cells()))
>>> both.estimate("de"), both.estimate("fr"), both.estimate("it") >= 0, both.total
(10, 4, True, 14)

References
----------
Cormode, G., Muthukrishnan, S. (2005). An improved data stream summary: the count-min
sketch and its applications. Journal of Algorithms 55(1).
Kirsch, A., Mitzenmacher, M. (2006). Less hashing, same performance: building a better
Bloom filter. ESA 2006.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from raywatch.stats.labels import digest

__all__ = ["CountMin"]

DEPTH, WIDTH = 4, 256  # WIDTH is a power of two: the index is a mask


class CountMin:
    """Count-min sketch over labels (see the module docstring)."""

    __slots__ = ("cells",)

    def __init__(self, cells: Optional[np.ndarray] = None):
        self.cells = np.zeros((DEPTH, WIDTH), dtype=np.int64) if cells is None else cells

    @staticmethod
    def _index(labels: Sequence[str]) -> np.ndarray:
        h = np.frombuffer(b"".join(digest(label) for label in labels), dtype="<u8")
        h1, h2 = h & np.uint64(0xFFFFFFFF), (h >> np.uint64(32)) | np.uint64(1)
        rows = np.arange(DEPTH, dtype=np.uint64)[:, None]
        return ((h1[None, :] + rows * h2[None, :]) & np.uint64(WIDTH - 1)).astype(np.intp)

    def add(self, labels: Sequence[str], counts: Sequence[int]) -> None:
        """Add ``counts[i]`` rows of ``labels[i]`` (one digest per label: hash distinct labels once)."""
        if len(labels):
            idx, w = self._index(labels), np.asarray(counts, dtype=np.float64)
            for d in range(DEPTH):  # float weights are exact below 2**53 rows
                self.cells[d] += np.bincount(idx[d], weights=w, minlength=WIDTH).astype(np.int64)

    def estimate(self, label: str) -> int:
        """An upper bound on the rows added for ``label``."""
        idx = self._index([label])[:, 0]
        return int(self.cells[np.arange(DEPTH), idx].min())

    @property
    def total(self) -> int:
        return int(self.cells[0].sum())

    def merge(self, other: "CountMin") -> "CountMin":
        """A new sketch of both (exact)."""
        return CountMin(self.cells + other.cells)

    def to_cells(self) -> List[List[int]]:
        """The non-zero cells as ``[flat index, count]`` pairs (JSON-able)."""
        nz = np.flatnonzero(self.cells)
        return [[int(i), int(c)] for i, c in zip(nz, self.cells.reshape(-1)[nz])]

    @classmethod
    def from_cells(cls, pairs: Sequence[Sequence[int]]) -> "CountMin":
        """Inverse of :meth:`to_cells`; raises ValueError on an index or count out of range."""
        out = cls()
        flat = out.cells.reshape(-1)
        for i, c in pairs:
            if isinstance(i, bool) or isinstance(c, bool) or not (isinstance(i, int) and isinstance(c, int)):
                raise ValueError(f"count-min cells are pairs of integers, got {[i, c]!r}")
            if not (0 <= i < flat.size and c >= 0):
                raise ValueError(f"count-min cell {i} (count {c}) out of range")
            flat[i] = c
        return out
