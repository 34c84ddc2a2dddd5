"""Fitting a profile from blocks of rows: two passes, the same profile as ``Profile.fit``.

``Profile.fit`` holds the whole reference in memory: its numerical bin edges are
``np.quantile`` of each column. On a cluster no process sees every row, so the fit runs as
two passes over the blocks, each a map over blocks and a tree merge of what they return:

1. **Scan** (:func:`scan_block`): per numerical column, the block's finite values sorted and
   every ``step``-th one kept (a rank sketch with exact positions); per categorical column
   the count of every label (exact); per boolean column whether it has a boolean value.
   Merged, the label counts give the categorical specs exactly as ``Profile.fit`` makes them.
   From the sketches of all blocks, each order statistic that ``np.quantile`` needs (the two
   around each quantile, :func:`quantile_ranks`) is bracketed: an interval ``(a, b]`` that
   provably holds it (every block's count of values ``≤ t`` is known to within its step for
   any ``t``), however the blocks split the data.
2. **Refine** (:meth:`FitPlan.refine_block`): each block is summarized against a provisional
   profile whose numerical bins are those brackets (and the gaps between them), with the
   reference's exact range, and the block's values inside the brackets are kept as
   distinct values with counts.

The driver then reads each needed order statistic from its bracket (the count below it is
exact), interpolates exactly as ``np.quantile`` does (:func:`numpy_quantiles`, checked
against numpy in the tests), and re-bins the merged counts onto the final edges. What
matches ``Profile.fit`` on the same rows: the column kinds, the numerical bin edges (to the
bit), the categories, the reference range, hence the fingerprint (summaries made with either
profile merge), and every count of the reference summary. What does not: the reference's
moments and tail sums are sums in another order (equal to rounding, about 1e-12 relative),
and its bounded sample is another draw of the same law (a uniform sample of the rows). (Where a
column holds both −0.0 and 0.0, equal numbers, an edge or bound may show the other one.)

Cost: the scan sorts each block's numerical columns once; the refine pass summarizes each
block (one more sort) and walks its values once more to keep the bracketed ones. The
driver holds, per numerical column, about ``sqrt(2 T n)`` sketch values for each block of
``n`` rows (``T`` = 2 × (bins − 1) order statistics) and as many bracketed values: for 100
bins, about 20,000 + 20,000 numbers per column and million-row block. A categorical column
with more than 1,000,000 distinct labels keeps its 1,000,000 most frequent (its rarest
known labels and its count of labels seen once are then approximate: the profile's
``meta["approximate"]`` names such columns).

>>> import numpy as np
>>> from raywatch.stats.profile import Profile
>>> rng = np.random.default_rng(0)
>>> data = {"x": rng.lognormal(size=3000), "c": rng.choice(["a", "b", "c"], 3000)}
>>> blocks = [{k: v[i:i + 700] for k, v in data.items()} for i in range(0, 3000, 700)]
>>> kinds = {"x": "numerical", "c": "categorical"}
>>> plan = FitPlan(kinds, tree_merge([scan_block(b, kinds, bins=10) for b in blocks], ScanPart.merge), bins=10)
>>> profile = plan.finish(tree_merge([plan.refine_block(b, seed=0) for b in blocks], RefinePart.merge))
>>> whole = Profile.fit(data, bins=10, seed=0)
>>> profile.fingerprint == whole.fingerprint, profile.edges("x").tolist() == whole.edges("x").tolist()
(True, True)
>>> bool((profile.reference.counts == whole.reference.counts).all())
True
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

import numpy as np

from raywatch.offline.blocks import arrow_table, block_seed, distinct_labels, is_text, summarize_block
from raywatch.offline.merge import tree_merge
from raywatch.stats.columns import KINDS, as_array, encode_categorical, encode_numerical, normalize_label, to_columns
from raywatch.stats.profile import Profile
from raywatch.stats.spec import ColumnSpec, categorical_spec, label_counts, no_finite_numbers
from raywatch.stats.summary import WindowSummary

__all__ = ["kinds_from_schema", "scan_block", "ScanPart", "RefinePart", "FitPlan", "quantile_ranks",
           "numpy_quantiles", "LABEL_LIMIT", "tree_merge"]

log = logging.getLogger("raywatch.offline.fit")

LABEL_LIMIT = 1_000_000
"""Distinct labels a categorical column keeps through the merge (see the module docstring)."""


# ------------------------------------------------------------------------ kinds


def kinds_from_schema(schema: Any, overrides: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """Each column's kind from its Arrow type, as ``Profile.fit`` infers it from the values
    that type holds: integers and floats → numerical, booleans → boolean, text →
    categorical; ``overrides`` win. ValueError names a column of no values (Arrow's null
    type) or of a type raywatch does not take (dates: convert them first)."""
    import pyarrow as pa

    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(schema.names))
    if unknown:
        raise ValueError(f"kinds names columns that are not in the data: {', '.join(unknown)}")
    out: Dict[str, str] = {}
    for f in schema:
        kind = overrides.get(f.name)
        if kind is not None:
            if kind not in KINDS:
                raise ValueError(f"column {f.name!r}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
        elif pa.types.is_integer(f.type) or pa.types.is_floating(f.type):
            kind = "numerical"
        elif pa.types.is_boolean(f.type):
            kind = "boolean"
        elif is_text(f.type) or pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type):
            kind = "categorical"
        elif pa.types.is_null(f.type):
            raise ValueError(f"column {f.name!r} has no values (all missing); give its kind or drop it")
        else:
            raise ValueError(f"column {f.name!r}: type {f.type} is not supported; convert it to numbers "
                             "(e.g. seconds since the epoch) or strings first")
        out[f.name] = kind
    return out


# ------------------------------------------------------------- quantiles as numpy


def quantile_ranks(n: int, qs: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(previous, next, gamma)``: the two order statistics (0-based ranks among ``n``
    sorted values) and the weight ``np.quantile(values, qs)`` (method ``linear``) combines.

    >>> quantile_ranks(5, np.array([0.0, 0.3, 1.0]))
    (array([0, 1, 4]), array([1, 2, 4]), array([0. , 0.2, 5. ]))
    """
    virtual = (n - 1) * qs
    prev = np.floor(virtual)
    nxt = prev + 1
    above = virtual >= n - 1
    below = virtual < 0
    prev[above] = nxt[above] = n - 1
    prev[below] = nxt[below] = 0
    gamma = virtual - np.where(above, -1.0, prev)  # numpy indexes the last value as -1 there
    return prev.astype(np.int64), nxt.astype(np.int64), gamma


