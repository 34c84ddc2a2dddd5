"""Co-moments of numerical columns, merged exactly: the data behind the correlation test.

:class:`CoMoments` holds, for a set of numerical columns, the count of complete rows (every
column finite), their mean vector and their matrix of summed cross-deviations
``M2[i, j] = Σ (x_i − x̄_i)(x_j − x̄_j)``. Two merge exactly with Chan's pairwise update,
``M2 = M2_a + M2_b + δδᵀ · n_a n_b / n`` with ``δ = x̄_b − x̄_a``, so replicas and windows
combine into the co-moments of all their rows (to rounding) and any window's correlation
matrix is ``M2[i, j] / √(M2[i, i] M2[j, j])``. Rows with a missing value in any of the columns
are left out and counted (``skipped``): pairwise-complete sums would need a count per pair.

:class:`CorrelationExtension` keeps what the test needs of the reference (see
:mod:`raywatch.drift.correlation`). The correlation it sums is that of the columns' *normal
scores* under the reference's marginals: each value goes to the standard normal quantile of
the reference's CDF there, ``Φ⁻¹(F_ref(x))``, read off a 256-point grid between the
reference's 0.5 % and 99.5 % quantiles (so clipped at about ±2.6 beyond them). For normal data this is Pearson's correlation; for heavy tails it is robust (one
extreme value cannot swing it, and the test keeps its level where Pearson's did not: 7 % false
alarms at α = 5 % on 300-row windows with lognormal and t₄ columns), and it moves only when
the dependence between the columns moves, which is what the test is after. The extension also
keeps the reference correlation matrix and, for every pair, the asymptotic variance of
``√n · r`` under the reference's own law, from its fourth moments (for standardized ``u, v``
with correlation ρ: ``E u²v² − ρ(E u³v + E uv³) + ρ²/4 · (E u⁴ + E v⁴ + 2 E u²v²)``, which is
``(1 − ρ²)²`` for normal data).

Cost in the replica: one ``(rows × columns)`` matrix, the grid lookup (a handful of
vectorized operations over the matrix) and one ``Zᵀ Z``: about 150 µs for 1,000 rows × 20
columns.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(3000, 2)); x[:, 1] += x[:, 0]
>>> ext = CorrelationExtension.fit(["a", "b"], x)
>>> round(float(ext.reference_corr[0, 1]), 2)      # normal data: Pearson's 0.71, to sampling error
0.69
>>> s = ext.summarize(Batch({"a": x[:1000, 0], "b": x[:1000, 1]}, 1000))
>>> s = s.merge(ext.summarize(Batch({"a": x[1000:, 0], "b": x[1000:, 1]}, 2000)))
>>> s.n, bool(np.allclose(s.correlation(), ext.reference_corr))
(3000, True)

References
----------
Chan, T. F., Golub, G. H., LeVeque, R. J. (1979). Updating formulae and a pairwise algorithm
for computing sample variances. Hotelling, H. (1953). New light on the correlation
coefficient and its transforms. JRSS B 15(2).
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np

from raywatch.stats.sections import Batch, Extension, Section, checked_kind, need, register

__all__ = ["CoMoments", "CorrelationExtension", "normal_score_grid", "MAX_COLUMNS"]

MAX_COLUMNS = 64
GRID = 256  # normal-score grid points per column


def largest_magnitude(a: np.ndarray) -> float:
    """``max |a|`` of a non-empty float array, NaN where one is NaN, from ndarray.argmax and
    argmin (which return a NaN's index where there is one): a fraction of ``np.abs`` and a
    ufunc reduction's cost on a few hundred values, in every window's correlation test."""
    hi, lo = a.item(a.argmax()), a.item(a.argmin())
    return hi if hi >= -lo else -lo


@register
class CoMoments(Section):
    """Count, mean vector and cross-deviation sums of complete rows, plus rows skipped."""

    kind = "comoments"

    def __init__(self, n: int, mean: np.ndarray, m2: np.ndarray, skipped: int = 0):
        self.n = int(n)
        self.mean = np.asarray(mean, dtype=np.float64)
        self.m2 = np.asarray(m2, dtype=np.float64)
        self.skipped = int(skipped)

    @classmethod
    def of(cls, Z: np.ndarray, skipped: int = 0) -> "CoMoments":
        """The co-moments of the rows of ``Z`` (all finite)."""
        n, d = Z.shape
        if n == 0:
            return cls(0, np.zeros(d), np.zeros((d, d)), skipped)
        mean = Z.mean(axis=0)
        C = Z - mean
        return cls(n, mean, C.T @ C, skipped)

    def merge(self, other: "CoMoments") -> "CoMoments":
        checked_kind(self, other)
        if other.mean.shape != self.mean.shape:
            raise ValueError("cannot merge co-moments of different columns")
        n = self.n + other.n
        if n == 0:
            return CoMoments(0, self.mean, self.m2, self.skipped + other.skipped)
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.n / n)
        m2 = self.m2 + other.m2 + np.outer(delta, delta) * (self.n * other.n / n)
        return CoMoments(n, mean, m2, self.skipped + other.skipped)

    def deviations(self) -> np.ndarray:
        """``√M2[i, i]`` per column, NaN where a column has no spread beyond rounding."""
        diag = self.m2.diagonal()
        if not diag.size:
            return np.sqrt(diag)
        # every column above the largest column's bound (the common case): above its own. The
        # extremes by ndarray.argmax/argmin (a NaN's index where there is one), a fraction of a
        # ufunc reduction's cost on a few values: this runs in every window's correlation test
        top = largest_magnitude(self.mean)
        top = 1.0 if top <= 1.0 else top  # a NaN stays NaN: the check below fails
        if diag.item(diag.argmin()) > top * top * (1e-20 * max(self.n, 1)):
            return np.sqrt(diag)
        scale = np.maximum(np.abs(self.mean), 1.0)
        scale *= scale * (1e-20 * max(self.n, 1))
        return np.sqrt(np.where(diag > scale, diag, np.nan))

    def correlation(self) -> np.ndarray:
        """The correlation matrix (NaN where a column has no spread beyond rounding)."""
        sd = self.deviations()
        return np.clip(self.m2 / np.outer(sd, sd), -1.0, 1.0)

    def state(self):
        return {"n": self.n, "skipped": self.skipped}, {"mean": self.mean, "m2": self.m2}

    @classmethod
    def from_state(cls, meta, arrays):
        mean = need(arrays, "mean").reshape(-1)
        d = mean.size
        if d > MAX_COLUMNS:
            raise ValueError("too many columns")
        m2 = need(arrays, "m2", d * d).reshape(d, d)
        n = int(meta["n"])
        if n < 0 or np.any(np.diag(m2) < -1e-9):
            raise ValueError("co-moments out of range")
        return cls(n, mean, m2, int(meta.get("skipped", 0)))


def normal_score_grid(x: np.ndarray, points: int = GRID) -> Tuple[float, float, np.ndarray]:
    """``(start, step, scores)``: the standard normal quantile of the reference's CDF at
    ``points`` evenly spaced values from its 0.5 % to its 99.5 % quantile. A value's normal
    score is read off this grid by arithmetic (no search: a binary search per value costs
    30-40 ns on random data, three times the whole transform)."""
    from scipy.special import ndtri  # fitting only: a replica never needs scipy

    lo, hi = np.quantile(x, [0.005, 0.995])
    if not hi > lo:
        lo, hi = float(x.min()) - 0.5, float(x.max()) + 0.5
    grid = np.linspace(lo, hi, points)
    srt = np.sort(x)
    cdf = (np.searchsorted(srt, grid, side="left") + np.searchsorted(srt, grid, side="right")) / (2.0 * srt.size)
    scores = ndtri(np.clip(cdf, 0.5 / points, 1.0 - 0.5 / points))
    return float(lo), float((hi - lo) / (points - 1)), np.maximum.accumulate(scores)


def _asymptotic_variance(U: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """``Var(√n·r)`` per pair, from complete rows ``U`` (standardized here; see the module docstring)."""
    U = (U - U.mean(axis=0)) / np.where(U.std(axis=0) > 0, U.std(axis=0), 1.0)
    n = U.shape[0]
    U2 = U * U
    e22 = (U2.T @ U2) / n  # E u_i² u_j², its diagonal E u_i⁴
    e31 = ((U2 * U).T @ U) / n  # E u_i³ u_j
    e4 = np.diag(e22)
    tau2 = e22 - rho * (e31 + e31.T) + (rho * rho / 4.0) * (e4[:, None] + e4[None, :] + 2.0 * e22)
    return np.maximum(tau2, 1e-12)


@register
class CorrelationExtension(Extension):
    """The reference's side of the correlation test (see the module docstring)."""

    kind = "correlation"
    name = "correlation"

    def __init__(self, columns: Sequence[str], start: np.ndarray, step: np.ndarray, grid: np.ndarray,
                 reference_corr: np.ndarray, tau2: np.ndarray, reference_rows: int):
        self.columns = [str(c) for c in columns]
        self.start = np.asarray(start, dtype=np.float64)
        self.step = np.asarray(step, dtype=np.float64)
        self.grid = np.asarray(grid, dtype=np.float64)  # (columns, GRID) normal scores
        self.reference_corr = np.asarray(reference_corr, dtype=np.float64)
        self.tau2 = np.asarray(tau2, dtype=np.float64)
        self.reference_rows = int(reference_rows)
        self._offsets = np.arange(len(self.columns)) * self.grid.shape[1]

    def scores(self, X: np.ndarray) -> np.ndarray:
        """The normal scores of complete rows ``X`` under the reference's marginals: linear
        between grid points, clipped beyond the grid's ends (vectorized over all columns)."""
        g = self.grid.shape[1]
        t = np.subtract(X, self.start)
        t /= self.step
        np.clip(t, 0.0, g - 1.000001, out=t)
        i = t.astype(np.intp)
        t -= i
        i += self._offsets
        flat = self.grid.reshape(-1)
        lo = flat[i]
        i += 1
        out = flat[i]
        out -= lo
        out *= t
        out += lo
        return out

    def reads(self):
        return tuple(self.columns)

    @classmethod
    def fit(cls, columns: Sequence[str], X: np.ndarray) -> "CorrelationExtension":
        """Fit on the reference rows ``X`` ``(rows, columns)``; rows with a non-finite value are left out."""
        columns = [str(c) for c in columns]
        if not 2 <= len(columns) <= MAX_COLUMNS:
            raise ValueError(f"correlation needs between 2 and {MAX_COLUMNS} numerical columns, got {len(columns)}")
        X = np.asarray(X, dtype=np.float64)
        X = X[np.all(np.isfinite(X), axis=1)]
        if X.shape[0] < 10:
            raise ValueError(f"correlation needs at least 10 complete reference rows, got {X.shape[0]}")
        grids = [normal_score_grid(X[:, j]) for j in range(X.shape[1])]
        d = X.shape[1]
        ext = cls(columns, [g[0] for g in grids], [g[1] for g in grids], np.stack([g[2] for g in grids]),
                  np.eye(d), np.ones((d, d)), X.shape[0])
        U = ext.scores(X)
        rho = CoMoments.of(U).correlation()
        ext.reference_corr = np.where(np.isfinite(rho), rho, 0.0)
        ext.tau2 = _asymptotic_variance(U, ext.reference_corr)
        return ext

    def empty(self) -> CoMoments:
        d = len(self.columns)
        return CoMoments(0, np.zeros(d), np.zeros((d, d)))

    def summarize(self, batch: Batch) -> CoMoments:
        X = batch.matrix(self.columns)
        complete = np.isfinite(X).all(axis=1)
        skipped = int(X.shape[0] - complete.sum())
        if skipped:
            X = X[complete]
        return CoMoments.of(self.scores(X), skipped)

    def state(self):
        return ({"columns": self.columns, "reference_rows": self.reference_rows},
                {"start": self.start, "step": self.step, "grid": self.grid, "corr": self.reference_corr,
                 "tau2": self.tau2})

    @classmethod
    def from_state(cls, meta, arrays):
        columns: List[str] = [str(c) for c in meta["columns"]]
        d = len(columns)
        if not 2 <= d <= MAX_COLUMNS:
            raise ValueError("bad column list")
        grid = need(arrays, "grid")
        if grid.size % d or not 2 <= grid.size // d <= 4 * GRID:
            raise ValueError("normal-score grid does not fit")
        grid = grid.reshape(d, -1)
        step = need(arrays, "step", d).reshape(-1)
        if np.any(~(step > 0)) or np.any(np.diff(grid, axis=1) < 0):
            raise ValueError("normal-score grid is not increasing")
        return cls(columns, need(arrays, "start", d).reshape(-1), step, grid,
                   need(arrays, "corr", d * d).reshape(d, d), need(arrays, "tau2", d * d).reshape(d, d),
                   int(meta["reference_rows"]))
