"""Vector features (embeddings): bounded sketches that merge, whatever the dimension.

A vector feature holds a fixed-length list or array of floats per row (a 384- or
1,536-dimensional embedding). Its sketch keeps, per window:

* the count of usable rows, of missing ones (``None``) and of invalid ones (wrong length, a
  non-number, a non-finite value);
* the rows' Euclidean norms: a histogram over 32 bins at the reference's norm quantiles, and
  their mean and sum of squared deviations;
* a fixed, seeded random projection of the centered rows onto ``dims`` orthonormal
  directions (16 by default): the mean vector and the cross-deviation matrix of the projected
  rows, merged with Chan's update.

Its size is ``O(dims² + bins)`` — 2.5 KiB with the defaults — for any dimension; the profile
keeps the reference mean (``D`` floats) and the projection (``D × dims``, stored as float32).
Random projection keeps distances on average (Johnson–Lindenstrauss), so a shift of the
embeddings' distribution shows in the projected mean or covariance, and a change of scale in
the norms; :mod:`raywatch.drift.embedding` tests both.

Cost in the replica: turning the rows into a ``(rows × D)`` float array (for lists of
Python floats, most of the time: about 25 ms per 1,000 rows of 1,536 values) and one
``(rows × D) @ (D × dims)`` product (about 2 ms).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> ref = rng.normal(size=(2000, 384))
>>> sketch = VectorSketch.fit("emb", ref, dims=8, seed=0)
>>> s = sketch.summarize(Batch({"emb": [list(r) for r in ref[:10]] + [None, [1.0, 2.0]]}, 12))
>>> s.n, s.missing, s.invalid, s.mean.shape
(10, 1, 1, (8,))
>>> s.to_dict()["arrays"]["m2"][1]    # 8 × 8, whatever the dimension
[8, 8]
"""

from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import numpy as np

from raywatch.stats.comoments import CoMoments
from raywatch.stats.sections import Batch, Extension, Section, checked_kind, need, register

__all__ = ["VectorSketch", "VectorSection", "as_matrix", "MAX_DIMENSION"]

MAX_DIMENSION = 65_536
MAX_DIMS = 64
NORM_BINS = 32


def as_matrix(values: Any, dim: int) -> Tuple[np.ndarray, int, int]:
    """``(matrix of the usable rows, missing, invalid)`` from a 2-D array or a sequence of
    vectors (lists, tuples, arrays; ``None`` for missing)."""
    arr = values if isinstance(values, np.ndarray) else None
    if arr is not None and arr.ndim == 2 and arr.dtype.kind in "iuf":
        if arr.shape[1] != dim:
            return np.empty((0, dim)), 0, arr.shape[0]
        M = arr.astype(np.float64, copy=False)
        ok = np.isfinite(M).all(axis=1)
        return (M if ok.all() else M[ok]), 0, int((~ok).sum())
    seq = list(values)
    try:  # the common case: every row a sequence of dim numbers
        M = np.array(seq, dtype=np.float64)
        if M.ndim == 2 and M.shape[1] == dim:
            ok = np.isfinite(M).all(axis=1)
            return (M if ok.all() else M[ok]), 0, int((~ok).sum())
    except (TypeError, ValueError):
        pass
    rows, missing, invalid = [], 0, 0
    for v in seq:
        if v is None or (isinstance(v, float) and v != v):
            missing += 1
            continue
        try:
            r = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError):
            invalid += 1
            continue
        if r.shape != (dim,) or not np.isfinite(r).all():
            invalid += 1
            continue
        rows.append(r)
    return (np.stack(rows) if rows else np.empty((0, dim))), missing, invalid


@register
class VectorSection(Section):
    """One window's sketch of a vector feature (see the module docstring)."""

    kind = "vector"

    def __init__(self, projected: CoMoments, norm_counts: np.ndarray, norm_mean: float = 0.0, norm_m2: float = 0.0,
                 missing: int = 0, invalid: int = 0):
        self.projected = projected
        self.norm_counts = np.asarray(norm_counts, dtype=np.int64)
        self.norm_mean, self.norm_m2 = float(norm_mean), float(norm_m2)
        self.missing, self.invalid = int(missing), int(invalid)

    @property
    def n(self) -> int:
        return self.projected.n

    @property
    def mean(self) -> np.ndarray:
        return self.projected.mean

    def covariance(self) -> np.ndarray:
        """The projected rows' covariance (divided by n − 1)."""
        return self.projected.m2 / max(self.n - 1, 1)

    @property
    def norm_std(self) -> float:
        return math.sqrt(self.norm_m2 / self.n) if self.n else 0.0

    def merge(self, other: "VectorSection") -> "VectorSection":
        checked_kind(self, other)
        if other.norm_counts.shape != self.norm_counts.shape:
            raise ValueError("cannot merge vector sketches of different shapes")
        na, nb = self.n, other.n
        n = na + nb
        delta = other.norm_mean - self.norm_mean
        mean = self.norm_mean + delta * nb / n if n else 0.0
        m2 = self.norm_m2 + other.norm_m2 + (delta * delta * na * nb / n if n else 0.0)
        return VectorSection(self.projected.merge(other.projected), self.norm_counts + other.norm_counts, mean, m2,
                             self.missing + other.missing, self.invalid + other.invalid)

    def state(self):
        meta, arrays = self.projected.state()
        meta.update(norm_mean=self.norm_mean, norm_m2=self.norm_m2, missing=self.missing, invalid=self.invalid)
        arrays["norm_counts"] = self.norm_counts
        return meta, arrays

    @classmethod
    def from_state(cls, meta, arrays):
        projected = CoMoments.from_state(meta, arrays)
        counts = need(arrays, "norm_counts").reshape(-1)
        if counts.size > 1024 or np.any(counts < 0) or int(counts.sum()) != projected.n:
            raise ValueError("norm histogram does not match the row count")
        return cls(projected, counts, float(meta["norm_mean"]), float(meta["norm_m2"]), int(meta["missing"]),
                   int(meta["invalid"]))