def numpy_quantiles(previous: np.ndarray, following: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """numpy's linear interpolation between two order statistics (``numpy.lib``'s
    ``_lerp``): the same float operations, so the same bits as ``np.quantile``."""
    diff = following - previous
    out = previous + diff * gamma
    return np.where(gamma >= 0.5, following - diff * (1 - gamma), out)


# ----------------------------------------------------------------------- scanning


@dataclass
class Sketch:
    """Every ``step``-th of a block's ``n`` sorted finite values (positions 0, step, 2·step, …,
    and always the last, n − 1)."""

    values: np.ndarray
    step: int
    n: int

    def positions(self) -> np.ndarray:
        pos = np.arange(0, self.n, self.step, dtype=np.int64)
        return pos if pos[-1] == self.n - 1 else np.append(pos, self.n - 1)


def sketch_step(n: int, bins: int) -> int:
    """The sketch step of a block of ``n`` finite values: about ``sqrt(2 T n)`` points kept,
    ``T`` = 2 × (bins − 1) order statistics needed (see the module docstring)."""
    points = max(16, math.ceil(math.sqrt(4.0 * max(1, bins - 1) * n)))
    return max(1, math.ceil(n / points))


@dataclass
class ScanPart:
    """What the scan pass learns from some blocks (merge with :meth:`merge`)."""

    rows: int = 0
    blocks: int = 0
    sketches: Dict[str, List[Sketch]] = field(default_factory=dict)
    wrong: Dict[str, int] = field(default_factory=dict)
    labels: Dict[str, Counter] = field(default_factory=dict)
    booleans: Dict[str, bool] = field(default_factory=dict)
    truncated: Set[str] = field(default_factory=set)

    def merge(self, other: "ScanPart") -> "ScanPart":
        out = ScanPart(self.rows + other.rows, self.blocks + other.blocks, truncated=self.truncated | other.truncated)
        for name in {**self.sketches, **other.sketches}:
            out.sketches[name] = self.sketches.get(name, []) + other.sketches.get(name, [])
        for name in {**self.wrong, **other.wrong}:
            out.wrong[name] = self.wrong.get(name, 0) + other.wrong.get(name, 0)
        for name in {**self.labels, **other.labels}:
            counter = Counter(self.labels.get(name) or {})
            counter.update(other.labels.get(name) or {})
            if len(counter) > LABEL_LIMIT:
                counter = Counter(dict(counter.most_common(LABEL_LIMIT)))
                out.truncated.add(name)
            out.labels[name] = counter
        for name in {**self.booleans, **other.booleans}:
            out.booleans[name] = self.booleans.get(name, False) or other.booleans.get(name, False)
        return out


def _columns(batch: Any) -> Tuple[Dict[str, Any], int, bool]:
    """``(columns, rows, arrow)``: Arrow columns of a table, else ``to_columns``'s arrays."""
    table = arrow_table(batch)
    if table is not None:
        return {n: table.column(n) for n in table.column_names}, table.num_rows, True
    cols, rows = to_columns(batch)
    return cols, rows, False


def scan_block(batch: Any, kinds: Mapping[str, str], *, bins: int = 100) -> ScanPart:
    """The scan pass over one block (an Arrow table or record batch, or anything
    ``Profile.fit`` takes); columns not in ``kinds`` are ignored."""
    cols, rows, arrow = _columns(batch)
    part = ScanPart(rows=rows, blocks=1)
    for name, kind in kinds.items():
        col = cols.get(name)
        if col is None:
            continue
        if kind == "categorical" and arrow and is_text(col.type):
            labels, counts = distinct_labels(col)
            part.labels[name] = Counter({normalize_label(v): int(c) for v, c in zip(labels.tolist(), counts.tolist())
                                         if v is not None})
            continue
        arr = as_array(name, col)
        if kind == "numerical":
            x, wrong = encode_numerical(arr)
            s = np.sort(x[np.isfinite(x)])
            part.wrong[name] = int(wrong)
            if s.size:
                step = sketch_step(int(s.size), bins)
                sk = Sketch(np.empty(0), step, int(s.size))
                sk.values = s[sk.positions()]
                part.sketches[name] = [sk]
        elif kind == "categorical":
            part.labels[name] = label_counts(name, arr)
        else:
            codes = encode_categorical(arr, {False: 0, True: 1}, {"bool", "number"}, 2)
            part.booleans[name] = bool(np.any((codes == 0) | (codes == 1)))
    return part


# ----------------------------------------------------------------------- brackets


def _rank_bounds(sketches: Sequence[Sketch]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(values, low, high)``: every sketch value in order, and for each, bounds on the
    number of all values ``≤`` it, over all blocks (``low ≤ count ≤ high``)."""
    vals, d_low, d_high = [], [], []
    for sk in sketches:
        pos = sk.positions()
        after = np.append(pos[1:], sk.n)  # passing point i: at most `after[i]` values are <= it
        vals.append(sk.values)
        d_low.append(np.diff(pos, prepend=-1))  # ... and at least pos[i] + 1
        d_high.append(np.diff(after, prepend=0))
    v = np.concatenate(vals)
    order = np.argsort(v, kind="stable")
    v = v[order]
    low = np.cumsum(np.concatenate(d_low)[order])
    high = np.cumsum(np.concatenate(d_high)[order])
    last = np.searchsorted(v, v, side="right") - 1  # ties: every point equal to t is <= t
    return v, low[last], high[last]


def brackets(sketches: Sequence[Sketch], ranks: Sequence[Tuple[int, int]]) -> Tuple[np.ndarray, np.ndarray]:
    """``(bounds, which)``: disjoint intervals ``(bounds[2k], bounds[2k + 1]]`` and, for each
    ``(lo, hi)`` of ``ranks``, the interval ``k`` holding the order statistics ``lo`` to ``hi``
    (0-based). The first bound may be ``-inf``."""
    v, low, high = _rank_bounds(sketches)
    spans = []
    for lo, hi in ranks:
        ia = int(np.searchsorted(high, lo, side="right")) - 1  # the largest t with count(<= t) <= lo
        ib = int(np.searchsorted(low, hi + 1, side="left"))  # the smallest t with count(<= t) >= hi + 1
        spans.append((v[ia] if ia >= 0 else -math.inf, v[min(ib, v.size - 1)]))
    order = sorted(range(len(spans)), key=lambda j: spans[j])
    merged: List[List[float]] = []
    which = np.empty(len(spans), dtype=np.int64)
    for j in order:
        a, b = spans[j]
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
        which[j] = len(merged) - 1
    return np.array([x for ab in merged for x in ab], dtype=np.float64), which


# ------------------------------------------------------------------------ refining


@dataclass
class RefinePart:
    """What the refine pass returns for some blocks: the summary against the provisional
    profile, and per numerical column the bracketed values as ``(bracket, value, count)``
    arrays sorted by bracket and value."""

    summary: WindowSummary
    inside: Dict[str, Tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)

    def merge(self, other: "RefinePart") -> "RefinePart":
        inside = dict(self.inside)
        for name, (k, v, c) in other.inside.items():
            if name in inside:
                k0, v0, c0 = inside[name]
                inside[name] = _distinct(np.concatenate((k0, k)), np.concatenate((v0, v)), np.concatenate((c0, c)))
            else:
                inside[name] = (k, v, c)
        return RefinePart(self.summary.merge(other.summary), inside)


def _distinct(k: np.ndarray, v: np.ndarray, c: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(bracket, value)`` pairs made distinct, their counts summed, sorted."""
    if k.size == 0:
        return k, v, c
    order = np.lexsort((v, k))
    k, v, c = k[order], v[order], c[order]
    starts = np.flatnonzero(np.concatenate(([True], (np.diff(k) != 0) | (np.diff(v) != 0))))
    return k[starts], v[starts], np.add.reduceat(c, starts)


class FitPlan:
    """The scan's result turned into specs and brackets (see the module docstring).

    ``kinds`` are the columns' kinds (:func:`kinds_from_schema`), ``scan`` the merged
    :class:`ScanPart` of every block. Raises ValueError as ``Profile.fit`` does for a column
    it cannot profile (no finite number, no label, no boolean value). The plan pickles (Ray
    ships it to the blocks of the refine pass).
    """

    def __init__(self, kinds: Mapping[str, str], scan: ScanPart, *, bins: int = 100, max_categories: int = 50,
                 sample_size: int = 10_000, window_sample_size: int = 100):
        if int(bins) < 2:
            raise ValueError(f"bins must be at least 2, got {bins!r}")
        if int(max_categories) < 1:
            raise ValueError(f"max_categories must be at least 1, got {max_categories!r}")
        if not kinds:
            raise ValueError("reference data has no columns")
        if scan.rows == 0:
            raise ValueError("reference data has no rows")
        self.kinds = dict(kinds)
        self.rows = scan.rows
        self.blocks = scan.blocks
        self.bins = int(bins)
        self.max_categories = int(max_categories)
        self.sample_size = int(sample_size)
        self.window_sample_size = int(window_sample_size)
        self.approximate = sorted(scan.truncated)
        qs = np.arange(1, self.bins) / self.bins
        specs: List[ColumnSpec] = []
        self.numeric: Dict[str, Dict[str, Any]] = {}
        for name, kind in self.kinds.items():
            if kind == "numerical":
                sketches = scan.sketches.get(name) or []
                n = sum(sk.n for sk in sketches)
                if n == 0:
                    raise no_finite_numbers(name, scan.wrong.get(name, 0))
                lo = float(min(sk.values[0] for sk in sketches))
                hi = float(max(sk.values[-1] for sk in sketches))
                prev, nxt, gamma = quantile_ranks(n, qs)
                bounds, which = brackets(sketches, list(zip(prev.tolist(), nxt.tolist())))
                self.numeric[name] = {"n": n, "prev": prev, "next": nxt, "gamma": gamma, "bounds": bounds,
                                      "which": which, "lo": lo, "hi": hi}
                specs.append(ColumnSpec(name, kind, edges=bounds, lo=lo, hi=hi))
            elif kind == "boolean":
                if not scan.booleans.get(name):
                    raise ValueError(f"reference column {name!r} has no boolean values; fix the data or drop it")
                specs.append(ColumnSpec(name, kind, categories=[False, True], families={"bool", "number"}))
            else:
                specs.append(categorical_spec(name, scan.labels.get(name) or Counter(), self.max_categories))
        self.provisional = Profile(specs, window_sample_size=self.window_sample_size)

    def refine_block(self, batch: Any, *, seed: Optional[int] = None) -> RefinePart:
        """The refine pass over one block."""
        table = arrow_table(batch)
        if table is not None:
            summary = summarize_block(self.provisional, table, seed=block_seed(seed, table), sample_size=self.sample_size)
        else:
            summary = self.provisional.summarize(batch, seed=seed, sample_size=self.sample_size)
        cols, _, _ = _columns(batch)
        inside = {}
        for name, num in self.numeric.items():
            col = cols.get(name)
            if col is None:
                continue
            x, _ = encode_numerical(as_array(name, col))
            f = x[np.isfinite(x)]
            idx = np.searchsorted(num["bounds"], f, side="left")  # bins are right-closed
            sel = (idx & 1) == 1  # odd bins are the brackets
            inside[name] = _distinct(idx[sel] >> 1, f[sel], np.ones(int(sel.sum()), dtype=np.int64))
        return RefinePart(summary, inside)

    def finish(self, refined: RefinePart) -> Profile:
        """The profile, from the merged :class:`RefinePart` of every block."""
        prov = refined.summary
        if prov.rows != self.rows:
            raise RuntimeError(f"the refine pass saw {prov.rows} rows, the scan {self.rows}: the data changed between passes")
        specs: List[ColumnSpec] = []
        counts: List[np.ndarray] = []
        floats = prov.floats.copy()
        for i, (name, kind) in enumerate(self.kinds.items()):
            c = prov.counts[prov._offsets[i]:prov._offsets[i + 1]]
            spec = self.provisional.specs[name]
            if kind != "numerical":
                specs.append(spec)
                counts.append(c)
                continue
            num = self.numeric[name]
            edges, final, low, high = _rebin(num, c, refined.inside.get(name), int(prov.ints[i, 6]))
            floats[i, 4], floats[i, 5] = floats[i, 4] + low, floats[i, 5] + high
            specs.append(ColumnSpec(name, kind, edges=edges, lo=num["lo"], hi=num["hi"]))
            counts.append(final)
        meta = {
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "reference_rows": self.rows,
            "bins": self.bins,
            "max_categories": self.max_categories,
            "fitted_in_blocks": self.blocks,
        }
        if self.approximate:
            meta["approximate"] = [f"{name}: more than {LABEL_LIMIT:,} distinct labels" for name in self.approximate]
        profile = Profile(specs, window_sample_size=self.window_sample_size, meta=meta)
        profile.reference = WindowSummary(
            profile.fingerprint, prov.names, prov.kinds, [s.n_bins for s in specs], prov.sample_size, rows=prov.rows,
            ints=prov.ints.copy(), floats=floats, counts=np.concatenate(counts) if counts else np.zeros(0, np.int64),
            samples=list(prov.samples), unknown_columns=prov.unknown_columns,
        )
        return profile


def _rebin(num: Mapping[str, Any], counts: np.ndarray, inside: Optional[Tuple[np.ndarray, ...]],
           finite: int) -> Tuple[np.ndarray, np.ndarray, float, float]:
    """``(edges, counts, low, high)`` of one numerical column: the exact quantile edges, the
    counts of the final bins, and what the sums of the lowest and highest bin gain over the
    provisional ones (the values in the outer brackets on the right side of the outer edges)."""
    if finite != num["n"]:
        raise RuntimeError(f"the refine pass saw {finite} finite values, the scan {num['n']}")
    k, v, c = inside if inside is not None else (np.empty(0, np.int64), np.empty(0), np.empty(0, np.int64))
    n_brackets = num["bounds"].size // 2
    below = np.cumsum(counts)[0:2 * n_brackets:2]  # count(<= a_k): the bins alternate gap, bracket, gap…
    starts = np.searchsorted(k, np.arange(n_brackets), side="left")
    ends = np.searchsorted(k, np.arange(n_brackets), side="right")
    cum = np.cumsum(c)

    def order_stat(rank: int, j: int) -> float:
        lo, hi = starts[j], ends[j]
        before = cum[lo - 1] if lo else 0
        at = int(np.searchsorted(cum[lo:hi] - before, rank - below[j], side="right"))
        if not 0 <= rank - below[j] or lo + at >= hi:
            raise RuntimeError(f"order statistic {rank} is not in its bracket {j}")  # a bug, never the data
        return float(v[lo + at])

    which = num["which"]
    xp = np.array([order_stat(int(r), int(j)) for r, j in zip(num["prev"], which)])
    xn = np.array([order_stat(int(r), int(j)) for r, j in zip(num["next"], which)])
    edges = np.unique(numpy_quantiles(xp, xn, num["gamma"])).astype(np.float64)
    bounds = num["bounds"]
    slot = np.searchsorted(bounds, edges, side="left")  # each edge lies inside a bracket: an odd bin
    if not (slot & 1).all():
        raise RuntimeError("a quantile edge is outside its bracket")  # a bug, never the data
    j = slot >> 1
    le = np.empty(edges.size, dtype=np.int64)
    for t, (e, jj) in enumerate(zip(edges.tolist(), j.tolist())):
        lo, hi = starts[jj], ends[jj]
        le[t] = below[jj] + int(c[lo:hi][v[lo:hi] <= e].sum())
    final = np.diff(np.concatenate(([0], le, [finite]))).astype(np.int64)
    j0, j1 = int(j[0]), int(j[-1])
    sel0 = slice(starts[j0], ends[j0])
    sel1 = slice(starts[j1], ends[j1])
    low = float((v[sel0] * c[sel0])[v[sel0] <= edges[0]].sum()) if j0 == 0 else math.nan
    high = float((v[sel1] * c[sel1])[v[sel1] > edges[-1]].sum()) if j1 == n_brackets - 1 else math.nan
    if math.isnan(low) or math.isnan(high):
        raise RuntimeError("an outer edge is not in an outer bracket")  # a bug, never the data
    return edges, final, low, high
