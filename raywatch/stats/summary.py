"""Window summaries: production rows in the shape of a reference profile.

A :class:`WindowSummary` holds, per column of its profile, the histogram over the
profile's bins (numerical) or categories (categorical, boolean), data-quality counters,
Chan's parallel moments (count, mean, sum of squared deviations, min, max), the sums of the
values in the two open outer bins (for the Wasserstein tails) and a bottom-k
uniform sample (:mod:`raywatch.stats.sample`). Everything except the sample merges
exactly: ``a.merge(b)`` equals summarizing the concatenated rows (moments to rounding),
and merging is associative and commutative. The sample merges into a uniform sample of the
union. The size depends only on the number of columns, bins and the sample bound, never on
rows: about 2 KiB per numerical column with the default 100 bins and 100-value sample
(about 42 KiB for 20 numerical columns).

Summaries are made by :meth:`raywatch.stats.profile.Profile.summarize`; this module holds
the data structure, the vectorized per-column kernels, merging and the byte format.

Optional *sections* (:mod:`raywatch.stats.sections`) ride along under their names: the
accumulators a profile's extensions make (performance estimation, co-moments, PCA errors,
embedding sketches, outlier counts). Merging takes the union and merges the sections both
summaries carry. A summary with sections is written as format version 2; one without them
as version 1, byte for byte as before, and both versions are read.

>>> import numpy as np
>>> from raywatch.stats.profile import Profile
>>> profile = Profile.fit({"x": np.arange(100.0)}, bins=4, seed=0)
>>> a = profile.summarize({"x": [1.0, 2.0, None]}, seed=1)
>>> b = profile.summarize({"x": [250.0, float("inf")]}, seed=2)
>>> s = a.merge(b)
>>> s.rows, s.column("x").counts.tolist(), s.column("x").missing, s.column("x").nonfinite
(5, [2, 0, 0, 1], 1, 1)
>>> WindowSummary.from_bytes(s.to_bytes()).column("x").out_of_range
1

References
----------
Chan, T. F., Golub, G. H., LeVeque, R. J. (1979). Updating formulae and a pairwise
algorithm for computing sample variances. Technical Report STAN-CS-79-773.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from raywatch.stats import codec, sample, sections as sec
from raywatch.stats import kinds as _registered_kinds  # noqa: F401  (registers the built-in section kinds)
from raywatch.stats.columns import MISSING, WRONG

__all__ = ["WindowSummary", "ColumnSummary", "INT_FIELDS", "FLOAT_FIELDS", "check_summary", "check_summaries"]

log = logging.getLogger("raywatch.stats.summary")

FORMAT_VERSION = 2  # 2: optional sections; version 1 (no sections) is still read and written
READS = (1, 2)
MAX_UNKNOWN_COLUMNS = 32

# per-column counters (int64), in this order
INT_FIELDS = ("rows", "missing", "nonfinite", "wrong_type", "out_of_range", "unseen", "count")
# per-column moments (float64), in this order
FLOAT_FIELDS = ("mean", "m2", "min", "max", "low_sum", "high_sum")
_I = {name: i for i, name in enumerate(INT_FIELDS)}


@dataclass(frozen=True)
class ColumnSummary:
    """A read-only view of one column of a :class:`WindowSummary`.

    ``rows`` counts every row the column was asked about; ``count`` the values that entered
    the histogram (finite numbers, or labels of the right type). ``missing`` is None/NaN
    (or an absent column), ``nonfinite`` ±inf, ``wrong_type`` values of a type the column
    does not take, ``out_of_range`` finite values outside the reference's [min, max] and
    ``unseen`` labels the reference never had (they are also counted in the overflow bin).
    """

    name: str
    kind: str
    rows: int
    missing: int
    nonfinite: int
    wrong_type: int
    out_of_range: int
    unseen: int
    count: int
    mean: float
    variance: float
    min: float
    max: float
    counts: np.ndarray
    sample: np.ndarray
    tail_sums: Tuple[float, float] = (0.0, 0.0)  # sums of the values in the lowest and highest bin

    @property
    def std(self) -> float:
        return math.sqrt(self.variance) if self.variance > 0 else 0.0


def numerical_figures(
    x: np.ndarray,
    edges: np.ndarray,
    bounds: Tuple[float, float],
    scratch: Optional[Tuple[np.ndarray, np.ndarray]] = None,
) -> Tuple[List[int], List[float], np.ndarray, np.ndarray]:
    """:func:`numerical_state` without the sample: ``(ints, floats, counts, finite)`` where
    ``finite`` is the column's finite values, sorted (a view of ``scratch[0]`` when given).
    It draws no random numbers, so it may run on any thread (numpy releases the GIL in its
    sort and reductions) while the samples are drawn in column order."""
    if scratch is not None and scratch[0].size >= x.size:
        s = scratch[0][: x.size]
        s[...] = x
        s.sort()
    else:
        s = np.sort(x)
    n = int(s.size)
    not_nan = int(np.searchsorted(s, np.inf, side="right"))
    lo = int(np.searchsorted(s, -np.inf, side="right"))
    hi = int(np.searchsorted(s, np.inf, side="left"))
    f = s[lo:hi]
    nf = int(f.size)
    cum = np.searchsorted(f, edges, side="right")
    counts = np.diff(cum, prepend=0, append=nf).astype(np.int64)
    out = int(np.searchsorted(f, bounds[0], side="left")) + nf - int(np.searchsorted(f, bounds[1], side="right"))
    if nf:
        with np.errstate(over="ignore", invalid="ignore"):
            mean = float(f.mean())
            d = np.subtract(f, mean, out=scratch[1][:nf]) if scratch is not None and scratch[1].size >= nf else f - mean
            # square in place and sum (pairwise): no BLAS call, whose threads stall on a busy machine
            m2 = float(np.square(d, out=d).sum())
            low_sum = float(f[: int(cum[0])].sum()) if edges.size else 0.0
            high_sum = float(f[int(cum[-1]) :].sum()) if edges.size else 0.0
        fmin, fmax = float(f[0]), float(f[-1])
    else:
        mean, m2, fmin, fmax, low_sum, high_sum = 0.0, 0.0, math.inf, -math.inf, 0.0, 0.0
    ints = [n, n - not_nan, lo + (not_nan - hi), 0, out, 0, nf]
    return ints, [mean, m2, fmin, fmax, low_sum, high_sum], counts, f


def numerical_state(
    x: np.ndarray,
    edges: np.ndarray,
    bounds: Tuple[float, float],
    k: int,
    rng: np.random.Generator,
    scratch: Optional[Tuple[np.ndarray, np.ndarray]] = None,
) -> Tuple[List[int], List[float], np.ndarray, sample.Sample]:
    """Counters, moments, bin counts and sample of one float64 column, from one sort.

    NaN sorts last and ±inf sort outermost, so after ``np.sort`` every counter is a
    ``searchsorted`` into the sorted column; bin counts are differences of
    ``searchsorted(sorted, edges)``. Bins are right-closed: (-inf, e0], (e0, e1], ...,
    (e_last, +inf). ``scratch`` (two float64 buffers at least as long as ``x``) saves
    the allocations when many columns are summarized in a row.
    """
    ints, floats, counts, f = numerical_figures(x, edges, bounds, scratch)
    return ints, floats, counts, sample.draw(f, k, rng)


# below this many rows, numerical_states (a few numpy calls for all columns together) beats
# numerical_state (about 25 calls a column): small windows are the replicas' flushes
SMALL_BATCH_ROWS = 4096


class Layout(NamedTuple):
    """What :func:`numerical_states` needs of a set of columns, computed once per profile."""

    edges: Tuple[np.ndarray, ...]
    lo: np.ndarray  # (columns, 1): the reference's range
    hi: np.ndarray
    first: np.ndarray  # (columns, 1): the lowest and highest edge (±inf without edges)
    last: np.ndarray
    offsets: np.ndarray  # (columns, 1): where each column's bins start in the counts
    total: int  # bins in all


def numerical_layout(edges: Sequence[np.ndarray], lo: Sequence[float], hi: Sequence[float]) -> Layout:
    sizes = np.array([e.size + 1 for e in edges], dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(sizes)))
    column = lambda v: np.asarray(v, dtype=np.float64).reshape(-1, 1)  # noqa: E731
    return Layout(
        edges=tuple(edges),
        lo=column(lo),
        hi=column(hi),
        first=column([e[0] if e.size else -np.inf for e in edges]),
        last=column([e[-1] if e.size else np.inf for e in edges]),
        offsets=offsets[:-1].reshape(-1, 1),
        total=int(offsets[-1]),
    )


def numerical_states(
    X: np.ndarray,
    layout: Layout,
    k: int,
    rng: np.random.Generator,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, List[sample.Sample]]:
    """:func:`numerical_state` for many columns of a small batch at once.

    ``X`` is ``(columns, rows)`` float64; ``layout`` (:func:`numerical_layout`) holds the
    columns' edges and reference ranges.
    Returns ``(ints, floats, counts, samples)``: ``ints`` ``(columns, len(INT_FIELDS))``,
    ``floats`` ``(columns, len(FLOAT_FIELDS))``, ``counts`` the concatenated bin counts and one
    bottom-k sample per column. Each row of the result is what :func:`numerical_state` gives
    for that column (moments to rounding; the sample is drawn differently but has the same
    law: every finite value is keyed by its own uniform draw and the ``k`` smallest keys kept).
    The cost is a fixed handful of numpy calls whatever the number of columns, plus one
    ``searchsorted`` a column: the per-call overhead, not the arithmetic, is what dominates a
    replica's flush of a few hundred rows.
    """
    c, n = X.shape
    finite = np.isfinite(X)
    nan = np.isnan(X)
    nf = finite.sum(axis=1)
    n_nan = nan.sum(axis=1)
    with np.errstate(over="ignore", invalid="ignore"):
        Xf = np.where(finite, X, 0.0)
        mean = Xf.sum(axis=1) / np.maximum(nf, 1)
        d = np.where(finite, X - mean[:, None], 0.0)
        m2 = np.einsum("ij,ij->i", d, d) if n else np.zeros(c)
        fmin = np.where(finite, X, np.inf).min(axis=1) if n else np.full(c, np.inf)
        fmax = np.where(finite, X, -np.inf).max(axis=1) if n else np.full(c, -np.inf)
        out = (finite & ((Xf < layout.lo) | (Xf > layout.hi))).sum(axis=1)
        low_sum = np.where(finite & (Xf <= layout.first), Xf, 0.0).sum(axis=1)
        high_sum = np.where(finite & (Xf > layout.last), Xf, 0.0).sum(axis=1)
    # bins are right-closed, so a value's bin is the number of edges below it
    total = layout.total
    bins = np.empty((c, n), dtype=np.intp)
    for i, e in enumerate(layout.edges):
        bins[i] = np.searchsorted(e, Xf[i], side="left")
    bins += layout.offsets
    bins[~finite] = total
    counts = np.bincount(bins.ravel(), minlength=total + 1)[:total].astype(np.int64)
    ints = np.zeros((c, len(INT_FIELDS)), dtype=np.int64)
    ints[:, _I["rows"]] = n
    ints[:, _I["missing"]] = n_nan
    ints[:, _I["nonfinite"]] = n - n_nan - nf
    ints[:, _I["out_of_range"]] = out
    ints[:, _I["count"]] = nf
    floats = np.column_stack((np.where(nf > 0, mean, 0.0), m2, fmin, fmax, low_sum, high_sum))
    # bottom-k: a uniform key for every finite value (non-finite ones are keyed out of reach)
    kk = min(int(k), n)
    samples: List[sample.Sample] = []
    if kk <= 0:
        return ints, floats, counts, [(np.empty(0), np.empty(0)) for _ in range(c)]
    keys = rng.random((c, n))
    keys[~finite] = 2.0
    idx = sample.smallest(keys, kk)
    kp = np.take_along_axis(keys, idx, axis=1)
    vals = np.take_along_axis(X, idx, axis=1)
    for i, m in enumerate(np.minimum(nf, kk).tolist()):
        samples.append((vals[i, :m], kp[i, :m]))
    return ints, floats, counts, samples


def categorical_state(
    codes: np.ndarray, n_bins: int, boolean: bool, tallied: bool = False
) -> Tuple[List[int], np.ndarray]:
    """Counters and bin counts from category codes (see ``columns.encode_categorical``).

    Codes ``0 .. n_bins - 2`` are the top categories, ``n_bins - 1`` the overflow bucket,
    ``n_bins`` an unseen label (counted in the overflow bucket and in ``unseen``; for a
    boolean column it is a wrong type), ``-2`` missing, ``-3`` wrong type. With
    ``tallied``, ``codes`` already is the tally: the count of each code shifted by 3.
    """
    tally = codes if tallied else np.bincount(codes + 3, minlength=n_bins + 4)
    wrong, missing = int(tally[WRONG + 3]), int(tally[MISSING + 3])
    counts = tally[3 : 3 + n_bins].astype(np.int64)
    unseen = int(tally[3 + n_bins])
    if boolean:
        wrong += unseen
        unseen = 0
    else:
        counts[-1] += unseen
    ints = [int(tally.sum()), missing, 0, wrong, 0, unseen, int(counts.sum())]
    return ints, counts


MAX_SAMPLE_SIZE = 1_000_000  # a sample bound no summary raywatch makes comes near


def check_summary(s: "WindowSummary", flat: Optional[Tuple[np.ndarray, ...]] = None) -> Optional[str]:
    """What is semantically wrong with a summary read from bytes (None: nothing): counts
    non-negative and consistent with each other and with the layout, bounds finite where
    there are values, the sample within its bound. ``flat``: every column's sample values and
    keys as two arrays, column after column (as read from bytes), and optionally the columns'
    sample lengths, when the caller has them.

    >>> import numpy as np
    >>> from raywatch.stats.profile import Profile
    >>> good = Profile.fit({"x": np.arange(10.0)}, bins=2, seed=0).summarize({"x": [1.0, None]}, seed=0)
    >>> check_summary(good) is None
    True
    >>> good.rows = -1_000_000_000
    >>> check_summary(good)
    'rows is -1000000000'
    """
    c = len(s.names)
    if s.rows < 0:
        return f"rows is {s.rows}"
    if not 0 <= s.sample_size <= MAX_SAMPLE_SIZE:
        return f"sample_size is {s.sample_size}"
    if len(s.kinds) != c or len(s.n_bins) != c or _n_samples(s) != c or len(set(s.names)) != c:
        return "its column table is inconsistent"
    if s.counts.size != int(s._offsets[-1]) or (c and min(s.n_bins) < 1):  # the offsets: the bins' running sum
        return "its bins do not match its layout"
    if s.ints.shape != (c, len(INT_FIELDS)) or s.floats.shape != (c, len(FLOAT_FIELDS)):
        return "its counters do not match its layout"
    if s.ints.min(initial=0) < 0 or s.counts.min(initial=0) < 0:
        return "a count is negative"
    if any(int(v) < 0 or int(v) > s.rows for v in s.unknown_columns.values()):
        return "an unknown column's count is out of range"
    if not c:
        return None
    # every column at once (this runs on each summary a replica ships)
    rows, missing, nonfinite, wrong, out_of_range, unseen, count = s.ints.T
    hist = np.add.reduceat(s.counts, s._offsets[:-1]) if s.counts.size else np.zeros(c, dtype=np.int64)
    if flat is not None and len(flat) > 2 and flat[2].size == c:
        sizes = flat[2]
    else:
        sizes = np.array([v.size for v, _ in s.samples], dtype=np.int64)
    bad = ((rows > s.rows) | (missing + nonfinite + wrong + count != rows), "its counts do not add up to its rows")
    bad_hist = ((hist != count) | (out_of_range > count) | (unseen > count), "its histogram does not match its count")
    bad_sample = (sizes > np.minimum(s.sample_size, count), "its sample is out of bounds")
    f = s.floats
    numeric = _numeric_mask(s.kinds) & (count > 0)
    m2 = f[:, 1]
    m2_ok = True
    if (m2 < 0.0).any():  # rounding may leave m2 a hair below 0; more than that is damage
        with np.errstate(over="ignore", invalid="ignore"):
            # (the mean and m2 may overflow to ±inf for values near the float limit)
            m2_ok = m2 >= -1e-6 * np.maximum(1.0, f[:, 0] * f[:, 0] * count)
    moments = (numeric & ~(np.isfinite(f[:, 2]) & np.isfinite(f[:, 3]) & (f[:, 2] <= f[:, 3]) & m2_ok),
               "its moments are out of bounds")
    bad_nan = (np.isnan(f).any(axis=1), "a moment is NaN")
    checks = (bad, bad_hist, bad_sample, bad_nan, moments)
    if (bad[0] | bad_hist[0] | bad_sample[0] | bad_nan[0] | moments[0]).any():  # one test; the loop names the first
        for mask, what in checks:
            if mask.any():
                return f"column {s.names[int(np.argmax(mask))]!r}: {what}"
    if int(sizes.sum()):  # every column's sample at once; the loop only to name a bad one
        if flat is not None and flat[0].size == flat[1].size == int(sizes.sum()):
            values, keys = flat[0], flat[1]
        else:
            values = np.concatenate([v for v, _ in s.samples])
            keys = np.concatenate([k for _, k in s.samples])
        if np.isfinite(values).all() and keys.size == values.size and keys.min() >= 0 and keys.max() <= 1:
            return None
        for name, (values, keys) in zip(s.names, s.samples):
            if values.size and (keys.size != values.size or not np.isfinite(values).all() or keys.min() < 0 or keys.max() > 1):
                return f"column {name!r}: its sample is out of bounds"
    return None


def _column_major(flats: Sequence[Tuple[np.ndarray, np.ndarray, np.ndarray]], lengths: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The keys and values of every part's flat samples (``(values, keys, lengths)``, column
    after column) in the order ``[p[j] for j in columns for p in parts]``: one gather."""
    all_values = np.concatenate([f[0] for f in flats])
    all_keys = np.concatenate([f[1] for f in flats])
    n_parts = lengths.shape[0]
    flat_len = lengths.reshape(-1)
    starts = np.cumsum(flat_len) - flat_len  # where each (part, column) begins in the concatenation
    seg_starts = starts.reshape(n_parts, -1).T.reshape(-1)  # the segments column by column
    seg_len = lengths.T.reshape(-1)
    total = int(seg_len.sum())
    index = np.arange(total) + np.repeat(seg_starts - (np.cumsum(seg_len) - seg_len), seg_len)
    return all_keys.take(index), all_values.take(index)