@register
class VectorSketch(Extension):
    """A vector feature's reference: its mean, the projection, the norm bins and the
    reference's own sketch (``reference``)."""

    kind = "vector"

    def __init__(self, column: str, center: np.ndarray, projection: np.ndarray, norm_edges: np.ndarray,
                 reference: Optional[VectorSection] = None):
        self.column = str(column)
        self.name = f"vector:{self.column}"
        self.claims = (self.column,)
        self.center = np.asarray(center, dtype=np.float64)
        self.projection = np.asarray(projection, dtype=np.float32).astype(np.float64)
        self.norm_edges = np.asarray(norm_edges, dtype=np.float64)
        self.reference = reference if reference is not None else self.empty()

    @property
    def dim(self) -> int:
        return self.center.size

    def reads(self):
        return (self.column,)

    @classmethod
    def fit(cls, column: str, values: Any, dims: int = 16, seed: Optional[int] = 0) -> "VectorSketch":
        """Fit on the reference's vectors (a 2-D array or a sequence of vectors)."""
        first = next((v for v in (values if not isinstance(values, np.ndarray) or values.ndim == 1 else values[:1])
                      if v is not None), None)
        dim = int(np.asarray(first).size) if first is not None else 0
        if not 1 <= dim <= MAX_DIMENSION:
            raise ValueError(f"vector column {column!r}: no usable reference vector (dimension {dim})")
        M, _, _ = as_matrix(values, dim)
        if M.shape[0] < 2:
            raise ValueError(f"vector column {column!r}: fewer than 2 usable reference vectors")
        dims = int(min(max(1, dims), MAX_DIMS, dim))
        Q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, dims)))
        norms = np.sqrt(np.einsum("ij,ij->i", M, M))
        edges = np.unique(np.quantile(norms, np.linspace(0, 1, NORM_BINS + 1)[1:-1]))
        out = cls(column, M.mean(axis=0), Q, edges)
        out.reference = out._sketch(M, 0, 0)
        return out

    def _sketch(self, M: np.ndarray, missing: int, invalid: int) -> VectorSection:
        P = (M - self.center) @ self.projection
        norms = np.sqrt(np.einsum("ij,ij->i", M, M))
        counts = np.bincount(np.searchsorted(self.norm_edges, norms, side="left"), minlength=self.norm_edges.size + 1)
        if norms.size:
            mean = float(norms.mean())
            d = norms - mean
            m2 = float(np.einsum("i,i->", d, d))
        else:
            mean = m2 = 0.0
        return VectorSection(CoMoments.of(P), counts, mean, m2, missing, invalid)

    def empty(self) -> VectorSection:
        k = self.projection.shape[1]
        return VectorSection(CoMoments(0, np.zeros(k), np.zeros((k, k))), np.zeros(self.norm_edges.size + 1))

    def summarize(self, batch: Batch) -> VectorSection:
        values = batch.columns.get(self.column)
        if values is None:
            out = self.empty()
            out.missing = batch.rows
            return out
        M, missing, invalid = as_matrix(values, self.dim)
        return self._sketch(M, missing, invalid)

    def state(self):
        meta, arrays = self.reference.state()
        arrays = {f"ref_{k}": v for k, v in arrays.items()}
        arrays.update(center=self.center, projection=self.projection.astype(np.float32), edges=self.norm_edges)
        return {"column": self.column, "reference": meta}, arrays

    @classmethod
    def from_state(cls, meta, arrays):
        center = need(arrays, "center").reshape(-1)
        dim = center.size
        proj = need(arrays, "projection")
        if not 1 <= dim <= MAX_DIMENSION or proj.size % dim or not 1 <= proj.size // dim <= MAX_DIMS:
            raise ValueError("vector sketch dimensions do not fit")
        ref = {k[4:]: v for k, v in arrays.items() if k.startswith("ref_")}
        out = cls(str(meta["column"]), center, proj.reshape(dim, -1), need(arrays, "edges").reshape(-1))
        out.reference = VectorSection.from_state(dict(meta["reference"]), ref)
        return out
