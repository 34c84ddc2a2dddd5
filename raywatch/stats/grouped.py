"""Window summaries of many groups of rows in one pass, and the segments of a flush.

:func:`summarize_segments` is what a replica calls per flush: the
:class:`~raywatch.stats.segments.Segments` of window summaries of its rows for each segment
column, and the summary of all of them (``Segments.whole``), from one pass per column.

:func:`summarize_groups` returns, for each group of rows of one batch, the
:class:`~raywatch.stats.summary.WindowSummary` that ``profile.summarize`` would give for
those rows alone: the same counters, bin counts and unknown-column counts, the same moments
to rounding, and bottom-k samples of the same law. It costs a fixed handful of numpy calls
for all groups plus a few per group, instead of one ``summarize`` per group, whose
per-call overhead is what dominates a segment of a few hundred rows: for 20 segments of a
10,000-row flush of 20 features it is about 2× the segment-less ``summarize`` instead of
about 8.5× (``benchmarks/segments.py``).

How: the batch's rows are reordered once so that each group is a contiguous run, and each
run is sorted per column. Then, per numerical column and group, the bin counts are
differences of the positions of the edges in the sorted run (right-closed bins, as
``summarize``), the values outside the reference's range are counted by two more needles,
min and max are the run's finite ends, the outer bins' sums one ``reduceat``. A clean batch
(every value finite) is done one group's block at a time while it is in cache (sort, sums,
sums of squares, edge positions); its centred sums of squares are ``Σx² − n·mean²``, summed
again about the mean (two passes, as ``summarize``) wherever that difference would lose
precision (:func:`_centred`). Large temporaries are per-thread buffers reused from one flush
to the next (:func:`_scratch`): fresh ones cost a page fault per 4 KiB. Categorical columns: each row's code
from ``summarize``'s packed kernel for short Latin-1 labels
(:func:`raywatch.stats.strings.short_string_codes`), else one binary search of each string
among the profile's sorted labels (or ``encode_categorical``), then one ``bincount`` of
``group × code``.

Samples: one uniform key is drawn per position of a group's run and shared by its columns
(for a clean batch, all groups' keys as one padded matrix: one ``argpartition`` for all),
so each column's sample is a uniform ``k``-subset of its finite values with its own bottom-k
keys (the law ``summarize`` gives and :mod:`raywatch.stats.sample` merges). Because the runs
are sorted per column, the columns' samples are drawn at the same random *ranks*: they are
not row-aligned (``summarize``'s are not either), and nothing may pair them across columns.

If :mod:`raywatch.stats.summary` ever holds fields this kernel does not know,
:data:`SUPPORTED` is False and :func:`summarize_groups` falls back to one
``profile.summarize`` per group, so a summary is never missing a section.

>>> import numpy as np
>>> from raywatch.stats.profile import Profile
>>> profile = Profile.fit({"x": np.arange(100.0), "c": ["a", "b"] * 50}, bins=4, seed=0)
>>> batch = {"x": np.array([1.0, 60.0, np.nan, 99.0]), "c": np.array(["a", "b", "a", "z"])}
>>> order, bounds = np.array([0, 2, 1, 3]), np.array([0, 2, 4])  # groups: rows {0, 2} and {1, 3}
>>> first, second = summarize_groups(profile, batch, order, bounds, seed=0)
>>> first.column("x").missing, first.column("x").counts.tolist(), second.column("c").unseen
(1, [1, 0, 0, 0], 1)
>>> second.ints.tolist() == profile.summarize({k: v[[1, 3]] for k, v in batch.items()}).ints.tolist()
True
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from raywatch.stats import sample, sections
from raywatch.stats import summary as sm
from raywatch.stats.columns import MISSING, WRONG, encode_categorical, encode_numerical, to_columns
from raywatch.stats.memo import IdentityCache
from raywatch.stats.segments import DEFAULT_K, Segments
from raywatch.stats.strings import MIN_ROWS, short_string_codes
from raywatch.stats.summary import MAX_UNKNOWN_COLUMNS, WindowSummary

__all__ = ["summarize_groups", "summarize_segments", "SUPPORTED"]

log = logging.getLogger("raywatch.stats.grouped")

_KNOWN_INTS = ("rows", "missing", "nonfinite", "wrong_type", "out_of_range", "unseen", "count")
_KNOWN_FLOATS = ("mean", "m2", "min", "max", "low_sum", "high_sum")
SUPPORTED = tuple(sm.INT_FIELDS) == _KNOWN_INTS and tuple(sm.FLOAT_FIELDS) == _KNOWN_FLOATS
_I = {name: i for i, name in enumerate(_KNOWN_INTS)}


def _numerical(arr: np.ndarray) -> tuple:
    """``(values with NaN for missing and wrong-type, wrong-type mask or None)``, row-aligned."""
    x, wrong = encode_numerical(arr)
    if not wrong:
        return x, None
    n = int(arr.shape[0])
    out, mask = np.full(n, np.nan), np.zeros(n, dtype=bool)
    if arr.dtype.kind != "O":
        mask[:] = True
        return out, mask
    one = np.empty(1, dtype=object)
    for i, v in enumerate(arr.tolist()):  # rare: a column with wrong-type values
        one[0] = v
        xi, w = encode_numerical(one)
        if w:
            mask[i] = True
        else:
            out[i] = xi[0]
    return out, mask


_STRING_KEYS: Dict[Tuple[str, str], Tuple[np.ndarray, np.ndarray]] = {}


def _string_tally(arr: np.ndarray, spec: Any, fingerprint: str, row_group: np.ndarray, sizes: np.ndarray) -> Optional[np.ndarray]:
    """Per-group code tallies of a numpy string column: one binary search of each value among
    the profile's sorted string labels (a label it lacks is unseen); None when the column's
    reference had no strings."""
    if "str" not in spec.families:
        return None
    G, width = sizes.size, spec.n_bins + 4
    fast = short_string_codes(arr, spec.lookup, spec.families, spec.n_bins) if arr.shape[0] >= MIN_ROWS else None
    if fast is not None:  # short Latin-1 labels: packed into integers, as summarize's tally
        return np.bincount(row_group * width + fast + 3, minlength=(G + 1) * width)[: G * width].reshape(G, width)
    cached = _STRING_KEYS.get((fingerprint, spec.name))
    if cached is None:
        pairs = sorted((key, code) for key, code in spec.lookup.items() if isinstance(key, str))
        if len(_STRING_KEYS) >= 256:
            _STRING_KEYS.clear()
        cached = _STRING_KEYS[(fingerprint, spec.name)] = (
            np.array([k for k, _ in pairs], dtype=str), np.array([c for _, c in pairs] + [spec.n_bins], dtype=np.intp))
    labels, codes = cached
    if labels.size:
        i = np.minimum(np.searchsorted(labels, arr), labels.size - 1)
        code = np.where(labels[i] == arr, codes[i], spec.n_bins)
    else:
        code = np.full(arr.shape[0], spec.n_bins, dtype=np.intp)
    return np.bincount(row_group * width + code + 3, minlength=(G + 1) * width)[: G * width].reshape(G, width)


def _categorical_states(tally: np.ndarray, n_bins: int, boolean: bool) -> tuple:
    """:func:`~raywatch.stats.summary.categorical_state` for every group's tally (rows) at once."""
    counts = tally[:, 3 : 3 + n_bins].astype(np.int64)
    unseen = tally[:, 3 + n_bins].astype(np.int64)
    wrong = tally[:, WRONG + 3].astype(np.int64)
    if boolean:
        wrong, unseen = wrong + unseen, np.zeros_like(unseen)
    else:
        counts[:, -1] += unseen
    ints = np.zeros((tally.shape[0], len(_KNOWN_INTS)), dtype=np.int64)
    ints[:, _I["rows"]] = tally.sum(axis=1)
    ints[:, _I["missing"]] = tally[:, MISSING + 3]
    ints[:, _I["wrong_type"]] = wrong
    ints[:, _I["unseen"]] = unseen
    ints[:, _I["count"]] = counts.sum(axis=1)
    return ints, counts