def _n_samples(s: "WindowSummary") -> int:
    """How many columns' samples ``s`` holds (without making the per-column views)."""
    flat = s.flat_samples()
    return int(flat[2].size) if flat is not None else len(s.samples)


def check_summaries(items: Sequence[Tuple["WindowSummary", Optional[Tuple[np.ndarray, ...]]]]) -> List[Optional[str]]:
    """:func:`check_summary` of each ``(summary, flat)`` of ``items`` — the same verdicts and
    messages — with the column checks made once for all the summaries of one layout (the
    arrays stacked): what a group of replica batches costs, instead of a few dozen array
    operations each. A summary found wrong is checked again alone, for its message.

    >>> import numpy as np
    >>> from raywatch.stats.profile import Profile
    >>> p = Profile.fit({"x": np.arange(10.0)}, bins=2, seed=0)
    >>> a, b = p.summarize({"x": [1.0, None]}, seed=0), p.summarize({"x": [2.0]}, seed=1)
    >>> b.ints[0, 6] = 5  # its count no longer adds up
    >>> check_summaries([(a, None), (b, None)])
    [None, "column 'x': its counts do not add up to its rows"]
    """
    out: List[Optional[str]] = [None] * len(items)
    groups: Dict[tuple, List[int]] = {}
    for i, (s, _) in enumerate(items):
        c = len(s.names)
        if (s.rows < 0 or not 0 <= s.sample_size <= MAX_SAMPLE_SIZE or len(s.kinds) != c or len(s.n_bins) != c
                or _n_samples(s) != c or s.counts.size != int(s._offsets[-1]) or (c and min(s.n_bins) < 1)
                or s.ints.shape != (c, len(INT_FIELDS)) or s.floats.shape != (c, len(FLOAT_FIELDS))
                or s.unknown_columns):
            out[i] = check_summary(s, items[i][1])  # the checks in their order, for the message (rare)
        elif c:
            groups.setdefault((s.names, s.kinds, s.n_bins), []).append(i)
    for (names, kinds, _), idx in groups.items():
        if len(set(names)) != len(names):
            bad = idx
        else:
            bad = [idx[j] for j in _flagged([items[i] for i in idx], kinds)]
        for i in bad:
            out[i] = check_summary(*items[i])
    return out


