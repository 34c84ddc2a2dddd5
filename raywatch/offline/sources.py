"""Where offline data lives: files, directories, globs and URIs of Parquet or CSV files.

:func:`resolve` turns what a user typed (``train.parquet``, ``data/``, ``"logs/*.csv"``,
``file:///srv/ref/``, ``s3://bucket/ref/``) into a :class:`Source`: the files, their format
and their total size. A source reads the same way on both engines:

* in this process (:meth:`Source.batches`), Arrow record batches file by file, with
  pyarrow's own readers;
* on Ray Data, the same readers in each task (:meth:`Source.read_piece`), over the
  :meth:`Source.pieces` the work is cut into (a file, or a run of a large Parquet file's row
  groups), so both engines see the same types and the same batches.

CSV is typed by Arrow's CSV reader (per file, from its first block, as Ray Data does): numbers,
``true``/``false``, text; only an empty cell is missing (``null_values=[""]``, as raywatch's
own CSV reader). A column given as ``categorical`` is read as text, so its labels are the
strings production sends (``"01234"`` keeps its zero: Arrow would read it as the number 1234
otherwise). ``raywatch profile build`` of a single small CSV file without ``--ray`` keeps
:func:`raywatch.stats.tables.read_table`'s own typing.

Paths on this machine are read by Ray's workers where they run: on a cluster, give a path
every node sees (shared storage) or a URI (``s3://``, ``gs://``, ``abfs://``…).

>>> import os, tempfile
>>> d = tempfile.mkdtemp()
>>> for i in range(2):
...     _ = open(os.path.join(d, f"part-{i}.csv"), "w").write("a,b\\n1,x\\n2,y\\n")
>>> src = resolve(d)
>>> src.fmt, len(src.files), src.describe().endswith("(2 csv files, 24 bytes)")
('csv', 2, True)
>>> sum(b.num_rows for b in src.batches())
4
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

__all__ = ["Source", "resolve", "FORMATS", "is_uri"]

FORMATS = ("parquet", "csv", "tsv")
"""The formats a :class:`Source` reads (``pq`` is Parquet, ``txt`` CSV)."""

_EXTENSIONS = {"parquet": "parquet", "pq": "parquet", "csv": "csv", "txt": "csv", "tsv": "tsv"}
_SKIP = ("_", ".")  # _SUCCESS, _metadata, .crc files and other markers beside the data
SPLIT_BYTES = 256 << 20
"""A Parquet file larger than this is cut into runs of row groups of about this size (uncompressed),
each read by one task on Ray."""

Piece = Tuple[str, Optional[Tuple[int, ...]]]
"""What one task reads: a file's path and its row groups (None: the whole file)."""


def is_uri(text: str) -> bool:
    """Whether ``text`` names a URI (``scheme://…``) rather than a local path.

    >>> is_uri("s3://bucket/x"), is_uri("file:///tmp/x"), is_uri("/tmp/x"), is_uri("C:/x")
    (True, True, False, False)
    """
    scheme, sep, _ = text.partition("://")
    return bool(sep) and len(scheme) > 1 and scheme.replace("+", "").replace("-", "").isalnum()


def _format_of(name: str) -> Optional[str]:
    return _EXTENSIONS.get(name.rsplit(".", 1)[-1].lower()) if "." in name else None


