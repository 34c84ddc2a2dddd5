"""Offline profiles and drift over files: in this process, or on Ray Data at cluster scale.

Three entry points, each over a :class:`~raywatch.offline.sources.Source` (or anything
:func:`~raywatch.offline.sources.resolve` takes: a file, a directory, a glob, a URI):

* :func:`summarize` — a window summary of the data against a profile: every block is
  summarized (:func:`~raywatch.offline.blocks.summarize_block`) and the summaries are
  merged in a balanced tree (:mod:`raywatch.offline.merge`) as they arrive;
* :func:`fit_profile` — a reference profile, by the two-pass fit of
  :mod:`raywatch.offline.fit` on either engine: the profile ``Profile.fit`` gives for the
  whole table (same edges, categories, fingerprint and counts; moments to rounding; another
  draw of the sample), without holding the table (in this process it is also about 2.5×
  faster than ``Profile.fit``, which turns every text cell into a Python object);
* :func:`drift` — both, then :func:`~raywatch.drift.detect.detect_drift`.

``engine="local"`` reads the files here, batch by batch (Arrow's readers, about a million
rows a batch); ``engine="ray"`` runs the same per-block work as Ray Data ``map_batches``
tasks, each reading its share of the files with the same readers (:func:`map_blocks`) and
merging its parts before it sends one back, on the cluster of ``address`` (or
``$RAY_ADDRESS``, or the one this process uses, or a new local one). Only the columns the
profile needs are read. On either engine the counts of a summary are the counts of ``Profile.summarize`` over all the rows (exact: they add up), its
moments are equal to rounding, and its sample is a uniform sample of the rows; the drift
tests that read counts (binned KS, chi-square, z-test and the distances) give the same
figures, and the verdicts are the same.

>>> import os, tempfile
>>> import numpy as np, pyarrow as pa, pyarrow.parquet as pq
>>> d = tempfile.mkdtemp()
>>> rng = np.random.default_rng(0)
>>> for i, shift in enumerate([0.0, 0.0, 1.0]):
...     pq.write_table(pa.table({"x": rng.normal(shift, 1, 2000), "c": rng.choice(["a", "b"], 2000)}),
...                    os.path.join(d, f"part-{i}.parquet"))
>>> profile = fit_profile(os.path.join(d, "part-0.parquet"), seed=0)
>>> report, summary = drift(profile, d)
>>> summary.rows, report.drifted_columns
(6000, ['x'])
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence, Tuple, Union

from raywatch.config import DriftConfig
from raywatch.drift.detect import detect_drift
from raywatch.drift.report import DriftReport
from raywatch.offline.blocks import block_seed, summarize_block
from raywatch.offline.fit import FitPlan, RefinePart, ScanPart, kinds_from_schema, scan_block
from raywatch.offline.merge import TreeMerge, tree_merge
from raywatch.offline.sources import Source, resolve
from raywatch.stats.profile import Profile
from raywatch.stats.summary import MAX_UNKNOWN_COLUMNS, WindowSummary

__all__ = ["summarize", "fit_profile", "drift", "map_blocks", "ENGINES"]

log = logging.getLogger("raywatch.offline.engine")

ENGINES = ("local", "ray")
SourceLike = Union[Source, str, Sequence[str]]


def _source(data: SourceLike, kinds: Optional[Mapping[str, str]] = None) -> Source:
    if isinstance(data, Source):
        if kinds:
            data.kinds = {**data.kinds, **kinds}
        return data
    return resolve(data, kinds=kinds)


class _Pieces:
    """A Ray Data ``map_batches`` function over the indices of a source's pieces
    (:meth:`~raywatch.offline.sources.Source.pieces`): each piece is read in the task, as the
    local engine reads it (the same record batches), ``fn`` makes a part of every batch, and
    with ``merge`` the task's parts are merged before they go back (one part a task)."""

    def __init__(self, fn: Callable[[Any], Any], merge: Optional[Callable[[Any, Any], Any]], source: Source,
                 pieces: Sequence[Any], columns: Optional[Sequence[str]], batch_rows: int):
        self.fn, self.merge, self.source, self.pieces = fn, merge, source, list(pieces)
        self.columns, self.batch_rows = columns, batch_rows

    def __call__(self, batch: Mapping[str, Any]) -> dict:
        import numpy as np
        import pyarrow as pa

        parts = [self.fn(pa.Table.from_batches([rb])) for i in batch["piece"].tolist()
                 for rb in self.source.read_piece(self.pieces[i], self.columns, self.batch_rows)]
        if self.merge is not None and parts:
            parts = [tree_merge(parts, self.merge)]
        out = np.empty(len(parts), dtype=object)
        for j, part in enumerate(parts):
            out[j] = part
        return {"part": out}