def _flagged(items: Sequence[Tuple["WindowSummary", Optional[Tuple[np.ndarray, ...]]]], kinds: Tuple[str, ...]) -> List[int]:
    """Positions of the summaries of ``items`` (one layout, their tables checked) that
    :func:`check_summary`'s column and sample checks find wrong: those checks on the stacked
    arrays of every summary."""
    parts = [s for s, _ in items]
    ints = np.stack([s.ints for s in parts])  # (summaries, columns, INT_FIELDS)
    f = np.stack([s.floats for s in parts])
    counts = np.stack([s.counts for s in parts])
    flats = [flat if flat is not None and len(flat) > 2 else s.flat_samples() for s, flat in items]
    if all(fl is not None for fl in flats):
        sizes = np.stack([fl[2] for fl in flats])  # type: ignore[index]
    else:
        sizes = np.array([[v.size for v, _ in s.samples] for s in parts], dtype=np.int64)
    rows = np.array([s.rows for s in parts], dtype=np.int64)[:, None]
    k = np.array([s.sample_size for s in parts], dtype=np.int64)[:, None]
    negative = ints.reshape(len(parts), -1).min(axis=1) < 0
    if counts.shape[1]:
        negative |= counts.min(axis=1) < 0
    r, missing, nonfinite, wrong, out_of_range, unseen, count = (ints[:, :, j] for j in range(len(INT_FIELDS)))
    hist = np.add.reduceat(counts, parts[0]._offsets[:-1], axis=1) if counts.shape[1] else np.zeros_like(count)
    bad = (r > rows) | (missing + nonfinite + wrong + count != r)
    bad |= (hist != count) | (out_of_range > count) | (unseen > count)
    bad |= sizes > np.minimum(k, count)
    bad |= np.isnan(f).any(axis=2)
    m2 = f[:, :, 1]
    m2_ok = True
    if (m2 < 0.0).any():
        with np.errstate(over="ignore", invalid="ignore"):
            m2_ok = m2 >= -1e-6 * np.maximum(1.0, f[:, :, 0] * f[:, :, 0] * count)
    bad |= _numeric_mask(kinds) & (count > 0) & ~(np.isfinite(f[:, :, 2]) & np.isfinite(f[:, :, 3])
                                                  & (f[:, :, 2] <= f[:, :, 3]) & m2_ok)
    flagged = negative | bad.any(axis=1)
    if sizes.any():  # the samples of every summary at once; each summary alone only when one is wrong
        if all(fl is not None for fl in flats):
            values = np.concatenate([fl[0] for fl in flats])  # type: ignore[index]
            keys = np.concatenate([fl[1] for fl in flats])  # type: ignore[index]
        else:
            values = np.concatenate([v for s in parts for v, _ in s.samples])
            keys = np.concatenate([key for s in parts for _, key in s.samples])
        if not (keys.size == values.size and np.isfinite(values).all() and (not keys.size or (keys.min() >= 0 and keys.max() <= 1))):
            flagged |= np.array([check_summary(*item) is not None for item in items])
    return np.flatnonzero(flagged).tolist()