_SCRATCH = threading.local()
_SCRATCH_MAX = 1 << 20  # elements (8 MiB a buffer): a larger batch gets buffers of its own


def _scratch(slot: str, shape: Tuple[int, ...], dtype: Any = np.float64) -> np.ndarray:
    """An uninitialised array of ``shape``, reused by this thread from one call to the next
    (one buffer per ``slot``): a fresh array of a flush's size comes from the kernel page by
    page, and its page faults cost as much as filling it. Every cell must be written before
    it is read, and nothing returned to a caller may be a view of it."""
    size = math.prod(shape)
    if size > _SCRATCH_MAX:
        return np.empty(shape, dtype=dtype)
    bufs = getattr(_SCRATCH, "bufs", None)
    if bufs is None:
        bufs = _SCRATCH.bufs = {}
    buf = bufs.get(slot)
    if buf is None or buf.size < size or buf.dtype != dtype:
        buf = bufs[slot] = np.empty(max(size, 1 << 12), dtype=dtype)
    return buf[:size].reshape(shape)


_NEEDLES = IdentityCache(64)  # the numerical columns' specs → (needles, edges per column)


def _needles(num: list) -> Tuple[np.ndarray, np.ndarray]:
    """``(needles, edges per column)``: per numerical column, the value just below the
    reference's min, the edges, +inf up to the longest row, and the reference's max."""
    specs = tuple(t[1] for t in num)
    hit = _NEEDLES.get(specs)
    if hit is not None:
        return hit
    n_edges = np.array([t[1].edges.size for t in num], dtype=np.intp)
    needles = np.full((len(num), int(n_edges.max(initial=0)) + 2), np.inf)
    for j, t in enumerate(num):
        spec = t[1]
        needles[j, 0] = np.nextafter(spec.lo, -np.inf) if spec.lo == spec.lo else -np.inf
        needles[j, 1 : 1 + spec.edges.size] = spec.edges
        needles[j, -1] = spec.hi if spec.hi == spec.hi else np.inf
    return _NEEDLES.put(specs, (needles, n_edges))