def _tasks(ray: Any, pieces: int, blocks: Optional[int]) -> int:
    """How many tasks the pieces are spread over: ``blocks``, or two per CPU of the cluster
    (so a slow piece does not leave a CPU idle), at most one per piece."""
    if blocks:
        want = int(blocks)
    else:
        want = 2 * max(1, int(ray.cluster_resources().get("CPU", 1)))
    return max(1, min(pieces, want))


def map_blocks(source: Source, fn: Callable[[Any], Any], *, columns: Optional[Sequence[str]] = None,
               engine: str = "local", address: Optional[str] = None, blocks: Optional[int] = None,
               batch_rows: int = 1 << 20, merge: Optional[Callable[[Any, Any], Any]] = None) -> Iterator[Any]:
    """``fn(block)`` for every block of ``source`` (an Arrow table of the ``columns``: a record
    batch of at most ``batch_rows`` rows of one file, on either engine), in the order they
    finish. ``engine="ray"``: as Ray Data ``map_batches`` tasks over the source's pieces (a
    file, or a run of a large Parquet file's row groups), ``blocks`` tasks (default two per
    CPU of the cluster, at most one per piece), the parts streamed back to this process; with
    ``merge``, each task merges its parts first and sends one.

    (Ray Data's own ``read_parquet``/``read_csv`` are not used: they cost about a second a
    dataset on top of the reading here, whatever its size, read small files together into one
    block, and type CSV files in their own way; each task here reads its pieces with the same
    pyarrow readers as this process.)"""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "local":
        import pyarrow as pa

        for batch in source.batches(columns, batch_rows=batch_rows):
            yield fn(pa.Table.from_batches([batch]))
        return
    from raywatch.offline.ray_data import connect

    ray = connect(address)
    pieces = source.pieces()
    # One map over tiny inputs, whose outputs are tiny: nothing downstream to keep resources for.
    # Ray Data's per-operator reservation would hold back part of the CPUs (on 2 CPUs it ran 3
    # of 4 tasks on one worker: 1.9 s where the tasks need 1.2 s), so it is off for this dataset
    # alone: from_items gives the dataset its own copy of the current context, which its map
    # shares and its executor reads; the process-wide context is left as it is.
    ds = ray.data.from_items([{"piece": i} for i in range(len(pieces))],
                             override_num_blocks=_tasks(ray, len(pieces), blocks))
    ds.context.op_resource_reservation_enabled = False
    out = ds.map_batches(_Pieces(fn, merge, source, pieces, columns, batch_rows), batch_format="numpy",
                         batch_size=None)
    for row in out.iter_rows():
        yield row["part"]


def _merge(parts: Iterator[Any], merge: Callable[[Any, Any], Any]) -> Tuple[Any, int]:
    tree = TreeMerge(merge)
    for part in parts:
        tree.add(part)
    return tree.result(), tree.parts