def _bottom_k_all(parts: Optional[List[List[sample.Sample]]], k: int,
                  flats: Optional[Sequence[Tuple[np.ndarray, np.ndarray, np.ndarray]]] = None) -> List[sample.Sample]:
    """Per column, the ``k`` smallest keys of the union of every part's sample, sorted by key:
    what merging the samples pairwise gives (:func:`raywatch.stats.sample.merge`), for all
    columns and parts at once. The keys of each column with a sample go into one row of a
    matrix (padded with 2.0, above every key, when the columns hold different numbers), one
    ``argpartition`` and one ``argsort`` over the rows pick and order each column's ``k``
    smallest; the columns' samples are rows of the result. ``flats``: every part's samples as
    ``(values, keys, lengths)`` (as :meth:`WindowSummary.flat_samples` gives), when all have them;
    then ``parts`` may be None."""
    c = len(flats[0][2]) if flats is not None else len(parts[0])  # type: ignore[index]
    if flats is not None:  # every part's samples as flat arrays: gathered column by column at once
        lengths = np.stack([f[2] for f in flats])  # (parts, columns)
        totals = lengths.sum(axis=0)
    else:
        values = [p[j][0] for j in range(c) for p in parts]  # column by column
        keys = [p[j][1] for j in range(c) for p in parts]
        totals = np.fromiter(map(len, keys), dtype=np.int64, count=len(keys)).reshape(c, len(parts)).sum(axis=1)
    out: List[sample.Sample] = [(_NONE, _NONE)] * c
    full = np.flatnonzero(totals)
    if full.size == 0 or k <= 0:
        return out
    t = totals[full]
    width = int(t.max())
    if flats is not None:
        per = lengths[0, full]
        w = int(per[0])
        if w and (lengths == lengths[0]).all() and (per == w).all():  # every part as one matrix of the sampled columns
            n_parts = len(flats)
            key_m = np.stack([f[1] for f in flats]).reshape(n_parts, full.size, w).transpose(1, 0, 2).reshape(full.size, width)
            val_m = np.stack([f[0] for f in flats]).reshape(n_parts, full.size, w).transpose(1, 0, 2).reshape(full.size, width)
            return _rows_bottom_k(out, full, t, key_m, val_m, k)
        flat_keys, flat_values = _column_major(flats, lengths)
    else:
        flat_keys, flat_values = np.concatenate(keys), np.concatenate(values)
    if int(t.min()) == width:  # every sampled column holds as many: no padding
        key_m, val_m = flat_keys.reshape(full.size, width), flat_values.reshape(full.size, width)
    else:
        row = np.repeat(np.arange(full.size), t)
        starts = np.concatenate(([0], np.cumsum(t)[:-1]))
        slot = row * width + (np.arange(flat_keys.size) - starts[row])
        key_m = np.full(full.size * width, 2.0)
        val_m = np.zeros(full.size * width)
        key_m[slot], val_m[slot] = flat_keys, flat_values
        key_m, val_m = key_m.reshape(full.size, width), val_m.reshape(full.size, width)
    return _rows_bottom_k(out, full, t, key_m, val_m, k)