def _numerical_groups(num, order, bounds, sizes, k, rng, ints, floats, counts, samples) -> Optional[list]:
    """Fill the numerical columns' counters, moments, histograms and samples of every group.
    For a clean batch (every value finite), the groups' samples as ``(values, keys)`` with one
    row of values per numerical column, for :func:`_bottom_ks`; else None."""
    G, starts = sizes.size, bounds[:-1]
    idx = [t[0] for t in num]
    padded = _scratch("values", (len(num), order.size + 1))
    padded[:, -1] = 0.0  # a spare 0 column: reduceat may index the end
    X = padded[:, :-1]
    for j, t in enumerate(num):
        np.take(t[2], order, out=X[j], mode="clip")  # "raise" would buffer: order is in range
    red = lambda a, op=np.add: op.reduceat(a, starts, axis=1).T  # noqa: E731  (G, columns)
    n_wrong = np.zeros((G, len(num)), dtype=np.int64)
    if any(t[3] is not None for t in num):
        wrong = np.zeros(X.shape, dtype=bool)
        for j, t in enumerate(num):
            if t[3] is not None:
                wrong[j] = t[3][order]
        n_wrong = red(wrong)
    # sort each group's values: [-inf, finite, +inf, NaN (missing and wrong-type)]. Bins are
    # then positions of the edges in each run, min and max are read off its ends, and nothing
    # else depends on the order within a group.
    # A run's finite values are sorted: a bin count is a difference of the positions of the
    # edges in the run (right-closed bins, as summarize); needle 0 (just below the reference's
    # min) and the last (its max) count the values out of range; +inf pads the shorter rows
    clean = bool(np.isfinite(X).all())
    needles, n_edges = _needles(num)
    c, width = len(num), needles.shape[1]
    cum = _scratch("positions", (c, G, width), np.int64)  # every row written below
    if clean:  # each group's block once, while it is in cache: sort, moments, positions
        nf = np.broadcast_to(sizes[:, None], n_wrong.shape)
        n_nan = neg = np.zeros_like(n_wrong)
        squares = np.empty((G, c))
        rows = list(needles)
        for g, (a, b) in enumerate(zip(starts.tolist(), bounds[1:].tolist())):
            block, at = X[:, a:b], cum[:, g]
            block.sort(axis=1)
            squares[g] = np.einsum("ij,ij->i", block, block)
            for j in range(c):
                at[j] = block[j].searchsorted(rows[j], "right")
    else:
        for a, b in zip(starts, bounds[1:]):
            X[:, a:b].sort(axis=1)
        finite = np.isfinite(X)
        nf = red(finite)
        n_nan = red(np.isnan(X)) - n_wrong
        neg = red(X == -np.inf)
        begins, ends = (starts[:, None] + neg).T.tolist(), (starts[:, None] + neg + nf).T.tolist()
        for j in range(c):
            row, nd, bj, ej = X[j], needles[j], begins[j], ends[j]
            for g in range(G):
                cum[j, g] = row[bj[g] : ej[g]].searchsorted(nd, "right")
    begin = starts[:, None] + neg  # (G, columns): where each run's finite values start
    m = nf.T  # (columns, G)
    inner = cum[:, :, 1:-1]  # bin counts: differences of the positions [0, edges…, m]
    steps = _scratch("steps", (c, G, width - 1), np.int64)  # copied out by summarize_groups
    steps[:, :, :-1] = inner
    steps[:, :, -1] = m
    steps[:, :, 1:] -= inner
    hist = [steps[j, :, : n_edges[j] + 1] for j in range(c)]
    out = (cum[:, :, 0] + m - cum[:, :, -1]).T
    # sums of each run's lowest bin, middle and highest bin: one reduceat over all columns
    with np.errstate(over="ignore", invalid="ignore"):
        edged = (n_edges > 0)[:, None]
        first_cut = np.where(edged, cum[:, :, 1], 0)
        last_cut = np.where(edged, np.take_along_axis(cum, n_edges[:, None, None], axis=2)[:, :, 0], m)
        b0 = begin.T + np.arange(c)[:, None] * (X.shape[1] + 1)  # rows of the padded, flattened X
        cuts = np.stack((b0, b0 + first_cut, b0 + last_cut, b0 + m), axis=-1)  # (columns, G, 4)
        part = np.add.reduceat(padded.ravel(), cuts.ravel()).reshape(c, G, 4)[:, :, :3]
        sums = np.where(np.diff(cuts, axis=-1) > 0, part, 0.0).transpose(2, 1, 0)  # (3, G, columns)
        mean = sums.sum(axis=0) / np.maximum(nf, 1)
        if clean:
            m2 = _centred(squares, mean, sizes, X, starts)
        else:
            m2 = np.empty_like(mean)
            d = _scratch("centred", (c, int(sizes.max())))
            for g, (a, b) in enumerate(zip(starts.tolist(), bounds[1:].tolist())):  # centred: two passes
                dg = np.subtract(X[:, a:b], mean[g][:, None], out=d[:, : b - a])
                dg[~finite[:, a:b]] = 0.0
                m2[g] = np.square(dg, out=dg).sum(axis=1)
        low, high = sums[0], sums[2]  # the open outer bins' sums (0 for a column without edges)
        lo_pos = starts[:, None] + neg  # (G, columns): where each group's finite values start
        cols = np.arange(len(num))[None, :]
        fmin = np.where(nf > 0, X[cols, np.minimum(lo_pos, X.shape[1] - 1)], np.inf)
        fmax = np.where(nf > 0, X[cols, np.maximum(lo_pos + nf - 1, 0)], -np.inf)
    ints[:, idx, _I["rows"]] = sizes[:, None]
    ints[:, idx, _I["missing"]] = n_nan
    ints[:, idx, _I["nonfinite"]] = sizes[:, None] - n_wrong - n_nan - nf
    ints[:, idx, _I["wrong_type"]] = n_wrong
    ints[:, idx, _I["out_of_range"]] = out
    ints[:, idx, _I["count"]] = nf
    floats[:, idx] = np.stack((np.where(nf > 0, mean, 0.0), m2, fmin, fmax, low, high), axis=-1)
    for j, t in enumerate(num):
        counts[t[0]] = hist[j]
    # bottom-k samples: one uniform key per position of a group's sorted run, shared by the
    # columns; each column's sample is a uniform k-subset of its finite values with its keys
    if clean:  # every column's finite values fill each run: one draw of positions for all
        return _clean_samples(X, starts, sizes, k, rng, idx, samples)
    pos_keys = rng.random(X.shape[1])
    for g, (a, b) in enumerate(zip(starts, bounds[1:])):
        for j in range(len(num)):
            s0 = a + int(neg[g, j])
            kg = pos_keys[s0 : s0 + int(nf[g, j])]
            part = sample.smallest(kg, k)
            samples[g][idx[j]] = (X[j, s0 + part], kg[part])
    return None


