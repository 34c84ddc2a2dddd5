"""Reading reference data from files: CSV (or TSV), NPZ and Parquet.

:func:`read_table` returns what :meth:`raywatch.stats.profile.Profile.fit` takes: a mapping
of column name to a 1-D array (CSV, NPZ) or a pyarrow Table (Parquet, which needs pyarrow).
CSV cells are typed per column: numbers as float (an empty cell is NaN), ``true``/``false``
as bool, anything else as strings (an empty cell is None). Integers written with a leading
zero (``01234``) are codes, not quantities: their column stays text. A column whose kind is
given as ``"categorical"`` (``kinds``, what ``raywatch profile build --kind zip=categorical``
says) keeps its cells as written, so its labels are the strings production JSON sends
(``"75001"``, ``"01234"``). An NPZ file holds one 1-D array
per column, or a single 2-D array whose columns are named ``<name>_0``, ``<name>_1``…
A file that cannot be read as a table is a ValueError naming the file (and the line).

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "t.csv")
>>> _ = open(path, "w").write("amount,plan,card_present\\n12.5,pro,true\\n,free,false\\n")
>>> cols = read_table(path)
>>> cols["amount"].tolist(), cols["plan"].tolist(), cols["card_present"].tolist()
([12.5, nan], ['pro', 'free'], [True, False])
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

__all__ = ["read_table", "typed_column", "text_column", "FORMATS"]

_LEADING_ZERO = re.compile(r"[+-]?0[0-9]+")

FORMATS = ("csv", "tsv", "npz", "parquet")
"""The formats :func:`read_table` reads (``txt`` is read as CSV, ``pq`` as Parquet)."""


def read_table(path: Union[str, Path], fmt: Optional[str] = None, kinds: Optional[Mapping[str, str]] = None,
               vectors: Sequence[str] = ()) -> Any:
    """Columns of a CSV, TSV, NPZ or Parquet file (``fmt`` defaults to the extension).

    ``kinds`` (column → kind, as given to :meth:`~raywatch.stats.profile.Profile.fit`)
    types the CSV cells of a ``"categorical"`` column as text; it must name columns of the
    file. ``vectors`` names vector columns (embeddings, ``Profile.fit(vectors=...)``): a 2-D
    array of an NPZ file, a list column of a Parquet file (then read into a mapping of
    arrays, the vector columns as 2-D arrays); a CSV file holds none."""
    p = Path(path)
    fmt = (fmt or p.suffix.lstrip(".")).lower()
    if fmt in ("csv", "tsv", "txt"):
        if vectors:
            raise ValueError(f"{path}: a CSV file holds no vector column ({', '.join(vectors)}): use NPZ or Parquet")
        return _read_csv(p, "\t" if fmt == "tsv" else ",", dict(kinds or {}))
    if fmt == "npz":
        return _read_npz(p, vectors)
    if fmt in ("parquet", "pq"):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ValueError("reading Parquet needs pyarrow (pip install pyarrow)") from None
        table = pq.read_table(p)
        if not vectors:
            return table
        missing = [v for v in vectors if v not in table.column_names]
        if missing:
            raise ValueError(f"{path}: no column {', '.join(missing)} (it has {', '.join(table.column_names)})")
        return {n: (np.asarray(table.column(n).to_pylist(), dtype=np.float64) if n in vectors
                    else table.column(n).to_numpy(zero_copy_only=False)) for n in table.column_names}
    raise ValueError(f"{path}: unknown format {fmt!r} (expected csv, tsv, npz or parquet)")


def _read_csv(p: Path, delimiter: str, kinds: Mapping[str, str]) -> Dict[str, np.ndarray]:
    import csv

    with p.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        header = next(reader, None)
        if not header:
            raise ValueError(f"{p}: empty CSV file (expected a header row)")
        raw: List[List[str]] = [[] for _ in header]
        for lineno, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise ValueError(f"{p}: line {lineno}: {len(row)} fields, header has {len(header)}")
            for i, v in enumerate(row):
                raw[i].append(v)
    unknown = sorted(set(kinds) - set(header))
    if unknown:
        raise ValueError(f"{p}: kinds names columns that are not in the file: {', '.join(unknown)} (it has {', '.join(header)})")
    return {name: text_column(vals) if kinds.get(name) == "categorical" else typed_column(vals)
            for name, vals in zip(header, raw)}


def _read_npz(p: Path, vectors: Sequence[str] = ()) -> Dict[str, np.ndarray]:
    with np.load(p, allow_pickle=False) as data:
        cols = {k: data[k] for k in data.files}
    if len(cols) == 1 and next(iter(cols.values())).ndim == 2 and not vectors:
        (name, arr), = cols.items()
        return {f"{name}_{i}": arr[:, i] for i in range(arr.shape[1])}
    missing = [v for v in vectors if v not in cols]
    if missing:
        raise ValueError(f"{p}: no array {', '.join(missing)} (it has {', '.join(cols)})")
    bad = [k for k, v in cols.items() if v.ndim != (2 if k in vectors else 1)]
    if bad:
        raise ValueError(f"{p}: arrays {bad} are not 1-D (one array per column expected; a vector column, "
                         "2-D, is named as one)")
    return cols


def typed_column(values: Sequence[str]) -> np.ndarray:
    """A column of text cells as numbers (empty → NaN), booleans, or strings (empty → None).

    >>> typed_column(["1", "", "2.5"]).tolist(), typed_column(["true", "FALSE"]).tolist()
    ([1.0, nan, 2.5], [True, False])
    >>> typed_column(["true", ""]).tolist(), typed_column(["a", ""]).tolist()
    ([True, None], ['a', None])
    """
    present = [v.strip() for v in values if v.strip() != ""]
    low = {v.lower() for v in present}
    if present and low <= {"true", "false"}:
        if len(present) == len(values):
            return np.array([v.strip().lower() == "true" for v in values])
        return np.array([None if v.strip() == "" else v.strip().lower() == "true" for v in values], dtype=object)
    if any(_LEADING_ZERO.fullmatch(v) for v in present):
        return text_column(values)
    try:
        return np.array([float(v) if v.strip() != "" else np.nan for v in values], dtype=np.float64)
    except ValueError:
        return np.array([v if v.strip() != "" else None for v in values], dtype=object)


def text_column(values: Sequence[str]) -> np.ndarray:
    """A column of text cells kept as written (surrounding blanks removed; empty → None).

    >>> text_column(["01234", " 75001", ""]).tolist()
    ['01234', '75001', None]
    """
    return np.array([v.strip() if v.strip() != "" else None for v in values], dtype=object)