def _rows_bottom_k(out: List[sample.Sample], full: np.ndarray, t: np.ndarray, key_m: np.ndarray, val_m: np.ndarray,
                   k: int) -> List[sample.Sample]:
    """Fill ``out[j]`` for each sampled column ``j`` of ``full`` (holding ``t`` keys, in row
    ``key_m``, padded) with its ``k`` smallest keys and their values, in key order."""
    rows = np.arange(full.size)[:, None]
    keep = sample.smallest(key_m, k)
    key_m, val_m = key_m[rows, keep], val_m[rows, keep]
    for j, row_keys, row_values, n in zip(full.tolist(), key_m, val_m, np.minimum(t, k).tolist()):
        out[j] = (row_values[:n], row_keys[:n])
    return out


_NONE = np.empty(0, dtype=np.float64)
_NONE.flags.writeable = False

_NUMERIC: Dict[tuple, np.ndarray] = {}


def _numeric_mask(kinds: Tuple[str, ...]) -> np.ndarray:
    """Which columns are numerical, as a read-only boolean array kept per kinds tuple (every
    summary of a profile shares it)."""
    hit = _NUMERIC.get(kinds)
    if hit is None:
        hit = np.array([k == "numerical" for k in kinds], dtype=bool)
        hit.flags.writeable = False
        if len(_NUMERIC) >= 256:
            _NUMERIC.clear()
        _NUMERIC[kinds] = hit
    return hit