_CANCEL = 1e4  # Σx² over Σ(x - mean)² beyond which the one-pass formula is not trusted


def _centred(squares: np.ndarray, mean: np.ndarray, sizes: np.ndarray, X: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Each clean group's and column's sum of squared deviations, ``(groups, columns)``, from
    its sum of squares: ``Σx² − n·mean²``. That difference loses about ``Σx² / result`` times
    the rounding of ``Σx²``; where this exceeds :data:`_CANCEL` (a mean far from 0 against the
    spread, or no spread at all), the column is summed again about its mean (two passes, as
    ``summarize``). So each result is within about 1e-10 of its two-pass value, relative."""
    n = sizes[:, None].astype(np.float64)
    m2 = squares - n * np.square(mean)
    for g, j in zip(*np.nonzero(~(squares <= _CANCEL * m2))):  # also m2 <= 0 < Σx², NaN, inf
        a = int(starts[g])
        m2[g, j] = float(np.square(X[j, a : a + int(sizes[g])] - mean[g, j]).sum())
    return m2


def _clean_samples(X: np.ndarray, starts: np.ndarray, sizes: np.ndarray, k: int, rng: Any, idx: list,
                   samples: List[List[Any]]) -> list:
    """The groups' bottom-k samples of a clean batch (every run all finite): one uniform key per
    position of each run, shared by the columns. All groups at once when the runs are of
    similar lengths: the keys as a ``(groups, longest run)`` matrix padded with +inf, one
    ``argpartition`` and one ``argsort`` along its rows. Returns each group's ``(values, keys)``."""
    G, longest = sizes.size, int(sizes.max())
    shared = []
    if G * longest > 2 * X.shape[1] + 4096:  # very unequal runs: padding would cost more, one run at a time
        keys = rng.random(X.shape[1])
        picks = []
        for a, n in zip(starts.tolist(), sizes.tolist()):
            kg = keys[a : a + n]
            part = sample.smallest(kg, k)
            picks.append((X[:, a + part], kg[part]))
    else:
        keys = rng.random((G, longest))
        keys[np.arange(longest)[None, :] >= sizes[:, None]] = np.inf  # past a run's end
        kk = min(k, longest)
        part = sample.smallest(keys, kk)
        kp = np.take_along_axis(keys, part, axis=1)
        np.add(part, starts[:, None], out=part)
        part[part >= X.shape[1]] = 0  # past the batch's end: +inf keys, cut off below
        every = X[:, part]  # (columns, groups, kk): one gather for all groups
        picks = [(every[:, g, :t], kp[g, :t]) for g, t in enumerate(np.minimum(sizes, kk).tolist())]
    for g, (vals, kp) in enumerate(picks):
        sg = samples[g]
        for j, i in enumerate(idx):
            sg[i] = (vals[j], kp)
        shared.append((vals, kp))
    return shared


def summarize_groups(
    profile: Any,
    batch: Any,
    order: np.ndarray,
    bounds: np.ndarray,
    *,
    seed: Optional[int] = None,
    sample_size: Optional[int] = None,
    total: bool = False,
) -> List[WindowSummary]:
    """One summary per group: group ``g`` is the rows ``order[bounds[g]:bounds[g + 1]]``.

    ``batch`` is anything ``profile.summarize`` accepts (or the ``(columns, rows)`` pair of
    :func:`~raywatch.stats.columns.to_columns`); groups must not be empty. With ``total``, one
    more summary comes last: every group's rows together, from the groups' figures (counters
    and histograms added, moments by Chan's formula, the bottom-k of the groups' samples),
    for far less than another ``summarize``.
    """
    cols, n = batch if isinstance(batch, tuple) else to_columns(batch)
    order = np.asarray(order, dtype=np.intp)
    bounds = np.asarray(bounds, dtype=np.intp)
    sizes = np.diff(bounds)
    if (sizes <= 0).any():
        raise ValueError("every group needs at least one row")
    if not SUPPORTED:
        rng0 = np.random.default_rng(seed)
        out = [profile.summarize({k: v[order[a:b]] for k, v in cols.items()}, seed=int(rng0.integers(2**62)),
                                 sample_size=sample_size) for a, b in zip(bounds[:-1], bounds[1:])]
        return out + [WindowSummary.merge_all(out)] if total else out
    G = sizes.size
    gidx = np.repeat(np.arange(G), sizes)
    row_group = np.full(n, G, dtype=np.intp)  # the group of each row of the batch (G: none)
    row_group[order] = gidx
    specs = list(profile.specs.values())
    c = len(specs)
    k = profile.window_sample_size if sample_size is None else int(sample_size)
    rng = np.random.default_rng(seed)
    ints = np.zeros((G, c, len(_KNOWN_INTS)), dtype=np.int64)
    floats = np.tile(np.array([0.0, 0.0, np.inf, -np.inf, 0.0, 0.0]), (G, c, 1))
    counts: List[Optional[np.ndarray]] = [None] * c
    samples: List[List[Any]] = [[(np.empty(0), np.empty(0))] * c for _ in range(G)]
    num = []
    for i, spec in enumerate(specs):
        arr = cols.get(spec.name)
        if arr is None:
            ints[:, i, _I["rows"]] = ints[:, i, _I["missing"]] = sizes
            counts[i] = np.zeros((G, spec.n_bins), dtype=np.int64)
        elif spec.kind == "numerical":
            num.append((i, spec, *_numerical(arr)))
        else:
            width = spec.n_bins + 4
            tally = _string_tally(arr, spec, profile.fingerprint, row_group, sizes) if arr.dtype.kind == "U" else None
            if tally is None:
                codes = encode_categorical(arr, spec.lookup, spec.families, spec.n_bins)[order]
                tally = np.bincount(gidx * width + codes + 3, minlength=G * width).reshape(G, width)
            ints[:, i], counts[i] = _categorical_states(tally, spec.n_bins, spec.kind == "boolean")
    shared = None
    if num:
        shared = _numerical_groups(num, order, bounds, sizes, k, rng, ints, floats, counts, samples)
    unknown = sorted(set(cols) - set(profile.specs))[:MAX_UNKNOWN_COLUMNS]
    names, kinds, nb = [s.name for s in specs], [s.kind for s in specs], [s.n_bins for s in specs]
    every = np.concatenate(counts, axis=1) if c else np.zeros((G, 0), dtype=np.int64)
    out = [
        WindowSummary(profile.fingerprint, names, kinds, nb, k, rows=int(sizes[g]), ints=ints[g].copy(),
                      floats=floats[g].copy(), counts=every[g].copy(), samples=list(samples[g]),
                      unknown_columns={name: int(sizes[g]) for name in unknown})
        for g in range(G)
    ]
    if profile.extensions:  # the profile's sections (estimation, correlation…), per group
        for g, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
            rows = order[a:b]
            out[g].sections = profile._sections({name: v[rows] for name, v in cols.items()}, int(b - a), None)
    if total:
        out.append(WindowSummary(profile.fingerprint, names, kinds, nb, k, rows=int(sizes.sum()),
                                 ints=ints.sum(axis=0), floats=_pooled(ints, floats), counts=every.sum(axis=0),
                                 samples=_bottom_ks(samples, c, k, shared, [t[0] for t in num]),
                                 unknown_columns={name: int(sizes.sum()) for name in unknown}))
        if profile.extensions:
            whole = out[0].sections
            for part in out[1:G]:
                whole = sections.merge_sections(whole, part.sections)
            out[-1].sections = dict(whole)
    return out


def _pooled(ints: np.ndarray, floats: np.ndarray) -> np.ndarray:
    """The moments of all groups together, ``(columns, FLOAT_FIELDS)``, from each group's
    (Chan et al.'s pairwise formula, for many parts at once)."""
    n = ints[:, :, _I["count"]].astype(np.float64)  # (G, columns)
    total = n.sum(axis=0)
    safe = np.where(total > 0, total, 1.0)
    with np.errstate(over="ignore", invalid="ignore"):
        mean = (n * floats[:, :, 0]).sum(axis=0) / safe
        m2 = floats[:, :, 1].sum(axis=0) + (n * np.square(np.where(n > 0, floats[:, :, 0] - mean, 0.0))).sum(axis=0)
    return np.column_stack((np.where(total > 0, mean, 0.0), m2, floats[:, :, 2].min(axis=0),
                            floats[:, :, 3].max(axis=0), floats[:, :, 4:].sum(axis=0)))


def _bottom_ks(samples: List[List[Any]], c: int, k: int, shared: Optional[list] = None,
               num: Sequence[int] = ()) -> List[Any]:
    """Per column, the ``k`` smallest keys (and their values) of the groups' bottom-k samples.
    Columns whose groups share their key arrays (a clean batch) share the selection; with
    ``shared`` (the groups' ``(values, keys)`` of the numerical columns ``num``, one row of
    values per column), those columns' values are selected in one go."""
    out: List[Any] = [None] * c
    if shared is not None and num:
        keys = np.concatenate([kp for _, kp in shared])
        keep = sample.smallest(keys, k)
        values, keys = np.concatenate([v for v, _ in shared], axis=1)[:, keep], keys[keep]
        for j, i in enumerate(num):
            out[i] = (values[j], keys)
    chosen = {}
    for i in range(c):
        if out[i] is not None:
            continue
        parts = [smp[i] for smp in samples]
        sig = tuple(id(p[1]) for p in parts)
        if sig not in chosen:
            keys = np.concatenate([p[1] for p in parts])
            keep = sample.smallest(keys, k)
            chosen[sig] = (keep, keys[keep])
        keep, keys = chosen[sig]
        out[i] = (np.concatenate([p[0] for p in parts])[keep], keys)
    return out


def summarize_segments(
    profile: Any,
    batch: Any,
    values: Mapping[str, Sequence[Any]],
    *,
    features: Sequence[str] = (),
    k: int = DEFAULT_K,
    prefer: Optional[Mapping[str, Sequence[Any]]] = None,
    keys: Optional[Mapping[str, Union[bytes, str]]] = None,
    seed: Optional[int] = None,
    sample_size: Optional[int] = None,
) -> Segments:
    """:class:`Segments` of window summaries for one batch (a replica's flush).

    ``values`` maps request-attribute columns (route, version, a header…) to one value per
    row of ``batch``; ``features`` names columns of ``batch`` itself to segment by.
    Each segment equals ``profile.summarize`` of its rows; all of a column's segments are
    summarized in one pass (:func:`raywatch.stats.grouped.summarize_groups`), and
    :attr:`Segments.whole` is the summary of the whole batch (derived in the same pass).
    """
    cols, n = to_columns(batch)
    seg_values = dict(values)
    for name in features:
        if name not in cols:
            raise KeyError(f"segment column {name!r} is not a column of the batch")
        seg_values[name] = cols[name]
    bad = {name: len(v) for name, v in seg_values.items() if len(v) != n}
    if bad:
        raise ValueError(f"segment columns need one value per row ({n} rows), got lengths {bad}")
    rng = np.random.default_rng(seed)
    whole: List[WindowSummary] = []

    def summarize_all(order: np.ndarray, bounds: np.ndarray) -> List[WindowSummary]:
        out = summarize_groups(profile, (cols, n), order, bounds, seed=int(rng.integers(2**62)),
                               sample_size=sample_size, total=not whole)
        if not whole:
            whole.append(out.pop())
        return out

    out = Segments.build(seg_values, summarize_all=summarize_all, k=k, prefer=prefer, keys=keys)
    out.whole = whole[0] if whole else profile.summarize(cols, sample_size=sample_size)
    return out