@dataclass
class Source:
    """Data files of one format on one filesystem.

    ``given`` is what the user typed; ``files`` the paths on ``filesystem`` (a
    ``pyarrow.fs.FileSystem``, which travels to Ray's workers with the source).
    ``kinds`` are kind overrides (column → kind): a ``categorical`` column of a CSV file
    is read as text.
    """

    given: str
    fmt: str
    files: List[str]
    filesystem: Any
    nbytes: int
    kinds: Dict[str, str] = field(default_factory=dict)
    sizes: List[int] = field(default_factory=list)  # bytes of each file (0: unknown)

    def describe(self) -> str:
        s = "" if len(self.files) == 1 else "s"
        return f"{self.given} ({len(self.files)} {self.fmt} file{s}, {self.nbytes:,} bytes)"

    # --------------------------------------------------------------- reading options
    def csv_options(self, columns: Optional[Sequence[str]] = None) -> Tuple[Any, Any, Any]:
        """``(read_options, parse_options, convert_options)`` of Arrow's CSV reader;
        ``columns``: read only these (a column a file lacks reads as missing)."""
        from pyarrow import csv

        types = {name: _string_type() for name, kind in self.kinds.items()
                 if kind == "categorical" and (columns is None or name in columns)}
        convert = csv.ConvertOptions(null_values=[""], strings_can_be_null=True, column_types=types)
        if columns is not None:
            convert.include_columns = list(columns)
            convert.include_missing_columns = True
        return (csv.ReadOptions(use_threads=False), csv.ParseOptions(delimiter="\t" if self.fmt == "tsv" else ","),
                convert)

    # ------------------------------------------------------------------ in process
    def batches(self, columns: Optional[Sequence[str]] = None, batch_rows: int = 1 << 20) -> Iterator[Any]:
        """Arrow record batches of every file in turn (``columns``: only these; the others
        are not read)."""
        for path in self.files:
            yield from self.read_piece((path, None), columns, batch_rows)

    def read_piece(self, piece: Piece, columns: Optional[Sequence[str]] = None, batch_rows: int = 1 << 20) -> Iterator[Any]:
        """Arrow record batches of one :data:`Piece` (a file, or some of a Parquet file's row
        groups), at most ``batch_rows`` rows each, as :meth:`batches` reads that file."""
        path, row_groups = piece
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            with self.filesystem.open_input_file(path) as fh:
                pf = pq.ParquetFile(fh)
                keep = None if columns is None else [c for c in pf.schema_arrow.names if c in set(columns)]
                yield from pf.iter_batches(batch_size=batch_rows, columns=keep,
                                           row_groups=list(row_groups) if row_groups is not None else None)
            return
        from pyarrow import csv

        read, parse, convert = self.csv_options(columns)
        with self.filesystem.open_input_stream(path) as fh:
            yield from csv.open_csv(fh, read_options=read, parse_options=parse, convert_options=convert)

    def pieces(self, split_bytes: int = SPLIT_BYTES) -> List[Piece]:
        """The work cut into pieces for tasks: every file, except that a Parquet file of more
        than ``split_bytes`` with several row groups is cut into runs of its row groups of
        about ``split_bytes`` each (uncompressed, from its footer)."""
        out: List[Piece] = []
        sizes = self.sizes or [0] * len(self.files)
        for path, size in zip(self.files, sizes):
            if self.fmt != "parquet" or size <= split_bytes:
                out.append((path, None))
                continue
            import pyarrow.parquet as pq

            with self.filesystem.open_input_file(path) as fh:
                meta = pq.ParquetFile(fh).metadata
            run: List[int] = []
            held = 0
            for i in range(meta.num_row_groups):
                run.append(i)
                held += meta.row_group(i).total_byte_size
                if held >= split_bytes:
                    out.append((path, tuple(run)))
                    run, held = [], 0
            if run or not meta.num_row_groups:
                out.append((path, tuple(run) if meta.num_row_groups else None))
        return out

    def schema(self) -> Any:
        """The Arrow schema of the first file (CSV: as its first block is typed)."""
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            with self.filesystem.open_input_file(self.files[0]) as fh:
                return pq.ParquetFile(fh).schema_arrow
        from pyarrow import csv

        read, parse, convert = self.csv_options()
        with self.filesystem.open_input_stream(self.files[0]) as fh:
            return csv.open_csv(fh, read_options=read, parse_options=parse, convert_options=convert).schema

    def read_all(self, columns: Optional[Sequence[str]] = None) -> Any:
        """Every file as one Arrow table (for the single-process fit)."""
        import pyarrow as pa

        batches = list(self.batches(columns))
        if not batches:
            return self.schema().empty_table()
        return pa.Table.from_batches(batches).combine_chunks() if len({b.schema for b in batches}) == 1 \
            else pa.concat_tables([pa.Table.from_batches([b]) for b in batches], promote_options="permissive")


def _string_type() -> Any:
    import pyarrow as pa

    return pa.string()


def _listing(fs: Any, path: str) -> List[Tuple[str, int]]:
    """``(path, size)`` of every data file at ``path`` (a file, or a directory walked)."""
    from pyarrow import fs as pafs

    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise ValueError(f"{path}: no such file or directory")
    if info.type == pafs.FileType.File:
        return [(info.path, int(info.size or 0))]
    found = []
    for entry in fs.get_file_info(pafs.FileSelector(path, recursive=True)):
        name = entry.base_name
        if entry.type != pafs.FileType.File or name.startswith(_SKIP):
            continue
        if any(part.startswith(_SKIP) for part in Path(entry.path).relative_to(Path(path)).parts[:-1]):
            continue
        found.append((entry.path, int(entry.size or 0)))
    return sorted(found)


def resolve(given: Union[str, os.PathLike, Sequence[str]], fmt: Optional[str] = None,
            kinds: Optional[Mapping[str, str]] = None) -> Source:
    """The :class:`Source` behind a path, directory, glob or URI (or a list of them, one
    format on one filesystem). ``fmt`` is ``parquet``, ``csv`` or ``tsv`` (default: from the
    files' extensions). ValueError names what is wrong (nothing there, mixed formats, an
    unknown extension)."""
    from pyarrow import fs as pafs

    items = [os.fspath(given)] if isinstance(given, (str, os.PathLike)) else [os.fspath(g) for g in given]
    if not items:
        raise ValueError("no data given")
    filesystem = None
    files: List[Tuple[str, int]] = []
    for item in items:
        if is_uri(item):
            fs, path = pafs.FileSystem.from_uri(item)
            listing = _listing(fs, path)
        else:
            fs = pafs.LocalFileSystem()
            paths = sorted(glob.glob(item)) if glob.has_magic(item) else [item]
            if not paths:
                raise ValueError(f"{item}: no file matches")
            listing = [entry for p in paths for entry in _listing(fs, os.path.abspath(p))]
        if filesystem is not None and type(fs) is not type(filesystem):
            raise ValueError(f"{item}: every input must be on the same filesystem")
        filesystem = fs
        files += listing
    if not files:
        raise ValueError(f"{', '.join(items)}: no data files there")
    if fmt is None:
        found = {_format_of(p) for p, _ in files}
        if None in found:
            odd = next(p for p, _ in files if _format_of(p) is None)
            raise ValueError(f"{odd}: unknown format (expected .parquet, .csv or .tsv files; or give the format)")
        if len(found) > 1:
            raise ValueError(f"{', '.join(items)}: files of several formats ({', '.join(sorted(found))}); give one format")
        fmt = found.pop()
    fmt = _EXTENSIONS.get(fmt.lower(), fmt.lower())
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (expected parquet, csv or tsv)")
    return Source(", ".join(items), fmt, [p for p, _ in files], filesystem, sum(n for _, n in files),
                  dict(kinds or {}), [n for _, n in files])