_LAYOUTS: Dict[tuple, Tuple[Tuple[int, ...], np.ndarray]] = {}


def _layout(n_bins: Sequence[int]) -> Tuple[Tuple[int, ...], np.ndarray]:
    """``(bins per column as ints, offsets of the columns' bins)``, made once per layout (every
    summary of a profile shares it; the offsets are read-only)."""
    key = n_bins if type(n_bins) is tuple else tuple(n_bins)
    hit = _LAYOUTS.get(key)
    if hit is None:
        bins = tuple(int(b) for b in key)
        offsets = np.concatenate(([0], np.cumsum(bins, dtype=np.int64))).astype(np.int64)
        offsets.flags.writeable = False
        if len(_LAYOUTS) >= 256:
            _LAYOUTS.clear()
        hit = _LAYOUTS[key] = (bins, offsets)
    return hit


_KIND_NAMES = {"n": "numerical", "c": "categorical", "b": "boolean"}
_COLUMNS: Dict[tuple, Tuple[Tuple[str, ...], Tuple[str, ...], Tuple[int, ...]]] = {}


def _columns(columns: Sequence, kinds: Sequence, n_bins: Sequence) -> Tuple[Tuple[str, ...], Tuple[str, ...], Tuple[int, ...]]:
    """``(names, kinds, bins)`` of a summary's header (its ``columns``, ``kinds`` letters and
    ``n_bins`` lists), checked and converted once per column table (every summary of a
    profile has the same). Raises KeyError, TypeError or ValueError on a malformed one."""
    try:
        key = (tuple(columns), tuple(kinds), tuple(n_bins))
        hit = _COLUMNS.get(key)
    except TypeError:  # an unhashable item: not a column table this reads; converted below to say why
        key, hit = None, None
    if hit is None:
        hit = (tuple(str(n) for n in columns), tuple(_KIND_NAMES[k] for k in kinds), tuple(int(b) for b in n_bins))
        if key is not None and all(type(n) is str for n in columns) and all(type(b) is int for b in n_bins):
            if len(_COLUMNS) >= 256:
                _COLUMNS.clear()
            _COLUMNS[key] = hit
    return hit