def summarize(data: SourceLike, profile: Profile, *, engine: str = "local", seed: Optional[int] = None,
              address: Optional[str] = None, blocks: Optional[int] = None) -> WindowSummary:
    """A window summary of every row of ``data`` against ``profile`` (see the module
    docstring). ``seed``: reproducible samples (each block's draw is seeded from ``seed`` and
    its content)."""
    source = _source(data)
    names = source.schema().names
    columns = [c for c in profile.columns if c in names] if source.fmt == "parquet" else list(profile.columns)
    fn = _Summarize(profile, seed)
    merged, parts = _merge(map_blocks(source, fn, columns=columns, engine=engine, address=address, blocks=blocks,
                                      merge=WindowSummary.merge), WindowSummary.merge)
    log.info("summarized %s (%d parts merged here) on the %s engine", source.describe(), parts, engine)
    out = merged if merged is not None else profile.empty_summary()
    unknown = sorted(set(names) - set(profile.specs))  # not read, but counted as Profile.summarize counts them
    out.unknown_columns = {name: out.rows for name in unknown[:MAX_UNKNOWN_COLUMNS]} if unknown and out.rows else {}
    return out


class _Summarize:
    def __init__(self, profile: Profile, seed: Optional[int]):
        self.profile, self.seed = profile, seed

    def __call__(self, table: Any) -> WindowSummary:
        return summarize_block(self.profile, table, seed=block_seed(self.seed, table))


class _Scan:
    def __init__(self, kinds: Mapping[str, str], bins: int):
        self.kinds, self.bins = dict(kinds), bins

    def __call__(self, table: Any) -> ScanPart:
        return scan_block(table, self.kinds, bins=self.bins)


class _Refine:
    def __init__(self, plan: FitPlan, seed: Optional[int]):
        self.plan, self.seed = plan, seed

    def __call__(self, table: Any) -> RefinePart:
        return self.plan.refine_block(table, seed=self.seed)


def fit_profile(data: SourceLike, kinds: Optional[Mapping[str, str]] = None, *, columns: Optional[Sequence[str]] = None,
                bins: int = 100, sample_size: int = 10_000, max_categories: int = 50, window_sample_size: int = 100,
                seed: Optional[int] = None, engine: str = "local", address: Optional[str] = None,
                blocks: Optional[int] = None) -> Profile:
    """A reference profile of ``data`` (``columns``: only these): the two-pass fit of
    :mod:`raywatch.offline.fit` over its blocks, in this process or on Ray Data (the profile
    ``Profile.fit`` gives for the same rows: see there)."""
    source = _source(data, kinds)
    schema = source.schema()
    if columns is not None:
        missing = [c for c in columns if c not in schema.names]
        if missing:
            raise ValueError(f"--columns: {', '.join(missing)} not in {source.given} (it has {', '.join(schema.names)})")
    if columns is not None:
        import pyarrow as pa

        schema = pa.schema([schema.field(c) for c in columns])
    resolved = kinds_from_schema(schema, kinds)
    scan, _ = _merge(map_blocks(source, _Scan(resolved, bins), columns=list(resolved), engine=engine, address=address,
                                blocks=blocks, merge=ScanPart.merge), ScanPart.merge)
    plan = FitPlan(resolved, scan or ScanPart(), bins=bins, max_categories=max_categories, sample_size=sample_size,
                   window_sample_size=window_sample_size)
    refined, _ = _merge(map_blocks(source, _Refine(plan, seed), columns=list(resolved), engine=engine, address=address,
                                   blocks=blocks, merge=RefinePart.merge), RefinePart.merge)
    profile = plan.finish(refined)
    log.info("fitted a profile of %s (%d rows, %d blocks) on the %s engine", source.describe(), plan.rows, plan.blocks,
             engine)
    return profile


def drift(reference: Union[Profile, SourceLike], current: SourceLike, config: Union[DriftConfig, Mapping[str, Any], None] = None,
          *, engine: str = "local", seed: Optional[int] = None, address: Optional[str] = None,
          kinds: Optional[Mapping[str, str]] = None, blocks: Optional[int] = None) -> Tuple[DriftReport, WindowSummary]:
    """``(report, summary)``: the drift of ``current`` against ``reference`` (a profile, or
    data to fit one from on the same engine)."""
    profile = reference if isinstance(reference, Profile) else fit_profile(
        reference, kinds, seed=seed, engine=engine, address=address, blocks=blocks)
    summary = summarize(_source(current, kinds), profile, engine=engine, seed=seed, address=address, blocks=blocks)
    return detect_drift(profile, summary, config), summary
