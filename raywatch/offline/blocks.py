"""What one block of rows becomes, on any engine: a window summary against a profile.

:func:`summarize_block` is :meth:`Profile.summarize <raywatch.stats.profile.Profile.summarize>`
for an Arrow block, with one shortcut: a categorical column held as Arrow text is tallied
by its distinct labels (``pyarrow.compute.value_counts``, then raywatch's own label coding
of those few labels) instead of turning every cell into a Python string first. The label
coding is a function of each value alone, so the tally, and therefore the summary, is the
one ``Profile.summarize`` gives for the same rows and seed — the same bytes (checked in
``tests/offline/test_blocks.py``). Every other column (numbers, booleans, labels held as
numbers) goes through ``Profile.summarize`` itself. A profile with extensions (their
sections may read any column) is summarized by ``Profile.summarize`` whole.

>>> import numpy as np, pyarrow as pa
>>> from raywatch.stats.profile import Profile
>>> profile = Profile.fit({"x": np.arange(100.0), "plan": ["free", "pro"] * 50}, bins=4, seed=0)
>>> block = pa.table({"x": [1.0, None, 250.0], "plan": ["pro", None, "team"], "extra": [1, 2, 3]})
>>> s = summarize_block(profile, block, seed=1)
>>> s == profile.summarize(block, seed=1)
True
>>> s.column("plan").unseen, s.column("x").missing, s.unknown_columns
(1, 1, {'extra': 3})
"""

from __future__ import annotations

import logging
import zlib
from typing import Any, Dict, Optional

import numpy as np

from raywatch.stats.columns import encode_categorical
from raywatch.stats.profile import Profile
from raywatch.stats.summary import MAX_UNKNOWN_COLUMNS, WindowSummary, categorical_state

__all__ = ["summarize_block", "arrow_table", "is_text", "text_tally", "block_seed"]

log = logging.getLogger("raywatch.offline.blocks")


def arrow_table(batch: Any) -> Any:
    """``batch`` as a pyarrow Table when it is Arrow data (a Table or a RecordBatch), else None."""
    kind = type(batch).__module__.split(".")[0]
    if kind != "pyarrow":
        return None
    import pyarrow as pa

    if isinstance(batch, pa.RecordBatch):
        return pa.Table.from_batches([batch])
    return batch if isinstance(batch, pa.Table) else None


def is_text(arrow_type: Any) -> bool:
    """Whether an Arrow column of this type holds text labels (string, or a dictionary of strings)."""
    import pyarrow as pa

    t = arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type
    return pa.types.is_string(t) or pa.types.is_large_string(t) or getattr(pa.types, "is_string_view", lambda _: False)(t)


def distinct_labels(column: Any) -> tuple:
    """``(labels, counts)`` of an Arrow text column: an object array of its distinct values
    (None for null) and how often each occurs."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    vc = pc.value_counts(column)
    labels = vc.field("values").to_numpy(zero_copy_only=False)
    return labels, vc.field("counts").to_numpy(zero_copy_only=False).astype(np.int64)


def text_tally(column: Any, spec: Any) -> np.ndarray:
    """The tally of a categorical column's codes (the count of code ``c`` at ``c + 3``, as
    :func:`~raywatch.stats.summary.categorical_state` takes it) for an Arrow text column."""
    labels, counts = distinct_labels(column)
    codes = encode_categorical(labels, spec.lookup, spec.families, spec.n_bins)
    return np.bincount(codes + 3, weights=counts, minlength=spec.n_bins + 4).astype(np.int64)


def block_seed(seed: Optional[int], table: Any) -> Optional[int]:
    """A seed for one block's sample draws: None stays None (fresh randomness); otherwise
    ``seed`` mixed with a checksum of the block's first numerical column, so that a block
    draws the same sample on every run and two blocks draw independently."""
    if seed is None:
        return None
    h = zlib.crc32(str(table.num_rows).encode())
    import pyarrow as pa

    for col in table.columns:
        if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
            for chunk in col.chunks:
                for buf in chunk.buffers():
                    if buf is not None:
                        h = zlib.crc32(memoryview(buf), h)
            break
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, h]).generate_state(1)[0])


def summarize_block(profile: Profile, batch: Any, *, seed: Optional[int] = None,
                    sample_size: Optional[int] = None) -> WindowSummary:
    """``profile.summarize(batch, seed=seed, sample_size=sample_size)``, with Arrow text
    columns tallied by their distinct labels (see the module docstring)."""
    table = arrow_table(batch)
    if table is None or profile.extensions:
        return profile.summarize(batch, seed=seed, sample_size=sample_size)
    names = table.column_names
    fast: Dict[str, Any] = {}
    plain: Dict[str, Any] = {}
    for name in names:
        spec = profile.specs.get(name)
        if spec is None:
            continue
        col = table.column(name)
        if spec.kind == "categorical" and is_text(col.type):
            fast[name] = col
        else:
            plain[name] = col
    rows = table.num_rows
    # categorical columns draw nothing from the generator: leaving them out keeps the draws
    out = profile.summarize(plain, seed=seed, sample_size=sample_size) if plain else profile.empty_summary(sample_size)
    out.rows = rows
    offsets = out._offsets
    for i, spec in enumerate(profile.specs.values()):
        if spec.name in fast:
            ints, counts = categorical_state(text_tally(fast[spec.name], spec), spec.n_bins, False, tallied=True)
            out.ints[i] = ints
            out.counts[offsets[i]:offsets[i + 1]] = counts
        elif spec.name not in plain:
            out.ints[i, 0] = rows  # absent: missing in every row, as Profile.summarize counts it
            out.ints[i, 1] = rows
    unknown = sorted(set(names) - set(profile.specs))
    out.unknown_columns = {name: rows for name in unknown[:MAX_UNKNOWN_COLUMNS]} if unknown else {}
    return out