class WindowSummary:
    """A mergeable summary of a window of rows, in the shape of one profile.

    Build one with ``profile.summarize(batch)`` or ``profile.empty_summary()``; combine
    with :meth:`merge`; ship with :meth:`to_bytes` / :meth:`from_bytes`.
    """

    __slots__ = ("fingerprint", "names", "kinds", "n_bins", "sample_size", "rows", "ints", "floats",
                 "counts", "_samples", "unknown_columns", "sections", "_offsets", "_flat")

    def __init__(
        self,
        fingerprint: str,
        names: Sequence[str],
        kinds: Sequence[str],
        n_bins: Sequence[int],
        sample_size: int,
        rows: int = 0,
        ints: Optional[np.ndarray] = None,
        floats: Optional[np.ndarray] = None,
        counts: Optional[np.ndarray] = None,
        samples: Optional[List[sample.Sample]] = None,
        unknown_columns: Optional[Dict[str, int]] = None,
        sections: Optional[Dict[str, "sec.Section"]] = None,
    ):
        c = len(names)
        self.fingerprint = fingerprint
        self.names = names if type(names) is tuple else tuple(names)
        self.kinds = kinds if type(kinds) is tuple else tuple(kinds)
        self.n_bins, self._offsets = _layout(n_bins)
        self.sample_size = int(sample_size)
        self.rows = int(rows)
        if ints is None:
            ints = np.zeros((c, len(INT_FIELDS)), dtype=np.int64)
        if floats is None:
            floats = np.tile(np.array([0.0, 0.0, math.inf, -math.inf, 0.0, 0.0]), (c, 1))
        if counts is None:
            counts = np.zeros(int(self._offsets[-1]), dtype=np.int64)
        if samples is None:
            samples = [(np.empty(0), np.empty(0)) for _ in range(c)]
        self.ints = ints
        self.floats = floats
        self.counts = counts
        self._samples = samples
        self.unknown_columns = dict(unknown_columns or {})
        self.sections: Dict[str, sec.Section] = dict(sections or {})
        self._flat: Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]] = None  # see flat_samples

    @property
    def samples(self):
        """Per column, its sample as ``(values, keys)`` sorted by key. A summary read from
        bytes or merged holds them flat (:meth:`flat_samples`) and makes this tuple of views
        of them when first asked (an ingested summary is merged without it)."""
        sm = self._samples
        if sm is None:
            values, keys, lengths = self._flat  # type: ignore[misc]
            ends = np.cumsum(lengths).tolist()
            sm = self._samples = tuple([(values[a:b], keys[a:b]) for a, b in zip([0] + ends, ends)])
        return sm

    @samples.setter
    def samples(self, value) -> None:
        self._samples = value
        self._flat = None

    def flat_samples(self) -> Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Every column's sample as ``(values, keys, lengths)``, column after column, when
        this summary was read from bytes or merged, else None (read only)."""
        return self._flat

    def _with_flat(self, values: np.ndarray, keys: np.ndarray, lengths: np.ndarray) -> "WindowSummary":
        """This summary, its samples held flat (made into per-column views when asked)."""
        self._samples = None
        self._flat = (values, keys, lengths)
        return self

    # ------------------------------------------------------------------ access
    @property
    def columns(self) -> Tuple[str, ...]:
        return self.names

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"no column {name!r} in this summary (columns: {', '.join(self.names)})") from None

    def column(self, name: str) -> ColumnSummary:
        """A :class:`ColumnSummary` view of one column."""
        i = self.index(name)
        ints = self.ints[i]
        mean, m2, fmin, fmax, low_sum, high_sum = (float(v) for v in self.floats[i])
        count = int(ints[_I["count"]])
        var = m2 / count if count and self.kinds[i] == "numerical" else 0.0
        return ColumnSummary(
            name=name,
            kind=self.kinds[i],
            rows=int(ints[_I["rows"]]),
            missing=int(ints[_I["missing"]]),
            nonfinite=int(ints[_I["nonfinite"]]),
            wrong_type=int(ints[_I["wrong_type"]]),
            out_of_range=int(ints[_I["out_of_range"]]),
            unseen=int(ints[_I["unseen"]]),
            count=count,
            mean=mean,
            variance=var,
            min=fmin,
            max=fmax,
            counts=self.counts[self._offsets[i] : self._offsets[i + 1]].copy(),
            sample=self.samples[i][0].copy(),
            tail_sums=(low_sum, high_sum),
        )

    def sample_complete(self, name: str) -> bool:
        """Whether the sample holds every histogram value of the column (exact tests possible)."""
        i = self.index(name)
        return int(self.ints[i, _I["count"]]) == self.samples[i][0].size

    # ----------------------------------------------------------------- merging
    def _check(self, other: "WindowSummary") -> None:
        if not isinstance(other, WindowSummary):
            raise TypeError(f"cannot merge a WindowSummary with {type(other).__name__}")
        if other.fingerprint != self.fingerprint or other.names != self.names:
            raise ValueError(
                "cannot merge window summaries made against different profiles "
                f"(fingerprints {self.fingerprint} and {other.fingerprint})"
            )

    def merge(self, other: "WindowSummary") -> "WindowSummary":
        """A new summary of both windows: exact for counts and moments, a uniform
        bottom-k sample of the union for the sample."""
        self._check(other)
        return WindowSummary._merged([self, other])

    @classmethod
    def merge_all(cls, summaries: Sequence["WindowSummary"]) -> "WindowSummary":
        """Merge a non-empty sequence of summaries: equal to merging them pairwise, in order
        (``a.merge(b).merge(c)…``), in one pass — the samples of every column and part in a few
        array operations (:func:`_bottom_k_all`), the moments by the pairwise formulas.

        >>> import numpy as np
        >>> from raywatch.stats.profile import Profile
        >>> p = Profile.fit({"x": np.arange(100.0), "y": np.arange(100.0) % 7}, seed=0)
        >>> parts = [p.summarize({"x": np.arange(i, i + 30.0), "y": np.arange(30.0)}, seed=i) for i in range(4)]
        >>> WindowSummary.merge_all(parts) == parts[0].merge(parts[1]).merge(parts[2]).merge(parts[3])
        True
        """
        if not summaries:
            raise ValueError("merge_all needs at least one summary")
        if len(summaries) == 1:
            return summaries[0]
        for s in summaries[1:]:
            summaries[0]._check(s)
        return cls._merged(list(summaries))

    @classmethod
    def _merged(cls, parts: List["WindowSummary"]) -> "WindowSummary":
        """The pairwise merge of ``parts`` in order, arithmetic for arithmetic, over all parts at
        once where the order cannot change a result (integer sums, minima and maxima)."""
        first = parts[0]
        ints_all = np.stack([p.ints for p in parts])
        floats_all = np.stack([p.floats for p in parts])
        n_part = ints_all[:, :, _I["count"]].astype(np.float64)
        n_cum = np.cumsum(n_part, axis=0)  # exact: sums of integers
        mean, m2 = floats_all[0, :, 0], floats_all[0, :, 1]
        with np.errstate(over="ignore", invalid="ignore"):
            # each step's weights for every step at once (the same arithmetic, elementwise):
            # nb / n and na·nb / n, with n = na + nb (1 where both are 0)
            safe = np.where(n_cum > 0, n_cum, 1.0)[1:]
            nb = n_part[1:]
            ratio = nb / safe
            weight = n_cum[:-1] * nb / safe
            means, m2s = floats_all[1:, :, 0], floats_all[1:, :, 1]
            for i in range(len(parts) - 1):
                delta = means[i] - mean
                mean = mean + delta * ratio[i]
                m2 = m2 + m2s[i] + delta * delta * weight[i]
            tails = np.add.accumulate(floats_all[:, :, 4:], axis=0)[-1]  # in order, as pairwise
        floats = np.column_stack((mean, m2, floats_all[:, :, 2].min(axis=0), floats_all[:, :, 3].max(axis=0), tails))
        unknown = dict(first.unknown_columns)
        sections = first.sections
        for other in parts[1:]:
            for name, n_rows in other.unknown_columns.items():
                if name in unknown or len(unknown) < MAX_UNKNOWN_COLUMNS:
                    unknown[name] = unknown.get(name, 0) + n_rows
            if sections or other.sections:
                sections = sec.merge_sections(sections, other.sections)
        k = min(s.sample_size for s in parts)
        flats = [p.flat_samples() for p in parts]
        if any(f is None for f in flats):
            flats = None
        samples = _bottom_k_all([s.samples for s in parts] if flats is None else None, k, flats)
        out = WindowSummary(
            first.fingerprint, first.names, first.kinds, first.n_bins, k, rows=sum(s.rows for s in parts),
            ints=ints_all.sum(axis=0), floats=floats, counts=np.sum([s.counts for s in parts], axis=0),
            samples=samples, unknown_columns=unknown, sections=sections or None,
        )
        if flats is not None:  # the merged samples flat too, for the next merge
            lengths = np.fromiter((v.size for v, _ in samples), dtype=np.int64, count=len(samples))
            values = np.concatenate([v for v, _ in samples]) if samples else _NONE
            keys = np.concatenate([key for _, key in samples]) if samples else _NONE
            out._with_flat(values, keys, lengths)
        return out

    # ----------------------------------------------------------- serialization
    def to_bytes(self) -> bytes:
        """Compact bytes (a small JSON header and raw little-endian arrays; no pickle)."""
        lengths = np.array([s[0].size for s in self.samples], dtype=np.int64)
        values = np.concatenate([s[0] for s in self.samples]) if self.samples else np.empty(0)
        keys = np.concatenate([s[1] for s in self.samples]) if self.samples else np.empty(0)
        cmax = int(self.counts.max()) if self.counts.size else 0
        counts = self.counts.astype("<u4") if cmax < 2**32 else self.counts.astype("<i8")
        meta = {
            "fingerprint": self.fingerprint,
            "columns": list(self.names),
            "kinds": [k[0] for k in self.kinds],
            "n_bins": list(self.n_bins),
            "sample_size": self.sample_size,
            "rows": self.rows,
            "unknown": self.unknown_columns,
        }
        arrays = {
            "ints": self.ints.reshape(-1).astype("<i8"),
            "floats": self.floats.reshape(-1).astype("<f8"),
            "counts": counts,
            "sample_lengths": lengths.astype("<u4"),
            "sample_values": values.astype("<f8"),
            "sample_keys": keys.astype("<f8"),
        }
        if not self.sections:
            return codec.pack(b"WS", 1, meta, arrays)
        meta["sections"], extra = sec.encode(self.sections)
        arrays.update(extra)
        return codec.pack(b"WS", FORMAT_VERSION, meta, arrays)

    @classmethod
    def from_bytes(cls, data: bytes, *, copy: bool = True, check: bool = True) -> "WindowSummary":
        """Inverse of :meth:`to_bytes`; raises :class:`raywatch.stats.codec.FormatError`
        saying what is wrong with damaged or foreign bytes. ``copy=False``: the samples are
        read-only views of ``data`` (a profile's reference, never merged into).
        ``check=False`` leaves out :func:`check_summary` (the layout is still checked): for a
        caller that checks many at once with :func:`check_summaries` before using any."""
        # the arrays as views of ``data``: the counters are converted (one copy each, theirs to
        # change); the samples stay read-only views of ``data`` unless ``copy`` (merging makes new ones)
        meta, arrays = codec.unpack(data, b"WS", READS, copy=False)
        try:
            names, kinds, n_bins = _columns(meta["columns"], meta["kinds"], meta["n_bins"])
            c = len(names)
            ints = arrays["ints"].astype(np.int64).reshape(c, len(INT_FIELDS))
            floats = arrays["floats"].astype(np.float64).reshape(c, len(FLOAT_FIELDS))
            counts = arrays["counts"].astype(np.int64)
            lengths = arrays["sample_lengths"].astype(np.int64, copy=False)
            if counts.size != sum(n_bins) or lengths.size != c or len(kinds) != c:
                raise ValueError("inconsistent sizes")
            values, keys = arrays["sample_values"], arrays["sample_keys"]
            if copy:
                values, keys = values.copy(), keys.copy()
            if values.size != int(lengths.sum()) or keys.size != values.size or (c and lengths.min() < 0):
                raise ValueError("inconsistent sample sizes")
            out = cls(
                str(meta["fingerprint"]), names, kinds, n_bins, int(meta["sample_size"]),
                rows=int(meta["rows"]), ints=ints, floats=floats, counts=counts, samples=(),
                unknown_columns={str(k): int(v) for k, v in dict(meta.get("unknown", {})).items()},
                sections=sec.decode(meta.get("sections", []), arrays, what="section"),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise codec.FormatError(f"damaged window summary: {exc}") from None
        out._with_flat(values, keys, lengths)  # the per-column samples made when first asked
        if not check:
            return out
        problem = check_summary(out, (values, keys, lengths))
        if problem is not None:  # the CRC only says these are the bytes someone wrote
            raise codec.FormatError(f"implausible window summary: {problem}")
        return out

    # ------------------------------------------------------------------- misc
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WindowSummary):
            return NotImplemented
        return (
            self.fingerprint == other.fingerprint
            and self.names == other.names
            and self.rows == other.rows
            and self.sample_size == other.sample_size
            and np.array_equal(self.ints, other.ints)
            and np.array_equal(self.floats, other.floats)
            and np.array_equal(self.counts, other.counts)
            and all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(self.samples, other.samples))
            and self.unknown_columns == other.unknown_columns
            and self.sections == other.sections
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"WindowSummary(rows={self.rows}, columns={len(self.names)}, profile={self.fingerprint})"
