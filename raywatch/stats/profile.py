"""Reference profiles: what the data looked like when the model was trained.

:meth:`Profile.fit` reads reference columns (a mapping of name → array, a list of row
dicts, or a pandas DataFrame / pyarrow Table when installed), infers each column's kind
(overridable) and keeps:

* numerical columns — bin edges at the reference's quantiles (``bins`` bins of equal
  reference mass; tied quantiles collapse, so discrete columns get fewer bins; the
  outermost bins are open to ±inf), and through :attr:`Profile.reference` the counts,
  moments, min/max, missing and non-finite rates and a bounded uniform sample for exact
  tests;
* categorical columns — the ``max_categories`` most frequent labels plus one overflow
  bucket for the rest, the set of every label seen (up to 10,000) to recognize unseen
  ones, and the number of labels seen exactly once (the Good–Turing estimate of how
  often new labels should appear);
* boolean columns — counts of False and True.

:meth:`Profile.summarize` turns production rows into a mergeable
:class:`~raywatch.stats.summary.WindowSummary` of the same shape in one vectorized pass;
:func:`raywatch.drift.detect_drift` compares the two. Profiles save to one versioned,
checksummed file (:meth:`save`/:meth:`load`); loading a damaged, truncated or foreign file
raises :class:`~raywatch.stats.codec.FormatError` saying what is wrong.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> profile = Profile.fit({"age": rng.normal(40, 10, 5000), "plan": rng.choice(["free", "pro"], 5000)}, seed=0)
>>> profile.kinds
{'age': 'numerical', 'plan': 'categorical'}
>>> summary = profile.summarize([{"age": 35.0, "plan": "pro"}, {"age": None, "plan": "team"}])
>>> summary.rows, summary.column("age").missing, summary.column("plan").unseen
(2, 1, 1)
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any, Dict, Hashable, List, Mapping, Optional, Sequence, Union

import numpy as np

from raywatch.stats import codec, parallel, sample, sections, signing
from raywatch.stats.files import atomic_write
from raywatch.stats.columns import KINDS, count_strings, encode_categorical, encode_numerical, infer_kind, to_columns
from raywatch.stats.sections import Batch, Extension
from raywatch.stats.spec import ColumnSpec, fit_column
from raywatch.stats.strings import MIN_ROWS as STRINGS_MIN_ROWS, tally_short_strings
from raywatch.stats.summary import (
    MAX_UNKNOWN_COLUMNS,
    SMALL_BATCH_ROWS,
    WindowSummary,
    categorical_state,
    numerical_figures,
    numerical_layout,
    numerical_state,
    numerical_states,
)

__all__ = ["Profile", "ColumnSpec"]

log = logging.getLogger("raywatch.stats.profile")

FORMAT_VERSION = 2  # 2: optional extensions; a profile without them is written as version 1
READS = (1, 2)


def _take(data: Any, names: Any) -> tuple:
    """``(rest, taken)``: for a mapping, the named columns and any 2-D array (an embedding,
    which ``to_columns`` does not accept) taken out; other inputs are left whole."""
    if not isinstance(data, Mapping):
        return data, {}
    taken = {n: v for n, v in data.items() if n in names or (isinstance(v, np.ndarray) and v.ndim == 2)}
    if not taken:
        return data, {}
    return {k: v for k, v in data.items() if k not in taken}, taken


def _rows_of(held: Mapping[str, Any]) -> int:
    return max((len(v) for v in held.values()), default=0)


def check_profile(profile: "Profile", reference: WindowSummary) -> Optional[str]:
    """What is semantically wrong with a profile read from bytes (None: nothing): its
    reference summary in the profile's own layout, numerical bin edges finite and sorted,
    reference bounds finite (or NaN: no finite reference value), counts non-negative."""
    specs = list(profile.specs.values())
    if not 0 <= profile.window_sample_size <= 1_000_000:
        return f"window_sample_size is {profile.window_sample_size}"
    if list(reference.names) != [sp.name for sp in specs] or list(reference.n_bins) != [sp.n_bins for sp in specs] \
            or list(reference.kinds) != [sp.kind for sp in specs]:
        return "its reference summary does not have the profile's columns and bins"
    for sp in specs:
        if sp.singletons < 0:
            return f"column {sp.name!r}: singletons is {sp.singletons}"
        if sp.kind == "numerical":
            e = sp.edges
            if not np.isfinite(e).all() or (e.size > 1 and (np.diff(e) < 0).any()):
                return f"column {sp.name!r}: its bin edges are not finite and sorted"
            lo, hi = sp.lo, sp.hi
            if not ((math.isnan(lo) and math.isnan(hi)) or (math.isfinite(lo) and math.isfinite(hi) and lo <= hi)):
                return f"column {sp.name!r}: its reference range is out of bounds"
        elif sp.edges.size:
            return f"column {sp.name!r}: a {sp.kind} column has bin edges"
    return None


def _categorical(spec: ColumnSpec, arr: np.ndarray) -> tuple:
    """Counters and bin counts of one categorical or boolean column."""
    c = tally_short_strings(arr, spec.lookup, spec.families, spec.n_bins) if arr.shape[0] >= STRINGS_MIN_ROWS else None
    if c is None:
        c = count_strings(arr, spec.lookup, spec.families, spec.n_bins)
    if c is not None:
        return categorical_state(c, spec.n_bins, spec.kind == "boolean", tallied=True)
    codes = encode_categorical(arr, spec.lookup, spec.families, spec.n_bins)
    return categorical_state(codes, spec.n_bins, spec.kind == "boolean")


def _on_pool(pool: Any, jobs: List[Any], out: WindowSummary, counts: List[Any], rows: int, k: int,
             rng: np.random.Generator) -> None:
    """Summarize ``jobs``' columns on the shared pool, into ``out`` and ``counts``.

    Every column is a task. The numerical ones sort into sort buffers that this call owns
    (one more than the workers, taken before a task is submitted and given back once its
    sample is drawn, so no task ever waits) and their samples are drawn here, in column order,
    from ``rng``: the summary equals the one-thread path's, samples included.
    """
    categorical = [(i, pool.submit(_categorical, spec, arr)) for i, spec, arr, _ in jobs if spec.kind != "numerical"]
    numerical = [job for job in jobs if job[1].kind == "numerical"]
    free = [(np.empty(rows), np.empty(rows)) for _ in range(min(len(numerical), parallel.workers() + 1))]
    pending: Any = deque()

    def finish() -> None:
        i, wrong, future, buffers = pending.popleft()
        ints, floats, c, finite = future.result()
        out.samples[i] = sample.draw(finite, k, rng)
        free.append(buffers)
        ints[0] += wrong
        ints[3] = wrong
        out.ints[i] = ints
        out.floats[i] = floats
        counts[i] = c

    for i, spec, x, wrong in numerical:
        if not free:
            finish()
        buffers = free.pop()
        pending.append((i, wrong, pool.submit(numerical_figures, x, spec.edges, (spec.lo, spec.hi), buffers), buffers))
    while pending:
        finish()
    for i, future in categorical:
        out.ints[i], counts[i] = future.result()


class Profile:
    """A reference profile: per-column bins or categories plus the reference's own summary.

    Use :meth:`fit` to build one; ``Profile(...)`` is internal.
    """

    def __init__(
        self,
        specs: Sequence[ColumnSpec],
        *,
        window_sample_size: int = 100,
        meta: Optional[dict] = None,
        extensions: Sequence[Extension] = (),
    ):
        self.specs: Dict[str, ColumnSpec] = {s.name: s for s in specs}
        self.window_sample_size = int(window_sample_size)
        self.meta = dict(meta or {})
        self.extensions: Dict[str, Extension] = {}
        for ext in extensions:
            if ext.name in self.extensions:
                raise ValueError(f"two extensions make a section named {ext.name!r}")
            self.extensions[ext.name] = ext
        # columns an extension takes whole (vector features): kept out of the per-column pass
        self._claimed = frozenset(c for e in self.extensions.values() for c in getattr(e, "claims", ()))
        self.fingerprint = self._fingerprint()
        self.reference: WindowSummary = self.empty_summary()
        # numerical_layout per set of batched columns, made on first use (see summarize)
        self._layouts: Dict[tuple, Any] = {}

    # ---------------------------------------------------------------- fitting
    @classmethod
    def fit(
        cls,
        data: Any,
        kinds: Optional[Mapping[str, str]] = None,
        *,
        bins: int = 100,
        sample_size: int = 10_000,
        max_categories: int = 50,
        window_sample_size: int = 100,
        seed: Optional[int] = None,
        performance: Optional[Mapping[str, Any]] = None,
        correlation: Union[bool, Sequence[str]] = False,
        pca: Union[bool, Mapping[str, Any]] = False,
        outliers: Union[bool, Mapping[str, Any]] = False,
        vectors: Union[Sequence[str], Mapping[str, Mapping[str, Any]]] = (),
    ) -> "Profile":
        """Fit a profile to reference data.

        Parameters
        ----------
        data
            Mapping of column name → values, a list of row dicts, a pandas DataFrame or a
            pyarrow Table.
        kinds
            Kinds to use instead of inferring them: ``{"zip": "categorical"}``.
        bins
            Number of quantile bins for numerical columns (ties may give fewer).
        sample_size
            Bound of the reference's uniform sample, used for exact tests.
        max_categories
            Top labels kept per categorical column; the rest share one overflow bucket.
        window_sample_size
            Bound of the sample each window summary keeps (its share of the ≤ 64 KiB budget).
        seed
            Seed for the sample's randomness (reproducible profiles).
        performance, correlation, pca, outliers, vectors
            Optional extensions (:mod:`raywatch.stats.extend`): label-free performance
            estimation (``{"target": "label", "scores": "proba", ...}``; the target column
            is used for calibration only, not profiled), the co-moments of the numerical
            columns (True or a list of columns), PCA reconstruction error (True or
            ``{"columns": [...], "variance": 0.65}``), outlier fences (True or
            ``{"method": "iqr", "k": 1.5}``) and embedding columns (a list of names, or
            ``{name: {"dims": 16}}``). Each adds a section to every window summary.
        """
        if int(bins) < 2:
            raise ValueError(f"bins must be at least 2, got {bins!r}")
        if int(max_categories) < 1:
            raise ValueError(f"max_categories must be at least 1, got {max_categories!r}")
        if int(sample_size) < 0 or int(window_sample_size) < 0:
            raise ValueError("sample sizes must not be negative")
        vector_names = list(vectors)
        data, held = _take(data, vector_names)
        for name, v in held.items():
            if name not in vector_names:
                raise ValueError(f"column {name!r}: expected a 1-D sequence of values, got an array of shape "
                                 f"{v.shape}; a vector feature (an embedding) is declared with vectors=[{name!r}]")
        cols, rows = to_columns(data)
        held.update({n: cols.pop(n) for n in vector_names if n in cols})
        target = None
        if performance:
            target = performance.get("target")
            if target not in cols:
                raise ValueError(f"performance: the target column {target!r} is not in the reference data")
            target = cols.pop(target)
        rows = rows or _rows_of(held)
        if not cols and not held:
            raise ValueError("reference data has no columns")
        if rows == 0:
            raise ValueError("reference data has no rows")
        kinds = dict(kinds or {})
        unknown = sorted(set(kinds) - set(cols))
        if unknown:
            raise ValueError(f"kinds names columns that are not in the data: {', '.join(unknown)}")
        for name, kind in kinds.items():
            if kind not in KINDS:
                raise ValueError(f"column {name!r}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
        specs = []
        for name, arr in cols.items():
            kind = kinds.get(name) or infer_kind(name, arr)
            specs.append(fit_column(name, kind, arr, int(bins), int(max_categories)))
        meta = {
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "reference_rows": rows,
            "bins": int(bins),
            "max_categories": int(max_categories),
        }
        from raywatch.stats.extend import fit_extensions

        found = fit_extensions(
            cols, held, rows, {s.name: s.kind for s in specs}, target=target, performance=performance,
            correlation=correlation, pca=pca, outliers=outliers, vectors=vectors, seed=seed,
        )
        profile = cls(specs, window_sample_size=window_sample_size, meta=meta, extensions=found)
        profile.reference = profile.summarize({**cols, **held}, seed=seed, sample_size=int(sample_size))
        return profile

    def extend(self, *extensions: Extension) -> "Profile":
        """A copy of this profile with more extensions, fitted beforehand (each keeps what
        its tests need of the reference). The copy has its own fingerprint: summaries made
        with the two profiles do not merge."""
        out = Profile(
            list(self.specs.values()), window_sample_size=self.window_sample_size, meta=self.meta,
            extensions=[*self.extensions.values(), *extensions],
        )
        r = self.reference
        out.reference = WindowSummary(
            out.fingerprint, r.names, r.kinds, r.n_bins, r.sample_size, rows=r.rows, ints=r.ints, floats=r.floats,
            counts=r.counts, samples=r.samples, unknown_columns=r.unknown_columns, sections=r.sections,
        )
        return out

    # ------------------------------------------------------------- properties
    @property
    def columns(self) -> List[str]:
        """Column names, in order."""
        return list(self.specs)

    @property
    def kinds(self) -> Dict[str, str]:
        """``{name: "numerical" | "categorical" | "boolean"}``."""
        return {name: s.kind for name, s in self.specs.items()}

    def edges(self, name: str) -> np.ndarray:
        """Interior bin edges of a numerical column (bins are right-closed, outer ones open)."""
        spec = self._spec(name)
        if spec.kind != "numerical":
            raise ValueError(f"column {name!r} is {spec.kind}, it has categories, not edges")
        return spec.edges.copy()

    def categories(self, name: str) -> List[Hashable]:
        """Bin labels of a categorical or boolean column; the last bin (``"__other__"``) is the overflow."""
        spec = self._spec(name)
        if spec.kind == "numerical":
            raise ValueError(f"column {name!r} is numerical, it has edges, not categories")
        return list(spec.categories)

    def histogram(self, name: str, summary: Optional[WindowSummary] = None) -> Dict[str, list]:
        """JSON-able histogram of a column (the reference's unless ``summary`` is given):
        ``{"edges": [...], "counts": [...]}`` or ``{"categories": [...], "counts": [...]}``."""
        spec = self._spec(name)
        counts = (summary or self.reference).column(name).counts.tolist()
        if spec.kind == "numerical":
            return {"edges": spec.edges.tolist(), "counts": counts}
        return {"categories": [*spec.categories, "__other__"], "counts": counts}

    def _spec(self, name: str) -> ColumnSpec:
        try:
            return self.specs[name]
        except KeyError:
            raise KeyError(f"no column {name!r} in this profile (columns: {', '.join(self.specs)})") from None

    # ---------------------------------------------------------- summarizing
    def empty_summary(self, sample_size: Optional[int] = None) -> WindowSummary:
        """A summary of no rows, to merge others into."""
        specs = list(self.specs.values())
        return WindowSummary(
            self.fingerprint,
            [s.name for s in specs],
            [s.kind for s in specs],
            [s.n_bins for s in specs],
            self.window_sample_size if sample_size is None else int(sample_size),
        )

    def summarize(self, batch: Any, *, seed: Optional[int] = None, sample_size: Optional[int] = None) -> WindowSummary:
        """Summarize a batch of rows (columns mapping, list of row dicts, DataFrame, Table).

        Columns of the profile that the batch lacks count as missing for every row;
        columns the profile does not know are ignored and counted in
        ``summary.unknown_columns`` (at most 32 names).
        """
        batch, held = _take(batch, self._claimed)
        cols, rows = to_columns(batch)
        if self._claimed:
            held.update({n: cols.pop(n) for n in self._claimed if n in cols})
        rows = rows or _rows_of(held)
        numeric: Optional[Dict[str, np.ndarray]] = {} if self.extensions else None
        out = self.empty_summary(sample_size)
        k = out.sample_size
        rng = np.random.default_rng(seed)
        out.rows = rows
        counts: List[Any] = []
        n_num = sum(1 for s in self.specs.values() if s.kind == "numerical" and s.name in cols)
        # small batches (a replica's flush): every clean numerical column in one pass; the
        # sort buffers are for the per-column kernel, which large batches use
        small = n_num > 1 and 0 < rows <= SMALL_BATCH_ROWS
        # large batches: every column is a task on the shared pool (see raywatch.stats.parallel)
        on_pool = parallel.pool() if rows >= parallel.PARALLEL_MIN_ROWS and len(cols) > 1 else None
        scratch = (np.empty(rows), np.empty(rows)) if n_num > 1 and not small and on_pool is None else None
        together: List[Any] = []
        jobs: List[Any] = []  # (column index, spec, values, wrong-type count) for the pool
        for i, spec in enumerate(self.specs.values()):
            arr = cols.get(spec.name)
            if arr is None:
                out.ints[i, 0] = rows
                out.ints[i, 1] = rows
                counts.append(np.zeros(spec.n_bins, dtype=np.int64))
                continue
            if spec.kind == "numerical":
                x, wrong = encode_numerical(arr)
                if numeric is not None and not wrong and x.size == rows:
                    numeric[spec.name] = x
                if small and not wrong and x.size == rows:
                    together.append((i, spec, x))
                    counts.append(None)  # filled in below
                    continue
                if on_pool is not None:
                    jobs.append((i, spec, x, wrong))
                    counts.append(None)
                    continue
                ints, floats, c, smp = numerical_state(x, spec.edges, (spec.lo, spec.hi), k, rng, scratch)
                ints[0] += wrong
                ints[3] = wrong
                out.floats[i] = floats
                out.samples[i] = smp
            else:
                if on_pool is not None:
                    jobs.append((i, spec, arr, 0))
                    counts.append(None)
                    continue
                ints, c = _categorical(spec, arr)
            out.ints[i] = ints
            counts.append(c)
        if jobs:
            _on_pool(on_pool, jobs, out, counts, rows, k, rng)
        if together:
            key = tuple(t[0] for t in together)
            layouts = self._layouts
            layout = layouts.get(key)
            if layout is None:
                if len(layouts) >= 64:  # a bound, for batches whose columns keep changing
                    layouts.clear()
                specs = [t[1] for t in together]
                layout = layouts[key] = numerical_layout(
                    [s.edges for s in specs], [s.lo for s in specs], [s.hi for s in specs]
                )
            ints, floats, c, smps = numerical_states(np.stack([t[2] for t in together]), layout, k, rng)
            pos = 0
            for j, (i, spec, _) in enumerate(together):
                out.ints[i] = ints[j]
                out.floats[i] = floats[j]
                out.samples[i] = smps[j]
                counts[i] = c[pos : pos + spec.n_bins]
                pos += spec.n_bins
        if counts:
            out.counts = np.concatenate(counts)
        if self.extensions:
            out.sections = self._sections({**cols, **held}, rows, numeric)
        unknown = sorted((set(cols) | set(held)) - set(self.specs) - self._claimed)
        if unknown:
            log.debug("ignoring columns the profile does not know: %s", ", ".join(unknown[:MAX_UNKNOWN_COLUMNS]))
            out.unknown_columns = {name: rows for name in unknown[:MAX_UNKNOWN_COLUMNS]}
        return out

    def _sections(self, cols: Dict[str, Any], rows: int, numeric: Optional[Dict[str, np.ndarray]]) -> Dict[str, Any]:
        """Every extension's section of one batch; a failing extension costs only its section."""
        batch = Batch(cols, rows, numeric)
        out = {}
        for name, ext in self.extensions.items():
            try:
                out[name] = ext.summarize(batch)
            except Exception as exc:  # a bad extension input must not lose the whole summary
                log.warning("extension %r could not summarize a batch (%s: %s); its section is left out",
                            name, type(exc).__name__, exc)
        return out

    # -------------------------------------------------------- serialization
    def _fingerprint(self) -> str:
        h = hashlib.sha256()
        for s in self.specs.values():
            h.update(json.dumps([s.name, s.kind, s.categories, s.lo, s.hi], default=str).encode())
            h.update(np.ascontiguousarray(s.edges, dtype="<f8").tobytes())
        base = h.hexdigest()[:16]
        if not self.extensions:
            return base  # a profile without extensions keeps the fingerprint it always had
        h = hashlib.sha256(base.encode())
        for name, ext in self.extensions.items():
            h.update(f"{name}:{ext.kind}:{ext.fingerprint()}".encode())
        return h.hexdigest()[:16]

    def to_bytes(self) -> bytes:
        """One versioned, checksummed blob (see :mod:`raywatch.stats.codec`)."""
        specs = list(self.specs.values())
        meta = {
            "format": "raywatch.profile",
            "fingerprint": self.fingerprint,
            "window_sample_size": self.window_sample_size,
            "info": self.meta,
            "columns": [
                {
                    "name": s.name,
                    "kind": s.kind,
                    "n_edges": int(s.edges.size),
                    "lo": s.lo,
                    "hi": s.hi,
                    "categories": s.categories,
                    "known": s.known,
                    "families": sorted(s.families),
                    "singletons": s.singletons,
                }
                for s in specs
            ],
        }
        edges = np.concatenate([s.edges for s in specs]) if specs else np.empty(0)
        reference = np.frombuffer(self.reference.to_bytes(), dtype=np.uint8)
        arrays = {"edges": edges.astype("<f8"), "reference": reference}
        if not self.extensions:
            return codec.pack(b"PR", 1, meta, arrays)  # readable by raywatch before extensions
        meta["extensions"], extra = sections.encode(self.extensions, prefix="x")
        arrays.update(extra)
        return codec.pack(b"PR", FORMAT_VERSION, meta, arrays)

    def sign(self, key: Any) -> bytes:
        """The profile's bytes signed with ``key`` (HMAC-SHA256; see :mod:`raywatch.stats.signing`)."""
        return signing.sign(self.to_bytes(), key)

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "") -> "Profile":
        """Inverse of :meth:`to_bytes` (signed bytes too, unchecked: see
        :mod:`raywatch.stats.signing`); raises :class:`~raywatch.stats.codec.FormatError`."""
        try:
            data = signing.strip(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
        except signing.SignatureError as exc:
            raise codec.FormatError(f"{source + ': ' if source else ''}{exc}") from None
        # the reference's samples stay views of ``data`` (read-only; held once when the
        # caller keeps the bytes too, as the stats actor does for persistence)
        meta, arrays = codec.unpack(data, b"PR", READS, source, copy=False)
        where = f"{source}: " if source else ""
        try:
            edges = arrays["edges"]
            specs, pos = [], 0
            for c in meta["columns"]:
                n = int(c["n_edges"])
                specs.append(
                    ColumnSpec(
                        str(c["name"]), str(c["kind"]), edges=edges[pos : pos + n].astype(np.float64),
                        lo=float(c["lo"]), hi=float(c["hi"]), categories=list(c["categories"]),
                        known=list(c["known"]), families=set(c["families"]), singletons=int(c["singletons"]),
                    )
                )
                pos += n
            if pos != edges.size or any(s.kind not in KINDS for s in specs):
                raise ValueError("inconsistent column table")
            found = sections.decode(meta.get("extensions", []), arrays, prefix="x", what="extension")
            if len(found) != len(meta.get("extensions", [])):
                raise ValueError("it uses an extension this raywatch does not know")
            profile = cls(specs, window_sample_size=int(meta["window_sample_size"]), meta=meta.get("info", {}),
                          extensions=list(found.values()))
            reference = WindowSummary.from_bytes(memoryview(arrays["reference"]), copy=False)
        except codec.FormatError as exc:
            raise codec.FormatError(f"{where}damaged profile: its reference summary is unreadable ({exc})") from None
        except (KeyError, ValueError, TypeError) as exc:
            raise codec.FormatError(f"{where}damaged profile: {exc}") from None
        if profile.fingerprint != meta.get("fingerprint") or reference.fingerprint != profile.fingerprint:
            raise codec.FormatError(f"{where}damaged profile: its bins do not match its fingerprint")
        problem = check_profile(profile, reference)
        if problem is not None:  # the CRC and the fingerprint only say these are the bytes someone wrote
            raise codec.FormatError(f"{where}implausible profile: {problem}")
        profile.reference = reference
        return profile

    def save(self, path: Union[str, os.PathLike]) -> Path:
        """Write the profile to ``path`` atomically (owner-only, fsynced, then renamed:
        :func:`raywatch.stats.files.atomic_write`)."""
        path = Path(path)
        data = self.to_bytes()
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data)
        return path

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "Profile":
        """Read a profile written by :meth:`save`."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise codec.FormatError(f"{path}: cannot read the profile: {exc.strerror or exc}") from None
        return cls.from_bytes(data, source=str(path))

    def __repr__(self) -> str:
        kinds = Counter(s.kind for s in self.specs.values())
        parts = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        return f"Profile({len(self.specs)} columns: {parts}; reference rows={self.reference.rows})"
